//! The OpenVPN capture fixtures: `capture_sessions_regenerate` records them (run it through
//! `scripts/capture-fixtures`), and the other tests check that the committed captures parse
//! and match the committed static keys.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::cipher::{AES_256, DecryptingKey, DecryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

use common::capture::{
    Direction, FIXTURES, OpenvpnPacket, fixture_dir, fixture_name, load_fixture, read_static_key,
};
use common::openvpn::{self, INITIALIZED, Pki, Protection, Transport};
use common::tools::{BASE_TOOLS, CAPTURE_TOOLS, require_tools};
use common::{Ns, TestBed};

/// Where `capture_sessions_regenerate` writes; without it, the captures go to a temporary
/// directory and only the session checks run.
const OUTPUT_DIR_VAR: &str = "SSLVPN_CAPTURE_DIR";
const TLS_AUTH_KEY: &str = "tls-auth.key";
const TLS_CRYPT_KEY: &str = "tls-crypt.key";
const CLIENT_NAME: &str = "client1";
const TUNNEL_PINGS: u32 = 3;

const HARD_RESET_CLIENT_V2: u8 = 7;
const HARD_RESET_SERVER_V2: u8 = 8;
const CONTROL_V1: u8 = 4;
const ACK_V1: u8 = 5;
const DATA_V2: u8 = 9;
const SESSION_ID_LEN: usize = 8;
/// Replay packet id of tls-auth and tls-crypt: a u32 counter and a u32 Unix time.
const REPLAY_ID_LEN: usize = 8;
const SHA1_LEN: usize = 20;
const SHA256_LEN: usize = 32;

#[test]
#[ignore = "needs root; writes fixtures when SSLVPN_CAPTURE_DIR is set (scripts/capture-fixtures)"]
fn capture_sessions_regenerate() {
    let tools: Vec<(&str, &str)> = BASE_TOOLS.iter().chain(CAPTURE_TOOLS).copied().collect();
    require_tools(&tools);
    let bed = TestBed::new("capture");
    let scratch = bed.dir().join("fixtures");
    let output = std::env::var_os(OUTPUT_DIR_VAR)
        .map(PathBuf::from)
        .unwrap_or(scratch);
    std::fs::create_dir_all(&output).expect("create the output directory");

    let pki_dir = bed.dir().join("pki");
    std::fs::create_dir(&pki_dir).expect("create the PKI directory");
    let pki = Pki::generate(&pki_dir, CLIENT_NAME);
    let tls_auth = output.join(TLS_AUTH_KEY);
    let tls_crypt = output.join(TLS_CRYPT_KEY);
    openvpn::generate_static_key(&tls_auth);
    openvpn::generate_static_key(&tls_crypt);

    for &(transport, protection_name) in FIXTURES {
        let protection = match protection_name {
            "plain" => Protection::None,
            "tls-auth" => Protection::TlsAuth(tls_auth.clone()),
            "tls-crypt" => Protection::TlsCrypt(tls_crypt.clone()),
            other => panic!("no protection named {other}"),
        };
        let pcap = output.join(fixture_name(transport, protection_name));
        capture_session(&bed, &pki, transport, &protection, &pcap);
    }
}

/// Runs one OpenVPN session between the client and gateway namespaces and captures its
/// transport packets on the gateway into `pcap`.
fn capture_session(
    bed: &TestBed,
    pki: &Pki,
    transport: Transport,
    protection: &Protection,
    pcap: &Path,
) {
    let pcap_text = pcap.to_string_lossy().into_owned();
    let filter = format!("{} port {}", transport.name(), openvpn::PORT);
    let mut tcpdump = bed.spawn(
        Ns::Gateway,
        "tcpdump",
        &[
            "-i",
            common::netns::WAN_IF,
            "-n",
            "-U",
            "-s",
            "0",
            "-w",
            &pcap_text,
            &filter,
        ],
    );
    tcpdump.expect_line("listening on", Duration::from_secs(10));

    let pool = bed.config().client_pool;
    let server_args =
        openvpn::server_args(pki, transport, protection, bed.gateway_wan_address(), pool);
    let mut server = spawn_openvpn(bed, Ns::Gateway, &server_args);
    server.expect_line(INITIALIZED, Duration::from_secs(20));

    let client_args = openvpn::client_args(pki, transport, protection, bed.gateway_wan_address());
    let mut client = spawn_openvpn(bed, Ns::Client, &client_args);
    client.expect_line(INITIALIZED, Duration::from_secs(30));
    // OpenVPN 2.6 gives the first net30 client the second /30 of the pool.
    let push_reply = client.expect_line("PUSH_REPLY", Duration::from_secs(1));
    assert!(
        push_reply.contains("ifconfig 10.8.0.6 10.8.0.5"),
        "first net30 client address: {push_reply}"
    );

    let control_channel = client.expect_line("Control Channel:", Duration::from_secs(1));
    eprintln!("{} {}:", transport.name(), protection.name());
    eprintln!("  {}", control_channel.trim());
    eprintln!("  {}", push_reply.trim());

    let server_tunnel = Ipv4Addr::from(u32::from(pool.network()) + 1);
    let received = bed.ping(Ns::Client, server_tunnel, TUNNEL_PINGS);
    assert_eq!(
        received,
        TUNNEL_PINGS,
        "pings through the {} tunnel",
        transport.name()
    );

    // SIGTERM makes the client announce its exit (explicit-exit-notify over UDP).
    client.signal(libc::SIGTERM);
    let status = client.wait_timeout(Duration::from_secs(15));
    assert!(status.is_some(), "client still running 15 s after SIGTERM");
    std::thread::sleep(Duration::from_millis(500));

    tcpdump.stop();
    tcpdump.expect_line("packets captured", Duration::from_secs(1));
    server.stop();
}

