//! The environment check of the namespace tests and the paths of the external programs.
//!
//! The namespace tests fail, never skip, when the machine lacks what they need: a skipped
//! test would read as a pass.

use std::path::{Path, PathBuf};

/// Programs that every namespace test runs, each with the Debian package that installs it.
pub const BASE_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("sysctl", "procps"),
    ("openvpn", "openvpn"),
    ("iperf3", "iperf3"),
    ("ping", "iputils-ping"),
];

/// Programs that the capture fixtures also need.
pub const CAPTURE_TOOLS: &[(&str, &str)] = &[("tcpdump", "tcpdump"), ("openssl", "openssl")];

/// Directories searched after `PATH`, because a test runner's `PATH` may lack the sbin
/// directories where `ip` and `openvpn` live.
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Panics unless the test runs as root, `/dev/net/tun` exists and every program of
/// [`BASE_TOOLS`] is installed. The message names each missing program and its package.
pub fn require_root_and_tools() {
    require_tools(BASE_TOOLS);
}

/// Panics unless the test runs as root, `/dev/net/tun` exists and every program of `tools`
/// (name, Debian package) is installed.
pub fn require_tools(tools: &[(&str, &str)]) {
    let mut problems = Vec::new();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        problems.push(
            "the namespace tests must run as root (they create network namespaces)".to_string(),
        );
    }
    if !Path::new("/dev/net/tun").exists() {
        problems.push(
            "/dev/net/tun is missing: load the tun module (modprobe tun) or pass the device \
             into the container"
                .to_string(),
        );
    }
    for &(name, package) in tools {
        if find_tool(name).is_none() {
            problems.push(format!(
                "program `{name}` not found: install it with `apt-get install {package}`"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the test environment is incomplete:\n  {}",
        problems.join("\n  ")
    );
}

/// Returns the absolute path of the program `name`, searching `PATH` and then the usual
/// system directories.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Returns the absolute path of `program` when it is a bare name that [`find_tool`] finds,
/// and `program` itself otherwise.
pub fn resolve(program: &str) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    find_tool(program).unwrap_or_else(|| PathBuf::from(program))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
