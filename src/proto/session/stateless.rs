//! The stateless start of a UDP session (see [`crate::proto::cookie`]): a reply to a hard
//! reset without state, and the session created from the packet that proves the client
//! received that reply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::proto::cookie::{CookieKey, time_slot};
use crate::proto::packet::{AckList, ControlPacket, KeyId, Opcode};

use super::{Session, SessionConfig, SessionError, Start};

impl Session {
    /// Replies to a client's HARD_RESET_CLIENT_V2 with HARD_RESET_SERVER_V2 whose session id
    /// is the cookie, and keeps no state. The reply is one packet of 26 bytes plus the
    /// control-channel protection, as OpenVPN 2.6 sends.
    pub fn stateless_reply(
        config: &SessionConfig,
        key: &CookieKey,
        packet: &[u8],
        client: SocketAddr,
        unix_time: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), SessionError> {
        let mut wrap = config.wrap.build()?;
        let mut plain = Vec::with_capacity(packet.len());
        // `open` checks the protection without the replay window: each reset is judged alone.
        wrap.open(packet, &mut plain)?;
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
        let slot = time_slot(unix_time, config.hand_window);
        let own = key.session_id(slot, client, &reset.session_id);
        let mut acks = AckList::new();
        acks.push(0);
        let reply = ControlPacket {
            opcode: Opcode::HardResetServerV2,
            key_id: KeyId::ZERO,
            session_id: own,
            acks,
            peer_session_id: Some(reset.session_id),
            message_id: Some(0),
            payload: &[],
        };
        plain.clear();
        reply
            .encode(&mut plain)
            .map_err(|error| SessionError::BadFirstPacket(error.to_string()))?;
        out.clear();
        wrap.wrap(&plain, unix_time as u32, out)?;
        Ok(())
    }

    /// Creates a session from a CONTROL_V1 or ACK_V1 packet that echoes the cookie of an
    /// earlier [`Session::stateless_reply`] to the same address.
    pub fn from_cookie(
        config: Arc<SessionConfig>,
        key: &CookieKey,
        packet: &[u8],
        client: SocketAddr,
        peer_id: u32,
        now: Instant,
        unix_time: u64,
    ) -> Result<Self, SessionError> {
        let mut wrap = config.wrap.build()?;
        let mut plain = Vec::with_capacity(packet.len());
        wrap.unwrap(packet, &mut plain)?;
        let parsed = ControlPacket::parse(&plain)
            .map_err(|error| SessionError::BadFirstPacket(error.to_string()))?;
        let proves_reply = matches!(parsed.opcode, Opcode::ControlV1 | Opcode::AckV1)
            && parsed.key_id == KeyId::ZERO;
        let echoed = parsed.peer_session_id.filter(|echoed| {
            key.verify(
                unix_time,
                config.hand_window,
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
