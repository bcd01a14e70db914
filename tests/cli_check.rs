//! `sslvpn check` run as an admin runs it.

use std::process::Command;

fn sslvpn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sslvpn"))
}

fn check(path: &std::path::Path) -> std::process::Output {
    sslvpn()
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn check_accepts_shipped_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sslvpn.toml");
    let output = sslvpn()
        .args(["check", "--config", example])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("office: tcp/1194, client_cidr 10.8.0.0/24"),
        "{stdout}"
    );
}

#[test]
fn check_reports_every_violation_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[gateway]
public_address = "vpn.example.com"
[[ssl_server]]
name = "office"
local_networks = ["192.168.77.5/24"]
client_cidr = "10.8.0.0/24"
port = 443
"#,
    )
    .unwrap();
    let output = sslvpn()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("2 invalid setting(s)"), "{stderr}");
    assert!(stderr.contains("use \"192.168.77.0/24\""), "{stderr}");
    assert!(stderr.contains("port = 443: is reserved"), "{stderr}");
}

#[test]
fn check_reports_missing_file() {
    let output = sslvpn()
        .args(["check", "--config", "/nonexistent/sslvpn.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cannot read configuration file /nonexistent/sslvpn.toml"),
        "{stderr}"
    );
}

#[test]
fn check_rejects_a_readable_admin_token() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sslvpn.toml");
    std::fs::write(
        &path,
        r#"
[gateway]
public_address = "vpn.example.com"
admin_address = "127.0.0.1:9180"
admin_token_file = "admin.token"
[[ssl_server]]
name = "office"
local_networks = ["192.168.77.0/24"]
client_cidr = "10.8.0.0/24"
"#,
    )
    .unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, format!("{}\n", "t".repeat(40))).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = check(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = check(&path);
    assert!(output.status.success(), "{output:?}");
}
