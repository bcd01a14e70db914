//! The gateway configuration: the TOML file, its typed model and the rules it must satisfy.
//!
//! Loading reads the whole file, collects every violation (unknown keys, wrong types, broken
//! rules) and returns them together, so an admin fixes a file in one pass. Nothing is started
//! from a file that has a violation.

mod auth;
mod parse;
mod rules;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::Serialize;

pub use auth::{
    AuthBackend, AuthSettings, DEFAULT_LOCKOUT_SECONDS, DEFAULT_MAX_FAILURES, DEFAULT_TIMEOUT_MS,
};
pub use rules::RESERVED_PORTS;

/// Default TCP or UDP port of an SSL server, as OpenVPN uses.
pub const DEFAULT_PORT: u16 = 1194;
/// Default path of the admin API's unix socket.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/sslvpn/admin.sock";
/// Default number of concurrent SSL-VPN connections a gateway accepts.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 50;
/// Default of `[gateway] receive_coalescing_us`.
pub const DEFAULT_RECEIVE_COALESCING: Duration = Duration::from_micros(150);
/// Largest `[gateway] receive_coalescing_us`, in microseconds.
pub const MAX_RECEIVE_COALESCING_US: u64 = 1000;

/// A validated configuration file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub gateway: Gateway,
    #[serde(rename = "ssl_server")]
    pub ssl_servers: Vec<SslServer>,
}

/// The `[gateway]` table: settings shared by every SSL server.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gateway {
    /// Host name or IP address that client profiles use as `remote`.
    pub public_address: String,
    /// Address the listeners bind to.
    pub listen_address: IpAddr,
    /// Folder of the CAs, certificates and CRLs; relative paths are resolved from the folder
    /// of the configuration file when it is loaded.
    pub pki_dir: PathBuf,
    /// Concurrent SSL-VPN connections the gateway accepts, across all SSL servers.
    pub max_connections: u32,
    /// Unix socket of the admin API; relative paths are resolved like `pki_dir`.
    pub admin_socket: PathBuf,
    /// Loopback address where the admin API is also offered, with a bearer token.
    pub admin_address: Option<std::net::SocketAddr>,
    /// File holding the bearer token of `admin_address`; resolved like `pki_dir`.
    pub admin_token_file: Option<PathBuf>,
    /// Pause an SSL server takes after a burst of packets from its clients, so that the next
    /// ones are handled together; zero turns it off.
    pub receive_coalescing: Duration,
}

/// One `[[ssl_server]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SslServer {
    pub name: String,
    /// Networks behind the gateway that clients may reach; pushed to them as routes.
    pub local_networks: Vec<Ipv4Net>,
    /// Pool of tunnel addresses.
    pub client_cidr: Ipv4Net,
    pub protocol: Protocol,
    pub port: u16,
    /// Data-channel cipher for clients that cannot negotiate one.
    pub cipher: Cipher,
    pub compression: bool,
    pub two_factor: bool,
    /// Wraps the control channel with OpenVPN's tls-crypt, keyed by the server's
    /// `tls-crypt.key`. Clients need a profile that contains the key.
    pub tls_crypt: bool,
    pub topology: Topology,
    /// The `[ssl_server.auth]` table; present whenever `two_factor` is true.
    pub auth: Option<AuthSettings>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// The fallback data-channel cipher an admin can configure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Cipher {
    #[serde(rename = "AES-128-CBC")]
    Aes128Cbc,
    #[serde(rename = "AES-192-CBC")]
    Aes192Cbc,
    #[serde(rename = "AES-256-CBC")]
    Aes256Cbc,
    #[serde(rename = "none")]
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// One /30 per client, OpenVPN's default.
    Net30,
    /// One address per client out of a shared subnet.
    Subnet,
}

impl Protocol {
    pub const NAMES: &'static [&'static str] = &["tcp", "udp"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "tcp" => Some(Self::Tcp),
            "udp" => Some(Self::Udp),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

impl Cipher {
    pub const NAMES: &'static [&'static str] =
        &["AES-128-CBC", "AES-192-CBC", "AES-256-CBC", "none"];

    /// Parses a cipher name the way OpenVPN does: case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "AES-128-CBC" => Some(Self::Aes128Cbc),
            "AES-192-CBC" => Some(Self::Aes192Cbc),
            "AES-256-CBC" => Some(Self::Aes256Cbc),
            "NONE" => Some(Self::None),
            _ => None,
        }
    }

    /// Returns the name OpenVPN uses in `cipher` and `data-ciphers`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128Cbc => "AES-128-CBC",
            Self::Aes192Cbc => "AES-192-CBC",
            Self::Aes256Cbc => "AES-256-CBC",
            Self::None => "none",
        }
    }
}

