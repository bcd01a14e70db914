use std::path::Path;

use super::*;
use crate::config::{Config, ConfigError, Loaded};

/// A valid gateway and server; tests append `two_factor` and an auth table.
const BASE: &str = r#"
[gateway]
public_address = "vpn.example.com"

[[ssl_server]]
name = "office"
local_networks = ["192.168.77.0/24"]
client_cidr = "10.8.0.0/24"
"#;

const LOCAL: &str = "backend = \"local\"\nusers_file = \"users.toml\"\n";
const HTTP: &str = "backend = \"http\"\nurl = \"http://127.0.0.1:9180/verify\"\n";

/// The configuration with `two_factor` set and, when `auth` is given, an auth table with
/// those lines.
fn config(two_factor: bool, auth: Option<&str>) -> String {
    let mut text = format!("{BASE}two_factor = {two_factor}\n");
    if let Some(lines) = auth {
        text.push_str("\n[ssl_server.auth]\n");
        text.push_str(lines);
    }
    text
}

fn load(text: &str) -> Result<Loaded, ConfigError> {
    Config::from_toml(text)
}

fn violations(text: &str) -> Vec<Violation> {
    match load(text) {
        Ok(_) => Vec::new(),
        Err(error) => error.violations().to_vec(),
    }
}

fn auth_of(text: &str) -> AuthSettings {
    match load(text) {
        Ok(loaded) => loaded.config.ssl_servers[0]
            .auth
            .clone()
            .expect("auth table"),
        Err(error) => panic!("expected a valid configuration, got: {error}\n{text}"),
    }
}

/// Asserts exactly one violation, on `field`, whose message contains `needle`.
fn assert_one_violation(text: &str, field: &str, needle: &str) {
    let found = violations(text);
    assert_eq!(
        found.len(),
        1,
        "expected one violation, got {found:#?}\n{text}"
    );
    assert_eq!(found[0].field, field, "{found:#?}");
    assert!(
        found[0].message.contains(needle),
        "message {:?} lacks {needle:?}",
        found[0].message
    );
}

#[test]
fn local_backend_with_defaults() {
    let auth = auth_of(&config(true, Some(LOCAL)));
    assert_eq!(
        auth.backend,
        AuthBackend::Local {
            users_file: PathBuf::from("users.toml")
        }
    );
    assert!(!auth.username_must_match_cn);
    assert_eq!(auth.max_failures, DEFAULT_MAX_FAILURES);
    assert_eq!(auth.lockout_seconds, DEFAULT_LOCKOUT_SECONDS);
}

#[test]
fn http_backend_with_every_key() {
    let lines = format!(
        "{HTTP}timeout_ms = 1500\nusername_must_match_cn = true\nmax_failures = 3\nlockout_seconds = 60\n"
    );
    let auth = auth_of(&config(true, Some(&lines)));
    let AuthBackend::Http { url, timeout_ms } = &auth.backend else {
        panic!("expected the http backend, got {:?}", auth.backend);
    };
    assert_eq!(url.to_string(), "http://127.0.0.1:9180/verify");
    assert_eq!(*timeout_ms, 1500);
    assert!(auth.username_must_match_cn);
    assert_eq!(auth.max_failures, 3);
    assert_eq!(auth.lockout_seconds, 60);
}

#[test]
fn http_timeout_defaults_to_3000_ms() {
    let auth = auth_of(&config(true, Some(HTTP)));
    assert!(matches!(
        auth.backend,
        AuthBackend::Http {
            timeout_ms: DEFAULT_TIMEOUT_MS,
            ..
        }
    ));
}

#[test]
fn two_factor_requires_the_auth_table() {
    assert_one_violation(&config(true, None), "auth", "two_factor = true needs");
}

#[test]
fn backend_is_required() {
    assert_one_violation(
        &config(true, Some("users_file = \"users.toml\"\n")),
        "auth.backend",
        "missing",
    );
}

#[test]
fn backend_must_be_known() {
    assert_one_violation(
        &config(true, Some("backend = \"ldap\"\n")),
        "auth.backend",
        "use one of \"local\", \"http\"",
    );
}

#[test]
fn local_requires_users_file() {
    assert_one_violation(
        &config(true, Some("backend = \"local\"\n")),
        "auth.users_file",
        "sslvpn user add",
    );
}

#[test]
fn users_file_must_name_a_file() {
    for (path, needle) in [
        ("", "must not be empty"),
        ("users/", "names a folder"),
        ("..", "names a folder"),
    ] {
        let lines = format!("backend = \"local\"\nusers_file = {path:?}\n");
        assert_one_violation(&config(true, Some(&lines)), "auth.users_file", needle);
    }
}

#[test]
fn http_requires_url() {
    assert_one_violation(
        &config(true, Some("backend = \"http\"\n")),
        "auth.url",
        "needs the verification URL",
    );
}

