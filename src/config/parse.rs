//! Reads the TOML tables into drafts, field by field, so that every unknown key, missing field
//! and wrong type is reported, not only the first.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;
use toml::{Table, Value};

use super::auth::{AuthDraft, auth_draft};
use super::{
    Cipher, Config, DEFAULT_ADMIN_SOCKET, DEFAULT_MAX_CONNECTIONS, DEFAULT_PORT,
    DEFAULT_RECEIVE_COALESCING, Gateway, MAX_RECEIVE_COALESCING_US, Protocol, SslServer, Topology,
    Violation,
};

const GATEWAY_KEYS: &[&str] = &[
    "public_address",
    "listen_address",
    "pki_dir",
    "max_connections",
    "admin_socket",
    "admin_address",
    "admin_token_file",
    "receive_coalescing_us",
];
const SERVER_KEYS: &[&str] = &[
    "name",
    "local_networks",
    "client_cidr",
    "protocol",
    "port",
    "cipher",
    "compression",
    "two_factor",
    "tls_crypt",
    "topology",
    "auth",
];

/// The `[gateway]` table with each field that could be read; a `None` field was reported.
#[derive(Debug, Default)]
pub(super) struct GatewayDraft {
    pub public_address: Option<String>,
    pub listen_address: Option<IpAddr>,
    pub pki_dir: Option<PathBuf>,
    pub max_connections: Option<u32>,
    pub admin_socket: Option<PathBuf>,
    /// `None` inside when the key is absent; the outer `None` means it was reported.
    pub admin_address: Option<Option<SocketAddr>>,
    pub admin_token_file: Option<Option<PathBuf>>,
    pub receive_coalescing: Option<Duration>,
}

/// One `[[ssl_server]]` entry with each field that could be read; a `None` field was reported.
#[derive(Debug, Default)]
pub(super) struct ServerDraft {
    /// How violations name this entry.
    pub place: String,
    pub name: Option<String>,
    /// Each entry as written, parsed where it is a CIDR at all.
    pub local_networks: Option<Vec<(String, Option<Ipv4Net>)>>,
    pub client_cidr: Option<(String, Ipv4Net)>,
    pub protocol: Option<Protocol>,
    pub port: Option<u16>,
    pub cipher: Option<Cipher>,
    pub compression: Option<bool>,
    pub two_factor: Option<bool>,
    pub tls_crypt: Option<bool>,
    pub topology: Option<Topology>,
    /// The `[ssl_server.auth]` table; `None` when absent.
    pub auth: Option<AuthDraft>,
}

#[derive(Debug, Default)]
pub(super) struct Draft {
    pub gateway: GatewayDraft,
    pub servers: Vec<ServerDraft>,
}

/// Reads a parsed TOML document into a draft, recording every problem in `violations`.
pub(super) fn draft(table: &Table, violations: &mut Vec<Violation>) -> Draft {
    let mut draft = Draft::default();
    for key in table.keys() {
        if key != "gateway" && key != "ssl_server" {
            violations.push(unknown_key("top level", key, &["gateway", "ssl_server"]));
        }
    }

    match table.get("gateway") {
        Some(Value::Table(gateway)) => draft.gateway = gateway_draft(gateway, violations),
        Some(other) => violations.push(wrong_type("top level", "gateway", other, "a table")),
        None => violations.push(missing(
            "top level",
            "gateway",
            "add a [gateway] table with at least public_address",
        )),
    }

    match table.get("ssl_server") {
        Some(Value::Array(servers)) => {
            for (index, server) in servers.iter().enumerate() {
                let place = format!("ssl_server #{}", index + 1);
                match server {
                    Value::Table(server) => {
                        draft.servers.push(server_draft(server, place, violations))
                    }
                    other => violations.push(wrong_type(&place, "ssl_server", other, "a table")),
                }
            }
        }
        Some(other) => violations.push(wrong_type(
            "top level",
            "ssl_server",
            other,
            "an array of tables, written [[ssl_server]]",
        )),
        None => {}
    }
    draft
}

