use std::cell::Cell;
use std::collections::VecDeque;
use std::time::Duration;

use super::*;
use crate::config::{Cipher, Topology};
use crate::daemon::addresses::open_pool;
use crate::proto::keymethod::Secret;
use crate::proto::packet::SessionId;
use crate::proto::session::{AuthRequest, Authorization, SessionError};
use crate::proto::test_pki::TestCa;
use crate::proto::tls;

/// A session scripted by the packets it receives. The command byte follows the opcode byte,
/// the four-byte header of a DATA_V2 packet, or the client's session id when the control
/// packet carries the session's own:
/// `A <serial> <name>` authenticates, `E` establishes, `R <serial> <name>` renegotiates,
/// and both may end in `\0<username>\0<password>` to send credentials;
/// `D <ip packet>` carries data, `X` fails authentication, `C` closes; anything else is
/// consumed. A hard reset on an existing session is dropped. Every packet moves the
/// session's timeout 30 seconds ahead, as a keepalive does.
///
/// Stateless starts are scripted too. A hard reset whose byte 1 is `?` fails the protection
/// check, and the reply is `\x40cookie` followed by the cookie. A control packet of the
/// client's session id followed by the cookie starts a session (see [`cookie_echo`]).
pub(super) struct FakeSession {
    outgoing: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    deadline: Instant,
    keys: bool,
    closed: bool,
    /// Set by the table before it accepts a two-factor client.
    auth_token: Option<Secret>,
    /// Bytes 1 to 8 of the hard reset, as the client's session id, when it has them.
    peer_session_id: Option<[u8; 8]>,
}

impl FakeSession {
    fn finish(&mut self, reason: &str) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(Event::Closed {
                reason: reason.to_owned(),
            });
        }
    }
}

/// Splits `<serial> <name>[\0<username>\0<password>]`.
fn identity(rest: &[u8]) -> (String, String, Option<String>, Option<Secret>) {
    let serial = rest.first().copied().unwrap_or(0);
    let mut parts = rest.get(1..).unwrap_or(&[]).split(|&b| b == 0);
    let name = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
    let username = parts
        .next()
        .map(|part| String::from_utf8_lossy(part).into_owned());
    let password = parts.next().map(|part| Secret::new(part.to_vec()));
    (name, format!("{serial:02X}"), username, password)
}

impl DrivenSession for FakeSession {
    fn create(
        _config: Arc<SessionConfig>,
        first_packet: &[u8],
        _peer_id: u32,
        now: Instant,
        _unix_time: u64,
    ) -> Result<Self, SessionError> {
        match first_packet.get(1) {
            Some(b'!') => {
                return Err(SessionError::BadFirstPacket(
                    "malformed hard reset".to_owned(),
                ));
            }
            Some(b'?') => return Err(SessionError::BadFirstPacket("forged".to_owned())),
            _ => {}
        }
        Ok(Self {
            outgoing: VecDeque::from([b"\x40reset".to_vec()]),
            events: VecDeque::new(),
            deadline: now + Duration::from_secs(30),
            keys: false,
            closed: false,
            auth_token: None,
            peer_session_id: first_packet
                .get(1..9)
                .map(|id| id.try_into().expect("8 bytes")),
        })
    }

    fn check_hard_reset(
        _handshake: &StatelessHandshake,
        packet: &[u8],
    ) -> Result<SessionId, SessionError> {
        if packet.get(1) == Some(&b'?') {
            return Err(SessionError::BadFirstPacket("forged".to_owned()));
        }
        Ok(client_session_id(packet))
    }

    fn stateless_reply(
        handshake: &StatelessHandshake,
        client_session: SessionId,
        client: SocketAddr,
        _unix_time: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), SessionError> {
        REPLIES_BUILT.set(REPLIES_BUILT.get() + 1);
        out.clear();
        out.extend_from_slice(b"\x40cookie");
        out.extend_from_slice(cookie(handshake.key(), client, client_session).as_bytes());
        Ok(())
    }

    fn create_from_cookie(
        _config: Arc<SessionConfig>,
        handshake: &StatelessHandshake,
        packet: &[u8],
        client: SocketAddr,
        _peer_id: u32,
        now: Instant,
        _unix_time: u64,
    ) -> Result<Self, SessionError> {
        let client_session = client_session_id(packet);
        let expected = cookie(handshake.key(), client, client_session);
        if packet.get(9..17) != Some(expected.as_bytes().as_slice()) {
            return Err(SessionError::BadFirstPacket("no valid cookie".to_owned()));
        }
        Ok(Self {
            outgoing: VecDeque::from([b"\x40started".to_vec()]),
            events: VecDeque::new(),
            deadline: now + Duration::from_secs(30),
            keys: false,
            closed: false,
            auth_token: None,
            peer_session_id: Some(client_session.0),
        })
    }

    fn peer_session_id(&self) -> Option<[u8; 8]> {
        self.peer_session_id
    }

