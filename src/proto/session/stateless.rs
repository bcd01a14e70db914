//! The stateless start of a UDP session (see [`crate::proto::cookie`]): a reply to a hard
//! reset without state, and the session created from the packet that proves the client
//! received that reply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto::cookie::{CookieKey, time_slot};
use crate::proto::packet::{AckList, ControlPacket, KeyId, Opcode, SessionId};
use crate::proto::wrap::ControlWrap;

use super::{Session, SessionConfig, SessionError, Start};

/// The server side of the stateless handshake of one SSL server: its cookie key and its
/// control-channel protection, prepared once. A packet from a peer without a session is
/// then checked without any key setup of its own.
pub struct StatelessHandshake {
    key: CookieKey,
    /// Used only through [`ControlWrap::open`] and [`ControlWrap::wrap_first`], which leave
    /// its replay state alone, so every packet is judged on its own.
    wrap: ControlWrap,
    hand_window: Duration,
}

impl std::fmt::Debug for StatelessHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatelessHandshake")
            .field("hand_window", &self.hand_window)
            .finish_non_exhaustive()
    }
}

impl StatelessHandshake {
    /// Prepares the protection of `config`. A server prepares it again whenever its
    /// `SessionConfig` changes, so a new key applies to the next packet.
    pub fn new(key: CookieKey, config: &SessionConfig) -> Result<Self, SessionError> {
        Ok(Self {
            key,
            wrap: config.wrap.build()?,
            hand_window: config.hand_window,
        })
    }

    pub fn key(&self) -> &CookieKey {
        &self.key
    }

    /// Checks the protection and the header of a client's HARD_RESET_CLIENT_V2 and returns
    /// the client's session id. Keeps no state.
    pub fn check_hard_reset(&self, packet: &[u8]) -> Result<SessionId, SessionError> {
        let mut plain = Vec::with_capacity(packet.len());
        self.wrap.open(packet, &mut plain)?;
        let reset = ControlPacket::parse(&plain)
            .map_err(|error| SessionError::BadFirstPacket(error.to_string()))?;
        if reset.opcode != Opcode::HardResetClientV2
            || reset.key_id != KeyId::ZERO
            || reset.message_id != Some(0)
        {
            return Err(SessionError::BadFirstPacket(format!(
                "opcode {:?} with key id {} and message id {:?}",
                reset.opcode,
                reset.key_id.get(),
                reset.message_id
            )));
        }
        Ok(reset.session_id)
    }

    /// Writes the reply to a hard reset that [`StatelessHandshake::check_hard_reset`]
    /// accepted to `out`: HARD_RESET_SERVER_V2 whose session id is the cookie. The reply is
    /// one packet of 26 bytes plus the control-channel protection, as OpenVPN 2.6 sends.
    pub fn reply(
        &self,
        client_session: SessionId,
        client: SocketAddr,
        unix_time: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), SessionError> {
        let slot = time_slot(unix_time, self.hand_window);
        let own = self.key.session_id(slot, client, &client_session);
        let mut acks = AckList::new();
        acks.push(0);
        let reply = ControlPacket {
            opcode: Opcode::HardResetServerV2,
            key_id: KeyId::ZERO,
            session_id: own,
            acks,
            peer_session_id: Some(client_session),
            message_id: Some(0),
            payload: &[],
        };
        let mut plain = Vec::with_capacity(64);
        reply
            .encode(&mut plain)
            .map_err(|error| SessionError::BadFirstPacket(error.to_string()))?;
        out.clear();
        self.wrap.wrap_first(&plain, unix_time as u32, out)?;
        Ok(())
    }
}

impl Session {
    /// Creates a session from a CONTROL_V1 or ACK_V1 packet that echoes the cookie of an
    /// earlier [`StatelessHandshake::reply`] to the same address.
    ///
    /// The packet's protection is checked with the prepared `handshake` first, so a packet
    /// without a valid wrapping or cookie costs no key setup.
    pub fn from_cookie(
        config: Arc<SessionConfig>,
        handshake: &StatelessHandshake,
        packet: &[u8],
        client: SocketAddr,
        peer_id: u32,
        now: Instant,
        unix_time: u64,
    ) -> Result<Self, SessionError> {
        let mut plain = Vec::with_capacity(packet.len());
        let replay_id = handshake.wrap.open(packet, &mut plain)?;
        let parsed = ControlPacket::parse(&plain)
            .map_err(|error| SessionError::BadFirstPacket(error.to_string()))?;
        let proves_reply = matches!(parsed.opcode, Opcode::ControlV1 | Opcode::AckV1)
            && parsed.key_id == KeyId::ZERO;
        let echoed = parsed.peer_session_id.filter(|echoed| {
            handshake.key.verify(
                unix_time,
                handshake.hand_window,
                client,
                &parsed.session_id,
                echoed,
            )
        });
        let Some(own) = echoed.filter(|_| proves_reply) else {
            return Err(SessionError::BadFirstPacket(
                "packet does not echo a valid server session id".to_owned(),
            ));
        };
        let mut wrap = config.wrap.build()?;
        if let Some(id) = replay_id {
            wrap.record_replay_id(id)?;
        }
        // The stateless reply used the first replay id of the protection.
        wrap.set_send_counter(1);
        let start = Start {
            own_session_id: own,
            peer_session_id: parsed.session_id,
            first_message_id: 1,
        };
        let mut session = Self::build(config, wrap, start, peer_id, now, unix_time)?;
        session.handle_control(&plain, now);
        Ok(session)
    }
}
