//! The running gateway: its SSL server tasks, the admin requests that change them, the
//! reload that applies an edited config file, and the start retries of servers that failed
//! to start, at the daemon's start or after a change.
//!
//! The gateway is the only writer of the config file and the PKI while it runs. Every change
//! goes through [`Files`], which validates it and writes the files, and then through
//! [`RunningGateway::apply`], which brings the running servers in line with the new config.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::admin::files::{self, ConfigLock, Files};
use crate::admin::{ApiError, ErrorKind, Reply, Request, ServerFields, ServerView};
use crate::config::{Config, Gateway, Protocol, SslServer};

use super::addresses::AddressPool;
use super::admission::Admission;
use super::coalesce;
use super::error::ServeError;
use super::retry::{self, StartRetries};
use super::server::{Control, Server, ServerMetrics};
use super::sticky::StickyAddresses;
use super::tun;

/// Control requests queued for one server task.
const CONTROL_QUEUE: usize = 16;
/// Time a server task has to reply to a control request.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a stopped server's runtime waits for its blocking tasks (password checks).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// One running SSL server, on a thread of its own.
struct Handle {
    stop: watch::Sender<bool>,
    control: mpsc::Sender<Control>,
    /// The server's result, sent when its thread has closed every socket and device.
    done: oneshot::Receiver<Result<(), ServeError>>,
}

/// The settings and channels that one SSL server's thread starts and runs the server with.
///
/// Each SSL server runs on its own thread with a single-threaded runtime, so its sockets,
/// its TUN device and its task are served by one thread, and a packet does not wait for
/// another thread to wake up. Several SSL servers use several cores.
struct ServerThread {
    gateway: Gateway,
    config: SslServer,
    admission: Admission,
    pool: Box<dyn AddressPool>,
    stop: watch::Receiver<bool>,
    control: mpsc::Receiver<Control>,
    failures: mpsc::UnboundedSender<Failure>,
}

impl ServerThread {
    /// Starts the server and reports the outcome on `started`, serves until asked to stop,
    /// and sends the result on `done` once the runtime has ended the server's tasks.
    fn run(
        self,
        started: oneshot::Sender<Result<(), ServeError>>,
        done: oneshot::Sender<Result<(), ServeError>>,
    ) {
        let Self {
            gateway,
            config,
            admission,
            pool,
            stop,
            control,
            failures,
        } = self;

        coalesce::set_timer_slack();
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = started.send(Err(ServeError::Runtime(error)));
                return;
            }
        };

        let name = config.name.clone();
        let stopped = stop.clone();
        // A panic before this turns true reaches `start_server` through the dropped `started`.
        let running = &Cell::new(false);
        let served = panic::catch_unwind(AssertUnwindSafe(|| {
            runtime.block_on(async move {
                let server = match Server::start(&gateway, &config, admission, pool).await {
                    Ok(server) => server,
                    Err(error) => {
                        let _ = started.send(Err(error));
                        return None;
                    }
                };
                let _ = started.send(Ok(()));
                running.set(true);
                Some(server.run(stop, control).await)
            })
        }));

        // Ends the write tasks of TCP connections and waits a moment for password checks.
        runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
        let result = match served {
            Ok(Some(result)) => result,
            Ok(None) => return,
            Err(_) if !running.get() => return,
            Err(_) => Err(ServeError::Task(format!(
                "SSL server {name:?} panicked; the log shows where"
            ))),
        };

        if *stopped.borrow() {
            let _ = done.send(result);
            return;
        }
        let error = match result {
            Ok(()) => ServeError::Task(format!("SSL server {name:?} stopped by itself")),
            Err(error) => error,
        };
        let _ = failures.send(Failure {
            server: name,
            error,
        });
        let _ = done.send(Ok(()));
    }
}

/// An SSL server task that ended without being asked to.
pub(super) struct Failure {
    pub(super) server: String,
    pub(super) error: ServeError,
}

