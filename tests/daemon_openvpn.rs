//! `sslvpn serve` in a gateway namespace, stock `openvpn` clients with exported profiles in a
//! client namespace, and real traffic to a host on the local network behind the gateway.

mod common;

use std::time::{Duration, Instant};

use common::Ns;
use common::gateway::{CONNECT_TIMEOUT, Gateway, Server, sslvpn, wait_connected};
use common::openvpn::INITIALIZED;

fn assert_reaches_host(gateway: &Gateway) {
    let received = gateway.ping_host(5);
    assert_eq!(received, 5, "pings to the local host lost");
}

/// Pings with 1500-byte packets, whose encrypted form exceeds the 1500-byte links and must be
/// fragmented on the way.
fn assert_full_size_packets_pass(gateway: &Gateway) {
    let host = gateway.host().to_string();
    let output = gateway.bed.exec(
        Ns::Client,
        "ping",
        &["-n", "-c", "3", "-i", "0.2", "-W", "2", "-s", "1472", &host],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "1500-byte pings lost:\n{stdout}");
}

fn assert_iperf_both_ways(gateway: &Gateway) {
    let _server = gateway.bed.iperf3_server(Ns::Host, gateway.host());
    let throughput = gateway.bed.iperf3(Ns::Client, gateway.host(), 2);
    assert!(
        throughput.client_to_server_bps > 1e6,
        "client to host: {throughput:?}"
    );
    assert!(
        throughput.server_to_client_bps > 1e6,
        "host to client: {throughput:?}"
    );
}

fn single_client(server: Server, client_extra: &[&str], expected_cipher: &str) {
    let mut gateway = Gateway::new(server.protocol, std::slice::from_ref(&server));
    let profile = gateway.profile(server.name, "alice");
    let mut client = gateway.connect(&profile, client_extra);
    let address = wait_connected(&mut client);
    let cidr: ipnet::Ipv4Net = server.client_cidr.parse().unwrap();
    assert!(cidr.contains(&address), "{address} outside {cidr}");
    assert_reaches_host(&gateway);
    assert_full_size_packets_pass(&gateway);
    assert_iperf_both_ways(&gateway);
    let log = client.log();
    let shown = if expected_cipher == "none" {
        "[null-cipher]"
    } else {
        expected_cipher
    };
    let cipher_line = format!("Data Channel: cipher '{shown}'");
    assert!(
        log.contains(&cipher_line)
            || log.contains(&format!("Data Channel Encrypt: Cipher '{expected_cipher}'")),
        "expected {expected_cipher}:\n{log}"
    );
    let connected = gateway
        .daemon()
        .wait_for_line("client connected", Duration::from_secs(5));
    assert!(connected.is_ok(), "{}", gateway.daemon().log_tail());
}

#[test]
fn tcp_client_negotiates_aes_256_gcm() {
    single_client(Server::default(), &[], "AES-256-GCM");
}

#[test]
fn udp_client_negotiates_aes_256_gcm() {
    let server = Server {
        protocol: "udp",
        ..Server::default()
    };
    single_client(server, &[], "AES-256-GCM");
}

#[test]
fn client_limited_to_aes_128_cbc() {
    single_client(
        Server::default(),
        &["--data-ciphers", "AES-128-CBC"],
        "AES-128-CBC",
    );
}

#[test]
fn client_limited_to_aes_256_cbc() {
    let server = Server {
        protocol: "udp",
        cipher: "AES-256-CBC",
        ..Server::default()
    };
    single_client(server, &["--data-ciphers", "AES-256-CBC"], "AES-256-CBC");
}

#[test]
fn cipher_none() {
    let server = Server {
        cipher: "none",
        ..Server::default()
    };
    single_client(server, &["--data-ciphers", "none"], "none");
}

#[test]
fn compression_with_comp_lzo_profile() {
    let server = Server {
        protocol: "udp",
        compression: true,
        ..Server::default()
    };
    single_client(server, &[], "AES-256-GCM");
}

#[test]
fn subnet_topology() {
    let server = Server {
        topology: "subnet",
        ..Server::default()
    };
    single_client(server, &[], "AES-256-GCM");
}

