//! Data channel keys from OpenVPN's 256-byte key block.

use aws_lc_rs::{aead, cipher, hmac};
use zeroize::Zeroizing;

use super::cipher::{AuthDigest, DataCipher};
use super::decrypt::Decryptor;
use super::encrypt::Encryptor;
use super::error::DataError;
use super::replay::ReplayProtection;

/// Length of the key block: two directions of (cipher key 64 | HMAC key 64).
pub const KEY_BLOCK_LEN: usize = 256;
const CIPHER_KEY_SLOT: usize = 64;
const DIRECTION_LEN: usize = KEY_BLOCK_LEN / 2;

/// Length of the implicit part of the AEAD nonce, taken from the HMAC key slot.
pub(crate) const IMPLICIT_IV_LEN: usize = 8;

/// The side of the session that this process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// The reason that a key should be renegotiated soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenegotiationReason {
    /// The sender's packet id passed 0xFF000000, OpenVPN's `PACKET_ID_WRAP_TRIGGER`.
    PacketIdNearWrap,
    /// AES-GCM processed 7/8 of its usage limit in blocks plus packets.
    AeadUsageLimit,
    /// More than 2^35 packets failed authentication with this key, which OpenVPN 2.7
    /// treats as a warning sign. At 2^36 the key stops decrypting.
    FailedDecryptions,
}

/// The two directions of one negotiated data channel key.
#[derive(Debug)]
pub struct DataKeys {
    pub encrypt: Encryptor,
    pub decrypt: Decryptor,
}

impl DataKeys {
    /// Prepares both directions from a key block, with OpenVPN's default replay window.
    ///
    /// The first half of the block is the client-to-server direction, the second half
    /// server-to-client (OpenVPN's `KEY_DIRECTION_NORMAL` on the client,
    /// `KEY_DIRECTION_INVERSE` on the server). `digest` matters only for CBC and `none`.
    pub fn new(
        cipher: DataCipher,
        digest: AuthDigest,
        key_block: &[u8; KEY_BLOCK_LEN],
        role: Role,
    ) -> Result<Self, DataError> {
        Self::new_with_replay(cipher, digest, key_block, role, ReplayProtection::default())
    }

    /// Prepares both directions like [`DataKeys::new`] with the given replay protection.
    pub fn new_with_replay(
        cipher: DataCipher,
        digest: AuthDigest,
        key_block: &[u8; KEY_BLOCK_LEN],
        role: Role,
        replay: ReplayProtection,
    ) -> Result<Self, DataError> {
        let (client_to_server, server_to_client) = key_block.split_at(DIRECTION_LEN);
        let (send, receive) = match role {
            Role::Server => (server_to_client, client_to_server),
            Role::Client => (client_to_server, server_to_client),
        };
        let send = DirectionKey::new(cipher, digest, send);
        let receive = DirectionKey::new(cipher, digest, receive);
        Ok(DataKeys {
            encrypt: Encryptor::new(&send)?,
            decrypt: Decryptor::new(&receive, replay)?,
        })
    }
}

/// An AEAD key of one direction.
pub(crate) struct AeadKey {
    pub(crate) key: aead::LessSafeKey,
    /// The last 8 bytes of every nonce: the first 8 bytes of the direction's HMAC key
    /// slot (OpenVPN `key_ctx_update_implicit_iv`).
    pub(crate) implicit_iv: Zeroizing<[u8; IMPLICIT_IV_LEN]>,
}

impl AeadKey {
    /// Builds the 12-byte nonce: the packet id followed by the implicit IV.
    pub(crate) fn nonce(&self, packet_id: [u8; PACKET_ID_LEN]) -> aead::Nonce {
        let mut nonce = [0; aead::NONCE_LEN];
        nonce[..PACKET_ID_LEN].copy_from_slice(&packet_id);
        nonce[PACKET_ID_LEN..].copy_from_slice(&self.implicit_iv[..]);
        aead::Nonce::assume_unique_for_key(nonce)
    }
}