    fn handle_packet(&mut self, packet: &mut [u8], now: Instant) -> Incoming<'_> {
        if opcode(packet) == Some(OPCODE_HARD_RESET_CLIENT_V2) {
            return Incoming::Dropped("reset");
        }
        self.deadline = now + Duration::from_secs(30);
        let own_session = self.peer_session_id.is_some()
            && packet.get(1..9) == self.peer_session_id.as_ref().map(|id| id.as_slice());
        let start = if opcode(packet) == Some(OPCODE_DATA_V2) {
            4
        } else if own_session {
            9
        } else {
            1
        };
        let command = packet.get(start).copied();
        let rest = packet.get(start + 1..).unwrap_or(&[]);
        match command {
            Some(b'A') => {
                let (common_name, serial_hex, username, password) = identity(rest);
                self.events.push_back(Event::Authenticate(AuthRequest {
                    common_name,
                    serial_hex,
                    username,
                    password,
                    client_version: None,
                    client_platform: None,
                    cipher: "AES-256-GCM".to_owned(),
                }));
            }
            Some(b'E') => {
                self.keys = true;
                self.events.push_back(Event::Established {
                    cipher: "AES-256-GCM".to_owned(),
                });
            }
            Some(b'R') => {
                let (common_name, serial_hex, username, password) = identity(rest);
                self.events.push_back(Event::Renegotiated {
                    common_name,
                    serial_hex,
                    username,
                    password,
                });
            }
            Some(b'D') => return Incoming::Ip(start + 1..packet.len()),
            Some(b'X') => return Incoming::Dropped("auth"),
            Some(b'C') => self.finish("client exited"),
            _ => {}
        }
        Incoming::Consumed
    }

    fn encrypt(&mut self, ip_packet: &[u8], out: &mut Vec<u8>, _now: Instant) -> bool {
        if !self.keys {
            return false;
        }
        out.clear();
        out.extend_from_slice(b"enc:");
        out.extend_from_slice(ip_packet);
        true
    }

    fn poll_transmit(&mut self, _now: Instant, out: &mut Vec<u8>) -> bool {
        let Some(packet) = self.outgoing.pop_front() else {
            return false;
        };
        out.clear();
        out.extend_from_slice(&packet);
        true
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (!self.closed).then_some(self.deadline)
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now >= self.deadline {
            self.finish("keepalive timeout");
        }
    }

    fn authorize(&mut self, decision: Authorization, _now: Instant) {
        match decision {
            Authorization::Accept(network) => {
                let mut reply = format!("PUSH_REPLY,ifconfig {}", network.address);
                if let Some(token) = self.auth_token.as_ref().and_then(Secret::expose_str) {
                    reply.push_str(&format!(",auth-token {token}"));
                }
                self.outgoing.push_back(reply.into_bytes());
            }
            Authorization::Reject(reason) => {
                self.outgoing
                    .push_back(format!("AUTH_FAILED,{reason}").into_bytes());
                self.finish(&reason);
            }
        }
    }

    fn set_auth_token(&mut self, token: Secret) {
        self.auth_token = Some(token);
    }

    fn close(&mut self, kind: CloseKind, _now: Instant) {
        if matches!(kind, CloseKind::Restart) && !self.closed {
            self.outgoing.push_back(b"RESTART".to_vec());
        }
        self.finish("closed by the server");
    }

    fn is_closed(&self) -> bool {
        self.closed
    }
}

thread_local! {
    /// Stateless replies that [`FakeSession`] built on this thread.
    pub(super) static REPLIES_BUILT: Cell<u32> = const { Cell::new(0) };
}

/// Returns bytes 1 to 8 of a packet, zero-padded, as the client's session id.
fn client_session_id(packet: &[u8]) -> SessionId {
    let mut id = [0; 8];
    for (byte, sent) in id.iter_mut().zip(packet.iter().skip(1)) {
        *byte = *sent;
    }
    SessionId(id)
}

/// Returns the cookie of [`FakeSession`]'s stateless replies: the real one of time slot 0.
fn cookie(key: &CookieKey, client: SocketAddr, client_session: SessionId) -> SessionId {
    key.session_id(0, client, &client_session)
}

#[derive(Debug, Default)]
pub(super) struct RecordingIo {
    pub(super) sent: Vec<(Link, Vec<u8>)>,
    pub(super) authenticated: Vec<Link>,
    pub(super) closed: Vec<Link>,
    pub(super) tun: Vec<Vec<u8>>,
}

impl Io for RecordingIo {
    fn send(&mut self, link: Link, packet: &[u8]) {
        self.sent.push((link, packet.to_vec()));
    }

    fn authenticated(&mut self, link: Link) {
        self.authenticated.push(link);
    }

    fn close(&mut self, link: Link) {
        self.closed.push(link);
    }

    fn write_tun(&mut self, packet: &[u8]) {
        self.tun.push(packet.to_vec());
    }
}

impl RecordingIo {
    /// Returns the packets sent to `remote`, as text.
    pub(super) fn sent_to(&self, remote: SocketAddr) -> Vec<String> {
        self.sent
            .iter()
            .filter(|(link, _)| link.remote == remote)
            .map(|(_, packet)| String::from_utf8_lossy(packet).into_owned())
            .collect()
    }

    pub(super) fn sent_text_to(&self, remote: SocketAddr, text: &str) -> bool {
        self.sent_to(remote)
            .iter()
            .any(|packet| packet.contains(text))
    }
}

