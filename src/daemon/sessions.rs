//! Every session of one SSL server, and the maps that route packets to them: by connection,
//! by UDP source address, by peer-id, by tunnel address and by certificate common name.
//!
//! A UDP address has one running session. A new session from that address (the client
//! restarted, or someone replays its earlier handshake) runs its handshake beside the running
//! one, as OpenVPN 2.6 does, and replaces it only once it authenticates. Control packets go
//! to the two by the client's session id, and data packets to the running one. The new
//! session gets the running one's peer-id, as OpenVPN keeps one peer-id per client address.
//!
//! The table does no I/O itself: it writes through an [`Io`], so the same code serves TCP and
//! UDP and can be tested with a scripted session.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ipnet::Ipv4Net;
use tracing::{debug, error, info};

use crate::admin::SessionView;
use crate::auth::token::SessionToken;
use crate::config::{Protocol, SslServer};
use crate::proto::cookie::CookieKey;
use crate::proto::packet::SESSION_ID_LEN;
use crate::proto::session::{
    AuthRequest, ClientNetwork, CloseKind, Event, Incoming, SessionConfig, SessionError,
    StatelessHandshake,
};

use super::addresses::AddressPool;
use super::admission::Admission;
use super::driven::DrivenSession;
use super::timers::Timers;
use super::tun;

/// Identifies one TCP connection or one UDP session for the life of the process, across
/// every SSL server, so the admin API can name a session by it.
pub(crate) type ConnId = u64;

/// The next connection id of the process.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

const OPCODE_DATA_V1: u8 = 6;
const OPCODE_HARD_RESET_CLIENT_V2: u8 = 7;
const OPCODE_DATA_V2: u8 = 9;
/// Largest peer-id: they are 24 bits wide and 0xFFFFFF means "no peer-id".
const MAX_PEER_ID: u32 = 0xFF_FFFE;
/// Sessions of one SSL server that may be in their handshake at once; hard resets beyond it
/// are ignored until handshakes finish or time out.
// NOTE: a guessed bound. Each handshaking session keeps a rustls connection of a few KiB.
pub(crate) const MAX_HANDSHAKING: usize = 1024;

/// The destination of a session's packets: its connection and the client's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) conn: ConnId,
    pub(crate) remote: SocketAddr,
    /// The gateway address a UDP client sends to. Replies leave from it, so a client of a
    /// gateway with several addresses gets replies from the address it connected to.
    pub(crate) local: Option<IpAddr>,
}

/// The outputs of the session table: the UDP socket or TCP connections, and the TUN device.
pub(crate) trait Io {
    /// Sends one OpenVPN packet to a client.
    fn send(&mut self, link: Link, packet: &[u8]);
    /// Lifts the frame size limit for unauthenticated clients from a TCP connection.
    fn authenticated(&mut self, link: Link);
    /// Closes a TCP connection after the packets queued for it; does nothing for UDP.
    fn close(&mut self, link: Link);
    /// Writes one IPv4 packet from a client to the TUN device.
    fn write_tun(&mut self, packet: &[u8]);
}

/// Packets the table did not pass on.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Packets from peers without a session that did not start one.
    pub(crate) ignored: u64,
    /// Packets that a session dropped, by reason.
    pub(crate) dropped: HashMap<&'static str, u64>,
    /// Packets from the TUN device for an address without an established client.
    pub(crate) unrouted: u64,
    /// Clients that completed their handshake and authentication.
    pub(crate) handshakes: u64,
    /// Clients refused at authentication: revoked or unknown certificate, wrong password,
    /// full server.
    pub(crate) auth_failures: u64,
    /// Tunnel traffic of every session, including the ended ones.
    pub(crate) traffic: Traffic,
}

/// Tunnel packets and their bytes: `in` came from clients, `out` went to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Traffic {
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) packets_in: u64,
    pub(crate) packets_out: u64,
}

impl Traffic {
    fn add_in(&mut self, len: usize) {
        self.bytes_in += len as u64;
        self.packets_in += 1;
    }

    fn add_out(&mut self, len: usize) {
        self.bytes_out += len as u64;
        self.packets_out += 1;
    }
}

/// The outcome of a delivered packet, which decides the caller's next step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// The session accepted the packet as coming from its client.
    Authentic,
    Dropped,
    /// No session has this connection id.
    Gone,
}

