//! A client core and a server session talking in one process on simulated time.

use std::time::{Duration, Instant};

use super::*;
use crate::proto::client::{Client, ClientConfig, ClientEvent};
use crate::proto::cookie::CookieKey;
use crate::proto::test_pki::TestCa;
use crate::proto::tls;

const CLIENT_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 6);

struct Pair {
    client: Client,
    server: Option<Session>,
    now: Instant,
    start: Instant,
    server_events: Vec<Event>,
    client_events: Vec<ClientEvent>,
    /// Every n-th packet in each direction is lost (0: none).
    loss_every: usize,
    /// Every n-th packet in each direction arrives twice (0: none).
    duplicate_every: usize,
    /// Each burst of packets arrives in reverse order.
    reorder: bool,
    sent: usize,
    config: Arc<SessionConfig>,
    accept: bool,
    /// Start the session statelessly, as the UDP driver does, when set.
    cookie: Option<CookieKey>,
    stateless_replies: usize,
    /// Handed to the server session before it accepts the client.
    auth_token: Option<Secret>,
}

fn server_config(ca: &TestCa, compression: bool, fallback: &str) -> Arc<SessionConfig> {
    server_config_with_reneg(ca, compression, fallback, Duration::from_secs(3600))
}

fn server_config_with_reneg(
    ca: &TestCa,
    compression: bool,
    fallback: &str,
    reneg_interval: Duration,
) -> Arc<SessionConfig> {
    let cert = ca.issue("office-server", true, 100);
    let tls =
        tls::server_config(ca.der.clone(), vec![cert.der], cert.key, vec![ca.crl(&[])]).unwrap();
    Arc::new(SessionConfig {
        tls,
        wrap: WrapConfig::None,
        data_ciphers: vec![
            "AES-256-GCM".into(),
            "AES-128-GCM".into(),
            "CHACHA20-POLY1305".into(),
            fallback.into(),
        ],
        fallback_cipher: fallback.into(),
        compression,
        tcp: false,
        routes: vec!["192.168.77.0/24".parse().unwrap()],
        topology: Topology::Net30,
        server_address: Ipv4Addr::new(10, 8, 0, 1),
        pool_netmask: Ipv4Addr::new(255, 255, 255, 0),
        keepalive_interval: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(60),
        hand_window: Duration::from_secs(60),
        reneg_interval,
        tls_mtu: DEFAULT_TLS_MTU,
    })
}

fn client_config(ca: &TestCa, ciphers: &[&str], options_cipher: &str) -> ClientConfig {
    let cert = ca.issue("alice", false, 7);
    ClientConfig {
        tls: tls::client_config(ca.der.clone(), vec![cert.der], cert.key).unwrap(),
        wrap: WrapConfig::None,
        ciphers: ciphers.iter().map(|c| c.to_string()).collect(),
        options_cipher: options_cipher.into(),
        ekm: true,
        comp_lzo: false,
        username: None,
        password: None,
    }
}

impl Pair {
    fn new(config: Arc<SessionConfig>, client: ClientConfig) -> Self {
        let now = Instant::now();
        Self {
            client: Client::new(client),
            server: None,
            now,
            start: now,
            server_events: Vec::new(),
            client_events: Vec::new(),
            loss_every: 0,
            duplicate_every: 0,
            reorder: false,
            sent: 0,
            config,
            accept: true,
            cookie: None,
            stateless_replies: 0,
            auth_token: None,
        }
    }

    fn lost(&mut self) -> bool {
        self.sent += 1;
        self.loss_every != 0 && self.sent.is_multiple_of(self.loss_every)
    }

    /// Applies the network's faults to one burst of packets: loss, duplication, reordering.
    fn disturb(&mut self, packets: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut delivered = Vec::with_capacity(packets.len());
        for packet in packets {
            if self.lost() {
                continue;
            }
            if self.duplicate_every != 0 && self.sent.is_multiple_of(self.duplicate_every) {
                delivered.push(packet.clone());
            }
            delivered.push(packet);
        }
        if self.reorder {
            delivered.reverse();
        }
        delivered
    }

