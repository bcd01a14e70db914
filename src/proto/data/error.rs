//! Errors of data packet encryption and decryption.

use super::replay::ReplayError;

/// A data packet that could not be encrypted or decrypted.
///
/// [`DataError::AuthenticationFailed`], [`DataError::Replay`] and the length errors come
/// from the peer's packets (or from forged packets); the caller drops such a packet and
/// counts it. [`DataError::InsufficientHeadroom`], [`DataError::InsufficientTailroom`],
/// [`DataError::InvalidPayloadRange`] and [`DataError::InvalidHeaderLength`] are local
/// misuse of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("data packet header of {0} bytes is invalid, expected 1 (DATA_V1) or 4 (DATA_V2)")]
    InvalidHeaderLength(usize),
    #[error("data packet of {len} bytes is shorter than the minimum of {min} bytes")]
    PacketTooShort { len: usize, min: usize },
    #[error("CBC ciphertext of {0} bytes is not a positive multiple of the 16-byte block")]
    InvalidCiphertextLength(usize),
    #[error("data packet authentication failed")]
    AuthenticationFailed,
    #[error("data packet has invalid CBC padding")]
    InvalidPadding,
    #[error("data packet rejected by replay protection: {0}")]
    Replay(#[from] ReplayError),
    #[error("the packet id space of this key is exhausted, the key must be renegotiated")]
    PacketIdExhausted,
    #[error("{0} failed decryptions with this key, the key must be renegotiated")]
    TooManyFailedDecryptions(u64),
    #[error("buffer has {available} bytes of headroom before the payload, {needed} needed")]
    InsufficientHeadroom { needed: usize, available: usize },
    #[error("buffer has {available} bytes of tailroom after the payload, {needed} needed")]
    InsufficientTailroom { needed: usize, available: usize },
    #[error("payload range {start}..{end} does not fit a buffer of {len} bytes")]
    InvalidPayloadRange {
        start: usize,
        end: usize,
        len: usize,
    },
    #[error("{cipher} key setup failed")]
    KeySetup { cipher: &'static str },
    #[error("{cipher} encryption failed")]
    EncryptionFailed { cipher: &'static str },
}