fn gateway_draft(table: &Table, violations: &mut Vec<Violation>) -> GatewayDraft {
    const PLACE: &str = "[gateway]";
    report_unknown_keys(PLACE, table, GATEWAY_KEYS, violations);
    let mut fields = Fields {
        place: PLACE,
        table,
        violations,
    };
    let public_address = fields.string("public_address");
    if fields.table.get("public_address").is_none() {
        fields.violations.push(missing(
            PLACE,
            "public_address",
            "set it to the host name or IP address that clients connect to",
        ));
    }
    let listen_address = match fields.optional_string("listen_address") {
        Ok(None) => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        Ok(Some(text)) => match text.parse() {
            Ok(address) => Some(address),
            Err(_) => {
                fields.invalid(
                    "listen_address",
                    &text,
                    "not an IP address; use e.g. \"0.0.0.0\" to listen on every address",
                );
                None
            }
        },
        Err(()) => None,
    };
    let pki_dir = match fields.optional_string("pki_dir") {
        Ok(None) => Some(PathBuf::from("certs")),
        Ok(Some(text)) if text.is_empty() => {
            fields.invalid("pki_dir", "\"\"", "must not be empty; use e.g. \"certs\"");
            None
        }
        Ok(Some(text)) => Some(PathBuf::from(text)),
        Err(()) => None,
    };
    let max_connections = match fields.optional_integer("max_connections") {
        Ok(None) => Some(DEFAULT_MAX_CONNECTIONS),
        Ok(Some(count)) if (1..=65_535).contains(&count) => Some(count as u32),
        Ok(Some(count)) => {
            fields.invalid("max_connections", &count.to_string(), "must be 1 to 65535");
            None
        }
        Err(()) => None,
    };
    let admin_socket = match fields.optional_string("admin_socket") {
        Ok(None) => Some(PathBuf::from(DEFAULT_ADMIN_SOCKET)),
        Ok(Some(text)) if text.is_empty() => {
            fields.invalid(
                "admin_socket",
                "\"\"",
                "must not be empty; use e.g. \"/run/sslvpn/admin.sock\"",
            );
            None
        }
        Ok(Some(text)) => Some(PathBuf::from(text)),
        Err(()) => None,
    };
    let admin_address = match fields.optional_string("admin_address") {
        Ok(None) => Some(None),
        Ok(Some(text)) => match text.parse::<SocketAddr>() {
            Ok(address) if address.ip().is_loopback() && address.port() != 0 => Some(Some(address)),
            Ok(_) => {
                fields.invalid(
                    "admin_address",
                    &text,
                    "must be a loopback address with a port, e.g. \"127.0.0.1:9180\"; \
                     the API is not offered on other addresses",
                );
                None
            }
            Err(_) => {
                fields.invalid(
                    "admin_address",
                    &text,
                    "not an address with a port; use e.g. \"127.0.0.1:9180\"",
                );
                None
            }
        },
        Err(()) => None,
    };
    let admin_token_file = match fields.optional_string("admin_token_file") {
        Ok(None) => Some(None),
        Ok(Some(text)) if text.is_empty() => {
            fields.invalid(
                "admin_token_file",
                "\"\"",
                "must not be empty; use e.g. \"admin.token\"",
            );
            None
        }
        Ok(Some(text)) => Some(Some(PathBuf::from(text))),
        Err(()) => None,
    };
    let receive_coalescing = match fields.optional_integer("receive_coalescing_us") {
        Ok(None) => Some(DEFAULT_RECEIVE_COALESCING),
        Ok(Some(micros)) if (0..=MAX_RECEIVE_COALESCING_US as i64).contains(&micros) => {
            Some(Duration::from_micros(micros as u64))
        }
        Ok(Some(micros)) => {
            fields.invalid(
                "receive_coalescing_us",
                &micros.to_string(),
                &format!("must be 0 to {MAX_RECEIVE_COALESCING_US} microseconds; 0 turns it off"),
            );
            None
        }
        Err(()) => None,
    };
    if let (Some(Some(_)), Some(None)) = (&admin_address, &admin_token_file) {
        fields.violations.push(missing(
            PLACE,
            "admin_token_file",
            "admin_address needs a bearer token: write one of at least 32 characters to a \
             file readable only by root (e.g. `openssl rand -hex 32 > admin.token; chmod 600 \
             admin.token`) and set admin_token_file to its path",
        ));
    }
    GatewayDraft {
        public_address,
        listen_address,
        pki_dir,
        max_connections,
        admin_socket,
        admin_address,
        admin_token_file,
        receive_coalescing,
    }
}

