//! Property tests of the session on arbitrary input: no packet, however malformed, makes
//! `Session::new` or `Session::handle_packet` panic, and none passes without the right
//! keys.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::proto::client::{Client, ClientConfig, ClientEvent};
use crate::proto::packet::AckList;
use crate::proto::test_pki::TestCa;
use crate::proto::tls;
use crate::proto::wrap::{KeyDirection, Role, STATIC_KEY_LEN, StaticKey};

const CLIENT_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 6);
const UNIX_TIME: u64 = 1_700_000_000;

/// The CA and TLS configurations, made once because key generation is slow.
struct Pki {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = TestCa::new("office CA");
        let server = ca.issue("office-server", true, 100);
        let client = ca.issue("alice", false, 7);
        Pki {
            server: tls::server_config(ca.der.clone(), vec![server.der], server.key, vec![])
                .unwrap(),
            client: tls::client_config(ca.der.clone(), vec![client.der], client.key).unwrap(),
        }
    })
}

fn static_key() -> Arc<StaticKey> {
    Arc::new(StaticKey::from_bytes(core::array::from_fn::<
        _,
        STATIC_KEY_LEN,
        _,
    >(|i| i as u8)))
}

/// Server and client protection: none, tls-auth or tls-crypt.
fn wraps(choice: u8) -> (WrapConfig, WrapConfig) {
    let key = static_key();
    match choice % 3 {
        0 => (WrapConfig::None, WrapConfig::None),
        1 => {
            let config = |direction| WrapConfig::TlsAuth {
                key: key.clone(),
                digest: crate::proto::wrap::Digest::Sha256,
                direction,
            };
            (config(KeyDirection::Normal), config(KeyDirection::Inverse))
        }
        _ => (
            WrapConfig::TlsCrypt {
                key: key.clone(),
                role: Role::Server,
            },
            WrapConfig::TlsCrypt {
                key,
                role: Role::Client,
            },
        ),
    }
}

fn config(wrap: WrapConfig, compression: bool) -> Arc<SessionConfig> {
    Arc::new(SessionConfig {
        tls: pki().server.clone(),
        wrap,
        data_ciphers: vec!["AES-256-GCM".into(), "AES-128-CBC".into()],
        fallback_cipher: "AES-128-CBC".into(),
        compression,
        tcp: false,
        routes: Vec::new(),
        topology: Topology::Subnet,
        server_address: Ipv4Addr::new(10, 8, 0, 1),
        pool_netmask: Ipv4Addr::new(255, 255, 255, 0),
        keepalive_interval: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(60),
        hand_window: Duration::from_secs(60),
        reneg_interval: Duration::from_secs(3600),
        tls_mtu: DEFAULT_TLS_MTU,
    })
}

/// Encodes a client's HARD_RESET_CLIENT_V2 in the layout without protection.
fn client_reset(session_id: SessionId) -> Vec<u8> {
    let packet = ControlPacket {
        opcode: Opcode::HardResetClientV2,
        key_id: KeyId::ZERO,
        session_id,
        acks: AckList::new(),
        peer_session_id: None,
        message_id: Some(0),
        payload: &[],
    };
    let mut out = Vec::new();
    packet.encode(&mut out).unwrap();
    out
}

/// Feeds one packet and checks the result against what an unauthenticated peer may get.
fn feed_unauthenticated(session: &mut Session, packet: &[u8], now: Instant) {
    let mut packet = packet.to_vec();
    let result = session.handle_packet(&mut packet, now);
    assert!(
        matches!(result, Incoming::Consumed | Incoming::Dropped(_)),
        "{result:?}"
    );
}

/// Drains events and checks that none of them needs a verified client.
fn assert_no_authentication(session: &mut Session) {
    while let Some(event) = session.poll_event() {
        assert!(matches!(event, Event::Closed { .. }), "{event:?}");
    }
}

/// Runs a real client against a session until it is connected.
fn established(compression: bool) -> (Client, Session, Instant) {
    let (server_wrap, client_wrap) = wraps(0);
    let mut client = Client::new(ClientConfig {
        tls: pki().client.clone(),
        wrap: client_wrap,
        ciphers: vec!["AES-256-GCM".into()],
        options_cipher: "AES-128-CBC".into(),
        ekm: true,
        comp_lzo: compression,
        username: None,
        password: None,
    });
    let now = Instant::now();
    let mut buf = Vec::new();
    assert!(client.poll_transmit(now, UNIX_TIME as u32, &mut buf));
    let mut session = Session::new(config(server_wrap, compression), &buf, 3, now, UNIX_TIME)
        .expect("session from the client's reset");
    for _ in 0..40 {
        while let Some(event) = session.poll_event() {
            if let Event::Authenticate(_) = event {
                let network = ClientNetwork {
                    address: CLIENT_ADDRESS,
                    peer_or_netmask: Ipv4Addr::new(255, 255, 255, 0),
                };
                session.authorize(Authorization::Accept(network), now);
            }
        }
        while session.poll_transmit(now, &mut buf) {
            client.handle_packet(&mut buf, now);
        }
        while client.poll_transmit(now, UNIX_TIME as u32, &mut buf) {
            session.handle_packet(&mut buf, now);
        }
        while let Some(event) = client.poll_event() {
            if let ClientEvent::Connected(_) = event {
                return (client, session, now);
            }
        }
    }
    panic!("client did not connect");
}

