//! `sslvpn serve` inside network namespaces that each test creates and removes: TUN devices,
//! addresses, routes and listeners appear, disappear on SIGTERM, and startup failures name
//! their fix. Needs root and /dev/net/tun.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};

const TIMEOUT: Duration = Duration::from_secs(15);

/// A network namespace that exists for the life of the value, with the servers run in it.
struct Namespace {
    name: String,
    children: Vec<Child>,
}

impl Namespace {
    fn new() -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let count = COUNT.fetch_add(1, Ordering::Relaxed);
        let name = format!("sslvpn-test-{}-{count}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Self {
            name,
            children: Vec::new(),
        }
    }

    /// Starts `sslvpn serve` in the namespace, with `wrapper` (e.g. setpriv) in front.
    fn serve(&mut self, config: &Path, log: &Path, wrapper: &[&str]) -> usize {
        let log = File::create(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(wrapper)
            .arg(env!("CARGO_BIN_EXE_sslvpn"))
            .args(["--log-level", "info", "serve", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    /// Runs `ip -n <namespace> <args>` and returns its stdout; empty when it fails.
    fn ip(&self, args: &[&str]) -> String {
        let output = Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn exec(&self, args: &[&str]) -> String {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn signal(&self, child: usize, signal: i32) {
        let pid = self.children[child].id() as i32;
        // SAFETY: kill has no memory effects; the pid is a child that has not been reaped.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill {pid} failed");
    }

    /// Waits for a child to exit.
    fn wait(&mut self, child: usize) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.children[child].try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "sslvpn did not exit in {TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn run(args: &[&str]) -> Output {
    let output = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(output.status.success(), "{args:?} failed: {output:?}");
    output
}

/// Polls `condition` until it holds, failing after [`TIMEOUT`] with `what` and the log.
fn wait_for(what: &str, log: &Path, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            start.elapsed() < TIMEOUT,
            "timed out waiting for {what}; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes a CA, a server certificate and an empty CRL for `server` in the PEM files that
/// `sslvpn serve` reads, and returns the CA for later CRLs.
fn write_credentials(pki_dir: &Path, server: &str) -> Issuer<'static, KeyPair> {
    let folder = pki_dir.join(server);
    std::fs::create_dir_all(&folder).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{server} CA"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec![format!("{server}-server")]).unwrap();
    let certificate = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(folder.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(folder.join("server.crt"), certificate.pem()).unwrap();
    std::fs::write(folder.join("server.key"), key.serialize_pem()).unwrap();
    write_crl(&folder.join("crl.pem"), &issuer, &[]);
    issuer
}

/// Writes a CRL of `issuer` that revokes the certificates with the given serials.
fn write_crl(path: &Path, issuer: &Issuer<'static, KeyPair>, revoked: &[u8]) {
    let now = time::OffsetDateTime::now_utc();
    let crl = CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(30),
        crl_number: SerialNumber::from(vec![1 + revoked.len() as u8]),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|&serial| RevokedCertParams {
                serial_number: SerialNumber::from(vec![serial]),
                revocation_time: now - time::Duration::minutes(5),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .unwrap();
    std::fs::write(path, crl.pem().unwrap()).unwrap();
}

/// Writes a configuration and its credentials, and returns the configuration's path. It has
/// a UDP net30 server "office" on 1194 and a TCP subnet server on 1195 whose name is too long
/// for a plain device name.
fn gateway(dir: &Path) -> PathBuf {
    let pki_dir = dir.join("pki");
    let _ = write_credentials(&pki_dir, "office");
    let _ = write_credentials(&pki_dir, "headquarters-berlin");
    let path = dir.join("sslvpn.toml");
    let text = format!(
        r#"
[gateway]
public_address = "vpn.example.com"
listen_address = "0.0.0.0"
pki_dir = "{}"
max_connections = 10
admin_socket = "admin.sock"

[[ssl_server]]
name = "office"
local_networks = ["192.168.77.0/24"]
client_cidr = "10.8.0.0/24"
protocol = "udp"
port = 1194
topology = "net30"

[[ssl_server]]
name = "headquarters-berlin"
local_networks = ["192.168.78.0/24"]
client_cidr = "10.9.0.0/24"
protocol = "tcp"
port = 1195
topology = "subnet"
"#,
        pki_dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Names of the sslvpn devices in the namespace.
fn devices(namespace: &Namespace) -> Vec<String> {
    namespace
        .ip(&["-o", "link", "show"])
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .filter(|name| name.starts_with("svpn-"))
        .collect()
}

#[test]
fn serve_creates_devices_and_removes_them_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway(dir.path());
    let log = dir.path().join("serve.log");
    let mut namespace = Namespace::new();
    let server = namespace.serve(&config, &log, &[]);
    wait_for("both TUN devices", &log, || devices(&namespace).len() == 2);
    let names = devices(&namespace);
    let long = names
        .iter()
        .find(|name| name.starts_with("svpn-headq-"))
        .unwrap_or_else(|| panic!("no hashed device name in {names:?}"));
    assert_eq!(long.len(), 15, "{long}");
    assert!(names.contains(&"svpn-office".to_owned()), "{names:?}");

    let link = namespace.ip(&["-o", "link", "show", "dev", "svpn-office"]);
    assert!(link.contains("mtu 1500"), "{link}");
    assert!(link.contains(",UP"), "{link}");
    let address = namespace.ip(&["-o", "-4", "addr", "show", "dev", "svpn-office"]);
    assert!(address.contains("inet 10.8.0.1/24"), "{address}");
    let address = namespace.ip(&["-o", "-4", "addr", "show", "dev", long]);
    assert!(address.contains("inet 10.9.0.1/24"), "{address}");
    let route = namespace.ip(&["-4", "route", "show", "10.8.0.0/24"]);
    assert!(route.contains("dev svpn-office"), "{route}");
    let route = namespace.ip(&["-4", "route", "show", "10.9.0.0/24"]);
    assert!(route.contains(&format!("dev {long}")), "{route}");

    wait_for("both listeners", &log, || {
        let udp = namespace.exec(&["ss", "-Hlun"]);
        let tcp = namespace.exec(&["ss", "-Hltn"]);
        udp.contains(":1194") && tcp.contains(":1195")
    });
    let started = std::fs::read_to_string(&log).unwrap();
    assert!(started.contains("SSL server started"), "{started}");
    assert!(
        started.contains("sysctl -w net.ipv4.ip_forward=1"),
        "a new namespace forwards nothing, so the log must say how to turn it on:\n{started}"
    );

    namespace.signal(server, libc::SIGTERM);
    let status = namespace.wait(server);
    let stopped = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status:?}\n{stopped}");
    assert!(stopped.contains("SIGTERM received"), "{stopped}");
    assert!(stopped.contains("gateway stopped"), "{stopped}");
    assert_eq!(devices(&namespace), Vec::<String>::new());
    assert_eq!(namespace.ip(&["-4", "route", "show", "10.8.0.0/24"]), "");
    assert_eq!(namespace.ip(&["-4", "route", "show", "10.9.0.0/24"]), "");
}

/// A TUN device with offload may hand the daemon a GSO packet of up to 64 KiB. The daemon
/// splits it into at most 128 segments, so the device must make the kernel segment larger
/// ones itself, or downloads to clients with a small MSS would lose those packets.
#[test]
fn serve_limits_gso_segments_of_offload_device() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway(dir.path());
    let log = dir.path().join("serve.log");
    let mut namespace = Namespace::new();
    namespace.serve(&config, &log, &[]);
    wait_for("the office server to start", &log, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .any(|line| line.contains("SSL server started") && line.contains("svpn-office"))
    });

    let started = std::fs::read_to_string(&log).unwrap();
    let line = started
        .lines()
        .find(|line| line.contains("SSL server started") && line.contains("svpn-office"))
        .unwrap();
    assert!(
        line.contains("offload=true"),
        "the kernel refused TUN offload (IFF_VNET_HDR and TUNSETOFFLOAD):\n{started}"
    );
    let details = namespace.ip(&["-d", "link", "show", "dev", "svpn-office"]);
    assert!(details.contains("gso_max_segs 128 "), "{details}");
}

#[test]
fn serve_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway(dir.path());
    let log = dir.path().join("serve.log");
    let mut namespace = Namespace::new();
    let server = namespace.serve(&config, &log, &[]);
    wait_for("both TUN devices", &log, || devices(&namespace).len() == 2);
    namespace.signal(server, libc::SIGINT);
    let status = namespace.wait(server);
    assert!(status.success(), "{status:?}");
    assert_eq!(devices(&namespace), Vec::<String>::new());
}

#[test]
fn serve_retries_servers_whose_ports_are_taken() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway(dir.path());
    let first_log = dir.path().join("first.log");
    let second_log = dir.path().join("second.log");
    let mut namespace = Namespace::new();
    let first = namespace.serve(&config, &first_log, &[]);
    wait_for("the first gateway", &first_log, || {
        devices(&namespace).len() == 2
    });

    // A copy of the file, because a second daemon on the same file waits for its lock, with
    // an admin socket of its own, because the first daemon's socket is live.
    let copy = dir.path().join("second.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "admin_socket = \"admin.sock\"",
        "admin_socket = \"second.sock\"",
    );
    std::fs::write(&copy, text).unwrap();
    let second = namespace.serve(&copy, &second_log, &[]);
    wait_for("the second gateway", &second_log, || {
        let text = std::fs::read_to_string(&second_log).unwrap_or_default();
        text.contains("gateway started")
    });
    let log = std::fs::read_to_string(&second_log).unwrap();
    assert!(
        log.contains(r#"SSL server "office": cannot listen on udp 0.0.0.0:1194"#),
        "{log}"
    );
    assert!(
        log.contains(r#"SSL server "headquarters-berlin": cannot listen on tcp 0.0.0.0:1195"#),
        "{log}"
    );
    assert!(log.contains("another process uses this port"), "{log}");
    assert!(
        log.contains("2 of 2 SSL server(s) could not start and are retried"),
        "{log}"
    );
    assert_eq!(
        devices(&namespace).len(),
        2,
        "the first gateway keeps its devices"
    );
    namespace.signal(second, libc::SIGTERM);
    let status = namespace.wait(second);
    let log = std::fs::read_to_string(&second_log).unwrap();
    assert!(status.success(), "{status:?}\n{log}");

    let third_log = dir.path().join("third.log");
    let third = namespace.serve(&config, &third_log, &[]);
    let status = namespace.wait(third);
    let error = std::fs::read_to_string(&third_log).unwrap();
    assert_eq!(status.code(), Some(1), "{error}");
    assert!(error.contains("another sslvpn holds the lock"), "{error}");
    namespace.signal(first, libc::SIGTERM);
    assert!(namespace.wait(first).success());
}

#[test]
fn serve_without_cap_net_admin_names_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway(dir.path());
    let log = dir.path().join("serve.log");
    let mut namespace = Namespace::new();
    let wrapper = [
        "setpriv",
        "--inh-caps=-net_admin",
        "--bounding-set=-net_admin",
    ];
    let server = namespace.serve(&config, &log, &wrapper);
    let status = namespace.wait(server);
    let error = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{error}");
    assert!(
        error.contains(r#"SSL server "office": cannot create TUN device svpn-office"#),
        "{error}"
    );
    assert!(
        error.contains("run as root or grant CAP_NET_ADMIN"),
        "{error}"
    );
    assert_eq!(devices(&namespace), Vec::<String>::new());
}

#[test]
fn serve_reloads_changed_crl() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway(dir.path());
    let issuer = write_credentials(&dir.path().join("pki"), "office");
    let crl = dir.path().join("pki/office/crl.pem");
    let log = dir.path().join("serve.log");
    let mut namespace = Namespace::new();
    let server = namespace.serve(&config, &log, &[]);
    wait_for("both TUN devices", &log, || devices(&namespace).len() == 2);

    write_crl(&crl, &issuer, &[5, 6]);
    wait_for("the CRL reload", &log, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("CRL changed: TLS configuration reloaded")
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("revoked=2"), "{text}");

    std::fs::write(&crl, "not a CRL").unwrap();
    wait_for("the rejected CRL", &log, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("CRL changed but could not be loaded")
    });

    namespace.signal(server, libc::SIGTERM);
    assert!(namespace.wait(server).success());
}