    /// Moves packets both ways until neither side sends, then advances time to the next
    /// deadline. Runs `rounds` times.
    fn run(&mut self, rounds: usize) {
        let mut buf = Vec::new();
        for _ in 0..rounds {
            let unix = 1_700_000_000 + (self.now - self.start).as_secs() as u32;
            let mut moved = false;
            let mut outbound = Vec::new();
            while self.client.poll_transmit(self.now, unix, &mut buf) {
                moved = true;
                outbound.push(buf.clone());
            }
            for mut buf in self.disturb(outbound) {
                match (&mut self.server, &self.cookie) {
                    (None, Some(key)) => {
                        let address: std::net::SocketAddr = "192.0.2.2:40000".parse().unwrap();
                        let handshake = StatelessHandshake::new(key.clone(), &self.config).unwrap();
                        let mut reply = Vec::new();
                        let answered =
                            stateless_reply(&handshake, &buf, address, unix.into(), &mut reply);
                        if answered.is_ok() {
                            self.stateless_replies += 1;
                            let overhead = self.config.wrap.build().unwrap().overhead();
                            assert!(
                                reply.len() <= 26 + overhead,
                                "stateless reply of {} bytes",
                                reply.len()
                            );
                            self.client.handle_packet(&mut reply, self.now);
                            continue;
                        }
                        let session = Session::from_cookie(
                            self.config.clone(),
                            &handshake,
                            &buf,
                            address,
                            3,
                            self.now,
                            unix.into(),
                        );
                        self.server = Some(session.unwrap());
                    }
                    (None, None) => {
                        let session =
                            Session::new(self.config.clone(), &buf, 3, self.now, unix.into());
                        self.server = Some(session.unwrap());
                    }
                    (Some(server), _) => {
                        server.handle_packet(&mut buf, self.now);
                    }
                }
            }
            if let Some(server) = &mut self.server {
                while let Some(event) = server.poll_event() {
                    if let Event::Authenticate(_) = &event {
                        if let Some(token) = &self.auth_token {
                            server.set_auth_token(token.clone());
                        }
                        let decision = if self.accept {
                            Authorization::Accept(ClientNetwork {
                                address: CLIENT_ADDRESS,
                                peer_or_netmask: Ipv4Addr::new(10, 8, 0, 5),
                            })
                        } else {
                            Authorization::Reject("not today".into())
                        };
                        server.authorize(decision, self.now);
                    }
                    self.server_events.push(event);
                }
                let mut packets = Vec::new();
                while server.poll_transmit(self.now, &mut buf) {
                    packets.push(buf.clone());
                }
                moved |= !packets.is_empty();
                for mut packet in self.disturb(packets) {
                    self.client.handle_packet(&mut packet, self.now);
                }
            }
            while let Some(event) = self.client.poll_event() {
                self.client_events.push(event);
            }
            if !moved {
                let next = self.server.as_ref().and_then(|s| s.poll_timeout());
                let step = Duration::from_millis(500);
                self.now = match next {
                    Some(at) if at > self.now => at.min(self.now + step),
                    _ => self.now + step,
                };
                if let Some(server) = &mut self.server {
                    server.handle_timeout(self.now);
                }
            }
        }
    }

    fn connected(&self) -> Option<&Vec<String>> {
        self.client_events.iter().find_map(|event| match event {
            ClientEvent::Connected(options) => Some(options),
            _ => None,
        })
    }
}

/// A minimal IPv4 header from `source` with a recognisable body.
/// Checks a hard reset and writes the stateless reply, as the UDP driver does without its
/// rate limit.
fn stateless_reply(
    handshake: &StatelessHandshake,
    packet: &[u8],
    client: std::net::SocketAddr,
    unix_time: u64,
    out: &mut Vec<u8>,
) -> Result<(), SessionError> {
    let client_session = handshake.check_hard_reset(packet)?;
    handshake.reply(client_session, client, unix_time, out)
}