pub(super) struct RunningGateway {
    config: Config,
    config_path: PathBuf,
    files: Files,
    /// Held for the life of the daemon, so the CLI edits no file behind its back.
    lock: ConfigLock,
    admission: Admission,
    servers: HashMap<String, Handle>,
    /// Servers of `config` that are not in `servers` because their start failed.
    retries: StartRetries,
    failures: mpsc::UnboundedSender<Failure>,
    /// The address each client had, kept while its server restarts.
    sticky: StickyAddresses,
}

impl RunningGateway {
    /// Starts every SSL server of `config`. A server that cannot start gets a start retry, as
    /// after a change, and the others serve meanwhile, even when no server starts. Fails only
    /// when a TUN device cannot be created for lack of CAP_NET_ADMIN, which no retry and no
    /// change through the admin API can fix.
    pub(super) async fn start(
        config: Config,
        config_path: &Path,
        lock: ConfigLock,
        failures: mpsc::UnboundedSender<Failure>,
    ) -> Result<Self, ServeError> {
        let admission = Admission::new(config.gateway.max_connections);
        let mut gateway = Self {
            files: Files::for_daemon(config_path),
            config_path: config_path.to_owned(),
            lock,
            admission,
            servers: HashMap::new(),
            retries: StartRetries::default(),
            failures,
            sticky: StickyAddresses::default(),
            config: config.clone(),
        };
        for server in &config.ssl_servers {
            match gateway.start_server(server).await {
                Ok(()) => {}
                Err(error) if error.lacks_privilege() => {
                    gateway.stop_all().await;
                    return Err(error);
                }
                Err(error) => gateway.schedule_retry(&server.name, &error),
            }
        }
        Ok(gateway)
    }

    /// Returns the number of servers that wait for a start retry.
    pub(super) fn waiting_servers(&self) -> usize {
        self.retries.len()
    }

    pub(super) fn config(&self) -> &Config {
        &self.config
    }

    pub(super) fn max_connections(&self) -> u32 {
        self.admission.max()
    }

    /// Returns when the next start retry is due.
    pub(super) fn next_retry(&self) -> Option<Instant> {
        self.retries.next_due()
    }

    /// Tries again to start each server whose retry is due, and schedules another retry for
    /// each one that fails again.
    pub(super) async fn retry_starts(&mut self) {
        for name in self.retries.due(Instant::now()) {
            let Some(server) = self.config.server(&name).cloned() else {
                self.retries.cancel(&name);
                continue;
            };
            match self.start_server(&server).await {
                Ok(()) => {
                    let failures = self.retries.cancel(&name).map_or(0, |retry| retry.failures);
                    info!(server = %name, "SSL server started after {failures} failed attempt(s)");
                }
                Err(error) => {
                    let retry = self.retries.record_failure(&name, Instant::now());
                    warn!(
                        server = %name,
                        %error,
                        failures = retry.failures,
                        "SSL server still cannot start; next attempt in {} s",
                        retry.delay.as_secs()
                    );
                }
            }
        }
    }

    /// Stops every server: their clients are told to reconnect and their TUN devices removed.
    pub(super) async fn stop_all(&mut self) -> Option<ServeError> {
        let names: Vec<String> = self.servers.keys().cloned().collect();
        let mut first = None;
        for name in names {
            if let Err(error) = self.stop_server(&name).await {
                error!(%error, "SSL server failed");
                first.get_or_insert(error);
            }
        }
        first
    }

