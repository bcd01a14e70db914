//! Runs `sslvpn cert` end to end and checks its output with the real `openssl` and `openvpn`
//! binaries. Both must be installed (Debian and Ubuntu packages `openssl` and `openvpn`);
//! without them these tests fail. OpenVPN only ever talks to 127.0.0.1.

mod common;

use std::fs::{self, File};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cli;

/// One SSL server of the test configuration.
struct ServerSpec {
    name: &'static str,
    protocol: &'static str,
    cipher: &'static str,
    compression: bool,
    two_factor: bool,
}

/// A configuration file and its PKI folder in a temporary directory.
struct Gateway {
    dir: tempfile::TempDir,
    ports: Vec<u16>,
}

impl Gateway {
    fn new(servers: &[ServerSpec]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut text =
            String::from("[gateway]\npublic_address = \"127.0.0.1\"\npki_dir = \"certs\"\n");
        let mut ports = Vec::new();
        for (i, server) in servers.iter().enumerate() {
            let port = free_port(server.protocol);
            ports.push(port);
            text.push_str(&format!(
                "\n[[ssl_server]]\nname = \"{}\"\nlocal_networks = [\"192.168.{i}.0/24\"]\n\
                 client_cidr = \"10.{}.0.0/24\"\nprotocol = \"{}\"\nport = {port}\n\
                 cipher = \"{}\"\ncompression = {}\ntwo_factor = {}\n",
                server.name,
                10 + i,
                server.protocol,
                server.cipher,
                server.compression,
                server.two_factor,
            ));
            if server.two_factor {
                text.push_str(&format!(
                    "\n[ssl_server.auth]\nbackend = \"local\"\nusers_file = \"users-{}.toml\"\n",
                    server.name
                ));
            }
        }
        fs::write(dir.path().join("gateway.toml"), text).expect("write configuration");
        Self { dir, ports }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn pki(&self, server: &str) -> PathBuf {
        self.dir.path().join("certs").join(server)
    }

    /// Runs `sslvpn cert <args> --config <file>` and returns its standard output.
    fn cert_ok(&self, args: &[&str]) -> String {
        cli::expect_success(&self.config(), &[&["cert"], args].concat(), "")
    }

    /// Runs `sslvpn cert <args> --config <file>`, which must fail, and returns its standard
    /// error.
    fn cert_err(&self, args: &[&str]) -> String {
        cli::expect_failure(&self.config(), &[&["cert"], args].concat(), "")
    }

    /// Finds the certificate file of the unrevoked certificate named `name`.
    fn client_cert(&self, server: &str, name: &str) -> PathBuf {
        let list = self.cert_ok(&["list", "--server", server]);
        let serial = list
            .lines()
            .skip(1)
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|cells| cells[1] == name && cells[4] != "revoked")
            .map(|cells| cells[2].to_owned())
            .unwrap_or_else(|| panic!("no live certificate {name} in:\n{list}"));
        self.pki(server)
            .join("clients")
            .join(format!("{serial}.crt"))
    }
}

fn free_port(protocol: &str) -> u16 {
    match protocol {
        "tcp" => TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free TCP port")
            .port(),
        _ => UdpSocket::bind("127.0.0.1:0")
            .and_then(|socket| socket.local_addr())
            .expect("free UDP port")
            .port(),
    }
}