#[test]
fn three_clients_at_once() {
    let server = Server {
        protocol: "udp",
        ..Server::default()
    };
    let mut gateway = Gateway::new("three", &[server]);
    let hosts = [
        Ns::Client,
        gateway.bed.add_client(),
        gateway.bed.add_client(),
    ];
    let mut clients = Vec::new();
    let mut addresses = Vec::new();
    for (ns, name) in hosts.into_iter().zip(["alice", "bob", "carol"]) {
        let profile = gateway.profile("office", name);
        let path = profile.to_str().unwrap();
        let mut client =
            gateway
                .bed
                .spawn(ns, "openvpn", &["--config", path, "--connect-retry", "1"]);
        addresses.push(wait_connected(&mut client));
        clients.push(client);
    }
    let mut distinct = addresses.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "addresses not distinct: {addresses:?}");
    for ns in hosts {
        let received = gateway.bed.ping(ns, gateway.host(), 3);
        assert_eq!(received, 3, "pings from {ns:?} lost");
    }
}

#[test]
fn revoked_certificate_is_refused_and_dropped() {
    let server = Server {
        protocol: "udp",
        ..Server::default()
    };
    let mut gateway = Gateway::new("revoke", &[server]);
    let profile = gateway.profile("office", "alice");
    let mut client = gateway.connect(&profile, &[]);
    wait_connected(&mut client);
    sslvpn(&[
        "cert",
        "delete",
        "--config",
        gateway.config(),
        "--server",
        "office",
        "--name",
        "alice",
    ]);
    let dropped = gateway
        .daemon()
        .wait_for_line("revoked", Duration::from_secs(10));
    assert!(dropped.is_ok(), "{}", gateway.daemon().log_tail());
    // Over UDP the client learns at once, instead of at its next ping-restart.
    let told = client.wait_for_line("AUTH_FAILED", Duration::from_secs(5));
    assert!(told.is_ok(), "client not told:\n{}", client.log_tail());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) && gateway.ping_host(1) == 1 {}
    assert_eq!(
        gateway.ping_host(3),
        0,
        "revoked client still reaches the host"
    );
    client.stop();

    let mut again = gateway.connect(&profile, &[]);
    let outcome = again.wait_for_line(INITIALIZED, Duration::from_secs(8));
    assert!(
        outcome.is_err(),
        "revoked certificate connected:\n{}",
        again.log_tail()
    );
}

#[test]
fn certificate_of_another_server_is_refused() {
    let lab = Server {
        name: "lab",
        port: 1195,
        client_cidr: "10.9.0.0/24",
        ..Server::default()
    };
    let gateway = Gateway::new("otherca", &[Server::default(), lab]);
    let profile = gateway.profile("lab", "mallory");
    // The lab profile, pointed at the office server's port.
    let text = std::fs::read_to_string(&profile)
        .unwrap()
        .replace(" 1195", " 1194");
    let wrong = gateway.bed.dir().join("wrong.ovpn");
    std::fs::write(&wrong, text).unwrap();
    let mut client = gateway.connect(&wrong, &[]);
    let outcome = client.wait_for_line(INITIALIZED, Duration::from_secs(8));
    assert!(
        outcome.is_err(),
        "foreign certificate connected:\n{}",
        client.log_tail()
    );
}

#[test]
fn killed_client_gets_its_address_back() {
    let server = Server {
        protocol: "udp",
        ..Server::default()
    };
    let gateway = Gateway::new("kill", &[server]);
    let profile = gateway.profile("office", "alice");
    let mut client = gateway.connect(&profile, &[]);
    let first = wait_connected(&mut client);
    client.signal(libc::SIGKILL);
    client.wait_timeout(Duration::from_secs(5));
    drop(client);
    // A killed client leaves its TUN device behind in its namespace only until the process
    // is gone, so the new client can create its own.
    let mut again = gateway.connect(&profile, &[]);
    let second = wait_connected(&mut again);
    assert_eq!(first, second);
    assert_reaches_host(&gateway);
}

#[test]
fn client_reconnects_after_server_restart() {
    let mut gateway = Gateway::new("restart", &[Server::default()]);
    let profile = gateway.profile("office", "alice");
    let mut client = gateway.connect(&profile, &[]);
    wait_connected(&mut client);
    let mut daemon = gateway.daemon.take().unwrap();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_timeout(Duration::from_secs(10));
    assert!(
        status.is_some_and(|status| status.success()),
        "{}",
        daemon.log_tail()
    );
    gateway.start();
    let start = Instant::now();
    let mut received = 0;
    while start.elapsed() < Duration::from_secs(40) && received == 0 {
        received = gateway.ping_host(1);
    }
    assert_eq!(
        received,
        1,
        "client did not come back:\n{}",
        client.log_tail()
    );
}