fn server_draft(table: &Table, mut place: String, violations: &mut Vec<Violation>) -> ServerDraft {
    if let Some(Value::String(name)) = table.get("name") {
        place = format!("ssl_server {name:?}");
    }
    report_unknown_keys(&place, table, SERVER_KEYS, violations);
    let mut fields = Fields {
        place: &place,
        table,
        violations,
    };

    let name = fields.string("name");
    if table.get("name").is_none() {
        fields.violations.push(missing(
            &place,
            "name",
            "give every SSL server a unique name",
        ));
    }
    let local_networks = fields.local_networks();
    let client_cidr = fields.client_cidr();
    let protocol = fields.choice(
        "protocol",
        Protocol::Tcp,
        Protocol::NAMES,
        Protocol::from_name,
    );
    let port = match fields.optional_integer("port") {
        Ok(None) => Some(DEFAULT_PORT),
        Ok(Some(port)) => match u16::try_from(port) {
            Ok(port) => Some(port),
            Err(_) => {
                fields.invalid("port", &port.to_string(), "must be 1 to 65535");
                None
            }
        },
        Err(()) => None,
    };
    let cipher = fields.choice(
        "cipher",
        Cipher::Aes128Cbc,
        Cipher::NAMES,
        Cipher::from_name,
    );
    let compression = fields.optional_bool("compression");
    let two_factor = fields.optional_bool("two_factor");
    let tls_crypt = fields.optional_bool("tls_crypt");
    let topology = fields.choice(
        "topology",
        Topology::Net30,
        Topology::NAMES,
        Topology::from_name,
    );

    let auth = match table.get("auth") {
        None => None,
        Some(Value::Table(auth)) => Some(auth_draft(auth, &place, violations)),
        Some(other) => {
            violations.push(wrong_type(
                &place,
                "auth",
                other,
                "a table, written [ssl_server.auth] after the server's other keys",
            ));
            // Marked invalid, so the rules do not also report its keys as missing.
            Some(AuthDraft::invalid())
        }
    };

    ServerDraft {
        place,
        name,
        local_networks,
        client_cidr,
        protocol,
        port,
        cipher,
        compression,
        two_factor,
        tls_crypt,
        topology,
        auth,
    }
}

/// Reads typed fields out of one table, reporting each problem against that table's place.
pub(super) struct Fields<'a> {
    pub(super) place: &'a str,
    pub(super) table: &'a Table,
    pub(super) violations: &'a mut Vec<Violation>,
}

impl Fields<'_> {
    pub(super) fn invalid(&mut self, field: &str, value: &str, message: &str) {
        self.violations.push(Violation {
            place: self.place.to_owned(),
            field: field.to_owned(),
            value: value.to_owned(),
            message: message.to_owned(),
        });
    }

    pub(super) fn wrong_type(&mut self, field: &str, value: &Value, expected: &str) {
        let violation = wrong_type(self.place, field, value, expected);
        self.violations.push(violation);
    }

    /// Reads a required string; the caller reports a missing one with its fix.
    pub(super) fn string(&mut self, field: &str) -> Option<String> {
        self.optional_string(field).ok().flatten()
    }

    pub(super) fn optional_string(&mut self, field: &str) -> Result<Option<String>, ()> {
        match self.table.get(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => {
                self.wrong_type(field, other, "a string");
                Err(())
            }
        }
    }

    pub(super) fn optional_integer(&mut self, field: &str) -> Result<Option<i64>, ()> {
        match self.table.get(field) {
            None => Ok(None),
            Some(Value::Integer(number)) => Ok(Some(*number)),
            Some(other) => {
                self.wrong_type(field, other, "an integer");
                Err(())
            }
        }
    }

    /// A boolean that defaults to false.
    pub(super) fn optional_bool(&mut self, field: &str) -> Option<bool> {
        match self.table.get(field) {
            None => Some(false),
            Some(Value::Boolean(flag)) => Some(*flag),
            Some(other) => {
                self.wrong_type(field, other, "true or false");
                None
            }
        }
    }

    pub(super) fn choice<T>(
        &mut self,
        field: &str,
        default: T,
        names: &[&str],
        from_name: fn(&str) -> Option<T>,
    ) -> Option<T> {
        let text = self.optional_string(field).ok()?;
        let Some(text) = text else {
            return Some(default);
        };
        let choice = from_name(&text);
        if choice.is_none() {
            let quoted: Vec<String> = names.iter().map(|name| format!("\"{name}\"")).collect();
            let message = format!("unsupported; use one of {}", quoted.join(", "));
            self.invalid(field, &format!("{text:?}"), &message);
        }
        choice
    }

    fn local_networks(&mut self) -> Option<Vec<(String, Option<Ipv4Net>)>> {
        const FIELD: &str = "local_networks";
        let entries = match self.table.get(FIELD) {
            None => {
                let violation = missing(
                    self.place,
                    FIELD,
                    "list the networks clients may reach, e.g. [\"192.168.77.0/24\"]",
                );
                self.violations.push(violation);
                return None;
            }
            Some(Value::Array(entries)) => entries,
            Some(other) => {
                self.wrong_type(FIELD, other, "an array of CIDR strings");
                return None;
            }
        };
        let mut networks = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::String(text) = entry else {
                self.wrong_type(FIELD, entry, "a CIDR string such as \"192.168.77.0/24\"");
                continue;
            };
            let network = parse_cidr(text);
            if network.is_none() {
                self.invalid(
                    FIELD,
                    &format!("{text:?}"),
                    "not an IPv4 CIDR; write it as address/prefix, e.g. \"192.168.77.0/24\"",
                );
            }
            networks.push((text.clone(), network));
        }
        Some(networks)
    }

    fn client_cidr(&mut self) -> Option<(String, Ipv4Net)> {
        const FIELD: &str = "client_cidr";
        let Some(text) = self.optional_string(FIELD).ok()? else {
            let violation = missing(
                self.place,
                FIELD,
                "set the pool of tunnel addresses, e.g. \"10.8.0.0/24\"",
            );
            self.violations.push(violation);
            return None;
        };
        match parse_cidr(&text) {
            Some(network) => Some((text, network)),
            None => {
                self.invalid(
                    FIELD,
                    &format!("{text:?}"),
                    "not an IPv4 CIDR; write it as address/prefix, e.g. \"10.8.0.0/24\"",
                );
                None
            }
        }
    }
}

