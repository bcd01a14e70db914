//! Two-factor SSL servers with stock `openvpn` clients that send `--auth-user-pass`: the
//! local backend, the http backend against a test service inside the gateway namespace,
//! throttling and renegotiation with the pushed session token.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::cli;
use common::openvpn::INITIALIZED;
use common::{Ns, Process, TestBed, require_root_and_tools};

const STARTED: &str = "gateway started";
const AUTH_FAILED: &str = "AUTH: Received control message: AUTH_FAILED";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const ALICE_PASSWORD: &str = "alice-password-1";
/// Port of the test verification service on the gateway's loopback.
const SERVICE_PORT: u16 = 9180;

/// A gateway running `sslvpn serve` with one two-factor SSL server named "office".
/// Fields drop in order: the daemon stops before the test bed removes its folder.
struct Gateway {
    daemon: Process,
    bed: TestBed,
    config: PathBuf,
}

fn sslvpn(args: &[&str], stdin: &str) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sslvpn"));
    command.args(args);
    cli::success_stdout(args, cli::run_with_input(&mut command, stdin))
}

impl Gateway {
    /// Writes the configuration with `auth` as the `[ssl_server.auth]` lines, runs
    /// `prepare` (to add users or start a service), then starts the daemon.
    fn new(tag: &str, protocol: &str, auth: &str, prepare: impl FnOnce(&TestBed, &Path)) -> Self {
        require_root_and_tools();
        let bed = TestBed::new(tag);
        let text = format!(
            "[gateway]\npublic_address = \"{}\"\npki_dir = \"certs\"\nmax_connections = 10\n\
             admin_socket = \"admin.sock\"\n\n\
             [[ssl_server]]\nname = \"office\"\nlocal_networks = [\"{}\"]\n\
             client_cidr = \"10.8.0.0/24\"\nprotocol = \"{protocol}\"\nport = 1194\n\
             two_factor = true\n\n[ssl_server.auth]\n{auth}",
            bed.gateway_wan_address(),
            bed.config().local,
        );
        let config = bed.dir().join("sslvpn.toml");
        std::fs::write(&config, text).expect("write configuration");
        prepare(&bed, &config);
        let binary = env!("CARGO_BIN_EXE_sslvpn");
        let config_arg = config.to_str().expect("UTF-8 path").to_owned();
        let mut daemon = bed.spawn(Ns::Gateway, binary, &["serve", "--config", &config_arg]);
        daemon.expect_line(STARTED, Duration::from_secs(20));
        Self {
            daemon,
            bed,
            config,
        }
    }

    fn config(&self) -> &str {
        self.config.to_str().expect("UTF-8 path")
    }

    /// Stops the daemon with SIGTERM and starts a new one on the same configuration.
    fn restart(&mut self) {
        self.daemon.signal(libc::SIGTERM);
        let status = self.daemon.wait_timeout(Duration::from_secs(10));
        assert!(
            status.is_some_and(|status| status.success()),
            "{}",
            self.daemon.log_tail()
        );
        let binary = env!("CARGO_BIN_EXE_sslvpn");
        let config = self.config().to_owned();
        let mut daemon = self
            .bed
            .spawn(Ns::Gateway, binary, &["serve", "--config", &config]);
        daemon.expect_line(STARTED, Duration::from_secs(20));
        self.daemon = daemon;
    }

    /// Creates a certificate and exports its profile; returns the profile's path.
    fn profile(&self, name: &str) -> PathBuf {
        let config = self.config();
        let base = ["--config", config, "--server", "office", "--name", name];
        let mut create = vec!["cert", "create"];
        create.extend_from_slice(&base);
        sslvpn(&create, "");
        let path = self.bed.dir().join(format!("{name}.ovpn"));
        let mut export = vec!["cert", "export"];
        export.extend_from_slice(&base);
        export.extend_from_slice(&["--output", path.to_str().expect("UTF-8 path")]);
        sslvpn(&export, "");
        path
    }

    /// Writes an `--auth-user-pass` file and returns its path.
    fn credentials(&self, file: &str, username: &str, password: &str) -> PathBuf {
        let path = self.bed.dir().join(file);
        std::fs::write(&path, format!("{username}\n{password}\n")).expect("credentials");
        path
    }

