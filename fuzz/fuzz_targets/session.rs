//! The server session fed arbitrary packets, timeouts and driver calls, either from its
//! first packet on or after a real client finished the handshake.
//!
//! Besides "never panic" the target checks what a driver relies on: `Closed` is reported
//! once, a closed session stays silent, returned ranges lie inside the packet, and after
//! `handle_timeout(now)` and draining `poll_transmit` the next deadline lies in the future.

#![no_main]

#[path = "session_support/rekey.rs"]
mod rekey;

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rekey::Rekey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sslvpn::config::Topology;
use sslvpn::proto::client::{Client, ClientConfig};
use sslvpn::proto::packet::{AckList, ControlPacket, KeyId, MAX_ACKS, Opcode, SessionId};
use sslvpn::proto::session::{
    Authorization, ClientNetwork, CloseKind, Event, Incoming, Session, SessionConfig,
};
use sslvpn::proto::tls;
use sslvpn::proto::wrap::{
    ControlWrap, Digest, KeyDirection, Role, STATIC_KEY_LEN, StaticKey, WrapConfig,
};

const CLIENT_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 6);
const UNIX_START: u64 = 1_700_000_000;
/// Times a driver may call `handle_timeout` in a row before a deadline in the past counts
/// as a busy loop.
const MAX_TIMEOUT_REPEATS: usize = 4;
const CIPHERS: [&str; 6] = [
    "AES-256-GCM",
    "AES-128-GCM",
    "CHACHA20-POLY1305",
    "AES-128-CBC",
    "AES-256-CBC",
    "none",
];

/// Certificates and keys, made once per process.
struct Setup {
    server_tls: Arc<rustls::ServerConfig>,
    client_tls: Arc<rustls::ClientConfig>,
    /// A second client certificate from the same CA, with another common name.
    other_client_tls: Arc<rustls::ClientConfig>,
    static_key: Arc<StaticKey>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::new()).expect("CA parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, "fuzz CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_der = params
            .self_signed(&ca_key)
            .expect("CA certificate")
            .der()
            .clone();
        let issuer = Issuer::new(params, ca_key);
        let (server_der, server_key) = issue(&issuer, "fuzz-server", true);
        let (client_der, client_key) = issue(&issuer, "alice", false);
        let (other_der, other_key) = issue(&issuer, "mallory", false);
        let server_tls = tls::server_config(ca_der.clone(), vec![server_der], server_key, vec![])
            .expect("server TLS configuration");
        let client_tls = tls::client_config(ca_der.clone(), vec![client_der], client_key)
            .expect("client TLS configuration");
        let other_client_tls = tls::client_config(ca_der, vec![other_der], other_key)
            .expect("second client TLS configuration");
        let mut bytes = [0; STATIC_KEY_LEN];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = (index as u8).wrapping_mul(17).wrapping_add(9);
        }
        Setup {
            server_tls,
            client_tls,
            other_client_tls,
            static_key: Arc::new(StaticKey::from_bytes(bytes)),
        }
    })
}

fn issue(
    issuer: &Issuer<'static, KeyPair>,
    common_name: &str,
    server: bool,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::new()).expect("parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.serial_number = Some(SerialNumber::from(vec![if server { 1 } else { 2 }]));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let certificate = params.signed_by(&key, issuer).expect("certificate");
    (
        certificate.der().clone(),
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
}

/// Server settings that the input picks; the certificates stay fixed.
#[derive(Arbitrary, Debug)]
struct Settings {
    protection: u8,
    compression: bool,
    tcp: bool,
    subnet: bool,
    fallback: u8,
    keepalive_interval: u8,
    keepalive_timeout: u8,
    hand_window: u8,
    reneg_interval: u16,
    tls_mtu: u16,
    /// How the target responds to `Authenticate`: accept, reject or leave it pending.
    decision: u8,
}

/// Client settings for the handshake mode, limited to what the test client can send.
#[derive(Arbitrary, Debug)]
struct ClientSettings {
    ciphers: u8,
    options_cipher: u8,
    ekm: bool,
    comp_lzo: bool,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Arbitrary, Debug)]
