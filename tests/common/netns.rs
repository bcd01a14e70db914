//! A test bed of three network namespaces:
//!
//! ```text
//! client  wan0 ──── wan0  gateway  lan0 ──── lan0  host
//!        "internet" subnet           "local network" subnet
//! ```
//!
//! The gateway forwards IPv4, and the host routes the client pool back through the gateway,
//! so a VPN server in the gateway namespace can reach the host for its clients. The
//! addresses exist only inside the namespaces. Dropping the bed kills every process left in
//! its namespaces and deletes them, which also removes the veth pairs; this happens during a
//! panic too.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

use ipnet::Ipv4Net;

use super::process::Process;
use super::tools::{find_tool, resolve};

/// Common start of every namespace name, followed by the pid of the test process.
pub const NAME_PREFIX: &str = "svpn-";

/// Interface of the client and the gateway on the "internet" link.
pub const WAN_IF: &str = "wan0";
/// Interface of the gateway and the host on the "local network" link.
pub const LAN_IF: &str = "lan0";

static BED_COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// One of the three namespaces of a [`TestBed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    Client,
    Gateway,
    Host,
    /// A further client host made by [`TestBed::add_client`], numbered from 1.
    ExtraClient(u8),
}

impl Ns {
    const ALL: [Ns; 3] = [Ns::Client, Ns::Gateway, Ns::Host];

    fn suffix(self) -> String {
        match self {
            Ns::Client => "cli".to_owned(),
            Ns::Gateway => "gw".to_owned(),
            Ns::Host => "host".to_owned(),
            Ns::ExtraClient(number) => format!("cli{number}"),
        }
    }
}

/// The subnets of a [`TestBed`]. In each link subnet the gateway takes the first host
/// address and the client or host the second.
#[derive(Debug, Clone, Copy)]
pub struct BedConfig {
    /// Client to gateway link.
    pub internet: Ipv4Net,
    /// Gateway to host link.
    pub local: Ipv4Net,
    /// Tunnel addresses of VPN clients, which the host routes through the gateway.
    pub client_pool: Ipv4Net,
}

impl Default for BedConfig {
    /// TEST-NET-1 and TEST-NET-2 (RFC 5737) for the links, and OpenVPN's usual
    /// `10.8.0.0/24` for the client pool.
    fn default() -> Self {
        Self {
            internet: Ipv4Net::new(Ipv4Addr::new(192, 0, 2, 0), 24).expect("valid prefix"),
            local: Ipv4Net::new(Ipv4Addr::new(198, 51, 100, 0), 24).expect("valid prefix"),
            client_pool: Ipv4Net::new(Ipv4Addr::new(10, 8, 0, 0), 24).expect("valid prefix"),
        }
    }
}

/// Throughput that iperf3 measured at the receiving end, in bits per second.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub client_to_server_bps: f64,
    pub server_to_client_bps: f64,
}

/// Three connected network namespaces and a temporary directory for logs and files.
pub struct TestBed {
    names: [String; 3],
    extra_clients: Vec<String>,
    created: Vec<String>,
    config: BedConfig,
    dir: tempfile::TempDir,
    process_counter: AtomicU32,
}

impl TestBed {
    /// Builds a bed with the default subnets. `tag` names the test in the namespace names.
    pub fn new(tag: &str) -> Self {
        Self::with_config(tag, BedConfig::default())
    }

    /// Builds a bed with the given subnets. Panics if a step fails, after removing what was
    /// already created.
    pub fn with_config(tag: &str, config: BedConfig) -> Self {
        SWEEP.call_once(sweep_stale_namespaces);
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect();
        let id = BED_COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = format!("{NAME_PREFIX}{}-{id}-{tag}", std::process::id());
        let names = Ns::ALL.map(|ns| format!("{base}-{}", ns.suffix()));
        let dir = tempfile::Builder::new()
            .prefix(&format!("{base}-"))
            .tempdir()
            .expect("create the test bed directory");
        let mut bed = Self {
            names,
            extra_clients: Vec::new(),
            created: Vec::new(),
            config,
            dir,
            process_counter: AtomicU32::new(0),
        };
        bed.build();
        bed
    }

