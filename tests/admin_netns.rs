//! Changes to a running gateway through `sslvpn server|cert|session` and SIGHUP, with stock
//! `openvpn` clients: what must reconnect does, with the new settings; what must be refused
//! is refused; and the client of the other SSL server keeps pinging through every change.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::gateway::{Gateway, Server, sslvpn, wait_connected, wait_connections};
use common::openvpn::INITIALIZED;
use common::{BedConfig, Ns, Process, TestBed, require_root_and_tools};
use ipnet::Ipv4Net;

/// What an `openvpn` client logs when the server tells it to reconnect.
const TOLD_TO_RECONNECT: &str = "server-pushed-connection-reset";
/// Pings sent by the other server's client while a change runs: 40 at 0.25 s.
const BACKGROUND_PINGS: u32 = 40;

/// A gateway with two SSL servers: `office` (UDP 1194, 10.8.0.0/24) with a client in the
/// client namespace, and `branch` (TCP 1195, 10.8.1.0/24) with a client in an extra client
/// namespace.
struct Lab {
    gateway: Gateway,
    office_client: Option<Process>,
    /// Kept so the branch client runs as long as the lab.
    _branch_client: Process,
    branch_ns: Ns,
}

impl Lab {
    fn new(tag: &str) -> Self {
        Self::with_gateway_lines(tag, |_| String::new())
    }

    /// Builds the lab with the lines that `gateway_lines` returns for the bed's folder added
    /// to `[gateway]`.
    fn with_gateway_lines(tag: &str, gateway_lines: impl FnOnce(&Path) -> String) -> Self {
        require_root_and_tools();
        let config = BedConfig {
            client_pool: "10.8.0.0/16".parse().unwrap(),
            ..BedConfig::default()
        };
        let mut bed = TestBed::with_config(tag, config);
        let branch_ns = bed.add_client();
        let office = Server {
            protocol: "udp",
            ..Server::default()
        };
        let branch = Server {
            name: "branch",
            protocol: "tcp",
            port: 1195,
            client_cidr: "10.8.1.0/24",
            ..Server::default()
        };
        let lines = gateway_lines(bed.dir());
        let gateway = Gateway::on_bed_with(bed, &[office, branch], &lines);
        let profile = gateway.profile("branch", "bob");
        let mut branch_client = gateway.bed.spawn(
            branch_ns,
            "openvpn",
            &[
                "--config",
                profile.to_str().unwrap(),
                "--connect-retry",
                "1",
            ],
        );
        wait_connections(&mut branch_client, 1);
        let mut lab = Self {
            gateway,
            office_client: None,
            _branch_client: branch_client,
            branch_ns,
        };
        lab.connect_office("alice", &[]);
        lab
    }

    /// Connects a client of `office` with a new certificate named `name`.
    fn connect_office(&mut self, name: &str, extra: &[&str]) -> Ipv4Addr {
        self.office_client = None;
        let profile = self.gateway.profile("office", name);
        let mut client = self.gateway.connect(&profile, extra);
        let address = wait_connections(&mut client, 1);
        self.office_client = Some(client);
        address
    }

    fn office(&mut self) -> &mut Process {
        self.office_client.as_mut().expect("office client running")
    }

    fn config(&self) -> &str {
        self.gateway.config()
    }

    /// Starts pinging the host from the branch client, to be checked by [`Lab::assert_no_gap`].
    fn start_background_ping(&self) -> Process {
        let host = self.gateway.host().to_string();
        let count = BACKGROUND_PINGS.to_string();
        self.gateway.bed.spawn(
            self.branch_ns,
            "ping",
            &["-n", "-c", &count, "-i", "0.25", "-W", "1", &host],
        )
    }

    /// Waits for the background ping to end and asserts that every ping came back.
    fn assert_no_gap(&self, mut ping: Process) {
        let summary = ping.expect_line("packets transmitted", Duration::from_secs(30));
        let expected = format!("{BACKGROUND_PINGS} received");
        assert!(
            summary.contains(&expected),
            "the branch client lost pings during the change: {summary}"
        );
    }

    fn ping_from_office(&self, count: u32) -> u32 {
        self.gateway.ping_host(count)
    }
}

