//! Runs `sslvpn server` and `sslvpn session` with no daemon running, so every request is
//! carried out on the files of a temporary gateway.

mod common;

use std::fs;
use std::path::PathBuf;

use common::cli;

const CONFIG: &str = r#"# Test gateway.
[gateway]
public_address = "127.0.0.1"
pki_dir = "certs"
admin_socket = "admin.sock"

# Head office.
[[ssl_server]]
name = "office"
local_networks = ["192.168.77.0/24"]
client_cidr = "10.8.0.0/24"
protocol = "tcp"
port = 1194

[[ssl_server]]
name = "lab"
local_networks = ["192.168.78.0/24"]
client_cidr = "10.9.0.0/24"
port = 1195
"#;

struct Gateway {
    dir: tempfile::TempDir,
}

impl Gateway {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("gateway.toml"), CONFIG).expect("write config");
        Self { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    fn text(&self) -> String {
        fs::read_to_string(self.config()).expect("read config")
    }

    /// Runs `sslvpn <args> --config <file>` and returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        cli::expect_success(&self.config(), args, "")
    }

    /// Runs `sslvpn <args> --config <file>`, which must fail, and returns its standard error.
    fn err(&self, args: &[&str]) -> String {
        cli::expect_failure(&self.config(), args, "")
    }
}

