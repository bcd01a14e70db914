use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::admin::model::{ChangeReport, ServerFields};
use crate::pki::{RecordState, ServerPki};

const CONFIG: &str = r#"# Gateway of the test office.
[gateway]
public_address = "vpn.example.com"
pki_dir = "certs"

# The office network.
[[ssl_server]]
name = "office"
local_networks = ["192.168.77.0/24"]
client_cidr = "10.8.0.0/24"
port = 1194 # the usual port

[[ssl_server]]
name = "lab"
local_networks = ["192.168.78.0/24"]
client_cidr = "10.9.0.0/24"
port = 1195
"#;

struct Gateway {
    dir: tempfile::TempDir,
    files: Files,
    lock: ConfigLock,
}

impl Gateway {
    /// Builds a gateway whose changes a running daemon applies.
    fn new() -> Self {
        Self::build(Files::for_daemon)
    }

    /// Builds a gateway with no daemon, as the CLI finds it when `sslvpn serve` is stopped.
    fn without_daemon() -> Self {
        Self::build(Files::new)
    }

    fn build(open: fn(&Path) -> Files) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gateway.toml");
        fs::write(&path, CONFIG).expect("write config");
        let lock = ConfigLock::acquire(&path).expect("lock");
        Self {
            files: open(&path),
            dir,
            lock,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    fn text(&self) -> String {
        fs::read_to_string(self.path()).expect("read config")
    }

    fn pki_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    fn run(&self, request: Request) -> Result<Outcome, ApiError> {
        self.files.execute(&self.lock, &request)
    }

    fn change(&self, request: Request) -> ChangeReport {
        match self.run(request).expect("request").reply {
            Reply::Changed { change } => change,
            other => panic!("expected a change report, got {other:?}"),
        }
    }

    fn modify(&self, server: &str, fields: ServerFields) -> Result<Outcome, ApiError> {
        self.run(Request::ModifyServer {
            server: server.to_owned(),
            fields,
        })
    }

    fn issue(&self, server: &str, name: &str) {
        self.run(Request::CreateCert {
            server: server.to_owned(),
            name: name.to_owned(),
            days: None,
        })
        .expect("issue certificate");
    }

    fn cert_states(&self, server: &str) -> Vec<(String, RecordState)> {
        let pki = ServerPki::open(&self.pki_dir(), server).expect("open PKI");
        pki.list_clients()
            .expect("list")
            .into_iter()
            .map(|entry| (entry.name, entry.state))
            .collect()
    }
}

fn load(path: &Path) -> Config {
    Config::load(path).expect("valid config").config
}

fn temp_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.contains(".tmp"))
        .collect()
}

#[test]
fn modify_keeps_comments_and_layout() {
    let gateway = Gateway::new();
    let change = gateway.change(Request::ModifyServer {
        server: "office".to_owned(),
        fields: ServerFields {
            port: Some(1300),
            ..ServerFields::default()
        },
    });
    let text = gateway.text();
    assert_eq!(change.action, "modified");
    assert!(
        text.starts_with("# Gateway of the test office.\n"),
        "{text}"
    );
    assert!(
        text.contains("# The office network.\n[[ssl_server]]"),
        "{text}"
    );
    assert!(text.contains("port = 1300 # the usual port\n"), "{text}");
    assert!(text.contains("port = 1195\n"), "{text}");
    assert_eq!(load(&gateway.path()).server("office").unwrap().port, 1300);
}