/// Returns `tool`, failing the test with the package to install when it is missing.
fn require(tool: &'static str, package: &str) -> &'static str {
    let probe = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if probe.is_err() {
        panic!("{tool} is not installed; these tests need it: apt-get install {package}");
    }
    tool
}

fn openssl_verify(ca: &Path, purpose: &str, extra: &[&Path], cert: &Path) -> Output {
    let mut command = Command::new(require("openssl", "openssl"));
    command.arg("verify").arg("-CAfile").arg(ca);
    command.arg("-purpose").arg(purpose);
    if let [crl] = extra {
        command.arg("-crl_check").arg("-CRLfile").arg(crl);
    }
    command.arg(cert).output().expect("run openssl verify")
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

const OFFICE: ServerSpec = ServerSpec {
    name: "office",
    protocol: "udp",
    cipher: "AES-256-CBC",
    compression: true,
    two_factor: true,
};
const LAB: ServerSpec = ServerSpec {
    name: "lab",
    protocol: "tcp",
    cipher: "AES-128-CBC",
    compression: false,
    two_factor: false,
};

#[test]
fn create_list_export_delete() {
    let gateway = Gateway::new(&[OFFICE, LAB]);
    let created = gateway.cert_ok(&["create", "--server", "office", "--name", "alice"]);
    assert!(created.contains("\"alice\""), "{created}");
    gateway.cert_ok(&[
        "create",
        "--server",
        "lab",
        "--name",
        "bob@example.com",
        "--days",
        "30",
    ]);

    let list = gateway.cert_ok(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("SERVER"), "{list}");
    assert!(lines[0].contains("SERIAL"), "{list}");
    assert!(lines[1].starts_with("office  alice"), "{list}");
    assert!(lines[1].ends_with("valid"), "{list}");
    assert!(lines[2].starts_with("lab"), "{list}");

    gateway.cert_ok(&[
        "export",
        "--server",
        "office",
        "--name",
        "alice",
        "--output",
        "alice.ovpn",
    ]);
    let profile = fs::read_to_string(gateway.path("alice.ovpn")).expect("profile");
    assert!(profile.contains("<key>\n-----BEGIN PRIVATE KEY-----"));
    assert!(profile.lines().any(|line| line == "auth-user-pass"));

    let deleted = gateway.cert_ok(&["delete", "--server", "office", "--name", "alice"]);
    assert!(deleted.contains("revoked"), "{deleted}");
    let list = gateway.cert_ok(&["list", "--server", "office"]);
    assert!(
        list.lines().nth(1).expect("row").ends_with("revoked"),
        "{list}"
    );

    let export_error = gateway.cert_err(&[
        "export",
        "--server",
        "office",
        "--name",
        "alice",
        "--output",
        "again.ovpn",
    ]);
    assert!(export_error.contains("is revoked"), "{export_error}");
    assert!(!gateway.path("again.ovpn").exists());
    gateway.cert_ok(&["create", "--server", "office", "--name", "alice"]);
}

#[test]
fn bad_requests_rejected() {
    let gateway = Gateway::new(&[OFFICE, LAB]);
    let unknown = gateway.cert_err(&["create", "--server", "hq", "--name", "alice"]);
    assert!(
        unknown.contains("configured servers: office, lab"),
        "{unknown}"
    );

    let bad_name = gateway.cert_err(&["create", "--server", "office", "--name", "../alice"]);
    assert!(bad_name.contains("invalid certificate name"), "{bad_name}");
    let bad_days =
        gateway.cert_err(&["create", "--server", "office", "--name", "a", "--days", "0"]);
    assert!(bad_days.contains("--days"), "{bad_days}");

    gateway.cert_ok(&["create", "--server", "office", "--name", "alice"]);
    let duplicate = gateway.cert_err(&["create", "--server", "office", "--name", "alice"]);
    assert!(
        duplicate.contains("already has a certificate named"),
        "{duplicate}"
    );
    let missing = gateway.cert_err(&["delete", "--server", "office", "--name", "carol"]);
    assert!(missing.contains("no certificate named"), "{missing}");

    gateway.cert_ok(&[
        "export", "--server", "office", "--name", "alice", "--output", "a.ovpn",
    ]);
    let exists = gateway.cert_err(&[
        "export", "--server", "office", "--name", "alice", "--output", "a.ovpn",
    ]);
    assert!(exists.contains("already exists"), "{exists}");
}

#[test]
fn openssl_accepts_purposes() {
    let gateway = Gateway::new(&[OFFICE]);
    gateway.cert_ok(&["create", "--server", "office", "--name", "alice"]);
    let pki = gateway.pki("office");
    let ca = pki.join("ca.crt");
    let client = gateway.client_cert("office", "alice");

    let server = openssl_verify(&ca, "sslserver", &[], &pki.join("server.crt"));
    assert!(
        server.status.success(),
        "{}",
        String::from_utf8_lossy(&server.stdout)
    );
    let as_client = openssl_verify(&ca, "sslclient", &[], &client);
    assert!(
        as_client.status.success(),
        "{}",
        String::from_utf8_lossy(&as_client.stdout)
    );
    let client_as_server = openssl_verify(&ca, "sslserver", &[], &client);
    assert!(!client_as_server.status.success());
    let with_crl = openssl_verify(&ca, "sslclient", &[&pki.join("crl.pem")], &client);
    assert!(
        with_crl.status.success(),
        "{}",
        String::from_utf8_lossy(&with_crl.stderr)
    );
}

#[test]
fn openssl_sees_revocation() {
    let gateway = Gateway::new(&[OFFICE]);
    gateway.cert_ok(&["create", "--server", "office", "--name", "alice"]);
    gateway.cert_ok(&["create", "--server", "office", "--name", "bob"]);
    let pki = gateway.pki("office");
    let alice = gateway.client_cert("office", "alice");
    let bob = gateway.client_cert("office", "bob");
    gateway.cert_ok(&["delete", "--server", "office", "--name", "alice"]);

    let crl = pki.join("crl.pem");
    let revoked = openssl_verify(&pki.join("ca.crt"), "sslclient", &[&crl], &alice);
    assert!(!revoked.status.success());
    let text = String::from_utf8_lossy(&revoked.stdout) + String::from_utf8_lossy(&revoked.stderr);
    assert!(text.contains("certificate revoked"), "{text}");
    let other = openssl_verify(&pki.join("ca.crt"), "sslclient", &[&crl], &bob);
    assert!(
        other.status.success(),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
}

#[test]
fn other_servers_ca_rejects() {
    let gateway = Gateway::new(&[OFFICE, LAB]);
    gateway.cert_ok(&["create", "--server", "office", "--name", "alice"]);
    gateway.cert_ok(&["create", "--server", "lab", "--name", "alice"]);
    let alice_office = gateway.client_cert("office", "alice");
    let lab_ca = gateway.pki("lab").join("ca.crt");
    let result = openssl_verify(&lab_ca, "sslclient", &[], &alice_office);
    assert!(!result.status.success());
    let server_office = gateway.pki("office").join("server.crt");
    let result = openssl_verify(&lab_ca, "sslserver", &[], &server_office);
    assert!(!result.status.success());
}

#[test]
fn secrets_have_mode_0600() {
    let gateway = Gateway::new(&[OFFICE]);
    gateway.cert_ok(&["create", "--server", "office", "--name", "alice"]);
    let pki = gateway.pki("office");
    assert_eq!(mode_of(&pki.join("ca.key")), 0o600);
    assert_eq!(mode_of(&pki.join("server.key")), 0o600);
    let cert = gateway.client_cert("office", "alice");
    assert_eq!(mode_of(&cert.with_extension("key")), 0o600);

    gateway.cert_ok(&[
        "export", "--server", "office", "--name", "alice", "--output", "a.ovpn",
    ]);
    gateway.cert_ok(&[
        "export", "--server", "office", "--name", "alice", "--output", "a.zip", "--format", "zip",
    ]);
    assert_eq!(mode_of(&gateway.path("a.ovpn")), 0o600);
    assert_eq!(mode_of(&gateway.path("a.zip")), 0o600);
    let zip = fs::read(gateway.path("a.zip")).expect("zip");
    assert!(zip.starts_with(b"PK\x03\x04"));
}

/// Runs `sslvpn --log-level warn cert <args> --config <file>`, asserts that it succeeds and
/// returns its log.
fn cert_warnings(gateway: &Gateway, args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sslvpn"));
    command
        .current_dir(gateway.dir.path())
        .args(["--log-level", "warn", "cert"])
        .args(args)
        .arg("--config")
        .arg(gateway.config());
    let output = cli::run_with_input(&mut command, "");
    let log = String::from_utf8(output.stderr).expect("UTF-8 log");
    assert!(
        output.status.success(),
        "sslvpn cert {args:?} failed:\n{log}"
    );
    log
}

/// Asserts that `log` warns about `path` with its mode and the `chmod` that fixes it.
fn assert_exposed_warning(log: &str, path: &Path, mode: &str) {
    let named = format!("private key file {} is accessible", path.display());
    assert!(log.contains(&named), "no warning about {path:?}:\n{log}");
    assert!(
        log.contains(&format!("(mode {mode})")),
        "mode {mode} missing:\n{log}"
    );
    let fix = format!("run `chmod 600 {}`", path.display());
    assert!(log.contains(&fix), "fix for {path:?} missing:\n{log}");
}

#[test]
fn exposed_keys_warned_and_used() {
    let gateway = Gateway::new(&[OFFICE]);
    let config = fs::read_to_string(gateway.config()).expect("config");
    let config = config.replace(
        "two_factor = true\n",
        "two_factor = true\ntls_crypt = true\n",
    );
    fs::write(gateway.config(), config).expect("write config");
    gateway.cert_ok(&["create", "--server", "office", "--name", "alice"]);
    let export = [
        "export", "--server", "office", "--name", "alice", "--output", "a.ovpn",
    ];
    let private_log = cert_warnings(&gateway, &export);
    assert!(
        !private_log.contains("private key file"),
        "warned about private files:\n{private_log}"
    );

    let pki = gateway.pki("office");
    let client_key = gateway.client_cert("office", "alice").with_extension("key");
    assert_eq!(mode_of(&pki.join("tls-crypt.key")), 0o600);
    let exposed = [
        (pki.join("ca.key"), 0o644),
        (pki.join("server.key"), 0o640),
        (pki.join("tls-crypt.key"), 0o660),
        (client_key.clone(), 0o604),
    ];
    for (path, mode) in &exposed {
        fs::set_permissions(path, fs::Permissions::from_mode(*mode)).expect("chmod");
    }

    // An export reads the server key, the client key and the tls-crypt key.
    let export = [
        "export", "--server", "office", "--name", "alice", "--output", "b.ovpn",
    ];
    let log = cert_warnings(&gateway, &export);
    assert_exposed_warning(&log, &pki.join("server.key"), "0640");
    assert_exposed_warning(&log, &pki.join("tls-crypt.key"), "0660");
    assert_exposed_warning(&log, &client_key, "0604");
    assert!(gateway.path("b.ovpn").is_file());

    // Issuing a certificate reads the CA key.
    let log = cert_warnings(&gateway, &["create", "--server", "office", "--name", "bob"]);
    assert_exposed_warning(&log, &pki.join("ca.key"), "0644");

    for (path, mode) in &exposed {
        assert_eq!(mode_of(path), *mode, "the mode of {path:?} was changed");
    }
}

#[test]
fn interrupted_write_keeps_files_readable() {
    let gateway = Gateway::new(&[OFFICE]);
    gateway.cert_ok(&["create", "--server", "office", "--name", "alice"]);
    let pki = gateway.pki("office");
    // What a crash between writing and renaming a temporary file leaves behind.
    fs::write(pki.join(".index.json.tmp-99-00"), "{\"format\": 1, \"cert").expect("write");
    fs::write(
        pki.join(".crl.pem.tmp-99-00"),
        "-----BEGIN X509 CRL-----\nMII",
    )
    .expect("write");

    let list = gateway.cert_ok(&["list", "--server", "office"]);
    assert_eq!(list.lines().count(), 2, "{list}");
    let alice = gateway.client_cert("office", "alice");
    gateway.cert_ok(&["delete", "--server", "office", "--name", "alice"]);
    let crl = pki.join("crl.pem");
    let revoked = openssl_verify(&pki.join("ca.crt"), "sslclient", &[&crl], &alice);
    assert!(!revoked.status.success());
}

/// A child process that is killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_logged(mut command: Command, log: &Path) -> Running {
    let file = File::create(log).expect("log file");
    let err = file.try_clone().expect("clone log file");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("start openvpn");
    Running(child)
}

/// Waits until `log` contains `needle`, for at most `limit`.
fn wait_for(log: &Path, needle: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if fs::read_to_string(log).unwrap_or_default().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Collects the lines of an OpenVPN log that warn about the configuration, except those that
/// contain one of the `allowed` patterns.
fn warnings(log: &str, allowed: &[&str]) -> Vec<String> {
    log.lines()
        .filter(|line| {
            line.contains("WARNING")
                || line.contains("DEPRECATED")
                || line.contains("Unrecognized option")
                || line.contains("Options error")
        })
        .filter(|line| !allowed.iter().any(|pattern| line.contains(pattern)))
        .map(str::to_owned)
        .collect()
}

#[test]
fn openvpn_parses_profiles_quietly() {
    let openvpn = require("openvpn", "openvpn");
    let specs = [
        OFFICE,
        LAB,
        ServerSpec {
            name: "plain",
            protocol: "udp",
            cipher: "AES-128-CBC",
            compression: false,
            two_factor: false,
        },
        ServerSpec {
            name: "legacy",
            protocol: "tcp",
            cipher: "AES-192-CBC",
            compression: true,
            two_factor: true,
        },
        ServerSpec {
            name: "clear",
            protocol: "udp",
            cipher: "none",
            compression: false,
            two_factor: false,
        },
    ];
    let gateway = Gateway::new(&specs);
    fs::write(gateway.path("credentials"), "user\npassword\n").expect("credentials");
    fs::set_permissions(
        gateway.path("credentials"),
        fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");

    let mut running = Vec::new();
    for (spec, port) in specs.iter().zip(&gateway.ports) {
        gateway.cert_ok(&["create", "--server", spec.name, "--name", "alice"]);
        let profile = format!("{}.ovpn", spec.name);
        gateway.cert_ok(&[
            "export", "--server", spec.name, "--name", "alice", "--output", &profile,
        ]);
        // Nothing listens on the profile's port, so the client cannot connect to 127.0.0.1.
        // Only its option processing matters here.
        let mut command = Command::new(openvpn);
        command.current_dir(gateway.dir.path()).args([
            "--config",
            &profile,
            "--verb",
            "4",
            "--connect-retry-max",
            "1",
        ]);
        if spec.two_factor {
            command.args(["--auth-user-pass", "credentials"]);
        }
        let log = gateway.path(&format!("{}.log", spec.name));
        let remote = format!("[AF_INET]127.0.0.1:{port}");
        running.push((spec, log.clone(), remote, spawn_logged(command, &log)));
    }
    for (_, log, remote, _) in &running {
        assert!(
            wait_for(log, remote, Duration::from_secs(10)),
            "openvpn did not get to connecting: {}",
            fs::read_to_string(log).unwrap_or_default()
        );
    }
    std::thread::sleep(Duration::from_millis(500));

    for (spec, log, _, _) in &running {
        let text = fs::read_to_string(log).expect("log");
        // With cipher none the admin chose clear text for old clients, and OpenVPN warns about it.
        let allowed: &[&str] = match spec.cipher {
            "none" => &["cipher 'none' specified for --data-ciphers"],
            _ => &[],
        };
        let found = warnings(&text, allowed);
        assert!(found.is_empty(), "profile of {}: {found:#?}", spec.name);
    }
}

#[test]
fn openvpn_handshakes_with_certificates() {
    let openvpn = require("openvpn", "openvpn");
    let gateway = Gateway::new(&[OFFICE]);
    fs::write(gateway.path("credentials"), "user\npassword\n").expect("credentials");
    fs::set_permissions(
        gateway.path("credentials"),
        fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    gateway.cert_ok(&["create", "--server", "office", "--name", "alice"]);
    gateway.cert_ok(&[
        "export",
        "--server",
        "office",
        "--name",
        "alice",
        "--output",
        "alice.ovpn",
    ]);
    let pki = gateway.pki("office");
    let port = gateway.ports[0].to_string();

    // A point-to-point OpenVPN server with the certificate sslvpn issued, checking clients
    // like an OpenVPN server would: CA, clientAuth and the CRL. `--dev null` needs no TUN.
    let server = |log: &Path| {
        let mut command = Command::new(openvpn);
        command.current_dir(&pki).args([
            "--dev",
            "null",
            "--proto",
            "udp4",
            "--local",
            "127.0.0.1",
            "--lport",
            &port,
            "--tls-server",
            "--ca",
            "ca.crt",
            "--cert",
            "server.crt",
            "--key",
            "server.key",
            "--dh",
            "none",
            "--remote-cert-tls",
            "client",
            "--crl-verify",
            "crl.pem",
            "--data-ciphers",
            "AES-256-GCM:AES-128-GCM:AES-256-CBC",
            "--comp-lzo",
            "no",
            "--verb",
            "3",
        ]);
        spawn_logged(command, log)
    };
    let client = |log: &Path| {
        let mut command = Command::new(openvpn);
        command.current_dir(gateway.dir.path()).args([
            "--config",
            "alice.ovpn",
            "--dev",
            "null",
            "--auth-user-pass",
            "credentials",
        ]);
        spawn_logged(command, log)
    };

    let server_log = gateway.path("server.log");
    let client_log = gateway.path("client.log");
    {
        let _server = server(&server_log);
        std::thread::sleep(Duration::from_millis(300));
        let _client = client(&client_log);
        let connected = wait_for(
            &client_log,
            "Peer Connection Initiated",
            Duration::from_secs(15),
        );
        let client_text = fs::read_to_string(&client_log).unwrap_or_default();
        let server_text = fs::read_to_string(&server_log).unwrap_or_default();
        assert!(
            connected,
            "client log:\n{client_text}\nserver log:\n{server_text}"
        );
        assert!(client_text.contains("VERIFY EKU OK"), "{client_text}");
        assert!(client_text.contains("CN=office-server"), "{client_text}");
        assert!(
            wait_for(
                &server_log,
                "Peer Connection Initiated",
                Duration::from_secs(5)
            ),
            "{server_text}"
        );
        assert!(warnings(&client_text, &[]).is_empty(), "{client_text}");
    }

    gateway.cert_ok(&["delete", "--server", "office", "--name", "alice"]);
    let server_log = gateway.path("server-revoked.log");
    let client_log = gateway.path("client-revoked.log");
    let _server = server(&server_log);
    std::thread::sleep(Duration::from_millis(300));
    let _client = client(&client_log);
    let rejected = wait_for(&server_log, "certificate revoked", Duration::from_secs(15));
    let server_text = fs::read_to_string(&server_log).unwrap_or_default();
    assert!(rejected, "server log:\n{server_text}");
    assert!(
        !server_text.contains("Peer Connection Initiated"),
        "{server_text}"
    );
}
