//! `sslvpn user` against a configuration in a temporary folder.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::cli;
use sslvpn::auth::password::verify_password;
use sslvpn::auth::users::UserFile;

const CONFIG: &str = r#"
[gateway]
public_address = "127.0.0.1"
pki_dir = "certs"

[[ssl_server]]
name = "office"
local_networks = ["192.168.77.0/24"]
client_cidr = "10.8.0.0/24"
two_factor = true

[ssl_server.auth]
backend = "local"
users_file = "users-office.toml"

[[ssl_server]]
name = "lab"
local_networks = ["192.168.78.0/24"]
client_cidr = "10.9.0.0/24"
port = 1195
two_factor = true

[ssl_server.auth]
backend = "http"
url = "http://127.0.0.1:9180/verify"

[[ssl_server]]
name = "plain"
local_networks = ["192.168.79.0/24"]
client_cidr = "10.10.0.0/24"
port = 1196
"#;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("sslvpn.toml"), CONFIG).unwrap();
        Self { dir }
    }

    fn users_file(&self) -> PathBuf {
        self.dir.path().join("users-office.toml")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("sslvpn.toml")
    }

    /// Runs `sslvpn user <args> --config <file>` with `stdin` piped in and returns its
    /// standard output.
    fn user_ok(&self, args: &[&str], stdin: &str) -> String {
        cli::expect_success(&self.config(), &[&["user"], args].concat(), stdin)
    }

    /// Runs `sslvpn user <args> --config <file>` with `stdin` piped in, which must fail, and
    /// returns its standard error.
    fn user_err(&self, args: &[&str], stdin: &str) -> String {
        cli::expect_failure(&self.config(), &[&["user"], args].concat(), stdin)
    }

    fn users(&self) -> UserFile {
        UserFile::load(&self.users_file()).unwrap()
    }
}

const ADD_ALICE: &[&str] = &[
    "add",
    "--server",
    "office",
    "--name",
    "alice",
    "--password-stdin",
];

#[test]
fn add_writes_a_hash_with_mode_0600() {
    let setup = Setup::new();
    let output = setup.user_ok(ADD_ALICE, "alice password\n");
    assert!(output.contains("added user \"alice\""), "{output}");
    let mode = fs::metadata(setup.users_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = fs::read_to_string(setup.users_file()).unwrap();
    assert!(!text.contains("alice password"), "{text}");
    let users = setup.users();
    let hash = users.hash_of("alice").unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(verify_password(b"alice password", hash));
}

#[test]
fn list_prints_usernames() {
    let setup = Setup::new();
    assert_eq!(setup.user_ok(&["list", "--server", "office"], ""), "");
    setup.user_ok(ADD_ALICE, "alice password\n");
    let add_bob = [
        "add",
        "--server",
        "office",
        "--name",
        "bob",
        "--password-stdin",
    ];
    setup.user_ok(&add_bob, "bob password\n");
    let listed = setup.user_ok(&["list", "--server", "office"], "");
    assert_eq!(listed, "alice\nbob\n");
}

#[test]
fn passwd_changes_the_hash() {
    let setup = Setup::new();
    setup.user_ok(ADD_ALICE, "alice password\n");
    let passwd = [
        "passwd",
        "--server",
        "office",
        "--name",
        "alice",
        "--password-stdin",
    ];
    setup.user_ok(&passwd, "new alice password\n");
    let users = setup.users();
    let hash = users.hash_of("alice").unwrap();
    assert!(verify_password(b"new alice password", hash));
    assert!(!verify_password(b"alice password", hash));
}

#[test]
fn passwd_of_unknown_user_fails() {
    let setup = Setup::new();
    setup.user_ok(ADD_ALICE, "alice password\n");
    let passwd = [
        "passwd",
        "--server",
        "office",
        "--name",
        "bob",
        "--password-stdin",
    ];
    let error = setup.user_err(&passwd, "bob password\n");
    assert!(error.contains("no user \"bob\""), "{error}");
}

#[test]
fn delete_removes_the_user() {
    let setup = Setup::new();
    setup.user_ok(ADD_ALICE, "alice password\n");
    setup.user_ok(&["delete", "--server", "office", "--name", "alice"], "");
    assert!(setup.users().is_empty());
    let error = setup.user_err(&["delete", "--server", "office", "--name", "alice"], "");
    assert!(error.contains("not found"), "{error}");
}

#[test]
fn add_twice_fails() {
    let setup = Setup::new();
    setup.user_ok(ADD_ALICE, "alice password\n");
    let error = setup.user_err(ADD_ALICE, "other password\n");
    assert!(error.contains("already exists"), "{error}");
    let users = setup.users();
    assert!(verify_password(
        b"alice password",
        users.hash_of("alice").unwrap()
    ));
}

#[test]
fn short_password_is_rejected() {
    let setup = Setup::new();
    let error = setup.user_err(ADD_ALICE, "short\n");
    assert!(error.contains("use 8 to 127 bytes"), "{error}");
    assert!(!setup.users_file().exists());
}

#[test]
fn invalid_username_is_rejected() {
    let setup = Setup::new();
    let add = [
        "add",
        "--server",
        "office",
        "--name",
        "al ice",
        "--password-stdin",
    ];
    let error = setup.user_err(&add, "alice password\n");
    assert!(error.contains("invalid username"), "{error}");
}

#[test]
fn http_backend_server_has_no_users_file() {
    let setup = Setup::new();
    let error = setup.user_err(&["list", "--server", "lab"], "");
    assert!(error.contains("http backend"), "{error}");
}

#[test]
fn server_without_auth_table_is_named() {
    let setup = Setup::new();
    let error = setup.user_err(&["list", "--server", "plain"], "");
    assert!(error.contains("no [ssl_server.auth] table"), "{error}");
}

#[test]
fn unknown_server_is_named() {
    let setup = Setup::new();
    let error = setup.user_err(&["list", "--server", "nowhere"], "");
    assert!(error.contains("no SSL server named \"nowhere\""), "{error}");
}