/// The key bytes of one direction, borrowed from the key block.
pub(crate) struct DirectionKey<'a> {
    pub(crate) cipher: DataCipher,
    /// `AuthDigest::None` for AEAD ciphers, which ignore `--auth`.
    pub(crate) digest: AuthDigest,
    cipher_slot: &'a [u8],
    hmac_slot: &'a [u8],
}

impl<'a> DirectionKey<'a> {
    fn new(cipher: DataCipher, digest: AuthDigest, direction: &'a [u8]) -> Self {
        let (cipher_slot, hmac_slot) = direction.split_at(CIPHER_KEY_SLOT);
        let digest = if cipher.is_aead() {
            AuthDigest::None
        } else {
            digest
        };
        DirectionKey {
            cipher,
            digest,
            cipher_slot,
            hmac_slot,
        }
    }

    fn setup_error(&self) -> DataError {
        DataError::KeySetup {
            cipher: self.cipher.openvpn_name(),
        }
    }

    /// Returns the HMAC key, which is the first `output_len` bytes of the HMAC slot
    /// (OpenVPN `hmac_ctx_init`), or `None` for AEAD ciphers and `auth none`.
    /// The key is boxed because its precomputed HMAC state takes over a kilobyte.
    pub(crate) fn hmac_key(&self) -> Option<Box<hmac::Key>> {
        let algorithm = self.digest.hmac_algorithm()?;
        let key_len = self.digest.output_len();
        Some(Box::new(hmac::Key::new(
            algorithm,
            &self.hmac_slot[..key_len],
        )))
    }

    /// Returns the AEAD key with its implicit IV, or `None` for other ciphers.
    pub(crate) fn aead_key(&self) -> Result<Option<AeadKey>, DataError> {
        let Some(algorithm) = self.cipher.aead_algorithm() else {
            return Ok(None);
        };
        let key_bytes = &self.cipher_slot[..self.cipher.key_len()];
        let key = aead::UnboundKey::new(algorithm, key_bytes).map_err(|_| self.setup_error())?;
        let mut implicit_iv = Zeroizing::new([0; IMPLICIT_IV_LEN]);
        implicit_iv.copy_from_slice(&self.hmac_slot[..IMPLICIT_IV_LEN]);
        Ok(Some(AeadKey {
            key: aead::LessSafeKey::new(key),
            implicit_iv,
        }))
    }

    /// Returns the unbound AES key of a CBC cipher, or `None` for other ciphers.
    pub(crate) fn cbc_key(&self) -> Result<Option<cipher::UnboundCipherKey>, DataError> {
        let Some(algorithm) = self.cipher.cbc_algorithm() else {
            return Ok(None);
        };
        let key_bytes = &self.cipher_slot[..self.cipher.key_len()];
        cipher::UnboundCipherKey::new(algorithm, key_bytes)
            .map(Some)
            .map_err(|_| self.setup_error())
    }
}

/// Returns where the AEAD additional data sits in a packet: the DATA_V2 header with the
/// packet id, or with DATA_V1 the packet id alone (OpenVPN `ssl.c`,
/// `handle_data_channel_packet`, and `forward.c`, `encrypt_sign`).
pub(crate) fn aead_aad_range(header_len: usize) -> core::ops::Range<usize> {
    let start = if header_len == DATA_V2_HEADER_LEN {
        0
    } else {
        header_len
    };
    start..header_len + PACKET_ID_LEN
}

pub(crate) const DATA_V1_HEADER_LEN: usize = 1;
pub(crate) const DATA_V2_HEADER_LEN: usize = 4;
pub(crate) const PACKET_ID_LEN: usize = 4;
pub(crate) const AEAD_TAG_LEN: usize = 16;
pub(crate) const CBC_BLOCK_LEN: usize = 16;

pub(crate) fn check_header_len(header_len: usize) -> Result<(), DataError> {
    match header_len {
        DATA_V1_HEADER_LEN | DATA_V2_HEADER_LEN => Ok(()),
        other => Err(DataError::InvalidHeaderLength(other)),
    }
}