fn ip_packet(source: Ipv4Addr, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
    packet.extend_from_slice(&source.octets());
    packet.extend_from_slice(&[192, 168, 77, 10]);
    packet.extend_from_slice(body);
    packet
}

fn assert_data_both_ways(pair: &mut Pair) {
    let outbound = ip_packet(CLIENT_ADDRESS, b"from the client");
    let mut wire = pair.client.encrypt(&outbound).expect("client has keys");
    let server = pair.server.as_mut().unwrap();
    let range = match server.handle_packet(&mut wire, pair.now) {
        Incoming::Ip(range) => range,
        other => panic!("expected an IP packet, got {other:?}"),
    };
    assert_eq!(&wire[range], &outbound[..]);

    let inbound = ip_packet(Ipv4Addr::new(192, 168, 77, 10), b"from the local network");
    let mut wire = Vec::new();
    assert!(server.encrypt(&inbound, &mut wire, pair.now));
    let payload = pair.client.handle_packet(&mut wire, pair.now);
    assert_eq!(payload.as_deref(), Some(&inbound[..]));
}

#[test]
fn client_connects_and_moves_data() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM", "AES-128-GCM"], "AES-128-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.run(40);
    let options = pair.connected().expect("client connected").clone();
    assert!(
        options.contains(&"ifconfig 10.8.0.6 10.8.0.5".to_owned()),
        "{options:?}"
    );
    assert!(
        options.contains(&"route 192.168.77.0 255.255.255.0".to_owned()),
        "{options:?}"
    );
    assert!(
        options.contains(&"cipher AES-256-GCM".to_owned()),
        "{options:?}"
    );
    assert!(options.contains(&"peer-id 3".to_owned()), "{options:?}");
    assert!(
        matches!(pair.server_events[0], Event::Authenticate(ref request) if request.common_name == "alice")
    );
    assert!(
        pair.server_events
            .iter()
            .any(|event| matches!(event, Event::Established { cipher } if cipher == "AES-256-GCM"))
    );
    assert_data_both_ways(&mut pair);
}

#[test]
fn every_cipher_moves_data() {
    for (offered, fallback) in [
        (vec!["AES-128-GCM"], "AES-128-CBC"),
        (vec!["CHACHA20-POLY1305"], "AES-128-CBC"),
        (vec![], "AES-128-CBC"),
        (vec![], "AES-192-CBC"),
        (vec![], "AES-256-CBC"),
        (vec![], "none"),
    ] {
        let ca = TestCa::new("office CA");
        let options_cipher = if fallback == "none" {
            "[null-cipher]"
        } else {
            fallback
        };
        let mut client = client_config(&ca, &offered, options_cipher);
        client.ekm = !offered.is_empty();
        let mut pair = Pair::new(server_config(&ca, false, fallback), client);
        pair.run(40);
        assert!(
            pair.connected().is_some(),
            "{offered:?}/{fallback}: {:?}",
            pair.server_events
        );
        assert_data_both_ways(&mut pair);
    }
}

#[test]
fn comp_lzo_framing_moves_data() {
    let ca = TestCa::new("office CA");
    let mut client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    client.comp_lzo = true;
    let mut pair = Pair::new(server_config(&ca, true, "AES-128-CBC"), client);
    pair.run(40);
    assert!(pair.connected().is_some());
    assert_data_both_ways(&mut pair);
}

#[test]
fn handshake_survives_duplication_and_reordering() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.duplicate_every = 2;
    pair.reorder = true;
    for _ in 0..400 {
        if pair.connected().is_some() {
            break;
        }
        pair.run(1);
    }
    assert!(pair.connected().is_some(), "{:?}", pair.server_events);
    pair.duplicate_every = 0;
    pair.reorder = false;
    assert_data_both_ways(&mut pair);
}

#[test]
fn handshake_survives_packet_loss() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.loss_every = 3;
    for _ in 0..400 {
        if pair.connected().is_some() {
            break;
        }
        pair.run(1);
    }
    assert!(pair.connected().is_some(), "{:?}", pair.server_events);
    pair.loss_every = 0;
    assert_data_both_ways(&mut pair);
}