fn spawn_openvpn(bed: &TestBed, ns: Ns, args: &[String]) -> common::Process {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bed.spawn(ns, "openvpn", &args)
}

/// Returns the packets of a fixture, panicking with the file name on failure.
fn fixture(transport: Transport, protection: &str) -> Vec<OpenvpnPacket> {
    load_fixture(transport, protection).unwrap_or_else(|error| {
        panic!("{}: {error}", fixture_name(transport, protection));
    })
}

fn is_control(packet: &OpenvpnPacket) -> bool {
    matches!(packet.opcode(), Some(3..=5 | 7 | 8))
}

#[test]
fn fixtures_start_with_hard_resets() {
    for &(transport, protection) in FIXTURES {
        let name = fixture_name(transport, protection);
        let packets = fixture(transport, protection);
        let first = packets.first().unwrap_or_else(|| panic!("{name} is empty"));
        assert_eq!(first.direction, Direction::ClientToServer, "{name}");
        assert_eq!(first.opcode(), Some(HARD_RESET_CLIENT_V2), "{name}");
        assert_eq!(first.key_id(), Some(0), "{name}");
        let reply = packets
            .iter()
            .find(|p| p.direction == Direction::ServerToClient)
            .unwrap_or_else(|| panic!("{name} has no server packet"));
        assert_eq!(reply.opcode(), Some(HARD_RESET_SERVER_V2), "{name}");
    }
}

#[test]
fn fixtures_hold_control_and_data_both_ways() {
    for &(transport, protection) in FIXTURES {
        let name = fixture_name(transport, protection);
        let packets = fixture(transport, protection);
        for direction in [Direction::ClientToServer, Direction::ServerToClient] {
            let count = |opcode| {
                packets
                    .iter()
                    .filter(|p| p.direction == direction && p.opcode() == Some(opcode))
                    .count()
            };
            assert!(count(CONTROL_V1) > 0, "{name}: no CONTROL_V1 {direction:?}");
            // Every ping and its reply, plus at least the client's exit notification.
            assert!(
                count(DATA_V2) >= TUNNEL_PINGS as usize,
                "{name}: {} DATA_V2 {direction:?}",
                count(DATA_V2)
            );
        }
    }
}

#[test]
fn fixtures_plain_control_header() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let packets = fixture(transport, "plain");
        let reset = &packets[0].bytes;
        // op | session id (8) | ack count 0 | message id 0 | no TLS bytes.
        assert_eq!(reset.len(), 1 + SESSION_ID_LEN + 1 + 4, "{transport:?}");
        assert_eq!(reset[1 + SESSION_ID_LEN], 0, "{transport:?}: ack count");
        assert_eq!(
            &reset[1 + SESSION_ID_LEN + 1..],
            &[0, 0, 0, 0],
            "{transport:?}"
        );
    }
}

/// Splits an OpenVPN static key into its two (cipher key, HMAC key) sets of 64 bytes each.
fn key_sets(key: &[u8]) -> [(&[u8], &[u8]); 2] {
    [
        (&key[0..64], &key[64..128]),
        (&key[128..192], &key[192..256]),
    ]
}

/// Returns the key set that `direction` sends with: the server uses the key file in normal
/// direction (`key-direction 0` for tls-auth), which sends with set 0, and the client the
/// inverse.
fn sending_set(direction: Direction) -> usize {
    match direction {
        Direction::ServerToClient => 0,
        Direction::ClientToServer => 1,
    }
}

