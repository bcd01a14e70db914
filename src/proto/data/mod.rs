//! The OpenVPN data channel: packet encryption (AEAD, CBC with HMAC, none), replay
//! protection, compression framing, and the ping and OCC payloads.
//!
//! # Packet path and buffers
//!
//! Outbound, a payload read from the TUN device sits in a buffer with headroom in front.
//! [`Compression::frame`] adds the compression framing in place, writing up to
//! [`COMPRESSION_HEADROOM`] bytes before the payload and [`COMPRESSION_TAILROOM`] after it.
//! Then [`Encryptor::encrypt_in_place`] encrypts it and writes header, packet id, tag or
//! HMAC and IV in front, up to [`MAX_HEADROOM`] bytes before and [`MAX_TAILROOM`] after.
//! A buffer with `COMPRESSION_HEADROOM + MAX_HEADROOM` bytes before the payload and
//! `COMPRESSION_TAILROOM + MAX_TAILROOM` after it fits every configuration.
//!
//! Inbound, [`Decryptor::decrypt`] works in place on the received packet and returns the
//! plaintext range; [`Compression::unframe`] removes the framing in place or decompresses
//! into a caller-supplied buffer whose length bounds the output; [`Payload::classify`]
//! tells IP packets from pings and OCC messages.
//!
//! Keys are prepared once in [`DataKeys::new`]; encryption and decryption do not
//! allocate and take no locks.

mod cipher;
mod compress;
mod decrypt;
mod encrypt;
mod error;
mod keys;
mod payload;
mod replay;

pub use cipher::{AuthDigest, DataCipher, UnsupportedAlgorithm};
pub use compress::{
    COMPRESSION_HEADROOM, COMPRESSION_TAILROOM, CompressError, CompressWorkspace, Compression,
    CompressionFraming, Unframed,
};
pub use decrypt::Decryptor;
pub use encrypt::{Encryptor, MAX_HEADROOM, MAX_TAILROOM};
pub use error::DataError;
pub use keys::{DataKeys, KEY_BLOCK_LEN, RenegotiationReason, Role};
pub use payload::{OCC_MAGIC, OccOp, PING_PAYLOAD, Payload, write_occ};
pub use replay::{
    DEFAULT_REPLAY_TIME, DEFAULT_REPLAY_WINDOW, MAX_REPLAY_TIME, MAX_REPLAY_WINDOW, ReplayError,
    ReplayProtection, ReplayWindow,
};

#[cfg(test)]
mod tests;