pub(super) fn ssl_server(protocol: Protocol) -> SslServer {
    SslServer {
        name: "office".to_owned(),
        local_networks: vec!["192.168.77.0/24".parse().unwrap()],
        client_cidr: "10.8.0.0/24".parse().unwrap(),
        protocol,
        port: 1194,
        cipher: Cipher::Aes128Cbc,
        compression: false,
        two_factor: false,
        tls_crypt: false,
        topology: Topology::Net30,
        auth: None,
    }
}

pub(super) fn session_config() -> Arc<SessionConfig> {
    let ca = TestCa::new("office CA");
    let server = ca.issue("office-server", true, 100);
    let tls = tls::server_config(ca.der.clone(), vec![server.der], server.key, Vec::new()).unwrap();
    Arc::new(SessionConfig {
        tls,
        wrap: crate::proto::wrap::WrapConfig::None,
        data_ciphers: vec!["AES-256-GCM".to_owned()],
        fallback_cipher: "AES-128-CBC".to_owned(),
        compression: false,
        tcp: false,
        routes: Vec::new(),
        topology: Topology::Net30,
        server_address: Ipv4Addr::new(10, 8, 0, 1),
        pool_netmask: Ipv4Addr::new(255, 255, 255, 0),
        keepalive_interval: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(60),
        hand_window: Duration::from_secs(60),
        reneg_interval: Duration::from_secs(3600),
        tls_mtu: crate::proto::session::DEFAULT_TLS_MTU,
    })
}

pub(super) fn table(protocol: Protocol, admission: &Admission) -> Sessions<FakeSession> {
    let server = ssl_server(protocol);
    Sessions::new(
        &server,
        session_config(),
        open_pool(&server),
        admission.clone(),
        HashSet::new(),
    )
}

pub(super) fn remote(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

pub(super) const RESET: &[u8] = &[0x38, 0];

pub(super) fn control(command: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x20];
    packet.extend_from_slice(command);
    packet
}

fn auth(common_name: &str, serial: u8) -> Vec<u8> {
    let mut command = vec![b'A', serial];
    command.extend_from_slice(common_name.as_bytes());
    control(&command)
}

fn data_v2(peer_id: u32, command: &[u8]) -> Vec<u8> {
    let mut packet = ((u32::from(OPCODE_DATA_V2) << 27) | peer_id)
        .to_be_bytes()
        .to_vec();
    packet.extend_from_slice(command);
    packet
}

fn ipv4_to(destination: [u8; 4]) -> Vec<u8> {
    let mut packet = vec![0u8; 20];
    packet[0] = 0x45;
    packet[16..20].copy_from_slice(&destination);
    packet
}

/// Returns the hard reset of client session `id`, whose session id is eight bytes `id`.
pub(super) fn hard_reset(id: u8) -> Vec<u8> {
    let mut packet = vec![0x38];
    packet.extend_from_slice(&[id; 8]);
    packet
}

/// Returns a control packet of client session `id` that carries `command`.
fn control_of(id: u8, command: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x20];
    packet.extend_from_slice(&[id; 8]);
    packet.extend_from_slice(command);
    packet
}

fn auth_of(id: u8, common_name: &str, serial: u8) -> Vec<u8> {
    let mut command = vec![b'A', serial];
    command.extend_from_slice(common_name.as_bytes());
    control_of(id, &command)
}

/// Returns the packet with which client session `id` at `client` echoes the cookie of the
/// stateless reply that `sessions` sent it.
pub(super) fn cookie_echo(sessions: &Sessions<FakeSession>, client: SocketAddr, id: u8) -> Vec<u8> {
    let handshake = sessions.stateless.as_ref().expect("a stateless table");
    let mut packet = control_of(id, &[]);
    packet.extend_from_slice(cookie(handshake.key(), client, SessionId([id; 8])).as_bytes());
    packet
}

pub(super) fn stateless_table(admission: &Admission) -> Sessions<FakeSession> {
    table(Protocol::Udp, admission)
        .with_cookie(CookieKey::new([3; 16]))
        .expect("the protection of the test config")
}

/// Runs client session `id` at `from` through hard reset, cookie echo on a stateless table,
/// authentication and establishment.
fn connect_session(
    sessions: &mut Sessions<FakeSession>,
    io: &mut RecordingIo,
    from: SocketAddr,
    id: u8,
    common_name: &str,
    serial: u8,
    now: Instant,
) {
    sessions.receive_datagram(io, from, None, &mut hard_reset(id), now);
    if sessions.stateless.is_some() {
        let mut echo = cookie_echo(sessions, from, id);
        sessions.receive_datagram(io, from, None, &mut echo, now);
    }
    sessions.receive_datagram(io, from, None, &mut auth_of(id, common_name, serial), now);
    sessions.receive_datagram(io, from, None, &mut control_of(id, b"E"), now);
}

/// Runs a UDP client through hard reset, authentication and establishment.
fn connect_udp(
    sessions: &mut Sessions<FakeSession>,
    io: &mut RecordingIo,
    from: SocketAddr,
    common_name: &str,
    serial: u8,
    now: Instant,
) {
    sessions.receive_datagram(io, from, None, &mut RESET.to_vec(), now);
    sessions.receive_datagram(io, from, None, &mut auth(common_name, serial), now);
    sessions.receive_datagram(io, from, None, &mut control(b"E"), now);
}

