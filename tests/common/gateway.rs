//! A gateway namespace running `sslvpn serve` with a generated configuration, and the steps
//! around it that tests share: issuing profiles and connecting stock `openvpn` clients.

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::openvpn::INITIALIZED;
use super::{Ns, Process, TestBed, require_root_and_tools};

pub const STARTED: &str = "gateway started";
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One SSL server's settings for a test.
#[derive(Clone)]
pub struct Server {
    pub name: &'static str,
    pub protocol: &'static str,
    pub port: u16,
    pub cipher: &'static str,
    pub compression: bool,
    pub tls_crypt: bool,
    pub topology: &'static str,
    pub client_cidr: &'static str,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            name: "office",
            protocol: "tcp",
            port: 1194,
            cipher: "AES-128-CBC",
            compression: false,
            tls_crypt: false,
            topology: "net30",
            client_cidr: "10.8.0.0/24",
        }
    }
}

/// Fields drop in order: the daemon stops before the test bed removes its log folder.
pub struct Gateway {
    pub daemon: Option<Process>,
    pub bed: TestBed,
    config: PathBuf,
}

pub fn sslvpn(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_sslvpn"))
        .args(args)
        .output()
        .expect("run sslvpn");
    assert!(
        output.status.success(),
        "sslvpn {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Gateway {
    pub fn new(tag: &str, servers: &[Server]) -> Self {
        require_root_and_tools();
        Self::on_bed(TestBed::new(tag), servers)
    }

    /// Starts a gateway with `servers` on a bed the caller built.
    pub fn on_bed(bed: TestBed, servers: &[Server]) -> Self {
        Self::on_bed_with(bed, servers, "")
    }

    /// Like [`Gateway::on_bed`], with `gateway_lines` added to the `[gateway]` table.
    pub fn on_bed_with(bed: TestBed, servers: &[Server], gateway_lines: &str) -> Self {
        let mut gateway = Self::configure(bed, servers, gateway_lines);
        gateway.start();
        gateway
    }

    /// Writes the config file of a gateway with `servers`, and `gateway_lines` added to the
    /// `[gateway]` table, without starting the daemon; [`Gateway::start`] starts it.
    pub fn configure(bed: TestBed, servers: &[Server], gateway_lines: &str) -> Self {
        let mut text = format!(
            "[gateway]\npublic_address = \"{}\"\npki_dir = \"certs\"\nmax_connections = 10\n\
             admin_socket = \"admin.sock\"\n{gateway_lines}",
            bed.gateway_wan_address()
        );
        for server in servers {
            text.push_str(&format!(
                "\n[[ssl_server]]\nname = \"{}\"\nlocal_networks = [\"{}\"]\nclient_cidr = \"{}\"\n\
                 protocol = \"{}\"\nport = {}\ncipher = \"{}\"\ncompression = {}\ntls_crypt = {}\n\
                 topology = \"{}\"\n",
                server.name,
                bed.config().local,
                server.client_cidr,
                server.protocol,
                server.port,
                server.cipher,
                server.compression,
                server.tls_crypt,
                server.topology,
            ));
        }
        let config = bed.dir().join("sslvpn.toml");
        std::fs::write(&config, text).unwrap();
        Self {
            bed,
            config,
            daemon: None,
        }
    }

    pub fn config(&self) -> &str {
        self.config.to_str().unwrap()
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn start(&mut self) {
        let config = self.config().to_owned();
        let binary = env!("CARGO_BIN_EXE_sslvpn");
        let mut daemon = self
            .bed
            .spawn(Ns::Gateway, binary, &["serve", "--config", &config]);
        daemon.expect_line(STARTED, Duration::from_secs(20));
        self.daemon = Some(daemon);
    }

    pub fn daemon(&mut self) -> &mut Process {
        self.daemon.as_mut().expect("daemon running")
    }

    /// Creates a certificate and exports its profile; returns the profile's path.
    pub fn profile(&self, server: &str, name: &str) -> PathBuf {
        let config = self.config();
        sslvpn(&[
            "cert", "create", "--config", config, "--server", server, "--name", name,
        ]);
        let path = self.bed.dir().join(format!("{server}-{name}.ovpn"));
        let output = path.to_str().unwrap();
        sslvpn(&[
            "cert", "export", "--config", config, "--server", server, "--name", name, "--output",
            output,
        ]);
        path
    }

    pub fn connect(&self, profile: &Path, extra: &[&str]) -> Process {
        let mut args = vec![
            "--config",
            profile.to_str().unwrap(),
            "--connect-retry",
            "1",
        ];
        args.extend_from_slice(extra);
        self.bed.spawn(Ns::Client, "openvpn", &args)
    }

    pub fn host(&self) -> Ipv4Addr {
        self.bed.host_address()
    }

    pub fn ping_host(&self, count: u32) -> u32 {
        self.bed.ping(Ns::Client, self.host(), count)
    }

    /// Reads one sample from the admin API's `/metrics`: the value on the line that starts
    /// with `series`, such as `sslvpn_sessions{server="office"}`.
    pub fn metric(&self, series: &str) -> u64 {
        let socket = self.bed.dir().join("admin.sock");
        let mut stream = UnixStream::connect(&socket).expect("connect to the admin socket");
        let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        stream
            .write_all(request.as_bytes())
            .expect("send the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the response");
        let prefix = format!("{series} ");
        response
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {series:?} sample in:\n{response}"))
    }
}

/// Waits for the client to finish connecting and returns the tunnel address it was given.
pub fn wait_connected(client: &mut Process) -> Ipv4Addr {
    let outcome = client.wait_for_line(INITIALIZED, CONNECT_TIMEOUT);
    assert!(
        outcome.is_ok(),
        "client did not connect:\n{}",
        client.log_tail()
    );
    tunnel_address(&client.log()).expect("pushed ifconfig in the client log")
}

/// Returns the address of the last `ifconfig` the server pushed, as the client logged it.
pub fn tunnel_address(log: &str) -> Option<Ipv4Addr> {
    log.lines()
        .rev()
        .find_map(|line| line.split("ifconfig ").nth(1))
        .and_then(|rest| rest.split([' ', ',', '\'']).next())
        .and_then(|address| address.parse().ok())
}

/// Waits until the client's log shows `count` completed connections and returns the tunnel
/// address of the last one.
pub fn wait_connections(client: &mut Process, count: usize) -> Ipv4Addr {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let log = client.log();
        if log.matches(INITIALIZED).count() >= count {
            return tunnel_address(&log).expect("pushed ifconfig in the client log");
        }
        assert!(
            client.try_wait().is_none(),
            "openvpn exited:\n{}",
            client.log_tail()
        );
        assert!(
            Instant::now() < deadline,
            "client did not connect {count} time(s):\n{}",
            client.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
