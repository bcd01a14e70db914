//! The stateless start of UDP sessions: unknown addresses get a cookie reply to their hard
//! reset, at a limited rate, and a session only once they echo the cookie.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{DrivenSession, Io, Sessions, unix_time};
use crate::proto::session::StatelessHandshake;

/// Stateless replies the server sends per window, across all sources and per source address.
/// A spoofed flood thus earns at most this many small replies, while a real client, which
/// repeats its hard reset every 2 seconds, soon gets through.
const REPLIES_PER_WINDOW: u32 = 200;
const REPLIES_PER_SOURCE: u32 = 8;
const WINDOW: Duration = Duration::from_secs(10);
/// Sources the per-source limit tracks; when more send within one window, the table is
/// cleared, so its memory stays bounded.
const MAX_TRACKED_SOURCES: usize = 4096;

/// Limits replies to unknown peers, globally and per source address.
#[derive(Debug)]
pub(crate) struct ReplyLimiter {
    window_start: Option<Instant>,
    replies: u32,
    per_source: HashMap<IpAddr, u32>,
}

impl ReplyLimiter {
    pub(crate) fn new() -> Self {
        Self {
            window_start: None,
            replies: 0,
            per_source: HashMap::new(),
        }
    }

    /// Counts a reply to `source` and returns whether it may be sent.
    pub(crate) fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= WINDOW);
        if expired {
            self.window_start = Some(now);
            self.replies = 0;
            self.per_source.clear();
        }
        if self.replies >= REPLIES_PER_WINDOW {
            return false;
        }
        if self.per_source.len() >= MAX_TRACKED_SOURCES && !self.per_source.contains_key(&source) {
            self.per_source.clear();
        }
        let count = self.per_source.entry(source).or_default();
        if *count >= REPLIES_PER_SOURCE {
            return false;
        }
        *count += 1;
        self.replies += 1;
        true
    }
}

impl<S: DrivenSession> Sessions<S> {
    /// Handles a packet that belongs to no session of its UDP address on a server with a
    /// cookie key: replies to a hard reset statelessly, or starts the session from a packet
    /// that echoes the cookie.
    pub(super) fn receive_unknown(
        &mut self,
        io: &mut impl Io,
        remote: SocketAddr,
        local: Option<IpAddr>,
        packet: &[u8],
        now: Instant,
    ) {
        let Some(handshake) = self.stateless.clone() else {
            return;
        };
        let first = packet.first().map(|byte| byte >> 3);
        if first == Some(super::OPCODE_HARD_RESET_CLIENT_V2) {
            self.answer_hard_reset(io, &handshake, remote, local, packet, now);
        } else {
            self.start_from_cookie(io, &handshake, remote, local, packet, now);
        }
    }

    /// Checks a hard reset's protection, then the reply rate limit, and only then builds the
    /// reply. So packets without a valid wrapping never use up the limit, and a reset over
    /// the limit costs no cookie.
    // NOTE: without tls-crypt, a hard reset forged from a connected client's address gets a
    // reply at that address, and openvpn 2.6.3 then negotiates a new session. The
    // tunnel keeps working, but each forged reset within the rate limit costs a handshake.
    fn answer_hard_reset(
        &mut self,
        io: &mut impl Io,
        handshake: &StatelessHandshake,
        remote: SocketAddr,
        local: Option<IpAddr>,
        packet: &[u8],
        now: Instant,
    ) {
        let Ok(client_session) = S::check_hard_reset(handshake, packet) else {
            self.ignore(remote, "malformed or unauthenticated hard reset");
            return;
        };
        if !self.reply_limiter.allow(remote.ip(), now) {
            self.ignore(remote, "stateless reply rate limit");
            return;
        }
        let mut reply = std::mem::take(&mut self.buffer);
        let built = S::stateless_reply(handshake, client_session, remote, unix_time(), &mut reply);
        if built.is_ok() {
            let link = self.new_udp_link(remote, local);
            io.send(link, &reply);
        } else {
            self.ignore(remote, "building the stateless reply failed");
        }
        self.buffer = reply;
    }