#[test]
fn url_must_be_http() {
    for (url, needle) in [
        ("https://auth.example.com/verify", "only http://"),
        ("127.0.0.1:9180", "only http://"),
        ("http://127.0.0.1:99999/", "1 to 65535"),
        ("http://bad_host/", "not a host name"),
        ("http:///verify", "no host"),
    ] {
        let lines = format!("backend = \"http\"\nurl = {url:?}\n");
        assert_one_violation(&config(true, Some(&lines)), "auth.url", needle);
    }
}

#[test]
fn timeout_ms_range() {
    let text = |timeout: i64| config(true, Some(&format!("{HTTP}timeout_ms = {timeout}\n")));
    assert!(violations(&text(100)).is_empty());
    assert!(violations(&text(30_000)).is_empty());
    assert_one_violation(&text(99), "auth.timeout_ms", "100 to 30000 milliseconds");
    assert_one_violation(
        &text(30_001),
        "auth.timeout_ms",
        "100 to 30000 milliseconds",
    );
}

#[test]
fn max_failures_range() {
    let text = |count: i64| config(true, Some(&format!("{LOCAL}max_failures = {count}\n")));
    assert!(violations(&text(1)).is_empty());
    assert!(violations(&text(100)).is_empty());
    assert_one_violation(&text(0), "auth.max_failures", "1 to 100 failures");
    assert_one_violation(&text(101), "auth.max_failures", "1 to 100 failures");
}

#[test]
fn lockout_seconds_range() {
    let text = |seconds: i64| config(true, Some(&format!("{LOCAL}lockout_seconds = {seconds}\n")));
    assert!(violations(&text(1)).is_empty());
    assert!(violations(&text(86_400)).is_empty());
    assert_one_violation(&text(0), "auth.lockout_seconds", "1 to 86400 seconds");
    assert_one_violation(&text(86_401), "auth.lockout_seconds", "1 to 86400 seconds");
}

#[test]
fn wrong_types() {
    assert_one_violation(
        &config(
            true,
            Some(&format!("{LOCAL}username_must_match_cn = \"yes\"\n")),
        ),
        "auth.username_must_match_cn",
        "true or false",
    );
    assert_one_violation(
        &config(true, Some(&format!("{LOCAL}max_failures = \"5\"\n"))),
        "auth.max_failures",
        "an integer",
    );
    let text = format!("{BASE}two_factor = true\nauth = \"local\"\n");
    assert_one_violation(&text, "auth", "a table");
}

#[test]
fn unknown_keys_are_errors() {
    assert_one_violation(
        &config(true, Some(&format!("{LOCAL}password = \"x\"\n"))),
        "auth.password",
        "unknown key",
    );
}

#[test]
fn keys_of_the_other_backend_are_errors() {
    assert_one_violation(
        &config(true, Some(&format!("{LOCAL}url = \"http://127.0.0.1/\"\n"))),
        "auth.url",
        "only used with backend = \"http\"",
    );
    assert_one_violation(
        &config(true, Some(&format!("{LOCAL}timeout_ms = 500\n"))),
        "auth.timeout_ms",
        "only used with backend = \"http\"",
    );
    assert_one_violation(
        &config(true, Some(&format!("{HTTP}users_file = \"users.toml\"\n"))),
        "auth.users_file",
        "only used with backend = \"local\"",
    );
}

#[test]
fn auth_table_without_two_factor_warns() {
    let loaded = load(&config(false, Some(LOCAL))).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].field, "auth");
    assert!(loaded.warnings[0].message.contains("no effect"));
}

#[test]
fn auth_table_without_two_factor_is_still_validated() {
    assert_one_violation(
        &config(false, Some("backend = \"ldap\"\n")),
        "auth.backend",
        "unsupported",
    );
}

#[test]
fn violation_text_names_server_field_value_and_fix() {
    let text = config(true, Some("backend = \"local\"\nusers_file = \"users/\"\n"));
    let found = violations(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        found[0].to_string(),
        "ssl_server \"office\": auth.users_file = \"users/\": names a folder; give the path \
         of a file, e.g. \"users-office.toml\""
    );
}

#[test]
fn users_file_is_resolved_against_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sslvpn.toml");
    std::fs::write(&path, config(true, Some(LOCAL))).unwrap();
    let loaded = Config::load(&path).unwrap();
    let auth = loaded.config.ssl_servers[0].auth.clone().unwrap();
    assert_eq!(
        auth.backend,
        AuthBackend::Local {
            users_file: dir.path().join("users.toml")
        }
    );
}

#[test]
fn absolute_users_file_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sslvpn.toml");
    let lines = "backend = \"local\"\nusers_file = \"/etc/sslvpn/users.toml\"\n";
    std::fs::write(&path, config(true, Some(lines))).unwrap();
    let loaded = Config::load(&path).unwrap();
    let auth = loaded.config.ssl_servers[0].auth.clone().unwrap();
    assert_eq!(
        auth.backend,
        AuthBackend::Local {
            users_file: Path::new("/etc/sslvpn/users.toml").to_owned()
        }
    );
}

#[test]
fn summary_names_the_backend() {
    let loaded = load(&config(true, Some(HTTP))).unwrap();
    let summary = loaded.config.ssl_servers[0].summary();
    assert!(
        summary.ends_with("two_factor on (backend http)"),
        "{summary}"
    );
}