    async fn start_server(&mut self, config: &SslServer) -> Result<(), ServeError> {
        let pki_dir = self.config.gateway.pki_dir.clone();
        let pool = self.sticky.open_pool(&pki_dir, config);
        let (stop, stop_rx) = watch::channel(false);
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (started_tx, started) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let thread = ServerThread {
            gateway: self.config.gateway.clone(),
            config: config.clone(),
            admission: self.admission.clone(),
            pool: Box::new(pool.clone()),
            stop: stop_rx,
            control: control_rx,
            failures: self.failures.clone(),
        };
        std::thread::Builder::new()
            .name(tun::device_name(&config.name))
            .spawn(move || thread.run(started_tx, done_tx))
            .map_err(ServeError::Runtime)?;
        match started.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                return Err(ServeError::Task(format!(
                    "SSL server {:?} panicked while starting",
                    config.name
                )));
            }
        }
        self.sticky.started(&pki_dir, &config.name, pool);
        let handle = Handle {
            stop,
            control,
            done,
        };
        self.servers.insert(config.name.clone(), handle);
        Ok(())
    }

    async fn stop_server(&mut self, name: &str) -> Result<(), ServeError> {
        let Some(handle) = self.servers.remove(name) else {
            return Ok(());
        };
        let _ = handle.stop.send(true);
        let result = match handle.done.await {
            Ok(result) => result,
            Err(_) => Err(ServeError::Task(format!(
                "SSL server {name:?} panicked; the log shows where"
            ))),
        };
        tokio::task::block_in_place(|| self.sticky.stopped(name));
        result
    }

    /// Writes the sticky address file of every server whose entries changed since the last
    /// write.
    pub(super) fn save_sticky_addresses(&mut self) {
        tokio::task::block_in_place(|| self.sticky.save_changed());
    }

    /// Brings the running servers in line with `new`. A server whose sessions must end is
    /// restarted, so its listener moves with it. A cipher change reaches new sessions only,
    /// and servers without a change are not touched. A server that cannot start gets a start
    /// retry, and the error names it.
    async fn apply(&mut self, new: Config) -> Result<(), ApiError> {
        let old = std::mem::replace(&mut self.config, new.clone());
        let gateway_changed = old.gateway != new.gateway;
        for server in &old.ssl_servers {
            if new.server(&server.name).is_none() {
                info!(server = %server.name, "SSL server deleted: stopping it");
                self.retries.cancel(&server.name);
                self.sticky.forget(&server.name);
                if let Err(error) = self.stop_server(&server.name).await {
                    warn!(server = %server.name, %error, "SSL server failed while stopping");
                }
            }
        }
        let mut failed = Vec::new();
        for server in &new.ssl_servers {
            let restart = match old.server(&server.name) {
                None => {
                    info!(server = %server.name, "SSL server created: starting it");
                    false
                }
                Some(previous) if previous == server => continue,
                Some(previous) => {
                    let diff = files::diff(previous, server);
                    // The identity backend is built when a server starts.
                    let restart = diff.drop_sessions || diff.changed_fields.contains(&"auth");
                    // A server waiting for a start retry starts now with its new settings.
                    if self.retries.cancel(&server.name).is_some() {
                        info!(server = %server.name, fields = ?diff.changed_fields, "SSL server changed while not running: starting it");
                        false
                    } else if !restart {
                        info!(server = %server.name, fields = ?diff.changed_fields, "SSL server changed; new sessions use the new settings");
                        if let Some(handle) = self.servers.get(&server.name) {
                            let _ = handle
                                .control
                                .send(Control::Reconfigure(server.clone()))
                                .await;
                        }
                        continue;
                    } else {
                        info!(server = %server.name, fields = ?diff.changed_fields, "SSL server changed: restarting it, its clients reconnect");
                        true
                    }
                }
            };
            if restart && let Err(error) = self.stop_server(&server.name).await {
                warn!(server = %server.name, %error, "SSL server failed while stopping");
            }
            if let Err(error) = self.start_or_retry(server).await {
                failed.push(format!(
                    "{error}; the change is saved, and the daemon tries again to start \
                     SSL server {:?} in {} s",
                    server.name,
                    retry::FIRST_DELAY.as_secs()
                ));
            }
        }
        if gateway_changed {
            warn!(
                "[gateway] changed; listen_address, max_connections, pki_dir, \
                 receive_coalescing_us and the admin settings take effect when sslvpn serve \
                 restarts"
            );
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(ApiError::internal(failed.join("; ")))
        }
    }

    /// Starts `server`. When that fails, the server stays stopped until a start retry
    /// succeeds or its settings change again.
    async fn start_or_retry(&mut self, server: &SslServer) -> Result<(), ServeError> {
        let result = self.start_server(server).await;
        if let Err(error) = &result {
            self.schedule_retry(&server.name, error);
        }
        result
    }

    /// Records the failed start of server `name` and logs the error with the time of the
    /// next attempt. The error names the server and the fix.
    fn schedule_retry(&mut self, name: &str, error: &ServeError) {
        let retry = self.retries.record_failure(name, Instant::now());
        error!(
            server = %name,
            %error,
            "SSL server could not start; next attempt in {} s",
            retry.delay.as_secs()
        );
    }

    /// Rereads the config file and applies the difference; a file that fails validation
    /// leaves the running configuration in place.
    pub(super) async fn reload(&mut self) {
        let new = match Config::load(&self.config_path) {
            Ok(loaded) => loaded.config,
            Err(error) => {
                error!(%error, "SIGHUP: the config file is invalid; the running configuration stays");
                return;
            }
        };
        if new == self.config {
            info!("SIGHUP: the config file is unchanged");
            return;
        }
        if let Err(error) = check_device_names(&new) {
            error!(%error, "SIGHUP: the running configuration stays");
            return;
        }
        let reports = match tokio::task::block_in_place(|| {
            files::apply_pki_effects(&self.config, &new)
        }) {
            Ok(reports) => reports,
            Err(error) => {
                error!(%error, "SIGHUP: the PKI could not follow the config file; the running configuration stays");
                return;
            }
        };
        for report in &reports {
            info!(server = %report.server, action = %report.action, "SIGHUP: {}", report.message);
        }
        if let Err(error) = self.apply(new).await {
            error!(%error, "SIGHUP: not every change could be applied");
        }
        info!("SIGHUP: configuration reloaded");
    }

    /// Carries out one admin request.
    pub(super) async fn handle(&mut self, request: Request) -> Result<Reply, ApiError> {
        match &request {
            Request::ListSessions { server } => {
                if let Some(name) = server {
                    self.check_exists(name)?;
                }
                let mut sessions = Vec::new();
                for (name, handle) in &self.servers {
                    if server.as_ref().is_some_and(|wanted| wanted != name) {
                        continue;
                    }
                    let (reply, answer) = oneshot::channel();
                    if let Some(views) = ask(handle, Control::Sessions(reply), answer).await {
                        sessions.extend(views);
                    }
                }
                sessions.sort_by_key(|session| session.id);
                Ok(Reply::Sessions { sessions })
            }
            Request::KillSession { id } => {
                for handle in self.servers.values() {
                    let (reply, answer) = oneshot::channel();
                    let control = Control::Kill { id: *id, reply };
                    if ask(handle, control, answer).await == Some(true) {
                        return Ok(Reply::Done);
                    }
                }
                Err(ApiError::not_found(format!(
                    "no session has id {id}; list them with `sslvpn session list`"
                )))
            }
            Request::Metrics => Ok(Reply::Metrics {
                text: self.metrics().await,
            }),
            Request::CreateServer { server, fields } => {
                // A taken name is reported by the files' own check.
                if let Some(other) = device_owner(&self.config.ssl_servers, server) {
                    return Err(ApiError::new(
                        ErrorKind::Conflict,
                        format!(
                            "SSL server {server:?} would need TUN device {}, which SSL server \
                             {:?} has; choose a name that differs in its first characters",
                            tun::device_name(server),
                            other.name
                        ),
                    ));
                }
                let defaults = ServerFields::default();
                self.check_listener(server, fields, &defaults)?;
                self.change(&request).await
            }
            Request::ModifyServer { server, fields } => {
                let current = self.config.server(server).cloned();
                if let Some(current) = current {
                    let present = ServerFields {
                        protocol: Some(current.protocol.name().to_owned()),
                        port: Some(current.port),
                        ..ServerFields::default()
                    };
                    self.check_listener(server, fields, &present)?;
                }
                self.change(&request).await
            }
            Request::DeleteServer { .. } => self.change(&request).await,
            Request::DeleteCert { server, .. }
            | Request::AddUser { server, .. }
            | Request::SetPassword { server, .. }
            | Request::DeleteUser { server, .. } => {
                let outcome = self.execute(&request)?;
                // The server drops a revoked certificate's or a deleted user's session now
                // rather than at its next poll.
                if let Some(handle) = self.servers.get(server) {
                    let _ = handle.control.send(Control::Reload).await;
                }
                Ok(outcome.reply)
            }
            Request::ListServers | Request::ShowServer { .. } => {
                let mut reply = self.execute(&request)?.reply;
                match &mut reply {
                    Reply::Servers { servers } => {
                        for view in servers {
                            self.count_sessions(view).await;
                        }
                    }
                    Reply::Server { server } => self.count_sessions(server).await,
                    _ => {}
                }
                Ok(reply)
            }
            _ => Ok(self.execute(&request)?.reply),
        }
    }

    fn execute(&self, request: &Request) -> Result<files::Outcome, ApiError> {
        tokio::task::block_in_place(|| self.files.execute(&self.lock, request))
    }

    /// Carries out a create, modify or delete on the files, then on the running servers.
    async fn change(&mut self, request: &Request) -> Result<Reply, ApiError> {
        let outcome = self.execute(request)?;
        if let Some(config) = outcome.config {
            self.apply(config).await?;
        }
        Ok(outcome.reply)
    }

    /// Fails when the config has no server named `name`. A server waiting for a start
    /// retry exists, but has no sessions.
    fn check_exists(&self, name: &str) -> Result<(), ApiError> {
        match self.config.server(name) {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found(format!(
                "no SSL server is named {name:?}; list them with `sslvpn server list`"
            ))),
        }
    }

    async fn count_sessions(&self, view: &mut ServerView) {
        view.running = Some(self.servers.contains_key(&view.name));
        view.retry_in_seconds = self
            .retries
            .get(&view.name)
            .map(|retry| seconds_until(retry.due));
        if let Some(handle) = self.servers.get(&view.name) {
            let (reply, answer) = oneshot::channel();
            if let Some(metrics) = ask(handle, Control::Metrics(reply), answer).await {
                view.sessions = Some(metrics.sessions);
            }
        }
    }

    /// Refuses a create or modify whose new listener cannot bind, before any file changes.
    /// `current` contains the protocol and port the server listens on now, if it exists.
    fn check_listener(
        &self,
        server: &str,
        fields: &ServerFields,
        current: &ServerFields,
    ) -> Result<(), ApiError> {
        if fields.protocol.is_none() && fields.port.is_none() && current.port.is_some() {
            return Ok(());
        }
        let protocol = fields
            .protocol
            .as_deref()
            .or(current.protocol.as_deref())
            .and_then(Protocol::from_name)
            .unwrap_or(Protocol::Tcp);
        let port = fields
            .port
            .or(current.port)
            .unwrap_or(crate::config::DEFAULT_PORT);
        let unchanged =
            current.port == Some(port) && current.protocol.as_deref() == Some(protocol.name());
        if unchanged || port == 0 {
            return Ok(());
        }
        // Another SSL server of this gateway on the same listener is a rule violation, which
        // the config rules report with their own message.
        let taken_here =
            self.config.ssl_servers.iter().any(|other| {
                other.name != server && other.port == port && other.protocol == protocol
            });
        if taken_here {
            return Ok(());
        }
        let address = SocketAddr::new(self.config.gateway.listen_address, port);
        let bound = match protocol {
            Protocol::Tcp => std::net::TcpListener::bind(address).map(drop),
            Protocol::Udp => std::net::UdpSocket::bind(address).map(drop),
        };
        bound.map_err(|error| {
            ApiError::new(
                ErrorKind::Conflict,
                format!(
                    "SSL server {server:?}: cannot listen on {protocol} {address}: {error}; {}; \
                     nothing was changed",
                    super::error::bind_fix(&error)
                ),
            )
        })
    }

    async fn metrics(&self) -> String {
        let mut servers: Vec<(&String, ServerMetrics)> = Vec::new();
        for (name, handle) in &self.servers {
            let (reply, answer) = oneshot::channel();
            if let Some(metrics) = ask(handle, Control::Metrics(reply), answer).await {
                servers.push((name, metrics));
            }
        }
        servers.sort_by(|a, b| a.0.cmp(b.0));
        render_metrics(&servers)
    }
}