enum First {
    Raw(Vec<u8>),
    Reset {
        opcode: u8,
        key_id: u8,
        session_id: [u8; 8],
        acks: Vec<u32>,
        peer_session_id: [u8; 8],
        message_id: u32,
        payload: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Bytes as they come from the network.
    Raw(Vec<u8>),
    /// A control packet with the real session ids unless the flags change them, wrapped with
    /// the client's protection.
    Control {
        opcode: u8,
        key_id: u8,
        acks: Vec<u32>,
        message_id: u32,
        payload: Vec<u8>,
        wrong_session_id: bool,
        wrong_peer_session_id: bool,
    },
    /// A data packet header with arbitrary contents behind it.
    Data {
        key_id: u8,
        data_v2: bool,
        body: Vec<u8>,
    },
    /// A payload encrypted by the real client (handshake mode).
    ClientData(Vec<u8>),
    /// An IPv4 packet from the client's address, encrypted by the real client.
    ClientIp(Vec<u8>),
    /// Moves packets between the real client and the server this many times.
    Exchange(u8),
    /// Runs a client renegotiation for this many rounds: the one in progress, or a new one
    /// for `key_id` (values above 7 pick the key id the server expects). A new one may
    /// present another certificate and send PUSH_REQUEST after its key method 2 message.
    Rekey {
        restart: bool,
        key_id: u8,
        rounds: u8,
        other_certificate: bool,
        push_request: bool,
    },
    Advance(u32),
    /// Jumps to the session's next deadline.
    Deadline,
    Transmit,
    Authorize(bool),
    Encrypt(Vec<u8>),
    Close(bool),
}

/// The fields of [`Op::Rekey`].
struct RekeyOp {
    restart: bool,
    key_id: u8,
    rounds: u8,
    other_certificate: bool,
    push_request: bool,
}

struct Harness {
    session: Session,
    client: Option<Client>,
    /// The protection a client applies, for packets built by the target.
    wrap: ControlWrap,
    client_session_id: SessionId,
    server_session_id: Option<SessionId>,
    start: Instant,
    now: Instant,
    decision: u8,
    closed_events: usize,
    buffer: Vec<u8>,
    rekey: Option<Rekey>,
    trace: bool,
    /// The key id of the next renegotiation, as the server counts.
    next_key_id: KeyId,
}

impl Harness {
    fn unix(&self) -> u32 {
        (UNIX_START + (self.now - self.start).as_secs()) as u32
    }

    fn check_closed(&mut self) {
        if !self.session.is_closed() {
            return;
        }
        assert!(
            self.session.poll_timeout().is_none(),
            "closed session has a deadline"
        );
        let mut out = Vec::new();
        assert!(
            !self.session.poll_transmit(self.now, &mut out),
            "closed session sent a packet"
        );
    }

    fn handle(&mut self, mut packet: Vec<u8>) {
        let len = packet.len();
        let closed = self.session.is_closed();
        match self.session.handle_packet(&mut packet, self.now) {
            Incoming::Ip(range) => {
                assert!(
                    range.start <= range.end && range.end <= len,
                    "{range:?} of {len}"
                );
                assert!(!closed, "closed session returned an IP packet");
            }
            Incoming::Decompressed(bytes) => assert!(!closed && bytes.len() <= 1600),
            Incoming::Consumed => assert!(!closed, "closed session consumed a packet"),
            Incoming::Dropped(_) => {}
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            let text = format!("{event:?}");
            if self.trace {
                eprintln!("event {text}");
            }
            match event {
                Event::Closed { .. } => {
                    self.closed_events += 1;
                    assert_eq!(self.closed_events, 1, "Closed reported twice");
                }
                Event::Authenticate(_) => {
                    assert_eq!(self.closed_events, 0, "Authenticate after Closed");
                    match self.decision % 3 {
                        0 => self.accept(),
                        1 => self
                            .session
                            .authorize(Authorization::Reject("no".into()), self.now),
                        _ => {}
                    }
                }
                Event::Established { .. } | Event::Renegotiated { .. } => {
                    assert_eq!(self.closed_events, 0, "event after Closed");
                }
            }
        }
    }