/// The destination of a datagram from an address that has a running session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Session(ConnId),
    /// The start of a new session: a hard reset, or on a stateless server any control packet,
    /// with a client session id that no session of the address has.
    NewSession,
    /// A control packet of a session that the address does not have.
    Unknown,
}

/// A client that passed authentication.
#[derive(Debug)]
struct Client {
    common_name: String,
    /// Certificate serial as [`normalize_serial`] writes it.
    serial: String,
    network: ClientNetwork,
    /// Data-channel cipher, once the session is established.
    cipher: Option<String>,
    /// The username a two-factor server accepted.
    username: Option<String>,
    /// The token pushed to a two-factor client, which its renegotiations must send.
    auth_token: Option<SessionToken>,
    /// When the client was admitted.
    connected_since: SystemTime,
}

struct Entry<S> {
    session: S,
    link: Link,
    peer_id: u32,
    client: Option<Client>,
    /// The client's request while its password check runs.
    awaiting: Option<AuthRequest>,
    /// The reason the session ends. The first reason recorded wins.
    close_reason: Option<String>,
    traffic: Traffic,
}

pub(crate) struct Sessions<S> {
    protocol: Protocol,
    client_cidr: Ipv4Net,
    config: Arc<SessionConfig>,
    pool: Box<dyn AddressPool>,
    admission: Admission,
    /// Revoked certificate serials, normalized.
    revoked: HashSet<String>,
    entries: HashMap<ConnId, Entry<S>>,
    /// The running session of each UDP address.
    by_remote: HashMap<SocketAddr, ConnId>,
    /// A UDP address's new session while its handshake runs beside the running session, at
    /// most one per address. Each key is also in `by_remote`, with another session.
    pending: HashMap<SocketAddr, ConnId>,
    by_peer_id: HashMap<u32, ConnId>,
    by_address: HashMap<Ipv4Addr, ConnId>,
    by_name: HashMap<String, ConnId>,
    /// Sessions without a client yet.
    handshaking: usize,
    /// Password checks and the throttle; None unless the server uses two-factor
    /// authentication.
    two_factor: Option<TwoFactor>,
    timers: Timers,
    next_peer_id: u32,
    pub(crate) counters: Counters,
    buffer: Vec<u8>,
    /// The stateless start of UDP sessions, prepared for the current `config`. With None,
    /// sessions start from the hard reset itself.
    stateless: Option<Arc<StatelessHandshake>>,
    reply_limiter: stateless::ReplyLimiter,
    failure_log: LogBudget,
}

/// Lines a peer-triggered log message may take per minute before it drops to debug.
const LOG_LINES_PER_MINUTE: u32 = 20;

/// Counts log lines that peers can trigger, per minute.
#[derive(Debug, Default)]
struct LogBudget {
    minute_start: Option<Instant>,
    lines: u32,
}

impl LogBudget {
    /// Counts one line and returns whether it fits in this minute's budget.
    fn allow(&mut self, now: Instant) -> bool {
        let expired = self
            .minute_start
            .is_none_or(|start| now.saturating_duration_since(start).as_secs() >= 60);
        if expired {
            self.minute_start = Some(now);
            self.lines = 0;
        }
        self.lines += 1;
        self.lines <= LOG_LINES_PER_MINUTE
    }
}

impl<S: DrivenSession> Sessions<S> {
    pub(crate) fn new(
        server: &SslServer,
        config: Arc<SessionConfig>,
        pool: Box<dyn AddressPool>,
        admission: Admission,
        revoked: HashSet<String>,
    ) -> Self {
        Self {
            protocol: server.protocol,
            client_cidr: server.client_cidr,
            config,
            pool,
            admission,
            revoked,
            entries: HashMap::new(),
            by_remote: HashMap::new(),
            pending: HashMap::new(),
            by_peer_id: HashMap::new(),
            by_address: HashMap::new(),
            by_name: HashMap::new(),
            handshaking: 0,
            two_factor: TwoFactor::for_server(server),
            timers: Timers::default(),
            next_peer_id: 0,
            counters: Counters::default(),
            buffer: Vec::with_capacity(2048),
            stateless: None,
            reply_limiter: stateless::ReplyLimiter::new(),
            failure_log: LogBudget::default(),
        }
    }

    /// Starts UDP sessions statelessly with `key` (see [`crate::proto::cookie`]). Fails when
    /// the control-channel protection of the config cannot be prepared.
    pub(crate) fn with_cookie(mut self, key: CookieKey) -> Result<Self, SessionError> {
        self.stateless = Some(Arc::new(StatelessHandshake::new(key, &self.config)?));
        Ok(self)
    }

