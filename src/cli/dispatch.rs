//! Sends an admin request to the running daemon, or carries it out on the files when no
//! daemon listens on the config's admin socket.

use std::path::{Path, PathBuf};

use sslvpn::admin::client::Client;
use sslvpn::admin::files::{ConfigLock, Files};
use sslvpn::admin::{ApiError, Reply, Request};
use sslvpn::config::Config;

use super::load_config;

/// The destination of one CLI command's requests: the daemon, or the files.
pub struct Dispatcher {
    config_path: PathBuf,
    client: Option<Client>,
}

impl Dispatcher {
    /// Loads the config to find `gateway.admin_socket` and connects to the daemon there.
    /// When the file is invalid, a daemon that still runs with the previous version is used
    /// if one listens on the socket the file names.
    pub fn open(config_path: &Path) -> anyhow::Result<Self> {
        let error = match load_config(config_path) {
            Ok(config) => return Self::connect(config_path, &config),
            Err(error) => error,
        };
        let client =
            admin_socket_of(config_path).and_then(|socket| Client::connect(&socket).ok().flatten());
        match client {
            Some(client) => Ok(Self {
                config_path: config_path.to_owned(),
                client: Some(client),
            }),
            None => Err(error),
        }
    }

    /// Connects to the daemon at `config`'s admin socket; `config` was loaded from
    /// `config_path`.
    pub fn connect(config_path: &Path, config: &Config) -> anyhow::Result<Self> {
        let client = Client::connect(&config.gateway.admin_socket).map_err(api_error)?;
        Ok(Self {
            config_path: config_path.to_owned(),
            client,
        })
    }

    /// Sends `request` to the daemon, or, without one, carries it out on the files under the
    /// config lock, which is held for this request only.
    pub fn send(&self, request: &Request) -> anyhow::Result<Reply> {
        match &self.client {
            Some(client) => client.send(request).map_err(api_error),
            None => {
                let lock = ConfigLock::acquire(&self.config_path).map_err(api_error)?;
                Files::new(&self.config_path)
                    .execute(&lock, request)
                    .map(|outcome| outcome.reply)
                    .map_err(api_error)
            }
        }
    }
}

/// Reads `[gateway] admin_socket` from a config file that may break other rules, resolved
/// as [`Config::load`] resolves it.
fn admin_socket_of(config_path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config_path).ok()?;
    let table: toml::Table = text.parse().ok()?;
    let socket = match table
        .get("gateway")
        .and_then(|gateway| gateway.get("admin_socket"))
    {
        Some(toml::Value::String(path)) => PathBuf::from(path),
        Some(_) => return None,
        None => PathBuf::from(sslvpn::config::DEFAULT_ADMIN_SOCKET),
    };
    let folder = config_path.parent().unwrap_or(Path::new("."));
    Some(folder.join(socket))
}

/// Converts an API error into one whose message lists the broken config rules too.
pub fn api_error(error: ApiError) -> anyhow::Error {
    if error.violations.is_empty() {
        return anyhow::Error::new(error);
    }
    let lines: Vec<String> = error
        .violations
        .iter()
        .map(|violation| format!("  - {violation}"))
        .collect();
    anyhow::anyhow!("{}:\n{}", error.message, lines.join("\n"))
}

/// Returns the error for a reply of the wrong kind, which only a mismatched daemon sends. It
/// names the kind only, because a profile reply carries a private key.
pub fn unexpected(reply: &Reply) -> anyhow::Error {
    let kind = match reply {
        Reply::Servers { .. } => "servers",
        Reply::Server { .. } => "server",
        Reply::Changed { .. } => "changed",
        Reply::Certs { .. } => "certs",
        Reply::Cert { .. } => "cert",
        Reply::Profile { .. } => "profile",
        Reply::Users { .. } => "users",
        Reply::Sessions { .. } => "sessions",
        Reply::Metrics { .. } => "metrics",
        Reply::Done => "done",
    };
    anyhow::anyhow!("the daemon sent an unexpected reply of kind {kind:?}")
}