#[test]
fn fixtures_tls_auth_hmac_matches_key() {
    let key = read_static_key(&fixture_dir().join(TLS_AUTH_KEY)).expect("tls-auth key");
    let sets = key_sets(&key);
    for transport in [Transport::Udp, Transport::Tcp] {
        let packets = fixture(transport, "tls-auth");
        let control: Vec<&OpenvpnPacket> = packets.iter().filter(|p| is_control(p)).collect();
        assert!(
            control.len() > 4,
            "{transport:?}: {} control packets",
            control.len()
        );
        for (index, packet) in control.into_iter().enumerate() {
            let bytes = &packet.bytes;
            let header = 1 + SESSION_ID_LEN;
            assert!(
                bytes.len() > header + SHA1_LEN + REPLAY_ID_LEN,
                "{transport:?} #{index}"
            );
            let (op_and_session, rest) = bytes.split_at(header);
            let (tag, rest) = rest.split_at(SHA1_LEN);
            let (replay_id, rest) = rest.split_at(REPLAY_ID_LEN);
            let signed = [replay_id, op_and_session, rest].concat();
            let hmac_key = &sets[sending_set(packet.direction)].1[..SHA1_LEN];
            let hmac_key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, hmac_key);
            assert!(
                hmac::verify(&hmac_key, &signed, tag).is_ok(),
                "{transport:?} control packet #{index} {:?}: HMAC mismatch",
                packet.direction
            );
        }
    }
}

#[test]
fn fixtures_tls_crypt_tag_matches_key() {
    let key = read_static_key(&fixture_dir().join(TLS_CRYPT_KEY)).expect("tls-crypt key");
    let sets = key_sets(&key);
    for transport in [Transport::Udp, Transport::Tcp] {
        let packets = fixture(transport, "tls-crypt");
        let control: Vec<&OpenvpnPacket> = packets.iter().filter(|p| is_control(p)).collect();
        assert!(
            control.len() > 4,
            "{transport:?}: {} control packets",
            control.len()
        );
        for (index, packet) in control.into_iter().enumerate() {
            let bytes = &packet.bytes;
            let header_len = 1 + SESSION_ID_LEN + REPLAY_ID_LEN;
            assert!(
                bytes.len() > header_len + SHA256_LEN,
                "{transport:?} #{index}"
            );
            let (header, rest) = bytes.split_at(header_len);
            let (tag, ciphertext) = rest.split_at(SHA256_LEN);
            let (cipher_key, hmac_key) = sets[sending_set(packet.direction)];

            let iv: [u8; 16] = tag[..16].try_into().expect("16-byte IV");
            let cipher_key =
                UnboundCipherKey::new(&AES_256, &cipher_key[..32]).expect("AES-256 key");
            let decrypting = DecryptingKey::ctr(cipher_key).expect("CTR mode");
            let mut plaintext = ciphertext.to_vec();
            decrypting
                .decrypt(
                    &mut plaintext,
                    DecryptionContext::Iv128(FixedLength::from(iv)),
                )
                .expect("CTR decryption");

            let hmac_key = hmac::Key::new(hmac::HMAC_SHA256, &hmac_key[..SHA256_LEN]);
            let signed = [header, &plaintext].concat();
            assert!(
                hmac::verify(&hmac_key, &signed, tag).is_ok(),
                "{transport:?} control packet #{index} {:?}: tag mismatch",
                packet.direction
            );
            if packet.opcode() == Some(HARD_RESET_CLIENT_V2) {
                // Unwrapped: ack count 0 and message id 0.
                assert_eq!(&plaintext[..5], &[0, 0, 0, 0, 0], "{transport:?} #{index}");
            }
        }
    }
}

#[test]
fn fixtures_udp_end_with_exit_and_ack() {
    for protection in ["plain", "tls-auth", "tls-crypt"] {
        let packets = fixture(Transport::Udp, protection);
        let [.., exit, ack] = packets.as_slice() else {
            panic!("udp-{protection}: fewer than two packets");
        };
        // The client's EXIT message travels on the control channel (cc-exit).
        assert_eq!(
            exit.direction,
            Direction::ClientToServer,
            "udp-{protection}"
        );
        assert_eq!(exit.opcode(), Some(CONTROL_V1), "udp-{protection}");
        assert_eq!(ack.direction, Direction::ServerToClient, "udp-{protection}");
        assert_eq!(ack.opcode(), Some(ACK_V1), "udp-{protection}");
    }
}
