//! A real OpenVPN 2.6 client against the protocol core, driven by a minimal UDP loop inside
//! the test's gateway namespace. The loop answers the client's pings to the gateway's tunnel
//! address itself, so this checks the handshake, key derivation, push reply and data channel
//! without a TUN device on the server side.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::openvpn::{self, Pki, Protection, Transport};
use common::{Ns, TestBed, require_root_and_tools};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sslvpn::config::Topology;
use sslvpn::proto::session::{
    Authorization, ClientNetwork, Event, Incoming, Session, SessionConfig,
};
use sslvpn::proto::tls;
use sslvpn::proto::wrap::{KeyDirection, StaticKey, WrapConfig};

const SERVER_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 1);
const CLIENT_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 6);

fn session_config(pki: &Pki, wrap: WrapConfig, fallback: &str) -> Arc<SessionConfig> {
    let ca = CertificateDer::from_pem_file(&pki.ca_cert).unwrap();
    let cert = CertificateDer::from_pem_file(&pki.server_cert).unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let tls = tls::server_config(ca, vec![cert], key, Vec::new()).unwrap();
    Arc::new(SessionConfig {
        tls,
        wrap,
        data_ciphers: ["AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305", fallback]
            .map(String::from)
            .to_vec(),
        fallback_cipher: fallback.into(),
        compression: false,
        tcp: false,
        routes: vec!["198.51.100.0/24".parse().unwrap()],
        topology: Topology::Net30,
        server_address: SERVER_ADDRESS,
        pool_netmask: Ipv4Addr::new(255, 255, 255, 0),
        keepalive_interval: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(60),
        hand_window: Duration::from_secs(60),
        reneg_interval: Duration::from_secs(3600),
        tls_mtu: 1250,
    })
}

/// Turns an ICMP echo request into its reply in place; false for any other packet.
fn answer_echo(packet: &mut [u8]) -> bool {
    let header_len = usize::from(packet[0] & 0x0f) * 4;
    if packet.len() < header_len + 8 || packet[9] != 1 || packet[header_len] != 8 {
        return false;
    }
    let (source, destination) = (packet[12..16].to_vec(), packet[16..20].to_vec());
    packet[12..16].copy_from_slice(&destination);
    packet[16..20].copy_from_slice(&source);
    packet[header_len] = 0;
    packet[header_len + 2] = 0;
    packet[header_len + 3] = 0;
    let checksum = internet_checksum(&packet[header_len..]);
    packet[header_len + 2..header_len + 4].copy_from_slice(&checksum.to_be_bytes());
    true
}

fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Serves one client until `stop` is set; returns the events and the number of echo
/// replies sent.
fn serve(
    socket: UdpSocket,
    config: Arc<SessionConfig>,
    stop: Arc<AtomicBool>,
) -> (Vec<String>, u32) {
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut session: Option<(Session, SocketAddr)> = None;
    let mut events = Vec::new();
    let mut echoes = 0;
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            let packet = &mut buf[..len];
            match &mut session {
                None => match Session::new(config.clone(), packet, 0, now, unix) {
                    Ok(created) => session = Some((created, from)),
                    Err(error) => events.push(format!("rejected first packet: {error}")),
                },
                Some((session, _)) => {
                    let reply = match session.handle_packet(packet, now) {
                        Incoming::Ip(range) => {
                            let mut ip = packet[range].to_vec();
                            answer_echo(&mut ip).then_some(ip)
                        }
                        _ => None,
                    };
                    if let Some(ip) = reply {
                        echoes += 1;
                        if session.encrypt(&ip, &mut out, now) {
                            socket.send_to(&out, from).unwrap();
                        }
                    }
                }
            }
        }
        let Some((session, peer)) = &mut session else {
            continue;
        };
        if session.poll_timeout().is_some_and(|at| at <= now) {
            session.handle_timeout(now);
        }
        while let Some(event) = session.poll_event() {
            if let Event::Authenticate(request) = &event {
                let network = ClientNetwork {
                    address: CLIENT_ADDRESS,
                    peer_or_netmask: Ipv4Addr::new(10, 8, 0, 5),
                };
                assert_eq!(request.common_name, "alice");
                session.authorize(Authorization::Accept(network), now);
            }
            events.push(format!("{event:?}"));
        }
        while session.poll_transmit(now, &mut out) {
            socket.send_to(&out, *peer).unwrap();
        }
    }
    (events, echoes)
}

fn connect_and_ping(
    protection: Protection,
    wrap: WrapConfig,
    client_extra: &[&str],
    fallback: &str,
) {
    require_root_and_tools();
    let bed = TestBed::new("session");
    let pki = Pki::generate(bed.dir(), "alice");
    let listen = SocketAddr::new(bed.gateway_wan_address().into(), openvpn::PORT);
    let socket = bed.run_inside(Ns::Gateway, || UdpSocket::bind(listen).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let config = session_config(&pki, wrap, fallback);
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || serve(socket, config, stop))
    };

    let mut args =
        openvpn::client_args(&pki, Transport::Udp, &protection, bed.gateway_wan_address());
    args.extend(client_extra.iter().map(|arg| arg.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut client = bed.spawn(Ns::Client, "openvpn", &args);
    let connected = client.wait_for_line(openvpn::INITIALIZED, Duration::from_secs(30));
    let received = if connected.is_ok() {
        bed.ping(Ns::Client, SERVER_ADDRESS, 5)
    } else {
        0
    };
    client.stop();
    stop.store(true, Ordering::Relaxed);
    let (events, echoes) = server.join().unwrap();

    assert!(
        connected.is_ok(),
        "client did not connect; server events: {events:?}\n{}",
        client.log_tail()
    );
    let log = client.log();
    assert!(log.contains("ifconfig 10.8.0.6 10.8.0.5"), "{log}");
    assert!(log.contains("route 198.51.100.0 255.255.255.0"), "{log}");
    // OpenVPN 2.6 clients accept an early push, so they never wait to send PUSH_REQUEST.
    assert!(!log.contains("'PUSH_REQUEST'"), "{log}");
    assert_eq!(received, 5, "pings answered: {echoes}; events: {events:?}");
    if std::env::var_os("SHOW_CLIENT_LOG").is_some() {
        eprintln!("{log}");
    }
}

#[test]
fn openvpn_client_negotiates_aes_gcm() {
    connect_and_ping(Protection::None, WrapConfig::None, &[], "AES-128-CBC");
}

#[test]
fn openvpn_client_limited_to_aes_cbc() {
    connect_and_ping(
        Protection::None,
        WrapConfig::None,
        &["--data-ciphers", "AES-128-CBC", "--cipher", "AES-128-CBC"],
        "AES-128-CBC",
    );
}

#[test]
fn openvpn_client_with_tls_auth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ta.key");
    openvpn::generate_static_key(&path);
    let key = StaticKey::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let wrap = WrapConfig::TlsAuth {
        key: Arc::new(key),
        digest: sslvpn::proto::wrap::Digest::Sha1,
        direction: KeyDirection::Normal,
    };
    connect_and_ping(Protection::TlsAuth(path), wrap, &[], "AES-128-CBC");
}

#[test]
fn openvpn_client_with_tls_crypt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tc.key");
    openvpn::generate_static_key(&path);
    let key = StaticKey::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let wrap = WrapConfig::TlsCrypt {
        key: Arc::new(key),
        role: sslvpn::proto::wrap::Role::Server,
    };
    connect_and_ping(Protection::TlsCrypt(path), wrap, &[], "AES-128-CBC");
}
