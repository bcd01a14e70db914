//! Carries out admin requests on the files: the config file, the PKI folders and the users
//! files. The CLI uses it when no daemon runs. The daemon uses it for every change, and keeps
//! the [`ConfigLock`] for its whole run.

mod certs;
mod diff;
mod document;
mod lock;
mod servers;
mod users;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::admin::model::{ApiError, ErrorKind, Reply, Request};
use crate::config::{Config, ConfigError, SslServer};
use crate::pki::PkiError;

pub use diff::{ServerDiff, apply_pki_effects, diff};
pub use lock::{ConfigLock, LOCK_WAIT, lock_path};
pub use users::{MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, check_new_password};

/// The files of one gateway, named by its config file.
#[derive(Clone, Debug)]
pub struct Files {
    config_path: PathBuf,
    /// Whether a running daemon applies each change to its servers at once. Without one,
    /// a change report states that the change takes effect when `sslvpn serve` starts.
    daemon_applies: bool,
}

/// The result of a request carried out on the files.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub reply: Reply,
    /// The config after a server create, modify or delete that changed it; `None` otherwise,
    /// including a modify that changed nothing.
    pub config: Option<Config>,
}

impl Outcome {
    fn reply(reply: Reply) -> Self {
        Self {
            reply,
            config: None,
        }
    }
}

impl Files {
    /// Opens the files for a process that changes them while no daemon runs, such as the
    /// CLI.
    pub fn new(config_path: &Path) -> Self {
        Self {
            config_path: config_path.to_owned(),
            daemon_applies: false,
        }
    }

    /// Opens the files for the daemon, which applies each change to its running servers.
    pub fn for_daemon(config_path: &Path) -> Self {
        Self {
            config_path: config_path.to_owned(),
            daemon_applies: true,
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Carries out `request` on the files. `lock` proves that this process is their only
    /// writer. Requests about sessions and metrics fail with [`ErrorKind::Unavailable`],
    /// because only the running daemon has them.
    pub fn execute(&self, lock: &ConfigLock, request: &Request) -> Result<Outcome, ApiError> {
        debug_assert_eq!(lock.path(), lock_path(&self.config_path));
        match request {
            Request::ListServers => {
                let config = self.load()?;
                let servers = config.ssl_servers.iter().map(Into::into).collect();
                Ok(Outcome::reply(Reply::Servers { servers }))
            }
            Request::ShowServer { server } => {
                let config = self.load()?;
                let server = self.find_server(&config, server)?.into();
                Ok(Outcome::reply(Reply::Server { server }))
            }
            Request::CreateServer { server, fields } => self.create_server(server, fields),
            Request::ModifyServer { server, fields } => self.modify_server(server, fields),
            Request::DeleteServer { server } => self.delete_server(server),
            Request::ListCerts { server } => self.list_certs(server).map(Outcome::reply),
            Request::CreateCert { server, name, days } => {
                self.create_cert(server, name, *days).map(Outcome::reply)
            }
            Request::ExportCert {
                server,
                name,
                format,
            } => self.export_cert(server, name, *format).map(Outcome::reply),
            Request::DeleteCert { server, name } => {
                self.delete_cert(server, name).map(Outcome::reply)
            }
            Request::ListUsers { server } => self.list_users(server).map(Outcome::reply),
            Request::AddUser {
                server,
                name,
                password,
            } => self.add_user(server, name, password).map(Outcome::reply),
            Request::SetPassword {
                server,
                name,
                password,
            } => self
                .set_password(server, name, password)
                .map(Outcome::reply),
            Request::DeleteUser { server, name } => {
                self.delete_user(server, name).map(Outcome::reply)
            }
            Request::ListSessions { .. } | Request::KillSession { .. } | Request::Metrics => {
                Err(ApiError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "the daemon is not running; start it with `sslvpn serve --config {}`",
                        self.config_path.display()
                    ),
                ))
            }
        }
    }

    /// Loads and checks the config file as it is now.
    fn load(&self) -> Result<Config, ApiError> {
        Config::load(&self.config_path)
            .map(|loaded| loaded.config)
            .map_err(config_error)
    }

    fn find_server<'a>(&self, config: &'a Config, name: &str) -> Result<&'a SslServer, ApiError> {
        config
            .server(name)
            .ok_or_else(|| unknown_server(&self.config_path, config, name))
    }
}

/// Builds the error for a server name that `config` lacks, listing the configured ones.
fn unknown_server(path: &Path, config: &Config, name: &str) -> ApiError {
    let names: Vec<&str> = config
        .ssl_servers
        .iter()
        .map(|server| server.name.as_str())
        .collect();
    ApiError::not_found(format!(
        "{} has no SSL server named {name:?}; configured servers: {} (see `sslvpn server list`)",
        path.display(),
        names.join(", ")
    ))
}

/// Maps a failure to load the config file as it is now.
fn config_error(error: ConfigError) -> ApiError {
    match error {
        ConfigError::Read { .. } => ApiError::internal(format!("{error}: {}", io_cause(&error))),
        ConfigError::Syntax { .. } => ApiError::invalid(error.to_string()),
        ConfigError::Invalid {
            ref path,
            ref violations,
        } => ApiError {
            status: ErrorKind::Invalid,
            message: format!(
                "{} has {} invalid setting(s); fix the file first",
                path.display(),
                violations.len()
            ),
            violations: violations.iter().map(ToString::to_string).collect(),
        },
    }
}

fn io_cause(error: &ConfigError) -> String {
    match error {
        ConfigError::Read { source, .. } => source.to_string(),
        _ => String::new(),
    }
}

/// Maps a PKI error to the API's error kinds.
fn pki_error(error: PkiError) -> ApiError {
    let status = match &error {
        PkiError::NotFound { .. } | PkiError::NotCreated { .. } => ErrorKind::NotFound,
        PkiError::DuplicateName { .. }
        | PkiError::Revoked { .. }
        | PkiError::AlreadyRevoked { .. }
        | PkiError::Expired { .. }
        | PkiError::OutputExists { .. } => ErrorKind::Conflict,
        PkiError::InvalidServerName { .. }
        | PkiError::InvalidCertName { .. }
        | PkiError::InvalidDays { .. }
        | PkiError::InvalidSerial { .. } => ErrorKind::Invalid,
        _ => ErrorKind::Internal,
    };
    let mut message = error.to_string();
    if let PkiError::NotFound { server, .. } = &error {
        message.push_str(&format!(
            "; list them with `sslvpn cert list --server {server}`"
        ));
    }
    ApiError::new(status, message)
}