    fn connect(&self, profile: &Path, credentials: &Path, extra: &[&str]) -> Process {
        let mut args = vec![
            "--config",
            profile.to_str().expect("UTF-8 path"),
            "--auth-user-pass",
            credentials.to_str().expect("UTF-8 path"),
            "--connect-retry",
            "1",
        ];
        args.extend_from_slice(extra);
        self.bed.spawn(Ns::Client, "openvpn", &args)
    }

    fn ping_host(&self, count: u32) -> u32 {
        self.bed.ping(Ns::Client, self.bed.host_address(), count)
    }

    /// Waits until the daemon log contains `needle` at least `count` times.
    fn wait_for_daemon_lines(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.daemon.log().matches(needle).count() >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

/// Adds `alice` with [`ALICE_PASSWORD`] to the users file of the configuration at `config`.
fn add_alice(_bed: &TestBed, config: &Path) {
    let config = config.to_str().expect("UTF-8 path");
    let args = [
        "user",
        "add",
        "--config",
        config,
        "--server",
        "office",
        "--name",
        "alice",
        "--password-stdin",
    ];
    sslvpn(&args, &format!("{ALICE_PASSWORD}\n"));
}

const LOCAL: &str = "backend = \"local\"\nusers_file = \"users.toml\"\n";

fn assert_connected(client: &mut Process) {
    let outcome = client.wait_for_line(INITIALIZED, CONNECT_TIMEOUT);
    assert!(
        outcome.is_ok(),
        "client did not connect:\n{}",
        client.log_tail()
    );
}

fn assert_auth_failed(client: &mut Process) -> String {
    match client.wait_for_line(AUTH_FAILED, CONNECT_TIMEOUT) {
        Ok(line) => line,
        Err(error) => panic!("{error}: no AUTH_FAILED\n{}", client.log_tail()),
    }
}

#[test]
fn right_password_connects_and_reaches_host() {
    let mut gateway = Gateway::new("2fa-ok", "tcp", LOCAL, add_alice);
    let profile = gateway.profile("alice");
    let profile_text = std::fs::read_to_string(&profile).expect("profile");
    assert!(profile_text.lines().any(|line| line == "auth-user-pass"));
    assert!(profile_text.lines().any(|line| line == "auth-nocache"));
    let credentials = gateway.credentials("alice.pass", "alice", ALICE_PASSWORD);
    let mut client = gateway.connect(&profile, &credentials, &[]);
    assert_connected(&mut client);
    assert_eq!(gateway.ping_host(3), 3, "pings to the local host lost");
    let connected = gateway
        .daemon
        .wait_for_line("client connected", Duration::from_secs(5));
    let line = connected.unwrap_or_else(|error| panic!("{error}"));
    assert!(line.contains("username=\"alice\""), "{line}");
    assert!(
        !gateway.daemon.log().contains(ALICE_PASSWORD),
        "the daemon logged the password"
    );
}

#[test]
fn wrong_password_and_unknown_user_get_auth_failed() {
    let mut gateway = Gateway::new("2fa-bad", "udp", LOCAL, add_alice);
    let profile = gateway.profile("alice");

    let wrong = gateway.credentials("wrong.pass", "alice", "not-the-password");
    let mut client = gateway.connect(&profile, &wrong, &[]);
    assert_auth_failed(&mut client);
    drop(client);
    let rejected = gateway
        .daemon
        .wait_for_line("client rejected", Duration::from_secs(5));
    let line = rejected.unwrap_or_else(|error| panic!("{error}"));
    assert!(line.contains("wrong password"), "{line}");
    assert!(line.contains("common_name=alice"), "{line}");
    assert!(line.contains("username=\"alice\""), "{line}");
    assert!(!line.contains("not-the-password"), "{line}");

    let unknown = gateway.credentials("unknown.pass", "mallory", ALICE_PASSWORD);
    let mut client = gateway.connect(&profile, &unknown, &[]);
    assert_auth_failed(&mut client);
    assert!(
        gateway.wait_for_daemon_lines("unknown user", 1, Duration::from_secs(5)),
        "{}",
        gateway.daemon.log_tail()
    );
}

#[test]
fn revoked_certificate_with_right_password_is_refused() {
    let gateway = Gateway::new("2fa-revoked", "tcp", LOCAL, add_alice);
    let profile = gateway.profile("alice");
    let config = gateway.config().to_owned();
    let revoke = [
        "cert", "delete", "--config", &config, "--server", "office", "--name", "alice",
    ];
    sslvpn(&revoke, "");
    // The daemon rereads the CRL every 2 seconds.
    std::thread::sleep(Duration::from_secs(3));
    let credentials = gateway.credentials("alice.pass", "alice", ALICE_PASSWORD);
    let mut client = gateway.connect(&profile, &credentials, &[]);
    let outcome = client.wait_for_line(INITIALIZED, Duration::from_secs(8));
    assert!(
        outcome.is_err(),
        "revoked certificate connected:\n{}",
        client.log_tail()
    );
    assert_eq!(gateway.ping_host(1), 0);
}

#[test]
fn failures_are_throttled() {
    let auth = format!("{LOCAL}max_failures = 2\nlockout_seconds = 120\n");
    let mut gateway = Gateway::new("2fa-throttle", "udp", &auth, add_alice);
    let profile = gateway.profile("alice");
    let wrong = gateway.credentials("wrong.pass", "alice", "not-the-password");
    for _ in 0..2 {
        let mut client = gateway.connect(&profile, &wrong, &[]);
        assert_auth_failed(&mut client);
    }
    let right = gateway.credentials("alice.pass", "alice", ALICE_PASSWORD);
    let mut client = gateway.connect(&profile, &right, &[]);
    let line = assert_auth_failed(&mut client);
    assert!(line.contains("too many failed logins"), "{line}");
    let throttled = gateway
        .daemon
        .wait_for_line("too many failed logins", Duration::from_secs(5));
    assert!(throttled.is_ok(), "{}", gateway.daemon.log_tail());
}

#[test]
fn renegotiation_uses_the_session_token() {
    let gateway = Gateway::new("2fa-reneg", "udp", LOCAL, add_alice);
    let profile = gateway.profile("alice");
    let credentials = gateway.credentials("alice.pass", "alice", ALICE_PASSWORD);
    let mut client = gateway.connect(&profile, &credentials, &["--reneg-sec", "3"]);
    assert_connected(&mut client);
    // OpenVPN rereads the file at each key exchange, but sends the pushed token instead:
    // a wrong password here would end the session if the client sent it.
    std::fs::write(&credentials, "alice\nnot-the-password\n").expect("rewrite credentials");
    let renegotiated =
        gateway.wait_for_daemon_lines("data channel key renegotiated", 2, Duration::from_secs(20));
    assert!(renegotiated, "{}", gateway.daemon.log_tail());
    assert_eq!(gateway.ping_host(3), 3, "pings lost after renegotiation");
    let log = client.log();
    assert!(!log.contains(AUTH_FAILED), "{log}");
    assert!(
        !gateway.daemon.log().contains("session token"),
        "{}",
        gateway.daemon.log_tail()
    );
    let connected = gateway.daemon.log().matches("client connected").count();
    assert_eq!(connected, 1, "the client reconnected");
}

#[test]
fn client_reconnects_after_server_restart() {
    let mut gateway = Gateway::new("2fa-restart", "tcp", LOCAL, add_alice);
    let profile = gateway.profile("alice");
    let credentials = gateway.credentials("alice.pass", "alice", ALICE_PASSWORD);
    let mut client = gateway.connect(&profile, &credentials, &[]);
    assert_connected(&mut client);
    gateway.restart();
    // The client first sends the token of its old session, is rejected, and logs in again
    // with the password from its file.
    let rejected = gateway.wait_for_daemon_lines(
        "session token of an earlier session",
        1,
        Duration::from_secs(30),
    );
    assert!(rejected, "{}", gateway.daemon.log_tail());
    let connected = gateway.wait_for_daemon_lines("client connected", 1, Duration::from_secs(30));
    assert!(
        connected,
        "{}\n{}",
        gateway.daemon.log_tail(),
        client.log_tail()
    );
    let start = Instant::now();
    let mut received = 0;
    while start.elapsed() < Duration::from_secs(20) && received == 0 {
        received = gateway.ping_host(1);
    }
    assert_eq!(
        received,
        1,
        "client did not come back:\n{}",
        client.log_tail()
    );
    assert!(
        !gateway.daemon.log().contains("too many failed logins"),
        "a stale token counted as a failure"
    );
}

/// A verification service inside the gateway namespace: one thread that accepts
/// connections on 127.0.0.1, records each request body and responds as its [`Behavior`] sets.
struct Service {
    bodies: Arc<Mutex<Vec<String>>>,
    _thread: JoinHandle<()>,
}

/// What the test service does with a request body.
#[derive(Clone, Copy)]
enum Behavior {
    /// 200 for `ALICE_PASSWORD`, 401 otherwise.
    Check,
    /// Reads the request and never responds.
    Silent,
}

impl Service {
    fn start(bed: &TestBed, behavior: Behavior) -> Self {
        let namespace = format!("/var/run/netns/{}", bed.name(Ns::Gateway));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let recorded = bodies.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&namespace).expect("open the gateway namespace");
            // SAFETY: setns takes a namespace file descriptor that `file` keeps open; it
            // moves only this thread into the gateway's network namespace.
            let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
            let listener = TcpListener::bind(("127.0.0.1", SERVICE_PORT)).expect("bind");
            ready_tx.send(()).expect("signal readiness");
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let body = read_request_body(&mut stream);
                recorded.lock().expect("lock").push(body.clone());
                match behavior {
                    Behavior::Check => {
                        let status = if body.contains(&format!("\"password\":\"{ALICE_PASSWORD}\""))
                        {
                            "200 OK"
                        } else {
                            "401 Unauthorized"
                        };
                        let response = format!(
                            "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        let _ = stream.write_all(response.as_bytes());
                    }
                    Behavior::Silent => held.push(stream),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the test service started");
        Self {
            bodies,
            _thread: thread,
        }
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().expect("lock").clone()
    }
}

/// Reads one HTTP request and returns its body.
fn read_request_body(stream: &mut std::net::TcpStream) -> String {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return String::new();
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length: ") {
            length = value.parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    String::from_utf8_lossy(&body).into_owned()
}

fn http_auth(timeout_ms: u32) -> String {
    format!(
        "backend = \"http\"\nurl = \"http://127.0.0.1:{SERVICE_PORT}/verify\"\ntimeout_ms = {timeout_ms}\n"
    )
}

#[test]
fn http_backend_admits_and_rejects() {
    let service = Arc::new(Mutex::new(None));
    let slot = service.clone();
    let gateway = Gateway::new("2fa-http", "tcp", &http_auth(3000), |bed, _| {
        *slot.lock().expect("lock") = Some(Service::start(bed, Behavior::Check));
    });
    let profile = gateway.profile("alice");

    let right = gateway.credentials("alice.pass", "alice", ALICE_PASSWORD);
    let mut client = gateway.connect(&profile, &right, &[]);
    assert_connected(&mut client);
    assert_eq!(gateway.ping_host(2), 2);
    drop(client);

    let bodies = service
        .lock()
        .expect("lock")
        .as_ref()
        .expect("service")
        .bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let json: serde_json::Value = serde_json::from_str(&bodies[0]).expect("JSON body");
    assert_eq!(json["username"], "alice");
    assert_eq!(json["password"], ALICE_PASSWORD);
    assert_eq!(json["common_name"], "alice");
    assert_eq!(json["server"], "office");
    let client_address = gateway.bed.client_address().to_string();
    assert_eq!(json["client_address"], client_address.as_str());
    assert!(
        json["certificate_serial"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );

    let wrong = gateway.credentials("wrong.pass", "alice", "not-the-password");
    let mut client = gateway.connect(&profile, &wrong, &[]);
    assert_auth_failed(&mut client);
    let rejected = gateway.wait_for_daemon_lines("HTTP 401", 1, Duration::from_secs(5));
    assert!(rejected, "{}", gateway.daemon.log_tail());
}

#[test]
fn http_backend_timeout_rejects() {
    let service = Arc::new(Mutex::new(None));
    let slot = service.clone();
    let gateway = Gateway::new("2fa-slow", "udp", &http_auth(500), |bed, _| {
        *slot.lock().expect("lock") = Some(Service::start(bed, Behavior::Silent));
    });
    let profile = gateway.profile("alice");
    let right = gateway.credentials("alice.pass", "alice", ALICE_PASSWORD);
    let mut client = gateway.connect(&profile, &right, &[]);
    let line = assert_auth_failed(&mut client);
    assert!(
        line.contains("authentication service unavailable"),
        "{line}"
    );
    let logged =
        gateway.wait_for_daemon_lines("no answer within 500 ms", 1, Duration::from_secs(5));
    assert!(logged, "{}", gateway.daemon.log_tail());
}