#[test]
fn hard_reset_starts_udp_session() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    sessions.receive_datagram(
        &mut io,
        remote(1000),
        None,
        &mut RESET.to_vec(),
        Instant::now(),
    );
    assert_eq!(sessions.len(), 1);
    assert_eq!(io.sent_to(remote(1000)), vec!["\x40reset".to_owned()]);
}

#[test]
fn other_packets_from_unknown_peer_are_ignored() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    sessions.receive_datagram(
        &mut io,
        remote(1000),
        None,
        &mut control(b"E"),
        Instant::now(),
    );
    sessions.receive_datagram(&mut io, remote(1000), None, &mut Vec::new(), Instant::now());
    assert_eq!(sessions.len(), 0);
    assert_eq!(sessions.counters.ignored, 2);
    assert!(io.sent.is_empty());
}

#[test]
fn failed_session_creation_is_counted() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    sessions.receive_datagram(
        &mut io,
        remote(1000),
        None,
        &mut [0x38, b'!'],
        Instant::now(),
    );
    assert_eq!(sessions.len(), 0);
    assert_eq!(sessions.counters.ignored, 1);
}

#[test]
fn tcp_connection_without_hard_reset_is_closed() {
    let mut sessions = table(Protocol::Tcp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let link = Link {
        conn: sessions.new_conn_id(),
        remote: remote(2000),
        local: None,
    };
    sessions.receive_stream(&mut io, link, &mut control(b"E"), Instant::now());
    assert_eq!(sessions.len(), 0);
    assert_eq!(io.closed, vec![link]);
}

#[test]
fn tcp_session_authenticates_and_lifts_frame_limit() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Tcp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let link = Link {
        conn: sessions.new_conn_id(),
        remote: remote(2000),
        local: None,
    };
    sessions.receive_stream(&mut io, link, &mut RESET.to_vec(), now);
    sessions.receive_stream(&mut io, link, &mut auth("alice", 7), now);
    assert_eq!(io.authenticated, vec![link]);
    assert!(io.sent_text_to(link.remote, "PUSH_REPLY,ifconfig 10.8.0.6"));
    assert_eq!(admission.active(), 1);
}

#[test]
fn accepted_client_gets_tun_traffic() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    let packet = ipv4_to([10, 8, 0, 6]);
    sessions.route_from_tun(&mut io, &packet, now);
    let (link, sent) = io.sent.last().unwrap();
    assert_eq!(link.remote, remote(1000));
    assert_eq!(&sent[..4], b"enc:");
    assert_eq!(&sent[4..], &packet[..]);
}

#[test]
fn tun_traffic_for_unknown_address_is_counted() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    let sent_before = io.sent.len();
    sessions.route_from_tun(&mut io, &ipv4_to([10, 8, 0, 10]), now);
    sessions.route_from_tun(&mut io, &[0x60; 40], now);
    assert_eq!(io.sent.len(), sent_before);
    assert_eq!(sessions.counters.unrouted, 2);
}

#[test]
fn tun_traffic_before_keys_is_dropped() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    sessions.receive_datagram(&mut io, remote(1000), None, &mut RESET.to_vec(), now);
    sessions.receive_datagram(&mut io, remote(1000), None, &mut auth("alice", 7), now);
    let sent_before = io.sent.len();
    sessions.route_from_tun(&mut io, &ipv4_to([10, 8, 0, 6]), now);
    assert_eq!(io.sent.len(), sent_before);
    assert_eq!(sessions.counters.unrouted, 1);
}

#[test]
fn client_ip_packet_goes_to_tun() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    sessions.receive_datagram(
        &mut io,
        remote(1000),
        None,
        &mut data_v2(0, b"Dpayload"),
        now,
    );
    assert_eq!(io.tun, vec![b"payload".to_vec()]);
}

#[test]
fn dropped_packet_is_counted_by_reason() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    sessions.receive_datagram(&mut io, remote(1000), None, &mut control(b"X"), now);
    assert_eq!(sessions.counters.dropped.get("auth"), Some(&1));
    assert!(io.tun.is_empty());
}

#[test]
fn max_connections_counts_across_servers() {
    let admission = Admission::new(1);
    let mut office = table(Protocol::Udp, &admission);
    let mut lab = table(Protocol::Tcp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut office, &mut io, remote(1000), "alice", 7, now);
    let link = Link {
        conn: lab.new_conn_id(),
        remote: remote(2000),
        local: None,
    };
    lab.receive_stream(&mut io, link, &mut RESET.to_vec(), now);
    lab.receive_stream(&mut io, link, &mut auth("bob", 8), now);
    let expected = "AUTH_FAILED,server is full: max_connections 1 reached";
    assert!(
        io.sent_text_to(link.remote, expected),
        "{:?}",
        io.sent_to(link.remote)
    );
    assert_eq!(lab.len(), 0);
    assert!(io.closed.contains(&link));
    assert_eq!(admission.active(), 1);
}

#[test]
fn slot_returns_when_client_leaves() {
    let admission = Admission::new(1);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    sessions.receive_datagram(&mut io, remote(1000), None, &mut control(b"C"), now);
    assert_eq!(sessions.len(), 0);
    assert_eq!(admission.active(), 0);
    connect_udp(&mut sessions, &mut io, remote(1001), "bob", 8, now);
    // The pool keeps alice's address for her while others are free, so bob gets another.
    assert!(io.sent_text_to(remote(1001), "PUSH_REPLY,ifconfig 10.8.0.10"));
}