#[test]
fn create_list_show_delete() {
    let gateway = Gateway::new();
    let created = gateway.ok(&[
        "server",
        "create",
        "--name",
        "branch",
        "--local-network",
        "192.168.90.0/24",
        "--local-network",
        "192.168.91.0/24",
        "--client-cidr",
        "10.20.0.0/24",
        "--protocol",
        "udp",
        "--port",
        "1443",
        "--topology",
        "subnet",
    ]);
    assert!(
        created.contains("created SSL server \"branch\""),
        "{created}"
    );
    assert!(gateway.dir.path().join("certs/branch/ca.crt").is_file());
    assert!(gateway.text().contains("# Head office."));

    let list = gateway.ok(&["server", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("office: tcp/1194"), "{list}");
    assert!(lines[2].starts_with("branch: udp/1443"), "{list}");

    let shown = gateway.ok(&["server", "show", "--name", "branch"]);
    assert!(shown.lines().any(|line| line == "port: 1443"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|line| line == "local_networks: 192.168.90.0/24 192.168.91.0/24"),
        "{shown}"
    );
    assert!(
        shown.lines().any(|line| line == "topology: subnet"),
        "{shown}"
    );

    let deleted = gateway.ok(&["server", "delete", "--name", "branch"]);
    assert!(
        deleted.contains("deleted SSL server \"branch\""),
        "{deleted}"
    );
    assert!(!gateway.dir.path().join("certs/branch").exists());
    assert_eq!(gateway.ok(&["server", "list"]).lines().count(), 2);
    assert!(gateway.text().contains("# Head office."));
}

#[test]
fn create_two_factor_adds_local_backend() {
    let gateway = Gateway::new();
    let created = gateway.ok(&[
        "server",
        "create",
        "--name",
        "branch",
        "--local-network",
        "192.168.90.0/24",
        "--client-cidr",
        "10.20.0.0/24",
        "--port",
        "1443",
        "--two-factor",
        "on",
    ]);
    assert!(
        created.contains("created SSL server \"branch\""),
        "{created}"
    );
    assert!(
        created.contains("added [ssl_server.auth] with the local backend"),
        "{created}"
    );
    assert!(
        created.contains("users_file = \"users-branch.toml\""),
        "{created}"
    );
    let shown = gateway.ok(&["server", "show", "--name", "branch"]);
    assert!(
        shown.lines().any(|line| line == "two_factor: on"),
        "{shown}"
    );
    assert!(
        shown.lines().any(|line| line == "auth_backend: local"),
        "{shown}"
    );

    let added = cli::expect_success(
        &gateway.config(),
        &[
            "user",
            "add",
            "--server",
            "branch",
            "--name",
            "carol",
            "--password-stdin",
        ],
        "carol's long password\n",
    );
    assert!(added.contains("carol"), "{added}");
    assert!(gateway.dir.path().join("users-branch.toml").is_file());
    let users = gateway.ok(&["user", "list", "--server", "branch"]);
    assert!(users.lines().any(|line| line == "carol"), "{users}");
}

#[test]
fn modify_revokes_certificates() {
    let gateway = Gateway::new();
    gateway.ok(&["cert", "create", "--server", "office", "--name", "alice"]);
    let modified = gateway.ok(&["server", "modify", "--name", "office", "--protocol", "udp"]);
    assert!(modified.contains("changed protocol"), "{modified}");
    assert!(
        modified.contains("revoked certificate \"alice\""),
        "{modified}"
    );
    let shown = gateway.ok(&["server", "show", "--name", "office"]);
    assert!(shown.lines().any(|line| line == "protocol: udp"), "{shown}");
    let certs = gateway.ok(&["cert", "list", "--server", "office"]);
    assert!(
        certs.lines().nth(1).unwrap_or("").ends_with("revoked"),
        "{certs}"
    );
}

#[test]
fn modify_output_names_no_sessions() {
    let gateway = Gateway::new();
    gateway.ok(&["cert", "create", "--server", "office", "--name", "alice"]);
    let modified = gateway.ok(&["server", "modify", "--name", "office", "--tls-crypt", "on"]);
    assert_eq!(
        modified,
        "modified SSL server \"office\": changed tls_crypt; client certificates stay valid, \
         but users need new profiles because tls_crypt changed (`sslvpn cert export`); the \
         change is saved and takes effect when `sslvpn serve` starts\n"
    );

    let modified = gateway.ok(&["server", "modify", "--name", "office", "--port", "1300"]);
    assert_eq!(
        modified,
        "modified SSL server \"office\": changed port; client certificates stay valid, but \
         users need new profiles because the port changed (`sslvpn cert export`); the change \
         is saved and takes effect when `sslvpn serve` starts\n"
    );

    let modified = gateway.ok(&[
        "server",
        "modify",
        "--name",
        "office",
        "--cipher",
        "AES-256-CBC",
    ]);
    assert_eq!(
        modified,
        "modified SSL server \"office\": changed cipher; the change is saved and takes \
         effect when `sslvpn serve` starts\n"
    );
}

#[test]
fn modify_with_same_values_is_unchanged() {
    let gateway = Gateway::new();
    let before = fs::read(gateway.config()).unwrap();
    let output = gateway.ok(&["server", "modify", "--name", "office", "--port", "1194"]);
    assert!(output.contains("nothing was changed"), "{output}");
    assert_eq!(fs::read(gateway.config()).unwrap(), before);
}

#[test]
fn failed_modify_changes_nothing() {
    let gateway = Gateway::new();
    let before = fs::read(gateway.config()).unwrap();
    let error = gateway.err(&[
        "server",
        "modify",
        "--name",
        "office",
        "--client-cidr",
        "10.9.0.0/24",
    ]);
    assert!(error.contains("sslvpn server modify failed"), "{error}");
    assert!(error.contains("nothing was changed"), "{error}");
    assert!(error.contains("client_cidr"), "{error}");
    assert_eq!(fs::read(gateway.config()).unwrap(), before);
}

#[test]
fn unknown_server_is_named() {
    let gateway = Gateway::new();
    let error = gateway.err(&["server", "modify", "--name", "nowhere", "--port", "1300"]);
    assert!(error.contains("no SSL server named \"nowhere\""), "{error}");
    assert!(error.contains("office, lab"), "{error}");
}

#[test]
fn sessions_need_the_daemon() {
    let gateway = Gateway::new();
    let error = gateway.err(&["session", "list"]);
    assert!(error.contains("the daemon is not running"), "{error}");
    assert!(error.contains("sslvpn serve --config"), "{error}");
}