/// Returns the whole seconds from now until `deadline`, rounded up, or 0 when it has passed.
fn seconds_until(deadline: Instant) -> u64 {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let millis = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
    millis.div_ceil(1000)
}

/// Sends `control` to a server task and waits for its reply.
async fn ask<T>(handle: &Handle, control: Control, answer: oneshot::Receiver<T>) -> Option<T> {
    handle.control.send(control).await.ok()?;
    tokio::time::timeout(CONTROL_TIMEOUT, answer)
        .await
        .ok()?
        .ok()
}

/// Writes the metrics of every server in the Prometheus text format.
fn render_metrics(servers: &[(&String, ServerMetrics)]) -> String {
    let mut text = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, values: &mut dyn Iterator<Item = (String, u64)>| {
            let _ = writeln!(text, "# HELP {name} {help}");
            let _ = writeln!(text, "# TYPE {name} {kind}");
            for (labels, value) in values {
                let _ = writeln!(text, "{name}{{{labels}}} {value}");
            }
        };
    let server = |name: &str| format!("server=\"{}\"", escape_label(name));
    family(
        "sslvpn_sessions",
        "gauge",
        "Clients connected to the SSL server.",
        &mut servers
            .iter()
            .map(|(name, m)| (server(name), m.sessions as u64)),
    );
    family(
        "sslvpn_handshakes_in_progress",
        "gauge",
        "Sessions still in their handshake or password check.",
        &mut servers
            .iter()
            .map(|(name, m)| (server(name), m.handshaking as u64)),
    );
    family(
        "sslvpn_handshakes_total",
        "counter",
        "Clients that completed their handshake and authentication.",
        &mut servers.iter().map(|(name, m)| (server(name), m.handshakes)),
    );
    family(
        "sslvpn_auth_failures_total",
        "counter",
        "Clients refused at authentication.",
        &mut servers
            .iter()
            .map(|(name, m)| (server(name), m.auth_failures)),
    );
    family(
        "sslvpn_tunnel_bytes_total",
        "counter",
        "Bytes of tunnel packets: in from clients, out to clients.",
        &mut servers.iter().flat_map(|(name, m)| {
            [
                (
                    format!("{},direction=\"in\"", server(name)),
                    m.traffic.bytes_in,
                ),
                (
                    format!("{},direction=\"out\"", server(name)),
                    m.traffic.bytes_out,
                ),
            ]
        }),
    );
    family(
        "sslvpn_tunnel_packets_total",
        "counter",
        "Tunnel packets: in from clients, out to clients.",
        &mut servers.iter().flat_map(|(name, m)| {
            [
                (
                    format!("{},direction=\"in\"", server(name)),
                    m.traffic.packets_in,
                ),
                (
                    format!("{},direction=\"out\"", server(name)),
                    m.traffic.packets_out,
                ),
            ]
        }),
    );
    family(
        "sslvpn_packets_dropped_total",
        "counter",
        "Packets dropped, by reason.",
        &mut servers.iter().flat_map(|(name, m)| {
            m.dropped.iter().map(move |(reason, count)| {
                (
                    format!("{},reason=\"{}\"", server(name), escape_label(reason)),
                    *count,
                )
            })
        }),
    );
    family(
        "sslvpn_receive_coalescing_pauses_total",
        "counter",
        "Pauses after a burst of packets from clients (receive_coalescing_us).",
        &mut servers
            .iter()
            .map(|(name, m)| (server(name), m.coalescing_pauses)),
    );
    text
}