    fn accept(&mut self) {
        let network = ClientNetwork {
            address: CLIENT_ADDRESS,
            peer_or_netmask: Ipv4Addr::new(10, 8, 0, 5),
        };
        self.session
            .authorize(Authorization::Accept(network), self.now);
    }

    /// Drains the session's packets and returns them.
    fn transmit(&mut self) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        let mut buffer = std::mem::take(&mut self.buffer);
        while self.session.poll_transmit(self.now, &mut buffer) {
            assert!(!buffer.is_empty(), "poll_transmit returned an empty packet");
            let data = matches!(
                Opcode::from_u8(buffer[0] >> 3),
                Some(Opcode::DataV1 | Opcode::DataV2)
            );
            if self.server_session_id.is_none()
                && !data
                && let Some(id) = buffer.get(1..9)
            {
                self.server_session_id = Some(SessionId(id.try_into().expect("8 bytes")));
            }
            packets.push(buffer.clone());
            assert!(packets.len() < 10_000, "poll_transmit never ends");
        }
        self.buffer = buffer;
        packets
    }

    /// Hands the server's packets to the renegotiating client side when they carry its key
    /// id, and to the real client otherwise.
    fn deliver(&mut self, packets: Vec<Vec<u8>>) {
        for mut packet in packets {
            let first = packet[0];
            let control = Opcode::from_u8(first >> 3).is_some_and(|opcode| opcode.is_control());
            if control && first >> 3 == Opcode::SoftResetV1.as_u8() {
                self.next_key_id = KeyId::new(first & 7).expect("three bits");
            }
            if let Some(rekey) = &mut self.rekey
                && control
                && rekey.key_id.get() == first & 7
            {
                let mut plain = Vec::new();
                if self.wrap.unwrap(&packet, &mut plain).is_ok() {
                    rekey.handle(&plain);
                }
                continue;
            }
            if let Some(client) = &mut self.client {
                client.handle_packet(&mut packet, self.now);
            }
        }
        if let Some(client) = &mut self.client {
            while client.poll_event().is_some() {}
        }
    }

    fn rekey(&mut self, op: RekeyOp) {
        let RekeyOp {
            restart,
            key_id,
            rounds,
            other_certificate,
            push_request,
        } = op;
        let Some(server_id) = self.server_session_id else {
            return;
        };
        if restart || self.rekey.is_none() {
            let key_id = match KeyId::new(key_id) {
                Ok(key_id) => key_id,
                Err(_) => self.next_key_id,
            };
            self.next_key_id = key_id.next();
            let tls = if other_certificate {
                setup().other_client_tls.clone()
            } else {
                setup().client_tls.clone()
            };
            let mut rekey = Rekey::new(tls, key_id, self.client_session_id, server_id);
            rekey.push_request = push_request;
            self.rekey = Some(rekey);
        }
        for _ in 0..rounds {
            let unix = self.unix();
            let outgoing = match &mut self.rekey {
                Some(rekey) => rekey.poll(self.now),
                None => return,
            };
            let mut moved = !outgoing.is_empty();
            for plain in outgoing {
                let mut wire = Vec::new();
                if self.wrap.wrap(&plain, unix, &mut wire).is_ok() {
                    self.handle(wire);
                }
            }
            self.drain_events();
            let packets = self.transmit();
            moved |= !packets.is_empty();
            self.deliver(packets);
            if !moved {
                self.now += Duration::from_millis(200);
                self.timeout();
            }
            if !moved && self.rekey.as_ref().is_some_and(Rekey::is_done) {
                return;
            }
        }
    }