    /// Takes a connection id that no session or TCP connection uses.
    pub(crate) fn new_conn_id(&mut self) -> ConnId {
        NEXT_CONN.fetch_add(1, Ordering::Relaxed)
    }

    /// Returns a link with a new connection id to a UDP peer.
    fn new_udp_link(&mut self, remote: SocketAddr, local: Option<IpAddr>) -> Link {
        Link {
            conn: self.new_conn_id(),
            remote,
            local,
        }
    }

    /// Describes every admitted client for the admin API.
    pub(crate) fn views(&self, server: &str) -> Vec<SessionView> {
        let mut views: Vec<SessionView> = self
            .entries
            .iter()
            .filter_map(|(&conn, entry)| {
                let client = entry.client.as_ref()?;
                Some(SessionView {
                    id: conn,
                    server: server.to_owned(),
                    common_name: client.common_name.clone(),
                    username: client.username.clone(),
                    real_address: entry.link.remote.to_string(),
                    virtual_address: client.network.address.to_string(),
                    bytes_in: entry.traffic.bytes_in,
                    bytes_out: entry.traffic.bytes_out,
                    connected_since: rfc3339(client.connected_since),
                    cipher: client.cipher.clone().unwrap_or_default(),
                })
            })
            .collect();
        views.sort_by_key(|view| view.id);
        views
    }

    /// Admitted clients.
    pub(crate) fn clients(&self) -> usize {
        self.entries.len() - self.handshaking.min(self.entries.len())
    }

    /// Tells the client of session `conn` to reconnect and ends the session, as OpenVPN's
    /// `client-kill` does. False when no session has that id.
    pub(crate) fn kill(&mut self, io: &mut impl Io, conn: ConnId, now: Instant) -> bool {
        if !self.entries.contains_key(&conn) {
            return false;
        }
        self.close_session(io, conn, CloseKind::Restart, "killed by the admin", now);
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Counts a packet dropped before it reached a session.
    pub(crate) fn count_drop(&mut self, reason: &'static str) {
        count_drop(&mut self.counters, reason);
    }

    /// Returns the earliest time at which [`Sessions::handle_timeouts`] has work.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.timers.next()
    }

    /// Handles one packet from a TCP connection. A connection without a session whose packet
    /// cannot start one is closed.
    pub(crate) fn receive_stream(
        &mut self,
        io: &mut impl Io,
        link: Link,
        packet: &mut [u8],
        now: Instant,
    ) {
        if self.entries.contains_key(&link.conn) {
            self.deliver(io, link.conn, packet, now);
        } else if !self.start(io, link, packet, now) {
            io.close(link);
        }
    }

    /// Handles one UDP datagram from `remote`.
    pub(crate) fn receive_datagram(
        &mut self,
        io: &mut impl Io,
        remote: SocketAddr,
        local: Option<IpAddr>,
        packet: &mut [u8],
        now: Instant,
    ) {
        if let Some(&running) = self.by_remote.get(&remote) {
            match self.route(running, remote, packet) {
                Route::Session(conn) => {
                    let reset = opcode(packet) == Some(OPCODE_HARD_RESET_CLIENT_V2);
                    let delivery = self.deliver(io, conn, packet, now);
                    if reset && delivery == Delivery::Dropped {
                        // A copy of the packet that started the session, e.g. one replayed
                        // by an attacker that tls-crypt's replay check dropped.
                        self.ignore(remote, "hard reset of a running session");
                    }
                }
                Route::NewSession => self.receive_new(io, remote, local, packet, now),
                Route::Unknown => self.ignore(remote, "control packet of an unknown session"),
            }
            return;
        }
        if let Some(conn) = self.session_of_peer_id(packet) {
            self.float(io, conn, remote, local, packet, now);
            return;
        }
        self.receive_new(io, remote, local, packet, now);
    }

    /// Handles a UDP datagram that belongs to no session of its address: statelessly on a
    /// server with a cookie key, else by starting a session from a hard reset.
    fn receive_new(
        &mut self,
        io: &mut impl Io,
        remote: SocketAddr,
        local: Option<IpAddr>,
        packet: &[u8],
        now: Instant,
    ) {
        if self.stateless.is_some() {
            self.receive_unknown(io, remote, local, packet, now);
            return;
        }
        let link = self.new_udp_link(remote, local);
        self.start(io, link, packet, now);
    }