#[test]
fn rejected_client_gets_auth_failed() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.accept = false;
    pair.run(40);
    assert!(
        pair.client_events
            .contains(&ClientEvent::AuthFailed("not today".into())),
        "{:?}",
        pair.client_events
    );
    assert!(pair.server.as_ref().unwrap().is_closed());
}

#[test]
fn restart_reaches_the_client() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.run(40);
    pair.server
        .as_mut()
        .unwrap()
        .close(CloseKind::Restart, pair.now);
    pair.run(10);
    assert!(pair.client_events.contains(&ClientEvent::Restart));
    assert!(pair.server.as_ref().unwrap().is_closed());
}

#[test]
fn silent_client_times_out() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.run(40);
    let server = pair.server.as_mut().unwrap();
    let later = pair.now + Duration::from_secs(121);
    server.handle_timeout(later);
    assert!(server.is_closed());
    let reasons: Vec<_> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(
        matches!(&reasons[..], [Event::Closed { reason }] if reason.contains("120 s")),
        "{reasons:?}"
    );
}

#[test]
fn spoofed_source_is_dropped() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.run(40);
    let spoofed = ip_packet(Ipv4Addr::new(10, 8, 0, 10), b"spoofed");
    let mut wire = pair.client.encrypt(&spoofed).unwrap();
    let result = pair
        .server
        .as_mut()
        .unwrap()
        .handle_packet(&mut wire, pair.now);
    assert!(
        matches!(result, Incoming::Dropped("spoofed source")),
        "{result:?}"
    );
}

#[test]
fn server_renegotiates_and_data_keeps_flowing() {
    for (offered, ekm) in [(vec!["AES-256-GCM"], true), (vec![], false)] {
        let ca = TestCa::new("office CA");
        let mut client = client_config(&ca, &offered, "AES-128-CBC");
        client.ekm = ekm;
        let reneg = Duration::from_secs(20);
        let config = server_config_with_reneg(&ca, false, "AES-128-CBC", reneg);
        let mut pair = Pair::new(config, client);
        pair.run(40);
        assert!(pair.connected().is_some());
        let connected_at = pair.now;
        while pair.now < connected_at + Duration::from_secs(30) {
            pair.run(1);
        }
        let renegotiated = pair.server_events.iter().any(|event| {
            matches!(event, Event::Renegotiated { common_name, .. } if common_name == "alice")
        });
        assert!(renegotiated, "{:?}", pair.server_events);
        let key_id = pair.client.key_id().get();
        assert!(key_id >= 1, "client still on key id 0");
        let mut wire = Vec::new();
        let server = pair.server.as_mut().unwrap();
        assert!(server.encrypt(
            &ip_packet(Ipv4Addr::new(192, 168, 77, 10), b"x"),
            &mut wire,
            pair.now
        ));
        assert_eq!(wire[0] & 0x07, key_id, "server sends with an older key");
        assert_data_both_ways(&mut pair);
    }
}

#[test]
fn auth_token_is_pushed_and_returned_at_renegotiation() {
    let ca = TestCa::new("office CA");
    let mut client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    client.username = Some("alice".into());
    client.password = Some("pw-alice".into());
    let reneg = Duration::from_secs(20);
    let config = server_config_with_reneg(&ca, false, "AES-128-CBC", reneg);
    let mut pair = Pair::new(config, client);
    pair.auth_token = Some(Secret::new(b"sslvpn-session-abc".to_vec()));
    pair.run(40);
    let options = pair.connected().expect("connected").clone();
    assert!(
        options.contains(&"auth-token sslvpn-session-abc".to_owned()),
        "{options:?}"
    );
    let first = pair.server_events.iter().find_map(|event| match event {
        Event::Authenticate(request) => Some(request),
        _ => None,
    });
    let first = first.expect("an Authenticate event");
    assert_eq!(first.username.as_deref(), Some("alice"));
    assert_eq!(
        first.password.as_ref().map(Secret::expose),
        Some(&b"pw-alice"[..])
    );

    let connected_at = pair.now;
    while pair.now < connected_at + Duration::from_secs(30) {
        pair.run(1);
    }
    let renegotiation = pair.server_events.iter().find_map(|event| match event {
        Event::Renegotiated {
            username, password, ..
        } => Some((username.clone(), password.clone())),
        _ => None,
    });
    let (username, password) = renegotiation.expect("a Renegotiated event");
    assert_eq!(username.as_deref(), Some("alice"));
    assert_eq!(
        password.as_ref().map(Secret::expose),
        Some(&b"sslvpn-session-abc"[..])
    );
}