    /// Calls `handle_timeout` as a driver does and checks that the next deadline moves past
    /// `now` within a few calls.
    fn timeout(&mut self) {
        for _ in 0..MAX_TIMEOUT_REPEATS {
            self.session.handle_timeout(self.now);
            self.drain_events();
            let packets = self.transmit();
            self.deliver(packets);
            match self.session.poll_timeout() {
                Some(at) if at <= self.now => continue,
                _ => return,
            }
        }
        panic!(
            "deadline {:?} stays in the past after {MAX_TIMEOUT_REPEATS} timeouts: {:?}",
            self.session.poll_timeout().map(|at| self.now - at),
            self.session
        );
    }

    fn exchange(&mut self, rounds: u8) {
        for _ in 0..rounds {
            let mut moved = false;
            let unix = self.unix();
            if let Some(client) = &mut self.client {
                let mut out = Vec::new();
                let mut outgoing = Vec::new();
                while client.poll_transmit(self.now, unix, &mut out) {
                    outgoing.push(out.clone());
                }
                for packet in outgoing {
                    moved = true;
                    self.handle(packet);
                }
            }
            self.drain_events();
            let packets = self.transmit();
            moved |= !packets.is_empty();
            self.deliver(packets);
            if !moved {
                self.now += Duration::from_millis(500);
                self.timeout();
            }
        }
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Raw(bytes) => self.handle(bytes),
            Op::Control {
                opcode,
                key_id,
                acks,
                message_id,
                payload,
                wrong_session_id,
                wrong_peer_session_id,
            } => {
                let mut session_id = self.client_session_id;
                if wrong_session_id {
                    session_id.0[0] ^= 1;
                }
                let mut peer = self.server_session_id.unwrap_or(SessionId([0; 8]));
                if wrong_peer_session_id {
                    peer.0[7] ^= 1;
                }
                if let Some(packet) = control_packet(
                    opcode, key_id, session_id, &acks, peer, message_id, &payload,
                ) {
                    let mut wire = Vec::new();
                    if self.wrap.wrap(&packet, self.unix(), &mut wire).is_ok() {
                        self.handle(wire);
                    }
                }
            }
            Op::Data {
                key_id,
                data_v2,
                body,
            } => {
                let opcode = if data_v2 {
                    Opcode::DataV2
                } else {
                    Opcode::DataV1
                };
                let mut packet = vec![(opcode.as_u8() << 3) | (key_id % 8)];
                if data_v2 {
                    packet.extend_from_slice(&[0, 0, 3]);
                }
                packet.extend_from_slice(&body);
                self.handle(packet);
            }
            Op::ClientData(payload) => {
                if let Some(packet) = self.client.as_mut().and_then(|c| c.encrypt(&payload)) {
                    self.handle(packet);
                }
            }
            Op::ClientIp(body) => {
                let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
                ip.extend_from_slice(&CLIENT_ADDRESS.octets());
                ip.extend_from_slice(&[192, 168, 77, 10]);
                ip.extend_from_slice(&body);
                if let Some(packet) = self.client.as_mut().and_then(|c| c.encrypt(&ip)) {
                    self.handle(packet);
                }
            }
            Op::Exchange(rounds) => self.exchange(rounds % 16),
            Op::Rekey {
                restart,
                key_id,
                rounds,
                other_certificate,
                push_request,
            } => self.rekey(RekeyOp {
                restart,
                key_id,
                rounds: rounds % 32,
                other_certificate,
                push_request,
            }),
            Op::Advance(millis) => {
                self.now += Duration::from_millis(u64::from(millis % 600_000));
                self.timeout();
            }
            Op::Deadline => {
                if let Some(at) = self.session.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.timeout();
            }
            Op::Transmit => {
                let packets = self.transmit();
                self.deliver(packets);
            }
            Op::Authorize(accept) => {
                if accept {
                    self.accept();
                } else {
                    self.session
                        .authorize(Authorization::Reject("later".into()), self.now);
                }
            }
            Op::Encrypt(payload) => {
                let mut out = Vec::new();
                if self.session.encrypt(&payload, &mut out, self.now) {
                    assert!(!self.session.is_closed(), "closed session encrypted");
                    self.deliver(vec![out]);
                }
            }
            Op::Close(restart) => {
                let kind = if restart {
                    CloseKind::Restart
                } else {
                    CloseKind::Drop
                };
                self.session.close(kind, self.now);
            }
        }
        self.drain_events();
        self.check_closed();
    }
}