fn run_sslvpn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sslvpn"))
        .args(args)
        .output()
        .expect("run sslvpn")
}

/// Runs `sslvpn server modify` for `office` with `options` and returns its output.
fn modify_office(lab: &Lab, options: &[&str]) -> String {
    let mut args = vec![
        "server",
        "modify",
        "--config",
        lab.config(),
        "--name",
        "office",
    ];
    args.extend_from_slice(options);
    sslvpn(&args)
}

/// Sends one HTTP request to the admin socket and returns the whole response.
fn http(socket: &Path, request: &str) -> String {
    let mut stream = UnixStream::connect(socket).expect("connect to the admin socket");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn admin_socket(gateway: &Gateway) -> PathBuf {
    gateway.bed.dir().join("admin.sock")
}

fn routes(lab: &Lab, ns: Ns) -> String {
    let output = lab.gateway.bed.exec(ns, "ip", &["-4", "route", "show"]);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn local_networks_change_pushes_new_routes_and_spares_the_other_server() {
    let mut lab = Lab::new("admroutes");
    let ping = lab.start_background_ping();
    let local = lab.gateway.bed.config().local.to_string();
    let output = modify_office(
        &lab,
        &[
            "--local-network",
            &local,
            "--local-network",
            "192.168.88.0/24",
        ],
    );
    assert!(output.contains("local_networks"), "{output}");
    wait_connections(lab.office(), 2);
    let table = routes(&lab, Ns::Client);
    assert!(
        table.contains("192.168.88.0/24"),
        "new route missing:\n{table}"
    );
    assert_eq!(
        lab.ping_from_office(3),
        3,
        "office client cannot reach the host"
    );
    lab.assert_no_gap(ping);
    let text = std::fs::read_to_string(lab.gateway.config_path()).unwrap();
    assert!(
        text.contains("192.168.88.0/24"),
        "change not saved:\n{text}"
    );
}

#[test]
fn client_cidr_change_gives_clients_new_addresses() {
    let mut lab = Lab::new("admcidr");
    let ping = lab.start_background_ping();
    modify_office(&lab, &["--client-cidr", "10.8.2.0/24"]);
    let address = wait_connections(lab.office(), 2);
    let cidr: Ipv4Net = "10.8.2.0/24".parse().unwrap();
    assert!(cidr.contains(&address), "{address} outside {cidr}");
    assert_eq!(
        lab.ping_from_office(3),
        3,
        "office client cannot reach the host"
    );
    lab.assert_no_gap(ping);
}

#[test]
fn protocol_change_moves_the_listener_and_revokes_certificates() {
    let mut lab = Lab::new("admproto");
    let ping = lab.start_background_ping();
    let output = modify_office(&lab, &["--protocol", "tcp", "--port", "1196"]);
    assert!(
        output.contains("alice"),
        "revoked certificate not named:\n{output}"
    );
    // The old profile points at UDP 1194, where nothing listens any more.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lab.office().log().matches(INITIALIZED).count(), 1);
    // alice's certificate is revoked: a profile on the new listener is refused too.
    let profile = lab.gateway.bed.dir().join("alice-new.ovpn");
    let exported = run_sslvpn(&[
        "cert",
        "export",
        "--config",
        lab.config(),
        "--server",
        "office",
        "--name",
        "alice",
        "--output",
        profile.to_str().unwrap(),
    ]);
    assert!(
        !exported.status.success(),
        "a revoked certificate was exported"
    );
    // A new certificate connects over TCP on the new port.
    let address = lab.connect_office("carol", &[]);
    assert!(address.octets()[..3] == [10, 8, 0], "{address}");
    let log = lab.office().log();
    assert!(log.contains("1196"), "not on the new port:\n{log}");
    assert_eq!(lab.ping_from_office(3), 3);
    lab.assert_no_gap(ping);
}

#[test]
fn port_change_keeps_certificates() {
    let mut lab = Lab::new("admport");
    let output = modify_office(&lab, &["--port", "1197"]);
    assert!(!output.contains("revoked"), "{output}");
    // The same certificate with a profile exported again reaches the new port.
    let profile = lab.gateway.bed.dir().join("alice-1197.ovpn");
    sslvpn(&[
        "cert",
        "export",
        "--config",
        lab.config(),
        "--server",
        "office",
        "--name",
        "alice",
        "--output",
        profile.to_str().unwrap(),
    ]);
    lab.office_client = None;
    let mut client = lab.gateway.connect(&profile, &[]);
    wait_connections(&mut client, 1);
    assert!(client.log().contains("1197"), "{}", client.log_tail());
    assert_eq!(lab.ping_from_office(3), 3);
}

#[test]
fn cipher_change_applies_to_new_sessions_only() {
    let mut lab = Lab::new("admcipher");
    lab.connect_office("amy", &["--data-ciphers", "AES-128-CBC"]);
    let dave_ns = lab.gateway.bed.add_client();
    let profile = lab.gateway.profile("office", "dave");
    let dave_args = [
        "--config",
        profile.to_str().unwrap(),
        "--connect-retry",
        "1",
        "--data-ciphers",
        "AES-256-CBC",
    ];
    // A client that can only use AES-256-CBC shares no cipher with the server yet.
    let mut dave = lab.gateway.bed.spawn(dave_ns, "openvpn", &dave_args);
    dave.expect_line("AUTH_FAILED", Duration::from_secs(20));
    drop(dave);
    modify_office(&lab, &["--cipher", "AES-256-CBC"]);
    // The running session stays.
    assert_eq!(lab.ping_from_office(3), 3);
    assert_eq!(lab.office().log().matches(INITIALIZED).count(), 1);
    // New sessions get the new cipher.
    let mut dave = lab.gateway.bed.spawn(dave_ns, "openvpn", &dave_args);
    wait_connections(&mut dave, 1);
    assert!(dave.log().contains("AES-256-CBC"), "{}", dave.log_tail());
    assert_eq!(lab.office().log().matches(INITIALIZED).count(), 1);
}

#[test]
fn server_delete_removes_clients_device_ca() {
    let mut lab = Lab::new("admdelete");
    let ping = lab.start_background_ping();
    let output = sslvpn(&[
        "server",
        "delete",
        "--config",
        lab.config(),
        "--name",
        "office",
    ]);
    assert!(output.contains("office"), "{output}");
    lab.office()
        .expect_line(TOLD_TO_RECONNECT, Duration::from_secs(10));
    let links = lab
        .gateway
        .bed
        .exec(Ns::Gateway, "ip", &["-o", "link", "show"]);
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("office"), "TUN device left:\n{links}");
    let pki = lab.gateway.bed.dir().join("certs").join("office");
    assert!(!pki.exists(), "CA folder left at {}", pki.display());
    let text = std::fs::read_to_string(lab.gateway.config_path()).unwrap();
    assert!(
        !text.contains("\"office\""),
        "server left in the file:\n{text}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lab.office().log().matches(INITIALIZED).count(), 1);
    lab.assert_no_gap(ping);
}

#[test]
fn rejected_change_keeps_file_and_sessions() {
    let mut lab = Lab::new("admreject");
    let before = std::fs::read(lab.gateway.config_path()).unwrap();
    // Overlaps branch's client_cidr.
    let output = run_sslvpn(&[
        "server",
        "modify",
        "--config",
        lab.config(),
        "--name",
        "office",
        "--client-cidr",
        "10.8.1.0/24",
        "--compression",
        "on",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("10.8.1.0/24"), "value not named:\n{stderr}");
    let after = std::fs::read(lab.gateway.config_path()).unwrap();
    assert_eq!(before, after, "the config file changed");
    let certs = sslvpn(&[
        "cert",
        "list",
        "--config",
        lab.config(),
        "--server",
        "office",
    ]);
    assert!(!certs.contains("revoked"), "{certs}");
    assert_eq!(lab.ping_from_office(3), 3);
    assert_eq!(lab.office().log().matches(INITIALIZED).count(), 1);
    let log = lab.office().log();
    assert!(
        !log.contains(TOLD_TO_RECONNECT),
        "the session was dropped:\n{log}"
    );
}

#[test]
fn sighup_applies_the_edited_file() {
    let mut lab = Lab::new("admsighup");
    let ping = lab.start_background_ping();
    let path = lab.gateway.config_path().to_owned();
    let text = std::fs::read_to_string(&path).unwrap();
    let local = lab.gateway.bed.config().local.to_string();
    let edited = text.replacen(
        &format!("local_networks = [\"{local}\"]"),
        &format!("local_networks = [\"{local}\", \"192.168.99.0/24\"]"),
        1,
    );
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    let pid = lab.gateway.daemon().pid().to_string();
    let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(status.success());
    lab.gateway
        .daemon()
        .expect_line("configuration reloaded", Duration::from_secs(10));
    wait_connections(lab.office(), 2);
    let table = routes(&lab, Ns::Client);
    assert!(
        table.contains("192.168.99.0/24"),
        "new route missing:\n{table}"
    );
    // An invalid file leaves the running configuration in place.
    let valid = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{valid}\nbogus_key = 1\n")).unwrap();
    let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(status.success());
    lab.gateway
        .daemon()
        .expect_line("running configuration stays", Duration::from_secs(10));
    assert_eq!(lab.ping_from_office(3), 3);
    // The CLI still reaches the daemon through the socket that the broken file names.
    let listed = run_sslvpn(&["session", "list", "--config", lab.config()]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{listed:?}");
    assert!(stdout.contains("alice"), "{stdout}");
    lab.assert_no_gap(ping);
}

#[test]
fn sessions_are_listed_killed_and_counted() {
    let mut lab = Lab::new("admsessions");
    assert_eq!(lab.ping_from_office(3), 3);
    let listed = sslvpn(&["session", "list", "--config", lab.config()]);
    let alice = listed
        .lines()
        .find(|line| line.contains("alice"))
        .unwrap_or_else(|| panic!("alice not listed:\n{listed}"));
    assert!(alice.contains("office"), "{alice}");
    assert!(alice.contains("10.8.0."), "{alice}");
    assert!(listed.contains("bob"), "{listed}");

    let response = http(
        &admin_socket(&lab.gateway),
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("sslvpn_sessions{server=\"office\"} 1"),
        "{response}"
    );
    let bytes_in = response
        .lines()
        .find(|line| {
            line.starts_with("sslvpn_tunnel_bytes_total{server=\"office\",direction=\"in\"}")
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no tunnel bytes for office:\n{response}"));
    assert!(bytes_in >= 3 * 84, "{bytes_in} bytes in after 3 pings");

    let id = alice.split_whitespace().next().unwrap();
    sslvpn(&["session", "kill", "--config", lab.config(), "--id", id]);
    lab.office()
        .expect_line(TOLD_TO_RECONNECT, Duration::from_secs(10));
    wait_connections(lab.office(), 2);
    let unknown = run_sslvpn(&[
        "session",
        "kill",
        "--config",
        lab.config(),
        "--id",
        "999999",
    ]);
    assert!(!unknown.status.success());
}

#[test]
fn created_server_accepts_clients() {
    let mut lab = Lab::new("admcreate");
    let local = lab.gateway.bed.config().local.to_string();
    sslvpn(&[
        "server",
        "create",
        "--config",
        lab.config(),
        "--name",
        "lab",
        "--local-network",
        &local,
        "--client-cidr",
        "10.8.3.0/24",
        "--protocol",
        "udp",
        "--port",
        "1198",
    ]);
    let listed = sslvpn(&["server", "list", "--config", lab.config()]);
    assert!(listed.contains("lab"), "{listed}");
    lab.office_client = None;
    let profile = lab.gateway.profile("lab", "erin");
    let mut client = lab.gateway.connect(&profile, &[]);
    let address = wait_connections(&mut client, 1);
    let cidr: Ipv4Net = "10.8.3.0/24".parse().unwrap();
    assert!(cidr.contains(&address), "{address} outside {cidr}");
    assert_eq!(lab.ping_from_office(3), 3);
}

/// Runs `sslvpn user add --password-stdin` for `name` with `password`.
fn add_user(config: &str, server: &str, name: &str, password: &str) {
    let mut add = Command::new(env!("CARGO_BIN_EXE_sslvpn"))
        .args([
            "user",
            "add",
            "--config",
            config,
            "--server",
            server,
            "--name",
            name,
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let added = add.wait_with_output().unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
}

#[test]
fn created_two_factor_server_asks_for_passwords() {
    require_root_and_tools();
    let config = BedConfig {
        client_pool: "10.8.0.0/16".parse().unwrap(),
        ..BedConfig::default()
    };
    let bed = TestBed::with_config("admcreate2fa", config);
    let gateway = Gateway::on_bed(bed, &[Server::default()]);
    let local = gateway.bed.config().local.to_string();
    let created = sslvpn(&[
        "server",
        "create",
        "--config",
        gateway.config(),
        "--name",
        "lab",
        "--local-network",
        &local,
        "--client-cidr",
        "10.8.3.0/24",
        "--protocol",
        "udp",
        "--port",
        "1198",
        "--two-factor",
        "on",
    ]);
    assert!(
        created.contains("users_file = \"users-lab.toml\""),
        "{created}"
    );
    let shown = sslvpn(&[
        "server",
        "show",
        "--config",
        gateway.config(),
        "--name",
        "lab",
    ]);
    assert!(
        shown.lines().any(|line| line == "auth_backend: local"),
        "{shown}"
    );
    let text = std::fs::read_to_string(gateway.config_path()).unwrap();
    assert!(text.contains("[ssl_server.auth]"), "{text}");

    add_user(gateway.config(), "lab", "erin", "erin's long password");
    let profile = gateway.profile("lab", "erin");
    let exported = std::fs::read_to_string(&profile).unwrap();
    assert!(
        exported.lines().any(|line| line == "auth-user-pass"),
        "{exported}"
    );
    let credentials = gateway.bed.dir().join("erin.pass");
    std::fs::write(&credentials, "erin\nerin's long password\n").unwrap();
    let mut client = gateway.connect(
        &profile,
        &["--auth-user-pass", credentials.to_str().unwrap()],
    );
    let address = wait_connections(&mut client, 1);
    let cidr: Ipv4Net = "10.8.3.0/24".parse().unwrap();
    assert!(cidr.contains(&address), "{address} outside {cidr}");
    assert_eq!(gateway.ping_host(3), 3);
}

#[test]
fn compression_change_revokes_certificates() {
    let mut lab = Lab::new("admcomp");
    let output = modify_office(&lab, &["--compression", "on"]);
    assert!(
        output.contains("alice"),
        "revoked certificate not named:\n{output}"
    );
    lab.office()
        .expect_line(TOLD_TO_RECONNECT, Duration::from_secs(10));
    // The old profile's certificate is refused when the client comes back.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lab.office().log().matches(INITIALIZED).count(), 1);
    // A new profile carries the compression setting and connects.
    lab.connect_office("carol", &[]);
    assert_eq!(lab.ping_from_office(3), 3);
}

#[test]
fn two_factor_change_revokes_certificates_and_asks_for_passwords() {
    let mut lab = Lab::new("adm2fa");
    let ping = lab.start_background_ping();
    let output = modify_office(&lab, &["--two-factor", "on"]);
    assert!(
        output.contains("alice"),
        "revoked certificate not named:\n{output}"
    );
    lab.office()
        .expect_line(TOLD_TO_RECONNECT, Duration::from_secs(10));
    lab.assert_no_gap(ping);

    add_user(lab.config(), "office", "carol", "carol's long password");
    let credentials = lab.gateway.bed.dir().join("carol.pass");
    std::fs::write(&credentials, "carol\ncarol's long password\n").unwrap();
    let address = lab.connect_office(
        "carol",
        &["--auth-user-pass", credentials.to_str().unwrap()],
    );
    assert!(address.octets()[..3] == [10, 8, 0], "{address}");
    assert_eq!(lab.ping_from_office(3), 3);
}

/// Sends `GET path` to the admin API on 127.0.0.1:`port` inside the gateway namespace, with
/// `token` as the bearer token when given, and returns the status line and body.
fn loopback_get(lab: &Lab, port: u16, path: &str, token: Option<&str>) -> String {
    let script = "import sys, urllib.request, urllib.error\n\
        request = urllib.request.Request(sys.argv[1])\n\
        if len(sys.argv) > 2: request.add_header('Authorization', 'Bearer ' + sys.argv[2])\n\
        try:\n    response = urllib.request.urlopen(request, timeout=10)\n\
        except urllib.error.HTTPError as error:\n    response = error\n\
        print(response.status)\nprint(response.read().decode())\n";
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut args = vec!["-c", script, url.as_str()];
    args.extend(token);
    let output = lab.gateway.bed.exec(Ns::Gateway, "python3", &args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn loopback_api_needs_the_bearer_token() {
    use std::os::unix::fs::PermissionsExt;
    let token = "a-test-token-of-at-least-32-characters";
    let lab = Lab::with_gateway_lines("admtcp", |dir| {
        let path = dir.join("admin.token");
        std::fs::write(&path, format!("{token}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        "admin_address = \"127.0.0.1:9180\"\nadmin_token_file = \"admin.token\"\n".to_owned()
    });
    let refused = loopback_get(&lab, 9180, "/v1/sessions", None);
    assert!(refused.starts_with("401"), "{refused}");
    let wrong = loopback_get(&lab, 9180, "/v1/sessions", Some("not-the-token"));
    assert!(wrong.starts_with("401"), "{wrong}");
    let listed = loopback_get(&lab, 9180, "/v1/sessions", Some(token));
    assert!(listed.starts_with("200"), "{listed}");
    assert!(listed.contains("\"common_name\":\"alice\""), "{listed}");
    assert!(listed.contains("\"common_name\":\"bob\""), "{listed}");
}

/// What the daemon logs when a changed server fails to start, when a retry fails, and when a
/// retry starts it.
const COULD_NOT_START: &str = "SSL server could not start; next attempt in 5 s";
const STILL_CANNOT_START: &str = "SSL server still cannot start";
const STARTED_BY_RETRY: &str = "SSL server started after";

/// Waits until `count` log lines of `process` contain `needle` and returns the last of them.
fn expect_lines(process: &mut Process, needle: &str, count: usize, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let log = process.log();
        let lines: Vec<&str> = log.lines().filter(|line| line.contains(needle)).collect();
        if lines.len() >= count {
            return lines[count - 1].to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{count} line(s) containing {needle:?} expected, found {}:\n{}",
            lines.len(),
            process.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Listens on TCP 0.0.0.0:`port` in the gateway namespace, so that a server of the
/// gateway cannot bind it until the listener is dropped.
fn take_port(gateway: &Gateway, port: u16) -> TcpListener {
    gateway.bed.run_inside(Ns::Gateway, || {
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).expect("bind the port to take")
    })
}

/// Moves `office` from TCP `from` to `to` in the config file and sends SIGHUP, so the daemon
/// applies the change without the admin API's listener check.
fn move_office_by_sighup(gateway: &mut Gateway, from: u16, to: u16) {
    let path = gateway.config_path().to_owned();
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen(&format!("port = {from}\n"), &format!("port = {to}\n"), 1);
    assert_ne!(edited, text, "no `port = {from}` line in:\n{text}");
    std::fs::write(&path, edited).unwrap();
    gateway.daemon().signal(libc::SIGHUP);
}

fn list_servers(gateway: &Gateway) -> String {
    sslvpn(&["server", "list", "--config", gateway.config()])
}

#[test]
fn failed_start_is_retried() {
    let mut gateway = Gateway::new("admretry", &[Server::default()]);
    let holder = take_port(&gateway, 1196);
    move_office_by_sighup(&mut gateway, 1194, 1196);
    let failed = gateway
        .daemon()
        .expect_line(COULD_NOT_START, Duration::from_secs(10));
    let failed_seen = Instant::now();
    assert!(failed.contains("office"), "{failed}");
    assert!(failed.contains(":1196"), "{failed}");
    let listed = list_servers(&gateway);
    assert!(
        listed.contains("not running, next start attempt in"),
        "{listed}"
    );

    // The first retry, 5 s after the failure, finds the port still taken.
    let again = gateway
        .daemon()
        .expect_line(STILL_CANNOT_START, Duration::from_secs(15));
    let again_seen = Instant::now();
    assert!(again.contains("next attempt in 10 s"), "{again}");
    assert!(again.contains(":1196"), "{again}");
    let waited = again_seen - failed_seen;
    assert!(waited >= Duration::from_secs(4), "retried after {waited:?}");
    assert!(!gateway.daemon().log().contains(STARTED_BY_RETRY));

    // The second retry, 10 s after the first, starts the server with no further change.
    drop(holder);
    let started = gateway
        .daemon()
        .expect_line(STARTED_BY_RETRY, Duration::from_secs(20));
    let waited = again_seen.elapsed();
    assert!(started.contains("after 2 failed attempt(s)"), "{started}");
    assert!(started.contains("office"), "{started}");
    assert!(waited >= Duration::from_secs(8), "retried after {waited:?}");
    let listed = list_servers(&gateway);
    assert!(!listed.contains("not running"), "{listed}");
    assert!(listed.contains("tcp/1196"), "{listed}");
    assert!(listed.contains("0 session(s)"), "{listed}");

    let profile = gateway.profile("office", "alice");
    let mut client = gateway.connect(&profile, &[]);
    wait_connected(&mut client);
    assert_eq!(gateway.ping_host(3), 3);
}

#[test]
fn change_and_delete_replace_pending_retry() {
    let mut gateway = Gateway::new("admreplace", &[Server::default()]);
    let holder = take_port(&gateway, 1196);
    move_office_by_sighup(&mut gateway, 1194, 1196);
    gateway
        .daemon()
        .expect_line(COULD_NOT_START, Duration::from_secs(10));

    // A change while the port is still taken fails with the error and starts the backoff over.
    let config = gateway.config().to_owned();
    let modify = [
        "server", "modify", "--config", &config, "--name", "office", "--cipher",
    ];
    let output = run_sslvpn(&[&modify[..], &["AES-256-CBC"]].concat());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    assert!(stderr.contains("cannot listen on tcp"), "{stderr}");
    assert!(stderr.contains(":1196"), "{stderr}");
    assert!(stderr.contains("the change is saved"), "{stderr}");
    let log = gateway.daemon().log();
    assert_eq!(log.matches(COULD_NOT_START).count(), 2, "{log}");
    assert!(!log.contains(STILL_CANNOT_START), "{log}");

    // A change once the port is free starts the server at once, before its retry is due.
    drop(holder);
    sslvpn(&[&modify[..], &["AES-128-CBC"]].concat());
    let listed = list_servers(&gateway);
    assert!(!listed.contains("not running"), "{listed}");
    assert!(listed.contains("cipher AES-128-CBC"), "{listed}");
    let log = gateway.daemon().log();
    assert!(
        log.contains("SSL server changed while not running"),
        "{log}"
    );
    assert!(!log.contains(STARTED_BY_RETRY), "{log}");

    // A delete ends a pending retry, so no attempt follows once its time has passed.
    let holder = take_port(&gateway, 1197);
    move_office_by_sighup(&mut gateway, 1196, 1197);
    expect_lines(
        gateway.daemon(),
        COULD_NOT_START,
        3,
        Duration::from_secs(10),
    );
    sslvpn(&[
        "server",
        "delete",
        "--config",
        gateway.config(),
        "--name",
        "office",
    ]);
    drop(holder);
    std::thread::sleep(Duration::from_secs(7));
    let log = gateway.daemon().log();
    assert!(!log.contains(STILL_CANNOT_START), "{log}");
    assert!(!log.contains(STARTED_BY_RETRY), "{log}");
    let listed = list_servers(&gateway);
    assert!(!listed.contains("office"), "{listed}");
}

/// What the daemon logs after its first start when some servers could not start.
const NOT_ALL_STARTED: &str = "SSL server(s) could not start and are retried";

/// Returns the line of `server` in the output of `sslvpn server list`.
fn listed_line(gateway: &Gateway, server: &str) -> String {
    let listed = list_servers(gateway);
    let prefix = format!("{server}: ");
    listed
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {server} in:\n{listed}"))
        .to_owned()
}

#[test]
fn first_start_failure_spares_other_servers() {
    require_root_and_tools();
    let config = BedConfig {
        client_pool: "10.8.0.0/16".parse().unwrap(),
        ..BedConfig::default()
    };
    let mut bed = TestBed::with_config("admfirst", config);
    let branch_ns = bed.add_client();
    let branch = Server {
        name: "branch",
        port: 1195,
        client_cidr: "10.8.1.0/24",
        ..Server::default()
    };
    let mut gateway = Gateway::configure(bed, &[Server::default(), branch], "");
    let holder = take_port(&gateway, 1195);
    gateway.start();

    let failed = gateway
        .daemon()
        .expect_line(COULD_NOT_START, Duration::from_secs(10));
    assert!(failed.contains("branch"), "{failed}");
    assert!(
        failed.contains("cannot listen on tcp 0.0.0.0:1195"),
        "{failed}"
    );
    assert!(
        failed.contains("another process uses this port"),
        "{failed}"
    );
    let summary = gateway
        .daemon()
        .expect_line(NOT_ALL_STARTED, Duration::from_secs(10));
    assert!(summary.contains("1 of 2"), "{summary}");
    let office = listed_line(&gateway, "office");
    assert!(office.contains("0 session(s)"), "{office}");
    let waiting = listed_line(&gateway, "branch");
    assert!(
        waiting.contains("not running, next start attempt in"),
        "{waiting}"
    );

    // The other server serves while the failed one waits for its retry.
    let profile = gateway.profile("office", "alice");
    let mut alice = gateway.connect(&profile, &[]);
    wait_connected(&mut alice);
    assert_eq!(gateway.ping_host(3), 3);

    drop(holder);
    let started = gateway
        .daemon()
        .expect_line(STARTED_BY_RETRY, Duration::from_secs(30));
    assert!(started.contains("branch"), "{started}");
    let branch = listed_line(&gateway, "branch");
    assert!(!branch.contains("not running"), "{branch}");
    assert!(branch.contains("0 session(s)"), "{branch}");

    let profile = gateway.profile("branch", "bob");
    let mut bob = gateway.bed.spawn(
        branch_ns,
        "openvpn",
        &[
            "--config",
            profile.to_str().unwrap(),
            "--connect-retry",
            "1",
        ],
    );
    let address = wait_connections(&mut bob, 1);
    let cidr: Ipv4Net = "10.8.1.0/24".parse().unwrap();
    assert!(cidr.contains(&address), "{address} outside {cidr}");
    let host = gateway.host();
    assert_eq!(gateway.bed.ping(branch_ns, host, 3), 3);
    assert_eq!(
        alice.log().matches(INITIALIZED).count(),
        1,
        "the office client reconnected: {}",
        alice.log_tail()
    );
}

#[test]
fn daemon_runs_when_no_server_starts() {
    require_root_and_tools();
    let bed = TestBed::new("admnone");
    // A TAP device with the name of the server's TUN device makes its creation fail.
    let created = bed.exec(
        Ns::Gateway,
        "ip",
        &["tuntap", "add", "dev", "svpn-office", "mode", "tap"],
    );
    assert!(created.status.success(), "{created:?}");
    let mut gateway = Gateway::configure(bed, &[Server::default()], "");
    gateway.start();

    let failed = gateway
        .daemon()
        .expect_line(COULD_NOT_START, Duration::from_secs(10));
    assert!(
        failed.contains("cannot create TUN device svpn-office"),
        "{failed}"
    );
    assert!(failed.contains("ip link delete"), "{failed}");
    let summary = gateway
        .daemon()
        .expect_line(NOT_ALL_STARTED, Duration::from_secs(10));
    assert!(summary.contains("1 of 1"), "{summary}");
    let office = listed_line(&gateway, "office");
    assert!(
        office.contains("not running, next start attempt in"),
        "{office}"
    );
    assert!(gateway.daemon().try_wait().is_none(), "sslvpn serve exited");

    let deleted = gateway
        .bed
        .exec(Ns::Gateway, "ip", &["link", "delete", "svpn-office"]);
    assert!(deleted.status.success(), "{deleted:?}");
    let started = gateway
        .daemon()
        .expect_line(STARTED_BY_RETRY, Duration::from_secs(30));
    assert!(started.contains("office"), "{started}");
    let office = listed_line(&gateway, "office");
    assert!(!office.contains("not running"), "{office}");

    let profile = gateway.profile("office", "alice");
    let mut client = gateway.connect(&profile, &[]);
    wait_connected(&mut client);
    assert_eq!(gateway.ping_host(3), 3);
}