#[test]
fn no_auth_token_without_one_set() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.run(40);
    let options = pair.connected().expect("connected");
    assert!(
        !options
            .iter()
            .any(|option| option.starts_with("auth-token")),
        "{options:?}"
    );
}

#[test]
fn debug_of_auth_request_hides_the_password() {
    let request = AuthRequest {
        common_name: "alice".into(),
        serial_hex: "07".into(),
        username: Some("alice".into()),
        password: Some(Secret::new(b"pw-alice".to_vec())),
        client_version: None,
        client_platform: None,
        cipher: "AES-256-GCM".into(),
    };
    let debug = format!("{request:?}");
    assert!(!debug.contains("pw-alice"), "{debug}");
}

#[test]
fn client_without_shared_cipher_gets_auth_failed() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-CBC"], "AES-256-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.run(40);
    let reason = pair.client_events.iter().find_map(|event| match event {
        ClientEvent::AuthFailed(reason) => Some(reason.clone()),
        _ => None,
    });
    let reason = reason.expect("client told why");
    assert!(reason.contains("AES-256-CBC"), "{reason}");
    assert!(reason.contains("AES-256-GCM:AES-128-GCM"), "{reason}");
    assert!(pair.server.as_ref().unwrap().is_closed());
    assert!(pair.connected().is_none());
}

#[test]
fn stateless_handshake_connects() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.cookie = Some(CookieKey::new([5; 16]));
    pair.run(40);
    assert_eq!(pair.stateless_replies, 1);
    assert!(pair.connected().is_some(), "{:?}", pair.server_events);
    assert_data_both_ways(&mut pair);
}

#[test]
fn cookie_from_another_address_is_rejected() {
    let ca = TestCa::new("office CA");
    let config = server_config(&ca, false, "AES-128-CBC");
    let key = CookieKey::new([5; 16]);
    let mut client = Client::new(client_config(&ca, &["AES-256-GCM"], "AES-128-CBC"));
    let now = Instant::now();
    let unix = 1_700_000_000;
    let mut reset = Vec::new();
    assert!(client.poll_transmit(now, unix as u32, &mut reset));
    let real: std::net::SocketAddr = "192.0.2.2:40000".parse().unwrap();
    let spoofed: std::net::SocketAddr = "192.0.2.99:40000".parse().unwrap();
    let handshake = StatelessHandshake::new(key, &config).unwrap();
    let mut reply = Vec::new();
    stateless_reply(&handshake, &reset, real, unix, &mut reply).unwrap();
    client.handle_packet(&mut reply, now);
    let mut proof = Vec::new();
    assert!(client.poll_transmit(now, unix as u32, &mut proof));
    let from_cookie = |client, unix_time| {
        Session::from_cookie(
            config.clone(),
            &handshake,
            &proof,
            client,
            3,
            now,
            unix_time,
        )
    };
    assert!(
        from_cookie(spoofed, unix).is_err(),
        "accepted from another address"
    );
    assert!(from_cookie(real, unix + 90).is_err(), "accepted too late");
    assert!(from_cookie(real, unix + 20).is_ok(), "rejected in time");
}

#[test]
fn stateless_reply_ignores_other_packets() {
    let ca = TestCa::new("office CA");
    let config = server_config(&ca, false, "AES-128-CBC");
    let key = CookieKey::new([5; 16]);
    let client: std::net::SocketAddr = "192.0.2.2:40000".parse().unwrap();
    let handshake = StatelessHandshake::new(key, &config).unwrap();
    let mut out = Vec::new();
    for junk in [
        &[][..],
        &[0x38],
        &[0x20; 30],
        &[0x38, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 1],
    ] {
        let answered = stateless_reply(&handshake, junk, client, 1_700_000_000, &mut out);
        assert!(answered.is_err(), "answered {junk:?}");
    }
}