/// Encodes a control packet in the layout without protection, or `None` for an opcode that
/// the codec cannot encode.
fn control_packet(
    opcode: u8,
    key_id: u8,
    session_id: SessionId,
    acks: &[u32],
    peer: SessionId,
    message_id: u32,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let opcode = Opcode::from_u8(opcode % 12)?;
    let acks = AckList::try_from(&acks[..acks.len().min(MAX_ACKS)]).ok()?;
    let is_ack = opcode == Opcode::AckV1;
    let packet = ControlPacket {
        opcode,
        key_id: KeyId::new(key_id % 8).ok()?,
        session_id,
        acks,
        peer_session_id: Some(peer),
        message_id: (!is_ack).then_some(message_id),
        payload: if is_ack { &[] } else { payload },
    };
    let mut out = Vec::new();
    packet.encode(&mut out).ok()?;
    Some(out)
}

fn wrap_configs(protection: u8, key: &Arc<StaticKey>) -> (WrapConfig, WrapConfig) {
    match protection % 4 {
        0 => (WrapConfig::None, WrapConfig::None),
        1 => {
            let config = |direction| WrapConfig::TlsAuth {
                key: key.clone(),
                digest: Digest::Sha256,
                direction,
            };
            (config(KeyDirection::Normal), config(KeyDirection::Inverse))
        }
        2 => {
            let config = |direction| WrapConfig::TlsAuth {
                key: key.clone(),
                digest: Digest::Sha1,
                direction,
            };
            (
                config(KeyDirection::Bidirectional),
                config(KeyDirection::Bidirectional),
            )
        }
        _ => (
            WrapConfig::TlsCrypt {
                key: key.clone(),
                role: Role::Server,
            },
            WrapConfig::TlsCrypt {
                key: key.clone(),
                role: Role::Client,
            },
        ),
    }
}

fn session_config(settings: &Settings, wrap: WrapConfig) -> Arc<SessionConfig> {
    let fallback =
        ["AES-128-CBC", "AES-256-CBC", "none", "AES-256-GCM"][usize::from(settings.fallback % 4)];
    let mut data_ciphers: Vec<String> = CIPHERS[..3].iter().map(|c| c.to_string()).collect();
    data_ciphers.push(fallback.to_owned());
    let keepalive_interval = Duration::from_secs(u64::from(settings.keepalive_interval % 60) + 1);
    let keepalive_timeout =
        keepalive_interval * 2 + Duration::from_secs(u64::from(settings.keepalive_timeout % 120));
    Arc::new(SessionConfig {
        tls: setup().server_tls.clone(),
        wrap,
        data_ciphers,
        fallback_cipher: fallback.to_owned(),
        compression: settings.compression,
        tcp: settings.tcp,
        routes: vec!["192.168.77.0/24".parse().expect("network")],
        topology: if settings.subnet {
            Topology::Subnet
        } else {
            Topology::Net30
        },
        server_address: Ipv4Addr::new(10, 8, 0, 1),
        pool_netmask: Ipv4Addr::new(255, 255, 255, 0),
        keepalive_interval,
        keepalive_timeout,
        hand_window: Duration::from_secs(u64::from(settings.hand_window % 120) + 1),
        reneg_interval: Duration::from_secs(u64::from(settings.reneg_interval % 7200) + 1),
        tls_mtu: usize::from(settings.tls_mtu),
    })
}

