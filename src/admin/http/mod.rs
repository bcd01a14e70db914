//! The admin API's HTTP server: JSON over HTTP/1.1 on the gateway's unix socket, and on a
//! loopback TCP address with a bearer token when `admin_address` is set.
//!
//! The server only translates: each request becomes a [`Call`] on the channel the daemon
//! passes to [`ApiServer::start`], and the daemon's reply becomes the HTTP response.

mod listen;
mod routes;
mod serve;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::model::{ApiError, Reply, Request};
use crate::config::Gateway;
use listen::SocketFile;

/// One API request for the daemon to carry out.
pub struct Call {
    pub request: Request,
    pub reply: oneshot::Sender<Result<Reply, ApiError>>,
}

impl fmt::Debug for Call {
    /// Prints the operation only, because a request may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("op", &routes::operation_name(&self.request))
            .finish_non_exhaustive()
    }
}

/// Errors that stop the admin API from starting.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    #[error("failed to create the admin socket's folder {path}: {source}")]
    CreateFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another sslvpn daemon serves {path}; stop it first")]
    InUse { path: PathBuf },
    #[error("{path} exists and is not a socket; remove it or set admin_socket to another path")]
    NotASocket { path: PathBuf },
    #[error("failed to inspect the existing admin socket {path}: {source}")]
    Inspect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to remove the stale admin socket {path}: {source}")]
    RemoveStale {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to bind the admin socket {path}: {source}")]
    BindSocket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to bind the admin API to {address}: {source}")]
    BindTcp {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin_address {address} is set without admin_token_file")]
    TokenFileMissing { address: SocketAddr },
    #[error("failed to read the admin token file {path}: {source}")]
    TokenRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the admin token in {path} has {length} characters, fewer than 32; write a longer one, \
         e.g. `openssl rand -hex 32 > {path}`"
    )]
    TokenTooShort { path: PathBuf, length: usize },
    #[error(
        "the admin token file {path} is accessible to group or others (mode {mode:04o}); \
         run `chmod 600 {path}`"
    )]
    TokenPermissions { path: PathBuf, mode: u32 },
}

/// The running admin API. Dropping it or calling [`ApiServer::shutdown`] stops the listeners,
/// drops open connections and removes the socket file.
pub struct ApiServer {
    stop: watch::Sender<()>,
    tasks: Vec<JoinHandle<()>>,
    socket: SocketFile,
    tcp_address: Option<SocketAddr>,
}

/// Connections served at once across both listeners; further clients wait in the backlog.
const MAX_CONNECTIONS: usize = 64;

impl ApiServer {
    /// Binds the unix socket (and the TCP address when configured) and serves until shutdown.
    pub async fn start(
        gateway: &Gateway,
        calls: mpsc::Sender<Call>,
    ) -> Result<Self, ApiStartError> {
        let tcp = match gateway.admin_address {
            Some(address) => {
                let Some(token_path) = &gateway.admin_token_file else {
                    return Err(ApiStartError::TokenFileMissing { address });
                };
                let token = listen::read_token(token_path)?;
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|source| ApiStartError::BindTcp { address, source })?;
                Some((listener, token))
            }
            None => None,
        };
        let (socket, unix_listener) = listen::bind_socket(&gateway.admin_socket).await?;

        let (stop, stopped) = watch::channel(());
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let router = routes::router(calls);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(serve::accept_loop(
            serve::Listener::Unix(unix_listener),
            serve::unix_router(router.clone()),
            limit.clone(),
            stopped.clone(),
        )));
        let mut tcp_address = None;
        if let Some((listener, token)) = tcp {
            tcp_address = listener.local_addr().ok();
            tasks.push(tokio::spawn(serve::accept_loop(
                serve::Listener::Tcp(listener),
                serve::tcp_router(router, token),
                limit,
                stopped,
            )));
        }
        tracing::info!(
            socket = %gateway.admin_socket.display(),
            tcp = ?tcp_address,
            "admin API listening"
        );
        Ok(Self {
            stop,
            tasks,
            socket,
            tcp_address,
        })
    }

    /// Returns the bound TCP address, when `admin_address` is set.
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        self.tcp_address
    }

    /// Stops the listeners, waits for their tasks to end and removes the socket file.
    pub async fn shutdown(self) {
        let Self {
            stop,
            tasks,
            socket,
            tcp_address: _,
        } = self;
        drop(stop);
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "admin API listener task failed");
            }
        }
        drop(socket);
        tracing::info!("admin API stopped");
    }
}

/// Checks the token file of `admin_address` as the daemon will read it at start, so that
/// `sslvpn check` reports a short or readable token before `serve` fails on it.
pub fn check_token_file(path: &std::path::Path) -> Result<(), ApiStartError> {
    listen::read_token(path).map(drop)
}
