//! `sslvpn serve` over UDP with a stock `openvpn` client bound to a fixed port. The client
//! restarts from that port and must get its new session at once. Then the captured handshake
//! of its earlier session is replayed from its address, while the cookie of that handshake is
//! still valid, and the running session must keep working.

mod common;

use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::capture::{Direction, openvpn_packets};
use common::gateway::{Gateway, Server, sslvpn, wait_connected};
use common::netns::WAN_IF;
use common::openvpn::{INITIALIZED, Transport};
use common::tools::{CAPTURE_TOOLS, require_tools};
use common::{Ns, pcap};

/// The client's UDP port, fixed with `--lport` so that a restart reuses it.
const CLIENT_PORT: u16 = 40000;
/// How long a restarted client may take to connect again. A client whose new session waits
/// for the old one to time out would take the server's keepalive timeout instead.
const RESTART_LIMIT: Duration = Duration::from_secs(10);
const DATA_V1: u8 = 6;
const DATA_V2: u8 = 9;
/// What the daemon logs when a session fails before authentication.
const ENDED_BEFORE_AUTHENTICATION: &str = "session ended before authentication";

/// Copies `profile` without `nobind`, which OpenVPN rejects together with `--lport`, and
/// returns the copy's path.
fn with_fixed_port(profile: &Path, gateway: &Gateway) -> PathBuf {
    let text = std::fs::read_to_string(profile).unwrap();
    assert!(
        text.contains("\nnobind\n"),
        "profile without nobind:\n{text}"
    );
    let path = gateway.bed.dir().join("fixed-port.ovpn");
    std::fs::write(&path, text.replace("\nnobind\n", "\n")).unwrap();
    path
}

/// Returns the id of the only session that `sslvpn session list` lists, and its server,
/// common name, real and virtual address.
fn only_session(gateway: &Gateway) -> (String, String) {
    let listed = sslvpn(&["session", "list", "--config", gateway.config()]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 1, "expected one session:\n{listed}");
    let fields: Vec<&str> = lines[0].split_whitespace().collect();
    assert!(fields.len() >= 5, "{listed}");
    (fields[0].to_owned(), fields[1..5].join(" "))
}

/// Returns the control packets that the client sent to `port` in the capture at `path`.
fn client_control_packets(path: &Path, port: u16) -> Vec<Vec<u8>> {
    let capture = pcap::read_file(path).expect("read the capture");
    let packets = openvpn_packets(&capture, Transport::Udp, port).expect("OpenVPN packets");
    packets
        .into_iter()
        .filter(|packet| packet.direction == Direction::ClientToServer)
        .filter(|packet| !matches!(packet.opcode(), Some(DATA_V1 | DATA_V2)))
        .map(|packet| packet.bytes)
        .collect()
}

