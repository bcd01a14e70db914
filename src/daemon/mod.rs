//! The tokio driver behind `sslvpn serve`: a listener, a TUN device and a task per SSL
//! server, the sessions of its clients, timers, CRL reloads and signals.
//!
//! Each SSL server runs in one task that owns all its sessions (`sessions::Sessions`) and
//! reads its TCP connections. Each TCP connection has a task that writes its queued packets.
//! Packets from the TUN device go to the session that owns their destination address.

mod addresses;
mod admission;
mod coalesce;
mod credentials;
mod driven;
mod error;
mod gateway;
mod identity;
mod netlink;
pub mod pool;
mod retry;
mod server;
mod sessions;
mod sticky;
mod tcp;
mod timers;
mod tun;
mod tun_batch;
mod udp;

use std::path::Path;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::admin::ErrorKind;
use crate::admin::files::ConfigLock;
use crate::admin::http::{ApiServer, Call};
use crate::config::Config;

use self::gateway::{Failure, RunningGateway, check_device_names};

pub use self::credentials::CredentialsError;
pub use self::error::ServeError;

/// Admin requests waiting for the gateway.
const CALL_QUEUE: usize = 64;

/// Runs every SSL server of `config`, loaded from `config_path`, until SIGTERM or SIGINT,
/// then tells every client to reconnect, removes the TUN devices and returns. Serves the
/// admin API meanwhile and applies the config file again on SIGHUP. A server that cannot
/// start is retried with a backoff while the others serve. Fails at startup when the process
/// lacks CAP_NET_ADMIN for TUN devices, when two servers need the same device name, when
/// another daemon holds the config file's lock or when the admin API cannot start.
pub fn serve(config_path: &Path, config: &Config) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(run(config_path, config))
}

async fn run(config_path: &Path, config: &Config) -> Result<(), ServeError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(|error| ServeError::Signal {
        signal: "SIGTERM",
        error,
    })?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|error| ServeError::Signal {
        signal: "SIGINT",
        error,
    })?;
    let mut hangup = signal(SignalKind::hangup()).map_err(|error| ServeError::Signal {
        signal: "SIGHUP",
        error,
    })?;
    // Admins used to OpenVPN and logrotate send SIGUSR1 and SIGUSR2. Their default action
    // would kill the daemon without telling any client.
    let mut user1 = signal(SignalKind::user_defined1()).map_err(|error| ServeError::Signal {
        signal: "SIGUSR1",
        error,
    })?;
    let mut user2 = signal(SignalKind::user_defined2()).map_err(|error| ServeError::Signal {
        signal: "SIGUSR2",
        error,
    })?;
    check_device_names(config)?;
    if tun::ipv4_forwarding() == Some(false) {
        error!(
            "IPv4 forwarding is off, so clients cannot reach local_networks; turn it on with \
             `sysctl -w net.ipv4.ip_forward=1` and set net.ipv4.ip_forward = 1 in \
             /etc/sysctl.conf to keep it after a reboot"
        );
    }
    // A CLI command that edits the files without a daemon keeps the lock for a moment, so
    // this waits for it. Another daemon keeps it for good, and then this fails.
    let lock = match tokio::task::block_in_place(|| ConfigLock::acquire(config_path)) {
        Ok(lock) => lock,
        Err(error) if error.status == ErrorKind::Conflict => {
            return Err(ServeError::Locked {
                path: config_path.to_owned(),
            });
        }
        Err(error) => return Err(ServeError::Admin(error.to_string())),
    };

    let (failures_tx, mut failures) = mpsc::unbounded_channel::<Failure>();
    let mut gateway = RunningGateway::start(config.clone(), config_path, lock, failures_tx).await?;
    let (calls_tx, mut calls) = mpsc::channel::<Call>(CALL_QUEUE);
    let api = match ApiServer::start(&config.gateway, calls_tx).await {
        Ok(api) => api,
        Err(error) => {
            gateway.stop_all().await;
            return Err(ServeError::Admin(error.to_string()));
        }
    };
    let ssl_servers = gateway.config().ssl_servers.len();
    let waiting = gateway.waiting_servers();
    info!(
        ssl_servers,
        running = ssl_servers - waiting,
        max_connections = gateway.max_connections(),
        admin_socket = %config.gateway.admin_socket.display(),
        "gateway started"
    );
    if waiting > 0 {
        warn!(
            "{waiting} of {ssl_servers} SSL server(s) could not start and are retried; the \
             errors above name the fix. `sslvpn server list` shows them, and a change to such \
             a server (`sslvpn server modify`, or the config file and SIGHUP) starts it at once"
        );
    }

    let mut sticky_saves = tokio::time::interval(sticky::SAVE_INTERVAL);
    sticky_saves.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        let retry_due = gateway.next_retry();
        tokio::select! {
            _ = terminate.recv() => {
                info!("SIGTERM received, stopping");
                break Ok(());
            }
            _ = interrupt.recv() => {
                info!("SIGINT received, stopping");
                break Ok(());
            }
            _ = hangup.recv() => {
                info!("SIGHUP received, rereading the config file");
                gateway.reload().await;
            }
            _ = sticky_saves.tick() => gateway.save_sticky_addresses(),
            _ = user1.recv() => warn!("SIGUSR1 received and ignored"),
            _ = user2.recv() => warn!("SIGUSR2 received and ignored"),
            Some(call) = calls.recv() => {
                let answer = gateway.handle(call.request).await;
                let _ = call.reply.send(answer);
            }
            () = sleep_until(retry_due) => gateway.retry_starts().await,
            Some(Failure { server, error }) = failures.recv() => {
                error!(%server, %error, "SSL server failed");
                break Err(error);
            }
        }
    };
    api.shutdown().await;
    let stopped = gateway.stop_all().await;
    info!("gateway stopped");
    match (outcome, stopped) {
        (Err(error), _) | (Ok(()), Some(error)) => Err(error),
        (Ok(()), None) => Ok(()),
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