    fn build(&mut self) {
        for ns in Ns::ALL {
            let name = self.name(ns).to_string();
            ip(&["netns", "add", &name]);
            self.created.push(name);
            self.ip_in(ns, &["link", "set", "lo", "up"]);
        }
        let [client, gateway, host] = self.names.clone();
        let veth = |ns_a: &str, if_a: &str, ns_b: &str, if_b: &str| {
            ip(&[
                "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns",
                ns_b,
            ]);
        };
        veth(&client, WAN_IF, &gateway, WAN_IF);
        veth(&gateway, LAN_IF, &host, LAN_IF);

        let internet = self.config.internet.prefix_len();
        let local = self.config.local.prefix_len();
        self.add_address(Ns::Client, WAN_IF, self.client_address(), internet);
        self.add_address(Ns::Gateway, WAN_IF, self.gateway_wan_address(), internet);
        self.add_address(Ns::Gateway, LAN_IF, self.gateway_lan_address(), local);
        self.add_address(Ns::Host, LAN_IF, self.host_address(), local);

        let forward = self.exec(Ns::Gateway, "sysctl", &["-w", "net.ipv4.ip_forward=1"]);
        assert!(
            forward.status.success(),
            "enabling ip_forward in {} failed: {}",
            self.name(Ns::Gateway),
            String::from_utf8_lossy(&forward.stderr)
        );
        let pool = self.config.client_pool.to_string();
        let via = self.gateway_lan_address().to_string();
        self.ip_in(Ns::Host, &["route", "add", &pool, "via", &via]);
    }

    fn add_address(&self, ns: Ns, interface: &str, address: Ipv4Addr, prefix_len: u8) {
        let cidr = format!("{address}/{prefix_len}");
        self.ip_in(ns, &["addr", "add", &cidr, "dev", interface]);
        self.ip_in(ns, &["link", "set", interface, "up"]);
    }

    /// Adds another client host with its own link to the gateway (`10.200.N.0/24`, routed to
    /// the rest of the bed through the gateway), so several VPN clients can each own their
    /// routes.
    pub fn add_client(&mut self) -> Ns {
        let number = u8::try_from(self.extra_clients.len() + 1).expect("fewer than 256 clients");
        let ns = Ns::ExtraClient(number);
        let name = format!("{}-{}", self.names[0].trim_end_matches("-cli"), ns.suffix());
        ip(&["netns", "add", &name]);
        self.created.push(name.clone());
        self.extra_clients.push(name.clone());
        self.ip_in(ns, &["link", "set", "lo", "up"]);
        let gateway_if = format!("wan{number}");
        ip(&[
            "link",
            "add",
            &gateway_if,
            "netns",
            self.name(Ns::Gateway),
            "type",
            "veth",
            "peer",
            "name",
            WAN_IF,
            "netns",
            &name,
        ]);
        let gateway_address = Ipv4Addr::new(10, 200, number, 1);
        self.add_address(Ns::Gateway, &gateway_if, gateway_address, 24);
        self.add_address(ns, WAN_IF, Ipv4Addr::new(10, 200, number, 2), 24);
        self.ip_in(
            ns,
            &[
                "route",
                "add",
                "default",
                "via",
                &gateway_address.to_string(),
            ],
        );
        ns
    }

    /// Returns the namespace's name, for `ip netns exec` and `ip -n`.
    pub fn name(&self, ns: Ns) -> &str {
        match ns {
            Ns::Client => &self.names[0],
            Ns::Gateway => &self.names[1],
            Ns::Host => &self.names[2],
            Ns::ExtraClient(number) => &self.extra_clients[usize::from(number) - 1],
        }
    }