/// Returns an IPv4 header and a UDP header from `source` to `destination` before `payload`.
/// The kernel fills in the IPv4 checksum and id, and the UDP checksum is left out (zero),
/// which IPv4 allows.
fn udp_datagram(source: SocketAddrV4, destination: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let udp_len = u16::try_from(8 + payload.len()).expect("payload fits a datagram");
    let total_len = udp_len + 20;
    let mut packet = Vec::with_capacity(usize::from(total_len));
    packet.extend_from_slice(&[0x45, 0]);
    packet.extend_from_slice(&total_len.to_be_bytes());
    // Id 0 and don't fragment, then TTL 64, protocol UDP and checksum 0.
    packet.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    packet.extend_from_slice(&source.ip().octets());
    packet.extend_from_slice(&destination.ip().octets());
    packet.extend_from_slice(&source.port().to_be_bytes());
    packet.extend_from_slice(&destination.port().to_be_bytes());
    packet.extend_from_slice(&udp_len.to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    packet
}

/// Sends each payload as a UDP datagram from `source` through a raw socket of the calling
/// thread's network namespace, so the source port may belong to another process.
fn send_from(source: SocketAddrV4, destination: SocketAddrV4, payloads: &[Vec<u8>]) {
    // SAFETY: socket has no memory-safety preconditions.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a new socket that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(*destination.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    for payload in payloads {
        let datagram = udp_datagram(source, destination, payload);
        // SAFETY: the buffer and the address are valid for the lengths passed.
        let sent = unsafe {
            libc::sendto(
                socket.as_raw_fd(),
                datagram.as_ptr().cast(),
                datagram.len(),
                0,
                (&raw const address).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        let error = std::io::Error::last_os_error();
        assert_eq!(sent, datagram.len() as isize, "sendto: {error}");
        // Spaces the packets out as a client sends them.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn replayed_handshake_keeps_session(tls_crypt: bool, tag: &str) {
    let server = Server {
        protocol: "udp",
        tls_crypt,
        ..Server::default()
    };
    let server_port = server.port;
    require_tools(CAPTURE_TOOLS);
    let mut gateway = Gateway::new(tag, &[server]);
    let profile = with_fixed_port(&gateway.profile("office", "alice"), &gateway);
    let port = CLIENT_PORT.to_string();
    let fixed_port = ["--lport", port.as_str()];

    let capture_path = gateway.bed.dir().join("first-session.pcap");
    let capture_text = capture_path.to_str().unwrap().to_owned();
    let filter = format!("udp port {server_port}");
    let mut tcpdump = gateway.bed.spawn(
        Ns::Gateway,
        "tcpdump",
        &[
            "-i",
            WAN_IF,
            "-n",
            "--immediate-mode",
            "-U",
            "-s",
            "0",
            "-w",
            &capture_text,
            &filter,
        ],
    );
    tcpdump.expect_line("listening on", Duration::from_secs(10));
    let mut first = gateway.connect(&profile, &fixed_port);
    let first_address = wait_connected(&mut first);
    // Gives tcpdump time to write the last packets of the handshake.
    std::thread::sleep(Duration::from_millis(500));
    tcpdump.stop();
    tcpdump.expect_line("packets captured", Duration::from_secs(1));
    let handshake = client_control_packets(&capture_path, server_port);
    assert!(
        handshake.len() >= 3,
        "captured {} control packets",
        handshake.len()
    );

    // SIGKILL leaves no time for an exit notification, so the old session stays on the
    // server while the new one starts from the same address and port.
    first.signal(libc::SIGKILL);
    assert!(first.wait_timeout(Duration::from_secs(5)).is_some());
    let restarted = Instant::now();
    let mut second = gateway.connect(&profile, &fixed_port);
    let second_address = wait_connected(&mut second);
    let took = restarted.elapsed();
    assert!(took < RESTART_LIMIT, "the restarted client took {took:?}");
    assert_eq!(
        second_address, first_address,
        "the restart changed the address"
    );
    assert_eq!(gateway.ping_host(3), 3, "pings after the restart lost");
    let (id, client_session) = only_session(&gateway);
    let daemon_log = gateway.daemon().log();
    assert!(
        daemon_log.contains("replaced by a new session from the same address"),
        "{daemon_log}"
    );
    assert!(
        !daemon_log.contains(ENDED_BEFORE_AUTHENTICATION),
        "{daemon_log}"
    );

    let client = SocketAddrV4::new(gateway.bed.client_address(), CLIENT_PORT);
    let server_address = SocketAddrV4::new(gateway.bed.gateway_wan_address(), server_port);
    gateway
        .bed
        .run_inside(Ns::Client, || send_from(client, server_address, &handshake));
    // The replayed handshake starts a session, and its TLS handshake fails at the replayed
    // client Finished, because the server's random differs from the captured one.
    gateway
        .daemon()
        .expect_line(ENDED_BEFORE_AUTHENTICATION, Duration::from_secs(10));

    assert_eq!(gateway.ping_host(3), 3, "pings after the replay lost");
    let (id_after, client_session_after) = only_session(&gateway);
    assert_eq!(
        client_session_after, client_session,
        "another client took over"
    );
    let log = second.log();
    assert!(second.try_wait().is_none(), "openvpn exited:\n{log}");
    assert!(!log.contains("Restart pause"), "openvpn restarted:\n{log}");
    // Without tls-crypt, OpenVPN 2.6.3 takes the server's reply to the replayed hard reset
    // for the start of a new session, negotiates one from the same process, and that
    // session takes over. Its data keeps flowing because the new session keeps the
    // address's peer-id. With tls-crypt, 2.6.3 drops the replayed session's packets as
    // replays instead, so the session stays.
    if tls_crypt {
        assert_eq!(id_after, id, "the session was replaced");
        assert_eq!(log.matches(INITIALIZED).count(), 1, "{log}");
    }
}

#[test]
fn replayed_handshake_with_tls_crypt() {
    replayed_handshake_keeps_session(true, "replaytc");
}

#[test]
fn replayed_handshake_without_tls_crypt() {
    replayed_handshake_keeps_session(false, "replay");
}