#[test]
fn write_keeps_mode_and_leaves_no_temp_file() {
    let gateway = Gateway::new();
    fs::set_permissions(gateway.path(), fs::Permissions::from_mode(0o640)).expect("chmod");
    gateway
        .modify(
            "office",
            ServerFields {
                cipher: Some("AES-256-CBC".to_owned()),
                ..ServerFields::default()
            },
        )
        .expect("modify");
    let mode = fs::metadata(gateway.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert!(temp_files(gateway.dir.path()).is_empty());
    assert!(gateway.text().contains("cipher = \"AES-256-CBC\""));
}

#[test]
fn rejected_modify_changes_nothing() {
    let gateway = Gateway::new();
    gateway.issue("office", "alice");
    let before = fs::read(gateway.path()).unwrap();
    let error = gateway
        .modify(
            "office",
            ServerFields {
                protocol: Some("udp".to_owned()),
                client_cidr: Some("10.9.0.0/24".to_owned()),
                ..ServerFields::default()
            },
        )
        .expect_err("overlapping client_cidr must be rejected");
    assert_eq!(error.status, ErrorKind::Invalid);
    assert!(error.message.contains("nothing was changed"), "{error:?}");
    assert!(!error.violations.is_empty());
    assert!(
        error.violations.iter().any(|v| v.contains("client_cidr")),
        "{error:?}"
    );
    assert_eq!(fs::read(gateway.path()).unwrap(), before);
    assert_eq!(
        gateway.cert_states("office"),
        vec![("alice".to_owned(), RecordState::Valid)]
    );
}

#[test]
fn invalid_value_gets_config_message() {
    let gateway = Gateway::new();
    let before = fs::read(gateway.path()).unwrap();
    let error = gateway
        .modify(
            "office",
            ServerFields {
                protocol: Some("sctp".to_owned()),
                ..ServerFields::default()
            },
        )
        .expect_err("unknown protocol");
    assert_eq!(error.status, ErrorKind::Invalid);
    assert_eq!(error.violations.len(), 1);
    assert!(
        error.violations[0].starts_with("ssl_server \"office\": protocol"),
        "{error:?}"
    );
    assert_eq!(fs::read(gateway.path()).unwrap(), before);
}

#[test]
fn create_appends_table_and_ca() {
    let gateway = Gateway::new();
    let outcome = gateway
        .run(Request::CreateServer {
            server: "branch".to_owned(),
            fields: ServerFields {
                local_networks: Some(vec!["192.168.90.0/24".to_owned()]),
                client_cidr: Some("10.20.0.0/24".to_owned()),
                protocol: Some("udp".to_owned()),
                port: Some(1443),
                ..ServerFields::default()
            },
        })
        .expect("create");
    let Reply::Changed { change } = &outcome.reply else {
        panic!("expected a change report, got {:?}", outcome.reply);
    };
    assert_eq!(change.action, "created");
    let config = outcome.config.expect("new config");
    let server = config
        .server("branch")
        .expect("branch in the returned config");
    assert_eq!(server.port, 1443);
    assert_eq!(
        server.cipher,
        load(&gateway.path()).server("office").unwrap().cipher
    );
    assert!(gateway.text().contains("# The office network."));
    assert!(gateway.text().trim_end().ends_with("port = 1443"));
    assert!(gateway.pki_dir().join("branch").join("ca.crt").is_file());
}

#[test]
fn create_two_factor_adds_auth_table() {
    let gateway = Gateway::new();
    let change = gateway.change(Request::CreateServer {
        server: "branch".to_owned(),
        fields: ServerFields {
            local_networks: Some(vec!["192.168.90.0/24".to_owned()]),
            client_cidr: Some("10.20.0.0/24".to_owned()),
            port: Some(1443),
            two_factor: Some(true),
            ..ServerFields::default()
        },
    });

    assert_eq!(change.action, "created");
    assert!(
        change
            .message
            .contains("users_file = \"users-branch.toml\""),
        "{}",
        change.message
    );
    assert!(
        change.message.contains("sslvpn user add --server branch"),
        "{}",
        change.message
    );

    let text = gateway.text();
    assert!(
        text.trim_end().ends_with(
            "[ssl_server.auth]\nbackend = \"local\"\nusers_file = \"users-branch.toml\""
        ),
        "{text}"
    );

    let config = load(&gateway.path());
    let branch = config.server("branch").unwrap();
    assert!(branch.two_factor);
    assert_eq!(
        branch.auth.as_ref().map(|auth| auth.backend.name()),
        Some("local")
    );
    assert!(config.server("office").unwrap().auth.is_none());
    let (_, users_file) = gateway.files.users_file("branch").expect("users file");
    assert_eq!(users_file, gateway.dir.path().join("users-branch.toml"));
}

#[test]
fn create_without_two_factor_adds_no_auth() {
    let gateway = Gateway::new();
    for (name, two_factor, cidr, port) in [
        ("branch", None, "10.20.0.0/24", 1443),
        ("depot", Some(false), "10.21.0.0/24", 1444),
    ] {
        let change = gateway.change(Request::CreateServer {
            server: name.to_owned(),
            fields: ServerFields {
                local_networks: Some(vec!["192.168.90.0/24".to_owned()]),
                client_cidr: Some(cidr.to_owned()),
                port: Some(port),
                two_factor,
                ..ServerFields::default()
            },
        });
        assert!(!change.message.contains("auth"), "{}", change.message);
        let config = load(&gateway.path());
        assert!(config.server(name).unwrap().auth.is_none(), "{name}");
    }
    assert!(!gateway.text().contains("[ssl_server.auth]"));
}

#[test]
fn create_existing_name_conflicts() {
    let gateway = Gateway::new();
    let error = gateway
        .run(Request::CreateServer {
            server: "lab".to_owned(),
            fields: ServerFields::default(),
        })
        .expect_err("duplicate name");
    assert_eq!(error.status, ErrorKind::Conflict);
    assert!(error.message.contains("\"lab\""), "{error:?}");
}

#[test]
fn rejected_create_leaves_no_ca() {
    let gateway = Gateway::new();
    let before = fs::read(gateway.path()).unwrap();
    let error = gateway
        .run(Request::CreateServer {
            server: "branch".to_owned(),
            fields: ServerFields {
                local_networks: Some(vec!["192.168.90.0/24".to_owned()]),
                ..ServerFields::default()
            },
        })
        .expect_err("client_cidr is required");
    assert_eq!(error.status, ErrorKind::Invalid);
    assert!(
        error.violations.iter().any(|v| v.contains("client_cidr")),
        "{error:?}"
    );
    assert_eq!(fs::read(gateway.path()).unwrap(), before);
    assert!(!gateway.pki_dir().join("branch").exists());
}

#[test]
fn protocol_change_revokes_and_moves_listener() {
    let gateway = Gateway::new();
    gateway.issue("office", "alice");
    gateway.issue("office", "bob");
    gateway.issue("lab", "carol");
    let change = gateway.change(Request::ModifyServer {
        server: "office".to_owned(),
        fields: ServerFields {
            protocol: Some("udp".to_owned()),
            ..ServerFields::default()
        },
    });
    assert_eq!(change.changed_fields, vec!["protocol"]);
    assert_eq!(change.revoked_certificates, vec!["alice", "bob"]);
    assert!(change.sessions_dropped);
    assert!(change.listener_moved);
    assert!(
        change.message.contains("new profiles"),
        "{}",
        change.message
    );
    assert!(
        gateway
            .cert_states("office")
            .iter()
            .all(|(_, state)| *state == RecordState::Revoked)
    );
    assert_eq!(
        gateway.cert_states("lab"),
        vec![("carol".to_owned(), RecordState::Valid)]
    );
}

#[test]
fn compression_change_revokes_without_moving() {
    let gateway = Gateway::new();
    gateway.issue("office", "alice");
    let change = gateway.change(Request::ModifyServer {
        server: "office".to_owned(),
        fields: ServerFields {
            compression: Some(true),
            ..ServerFields::default()
        },
    });
    assert_eq!(change.revoked_certificates, vec!["alice"]);
    assert!(change.sessions_dropped);
    assert!(!change.listener_moved);
}

#[test]
fn tls_crypt_change_keeps_certificates() {
    let gateway = Gateway::new();
    gateway.issue("office", "alice");
    let change = gateway.change(Request::ModifyServer {
        server: "office".to_owned(),
        fields: ServerFields {
            tls_crypt: Some(true),
            ..ServerFields::default()
        },
    });
    assert_eq!(change.changed_fields, vec!["tls_crypt"]);
    assert!(change.revoked_certificates.is_empty());
    assert!(change.sessions_dropped);
    assert!(!change.listener_moved);
    assert!(change.profiles_outdated);
    assert!(
        change.message.contains("users need new profiles"),
        "{}",
        change.message
    );
    assert_eq!(
        gateway.cert_states("office"),
        vec![("alice".to_owned(), RecordState::Valid)]
    );
}

#[test]
fn network_change_drops_sessions_only() {
    let gateway = Gateway::new();
    gateway.issue("office", "alice");
    let change = gateway.change(Request::ModifyServer {
        server: "office".to_owned(),
        fields: ServerFields {
            client_cidr: Some("10.30.0.0/24".to_owned()),
            topology: Some("subnet".to_owned()),
            ..ServerFields::default()
        },
    });
    assert_eq!(change.changed_fields, vec!["client_cidr", "topology"]);
    assert!(change.revoked_certificates.is_empty());
    assert!(change.sessions_dropped);
    assert!(!change.listener_moved);
    assert_eq!(
        gateway.cert_states("office"),
        vec![("alice".to_owned(), RecordState::Valid)]
    );
}

#[test]
fn cipher_change_keeps_sessions() {
    let gateway = Gateway::new();
    let change = gateway.change(Request::ModifyServer {
        server: "office".to_owned(),
        fields: ServerFields {
            cipher: Some("AES-256-CBC".to_owned()),
            ..ServerFields::default()
        },
    });
    assert_eq!(change.changed_fields, vec!["cipher"]);
    assert!(!change.sessions_dropped);
    assert!(!change.listener_moved);
    assert!(
        change.message.contains("new sessions"),
        "{}",
        change.message
    );
}

#[test]
fn reports_without_daemon_name_no_sessions() {
    let cases: [(&str, ServerFields, &str); 5] = [
        (
            "tls_crypt",
            ServerFields {
                tls_crypt: Some(true),
                ..ServerFields::default()
            },
            "users need new profiles because tls_crypt changed (`sslvpn cert export`)",
        ),
        (
            "port",
            ServerFields {
                port: Some(1400),
                ..ServerFields::default()
            },
            "users need new profiles because the port changed (`sslvpn cert export`)",
        ),
        (
            "protocol",
            ServerFields {
                protocol: Some("udp".to_owned()),
                ..ServerFields::default()
            },
            "revoked 1 client certificate(s)",
        ),
        (
            "client_cidr",
            ServerFields {
                client_cidr: Some("10.30.0.0/24".to_owned()),
                ..ServerFields::default()
            },
            "changed client_cidr",
        ),
        (
            "cipher",
            ServerFields {
                cipher: Some("AES-256-CBC".to_owned()),
                ..ServerFields::default()
            },
            "changed cipher",
        ),
    ];
    for (field, fields, expected) in cases {
        let gateway = Gateway::without_daemon();
        gateway.issue("office", "alice");
        let outcome = gateway.modify("office", fields).expect("modify");
        let Reply::Changed { change } = outcome.reply else {
            panic!("expected a change report for {field}");
        };
        let message = &change.message;
        assert!(message.contains(expected), "{field}: {message}");
        assert!(
            message.ends_with("; the change is saved and takes effect when `sslvpn serve` starts"),
            "{field}: {message}"
        );
        assert!(!message.contains("session"), "{field}: {message}");
        assert!(!message.contains("listener moved"), "{field}: {message}");
    }
}

#[test]
fn reports_with_daemon_name_sessions() {
    let gateway = Gateway::new();
    let change = gateway.change(Request::ModifyServer {
        server: "office".to_owned(),
        fields: ServerFields {
            tls_crypt: Some(true),
            ..ServerFields::default()
        },
    });
    assert!(
        change
            .message
            .ends_with("; the server's sessions are dropped and clients reconnect"),
        "{}",
        change.message
    );

    let change = gateway.change(Request::ModifyServer {
        server: "office".to_owned(),
        fields: ServerFields {
            port: Some(1400),
            ..ServerFields::default()
        },
    });
    assert!(change.profiles_outdated);
    assert!(
        change
            .message
            .contains("users need new profiles because the port changed"),
        "{}",
        change.message
    );
    assert!(
        change
            .message
            .ends_with("; the listener moved and the server's sessions are dropped"),
        "{}",
        change.message
    );
}

#[test]
fn port_change_moves_listener() {
    let gateway = Gateway::new();
    let change = gateway.change(Request::ModifyServer {
        server: "office".to_owned(),
        fields: ServerFields {
            port: Some(1400),
            ..ServerFields::default()
        },
    });
    assert!(change.listener_moved);
    assert!(change.sessions_dropped);
    assert!(change.revoked_certificates.is_empty());
}

#[test]
fn same_values_are_unchanged() {
    let gateway = Gateway::new();
    let before = fs::read(gateway.path()).unwrap();
    let outcome = gateway
        .modify(
            "office",
            ServerFields {
                port: Some(1194),
                client_cidr: Some("10.8.0.0/24".to_owned()),
                ..ServerFields::default()
            },
        )
        .expect("modify");
    let Reply::Changed { change } = outcome.reply else {
        panic!("expected a change report");
    };
    assert_eq!(change.action, "unchanged");
    assert!(outcome.config.is_none());
    assert_eq!(fs::read(gateway.path()).unwrap(), before);
}

#[test]
fn two_factor_on_adds_auth_table() {
    let gateway = Gateway::new();
    gateway.issue("office", "alice");
    let change = gateway.change(Request::ModifyServer {
        server: "office".to_owned(),
        fields: ServerFields {
            two_factor: Some(true),
            ..ServerFields::default()
        },
    });
    assert_eq!(change.revoked_certificates, vec!["alice"]);
    assert!(
        change.message.contains("users-office.toml"),
        "{}",
        change.message
    );
    let text = gateway.text();
    assert!(text.contains("[ssl_server.auth]"), "{text}");
    let config = load(&gateway.path());
    let office = config.server("office").unwrap();
    assert!(office.two_factor);
    assert_eq!(
        office.auth.as_ref().map(|auth| auth.backend.name()),
        Some("local")
    );
    assert!(config.server("lab").unwrap().auth.is_none());
    let (_, users_file) = gateway.files.users_file("office").expect("users file");
    assert_eq!(users_file, gateway.dir.path().join("users-office.toml"));
}

#[test]
fn delete_removes_table_and_pki() {
    let gateway = Gateway::new();
    gateway
        .modify(
            "lab",
            ServerFields {
                two_factor: Some(true),
                ..ServerFields::default()
            },
        )
        .expect("turn on two-factor");
    gateway
        .run(Request::AddUser {
            server: "lab".to_owned(),
            name: "dave".to_owned(),
            password: "dave password".to_owned(),
        })
        .expect("add user");
    gateway.issue("lab", "carol");
    let outcome = gateway
        .run(Request::DeleteServer {
            server: "lab".to_owned(),
        })
        .expect("delete");
    let config = outcome.config.expect("new config");
    assert!(config.server("lab").is_none());
    assert!(load(&gateway.path()).server("lab").is_none());
    assert!(!gateway.text().contains("\"lab\""));
    assert!(gateway.text().contains("# The office network."));
    assert!(!gateway.pki_dir().join("lab").exists());
    assert!(gateway.dir.path().join("users-lab.toml").is_file());
}

#[test]
fn unknown_server_names_the_servers() {
    let gateway = Gateway::new();
    let error = gateway
        .run(Request::ShowServer {
            server: "nowhere".to_owned(),
        })
        .expect_err("unknown server");
    assert_eq!(error.status, ErrorKind::NotFound);
    assert!(error.message.contains("\"nowhere\""), "{error:?}");
    assert!(error.message.contains("office, lab"), "{error:?}");
}

#[test]
fn sessions_need_the_daemon() {
    let gateway = Gateway::new();
    for request in [
        Request::ListSessions { server: None },
        Request::KillSession { id: 1 },
        Request::Metrics,
    ] {
        let error = gateway.run(request).expect_err("needs the daemon");
        assert_eq!(error.status, ErrorKind::Unavailable);
        assert!(error.message.contains("gateway.toml"), "{error:?}");
    }
}

#[test]
fn list_servers_without_sessions() {
    let gateway = Gateway::new();
    let Reply::Servers { servers } = gateway.run(Request::ListServers).unwrap().reply else {
        panic!("expected servers");
    };
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["office", "lab"]);
    assert!(servers.iter().all(|server| server.sessions.is_none()));
}