proptest! {
    #[test]
    fn new_from_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        protection in 0u8..3,
    ) {
        let (server_wrap, _) = wraps(protection);
        let now = Instant::now();
        let result = Session::new(config(server_wrap, false), &bytes, 1, now, UNIX_TIME);
        if let Ok(mut session) = result {
            // Only an unprotected client reset with key id 0 starts a session.
            prop_assert_eq!(protection, 0);
            prop_assert_eq!(bytes[0], Opcode::HardResetClientV2.as_u8() << 3);
            prop_assert!(session.poll_transmit(now, &mut Vec::new()));
        }
    }

    #[test]
    fn new_from_any_reset_layout(
        session_id in any::<[u8; 8]>(),
        tail in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let mut bytes = client_reset(SessionId(session_id));
        bytes.extend_from_slice(&tail);
        let now = Instant::now();
        let mut session = Session::new(config(WrapConfig::None, false), &bytes, 1, now, UNIX_TIME)
            .expect("a reset with a payload starts a session");
        prop_assert!(session.poll_transmit(now, &mut Vec::new()));
        assert_no_authentication(&mut session);
    }

    #[test]
    fn handle_arbitrary_packets(
        packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
        protection in 0u8..3,
        advance in prop::collection::vec(0u64..200_000, 0..20),
    ) {
        let (server_wrap, client_wrap) = wraps(protection);
        let mut client_wrap = client_wrap.build().unwrap();
        let mut first = Vec::new();
        client_wrap
            .wrap(&client_reset(SessionId([7; 8])), UNIX_TIME as u32, &mut first)
            .unwrap();
        let mut now = Instant::now();
        let mut session = Session::new(config(server_wrap, false), &first, 1, now, UNIX_TIME)
            .expect("session from a valid reset");
        for (index, packet) in packets.iter().enumerate() {
            feed_unauthenticated(&mut session, packet, now);
            now += Duration::from_millis(advance.get(index).copied().unwrap_or(0));
            session.handle_timeout(now);
            while session.poll_transmit(now, &mut Vec::new()) {}
            assert_no_authentication(&mut session);
        }
    }

    /// Control packets with the right session ids reach the reliability layer and TLS.
    #[test]
    fn handle_control_packets_with_real_ids(
        messages in prop::collection::vec(
            (prop::sample::select(vec![3u8, 4, 5, 7, 10, 11]), 0u8..3, any::<u32>(), 0u32..4,
             prop::collection::vec(any::<u8>(), 0..200)),
            0..20,
        ),
    ) {
        let client_id = SessionId([7; 8]);
        let now = Instant::now();
        let mut session =
            Session::new(config(WrapConfig::None, false), &client_reset(client_id), 1, now, UNIX_TIME)
                .expect("session from a valid reset");
        let mut reply = Vec::new();
        prop_assert!(session.poll_transmit(now, &mut reply));
        let server_id = SessionId(reply[1..9].try_into().unwrap());
        for (opcode, key_id, message_id, ack, payload) in messages {
            let opcode = Opcode::from_u8(opcode).unwrap();
            let is_ack = opcode == Opcode::AckV1;
            let packet = ControlPacket {
                opcode,
                key_id: KeyId::new(key_id).unwrap(),
                session_id: client_id,
                acks: AckList::try_from(&[ack][..]).unwrap(),
                peer_session_id: Some(server_id),
                message_id: (!is_ack).then_some(message_id % 16),
                payload: if is_ack { &[] } else { &payload },
            };
            let mut bytes = Vec::new();
            packet.encode(&mut bytes).unwrap();
            feed_unauthenticated(&mut session, &bytes, now);
            while session.poll_transmit(now, &mut Vec::new()) {}
            assert_no_authentication(&mut session);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Arbitrary data packets to an established session: none decrypts without the key.
    #[test]
    fn established_arbitrary_data_packets(
        packets in prop::collection::vec(
            (prop::sample::select(vec![6u8, 9]), 0u8..8, prop::collection::vec(any::<u8>(), 0..200)),
            1..20,
        ),
    ) {
        let (_client, mut session, now) = established(false);
        for (opcode, key_id, body) in packets {
            let mut packet = vec![opcode << 3 | key_id];
            packet.extend_from_slice(&body);
            let result = session.handle_packet(&mut packet, now);
            prop_assert!(matches!(result, Incoming::Dropped(_)), "{:?}", result);
        }
        prop_assert!(!session.is_closed());
    }

    /// Arbitrary payloads from the real client, with and without comp-lzo framing: the session
    /// forwards only IPv4 packets from the client's address.
    #[test]
    fn established_arbitrary_payloads(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..20),
        compression in any::<bool>(),
    ) {
        let (mut client, mut session, now) = established(compression);
        for payload in payloads {
            let mut packet = client.encrypt(&payload).expect("client has keys");
            let len = packet.len();
            match session.handle_packet(&mut packet, now) {
                Incoming::Ip(range) => {
                    prop_assert!(range.end <= len);
                    prop_assert!(source_is(&packet[range], CLIENT_ADDRESS));
                }
                Incoming::Decompressed(bytes) => prop_assert!(source_is(bytes, CLIENT_ADDRESS)),
                Incoming::Consumed | Incoming::Dropped(_) => {}
            }
        }
    }
}