    /// Picks the destination of a datagram from an address whose running session is
    /// `running`. Control packets go by the client's session id, so the running session
    /// never receives the control packets of a new session from its address.
    fn route(&self, running: ConnId, remote: SocketAddr, packet: &[u8]) -> Route {
        let opcode = opcode(packet);
        if matches!(opcode, Some(OPCODE_DATA_V1 | OPCODE_DATA_V2)) {
            // A new session gets data keys only when it takes over.
            return Route::Session(running);
        }
        let Some(sent) = packet.get(1..1 + SESSION_ID_LEN) else {
            return Route::Session(running);
        };
        // None when the session cannot tell its client's session id.
        let matches = |conn: ConnId| {
            let entry = self.entries.get(&conn)?;
            let id = entry.session.peer_session_id()?;
            Some(id.as_slice() == sent)
        };
        if let Some(&conn) = self.pending.get(&remote)
            && matches(conn) == Some(true)
        {
            return Route::Session(conn);
        }
        let reset = opcode == Some(OPCODE_HARD_RESET_CLIENT_V2);
        match matches(running) {
            Some(true) => Route::Session(running),
            _ if reset => Route::NewSession,
            // On a stateless server, it may echo the cookie of a new session.
            Some(false) if self.stateless.is_some() => Route::NewSession,
            Some(false) => Route::Unknown,
            None => Route::Session(running),
        }
    }

    /// Encrypts an IPv4 packet from the TUN device for the client that owns its destination.
    pub(crate) fn route_from_tun(&mut self, io: &mut impl Io, packet: &[u8], now: Instant) {
        let conn = tun::destination(packet).and_then(|to| self.by_address.get(&to).copied());
        let Some(entry) = conn.and_then(|conn| self.entries.get_mut(&conn)) else {
            self.counters.unrouted += 1;
            return;
        };
        if entry.session.encrypt(packet, &mut self.buffer, now) {
            io.send(entry.link, &self.buffer);
        } else {
            self.counters.unrouted += 1;
            return;
        }
        let conn = entry.link.conn;
        entry.traffic.add_out(packet.len());
        self.counters.traffic.add_out(packet.len());
        self.drain(io, conn, now);
    }

    /// Runs the timers of every session whose deadline has passed.
    pub(crate) fn handle_timeouts(&mut self, io: &mut impl Io, now: Instant) {
        for conn in self.timers.expired(now) {
            if let Some(entry) = self.entries.get_mut(&conn) {
                entry.session.handle_timeout(now);
            }
            self.drain(io, conn, now);
        }
    }

    /// Ends the session of a TCP connection that the client closed or that failed.
    pub(crate) fn connection_lost(&mut self, io: &mut impl Io, conn: ConnId, now: Instant) {
        self.close_session(io, conn, CloseKind::Drop, "connection closed", now);
    }

    /// Uses `config` for new sessions and closes the sessions whose serial is in `revoked`.
    pub(crate) fn update_credentials(
        &mut self,
        io: &mut impl Io,
        config: Arc<SessionConfig>,
        revoked: HashSet<String>,
        now: Instant,
    ) {
        self.replace_config(config);
        self.revoked = revoked;
        let doomed: Vec<(ConnId, String, String)> = self
            .entries
            .iter()
            .filter_map(|(&conn, entry)| {
                let client = entry.client.as_ref()?;
                self.revoked
                    .contains(&client.serial)
                    .then(|| (conn, client.common_name.clone(), client.serial.clone()))
            })
            .collect();
        for (conn, common_name, serial) in doomed {
            info!(%common_name, %serial, "closing the connection of a revoked certificate");
            let kind = CloseKind::Revoke("certificate revoked".to_owned());
            self.close_session(io, conn, kind, "certificate revoked", now);
        }
    }

    /// Uses `config` for new sessions; the running ones keep theirs.
    pub(crate) fn set_config(&mut self, config: Arc<SessionConfig>) {
        self.replace_config(config);
    }

    /// Uses `config` for new sessions and prepares the stateless handshake for it, so a
    /// changed key applies to the next packet from an unknown peer.
    fn replace_config(&mut self, config: Arc<SessionConfig>) {
        if let Some(handshake) = &self.stateless {
            match StatelessHandshake::new(handshake.key().clone(), &config) {
                Ok(prepared) => self.stateless = Some(Arc::new(prepared)),
                Err(error) => error!(
                    %error,
                    "preparing the control-channel protection of the changed settings failed; \
                     packets from unknown peers are checked with the previous one"
                ),
            }
        }
        self.config = config;
    }