/// Parses `a.b.c.d/len`, keeping host bits so the rules can name them.
fn parse_cidr(text: &str) -> Option<Ipv4Net> {
    if !text.contains('/') {
        return None;
    }
    text.parse().ok()
}

pub(super) fn report_unknown_keys(
    place: &str,
    table: &Table,
    known: &[&str],
    out: &mut Vec<Violation>,
) {
    for key in table.keys() {
        if !known.contains(&key.as_str()) {
            out.push(unknown_key(place, key, known));
        }
    }
}

fn unknown_key(place: &str, key: &str, known: &[&str]) -> Violation {
    Violation {
        place: place.to_owned(),
        field: key.to_owned(),
        value: String::new(),
        message: format!("unknown key; the known keys are {}", known.join(", ")),
    }
}

pub(super) fn missing(place: &str, field: &str, fix: &str) -> Violation {
    Violation {
        place: place.to_owned(),
        field: field.to_owned(),
        value: String::new(),
        message: format!("missing; {fix}"),
    }
}

pub(super) fn wrong_type(place: &str, field: &str, value: &Value, expected: &str) -> Violation {
    Violation {
        place: place.to_owned(),
        field: field.to_owned(),
        value: value.to_string(),
        message: format!("expected {expected}, found {}", value.type_str()),
    }
}

impl Draft {
    /// Builds the typed configuration; only called once no violation was recorded, so every
    /// field is present.
    pub(super) fn build(self) -> Option<Config> {
        let gateway = Gateway {
            public_address: self.gateway.public_address?,
            listen_address: self.gateway.listen_address?,
            pki_dir: self.gateway.pki_dir?,
            max_connections: self.gateway.max_connections?,
            admin_socket: self.gateway.admin_socket?,
            admin_address: self.gateway.admin_address?,
            admin_token_file: self.gateway.admin_token_file?,
            receive_coalescing: self.gateway.receive_coalescing?,
        };
        let mut ssl_servers = Vec::with_capacity(self.servers.len());
        for server in self.servers {
            let local_networks = server
                .local_networks?
                .into_iter()
                .map(|(_, network)| network)
                .collect::<Option<Vec<_>>>()?;
            ssl_servers.push(SslServer {
                name: server.name?,
                local_networks,
                client_cidr: server.client_cidr?.1,
                protocol: server.protocol?,
                port: server.port?,
                cipher: server.cipher?,
                compression: server.compression?,
                two_factor: server.two_factor?,
                tls_crypt: server.tls_crypt?,
                topology: server.topology?,
                auth: match server.auth {
                    Some(auth) => Some(auth.build()?),
                    None => None,
                },
            });
        }
        Some(Config {
            gateway,
            ssl_servers,
        })
    }
}