#[test]
fn renegotiation_keeps_traffic_flowing() {
    let server = Server {
        protocol: "udp",
        ..Server::default()
    };
    let mut gateway = Gateway::new("reneg", &[server]);
    let profile = gateway.profile("office", "alice");
    let mut client = gateway.connect(&profile, &["--reneg-sec", "3"]);
    wait_connected(&mut client);
    let renegotiated = gateway
        .daemon()
        .wait_for_line("renegotiat", Duration::from_secs(15));
    assert!(renegotiated.is_ok(), "{}", gateway.daemon().log_tail());
    // Several renegotiations later, closer together than the old keys' lame duck time, the
    // tunnel still carries every packet.
    std::thread::sleep(Duration::from_secs(12));
    assert_reaches_host(&gateway);
    let log = client.log();
    let handshakes = log.matches("Control Channel: TLS").count();
    assert!(handshakes >= 5, "expected 5 TLS handshakes:\n{log}");
    assert!(!log.contains("TLS Error"), "{log}");
}

#[test]
fn client_without_shared_cipher_is_told_why() {
    let gateway = Gateway::new("nocipher", &[Server::default()]);
    let profile = gateway.profile("office", "alice");
    let mut client = gateway.connect(&profile, &["--data-ciphers", "AES-256-CBC"]);
    let line = client.wait_for_line("AUTH_FAILED", CONNECT_TIMEOUT);
    assert!(line.is_ok(), "no AUTH_FAILED:\n{}", client.log_tail());
    let line = line.unwrap();
    assert!(line.contains("AES-256-CBC"), "{line}");
    assert!(line.contains("AES-128-CBC"), "{line}");
}

#[test]
fn sighup_leaves_clients_connected() {
    let mut gateway = Gateway::new("hangup", &[Server::default()]);
    let profile = gateway.profile("office", "alice");
    let mut client = gateway.connect(&profile, &[]);
    wait_connected(&mut client);
    gateway.daemon().signal(libc::SIGHUP);
    let logged = gateway
        .daemon()
        .wait_for_line("SIGHUP received", Duration::from_secs(5));
    assert!(logged.is_ok(), "{}", gateway.daemon().log_tail());
    assert!(
        gateway.daemon().try_wait().is_none(),
        "sslvpn exited on SIGHUP"
    );
    assert_reaches_host(&gateway);
}

/// Runs a client's iperf3 upload through a server with `gateway_lines` in `[gateway]` and
/// returns the server's count of receive coalescing pauses.
fn coalescing_pauses_during_upload(protocol: &'static str, gateway_lines: &str) -> u64 {
    common::require_root_and_tools();
    let server = Server {
        protocol,
        ..Server::default()
    };
    let bed = common::TestBed::new(protocol);
    let gateway = Gateway::on_bed_with(bed, std::slice::from_ref(&server), gateway_lines);
    let profile = gateway.profile(server.name, "alice");
    let mut client = gateway.connect(&profile, &[]);
    wait_connected(&mut client);
    let series = "sslvpn_receive_coalescing_pauses_total{server=\"office\"}";
    // Pings arrive one at a time, so they are no burst.
    assert_reaches_host(&gateway);
    assert_eq!(gateway.metric(series), 0, "pauses after single pings");
    assert_iperf_both_ways(&gateway);
    assert_reaches_host(&gateway);
    gateway.metric(series)
}

#[test]
fn udp_upload_takes_coalescing_pauses() {
    let pauses = coalescing_pauses_during_upload("udp", "");
    assert!(pauses > 0, "no pause during a UDP upload");
}

#[test]
fn tcp_upload_takes_coalescing_pauses() {
    let pauses = coalescing_pauses_during_upload("tcp", "");
    assert!(pauses > 0, "no pause during a TCP upload");
}

#[test]
fn coalescing_turned_off_takes_no_pause() {
    let pauses = coalescing_pauses_during_upload("udp", "receive_coalescing_us = 0\n");
    assert_eq!(pauses, 0);
}