impl Topology {
    pub const NAMES: &'static [&'static str] = &["net30", "subnet"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "net30" => Some(Self::Net30),
            "subnet" => Some(Self::Subnet),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Net30 => "net30",
            Self::Subnet => "subnet",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One broken rule: where it is, the offending value and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// `[gateway]`, `ssl_server "office"`, or `ssl_server #2` for an entry without a usable name.
    pub place: String,
    pub field: String,
    /// The offending value as written in the file; empty when the field is missing.
    pub value: String,
    /// The problem and its fix.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}: {}", self.place, self.field, self.message)
        } else {
            write!(
                f,
                "{}: {} = {}: {}",
                self.place, self.field, self.value, self.message
            )
        }
    }
}

/// The reason a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path} has {} invalid setting(s):\n{}", .violations.len(), list(.violations))]
    Invalid {
        path: PathBuf,
        violations: Vec<Violation>,
    },
}

fn list(violations: &[Violation]) -> String {
    let lines: Vec<String> = violations.iter().map(|v| format!("  - {v}")).collect();
    lines.join("\n")
}

/// A configuration that passed every rule, with the warnings worth showing the admin.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Violation>,
}

impl Config {
    /// Reads and validates a configuration file, resolving a relative `pki_dir` and
    /// `users_file` against the file's folder.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut loaded = Self::from_toml(&text).map_err(|error| error.with_path(path))?;
        loaded
            .config
            .resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(loaded)
    }

    /// Resolves a relative `pki_dir`, `admin_socket`, `admin_token_file` and `users_file`
    /// against `folder`, the folder of the configuration file.
    pub fn resolve_paths(&mut self, folder: &Path) {
        let gateway = &mut self.gateway;
        for path in [
            Some(&mut gateway.pki_dir),
            Some(&mut gateway.admin_socket),
            gateway.admin_token_file.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = folder.join(&*path);
            }
        }
        for server in &mut self.ssl_servers {
            if let Some(AuthSettings {
                backend: AuthBackend::Local { users_file },
                ..
            }) = &mut server.auth
                && users_file.is_relative()
            {
                *users_file = folder.join(&*users_file);
            }
        }
    }

    /// Parses and validates configuration text. Paths stay as written.
    pub fn from_toml(text: &str) -> Result<Loaded, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|error: toml::de::Error| ConfigError::Syntax {
                    path: PathBuf::new(),
                    message: error.to_string(),
                })?;
        let mut violations = Vec::new();
        let mut warnings = Vec::new();
        let draft = parse::draft(&table, &mut violations);
        rules::check(&draft, &mut violations, &mut warnings);
        let mut places = vec!["top level", "[gateway]"];
        places.extend(draft.servers.iter().map(|server| server.place.as_str()));
        let rank =
            |violation: &Violation| places.iter().position(|place| *place == violation.place);
        violations.sort_by_key(rank);
        warnings.sort_by_key(rank);
        let config = if violations.is_empty() {
            draft.build()
        } else {
            None
        };
        match config {
            Some(config) => Ok(Loaded { config, warnings }),
            None => Err(ConfigError::Invalid {
                path: PathBuf::new(),
                violations,
            }),
        }
    }

    pub fn server(&self, name: &str) -> Option<&SslServer> {
        self.ssl_servers.iter().find(|server| server.name == name)
    }
}

impl ConfigError {
    /// Names `path` as the file the error was found in.
    pub fn with_path(self, path: &Path) -> Self {
        match self {
            Self::Syntax { message, .. } => Self::Syntax {
                path: path.to_owned(),
                message,
            },
            Self::Invalid { violations, .. } => Self::Invalid {
                path: path.to_owned(),
                violations,
            },
            other => other,
        }
    }

    /// Returns the broken rules, when the file parsed as TOML.
    pub fn violations(&self) -> &[Violation] {
        match self {
            Self::Invalid { violations, .. } => violations,
            _ => &[],
        }
    }
}

impl SslServer {
    /// Returns a one-line description for `sslvpn check` and logs.
    pub fn summary(&self) -> String {
        let networks: Vec<String> = self.local_networks.iter().map(|n| n.to_string()).collect();
        let backend = match (&self.auth, self.two_factor) {
            (Some(auth), true) => format!(" (backend {})", auth.backend.name()),
            _ => String::new(),
        };
        format!(
            "{}: {}/{}, client_cidr {}, local_networks {}, cipher {}, topology {}, compression {}, tls_crypt {}, two_factor {}{backend}",
            self.name,
            self.protocol,
            self.port,
            self.client_cidr,
            networks.join(" "),
            self.cipher,
            self.topology,
            on_off(self.compression),
            on_off(self.tls_crypt),
            on_off(self.two_factor),
        )
    }
}

fn on_off(flag: bool) -> &'static str {
    if flag { "on" } else { "off" }
}

#[cfg(test)]
mod tests;
