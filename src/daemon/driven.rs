//! The session operations the daemon calls, as a trait, so that the session table can be tested
//! with a scripted session in place of the protocol core.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::proto::keymethod::Secret;
use crate::proto::packet::{SESSION_ID_LEN, SessionId};
use crate::proto::session::{
    Authorization, CloseKind, Event, Incoming, Session, SessionConfig, SessionError,
    StatelessHandshake,
};

/// A per-client protocol session as the daemon drives it. [`Session`] is the real one.
pub(crate) trait DrivenSession: Sized + Send {
    fn create(
        config: Arc<SessionConfig>,
        first_packet: &[u8],
        peer_id: u32,
        now: Instant,
        unix_time: u64,
    ) -> Result<Self, SessionError>;
    /// Checks a hard reset from a peer without a session with the server's prepared
    /// protection and returns the client's session id (see
    /// [`StatelessHandshake::check_hard_reset`]).
    fn check_hard_reset(
        handshake: &StatelessHandshake,
        packet: &[u8],
    ) -> Result<SessionId, SessionError>;
    /// Writes the stateless reply to a checked hard reset (see [`StatelessHandshake::reply`]).
    fn stateless_reply(
        handshake: &StatelessHandshake,
        client_session: SessionId,
        client: SocketAddr,
        unix_time: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), SessionError>;
    /// Creates a session from a packet that echoes a stateless reply's cookie.
    fn create_from_cookie(
        config: Arc<SessionConfig>,
        handshake: &StatelessHandshake,
        packet: &[u8],
        client: SocketAddr,
        peer_id: u32,
        now: Instant,
        unix_time: u64,
    ) -> Result<Self, SessionError>;
    /// Returns the session id the client chose, if the session has one.
    fn peer_session_id(&self) -> Option<[u8; SESSION_ID_LEN]> {
        None
    }
    fn handle_packet(&mut self, packet: &mut [u8], now: Instant) -> Incoming<'_>;
    fn encrypt(&mut self, ip_packet: &[u8], out: &mut Vec<u8>, now: Instant) -> bool;
    fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool;
    fn poll_event(&mut self) -> Option<Event>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    fn authorize(&mut self, decision: Authorization, now: Instant);
    fn set_auth_token(&mut self, token: Secret);
    fn close(&mut self, kind: CloseKind, now: Instant);
    fn is_closed(&self) -> bool;
}

impl DrivenSession for Session {
    fn create(
        config: Arc<SessionConfig>,
        first_packet: &[u8],
        peer_id: u32,
        now: Instant,
        unix_time: u64,
    ) -> Result<Self, SessionError> {
        Session::new(config, first_packet, peer_id, now, unix_time)
    }

    fn check_hard_reset(
        handshake: &StatelessHandshake,
        packet: &[u8],
    ) -> Result<SessionId, SessionError> {
        handshake.check_hard_reset(packet)
    }

    fn stateless_reply(
        handshake: &StatelessHandshake,
        client_session: SessionId,
        client: SocketAddr,
        unix_time: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), SessionError> {
        handshake.reply(client_session, client, unix_time, out)
    }

    fn create_from_cookie(
        config: Arc<SessionConfig>,
        handshake: &StatelessHandshake,
        packet: &[u8],
        client: SocketAddr,
        peer_id: u32,
        now: Instant,
        unix_time: u64,
    ) -> Result<Self, SessionError> {
        Session::from_cookie(config, handshake, packet, client, peer_id, now, unix_time)
    }

    fn peer_session_id(&self) -> Option<[u8; SESSION_ID_LEN]> {
        Some(*Session::peer_session_id(self).as_bytes())
    }

    fn handle_packet(&mut self, packet: &mut [u8], now: Instant) -> Incoming<'_> {
        Session::handle_packet(self, packet, now)
    }

    fn encrypt(&mut self, ip_packet: &[u8], out: &mut Vec<u8>, now: Instant) -> bool {
        Session::encrypt(self, ip_packet, out, now)
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        Session::poll_transmit(self, now, out)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Session::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Session::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Session::handle_timeout(self, now)
    }

    fn authorize(&mut self, decision: Authorization, now: Instant) {
        Session::authorize(self, decision, now)
    }

    fn set_auth_token(&mut self, token: Secret) {
        Session::set_auth_token(self, token)
    }

    fn close(&mut self, kind: CloseKind, now: Instant) {
        Session::close(self, kind, now)
    }

    fn is_closed(&self) -> bool {
        Session::is_closed(self)
    }
}