#[test]
fn same_common_name_replaces_old_session() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    connect_udp(&mut sessions, &mut io, remote(1001), "alice", 7, now);
    assert_eq!(sessions.len(), 1);
    assert_eq!(admission.active(), 1);
    assert!(io.closed.iter().any(|link| link.remote == remote(1000)));
    assert!(io.sent_text_to(remote(1001), "PUSH_REPLY,ifconfig 10.8.0.6"));
    sessions.route_from_tun(&mut io, &ipv4_to([10, 8, 0, 6]), now);
    let (link, _) = io.sent.last().unwrap();
    assert_eq!(link.remote, remote(1001));
}

#[test]
fn revoked_serial_is_rejected() {
    let admission = Admission::new(10);
    let server = ssl_server(Protocol::Udp);
    let revoked = HashSet::from(["7".to_owned()]);
    let mut sessions: Sessions<FakeSession> = Sessions::new(
        &server,
        session_config(),
        open_pool(&server),
        admission.clone(),
        revoked,
    );
    let mut io = RecordingIo::default();
    connect_udp(
        &mut sessions,
        &mut io,
        remote(1000),
        "alice",
        7,
        Instant::now(),
    );
    assert!(io.sent_text_to(remote(1000), "AUTH_FAILED,certificate serial 07 is revoked"));
    assert_eq!(sessions.len(), 0);
    assert_eq!(admission.active(), 0);
}

#[test]
fn crl_update_closes_revoked_clients() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    connect_udp(&mut sessions, &mut io, remote(1001), "bob", 8, now);
    let revoked = HashSet::from(["8".to_owned()]);
    sessions.update_credentials(&mut io, session_config(), revoked, now);
    assert_eq!(sessions.len(), 1);
    assert!(io.closed.iter().any(|link| link.remote == remote(1001)));
    assert!(!io.closed.iter().any(|link| link.remote == remote(1000)));
    assert_eq!(admission.active(), 1);
}

#[test]
fn renegotiation_with_revoked_serial_closes() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    sessions.update_credentials(
        &mut io,
        session_config(),
        HashSet::from(["9".to_owned()]),
        now,
    );
    assert_eq!(sessions.len(), 1);
    let mut renegotiation = control(b"R\x09alice");
    sessions.receive_datagram(&mut io, remote(1000), None, &mut renegotiation, now);
    assert_eq!(sessions.len(), 0);
}

#[test]
fn renegotiation_with_other_name_closes() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    sessions.receive_datagram(
        &mut io,
        remote(1000),
        None,
        &mut control(b"R\x07mallory"),
        now,
    );
    assert_eq!(sessions.len(), 0);
}

#[test]
fn authentic_packet_moves_session_to_new_address() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    sessions.receive_datagram(&mut io, remote(3000), None, &mut data_v2(0, b"Dmoved"), now);
    assert_eq!(io.tun, vec![b"moved".to_vec()]);
    sessions.route_from_tun(&mut io, &ipv4_to([10, 8, 0, 6]), now);
    let (link, _) = io.sent.last().unwrap();
    assert_eq!(link.remote, remote(3000));
    sessions.receive_datagram(&mut io, remote(3000), None, &mut control(b"Dagain"), now);
    assert_eq!(io.tun.len(), 2);
}

#[test]
fn unauthentic_packet_does_not_move_session() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    sessions.receive_datagram(&mut io, remote(3000), None, &mut data_v2(0, b"X"), now);
    sessions.route_from_tun(&mut io, &ipv4_to([10, 8, 0, 6]), now);
    let (link, _) = io.sent.last().unwrap();
    assert_eq!(link.remote, remote(1000));
}

#[test]
fn unknown_peer_id_is_ignored() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    sessions.receive_datagram(&mut io, remote(3000), None, &mut data_v2(42, b"Dx"), now);
    assert!(io.tun.is_empty());
    assert_eq!(sessions.counters.ignored, 1);
}

#[test]
fn unauthentic_hard_reset_keeps_session() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(b'?'), now);
    assert_eq!(sessions.len(), 1);
    assert_eq!(admission.active(), 1, "the established session was ended");
    assert_eq!(sessions.counters.ignored, 1);
    let resets = io.sent_to(from);
    assert_eq!(
        resets
            .iter()
            .filter(|packet| *packet == "\x40reset")
            .count(),
        1
    );
}

#[test]
fn replayed_hard_reset_keeps_session() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    assert_eq!(admission.active(), 1);

    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(1), now);
    assert_eq!(
        admission.active(),
        1,
        "a copy of the first packet ended the session"
    );
    assert_eq!(
        sessions.len(),
        1,
        "a copy of the first packet started a session"
    );
    assert_eq!(sessions.counters.ignored, 1);
}

