//! The receiving half of a data channel key.

use core::ops::Range;
use std::time::Instant;

use aws_lc_rs::{aead, cipher, hmac};

use super::cipher::DataCipher;
use super::error::DataError;
use super::keys::{
    AEAD_TAG_LEN, AeadKey, CBC_BLOCK_LEN, DirectionKey, PACKET_ID_LEN, RenegotiationReason,
    aead_aad_range, check_header_len,
};
use super::replay::{ReplayProtection, ReplayWindow};

/// Failed AEAD authentications after which a key refuses to decrypt (OpenVPN 2.7
/// `cipher_decrypt_verify_fail_exceeded`, the DTLS 1.3 limit).
const FAILED_DECRYPTION_LIMIT: u64 = 1 << 36;
/// Failed AEAD authentications after which a renegotiation is due.
const FAILED_DECRYPTION_WARNING: u64 = 1 << 35;

/// Authenticates and decrypts incoming data packets with one direction of a key, and
/// checks their packet ids against replay.
///
/// The packet layouts are those of [`Encryptor`](super::Encryptor). Decryption happens
/// in place and returns the range of the payload within the packet; it does not allocate.
/// The replay check runs only after authentication succeeded, so a forged packet can
/// neither move the window nor mark an id as seen.
pub struct Decryptor {
    cipher: DataCipher,
    hmac_len: usize,
    opener: Opener,
    replay: ReplayWindow,
    failed_decryptions: u64,
    /// 16-byte blocks decrypted so far, for the AES-GCM usage limit.
    plaintext_blocks: u64,
}

enum Opener {
    Aead(AeadKey),
    /// Boxed because the AES and HMAC contexts are large.
    Cbc(Box<CbcOpener>),
    Plain {
        hmac: Option<Box<hmac::Key>>,
    },
}

struct CbcOpener {
    key: cipher::DecryptingKey,
    hmac: Option<Box<hmac::Key>>,
}

impl Decryptor {
    pub(crate) fn new(key: &DirectionKey<'_>, replay: ReplayProtection) -> Result<Self, DataError> {
        let opener = if let Some(aead_key) = key.aead_key()? {
            Opener::Aead(aead_key)
        } else if let Some(unbound) = key.cbc_key()? {
            let decrypting_key =
                cipher::DecryptingKey::cbc(unbound).map_err(|_| DataError::KeySetup {
                    cipher: key.cipher.openvpn_name(),
                })?;
            Opener::Cbc(Box::new(CbcOpener {
                key: decrypting_key,
                hmac: key.hmac_key(),
            }))
        } else {
            Opener::Plain {
                hmac: key.hmac_key(),
            }
        };
        Ok(Decryptor {
            cipher: key.cipher,
            hmac_len: key.digest.output_len(),
            opener,
            replay: ReplayWindow::new(replay),
            failed_decryptions: 0,
            plaintext_blocks: 0,
        })
    }

    /// Returns the cipher of this key.
    pub fn cipher(&self) -> DataCipher {
        self.cipher
    }

    /// Returns the replay state, for the highest packet id received.
    pub fn replay_window(&self) -> &ReplayWindow {
        &self.replay
    }

    /// Returns the number of packets that failed AEAD authentication with this key.
    pub fn failed_decryptions(&self) -> u64 {
        self.failed_decryptions
    }

    /// Returns the length of the shortest packet that can be valid, for a header of
    /// `header_len` bytes.
    pub fn min_packet_len(&self, header_len: usize) -> usize {
        let crypto = match self.opener {
            Opener::Aead(_) => PACKET_ID_LEN + AEAD_TAG_LEN,
            // The packet id and the padding need at least one block.
            Opener::Cbc(_) => self.hmac_len + CBC_BLOCK_LEN + CBC_BLOCK_LEN,
            Opener::Plain { .. } => self.hmac_len + PACKET_ID_LEN,
        };
        header_len + crypto
    }

    /// Reports whether this key should be replaced by a renegotiation, and why.
    pub fn renegotiation_needed(&self) -> Option<RenegotiationReason> {
        if self.failed_decryptions > FAILED_DECRYPTION_WARNING {
            return Some(RenegotiationReason::FailedDecryptions);
        }
        let limit = self.cipher.aead_usage_limit()?;
        let used = self.plaintext_blocks + u64::from(self.replay.highest());
        (used > limit).then_some(RenegotiationReason::AeadUsageLimit)
    }

