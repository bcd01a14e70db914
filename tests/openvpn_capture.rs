//! Checks the control-channel code against packets that a real OpenVPN 2.6.14 client and
//! server exchanged on loopback (see `tests/fixtures/openvpn/capture.sh`).

use std::fs;
use std::path::Path;

use sslvpn::proto::packet::{ControlPacket, KeyId, Opcode, SessionId, StreamDecoder, peek};
use sslvpn::proto::reliable::{ReceiveConfig, ReceiveOutcome, ReceiveWindow};
use sslvpn::proto::wrap::{
    ControlWrap, Digest, KeyDirection, ReplayId, Role, StaticKey, WrapError,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

/// Protection settings of one capture, for either end.
#[derive(Clone, Copy)]
enum Protection {
    TlsAuth(Digest, KeyDirection, KeyDirection),
    TlsCrypt,
}

impl Protection {
    /// Returns the state of the end that receives packets going in `direction`.
    fn receiver(self, key: &StaticKey, direction: Direction) -> ControlWrap {
        self.end(key, direction == Direction::ClientToServer)
    }

    /// Returns the state of the end that sends packets going in `direction`.
    fn sender(self, key: &StaticKey, direction: Direction) -> ControlWrap {
        self.end(key, direction == Direction::ServerToClient)
    }

    fn end(self, key: &StaticKey, server: bool) -> ControlWrap {
        match self {
            Protection::TlsAuth(digest, server_direction, client_direction) => {
                let direction = if server {
                    server_direction
                } else {
                    client_direction
                };
                ControlWrap::tls_auth(key, digest, direction)
            }
            Protection::TlsCrypt => {
                let role = if server { Role::Server } else { Role::Client };
                ControlWrap::tls_crypt(key, role).unwrap()
            }
        }
    }
}

fn fixture_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openvpn"
    ))
}

fn load_key(name: &str) -> StaticKey {
    let text = fs::read_to_string(fixture_dir().join(name)).unwrap();
    StaticKey::parse(&text).unwrap()
}

/// Reads `c2s HEX` / `s2c HEX` lines.
fn load_chunks(name: &str) -> Vec<(Direction, Vec<u8>)> {
    let text = fs::read_to_string(fixture_dir().join(name)).unwrap();
    text.lines()
        .map(|line| {
            let (direction, bytes) = line.split_once(' ').unwrap();
            let direction = match direction {
                "c2s" => Direction::ClientToServer,
                "s2c" => Direction::ServerToClient,
                other => panic!("unknown direction {other}"),
            };
            (direction, hex::decode(bytes).unwrap())
        })
        .collect()
}

/// Splits TCP segments into packets with one decoder per direction.
fn deframe(chunks: Vec<(Direction, Vec<u8>)>) -> Vec<(Direction, Vec<u8>)> {
    let mut client_stream = StreamDecoder::new(2048);
    let mut server_stream = StreamDecoder::new(2048);
    let mut packets = Vec::new();
    for (direction, chunk) in chunks {
        let decoder = match direction {
            Direction::ClientToServer => &mut client_stream,
            Direction::ServerToClient => &mut server_stream,
        };
        let mut input = &chunk[..];
        while let Some(packet) = decoder.decode(&mut input).unwrap() {
            packets.push((direction, packet.to_vec()));
        }
    }
    assert_eq!(client_stream.buffered_len(), 0);
    assert_eq!(server_stream.buffered_len(), 0);
    packets
}

/// What one direction of the capture contained.
struct Side {
    session_id: Option<SessionId>,
    window: ReceiveWindow,
    messages: Vec<Opcode>,
    acks: Vec<u32>,
    tls_stream: Vec<u8>,
}

impl Side {
    fn new() -> Side {
        Side {
            session_id: None,
            window: ReceiveWindow::new(ReceiveConfig::default()),
            messages: Vec::new(),
            acks: Vec::new(),
            tls_stream: Vec::new(),
        }
    }
}

/// Returns the TLS record content types of a stream, checking that the records fill it
/// exactly.
fn tls_record_types(stream: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "partial TLS record header");
        assert_eq!(rest[1], 3, "TLS major version");
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        assert!(rest.len() >= 5 + len, "partial TLS record");
        types.push(rest[0]);
        rest = &rest[5 + len..];
    }
    types
}

