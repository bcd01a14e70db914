//! Checks the namespace test bed itself: plain routing through the gateway, iperf3, and
//! removal of everything on drop. Needs root; see `common::tools`.

mod common;

use std::time::Duration;

use common::netns::list_namespaces;
use common::{Ns, TestBed, require_root_and_tools};

#[test]
fn bed_routes_client_to_host() {
    require_root_and_tools();
    let bed = TestBed::new("route");
    bed.route_client_via_gateway();

    let received = bed.ping(Ns::Client, bed.host_address(), 3);
    assert_eq!(received, 3);

    // The host routes the client pool back through the gateway, so it can reply to packets
    // that the gateway forwards from a VPN client's tunnel address.
    let route = bed.exec(Ns::Host, "ip", &["route", "get", "10.8.0.6"]);
    let route = String::from_utf8_lossy(&route.stdout);
    assert!(
        route.contains(&format!("via {}", bed.gateway_lan_address())),
        "host route to the client pool: {route}"
    );
}

#[test]
fn bed_keeps_client_and_host_apart_without_route() {
    require_root_and_tools();
    let bed = TestBed::new("isolated");
    let received = bed.ping(Ns::Client, bed.host_address(), 1);
    assert_eq!(received, 0);
}

#[test]
fn bed_runs_iperf3_both_ways() {
    require_root_and_tools();
    let bed = TestBed::new("iperf");
    bed.route_client_via_gateway();
    let _server = bed.iperf3_server(Ns::Host, bed.host_address());

    let throughput = bed.iperf3(Ns::Client, bed.host_address(), 1);
    assert!(
        throughput.client_to_server_bps > 1e6,
        "client to server: {throughput:?}"
    );
    assert!(
        throughput.server_to_client_bps > 1e6,
        "server to client: {throughput:?}"
    );
}

#[test]
fn bed_removes_namespaces_and_processes_on_drop() {
    require_root_and_tools();
    let bed = TestBed::new("cleanup");
    let names: Vec<String> = [Ns::Client, Ns::Gateway, Ns::Host]
        .map(|ns| bed.name(ns).to_string())
        .to_vec();
    let dir = bed.dir().to_path_buf();
    for name in &names {
        assert!(list_namespaces().contains(name), "{name} exists");
    }
    // A process that the test forgot to stop: dropping the bed must kill it.
    let sleeper = bed.command(Ns::Gateway, "sleep", &["600"]).spawn();
    let mut sleeper = sleeper.expect("start sleep");
    drop(bed);

    let remaining = list_namespaces();
    for name in &names {
        assert!(!remaining.contains(name), "{name} still exists");
    }
    assert!(!dir.exists(), "{} still exists", dir.display());
    let status = sleeper.wait().expect("wait for sleep");
    assert!(!status.success(), "sleep ended by a signal: {status}");
}

#[test]
fn bed_removes_namespaces_after_panic() {
    require_root_and_tools();
    let names = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let bed = TestBed::new("panic");
        let mut server = bed.spawn(Ns::Gateway, "sleep", &["600"]);
        *names.lock().expect("not poisoned") = [Ns::Client, Ns::Gateway, Ns::Host]
            .map(|ns| bed.name(ns).to_string())
            .to_vec();
        server.expect_line("never printed", Duration::from_millis(100));
    });
    assert!(result.is_err(), "expect_line panics on a timeout");
    let names = names.into_inner().expect("not poisoned");
    assert_eq!(names.len(), 3);
    let remaining = list_namespaces();
    for name in &names {
        assert!(!remaining.contains(name), "{name} still exists");
    }
}

#[test]
fn sweeper_removes_namespace_of_dead_pid() {
    require_root_and_tools();
    // The pid of an exited and reaped child does not exist until the kernel reuses it.
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("start true");
    let dead_pid = child.id();
    child.wait().expect("wait for true");
    let stale = format!("{}{dead_pid}-0-stale-gw", common::netns::NAME_PREFIX);
    let live = format!(
        "{}{}-0-live-gw",
        common::netns::NAME_PREFIX,
        std::process::id()
    );
    for name in [&stale, &live] {
        let status = std::process::Command::new(common::tools::resolve("ip"))
            .args(["netns", "add", name])
            .status()
            .expect("run ip netns add");
        assert!(status.success(), "ip netns add {name}");
    }

    common::netns::sweep_stale_namespaces();
    let remaining = list_namespaces();
    let stale_left = remaining.contains(&stale);
    let live_left = remaining.contains(&live);
    for name in [&stale, &live] {
        let _ = std::process::Command::new(common::tools::resolve("ip"))
            .args(["netns", "delete", name])
            .output();
    }
    assert!(!stale_left, "{stale} was not swept");
    assert!(live_left, "{live} of a running process was swept");
}
