//! tls-auth: an HMAC over every control packet.
//!
//! Wire layout (`swap_hmac` and `tls_wrap_control` in OpenVPN's `ssl_pkt.c`):
//!
//! ```text
//! op/key_id (1) | own session id (8) | HMAC (digest length) | replay id (8) | rest of packet
//! ```
//!
//! The HMAC covers `replay id | op/key_id | own session id | rest of packet`, i.e. the packet
//! without the HMAC field and with the replay id moved to the front.

use std::fmt;

use aws_lc_rs::{constant_time, hmac};

use super::replay::{REPLAY_ID_LEN, ReplayId, ReplayIdSender, ReplayWindow};
use super::static_key::{KeySet, StaticKey};
use super::{HEADER_LEN, WrapError, sign};

/// HMAC digest of tls-auth, OpenVPN's `--auth` option (SHA1 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digest {
    Sha1,
    Sha256,
    Sha512,
}

impl Digest {
    /// Returns the digest for an `--auth` value such as `SHA256`, ignoring case.
    pub fn from_name(name: &str) -> Option<Digest> {
        let digest = match name.to_ascii_uppercase().as_str() {
            "SHA1" => Digest::Sha1,
            "SHA256" => Digest::Sha256,
            "SHA512" => Digest::Sha512,
            _ => return None,
        };
        Some(digest)
    }

    /// Returns the HMAC length in bytes, which is also the length of the HMAC key that
    /// OpenVPN takes from the 64-byte key slot.
    pub fn output_len(self) -> usize {
        match self {
            Digest::Sha1 => 20,
            Digest::Sha256 => 32,
            Digest::Sha512 => 64,
        }
    }

    fn algorithm(self) -> hmac::Algorithm {
        match self {
            Digest::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Digest::Sha256 => hmac::HMAC_SHA256,
            Digest::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// Assignment of the static key's two sets to sending and receiving (OpenVPN's
/// `key-direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyDirection {
    /// No `key-direction`: both sides send and receive with set 0.
    Bidirectional,
    /// `key-direction 0`: send with set 0, receive with set 1. Usual on servers.
    Normal,
    /// `key-direction 1`: send with set 1, receive with set 0. Usual on clients.
    Inverse,
}

impl KeyDirection {
    /// Returns the sets used for sending and for receiving (`key_direction_state_init` in
    /// OpenVPN's `crypto.c`).
    pub(crate) fn key_sets(self) -> (KeySet, KeySet) {
        match self {
            KeyDirection::Bidirectional => (KeySet::First, KeySet::First),
            KeyDirection::Normal => (KeySet::First, KeySet::Second),
            KeyDirection::Inverse => (KeySet::Second, KeySet::First),
        }
    }
}

/// tls-auth state of one session: keys, the replay id counter and the replay window.
pub struct TlsAuth {
    digest: Digest,
    send_key: hmac::Key,
    receive_key: hmac::Key,
    sender: ReplayIdSender,
    replay: ReplayWindow,
}

impl TlsAuth {
    /// Creates the state for one session.
    pub fn new(key: &StaticKey, digest: Digest, direction: KeyDirection) -> TlsAuth {
        let (send_set, receive_set) = direction.key_sets();
        let algorithm = digest.algorithm();
        TlsAuth {
            digest,
            send_key: hmac::Key::new(algorithm, &key.hmac_key(send_set)[..digest.output_len()]),
            receive_key: hmac::Key::new(
                algorithm,
                &key.hmac_key(receive_set)[..digest.output_len()],
            ),
            sender: ReplayIdSender::default(),
            replay: ReplayWindow::default(),
        }
    }

    /// Returns the bytes that tls-auth adds to a packet.
    pub fn overhead(&self) -> usize {
        self.digest.output_len() + REPLAY_ID_LEN
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

    /// Appends the wire form of `plain` with replay id `id` to `out`.
    pub(super) fn seal(
        &self,
        plain: &[u8],
        id: ReplayId,
        out: &mut Vec<u8>,
    ) -> Result<(), WrapError> {
        let (header, rest) = split_header(plain)?;
        let id_bytes = id.to_bytes();
        let tag = sign(&self.send_key, [&id_bytes[..], header, rest]);

        out.reserve(plain.len() + self.overhead());
        out.extend_from_slice(header);
        out.extend_from_slice(tag.as_ref());
        out.extend_from_slice(&id_bytes);
        out.extend_from_slice(rest);
        Ok(())
    }

    /// Authenticates `wire` and appends the packet without protection to `out`. Does not check
    /// or record the replay id.
    pub(super) fn open(&self, wire: &[u8], out: &mut Vec<u8>) -> Result<ReplayId, WrapError> {
        let tag_len = self.digest.output_len();
        let min = HEADER_LEN + tag_len + REPLAY_ID_LEN;
        if wire.len() < min {
            return Err(WrapError::TooShort {
                len: wire.len(),
                min,
            });
        }
        let (header, rest) = wire.split_at(HEADER_LEN);
        let (tag, rest) = rest.split_at(tag_len);
        let (id_bytes, rest) = rest.split_at(REPLAY_ID_LEN);

        let expected = sign(&self.receive_key, [id_bytes, header, rest]);
        constant_time::verify_slices_are_equal(expected.as_ref(), tag)
            .map_err(|_| WrapError::AuthenticationFailed("tls-auth"))?;

        let mut id = [0; REPLAY_ID_LEN];
        id.copy_from_slice(id_bytes);
        out.extend_from_slice(header);
        out.extend_from_slice(rest);
        Ok(ReplayId::from_bytes(&id))
    }

    pub(super) fn replay_window(&mut self) -> &mut ReplayWindow {
        &mut self.replay
    }
}

impl fmt::Debug for TlsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAuth")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

fn split_header(plain: &[u8]) -> Result<(&[u8], &[u8]), WrapError> {
    plain
        .split_at_checked(HEADER_LEN)
        .ok_or(WrapError::PlainTooShort(plain.len()))
}
