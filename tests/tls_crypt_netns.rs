//! `sslvpn serve` with `tls_crypt = true` and stock `openvpn` clients using the exported
//! profiles, over UDP and TCP. A client whose profile lacks the key must neither connect nor
//! get a reply, and must not disturb a connected client.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::gateway::{Gateway, Server, sslvpn, wait_connected};
use common::openvpn::INITIALIZED;

/// What `openvpn` 2.6.3 logs once it receives the server's first control packet.
const SERVER_REPLIED: &str = "TLS: Initial packet from";

/// Copies `profile` without its `<tls-crypt>` block and returns the copy's path.
fn without_tls_crypt(profile: &Path, gateway: &Gateway) -> PathBuf {
    let text = std::fs::read_to_string(profile).unwrap();
    let start = text
        .find("<tls-crypt>")
        .expect("profile has a <tls-crypt> block");
    let end_tag = "</tls-crypt>\n";
    let end = text.find(end_tag).expect("closing tag") + end_tag.len();
    let stripped = format!("{}{}", &text[..start], &text[end..]);
    let path = gateway.bed.dir().join("no-tls-crypt.ovpn");
    std::fs::write(&path, stripped).unwrap();
    path
}

/// Reads the daemon's count of packets from peers without a session that it dropped.
fn dropped_without_session(gateway: &Gateway) -> u64 {
    gateway.metric("sslvpn_packets_dropped_total{server=\"office\",reason=\"no session\"}")
}

fn connect_with_tls_crypt(protocol: &'static str, tag: &str) {
    let server = Server {
        protocol,
        tls_crypt: true,
        ..Server::default()
    };
    let mut gateway = Gateway::new(tag, &[server]);
    let key_path = gateway.bed.dir().join("certs/office/tls-crypt.key");
    let mode = std::fs::metadata(&key_path)
        .expect("the daemon created the key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let profile = gateway.profile("office", "alice");
    let text = std::fs::read_to_string(&profile).unwrap();
    let key_text = std::fs::read_to_string(&key_path).unwrap();
    assert!(
        text.contains(&format!("<tls-crypt>\n{key_text}</tls-crypt>\n")),
        "{text}"
    );
    let mut alice = gateway.connect(&profile, &[]);
    wait_connected(&mut alice);
    // The same line is absent from bob's log below only because the server never replied.
    assert!(alice.log().contains(SERVER_REPLIED), "{}", alice.log());
    assert_eq!(gateway.ping_host(3), 3, "pings to the local host lost");

    // Bob's certificate is valid, but his profile lacks the key.
    let bob_profile = without_tls_crypt(&gateway.profile("office", "bob"), &gateway);
    let dropped_before = dropped_without_session(&gateway);
    let bob_ns = gateway.bed.add_client();
    let path = bob_profile.to_str().unwrap();
    let mut bob = gateway.bed.spawn(
        bob_ns,
        "openvpn",
        &["--config", path, "--connect-retry", "1"],
    );
    let outcome = bob.wait_for_line(INITIALIZED, Duration::from_secs(8));
    assert!(
        outcome.is_err(),
        "client without the key connected:\n{}",
        bob.log_tail()
    );
    let log = bob.log();
    assert!(
        !log.contains(SERVER_REPLIED),
        "the server replied to a packet without tls-crypt:\n{log}"
    );
    let dropped_after = dropped_without_session(&gateway);
    assert!(
        dropped_after > dropped_before,
        "bob's packets were not counted: {dropped_before} then {dropped_after}"
    );
    assert!(
        alice.try_wait().is_none(),
        "alice's openvpn exited:\n{}",
        alice.log_tail()
    );
    assert_eq!(gateway.ping_host(3), 3, "alice lost her tunnel");
    let daemon_log = gateway.daemon().log();
    assert_eq!(
        daemon_log.matches("client connected").count(),
        1,
        "{daemon_log}"
    );
}

#[test]
fn udp_clients_with_tls_crypt() {
    connect_with_tls_crypt("udp", "tcudp");
}

#[test]
fn tcp_clients_with_tls_crypt() {
    connect_with_tls_crypt("tcp", "tctcp");
}

fn export(gateway: &Gateway, name: &str, file_name: &str) -> PathBuf {
    let path = gateway.bed.dir().join(file_name);
    sslvpn(&[
        "cert",
        "export",
        "--config",
        gateway.config(),
        "--server",
        "office",
        "--name",
        name,
        "--output",
        path.to_str().unwrap(),
    ]);
    path
}

fn set_tls_crypt(gateway: &Gateway, switch: &str) -> String {
    sslvpn(&[
        "server",
        "modify",
        "--config",
        gateway.config(),
        "--name",
        "office",
        "--tls-crypt",
        switch,
    ])
}

#[test]
fn turning_tls_crypt_on_needs_new_profiles() {
    let server = Server {
        protocol: "udp",
        ..Server::default()
    };
    let gateway = Gateway::new("tctoggle", &[server]);
    let old_profile = gateway.profile("office", "alice");
    let mut old_client = gateway.connect(&old_profile, &[]);
    wait_connected(&mut old_client);

    let reply = set_tls_crypt(&gateway, "on");
    assert!(reply.contains("users need new profiles"), "{reply}");
    assert!(reply.contains("sessions are dropped"), "{reply}");
    assert!(!reply.contains("revoked"), "{reply}");
    let key_path = gateway.bed.dir().join("certs/office/tls-crypt.key");
    let key_text = std::fs::read_to_string(&key_path).expect("key created");

    // The old profile lacks the key, so its client loses the tunnel and cannot get it back.
    std::thread::sleep(Duration::from_secs(8));
    let log = old_client.log();
    assert_eq!(log.matches(INITIALIZED).count(), 1, "{log}");
    assert_eq!(
        gateway.ping_host(2),
        0,
        "the old profile still has a tunnel"
    );
    old_client.stop();

    // The certificate stays valid, so exporting it again is enough.
    let new_profile = export(&gateway, "alice", "alice-tls-crypt.ovpn");
    let mut new_client = gateway.connect(&new_profile, &[]);
    wait_connected(&mut new_client);
    assert_eq!(gateway.ping_host(3), 3, "pings to the local host lost");
    new_client.stop();

    set_tls_crypt(&gateway, "off");
    set_tls_crypt(&gateway, "on");
    let kept = std::fs::read_to_string(&key_path).unwrap();
    assert_eq!(kept, key_text, "the key changed across off and on");
}