    fn start_from_cookie(
        &mut self,
        io: &mut impl Io,
        handshake: &StatelessHandshake,
        remote: SocketAddr,
        local: Option<IpAddr>,
        packet: &[u8],
        now: Instant,
    ) {
        if !self.handshake_allowed(remote) {
            self.ignore(remote, "too many handshakes in progress");
            return;
        }
        let Some(peer_id) = self.peer_id_for(remote) else {
            self.ignore(remote, "no free peer-id");
            return;
        };
        let config = self.config.clone();
        let created =
            S::create_from_cookie(config, handshake, packet, remote, peer_id, now, unix_time());
        let Ok(session) = created else {
            self.ignore(remote, "no valid cookie");
            return;
        };
        let link = self.new_udp_link(remote, local);
        self.register(io, link, session, peer_id, now);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{
        FakeSession, REPLIES_BUILT, RecordingIo, cookie_echo, hard_reset, remote, stateless_table,
    };
    use super::*;
    use crate::daemon::admission::Admission;

    fn source(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn limiter_caps_each_source() {
        let mut limiter = ReplyLimiter::new();
        let now = Instant::now();
        for _ in 0..REPLIES_PER_SOURCE {
            assert!(limiter.allow(source(1), now));
        }
        assert!(!limiter.allow(source(1), now));
        assert!(limiter.allow(source(2), now));
    }

    #[test]
    fn limiter_caps_all_sources_together() {
        let mut limiter = ReplyLimiter::new();
        let now = Instant::now();
        let mut allowed = 0;
        for port in 0..1000u32 {
            let address = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + port));
            allowed += u32::from(limiter.allow(address, now));
        }
        assert_eq!(allowed, REPLIES_PER_WINDOW);
    }

    #[test]
    fn limiter_resets_after_window() {
        let mut limiter = ReplyLimiter::new();
        let now = Instant::now();
        for _ in 0..REPLIES_PER_SOURCE {
            limiter.allow(source(1), now);
        }
        assert!(!limiter.allow(source(1), now + WINDOW / 2));
        assert!(limiter.allow(source(1), now + WINDOW));
    }

    #[test]
    fn limiter_memory_is_bounded() {
        let mut limiter = ReplyLimiter::new();
        let now = Instant::now();
        for n in 0..20_000u32 {
            limiter.allow(IpAddr::from(std::net::Ipv4Addr::from(n)), now);
        }
        assert!(limiter.per_source.len() <= MAX_TRACKED_SOURCES);
    }

    /// Sends `count` copies of `packet` from `from` and returns the stateless replies built.
    fn send(
        sessions: &mut Sessions<FakeSession>,
        io: &mut RecordingIo,
        from: SocketAddr,
        packet: &[u8],
        count: u32,
    ) -> u32 {
        let built = REPLIES_BUILT.get();
        let now = Instant::now();
        for _ in 0..count {
            sessions.receive_datagram(io, from, None, &mut packet.to_vec(), now);
        }
        REPLIES_BUILT.get() - built
    }

    #[test]
    fn rate_limited_reset_builds_no_reply() {
        let mut sessions = stateless_table(&Admission::new(10));
        let mut io = RecordingIo::default();
        let built = send(&mut sessions, &mut io, remote(1000), &hard_reset(1), 20);
        assert_eq!(built, REPLIES_PER_SOURCE);
        assert_eq!(io.sent.len(), REPLIES_PER_SOURCE as usize);
        assert_eq!(
            sessions.counters.ignored,
            u64::from(20 - REPLIES_PER_SOURCE)
        );
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn unwrapped_reset_does_not_use_limit() {
        let mut sessions = stateless_table(&Admission::new(10));
        let mut io = RecordingIo::default();
        let forged = hard_reset(b'?');
        let built = send(
            &mut sessions,
            &mut io,
            remote(1000),
            &forged,
            4 * REPLIES_PER_SOURCE,
        );
        assert_eq!(built, 0);
        assert!(io.sent.is_empty());
        assert_eq!(sessions.counters.ignored, u64::from(4 * REPLIES_PER_SOURCE));

        let valid = hard_reset(1);
        let built = send(
            &mut sessions,
            &mut io,
            remote(1000),
            &valid,
            REPLIES_PER_SOURCE,
        );
        assert_eq!(built, REPLIES_PER_SOURCE, "forged resets used up the limit");
        assert_eq!(io.sent.len(), REPLIES_PER_SOURCE as usize);
    }

    #[test]
    fn cookie_echo_starts_session_without_reply() {
        let mut sessions = stateless_table(&Admission::new(10));
        let mut io = RecordingIo::default();
        let from = remote(1000);
        assert_eq!(send(&mut sessions, &mut io, from, &hard_reset(1), 1), 1);
        let echo = cookie_echo(&sessions, from, 1);
        assert_eq!(send(&mut sessions, &mut io, from, &echo, 1), 0);
        assert_eq!(sessions.len(), 1);

        let elsewhere = remote(1001);
        let built = send(&mut sessions, &mut io, elsewhere, &echo, 1);
        assert_eq!(built, 0);
        assert_eq!(
            sessions.len(),
            1,
            "a cookie for another address started a session"
        );
    }
}
