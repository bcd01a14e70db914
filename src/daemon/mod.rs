//! The tokio driver behind `sslvpn serve`: a listener, a TUN device and a task per SSL
//! server, the sessions of its clients, timers, CRL reloads and signals.
//!
//! Each SSL server runs in one task that owns all its sessions (`sessions::Sessions`). TCP
//! connections get a task each that splits the stream into packets and passes them on over a
//! bounded channel. Packets from the TUN device go to the session that owns their
//! destination address.

mod addresses;
mod admission;
mod credentials;
mod driven;
mod error;
mod identity;
pub mod pool;
mod server;
mod sessions;
mod tcp;
mod timers;
mod tun;

use std::collections::HashMap;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::Config;

use self::admission::Admission;
use self::server::Server;

pub use self::credentials::CredentialsError;
pub use self::error::ServeError;

/// Runs every SSL server of `config` until SIGTERM or SIGINT, then tells every client to
/// reconnect, removes the TUN devices and returns. Fails when a server cannot start, naming
/// the server and the fix.
pub fn serve(config: &Config) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(run(config))
}

async fn run(config: &Config) -> Result<(), ServeError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(|error| ServeError::Signal {
        signal: "SIGTERM",
        error,
    })?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|error| ServeError::Signal {
        signal: "SIGINT",
        error,
    })?;
    // OpenVPN admins and logrotate send SIGHUP and SIGUSR1/2 routinely; their default action
    // would kill the daemon without telling any client.
    let mut hangup = signal(SignalKind::hangup()).map_err(|error| ServeError::Signal {
        signal: "SIGHUP",
        error,
    })?;
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

    let admission = Admission::new(config.gateway.max_connections);
    let mut servers = Vec::new();
    for ssl_server in &config.ssl_servers {
        servers.push(Server::start(&config.gateway, ssl_server, admission.clone()).await?);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for server in servers {
        tasks.spawn(server.run(stop_rx.clone()));
    }
    info!(
        ssl_servers = config.ssl_servers.len(),
        max_connections = admission.max(),
        "gateway started"
    );

    let mut outcome = loop {
        tokio::select! {
            _ = terminate.recv() => {
                info!("SIGTERM received, stopping");
                break Ok(());
            }
            _ = interrupt.recv() => {
                info!("SIGINT received, stopping");
                break Ok(());
            }
            // TODO: reread the configuration on SIGHUP.
            _ = hangup.recv() => {
                warn!("SIGHUP received; rereading the configuration is not supported yet, so it is ignored");
            }
            _ = user1.recv() => warn!("SIGUSR1 received and ignored"),
            _ = user2.recv() => warn!("SIGUSR2 received and ignored"),
            Some(joined) = tasks.join_next() => break Err(task_failure(joined)),
        }
    };
    let _ = stop_tx.send(true);
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined
            .map_err(|error| ServeError::Task(error.to_string()))
            .and_then(|result| result)
        {
            error!(%error, "SSL server failed");
            if outcome.is_ok() {
                outcome = Err(error);
            }
        }
    }
    info!("gateway stopped");
    outcome
}

/// Turns the end of a server task before the stop signal into an error.
fn task_failure(joined: Result<Result<(), ServeError>, tokio::task::JoinError>) -> ServeError {
    match joined {
        Ok(Ok(())) => ServeError::Task("an SSL server stopped without an error".to_owned()),
        Ok(Err(error)) => error,
        Err(error) => ServeError::Task(error.to_string()),
    }
}

/// Fails when two SSL servers would get the same TUN device name.
fn check_device_names(config: &Config) -> Result<(), ServeError> {
    let mut owners: HashMap<String, &str> = HashMap::new();
    for server in &config.ssl_servers {
        let device = tun::device_name(&server.name);
        if let Some(first) = owners.insert(device.clone(), &server.name) {
            return Err(ServeError::DeviceNameClash {
                first: first.to_owned(),
                second: server.name.clone(),
                device,
            });
        }
    }
    Ok(())
}
