//! Sticky tunnel addresses with `sslvpn serve` and stock `openvpn` clients: a client gets the
//! address it had before a restart of its SSL server or of the daemon, whichever client
//! reconnects first. Needs root, /dev/net/tun and openvpn.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::gateway::{Gateway, Server, sslvpn, wait_connections};
use common::{Ns, Process, TestBed, require_root_and_tools};

/// Net30 addresses of the first three clients of 10.8.0.0/24.
const FIRST: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 6);
const SECOND: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 10);
const THIRD: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 14);

/// A gateway with the SSL server `office` on `protocol`, and three client namespaces.
struct Lab {
    gateway: Gateway,
    clients: [Ns; 3],
}

impl Lab {
    fn new(tag: &str, protocol: &'static str) -> Self {
        require_root_and_tools();
        let mut bed = TestBed::new(tag);
        let clients = [Ns::Client, bed.add_client(), bed.add_client()];
        let office = Server {
            protocol,
            ..Server::default()
        };
        Self {
            gateway: Gateway::on_bed(bed, &[office]),
            clients,
        }
    }

    /// Starts an `openvpn` client with a profile for `name` in client namespace `index`.
    fn connect(&self, index: usize, name: &str) -> Process {
        let profile = self.gateway.bed.dir().join(format!("office-{name}.ovpn"));
        if !profile.exists() {
            self.gateway.profile("office", name);
        }
        let config = profile.to_str().unwrap();
        self.gateway.bed.spawn(
            self.clients[index],
            "openvpn",
            &["--config", config, "--connect-retry", "1"],
        )
    }

    fn sticky_file(&self) -> String {
        let path = self.gateway.bed.dir().join("certs/office/ipp.txt");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
    }
}

#[test]
fn restarted_server_gives_clients_their_addresses() {
    let lab = Lab::new("stickysrv", "udp");
    let mut alice = lab.connect(0, "alice");
    assert_eq!(wait_connections(&mut alice, 1), FIRST);
    let mut bob = lab.connect(1, "bob");
    assert_eq!(wait_connections(&mut bob, 1), SECOND);

    // Over UDP a killed client tells the server nothing, so alice's session and address
    // are still in use when the server stops.
    alice.signal(libc::SIGKILL);
    assert!(
        alice.wait_timeout(Duration::from_secs(5)).is_some(),
        "openvpn survived SIGKILL"
    );
    let local = lab.gateway.bed.config().local.to_string();
    let output = sslvpn(&[
        "server",
        "modify",
        "--config",
        lab.gateway.config(),
        "--name",
        "office",
        "--local-network",
        &local,
        "--local-network",
        "192.168.88.0/24",
    ]);
    assert!(output.contains("local_networks"), "{output}");

    // bob reconnects first; a fresh pool would give him alice's address.
    assert_eq!(wait_connections(&mut bob, 2), SECOND);
    let mut carol = lab.connect(2, "carol");
    assert_eq!(wait_connections(&mut carol, 1), THIRD);
    let mut alice = lab.connect(0, "alice");
    assert_eq!(wait_connections(&mut alice, 1), FIRST);

    let file = lab.sticky_file();
    assert!(file.contains("\nalice,10.8.0.6\n"), "{file}");
    assert!(file.contains("\nbob,10.8.0.10\n"), "{file}");
}

#[test]
fn restarted_daemon_reads_the_address_file() {
    let mut lab = Lab::new("stickyd", "tcp");
    let mut alice = lab.connect(0, "alice");
    assert_eq!(wait_connections(&mut alice, 1), FIRST);
    let mut bob = lab.connect(1, "bob");
    assert_eq!(wait_connections(&mut bob, 1), SECOND);

    let status = lab.gateway.daemon().stop().expect("daemon exited");
    assert!(status.success(), "sslvpn serve exited with {status}");
    lab.gateway.daemon = None;
    drop(alice);
    let file = lab.sticky_file();
    assert!(file.contains("\nalice,10.8.0.6\n"), "{file}");
    assert!(file.contains("\nbob,10.8.0.10\n"), "{file}");
    let path = lab.gateway.bed.dir().join("certs/office/ipp.txt");
    // No certificate can have the name "John Doe", so its line must not keep THIRD from
    // carol, a new name.
    let edited = format!("{file}not an entry\nJohn Doe,{THIRD}\n");
    std::fs::write(&path, edited).unwrap();

    lab.gateway.start();
    // bob's client retries until the new daemon accepts it. A fresh pool would give him
    // alice's address.
    assert_eq!(wait_connections(&mut bob, 2), SECOND);
    let mut carol = lab.connect(2, "carol");
    assert_eq!(wait_connections(&mut carol, 1), THIRD);
    let mut alice = lab.connect(0, "alice");
    assert_eq!(wait_connections(&mut alice, 1), FIRST);

    let log = lab.gateway.daemon().log();
    let warning = log
        .lines()
        .find(|line| line.contains("malformed line"))
        .unwrap_or_else(|| panic!("no warning about the malformed line:\n{log}"));
    assert!(warning.contains("ipp.txt"), "{warning}");
    let line_number = file.lines().count() + 1;
    assert!(
        warning.contains(&format!("line={line_number}")),
        "{warning}"
    );
    let skipped = log
        .lines()
        .find(|line| line.contains("whose common name no certificate"))
        .unwrap_or_else(|| panic!("no warning about the impossible name:\n{log}"));
    assert!(skipped.contains("skipped 1 line(s)"), "{skipped}");
    assert!(skipped.contains("ipp.txt"), "{skipped}");
    assert!(
        skipped.contains(&format!("first_line={}", line_number + 1)),
        "{skipped}"
    );
}