#[test]
fn repeated_renegotiations_keep_working() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let reneg = Duration::from_secs(10);
    let config = server_config_with_reneg(&ca, false, "AES-128-CBC", reneg);
    let mut pair = Pair::new(config, client);
    pair.run(40);
    assert!(pair.connected().is_some());
    let connected_at = pair.now;
    // Nine renegotiations, closer together than the lame duck time, wrapping the key ids.
    while pair.now < connected_at + Duration::from_secs(95) {
        pair.run(1);
        if let Some(server) = &pair.server {
            assert!(!server.is_closed(), "{:?}", pair.server_events);
        }
    }
    let renegotiations = pair
        .server_events
        .iter()
        .filter(|event| matches!(event, Event::Renegotiated { .. }))
        .count();
    assert!(renegotiations >= 8, "{renegotiations} renegotiations");
    assert_data_both_ways(&mut pair);
}

/// Once the key expires, the server starts a renegotiation. Until that ends, the expired
/// renegotiation time must not remain the next deadline, or the driver would spin.
#[test]
fn renegotiation_deadline_lies_ahead() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let mut config = server_config(&ca, false, "AES-128-CBC");
    Arc::get_mut(&mut config).unwrap().reneg_interval = Duration::from_secs(100);
    let mut pair = Pair::new(config, client);
    pair.run(40);
    assert!(pair.connected().is_some());
    let server = pair.server.as_mut().unwrap();
    let later = pair.start + Duration::from_secs(101);
    server.handle_timeout(later);
    let mut buf = Vec::new();
    let mut sent = Vec::new();
    while server.poll_transmit(later, &mut buf) {
        sent.push(buf[0] >> 3);
    }
    assert!(sent.contains(&Opcode::SoftResetV1.as_u8()), "{sent:?}");
    let deadline = server.poll_timeout().unwrap();
    assert!(deadline > later, "{:?} in the past", later - deadline);
}

/// An authentication result that arrives after the session ended must not revive it.
#[test]
fn late_authorization_is_ignored() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.run(40);
    let server = pair.server.as_mut().unwrap();
    server.close(CloseKind::Drop, pair.now);
    let closed: Vec<_> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(matches!(&closed[..], [Event::Closed { .. }]), "{closed:?}");

    server.authorize(Authorization::Reject("too late".into()), pair.now);
    server.authorize(
        Authorization::Accept(ClientNetwork {
            address: CLIENT_ADDRESS,
            peer_or_netmask: Ipv4Addr::new(10, 8, 0, 5),
        }),
        pair.now,
    );
    let later: Vec<_> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(later.is_empty(), "{later:?}");
    assert!(server.is_closed());
    assert_eq!(server.poll_timeout(), None);
    assert!(!server.poll_transmit(pair.now, &mut Vec::new()));
}

/// While RESTART lingers, the session forwards no data and starts no renegotiation, so it
/// reports nothing after `Closed`.
#[test]
fn closing_session_ignores_new_work() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.run(40);
    let outbound = ip_packet(CLIENT_ADDRESS, b"late data");
    let mut wire = pair.client.encrypt(&outbound).expect("client has keys");
    let server = pair.server.as_mut().unwrap();
    server.close(CloseKind::Restart, pair.now);
    let closed: Vec<_> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(matches!(&closed[..], [Event::Closed { .. }]), "{closed:?}");

    let result = server.handle_packet(&mut wire, pair.now);
    assert!(matches!(result, Incoming::Dropped("closing")), "{result:?}");

    let soft_reset = ControlPacket {
        opcode: Opcode::SoftResetV1,
        key_id: KeyId::ZERO.next(),
        session_id: server.peer_session_id,
        acks: Default::default(),
        peer_session_id: None,
        message_id: Some(0),
        payload: &[],
    };
    let mut wire = Vec::new();
    soft_reset.encode(&mut wire).unwrap();
    let result = server.handle_packet(&mut wire, pair.now);
    assert!(
        matches!(result, Incoming::Dropped("unknown key id")),
        "{result:?}"
    );
    assert_eq!(server.keys.len(), 1);
    assert!(server.poll_event().is_none());
}

