//! tls-crypt: authenticated encryption of every control packet.
//!
//! Wire layout (`tls_crypt_wrap` and `tls_crypt_unwrap` in OpenVPN's `tls_crypt.c`):
//!
//! ```text
//! op/key_id (1) | own session id (8) | replay id (8) | tag (32) | AES-256-CTR(rest of packet)
//! ```
//!
//! The tag is HMAC-SHA256 over the first 17 bytes and the plaintext rest; its first 16 bytes
//! are the CTR IV. Keys come from a static key file: the AES key is the first 32 bytes of a
//! set's cipher key and the HMAC key the first 32 bytes of its HMAC key. The server uses the
//! file in normal direction (sends with set 0), the client in inverse direction.

use std::fmt;

use aws_lc_rs::cipher::{
    AES_256, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::{constant_time, hmac};

use super::replay::{REPLAY_ID_LEN, ReplayId, ReplayIdSender, ReplayWindow};
use super::static_key::StaticKey;
use super::tls_auth::KeyDirection;
use super::{HEADER_LEN, WrapError, sign};

/// Length of the tls-crypt tag.
const TAG_LEN: usize = 32;
/// Length of the AES-256 key and of the HMAC-SHA256 key.
const KEY_LEN: usize = 32;
/// Length of the CTR IV taken from the tag.
const IV_LEN: usize = 16;
/// AES block length, which OpenVPN adds to the overhead although CTR adds no padding.
const BLOCK_LEN: usize = 16;

/// End of the connection that a [`TlsCrypt`] state belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Server,
    Client,
}

/// tls-crypt state of one session: keys, the replay id counter and the replay window.
pub struct TlsCrypt {
    send_cipher: EncryptingKey,
    send_hmac: hmac::Key,
    receive_cipher: DecryptingKey,
    receive_hmac: hmac::Key,
    sender: ReplayIdSender,
    replay: ReplayWindow,
}

impl TlsCrypt {
    /// Creates the state for one session.
    pub fn new(key: &StaticKey, role: Role) -> Result<TlsCrypt, WrapError> {
        let direction = match role {
            Role::Server => KeyDirection::Normal,
            Role::Client => KeyDirection::Inverse,
        };
        let (send_set, receive_set) = direction.key_sets();
        let cipher_key = |set| {
            UnboundCipherKey::new(&AES_256, &key.cipher_key(set)[..KEY_LEN])
                .map_err(|_| WrapError::Crypto("AES-256 key setup failed"))
        };
        let hmac_key = |set| hmac::Key::new(hmac::HMAC_SHA256, &key.hmac_key(set)[..KEY_LEN]);
        Ok(TlsCrypt {
            send_cipher: EncryptingKey::ctr(cipher_key(send_set)?)
                .map_err(|_| WrapError::Crypto("AES-256-CTR key setup failed"))?,
            send_hmac: hmac_key(send_set),
            receive_cipher: DecryptingKey::ctr(cipher_key(receive_set)?)
                .map_err(|_| WrapError::Crypto("AES-256-CTR key setup failed"))?,
            receive_hmac: hmac_key(receive_set),
            sender: ReplayIdSender::default(),
            replay: ReplayWindow::default(),
        })
    }

    /// Returns the bytes that tls-crypt adds to a packet.
    pub fn overhead(&self) -> usize {
        REPLAY_ID_LEN + TAG_LEN
    }

    /// Returns the overhead that OpenVPN reserves when it sizes control payloads
    /// (`tls_crypt_buf_overhead`), one AES block more than [`TlsCrypt::overhead`].
    pub fn mtu_overhead(&self) -> usize {
        REPLAY_ID_LEN + TAG_LEN + BLOCK_LEN
    }

    pub(super) fn set_send_counter(&mut self, counter: u32) {
        self.sender.set_counter(counter);
    }

    /// Returns the replay id of the next packet sent.
    pub(super) fn next_replay_id(&mut self, now_unix: u32) -> Result<ReplayId, WrapError> {
        self.sender
            .next(now_unix)
            .ok_or(WrapError::ReplayIdExhausted)
    }

    /// Appends the wire form of `plain` with replay id `id` to `out`. On error nothing is
    /// appended.
    pub(super) fn seal(
        &self,
        plain: &[u8],
        id: ReplayId,
        out: &mut Vec<u8>,
    ) -> Result<(), WrapError> {
        let Some((header, rest)) = plain.split_at_checked(HEADER_LEN) else {
            return Err(WrapError::PlainTooShort(plain.len()));
        };
        let id_bytes = id.to_bytes();
        let tag = sign(&self.send_hmac, [header, &id_bytes[..], rest]);
        let iv = iv_from_tag(tag.as_ref());

        let start = out.len();
        out.reserve(plain.len() + self.overhead());
        out.extend_from_slice(header);
        out.extend_from_slice(&id_bytes);
        out.extend_from_slice(tag.as_ref());
        let ciphertext_start = out.len();
        out.extend_from_slice(rest);
        let context = EncryptionContext::Iv128(FixedLength::from(iv));
        if self
            .send_cipher
            .less_safe_encrypt(&mut out[ciphertext_start..], context)
            .is_err()
        {
            out.truncate(start);
            return Err(WrapError::Crypto("AES-256-CTR encryption failed"));
        }
        Ok(())
    }

    /// Decrypts and authenticates `wire` and appends the packet without protection to `out`.
    /// Does not check or record the replay id. On error `out` is left as it was.
    pub(super) fn open(&self, wire: &[u8], out: &mut Vec<u8>) -> Result<ReplayId, WrapError> {
        let min = HEADER_LEN + REPLAY_ID_LEN + TAG_LEN;
        if wire.len() < min {
            return Err(WrapError::TooShort {
                len: wire.len(),
                min,
            });
        }
        let (authenticated, rest) = wire.split_at(HEADER_LEN + REPLAY_ID_LEN);
        let (tag, ciphertext) = rest.split_at(TAG_LEN);

        let start = out.len();
        out.extend_from_slice(&authenticated[..HEADER_LEN]);
        let plaintext_start = out.len();
        out.extend_from_slice(ciphertext);
        let context = DecryptionContext::Iv128(FixedLength::from(iv_from_tag(tag)));
        if self
            .receive_cipher
            .decrypt(&mut out[plaintext_start..], context)
            .is_err()
        {
            out.truncate(start);
            return Err(WrapError::Crypto("AES-256-CTR decryption failed"));
        }

        let expected = sign(&self.receive_hmac, [authenticated, &out[plaintext_start..]]);
        if constant_time::verify_slices_are_equal(expected.as_ref(), tag).is_err() {
            out.truncate(start);
            return Err(WrapError::AuthenticationFailed("tls-crypt"));
        }

        let mut id = [0; REPLAY_ID_LEN];
        id.copy_from_slice(&authenticated[HEADER_LEN..]);
        Ok(ReplayId::from_bytes(&id))
    }

    pub(super) fn replay_window(&mut self) -> &mut ReplayWindow {
        &mut self.replay
    }
}

impl fmt::Debug for TlsCrypt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCrypt").finish_non_exhaustive()
    }
}

fn iv_from_tag(tag: &[u8]) -> [u8; IV_LEN] {
    let mut iv = [0; IV_LEN];
    iv.copy_from_slice(&tag[..IV_LEN]);
    iv
}