#[test]
fn cert_requests_round_trip() {
    let gateway = Gateway::new();
    gateway.issue("office", "alice");
    let Reply::Profile { file_name, bytes } = gateway
        .run(Request::ExportCert {
            server: "office".to_owned(),
            name: "alice".to_owned(),
            format: ProfileFormat::Ovpn,
        })
        .unwrap()
        .reply
    else {
        panic!("expected a profile");
    };
    assert_eq!(file_name, "alice.ovpn");
    assert!(String::from_utf8(bytes).unwrap().contains("<key>"));
    gateway
        .run(Request::DeleteCert {
            server: "office".to_owned(),
            name: "alice".to_owned(),
        })
        .expect("delete");
    let Reply::Certs { certs } = gateway
        .run(Request::ListCerts {
            server: "office".to_owned(),
        })
        .unwrap()
        .reply
    else {
        panic!("expected certs");
    };
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].status, "revoked");
    let missing = gateway
        .run(Request::DeleteCert {
            server: "office".to_owned(),
            name: "zed".to_owned(),
        })
        .expect_err("unknown cert");
    assert_eq!(missing.status, ErrorKind::NotFound);
    assert!(missing.message.contains("sslvpn cert list"), "{missing:?}");
}

#[test]
fn lock_excludes_second_holder() {
    let gateway = Gateway::new();
    let second = ConfigLock::try_acquire(&gateway.path()).expect("try");
    assert!(second.is_none());
    let mode = fs::metadata(lock_path(&gateway.path()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(gateway.lock);
    let third = ConfigLock::try_acquire(&gateway.dir.path().join("gateway.toml")).expect("try");
    assert!(third.is_some());
}

/// Field, edit, then the expected revoke_certs, drop_sessions and move_listener.
type DiffCase = (&'static str, fn(&mut SslServer), bool, bool, bool);

#[test]
fn diff_rows() {
    let config = load_text(CONFIG);
    let old = config.server("office").unwrap();
    let cases: [DiffCase; 7] = [
        ("protocol", |s| s.protocol = Protocol::Udp, true, true, true),
        ("tls_crypt", |s| s.tls_crypt = true, false, true, false),
        ("port", |s| s.port = 1400, false, true, true),
        ("compression", |s| s.compression = true, true, true, false),
        (
            "cipher",
            |s| s.cipher = Cipher::Aes256Cbc,
            false,
            false,
            false,
        ),
        (
            "topology",
            |s| s.topology = Topology::Subnet,
            false,
            true,
            false,
        ),
        (
            "local_networks",
            |s| s.local_networks.clear(),
            false,
            true,
            false,
        ),
    ];
    for (field, edit, revoke, drop, moved) in cases {
        let mut new = old.clone();
        edit(&mut new);
        let change = diff(old, &new);
        assert_eq!(change.changed_fields, vec![field], "{field}");
        assert_eq!(change.revoke_certs, revoke, "{field}");
        assert_eq!(change.drop_sessions, drop, "{field}");
        assert_eq!(change.move_listener, moved, "{field}");
    }
    assert!(diff(old, old).is_empty());
}

#[test]
fn pki_effects_of_hand_edit() {
    let gateway = Gateway::new();
    gateway.issue("office", "alice");
    gateway.issue("lab", "carol");
    let old = load(&gateway.path());
    let edited = CONFIG
        .replace(
            "port = 1194 # the usual port",
            "port = 1194\nprotocol = \"udp\"",
        )
        .replace("name = \"lab\"", "name = \"branch\"");
    fs::write(gateway.path(), edited).unwrap();
    let new = load(&gateway.path());
    let reports = apply_pki_effects(&old, &new).expect("apply");
    let actions: Vec<(&str, &str)> = reports
        .iter()
        .map(|r| (r.server.as_str(), r.action.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("office", "modified"),
            ("branch", "created"),
            ("lab", "deleted")
        ]
    );
    assert_eq!(reports[0].revoked_certificates, vec!["alice"]);
    assert_eq!(
        gateway.cert_states("office"),
        vec![("alice".to_owned(), RecordState::Revoked)]
    );
    assert!(gateway.pki_dir().join("branch").join("ca.crt").is_file());
    assert!(!gateway.pki_dir().join("lab").exists());
}

fn load_text(text: &str) -> Config {
    Config::from_toml(text).expect("valid config").config
}

use crate::admin::model::ProfileFormat;
use crate::config::{Cipher, Protocol, SslServer, Topology};

impl Gateway {
    fn export_ovpn(&self, server: &str, name: &str) -> String {
        let outcome = self
            .run(Request::ExportCert {
                server: server.to_owned(),
                name: name.to_owned(),
                format: ProfileFormat::Ovpn,
            })
            .expect("export");
        let Reply::Profile { bytes, .. } = outcome.reply else {
            panic!("expected a profile, got {:?}", outcome.reply);
        };
        String::from_utf8(bytes).expect("UTF-8 profile")
    }

    fn set_tls_crypt(&self, on: bool) {
        self.change(Request::ModifyServer {
            server: "office".to_owned(),
            fields: ServerFields {
                tls_crypt: Some(on),
                ..ServerFields::default()
            },
        });
    }
}

/// Returns the `<tls-crypt>` block of a profile, if it has one.
fn tls_crypt_block(profile: &str) -> Option<&str> {
    let start = profile.find("<tls-crypt>\n")?;
    let end = profile.find("</tls-crypt>")?;
    Some(&profile[start..end])
}

#[test]
fn export_adds_tls_crypt_key() {
    let gateway = Gateway::new();
    gateway.issue("office", "alice");
    assert!(tls_crypt_block(&gateway.export_ovpn("office", "alice")).is_none());

    gateway.set_tls_crypt(true);
    let profile = gateway.export_ovpn("office", "alice");
    let block = tls_crypt_block(&profile)
        .expect("tls-crypt block")
        .to_owned();
    let key_file = gateway.pki_dir().join("office/tls-crypt.key");
    let saved = fs::read_to_string(&key_file).expect("key file");
    assert!(block.ends_with(&saved), "the block contains the saved key");

    gateway.set_tls_crypt(false);
    assert!(tls_crypt_block(&gateway.export_ovpn("office", "alice")).is_none());
    gateway.set_tls_crypt(true);
    let again = gateway.export_ovpn("office", "alice");
    assert_eq!(tls_crypt_block(&again), Some(block.as_str()));
}