    /// Tells every client to reconnect and ends every session.
    pub(crate) fn shutdown(&mut self, io: &mut impl Io, now: Instant) {
        let conns: Vec<ConnId> = self.entries.keys().copied().collect();
        for conn in conns {
            self.close_session(io, conn, CloseKind::Restart, "server stopped", now);
        }
    }

    /// Starts a session from a client's first packet; false when the packet cannot start one.
    fn start(&mut self, io: &mut impl Io, link: Link, packet: &[u8], now: Instant) -> bool {
        if opcode(packet) != Some(OPCODE_HARD_RESET_CLIENT_V2) {
            self.ignore(link.remote, "not a hard reset");
            return false;
        }

        if !self.handshake_allowed(link.remote) {
            self.ignore(link.remote, "too many handshakes in progress");
            return false;
        }
        let Some(peer_id) = self.peer_id_for(link.remote) else {
            self.ignore(link.remote, "no free peer-id");
            return false;
        };

        let session = match S::create(self.config.clone(), packet, peer_id, now, unix_time()) {
            Ok(session) => session,
            Err(error) => {
                self.counters.ignored += 1;
                debug!(remote = %link.remote, %error, "first packet rejected");
                return false;
            }
        };

        self.register(io, link, session, peer_id, now);
        true
    }

    /// Returns whether a new session from `remote` fits in [`MAX_HANDSHAKING`]. A pending
    /// session of the address does not count, because the new session replaces it.
    fn handshake_allowed(&self, remote: SocketAddr) -> bool {
        let replaced = usize::from(self.pending.contains_key(&remote));
        self.handshaking.saturating_sub(replaced) < MAX_HANDSHAKING
    }

    /// Adds a new session to the table and sends what it queued. On UDP, a new session from
    /// an address with a running session becomes that address's pending session.
    fn register(&mut self, io: &mut impl Io, link: Link, session: S, peer_id: u32, now: Instant) {
        let beside_running =
            self.protocol == Protocol::Udp && self.by_remote.contains_key(&link.remote);
        if let Some(&earlier) = self.pending.get(&link.remote) {
            let reason = "replaced by a newer session from the same address";
            self.close_session(io, earlier, CloseKind::Drop, reason, now);
        }
        let entry = Entry {
            session,
            link,
            peer_id,
            client: None,
            awaiting: None,
            close_reason: None,
            traffic: Traffic::default(),
        };
        self.entries.insert(link.conn, entry);
        if beside_running {
            // The running session keeps the peer-id until this one takes over.
            self.pending.insert(link.remote, link.conn);
        } else {
            self.by_peer_id.insert(peer_id, link.conn);
            if self.protocol == Protocol::Udp {
                self.by_remote.insert(link.remote, link.conn);
            }
        }
        self.handshaking += 1;
        debug!(remote = %link.remote, peer_id, beside_running, "session started");
        self.drain(io, link.conn, now);
    }

    /// Makes `conn` the running session of its address if it waited beside the running one,
    /// and ends the running one as any session end does, so its tunnel address and
    /// connection slot are free before `conn` takes its own.
    pub(super) fn take_over_address(&mut self, io: &mut impl Io, conn: ConnId, now: Instant) {
        let Some(remote) = self.entries.get(&conn).map(|entry| entry.link.remote) else {
            return;
        };
        if self.pending.get(&remote) != Some(&conn) {
            return;
        }
        if let Some(&running) = self.by_remote.get(&remote) {
            let reason = "replaced by a new session from the same address";
            self.close_session(io, running, CloseKind::Drop, reason, now);
        }
        // Removing the running session made `conn` the running one already.
        self.promote_pending(remote);
    }