fn client_config(settings: ClientSettings, wrap: WrapConfig) -> ClientConfig {
    let ciphers = CIPHERS
        .iter()
        .enumerate()
        .filter(|(index, _)| settings.ciphers & (1 << index) != 0)
        .map(|(_, name)| name.to_string())
        .collect();
    // Only names the test client can install, because it trusts the server's choice.
    let options_cipher = ["AES-128-CBC", "AES-256-CBC", "[null-cipher]", "AES-256-GCM"]
        [usize::from(settings.options_cipher % 4)];
    let credential = |text: Option<String>| {
        text.map(|text| text.replace('\0', "").chars().take(100).collect::<String>())
    };
    ClientConfig {
        tls: setup().client_tls.clone(),
        wrap,
        ciphers,
        options_cipher: options_cipher.to_owned(),
        ekm: settings.ekm,
        comp_lzo: settings.comp_lzo,
        username: credential(settings.username),
        password: credential(settings.password),
    }
}

fn run(data: &[u8]) -> arbitrary::Result<()> {
    let mut input = Unstructured::new(data);
    let handshake = bool::arbitrary(&mut input)?;
    let settings = Settings::arbitrary(&mut input)?;
    let (server_wrap, client_wrap) = wrap_configs(settings.protection, &setup().static_key);
    let config = session_config(&settings, server_wrap);
    let start = Instant::now();
    let mut wrap = client_wrap.build().expect("client protection");

    let (first, client) = if handshake {
        let mut client = Client::new(client_config(
            ClientSettings::arbitrary(&mut input)?,
            client_wrap,
        ));
        let mut first = Vec::new();
        if !client.poll_transmit(start, UNIX_START as u32, &mut first) {
            return Ok(());
        }
        (first, Some(client))
    } else {
        let first = match First::arbitrary(&mut input)? {
            First::Raw(bytes) => bytes,
            First::Reset {
                opcode,
                key_id,
                session_id,
                acks,
                peer_session_id,
                message_id,
                payload,
            } => {
                let Some(plain) = control_packet(
                    opcode,
                    key_id,
                    SessionId(session_id),
                    &acks,
                    SessionId(peer_session_id),
                    message_id,
                    &payload,
                ) else {
                    return Ok(());
                };
                let mut wire = Vec::new();
                if wrap.wrap(&plain, UNIX_START as u32, &mut wire).is_err() {
                    return Ok(());
                }
                wire
            }
        };
        (first, None)
    };
    let client_session_id = match first.get(1..9) {
        Some(id) => SessionId(id.try_into().expect("8 bytes")),
        None => SessionId([0; 8]),
    };
    let Ok(session) = Session::new(config, &first, 3, start, UNIX_START) else {
        return Ok(());
    };
    if handshake {
        // Replay ids of the target's packets stay clear of the client's. Once one of them
        // arrives, the client's later control packets count as too old, which only matters
        // for the control channel after the handshake.
        wrap.set_send_counter(1 << 20);
    }
    let mut harness = Harness {
        session,
        client,
        wrap,
        client_session_id,
        server_session_id: None,
        start,
        now: start,
        decision: settings.decision,
        closed_events: 0,
        buffer: Vec::new(),
        rekey: None,
        trace: std::env::var_os("SESSION_FUZZ_TRACE").is_some(),
        next_key_id: KeyId::ZERO.next(),
    };
    harness.drain_events();
    if harness.client.is_some() {
        harness.exchange(40);
    }
    let trace = harness.trace;
    if trace {
        eprintln!(
            "handshake {handshake}, {settings:?}, first packet of {} bytes",
            first.len()
        );
    }
    while !input.is_empty() {
        let op = Op::arbitrary(&mut input)?;
        if trace {
            eprintln!("{op:?} at +{:?}", harness.now - harness.start);
        }
        harness.run(op);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
