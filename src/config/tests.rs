use super::*;

const GATEWAY: &str = r#"
[gateway]
public_address = "vpn.example.com"
"#;

/// A valid server entry; tests replace one line of it.
const SERVER: &str = r#"
[[ssl_server]]
name = "office"
local_networks = ["192.168.77.0/24"]
client_cidr = "10.8.0.0/24"
"#;

fn load(text: &str) -> Result<Loaded, ConfigError> {
    Config::from_toml(text)
}

/// The configuration with `line` (a `key = value` line) replacing the server's key of that name,
/// or added when the server has no such key.
fn with_server_line(line: &str) -> String {
    let key = line.split('=').next().unwrap().trim();
    let mut replaced = false;
    let mut server = String::new();
    for existing in SERVER.lines() {
        if existing.split('=').next().map(str::trim) == Some(key) {
            server.push_str(line);
            replaced = true;
        } else {
            server.push_str(existing);
        }
        server.push('\n');
    }
    if !replaced {
        server.push_str(line);
        server.push('\n');
    }
    format!("{GATEWAY}{server}")
}

fn violations(text: &str) -> Vec<Violation> {
    match load(text) {
        Ok(_) => Vec::new(),
        Err(error) => error.violations().to_vec(),
    }
}

fn assert_valid(text: &str) {
    if let Err(error) = load(text) {
        panic!("expected a valid configuration, got: {error}\n{text}");
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
fn defaults_fill_optional_fields() {
    let loaded = load(&format!("{GATEWAY}{SERVER}")).unwrap();
    let gateway = &loaded.config.gateway;
    assert_eq!(gateway.listen_address.to_string(), "0.0.0.0");
    assert_eq!(gateway.pki_dir, PathBuf::from("certs"));
    assert_eq!(gateway.max_connections, 50);
    assert_eq!(gateway.receive_coalescing, Duration::from_micros(150));
    let server = &loaded.config.ssl_servers[0];
    assert_eq!(server.protocol, Protocol::Tcp);
    assert_eq!(server.port, 1194);
    assert_eq!(server.cipher, Cipher::Aes128Cbc);
    assert!(!server.compression);
    assert!(!server.two_factor);
    assert!(!server.tls_crypt);
    assert_eq!(server.topology, Topology::Net30);
    assert!(loaded.warnings.is_empty());
}

#[test]
fn tls_crypt_read_and_summarized() {
    let loaded = load(&with_server_line("tls_crypt = true")).unwrap();
    let server = &loaded.config.ssl_servers[0];
    assert!(server.tls_crypt);
    assert!(
        server.summary().contains(", tls_crypt on"),
        "{}",
        server.summary()
    );
}

#[test]
fn shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sslvpn.toml");
    let loaded = Config::load(&path).unwrap();
    assert_eq!(loaded.config.ssl_servers.len(), 1);
    assert!(loaded.config.gateway.pki_dir.is_absolute());
}

#[test]
fn name_rules() {
    assert_valid(&with_server_line(&format!(
        "name = \"a{}\"",
        "b".repeat(63)
    )));
    assert_valid(&with_server_line("name = \"Office-1_a.b\""));
    assert_one_violation(
        &with_server_line(&format!("name = \"a{}\"", "b".repeat(64))),
        "name",
        "1 to 64",
    );
    assert_one_violation(&with_server_line("name = \"\""), "name", "1 to 64");
    assert_one_violation(
        &with_server_line("name = \"1office\""),
        "name",
        "start with a letter",
    );
    assert_one_violation(
        &with_server_line("name = \"_office\""),
        "name",
        "start with a letter",
    );
    assert_one_violation(&with_server_line("name = \"off ice\""), "name", "' '");
    assert_one_violation(&with_server_line("name = \"off/ice\""), "name", "'/'");
}

#[test]
fn name_must_be_unique() {
    let second = SERVER
        .replace("10.8.0.0/24", "10.9.0.0/24")
        .replace("1194", "1195");
    let text = format!("{GATEWAY}{SERVER}{second}\nport = 1195\n");
    assert_one_violation(&text, "name", "unique");
}

#[test]
fn local_networks_count() {
    assert_one_violation(
        &with_server_line("local_networks = []"),
        "local_networks",
        "1 to 5",
    );
    let five = r#"local_networks = ["192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24", "192.168.4.0/24", "192.168.5.0/24"]"#;
    assert_valid(&with_server_line(five));
    let six = five.replace("]", ", \"192.168.6.0/24\"]");
    assert_one_violation(&with_server_line(&six), "local_networks", "1 to 5");
}

#[test]
fn local_networks_prefix_bounds() {
    assert_valid(&with_server_line(r#"local_networks = ["11.0.0.0/8"]"#));
    assert_valid(&with_server_line(r#"local_networks = ["192.168.77.9/32"]"#));
    assert_one_violation(
        &with_server_line(r#"local_networks = ["12.0.0.0/7"]"#),
        "local_networks",
        "8 to 32",
    );
}

#[test]
fn local_networks_host_bits_suggest_fix() {
    assert_one_violation(
        &with_server_line(r#"local_networks = ["192.168.77.5/24"]"#),
        "local_networks",
        "use \"192.168.77.0/24\"",
    );
}

#[test]
fn local_networks_not_a_cidr() {
    assert_one_violation(
        &with_server_line(r#"local_networks = ["192.168.77.0"]"#),
        "local_networks",
        "not an IPv4 CIDR",
    );
    assert_one_violation(
        &with_server_line(r#"local_networks = ["fd00::/64"]"#),
        "local_networks",
        "not an IPv4 CIDR",
    );
}

#[test]
fn local_networks_no_duplicates() {
    assert_one_violation(
        &with_server_line(r#"local_networks = ["192.168.77.0/24", "192.168.77.0/24"]"#),
        "local_networks",
        "listed twice",
    );
}

#[test]
fn local_networks_forbidden_ranges() {
    for (network, what) in [
        ("127.0.0.0/8", "loopback"),
        ("127.1.2.0/24", "loopback"),
        ("169.254.10.0/24", "link-local"),
        ("224.0.0.0/8", "multicast"),
        ("239.1.0.0/16", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("120.0.0.0/8", ""),
    ] {
        let text = with_server_line(&format!("local_networks = [\"{network}\"]"));
        if what.is_empty() {
            assert_valid(&text);
        } else {
            assert_one_violation(&text, "local_networks", what);
        }
    }
}

#[test]
fn client_cidr_prefix_bounds() {
    let gateway = GATEWAY.replace(
        "vpn.example.com\"",
        "vpn.example.com\"\nmax_connections = 1",
    );
    let server = |cidr: &str| {
        let line = format!("client_cidr = \"{cidr}\"");
        with_server_line(&line).replace(GATEWAY, &gateway)
    };
    assert_valid(&server("10.0.0.0/16"));
    assert_valid(&server("10.8.0.8/29"));
    assert_one_violation(&server("10.0.0.0/15"), "client_cidr", "16 to 29");
    assert_one_violation(&server("10.8.0.0/30"), "client_cidr", "16 to 29");
}

#[test]
fn client_cidr_host_bits() {
    assert_one_violation(
        &with_server_line(r#"client_cidr = "10.8.0.1/24""#),
        "client_cidr",
        "use \"10.8.0.0/24\"",
    );
}

#[test]
fn client_cidr_overlaps_local_network() {
    assert_one_violation(
        &with_server_line(r#"client_cidr = "192.168.77.0/24""#),
        "client_cidr",
        "overlaps local network",
    );
    assert_one_violation(
        &with_server_line(r#"client_cidr = "192.168.0.0/16""#),
        "client_cidr",
        "overlaps local network",
    );
}

#[test]
fn client_cidr_overlaps_other_server() {
    let second = SERVER
        .replace("office", "lab")
        .replace("10.8.0.0/24", "10.8.0.0/23");
    let text = format!("{GATEWAY}{SERVER}{second}protocol = \"udp\"\n");
    assert_one_violation(&text, "client_cidr", "of SSL server \"office\"");
}

#[test]
fn client_cidr_holds_four_addresses_per_connection() {
    let text = |connections: u32| {
        let gateway = format!("{GATEWAY}max_connections = {connections}\n");
        format!("{gateway}{SERVER}")
    };
    // A /24 holds 64 blocks of 4 addresses, and the server takes one of them.
    assert_valid(&text(63));
    assert_one_violation(&text(64), "client_cidr", "needs 260");
    assert_one_violation(&text(64), "client_cidr", "/23");
}

#[test]
fn client_cidr_subnet_holds_one_address_per_connection() {
    let text = |connections: u32| {
        let gateway = format!("{GATEWAY}max_connections = {connections}\n");
        let server = SERVER.replace("10.8.0.0/24", "10.8.0.0/26");
        format!("{gateway}{server}topology = \"subnet\"\n")
    };
    // A /26 contains 64 addresses. Without the network, server and broadcast addresses, 61 remain.
    assert_valid(&text(61));
    assert_one_violation(&text(62), "client_cidr", "needs 65");
    assert_one_violation(&text(62), "client_cidr", "/25");
}

#[test]
fn client_cidr_public_range_warns() {
    let loaded = load(&with_server_line(r#"client_cidr = "100.64.0.0/24""#)).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].field, "client_cidr");
    assert!(loaded.warnings[0].message.contains("must route it"));
    for private in ["10.8.0.0/24", "172.31.0.0/24", "192.168.200.0/24"] {
        let loaded = load(&with_server_line(&format!("client_cidr = \"{private}\""))).unwrap();
        assert!(
            loaded.warnings.is_empty(),
            "{private}: {:?}",
            loaded.warnings
        );
    }
}

#[test]
fn port_bounds() {
    assert_valid(&with_server_line("port = 1"));
    assert_valid(&with_server_line("port = 65535"));
    assert_one_violation(&with_server_line("port = 0"), "port", "1 to 65535");
    assert_one_violation(&with_server_line("port = 65536"), "port", "1 to 65535");
    assert_one_violation(&with_server_line("port = -1"), "port", "1 to 65535");
}

#[test]
fn every_reserved_port_is_rejected() {
    for port in [
        22, 2222, 22222, 9000, 9001, 9002, 7505, 80, 443, 53, 68, 123, 4510, 4560, 500, 4500,
    ] {
        let text = with_server_line(&format!("port = {port}"));
        assert_one_violation(&text, "port", "reserved");
    }
    assert_eq!(RESERVED_PORTS.len(), 16);
}

#[test]
fn protocol_and_port_pair_is_unique() {
    let second = SERVER
        .replace("office", "lab")
        .replace("10.8.0.0/24", "10.9.0.0/24");
    let same = format!("{GATEWAY}{SERVER}{second}");
    assert_one_violation(&same, "port", "already listens on tcp/1194");
    // The same port number over another protocol is a different listener.
    assert_valid(&format!("{same}protocol = \"udp\"\n"));
}

#[test]
fn protocol_values() {
    assert_valid(&with_server_line("protocol = \"udp\""));
    assert_valid(&with_server_line("protocol = \"tcp\""));
    assert_one_violation(
        &with_server_line("protocol = \"UDP\""),
        "protocol",
        "\"udp\"",
    );
    assert_one_violation(
        &with_server_line("protocol = \"sctp\""),
        "protocol",
        "\"tcp\"",
    );
}

#[test]
fn cipher_values_are_case_insensitive() {
    for (text, cipher) in [
        ("AES-128-CBC", Cipher::Aes128Cbc),
        ("aes-192-cbc", Cipher::Aes192Cbc),
        ("Aes-256-Cbc", Cipher::Aes256Cbc),
        ("NONE", Cipher::None),
    ] {
        let loaded = load(&with_server_line(&format!("cipher = \"{text}\""))).unwrap();
        assert_eq!(loaded.config.ssl_servers[0].cipher, cipher);
    }
    assert_one_violation(
        &with_server_line("cipher = \"AES-256-GCM\""),
        "cipher",
        "AES-128-CBC",
    );
}

#[test]
fn topology_values() {
    let loaded = load(&with_server_line("topology = \"subnet\"")).unwrap();
    assert_eq!(loaded.config.ssl_servers[0].topology, Topology::Subnet);
    assert_one_violation(&with_server_line("topology = \"p2p\""), "topology", "net30");
}

#[test]
fn unknown_keys_are_errors() {
    assert_one_violation(&with_server_line("prot = \"udp\""), "prot", "unknown key");
    let text = format!("{GATEWAY}max_conections = 5\n{SERVER}");
    assert_one_violation(&text, "max_conections", "unknown key");
    let text = format!("extra = 1\n{GATEWAY}{SERVER}");
    assert_one_violation(&text, "extra", "unknown key");
}

#[test]
fn wrong_types_are_errors() {
    assert_one_violation(&with_server_line("port = \"1194\""), "port", "an integer");
    assert_one_violation(
        &with_server_line("compression = \"yes\""),
        "compression",
        "true or false",
    );
    assert_one_violation(
        &with_server_line("tls_crypt = \"on\""),
        "tls_crypt",
        "true or false",
    );
    assert_one_violation(
        &with_server_line("local_networks = \"192.168.77.0/24\""),
        "local_networks",
        "an array",
    );
}

#[test]
fn missing_required_fields() {
    assert_one_violation("[gateway]\n", "public_address", "missing");
    let text = format!("{GATEWAY}[[ssl_server]]\nname = \"x\"\nclient_cidr = \"10.8.0.0/24\"\n");
    assert_one_violation(&text, "local_networks", "missing");
    assert_one_violation(
        &format!(
            "{GATEWAY}[[ssl_server]]\nlocal_networks = [\"192.168.77.0/24\"]\nclient_cidr = \"10.8.0.0/24\"\n"
        ),
        "name",
        "missing",
    );
}

#[test]
fn max_connections_bounds() {
    let text = |count: i64| format!("{GATEWAY}max_connections = {count}\n");
    assert_valid(&text(1));
    assert_one_violation(&text(0), "max_connections", "1 to 65535");
    assert_one_violation(&text(65536), "max_connections", "1 to 65535");
}

#[test]
fn receive_coalescing_bounds() {
    let text = |micros: &str| format!("{GATEWAY}receive_coalescing_us = {micros}\n{SERVER}");
    let with = |micros: &str| {
        load(&text(micros))
            .unwrap()
            .config
            .gateway
            .receive_coalescing
    };
    assert_eq!(with("0"), Duration::ZERO);
    assert_eq!(with("1000"), Duration::from_micros(1000));
    assert_one_violation(&text("-1"), "receive_coalescing_us", "0 to 1000");
    assert_one_violation(&text("1001"), "receive_coalescing_us", "0 to 1000");
    assert_one_violation(&text("\"100\""), "receive_coalescing_us", "an integer");
}

#[test]
fn public_address_forms() {
    for address in ["198.51.100.1", "vpn.example.com", "gw-1", "2001:db8::1"] {
        assert_valid(&format!("[gateway]\npublic_address = \"{address}\"\n"));
    }
    for address in ["", "bad host", "a..b", "-a.com", "vpn\nremote evil 1"] {
        let text = format!("[gateway]\npublic_address = {address:?}\n");
        assert_one_violation(&text, "public_address", "not a host name");
    }
}

#[test]
fn every_violation_is_reported_at_once() {
    let text = format!(
        "{GATEWAY}colour = 1\n[[ssl_server]]\nname = \"1x\"\nlocal_networks = [\"192.168.77.5/24\"]\nclient_cidr = \"10.8.0.0/30\"\nport = 22\n"
    );
    let fields: Vec<String> = violations(&text).into_iter().map(|v| v.field).collect();
    assert_eq!(
        fields,
        ["colour", "name", "local_networks", "client_cidr", "port"]
    );
}

#[test]
fn violation_names_server_field_value_and_fix() {
    let found = violations(&with_server_line(r#"local_networks = ["192.168.77.5/24"]"#));
    let text = found[0].to_string();
    assert_eq!(
        text,
        "ssl_server \"office\": local_networks = \"192.168.77.5/24\": host bits are set; use \"192.168.77.0/24\""
    );
}

#[test]
fn syntax_error_is_reported() {
    let error = load("[gateway\n").unwrap_err();
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error}");
}

#[test]
fn client_cidr_forbidden_ranges() {
    for (cidr, what) in [
        ("127.8.0.0/24", "loopback"),
        ("169.254.1.0/24", "link-local"),
        ("224.1.0.0/24", "multicast"),
        ("255.255.0.0/24", "broadcast"),
    ] {
        let text = with_server_line(&format!("client_cidr = \"{cidr}\""));
        assert_one_violation(&text, "client_cidr", what);
    }
}

#[test]
fn client_cidr_must_not_contain_public_address() {
    let text = format!(
        "[gateway]\npublic_address = \"10.8.0.200\"\n{}",
        SERVER.trim_start()
    );
    assert_one_violation(&text, "client_cidr", "public_address 10.8.0.200");
}

#[test]
fn client_cidr_must_not_contain_listen_address() {
    let text = format!(
        "[gateway]\npublic_address = \"vpn.example.com\"\nlisten_address = \"10.8.0.9\"\n{}",
        SERVER.trim_start()
    );
    assert_one_violation(&text, "client_cidr", "listen_address 10.8.0.9");
}
