//! Control-channel protection: none, tls-auth (HMAC with key direction) or tls-crypt
//! (AES-256-CTR with HMAC-SHA256).
//!
//! [`ControlWrap::wrap`] turns a control packet in the layout without protection (see
//! [`crate::proto::packet::ControlPacket`]) into its wire form, and [`ControlWrap::unwrap`]
//! turns a received wire packet back, after checking its authentication and replay id. Each
//! session owns one `ControlWrap`, because the replay id counter and the replay window belong
//! to a session. tls-crypt-v2 wraps a per-client key around tls-crypt and is not handled here.

mod replay;
mod static_key;
mod tls_auth;
mod tls_crypt;

use std::sync::Arc;

use aws_lc_rs::hmac;

pub use replay::{ReplayId, ReplayReason, ReplayWindow};
pub use static_key::{STATIC_KEY_LEN, StaticKey, StaticKeyError};
pub use tls_auth::{Digest, KeyDirection, TlsAuth};
pub use tls_crypt::{Role, TlsCrypt};

use crate::proto::packet::SESSION_ID_LEN;

/// Length of the op/key_id byte and the own session id, which every protection keeps in
/// front.
const HEADER_LEN: usize = 1 + SESSION_ID_LEN;

/// OpenVPN 2.6 clients with tls-crypt-v2 start their replay id counter here to announce early
/// negotiation, so their first packet has counter `0x0f000001` (`EARLY_NEG_START` in
/// `ssl_pkt.h`, set in `ssl.c`).
pub const EARLY_NEGOTIATION_START: u32 = 0x0f00_0000;