    fn deliver(
        &mut self,
        io: &mut impl Io,
        conn: ConnId,
        packet: &mut [u8],
        now: Instant,
    ) -> Delivery {
        let Some(entry) = self.entries.get_mut(&conn) else {
            return Delivery::Gone;
        };
        let delivery = match entry.session.handle_packet(packet, now) {
            Incoming::Ip(range) => {
                match packet.get(range) {
                    Some(ip_packet) => {
                        entry.traffic.add_in(ip_packet.len());
                        self.counters.traffic.add_in(ip_packet.len());
                        io.write_tun(ip_packet);
                    }
                    None => count_drop(&mut self.counters, "range"),
                }
                Delivery::Authentic
            }
            Incoming::Decompressed(ip_packet) => {
                entry.traffic.add_in(ip_packet.len());
                self.counters.traffic.add_in(ip_packet.len());
                io.write_tun(ip_packet);
                Delivery::Authentic
            }
            Incoming::Consumed => Delivery::Authentic,
            Incoming::Dropped(reason) => {
                count_drop(&mut self.counters, reason);
                Delivery::Dropped
            }
        };
        self.drain(io, conn, now);
        delivery
    }

    /// Delivers a DATA_V2 packet from a new address to the session of its peer-id, and moves
    /// the session to that address if the packet authenticates.
    fn float(
        &mut self,
        io: &mut impl Io,
        conn: ConnId,
        remote: SocketAddr,
        local: Option<IpAddr>,
        packet: &mut [u8],
        now: Instant,
    ) {
        if self.deliver(io, conn, packet, now) != Delivery::Authentic {
            return;
        }
        let Some(entry) = self.entries.get_mut(&conn) else {
            return;
        };
        let old = std::mem::replace(&mut entry.link.remote, remote);
        entry.link.local = local;
        if let Some(&pending) = self.pending.get(&old) {
            // It shares the peer-id of the session that moved, so it cannot stay.
            let reason = "the running session of its address moved to another address";
            self.close_session(io, pending, CloseKind::Drop, reason, now);
        }
        self.release_remote(conn, old);
        self.by_remote.insert(remote, conn);
        debug!(%old, new = %remote, "client moved to a new address");
    }

    /// Sends what a session has queued and handles its events until it has nothing left,
    /// then removes it if it closed or arms its timer.
    fn drain(&mut self, io: &mut impl Io, conn: ConnId, now: Instant) {
        loop {
            let Some(entry) = self.entries.get_mut(&conn) else {
                return;
            };
            while entry.session.poll_transmit(now, &mut self.buffer) {
                io.send(entry.link, &self.buffer);
            }
            let Some(event) = entry.session.poll_event() else {
                break;
            };
            self.handle_event(io, conn, event, now);
        }
        let Some(entry) = self.entries.get(&conn) else {
            return;
        };
        if entry.close_reason.is_some() || entry.session.is_closed() {
            self.remove(io, conn);
        } else {
            let deadline = entry.session.poll_timeout();
            self.timers.set(conn, deadline);
        }
    }

    fn handle_event(&mut self, io: &mut impl Io, conn: ConnId, event: Event, now: Instant) {
        match event {
            Event::Authenticate(request) => self.authenticate(io, conn, request, now),
            Event::Established { cipher } => self.established(conn, cipher),
            Event::Renegotiated {
                common_name,
                serial_hex,
                username,
                password,
            } => self.renegotiated(conn, common_name, &serial_hex, username, password, now),
            Event::Closed { reason } => {
                if let Some(entry) = self.entries.get_mut(&conn) {
                    entry.close_reason.get_or_insert(reason);
                }
            }
        }
    }

    /// Closes a session, sends what it queued and removes it.
    fn close_session(
        &mut self,
        io: &mut impl Io,
        conn: ConnId,
        kind: CloseKind,
        reason: &str,
        now: Instant,
    ) {
        let Some(entry) = self.entries.get_mut(&conn) else {
            return;
        };
        entry.close_reason.get_or_insert_with(|| reason.to_owned());
        entry.session.close(kind, now);
        self.drain(io, conn, now);
        self.remove(io, conn);
    }

