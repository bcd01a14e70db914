//! Unauthenticated traffic against `sslvpn serve` while a real client pings through it: the
//! server stays up, its memory stays bounded, the client keeps its pings, and a new client
//! connects afterwards.

mod common;

use std::time::Duration;

use common::Ns;
use common::gateway::{Gateway, Server, wait_connected};
use common::tools::require_tools;

/// Pings the connected client sends during an attack, at 10 per second.
const PINGS: u32 = 80;
/// Pings the client may lose to an attack; OpenVPN 2.6 lost none in the same kind of test,
/// and one loss leaves room for a loaded test machine.
const MAX_LOST_PINGS: u32 = 1;
/// Growth of the server's resident memory an attack may cause.
const MAX_GROWTH_KIB: u64 = 32 * 1024;

/// A UDP attack: junk, every opcode with every key id, truncated headers and a flood of hard
/// resets from many source ports, bounded in count and time.
const UDP_ATTACK: &str = r#"
import os, random, socket, sys, time
target = (sys.argv[1], int(sys.argv[2]))
random.seed(7)
sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]
sent = 0
deadline = time.time() + 6
while sent < 30000 and time.time() < deadline:
    s = sockets[sent % len(sockets)]
    kind = sent % 5
    if kind == 0:
        packet = os.urandom(random.randint(1, 1500))
    elif kind == 1:
        op = random.randint(0, 31)
        packet = bytes([op << 3 | random.randint(0, 7)]) + os.urandom(random.randint(0, 100))
    elif kind == 2:
        packet = bytes([7 << 3]) + os.urandom(random.randint(0, 13))
    else:
        packet = bytes([7 << 3]) + os.urandom(8) + b"\0" + b"\0\0\0\0"
    try:
        s.sendto(packet, target)
    except OSError:
        pass
    sent += 1
    if sent % 500 == 0:
        time.sleep(0.05)
print("sent", sent)
"#;

/// A TCP attack: idle connections, absurd length prefixes and junk streams.
const TCP_ATTACK: &str = r#"
import os, socket, sys, time
target = (sys.argv[1], int(sys.argv[2]))
held = []
opened = 0
for i in range(300):
    try:
        s = socket.create_connection(target, timeout=2)
    except OSError:
        continue
    opened += 1
    mode = i % 3
    try:
        if mode == 1:
            s.sendall(b"\xff\xff" + os.urandom(1000))
        elif mode == 2:
            s.sendall(os.urandom(4000))
    except OSError:
        pass
    held.append(s)
time.sleep(3)
print("opened", opened)
"#;

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for process {pid}: is sslvpn still running?"))
}

fn survive_attack(protocol: &'static str, attack: &str) {
    require_tools(&[("python3", "python3")]);
    let server = Server {
        protocol,
        ..Server::default()
    };
    let mut gateway = Gateway::new("hostile", &[server]);
    let attacker = gateway.bed.add_client();
    let newcomer = gateway.bed.add_client();
    let pid = gateway.daemon().pid();

    let profile = gateway.profile("office", "alice");
    let mut client = gateway.connect(&profile, &[]);
    wait_connected(&mut client);
    let before = resident_kib(pid);

    let host = gateway.host().to_string();
    let count = PINGS.to_string();
    let mut pings = gateway.bed.spawn(
        Ns::Client,
        "ping",
        &["-n", "-c", &count, "-i", "0.1", "-W", "2", &host],
    );
    let target = gateway.bed.gateway_wan_address().to_string();
    let attack = gateway
        .bed
        .exec(attacker, "python3", &["-c", attack, &target, "1194"]);
    assert!(
        attack.status.success(),
        "attack script failed: {}",
        String::from_utf8_lossy(&attack.stderr)
    );
    let report = String::from_utf8_lossy(&attack.stdout);
    let sent: u32 = report
        .split_whitespace()
        .nth(1)
        .and_then(|count| count.parse().ok())
        .unwrap_or(0);
    assert!(
        sent >= 100,
        "the attack sent too little to mean anything: {report}"
    );
    let status = pings.wait_timeout(Duration::from_secs(30));
    assert!(status.is_some(), "ping did not finish");
    let log = pings.log();
    let received = log
        .lines()
        .find_map(|line| {
            line.split_once("transmitted, ")?
                .1
                .split_whitespace()
                .next()?
                .parse::<u32>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no ping summary:\n{log}"));
    let after = resident_kib(pid);

    assert!(
        PINGS - received <= MAX_LOST_PINGS,
        "client lost {} of {PINGS} pings during the attack ({})",
        PINGS - received,
        String::from_utf8_lossy(&attack.stdout).trim()
    );
    assert!(
        after.saturating_sub(before) <= MAX_GROWTH_KIB,
        "server memory grew from {before} KiB to {after} KiB"
    );
    assert!(gateway.daemon().try_wait().is_none(), "sslvpn exited");

    let profile = gateway.profile("office", "bob");
    let path = profile.to_str().unwrap();
    let mut second = gateway.bed.spawn(
        newcomer,
        "openvpn",
        &["--config", path, "--connect-retry", "1"],
    );
    wait_connected(&mut second);
    let reached = gateway.bed.ping(newcomer, gateway.host(), 3);
    assert_eq!(
        reached, 3,
        "new client cannot reach the host after the attack"
    );
}

#[test]
fn udp_server_survives_junk_and_reset_flood() {
    survive_attack("udp", UDP_ATTACK);
}

#[test]
fn tcp_server_survives_idle_and_junk_connections() {
    survive_attack("tcp", TCP_ATTACK);
}