    /// Authenticates and decrypts `packet` in place, checks its packet id, and returns the
    /// range of the payload within `packet`.
    ///
    /// `packet` is the whole data packet starting with its header of `header_len` bytes
    /// (1 for DATA_V1, 4 for DATA_V2). `now` drives the time limit of the replay window.
    /// On error the contents of `packet` are unspecified.
    pub fn decrypt(
        &mut self,
        packet: &mut [u8],
        header_len: usize,
        now: Instant,
    ) -> Result<Range<usize>, DataError> {
        check_header_len(header_len)?;
        let min = self.min_packet_len(header_len);
        if packet.len() < min {
            return Err(DataError::PacketTooShort {
                len: packet.len(),
                min,
            });
        }
        let (packet_id, payload) = match &self.opener {
            Opener::Aead(aead_key) => {
                if self.failed_decryptions > FAILED_DECRYPTION_LIMIT {
                    return Err(DataError::TooManyFailedDecryptions(self.failed_decryptions));
                }
                let opened = open_aead(aead_key, packet, header_len);
                if opened.is_err() {
                    self.failed_decryptions += 1;
                }
                opened?
            }
            Opener::Cbc(cbc) => {
                let iv_start = header_len + self.hmac_len;
                verify(cbc.hmac.as_deref(), packet, header_len, iv_start)?;
                open_cbc(&cbc.key, packet, iv_start + CBC_BLOCK_LEN)?
            }
            Opener::Plain { hmac } => {
                let id_start = header_len + self.hmac_len;
                verify(hmac.as_deref(), packet, header_len, id_start)?;
                let payload_start = id_start + PACKET_ID_LEN;
                (
                    read_packet_id(packet, id_start),
                    payload_start..packet.len(),
                )
            }
        };
        self.replay.accept(packet_id, now)?;
        if let Opener::Aead(_) = self.opener {
            self.plaintext_blocks += payload.len().div_ceil(CBC_BLOCK_LEN) as u64 + 1;
        }
        Ok(payload)
    }
}

/// Opens an AEAD packet in place and returns its packet id and payload range.
fn open_aead(
    aead_key: &AeadKey,
    packet: &mut [u8],
    header_len: usize,
) -> Result<(u32, Range<usize>), DataError> {
    let packet_len = packet.len();
    let id_start = header_len;
    let tag_start = id_start + PACKET_ID_LEN;
    let payload_start = tag_start + AEAD_TAG_LEN;
    let packet_id = read_packet_id(packet, id_start);
    let nonce = aead_key.nonce(packet_id.to_be_bytes());
    let (front, ciphertext) = packet.split_at_mut(payload_start);
    let aad = aead::Aad::from(&front[aead_aad_range(header_len)]);
    let tag = &front[tag_start..];
    aead_key
        .key
        .open_in_place_separate_tag(nonce, aad, tag, ciphertext)
        .map_err(|_| DataError::AuthenticationFailed)?;
    Ok((packet_id, payload_start..packet_len))
}

/// Decrypts an authenticated CBC packet in place and returns its packet id and payload
/// range. The IV is the block in front of `ciphertext_start`.
fn open_cbc(
    key: &cipher::DecryptingKey,
    packet: &mut [u8],
    ciphertext_start: usize,
) -> Result<(u32, Range<usize>), DataError> {
    let (front, ciphertext) = packet.split_at_mut(ciphertext_start);
    let ciphertext_len = ciphertext.len();
    if ciphertext_len == 0 || ciphertext_len % CBC_BLOCK_LEN != 0 {
        return Err(DataError::InvalidCiphertextLength(ciphertext_len));
    }
    let mut iv = [0; CBC_BLOCK_LEN];
    iv.copy_from_slice(&front[ciphertext_start - CBC_BLOCK_LEN..]);
    let context = cipher::DecryptionContext::Iv128(iv.into());
    let plaintext = key
        .decrypt(ciphertext, context)
        .map_err(|_| DataError::InvalidCiphertextLength(ciphertext_len))?;
    let unpadded_len = pkcs7_unpadded_len(plaintext).ok_or(DataError::InvalidPadding)?;
    if unpadded_len < PACKET_ID_LEN {
        return Err(DataError::InvalidPadding);
    }
    let packet_id = read_packet_id(plaintext, 0);
    let payload_start = ciphertext_start + PACKET_ID_LEN;
    Ok((packet_id, payload_start..ciphertext_start + unpadded_len))
}

/// Returns the length of `plaintext` without its PKCS#7 padding, or `None` if the
/// padding is invalid. It runs after the HMAC check, so its timing reveals nothing new.
fn pkcs7_unpadded_len(plaintext: &[u8]) -> Option<usize> {
    let &padding = plaintext.last()?;
    let padding = usize::from(padding);
    if padding == 0 || padding > CBC_BLOCK_LEN || padding > plaintext.len() {
        return None;
    }
    let unpadded_len = plaintext.len() - padding;
    plaintext[unpadded_len..]
        .iter()
        .all(|&byte| usize::from(byte) == padding)
        .then_some(unpadded_len)
}

/// Checks the HMAC field right after the header against `packet[signed_start..]`, in
/// constant time. Without an HMAC key there is nothing to check.
fn verify(
    hmac: Option<&hmac::Key>,
    packet: &[u8],
    header_len: usize,
    signed_start: usize,
) -> Result<(), DataError> {
    let Some(hmac) = hmac else {
        return Ok(());
    };
    let received = &packet[header_len..signed_start];
    hmac::verify(hmac, &packet[signed_start..], received)
        .map_err(|_| DataError::AuthenticationFailed)
}

fn read_packet_id(bytes: &[u8], start: usize) -> u32 {
    let mut id = [0; PACKET_ID_LEN];
    id.copy_from_slice(&bytes[start..start + PACKET_ID_LEN]);
    u32::from_be_bytes(id)
}

impl core::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decryptor")
            .field("cipher", &self.cipher)
            .field("hmac_len", &self.hmac_len)
            .field("highest_packet_id", &self.replay.highest())
            .field("failed_decryptions", &self.failed_decryptions)
            .finish_non_exhaustive()
    }
}