/// Escapes a Prometheus label value.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Fails when two SSL servers would get the same TUN device name.
pub(super) fn check_device_names(config: &Config) -> Result<(), ServeError> {
    for (index, server) in config.ssl_servers.iter().enumerate() {
        if let Some(first) = device_owner(&config.ssl_servers[..index], &server.name) {
            return Err(ServeError::DeviceNameClash {
                first: first.name.clone(),
                second: server.name.clone(),
                device: tun::device_name(&server.name),
            });
        }
    }
    Ok(())
}

/// Returns the server of `servers`, other than one named `name`, whose TUN device would have
/// the name that a server named `name` needs.
fn device_owner<'a>(servers: &'a [SslServer], name: &str) -> Option<&'a SslServer> {
    let device = tun::device_name(name);
    servers
        .iter()
        .find(|server| server.name != name && tun::device_name(&server.name) == device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_the_text_format() {
        let name = "office".to_owned();
        let metrics = ServerMetrics {
            sessions: 2,
            handshaking: 1,
            handshakes: 5,
            auth_failures: 3,
            traffic: super::super::sessions::Traffic {
                bytes_in: 100,
                bytes_out: 200,
                packets_in: 1,
                packets_out: 2,
            },
            dropped: vec![("replay", 4)],
            coalescing_pauses: 6,
        };
        let text = render_metrics(&[(&name, metrics)]);
        assert!(text.contains("# TYPE sslvpn_sessions gauge\n"), "{text}");
        assert!(
            text.contains("sslvpn_sessions{server=\"office\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("sslvpn_auth_failures_total{server=\"office\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("sslvpn_receive_coalescing_pauses_total{server=\"office\"} 6\n"),
            "{text}"
        );
        assert!(
            text.contains("sslvpn_tunnel_bytes_total{server=\"office\",direction=\"out\"} 200\n"),
            "{text}"
        );
        assert!(
            text.contains("sslvpn_packets_dropped_total{server=\"office\",reason=\"replay\"} 4\n"),
            "{text}"
        );
    }

    #[test]
    fn device_name_clash_is_found() {
        // Long names share a device name when their first bytes and hash digits agree.
        let mut seen = HashMap::new();
        let (first, second) = (0..100_000)
            .map(|number| format!("headquarters-{number}"))
            .find_map(|name| {
                let device = tun::device_name(&name);
                seen.insert(device, name.clone()).map(|first| (first, name))
            })
            .expect("two names with one device name");
        let server = |name: &str, third: u8| {
            format!(
                "[[ssl_server]]\nname = \"{name}\"\nlocal_networks = [\"192.168.77.0/24\"]\n\
                 client_cidr = \"10.8.{third}.0/24\"\nport = {}\n",
                1194 + u16::from(third)
            )
        };
        let text = format!(
            "[gateway]\npublic_address = \"vpn.example.com\"\n{}{}",
            server(&first, 0),
            server(&second, 1)
        );
        let config = Config::from_toml(&text).unwrap().config;

        let owner = device_owner(&config.ssl_servers, &second).map(|server| &server.name);
        assert_eq!(owner, Some(&first));
        let error = check_device_names(&config).unwrap_err();
        assert!(
            matches!(error, ServeError::DeviceNameClash { .. }),
            "{error}"
        );
        assert!(device_owner(&config.ssl_servers[..1], &first).is_none());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