#[test]
fn new_session_waits_beside_running_one() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    let running = sessions.views("office")[0].id;

    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(2), now);
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.clients(), 1);
    assert_eq!(admission.active(), 1, "the running session was ended");
    let resets = io.sent_to(from);
    let count = resets.iter().filter(|p| *p == "\x40reset").count();
    assert_eq!(count, 2, "the new session did not start");
    let peer_ids: Vec<u32> = sessions.entries.values().map(|e| e.peer_id).collect();
    assert_eq!(peer_ids, vec![0, 0], "the new session got another peer-id");
    assert_eq!(sessions.by_peer_id.get(&0), Some(&running));

    sessions.receive_datagram(&mut io, from, None, &mut data_v2(0, b"Dold"), now);
    assert_eq!(
        io.tun,
        vec![b"old".to_vec()],
        "data of the running session lost"
    );
    sessions.route_from_tun(&mut io, &ipv4_to([10, 8, 0, 6]), now);
    let (link, sent) = io.sent.last().unwrap();
    assert_eq!(link.conn, running);
    assert!(sent.starts_with(b"enc:"));
    let mut renegotiation = control_of(1, b"R\x07alice");
    sessions.receive_datagram(&mut io, from, None, &mut renegotiation, now);
    assert_eq!(
        sessions.len(),
        2,
        "the renegotiation reached the wrong session"
    );
    assert_eq!(sessions.views("office")[0].id, running);
}

#[test]
fn authenticated_new_session_takes_over() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    let running = sessions.views("office")[0].id;

    connect_session(&mut sessions, &mut io, from, 2, "alice", 7, now);
    assert_eq!(sessions.len(), 1);
    assert_eq!(admission.active(), 1);
    assert_eq!(sessions.clients(), 1);
    assert_eq!(sessions.counters.handshakes, 2);
    let views = sessions.views("office");
    assert_ne!(views[0].id, running, "the old session is still listed");
    assert_eq!(views[0].virtual_address, "10.8.0.6", "the address changed");
    let pushed = io.sent_to(from);
    let replies = pushed
        .iter()
        .filter(|packet| packet.starts_with("PUSH_REPLY,ifconfig 10.8.0.6"))
        .count();
    assert_eq!(replies, 2);

    // The client keeps the peer-id of its address.
    sessions.receive_datagram(&mut io, from, None, &mut data_v2(0, b"Dnew"), now);
    assert_eq!(io.tun, vec![b"new".to_vec()]);
    assert_eq!(sessions.by_peer_id.get(&0), Some(&views[0].id));
    sessions.route_from_tun(&mut io, &ipv4_to([10, 8, 0, 6]), now);
    let (link, _) = io.sent.last().unwrap();
    assert_eq!(link.conn, views[0].id);
}

#[test]
fn takeover_frees_slot_on_full_server() {
    let admission = Admission::new(1);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    connect_session(&mut sessions, &mut io, from, 2, "bob", 8, now);
    assert!(
        !io.sent_text_to(from, "AUTH_FAILED"),
        "{:?}",
        io.sent_to(from)
    );
    assert_eq!(admission.active(), 1);
    let views = sessions.views("office");
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].common_name, "bob");
}

#[test]
fn rejected_new_session_keeps_running_one() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    let running = sessions.views("office")[0].id;
    let revoked = HashSet::from(["9".to_owned()]);
    sessions.update_credentials(&mut io, session_config(), revoked, now);

    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(2), now);
    sessions.receive_datagram(&mut io, from, None, &mut auth_of(2, "alice", 9), now);
    assert!(io.sent_text_to(from, "AUTH_FAILED,certificate serial 09 is revoked"));
    assert_eq!(sessions.len(), 1);
    assert_eq!(admission.active(), 1);
    assert_eq!(sessions.views("office")[0].id, running);
    sessions.receive_datagram(&mut io, from, None, &mut data_v2(0, b"Dstill"), now);
    assert_eq!(io.tun, vec![b"still".to_vec()]);
}

#[test]
fn unfinished_new_session_times_out_alone() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let start = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, start);
    let running = sessions.views("office")[0].id;
    let second = |seconds| start + Duration::from_secs(seconds);

    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(2), second(1));
    sessions.receive_datagram(&mut io, from, None, &mut data_v2(0, b"Dping"), second(20));
    sessions.handle_timeouts(&mut io, second(31));
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions.clients(), 1);
    assert_eq!(admission.active(), 1);
    assert_eq!(sessions.views("office")[0].id, running);

    // The address has room for a new session again.
    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(3), second(32));
    assert_eq!(sessions.len(), 2);
    sessions.receive_datagram(&mut io, from, None, &mut data_v2(0, b"Dpong"), second(33));
    assert_eq!(io.tun, vec![b"ping".to_vec(), b"pong".to_vec()]);
}

#[test]
fn newer_new_session_replaces_pending_one() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    for id in 2..30 {
        sessions.receive_datagram(&mut io, from, None, &mut hard_reset(id), now);
        assert_eq!(sessions.len(), 2, "session {id}");
        assert_eq!(sessions.clients(), 1, "session {id}");
    }
    assert_eq!(sessions.pending.len(), 1);

    let ignored = sessions.counters.ignored;
    sessions.receive_datagram(&mut io, from, None, &mut auth_of(2, "alice", 7), now);
    assert_eq!(sessions.counters.ignored, ignored + 1);
    assert_eq!(sessions.len(), 2);
    sessions.receive_datagram(&mut io, from, None, &mut auth_of(29, "alice", 7), now);
    assert_eq!(sessions.len(), 1);
    assert_eq!(admission.active(), 1);
}