/// Errors from wrapping or unwrapping control packets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    #[error("packet of {len} bytes is too short for its protection, the minimum is {min}")]
    TooShort { len: usize, min: usize },
    #[error("control packet of {0} bytes is too short to wrap, the minimum is 9")]
    PlainTooShort(usize),
    #[error("{0} authentication failed (wrong key, key direction or digest, or a forged packet)")]
    AuthenticationFailed(&'static str),
    #[error("replay id {} at time {} rejected: {reason}", id.counter, id.time)]
    Replay { id: ReplayId, reason: ReplayReason },
    #[error("replay id counter exhausted within one second, renegotiate or wait")]
    ReplayIdExhausted,
    #[error("{0}")]
    Crypto(&'static str),
}

/// Description of a control-channel protection, from which each session builds its own
/// [`ControlWrap`].
#[derive(Debug, Clone)]
pub enum WrapConfig {
    None,
    TlsAuth {
        key: Arc<StaticKey>,
        digest: Digest,
        direction: KeyDirection,
    },
    TlsCrypt {
        key: Arc<StaticKey>,
        role: Role,
    },
}

impl WrapConfig {
    /// Creates the protection state for a new session.
    pub fn build(&self) -> Result<ControlWrap, WrapError> {
        let wrap = match self {
            WrapConfig::None => ControlWrap::None,
            WrapConfig::TlsAuth {
                key,
                digest,
                direction,
            } => ControlWrap::tls_auth(key, *digest, *direction),
            WrapConfig::TlsCrypt { key, role } => ControlWrap::tls_crypt(key, *role)?,
        };
        Ok(wrap)
    }
}

/// Protection state of one session. The variants are boxed because the precomputed HMAC
/// keys take a few kilobytes.
#[derive(Debug)]
pub enum ControlWrap {
    None,
    TlsAuth(Box<TlsAuth>),
    TlsCrypt(Box<TlsCrypt>),
}

impl ControlWrap {
    /// Creates tls-auth state for one session.
    pub fn tls_auth(key: &StaticKey, digest: Digest, direction: KeyDirection) -> ControlWrap {
        ControlWrap::TlsAuth(Box::new(TlsAuth::new(key, digest, direction)))
    }

    /// Creates tls-crypt state for one session.
    pub fn tls_crypt(key: &StaticKey, role: Role) -> Result<ControlWrap, WrapError> {
        Ok(ControlWrap::TlsCrypt(Box::new(TlsCrypt::new(key, role)?)))
    }

    /// Returns the bytes that the protection adds to a packet.
    pub fn overhead(&self) -> usize {
        match self {
            ControlWrap::None => 0,
            ControlWrap::TlsAuth(auth) => auth.overhead(),
            ControlWrap::TlsCrypt(crypt) => crypt.overhead(),
        }
    }

    /// Returns the overhead that OpenVPN reserves for the protection when it sizes control
    /// payloads, the `wrap_overhead` argument of
    /// [`crate::proto::reliable::max_control_payload`].
    pub fn mtu_overhead(&self) -> usize {
        match self {
            ControlWrap::TlsCrypt(crypt) => crypt.mtu_overhead(),
            other => other.overhead(),
        }
    }

    /// Sets the replay id counter of the last packet sent, so the next packet uses
    /// `counter + 1`. A client that announces early negotiation passes
    /// [`EARLY_NEGOTIATION_START`] before its first packet. Without protection it does
    /// nothing.
    pub fn set_send_counter(&mut self, counter: u32) {
        match self {
            ControlWrap::None => {}
            ControlWrap::TlsAuth(auth) => auth.set_send_counter(counter),
            ControlWrap::TlsCrypt(crypt) => crypt.set_send_counter(counter),
        }
    }

    /// Appends the wire form of `plain`, a control packet in the layout without protection,
    /// to `out`. `now_unix` is the wall clock time in seconds; the first call fixes the time
    /// field of the replay ids. On error nothing is appended.
    pub fn wrap(
        &mut self,
        plain: &[u8],
        now_unix: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), WrapError> {
        // Checked before a replay id is taken, so a failed call uses up none.
        if plain.len() < HEADER_LEN {
            return Err(WrapError::PlainTooShort(plain.len()));
        }
        let id = match self {
            ControlWrap::None => return copy_plain(plain, out),
            ControlWrap::TlsAuth(auth) => auth.next_replay_id(now_unix)?,
            ControlWrap::TlsCrypt(crypt) => crypt.next_replay_id(now_unix)?,
        };
        self.seal(plain, id, out)
    }

    /// Appends the wire form of `plain` with the replay id of a sender's first packet
    /// (counter 1, time `now_unix`) to `out`, as [`wrap`](ControlWrap::wrap) does on a new
    /// state, but leaves this state's counter alone. A server's stateless reply uses it, so
    /// one prepared state serves every reply. On error nothing is appended.
    pub fn wrap_first(
        &self,
        plain: &[u8],
        now_unix: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), WrapError> {
        let first = ReplayId {
            counter: 1,
            time: now_unix,
        };
        self.seal(plain, first, out)
    }

    fn seal(&self, plain: &[u8], id: ReplayId, out: &mut Vec<u8>) -> Result<(), WrapError> {
        match self {
            ControlWrap::None => copy_plain(plain, out),
            ControlWrap::TlsAuth(auth) => auth.seal(plain, id, out),
            ControlWrap::TlsCrypt(crypt) => crypt.seal(plain, id, out),
        }
    }

    /// Checks a received wire packet and appends it in the layout without protection to
    /// `out`. Returns the packet's replay id, `None` without protection.
    ///
    /// The replay id is checked against this session's window and recorded only after the
    /// packet is authenticated. On error `out` is left as it was.
    pub fn unwrap(
        &mut self,
        wire: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<ReplayId>, WrapError> {
        let start = out.len();
        let Some(id) = self.open(wire, out)? else {
            return Ok(None);
        };
        if let Err(error) = self.record_replay_id(id) {
            out.truncate(start);
            return Err(error);
        }
        Ok(Some(id))
    }

    /// Checks the replay id of a packet that [`open`](ControlWrap::open) authenticated
    /// against this session's window and records it, as [`unwrap`](ControlWrap::unwrap)
    /// does. Without protection it does nothing.
    pub fn record_replay_id(&mut self, id: ReplayId) -> Result<(), WrapError> {
        let window = match self {
            ControlWrap::None => return Ok(()),
            ControlWrap::TlsAuth(auth) => auth.replay_window(),
            ControlWrap::TlsCrypt(crypt) => crypt.replay_window(),
        };
        window
            .check_and_record(id)
            .map_err(|reason| WrapError::Replay { id, reason })
    }

    /// Authenticates (and for tls-crypt decrypts) a wire packet like
    /// [`unwrap`](ControlWrap::unwrap), but leaves the replay window alone. A server uses it
    /// to check a packet from an unknown peer before it creates any session state.
    pub fn open(&self, wire: &[u8], out: &mut Vec<u8>) -> Result<Option<ReplayId>, WrapError> {
        match self {
            ControlWrap::None => {
                if wire.len() < HEADER_LEN {
                    return Err(WrapError::TooShort {
                        len: wire.len(),
                        min: HEADER_LEN,
                    });
                }
                out.extend_from_slice(wire);
                Ok(None)
            }
            ControlWrap::TlsAuth(auth) => auth.open(wire, out).map(Some),
            ControlWrap::TlsCrypt(crypt) => crypt.open(wire, out).map(Some),
        }
    }
}

/// Appends a control packet that has no protection unchanged, after checking that it has
/// its header.
fn copy_plain(plain: &[u8], out: &mut Vec<u8>) -> Result<(), WrapError> {
    if plain.len() < HEADER_LEN {
        return Err(WrapError::PlainTooShort(plain.len()));
    }
    out.extend_from_slice(plain);
    Ok(())
}

/// Computes an HMAC over the concatenation of `parts`.
fn sign<const N: usize>(key: &hmac::Key, parts: [&[u8]; N]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    for part in parts {
        context.update(part);
    }
    context.sign()
}

#[cfg(test)]
mod tests;