/// Text messages that arrive in the same batch as the end of the session are ignored, so a
/// PUSH_REQUEST cannot report `Established` after `Closed`.
#[test]
fn push_request_after_close_is_ignored() {
    let ca = TestCa::new("office CA");
    let client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    let mut pair = Pair::new(server_config(&ca, false, "AES-128-CBC"), client);
    pair.run(40);
    let server = pair.server.as_mut().unwrap();
    // The state after the client was accepted but before its PUSH_REQUEST arrived.
    server.established = false;
    server.push_requested = false;
    server.finish("renegotiation presented another certificate");
    server.handle_text(b"PUSH_REQUEST", pair.now);
    let events: Vec<_> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(matches!(&events[..], [Event::Closed { .. }]), "{events:?}");
    assert!(!server.established);
}

fn tls_crypt(byte: u8, role: crate::proto::wrap::Role) -> WrapConfig {
    let key = crate::proto::wrap::StaticKey::from_bytes([byte; crate::proto::wrap::STATIC_KEY_LEN]);
    WrapConfig::TlsCrypt {
        key: Arc::new(key),
        role,
    }
}

/// Returns `config`, which no one else may share yet, with `wrap` as its protection.
fn with_wrap(config: Arc<SessionConfig>, wrap: WrapConfig) -> Arc<SessionConfig> {
    let Ok(mut config) = Arc::try_unwrap(config) else {
        panic!("the configuration is shared");
    };
    config.wrap = wrap;
    Arc::new(config)
}

#[test]
fn stateless_handshake_with_tls_crypt() {
    use crate::proto::wrap::Role;

    let ca = TestCa::new("office CA");
    let config = with_wrap(
        server_config(&ca, false, "AES-128-CBC"),
        tls_crypt(7, Role::Server),
    );
    let mut client = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
    client.wrap = tls_crypt(7, Role::Client);
    let mut pair = Pair::new(config, client);
    pair.cookie = Some(CookieKey::new([5; 16]));
    pair.run(40);
    assert_eq!(pair.stateless_replies, 1);
    assert!(pair.connected().is_some(), "{:?}", pair.server_events);
    assert_data_both_ways(&mut pair);
}

#[test]
fn tls_crypt_rejects_foreign_resets() {
    use crate::proto::wrap::Role;

    let ca = TestCa::new("office CA");
    let config = with_wrap(
        server_config(&ca, false, "AES-128-CBC"),
        tls_crypt(7, Role::Server),
    );
    let handshake = StatelessHandshake::new(CookieKey::new([5; 16]), &config).unwrap();
    let address: std::net::SocketAddr = "192.0.2.2:40000".parse().unwrap();
    let now = Instant::now();
    let unix = 1_700_000_000;
    for (name, wrap) in [
        ("unwrapped", WrapConfig::None),
        ("wrong key", tls_crypt(8, Role::Client)),
    ] {
        let mut client_config = client_config(&ca, &["AES-256-GCM"], "AES-128-CBC");
        client_config.wrap = wrap;
        let mut client = Client::new(client_config);
        let mut reset = Vec::new();
        assert!(client.poll_transmit(now, unix as u32, &mut reset));
        let mut reply = Vec::new();
        let answered = stateless_reply(&handshake, &reset, address, unix, &mut reply);
        assert!(
            matches!(answered, Err(SessionError::Wrap(_))),
            "{name}: {answered:?}"
        );
        assert!(reply.is_empty(), "{name}: a reply was written");
        let created = Session::new(config.clone(), &reset, 3, now, unix);
        assert!(created.is_err(), "{name}: a session was created");
    }
}