#[test]
fn pending_session_fits_at_handshake_limit() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(2), now);
    for port in 1..MAX_HANDSHAKING as u16 {
        let other = SocketAddr::from(([192, 0, 2, 2], port));
        sessions.receive_datagram(&mut io, other, None, &mut RESET.to_vec(), now);
    }
    assert_eq!(sessions.len() - sessions.clients(), MAX_HANDSHAKING);

    let beyond = SocketAddr::from(([192, 0, 2, 3], 1));
    sessions.receive_datagram(&mut io, beyond, None, &mut RESET.to_vec(), now);
    assert_eq!(
        sessions.counters.ignored, 1,
        "a handshake beyond the limit started"
    );
    // A newer session from the address replaces its pending one, so the count stays.
    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(3), now);
    assert_eq!(sessions.counters.ignored, 1, "the replacement was refused");
    assert_eq!(sessions.len() - sessions.clients(), MAX_HANDSHAKING);
}

#[test]
fn control_packet_of_unknown_session_is_ignored() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    sessions.receive_datagram(&mut io, from, None, &mut control_of(9, b"Dx"), now);
    assert!(io.tun.is_empty());
    assert_eq!(sessions.counters.ignored, 1);
    assert!(
        sessions.counters.dropped.is_empty(),
        "the running session got it"
    );
}

#[test]
fn running_session_end_makes_pending_one_running() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(2), now);
    sessions.receive_datagram(&mut io, from, None, &mut control_of(1, b"C"), now);
    assert_eq!(sessions.len(), 1);
    assert_eq!(admission.active(), 0);

    sessions.receive_datagram(&mut io, from, None, &mut auth_of(2, "alice", 7), now);
    assert_eq!(admission.active(), 1);
    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(3), now);
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.pending.len(), 1);
}

#[test]
fn moved_session_ends_pending_one() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    let running = sessions.views("office")[0].id;
    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(2), now);
    let moved = remote(3000);
    sessions.receive_datagram(&mut io, moved, None, &mut data_v2(0, b"Dmoved"), now);
    assert!(sessions.pending.is_empty());
    assert_eq!(
        sessions.len(),
        1,
        "the pending session shares the moved one's peer-id"
    );
    assert_eq!(sessions.by_peer_id.get(&0), Some(&running));
    assert_eq!(admission.active(), 1);

    sessions.route_from_tun(&mut io, &ipv4_to([10, 8, 0, 6]), now);
    let (link, _) = io.sent.last().unwrap();
    assert_eq!(link.remote, moved);
    connect_session(&mut sessions, &mut io, from, 3, "bob", 8, now);
    assert_eq!(admission.active(), 2);
}

#[test]
fn promoted_pending_session_keeps_peer_id() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(2), now);
    sessions.receive_datagram(&mut io, from, None, &mut control_of(1, b"C"), now);
    let promoted = *sessions.by_remote.get(&from).unwrap();
    assert_eq!(sessions.by_peer_id.get(&0), Some(&promoted));

    // Another client cannot be given the peer-id that the promoted session uses.
    connect_session(&mut sessions, &mut io, remote(1001), 3, "bob", 8, now);
    let bob = *sessions.by_remote.get(&remote(1001)).unwrap();
    assert_ne!(sessions.entries[&bob].peer_id, 0);
}

#[test]
fn replayed_earlier_handshake_keeps_stateless_session() {
    let admission = Admission::new(10);
    let mut sessions = stateless_table(&admission);
    let mut io = RecordingIo::default();
    let start = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, start);
    let running = sessions.views("office")[0].id;

    // An earlier session's hard reset and cookie echo, replayed from the client's address
    // while the cookie is still valid.
    sessions.receive_datagram(&mut io, from, None, &mut hard_reset(5), start);
    let mut echo = cookie_echo(&sessions, from, 5);
    sessions.receive_datagram(&mut io, from, None, &mut echo, start);
    assert_eq!(sessions.len(), 2, "the replay did not start a session");
    assert_eq!(admission.active(), 1, "the running session was ended");
    sessions.receive_datagram(&mut io, from, None, &mut data_v2(0, b"Dkept"), start);
    assert_eq!(io.tun, vec![b"kept".to_vec()]);

    let later = start + Duration::from_secs(20);
    sessions.receive_datagram(&mut io, from, None, &mut data_v2(0, b"Dstill"), later);
    sessions.handle_timeouts(&mut io, start + Duration::from_secs(31));
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions.views("office")[0].id, running);
    assert_eq!(admission.active(), 1);
}