    /// Runs `task` on a new thread inside `ns` and returns its result. Sockets that `task`
    /// opens stay in `ns` for their life.
    pub fn run_inside<T: Send>(&self, ns: Ns, task: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name(ns));
        thread::scope(|scope| {
            let thread = scope.spawn(|| {
                let file = std::fs::File::open(&path)
                    .unwrap_or_else(|error| panic!("open {path}: {error}"));
                // SAFETY: setns takes a namespace file descriptor that `file` keeps open. It
                // moves only this short-lived thread into the namespace.
                let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                let error = std::io::Error::last_os_error();
                assert_eq!(entered, 0, "setns into {path}: {error}");
                task()
            });
            match thread.join() {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    pub fn config(&self) -> &BedConfig {
        &self.config
    }

    /// Returns the temporary directory of the bed, removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn client_address(&self) -> Ipv4Addr {
        nth_host(self.config.internet, 2)
    }

    /// Returns the gateway's address on the client link, where a VPN server listens.
    pub fn gateway_wan_address(&self) -> Ipv4Addr {
        nth_host(self.config.internet, 1)
    }

    /// Returns the gateway's address on the host link.
    pub fn gateway_lan_address(&self) -> Ipv4Addr {
        nth_host(self.config.local, 1)
    }

    pub fn host_address(&self) -> Ipv4Addr {
        nth_host(self.config.local, 2)
    }

    /// Routes between the client and the host through the gateway without a VPN: the local
    /// network on the client, the internet subnet on the host. A VPN test leaves this out,
    /// so that the only path between them is the tunnel.
    pub fn route_client_via_gateway(&self) {
        let local = self.config.local.to_string();
        let via_wan = self.gateway_wan_address().to_string();
        self.ip_in(Ns::Client, &["route", "add", &local, "via", &via_wan]);
        let internet = self.config.internet.to_string();
        let via_lan = self.gateway_lan_address().to_string();
        self.ip_in(Ns::Host, &["route", "add", &internet, "via", &via_lan]);
    }

    /// Runs `ip -n <ns> args` and panics with its stderr if it fails.
    pub fn ip_in(&self, ns: Ns, args: &[&str]) {
        let mut full = vec!["-n", self.name(ns)];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// Runs `program` inside `ns` and waits for it.
    pub fn exec(&self, ns: Ns, program: &str, args: &[&str]) -> Output {
        self.command(ns, program, args)
            .output()
            .unwrap_or_else(|error| panic!("running {program} in {}: {error}", self.name(ns)))
    }

    /// Returns a command that runs `program` inside `ns`.
    pub fn command(&self, ns: Ns, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(ip_path());
        command
            .args(["netns", "exec", self.name(ns)])
            .arg(resolve(program))
            .args(args);
        command
    }

    /// Starts `program` inside `ns`, with its output in a log file in the bed's directory.
    pub fn spawn(&self, ns: Ns, program: &str, args: &[&str]) -> Process {
        let number = self.process_counter.fetch_add(1, Ordering::Relaxed);
        let base = Path::new(program)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.to_string());
        let label = format!("{base} in {}", self.name(ns));
        let log = self
            .dir()
            .join(format!("{number:02}-{base}-{}.log", ns.suffix()));
        Process::start(self.command(ns, program, args), label, log)
            .unwrap_or_else(|error| panic!("starting {program} in {}: {error}", self.name(ns)))
    }

    /// Sends `count` pings from `ns` to `address` and returns how many replies came back.
    pub fn ping(&self, ns: Ns, address: Ipv4Addr, count: u32) -> u32 {
        let count = count.to_string();
        let target = address.to_string();
        let output = self.exec(
            ns,
            "ping",
            &["-n", "-c", &count, "-i", "0.2", "-W", "2", &target],
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if let Some(received) = parse_ping_received(&stdout) {
            return received;
        }
        // Without a route, ping stops before sending and prints no summary.
        assert!(
            stderr.contains("Network is unreachable"),
            "ping {target} printed no summary:\n{stdout}\n{stderr}"
        );
        0
    }

    /// Starts an iperf3 server in `ns` bound to `address` and waits until it listens.
    pub fn iperf3_server(&self, ns: Ns, address: Ipv4Addr) -> Process {
        let bind = address.to_string();
        let mut server = self.spawn(ns, "iperf3", &["--server", "--bind", &bind, "--forceflush"]);
        server.expect_line("Server listening", Duration::from_secs(10));
        server
    }

    /// Runs iperf3 over TCP from `ns` to the server at `address`, for `seconds` each way,
    /// first client to server, then reversed.
    pub fn iperf3(&self, ns: Ns, address: Ipv4Addr, seconds: u32) -> Throughput {
        Throughput {
            client_to_server_bps: self.iperf3_run(ns, address, seconds, false),
            server_to_client_bps: self.iperf3_run(ns, address, seconds, true),
        }
    }

    fn iperf3_run(&self, ns: Ns, address: Ipv4Addr, seconds: u32, reverse: bool) -> f64 {
        let target = address.to_string();
        let time = seconds.to_string();
        let mut args = vec!["--client", &target, "--time", &time, "--json"];
        if reverse {
            args.push("--reverse");
        }
        // The iperf3 server resets the connections of a test that has just ended while
        // tunnelled segments are still arriving, and can reset or refuse the next test for a
        // moment. Such a refusal is retried; any other failure fails the test.
        const ATTEMPTS: u32 = 4;
        for attempt in 1..=ATTEMPTS {
            let output = self.exec(ns, "iperf3", &args);
            let stdout = String::from_utf8_lossy(&output.stdout);
            let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|_| {
                panic!(
                    "iperf3 to {target} printed no JSON: {stdout}\n{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
            if let Some(error) = report["error"].as_str() {
                let refused = ["reset by peer", "busy", "Connection refused"]
                    .iter()
                    .any(|symptom| error.contains(symptom));
                if refused && attempt < ATTEMPTS {
                    eprintln!("iperf3 to {target} refused ({error}); retrying");
                    thread::sleep(Duration::from_secs(2));
                    continue;
                }
                panic!("iperf3 to {target} failed: {error}");
            }
            assert!(
                output.status.success(),
                "iperf3 to {target} failed: {stdout}"
            );
            return report["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap_or_else(|| panic!("no end.sum_received.bits_per_second in: {stdout}"));
        }
        unreachable!("the last attempt returns or panics")
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        for name in self.created.drain(..).rev() {
            remove_namespace(&name);
        }
    }
}

/// Returns `network + n`.
fn nth_host(network: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(network.network()) + n)
}

/// Reads "N received" from ping's summary line.
fn parse_ping_received(output: &str) -> Option<u32> {
    output.lines().find_map(|line| {
        let (_, rest) = line.split_once("transmitted, ")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn ip_path() -> PathBuf {
    find_tool("ip").unwrap_or_else(|| PathBuf::from("ip"))
}

/// Runs `ip args` and panics with its stderr if it fails.
fn ip(args: &[&str]) {
    let output = Command::new(ip_path())
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("running ip {}: {error}", args.join(" ")));
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// Kills every process inside the namespace `name` and deletes it. Reports failures on
/// stderr instead of panicking, because it runs in `Drop`.
fn remove_namespace(name: &str) {
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let pids = namespace_pids(name);
        if pids.is_empty() {
            break;
        }
        for pid in &pids {
            // SAFETY: kill has no memory-safety preconditions. The pids were listed inside a
            // namespace that only this test bed creates processes in.
            unsafe {
                libc::kill(*pid, signal);
            }
        }
        for _ in 0..50 {
            if namespace_pids(name).is_empty() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    let deleted = Command::new(ip_path())
        .args(["netns", "delete", name])
        .output();
    match deleted {
        Ok(output) if output.status.success() => {}
        Ok(output) => eprintln!(
            "deleting network namespace {name} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => eprintln!("deleting network namespace {name} failed: {error}"),
    }
}

fn namespace_pids(name: &str) -> Vec<libc::pid_t> {
    let Ok(output) = Command::new(ip_path())
        .args(["netns", "pids", name])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// Returns the names of all network namespaces.
pub fn list_namespaces() -> Vec<String> {
    let Ok(output) = Command::new(ip_path()).args(["netns", "list"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Removes namespaces left by test processes that no longer run: those named
/// `svpn-<pid>-...` whose pid does not exist.
pub fn sweep_stale_namespaces() {
    for name in list_namespaces() {
        let Some(rest) = name.strip_prefix(NAME_PREFIX) else {
            continue;
        };
        let Some(pid) = rest
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("removing stale network namespace {name}");
            remove_namespace(&name);
        }
    }
}