    /// Forgets a session, returns its address and connection slot, and closes its TCP
    /// connection.
    fn remove(&mut self, io: &mut impl Io, conn: ConnId) {
        let Some(entry) = self.entries.remove(&conn) else {
            return;
        };
        self.timers.remove(conn);
        if self.by_peer_id.get(&entry.peer_id) == Some(&conn) {
            self.by_peer_id.remove(&entry.peer_id);
        }
        self.release_remote(conn, entry.link.remote);
        let reason = entry.close_reason.as_deref().unwrap_or("session closed");
        match &entry.client {
            Some(client) => {
                let address = client.network.address;
                if self.by_address.get(&address) == Some(&conn) {
                    self.by_address.remove(&address);
                }
                if self.by_name.get(&client.common_name) == Some(&conn) {
                    self.by_name.remove(&client.common_name);
                }
                self.pool.release(address);
                self.admission.release();
                info!(
                    common_name = %client.common_name,
                    username = ?client.username.as_deref().unwrap_or(""),
                    real_address = %entry.link.remote,
                    virtual_address = %address,
                    cipher = client.cipher.as_deref().unwrap_or("none yet"),
                    %reason,
                    connections = self.admission.active(),
                    "client disconnected"
                );
            }
            None => {
                self.handshaking = self.handshaking.saturating_sub(1);
                // Admins need to see rejected certificates and failed handshakes, but a peer
                // can cause them at will, so only the first few per minute reach info.
                if self.failure_log.allow(Instant::now()) {
                    info!(remote = %entry.link.remote, %reason, "session ended before authentication");
                } else {
                    debug!(remote = %entry.link.remote, %reason, "session ended before authentication");
                }
            }
        }
        io.close(entry.link);
    }

    /// Removes `conn` from the UDP address maps of `remote`. When it was the running session,
    /// the pending session of the address, if any, becomes the running one.
    fn release_remote(&mut self, conn: ConnId, remote: SocketAddr) {
        if self.pending.get(&remote) == Some(&conn) {
            self.pending.remove(&remote);
        }
        if self.by_remote.get(&remote) == Some(&conn) {
            self.by_remote.remove(&remote);
            self.promote_pending(remote);
        }
    }

    /// Makes the pending session of `remote` its running session, with the address's
    /// peer-id.
    fn promote_pending(&mut self, remote: SocketAddr) {
        let Some(conn) = self.pending.remove(&remote) else {
            return;
        };
        let Some(entry) = self.entries.get(&conn) else {
            return;
        };
        self.by_remote.insert(remote, conn);
        self.by_peer_id.insert(entry.peer_id, conn);
    }

    fn session_of_peer_id(&self, packet: &[u8]) -> Option<ConnId> {
        self.by_peer_id.get(&peer_id(packet)?).copied()
    }

    /// Returns the peer-id of a new session from `remote`: the running session's on a UDP
    /// address that has one, else a free one. OpenVPN 2.6.3 clients apply pushed options, the
    /// peer-id among them, once per process (`do_up` in `init.c`), so one that starts a new
    /// session without restarting keeps sending the peer-id of its first session.
    fn peer_id_for(&mut self, remote: SocketAddr) -> Option<u32> {
        let running = match self.protocol {
            Protocol::Udp => self.by_remote.get(&remote),
            Protocol::Tcp => None,
        };
        match running.and_then(|conn| self.entries.get(conn)) {
            Some(entry) => Some(entry.peer_id),
            None => self.allocate_peer_id(),
        }
    }

    fn allocate_peer_id(&mut self) -> Option<u32> {
        for _ in 0..=MAX_PEER_ID {
            let peer_id = self.next_peer_id;
            self.next_peer_id = if peer_id >= MAX_PEER_ID {
                0
            } else {
                peer_id + 1
            };
            if !self.by_peer_id.contains_key(&peer_id) {
                return Some(peer_id);
            }
        }
        None
    }

    /// Counts a packet that started no session, logging the first and then every power of two.
    fn ignore(&mut self, remote: SocketAddr, reason: &str) {
        self.counters.ignored += 1;
        let total = self.counters.ignored;
        if total.is_power_of_two() {
            debug!(%remote, total, reason, "ignored a packet from a peer without a session");
        }
    }
}

fn opcode(packet: &[u8]) -> Option<u8> {
    packet.first().map(|byte| byte >> 3)
}

/// Returns the peer-id of a DATA_V2 packet.
fn peer_id(packet: &[u8]) -> Option<u32> {
    if opcode(packet)? != OPCODE_DATA_V2 {
        return None;
    }
    let header: [u8; 4] = packet.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(header) & 0xFF_FFFF)
}

fn count_drop(counters: &mut Counters, reason: &'static str) {
    let total = counters.dropped.entry(reason).or_default();
    *total += 1;
    if total.is_power_of_two() {
        debug!(reason, total = *total, "session dropped a packet");
    }
}

fn rfc3339(time: SystemTime) -> String {
    time::OffsetDateTime::from(time)
        .replace_nanosecond(0)
        .ok()
        .and_then(|time| {
            time.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

mod auth;
mod stateless;
#[cfg(test)]
mod tests;
mod two_factor;

pub(crate) use two_factor::CheckResult;
use two_factor::TwoFactor;