#[test]
fn restarted_client_takes_over_statelessly() {
    let admission = Admission::new(10);
    let mut sessions = stateless_table(&admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    connect_session(&mut sessions, &mut io, from, 2, "alice", 7, now);
    assert_eq!(sessions.len(), 1);
    assert_eq!(admission.active(), 1);
    let pushed = io.sent_to(from);
    let replies = pushed
        .iter()
        .filter(|packet| packet.starts_with("PUSH_REPLY,ifconfig 10.8.0.6"))
        .count();
    assert_eq!(replies, 2);
    sessions.receive_datagram(&mut io, from, None, &mut data_v2(0, b"Dnew"), now);
    assert_eq!(io.tun, vec![b"new".to_vec()]);
}

#[test]
fn resets_at_running_address_keep_no_state() {
    let admission = Admission::new(10);
    let mut sessions = stateless_table(&admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let from = remote(1000);
    connect_session(&mut sessions, &mut io, from, 1, "alice", 7, now);
    for id in 2..30 {
        sessions.receive_datagram(&mut io, from, None, &mut hard_reset(id), now);
    }
    assert_eq!(sessions.len(), 1);
    assert_eq!(admission.active(), 1);
    let cookies = io.sent_to(from);
    let count = cookies
        .iter()
        .filter(|p| p.starts_with("\x40cookie"))
        .count();
    assert_eq!(count, 8, "replies beyond the limit of one source");
}

#[test]
fn timeout_ends_session_and_frees_address() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    let deadline = sessions.next_deadline().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(30));
    sessions.handle_timeouts(&mut io, now + Duration::from_secs(29));
    assert_eq!(sessions.len(), 1);
    sessions.handle_timeouts(&mut io, deadline);
    assert_eq!(sessions.len(), 0);
    assert_eq!(admission.active(), 0);
    assert_eq!(sessions.next_deadline(), None);
}

#[test]
fn lost_tcp_connection_ends_session() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Tcp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let link = Link {
        conn: sessions.new_conn_id(),
        remote: remote(2000),
        local: None,
    };
    sessions.receive_stream(&mut io, link, &mut RESET.to_vec(), now);
    sessions.receive_stream(&mut io, link, &mut auth("alice", 7), now);
    sessions.connection_lost(&mut io, link.conn, now);
    assert_eq!(sessions.len(), 0);
    assert_eq!(admission.active(), 0);
}

#[test]
fn shutdown_sends_restart_to_everyone() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    sessions.receive_datagram(&mut io, remote(1001), None, &mut RESET.to_vec(), now);
    sessions.shutdown(&mut io, now);
    assert_eq!(sessions.len(), 0);
    assert_eq!(admission.active(), 0);
    assert!(io.sent_text_to(remote(1000), "RESTART"));
    assert!(io.sent_text_to(remote(1001), "RESTART"));
}

#[test]
fn handshakes_beyond_limit_are_ignored() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    for port in 0..=MAX_HANDSHAKING as u16 {
        sessions.receive_datagram(&mut io, remote(port), None, &mut RESET.to_vec(), now);
    }
    assert_eq!(sessions.len(), MAX_HANDSHAKING);
    assert_eq!(sessions.counters.ignored, 1);
}

#[test]
fn peer_ids_are_unique() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    for port in 0..3 {
        sessions.receive_datagram(&mut io, remote(port), None, &mut RESET.to_vec(), now);
    }
    let peer_ids: HashSet<u32> = sessions
        .entries
        .values()
        .map(|entry| entry.peer_id)
        .collect();
    assert_eq!(peer_ids.len(), 3);
}

#[test]
fn views_describe_admitted_clients_with_their_traffic() {
    let mut sessions = table(Protocol::Udp, &Admission::new(10));
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    // A session still in its handshake is not listed.
    sessions.receive_datagram(&mut io, remote(1001), None, &mut RESET.to_vec(), now);
    sessions.receive_datagram(
        &mut io,
        remote(1000),
        None,
        &mut data_v2(0, b"Dpayload"),
        now,
    );
    let packet = ipv4_to([10, 8, 0, 6]);
    sessions.route_from_tun(&mut io, &packet, now);

    let views = sessions.views("office");
    assert_eq!(views.len(), 1);
    let view = &views[0];
    assert_eq!(view.server, "office");
    assert_eq!(view.common_name, "alice");
    assert_eq!(view.real_address, remote(1000).to_string());
    assert_eq!(view.virtual_address, "10.8.0.6");
    assert_eq!(view.bytes_in, b"payload".len() as u64);
    assert_eq!(view.bytes_out, packet.len() as u64);
    assert!(
        view.connected_since.ends_with('Z'),
        "{}",
        view.connected_since
    );
    assert_eq!(sessions.clients(), 1);
    assert_eq!(sessions.counters.handshakes, 1);
    assert_eq!(sessions.counters.traffic.packets_in, 1);
    assert_eq!(sessions.counters.traffic.packets_out, 1);
}

#[test]
fn kill_sends_restart_and_frees_the_slot() {
    let admission = Admission::new(10);
    let mut sessions = table(Protocol::Udp, &admission);
    let mut io = RecordingIo::default();
    let now = Instant::now();
    connect_udp(&mut sessions, &mut io, remote(1000), "alice", 7, now);
    let id = sessions.views("office")[0].id;
    assert!(!sessions.kill(&mut io, id + 1000, now));
    assert!(sessions.kill(&mut io, id, now));
    assert!(io.sent_text_to(remote(1000), "RESTART"));
    assert_eq!(sessions.len(), 0);
    assert_eq!(admission.active(), 0);
}

#[test]
fn rejected_clients_are_counted() {
    let mut sessions = table(Protocol::Udp, &Admission::new(0));
    let mut io = RecordingIo::default();
    connect_udp(
        &mut sessions,
        &mut io,
        remote(1000),
        "alice",
        7,
        Instant::now(),
    );
    assert_eq!(sessions.counters.auth_failures, 1);
    assert_eq!(sessions.counters.handshakes, 0);
}