fn check_capture(packets: Vec<(Direction, Vec<u8>)>, key: &StaticKey, protection: Protection) {
    let mut server = protection.receiver(key, Direction::ClientToServer);
    let mut client = protection.receiver(key, Direction::ServerToClient);
    let mut client_side = Side::new();
    let mut server_side = Side::new();
    let mut first = true;

    for (index, (direction, wire)) in packets.iter().enumerate() {
        let (opcode, key_id) = peek(wire).unwrap();
        assert!(opcode.is_control(), "packet {index}: {opcode:?}");
        assert_eq!(key_id, KeyId::ZERO, "packet {index}");

        let (receiver, side, other) = match direction {
            Direction::ClientToServer => (&mut server, &mut client_side, &server_side),
            Direction::ServerToClient => (&mut client, &mut server_side, &client_side),
        };
        let mut plain = Vec::new();
        let replay_id = receiver
            .unwrap(wire, &mut plain)
            .unwrap_or_else(|error| panic!("packet {index}: {error}"))
            .unwrap();
        let replayed = receiver.unwrap(wire, &mut Vec::new());
        assert!(
            matches!(replayed, Err(WrapError::Replay { .. })),
            "packet {index} accepted twice: {replayed:?}"
        );
        check_rewrap(protection, key, *direction, &plain, replay_id, wire, index);

        let packet = ControlPacket::parse(&plain).unwrap();
        let mut encoded = Vec::new();
        packet.encode(&mut encoded).unwrap();
        assert_eq!(encoded, plain, "packet {index} re-encoded");

        if first {
            assert_eq!(packet.opcode, Opcode::HardResetClientV2);
            assert_eq!(packet.message_id, Some(0));
            assert!(packet.acks.is_empty());
            first = false;
        }
        assert_eq!(
            *side.session_id.get_or_insert(packet.session_id),
            packet.session_id
        );
        if !packet.acks.is_empty() {
            assert_eq!(packet.peer_session_id, other.session_id, "packet {index}");
        }
        side.acks.extend_from_slice(packet.acks.as_slice());

        if let Some(message_id) = packet.message_id {
            let outcome = side
                .window
                .receive(message_id, packet.opcode, packet.payload)
                .unwrap();
            assert_ne!(outcome, ReceiveOutcome::BeyondWindow, "packet {index}");
            while let Some(message) = side.window.pop_message() {
                assert_eq!(message.message_id as usize, side.messages.len());
                side.messages.push(message.opcode);
                if message.opcode == Opcode::ControlV1 {
                    side.tls_stream.extend_from_slice(&message.payload);
                }
            }
        }
    }

    assert_eq!(client_side.messages[0], Opcode::HardResetClientV2);
    assert_eq!(server_side.messages[0], Opcode::HardResetServerV2);
    assert!(client_side.messages.len() > 2);
    assert!(server_side.messages.len() > 2);
    for id in &server_side.acks {
        assert!((*id as usize) < client_side.messages.len(), "ack {id}");
    }
    for id in &client_side.acks {
        assert!((*id as usize) < server_side.messages.len(), "ack {id}");
    }
    for id in 0..client_side.messages.len() as u32 {
        assert!(
            server_side.acks.contains(&id),
            "client message {id} never acked"
        );
    }

    let client_records = tls_record_types(&client_side.tls_stream);
    let server_records = tls_record_types(&server_side.tls_stream);
    assert_eq!(
        client_records[0], 0x16,
        "client starts with a handshake record"
    );
    assert_eq!(client_side.tls_stream[5], 1, "ClientHello");
    assert_eq!(
        server_records[0], 0x16,
        "server starts with a handshake record"
    );
    assert_eq!(server_side.tls_stream[5], 2, "ServerHello");
    assert!(
        client_records.contains(&0x17),
        "client sent application data"
    );
    assert!(
        server_records.contains(&0x17),
        "server sent application data"
    );
}

/// Wraps the unwrapped packet again with the sender's keys and replay id and expects the
/// captured bytes.
fn check_rewrap(
    protection: Protection,
    key: &StaticKey,
    direction: Direction,
    plain: &[u8],
    replay_id: ReplayId,
    wire: &[u8],
    index: usize,
) {
    let mut sender = protection.sender(key, direction);
    sender.set_send_counter(replay_id.counter - 1);
    let mut rewrapped = Vec::new();
    sender.wrap(plain, replay_id.time, &mut rewrapped).unwrap();
    assert_eq!(rewrapped, wire, "packet {index} rewrapped");
}

#[test]
fn tls_auth_sha1_udp_capture() {
    let packets = load_chunks("tlsauth.txt");
    let protection = Protection::TlsAuth(Digest::Sha1, KeyDirection::Normal, KeyDirection::Inverse);
    check_capture(packets, &load_key("ta.key"), protection);
}

#[test]
fn tls_auth_sha512_bidirectional_capture() {
    let packets = load_chunks("tlsauth512.txt");
    let protection = Protection::TlsAuth(
        Digest::Sha512,
        KeyDirection::Bidirectional,
        KeyDirection::Bidirectional,
    );
    check_capture(packets, &load_key("ta.key"), protection);
}

#[test]
fn tls_crypt_udp_capture() {
    let packets = load_chunks("tlscrypt.txt");
    check_capture(packets, &load_key("tc.key"), Protection::TlsCrypt);
}

#[test]
fn tls_crypt_tcp_capture() {
    let packets = deframe(load_chunks("tlscrypttcp.txt"));
    check_capture(packets, &load_key("tc.key"), Protection::TlsCrypt);
}

#[test]
fn tls_auth_wrong_direction_rejected() {
    let packets = load_chunks("tlsauth.txt");
    let key = load_key("ta.key");
    let mut wrong = ControlWrap::tls_auth(&key, Digest::Sha1, KeyDirection::Inverse);
    let (_, first) = &packets[0];
    assert_eq!(
        wrong.unwrap(first, &mut Vec::new()),
        Err(WrapError::AuthenticationFailed("tls-auth"))
    );
}

#[test]
fn tls_crypt_client_role_cannot_read_client_packets() {
    let packets = load_chunks("tlscrypt.txt");
    let key = load_key("tc.key");
    let mut wrong = ControlWrap::tls_crypt(&key, Role::Client).unwrap();
    let (_, first) = &packets[0];
    assert_eq!(
        wrong.unwrap(first, &mut Vec::new()),
        Err(WrapError::AuthenticationFailed("tls-crypt"))
    );
}

#[test]
fn key_file_round_trips() {
    let text = fs::read_to_string(fixture_dir().join("ta.key")).unwrap();
    let key = StaticKey::parse(&text).unwrap();
    assert_eq!(key.to_file_text(), text);
}
