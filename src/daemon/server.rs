//! One SSL server: its listener, TUN device and sessions, driven by one task.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, warn};
use tun_rs::AsyncDevice;

use crate::auth::{Backend, LocalUsers};
use crate::config::{Gateway, Protocol, SslServer};
use crate::proto::cookie::CookieKey;
use crate::proto::session::{DEFAULT_TLS_MTU, Session, SessionConfig};
use crate::proto::wrap::WrapConfig;

use super::addresses::{AddressPool, server_address};
use super::admission::Admission;
use super::coalesce::Coalescing;
use super::credentials::{self, CrlWatch};
use super::error::{ServeError, bind_fix, device_fix};
use super::identity::{self, UsersWatch};
use super::sessions::{CheckResult, ConnId, Io, Link, MAX_HANDSHAKING, Sessions, Traffic};
use super::tcp::{self, Connection, ReadEvent, Readable, Reader};
use super::tun;
use super::tun_batch::{self, TunReceive, TunSendBatch};
use super::udp::{RECEIVE_SLOTS, ReceiveBatch, SendBatch, UdpListener};

/// Data-channel ciphers offered to clients that negotiate (OpenVPN 2.5 and later), best
/// first; the configured fallback cipher follows them.
const DATA_CIPHERS: [&str; 3] = ["AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"];
/// `keepalive 10 60`, as OpenVPN's sample server configuration uses.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// OpenVPN's defaults for `hand-window` and `reneg-sec`.
const HAND_WINDOW: Duration = Duration::from_secs(60);
const RENEG_INTERVAL: Duration = Duration::from_secs(3600);
/// How often the CRL file's modification time is checked.
const CRL_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Ends of TCP connections, reported by their write tasks, waiting for the SSL server's task.
const CLOSED_QUEUE: usize = 1024;
/// Reads of one TCP connection per wake before the task looks at its other inputs again.
const TCP_READS: usize = 4;
/// Open TCP connections beyond `max_connections`, for clients still in their handshake.
// NOTE: a guessed allowance; connections beyond it are closed at once.
const EXTRA_TCP_CONNECTIONS: usize = 64;
/// Open TCP connections from one source address. Offices behind one NAT address need a few;
/// one host opening hundreds to exhaust the server's slots does not get them.
const MAX_TCP_CONNECTIONS_PER_SOURCE: usize = 16;
/// Time connection tasks get at shutdown to write the packets queued for them.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);
/// Datagrams handled per wake before the task looks at its other inputs again.
const UDP_BATCH: usize = 64;
/// Packets read from the TUN device per wake before the task looks at its other inputs
/// again. One read may return many, as the segments of a GSO packet.
const TUN_BATCH: usize = 64;

/// The socket clients connect to.
enum Listener {
    Tcp(TcpListener),
    Udp(UdpListener),
}

/// A request from the gateway to a running SSL server's task.
pub(crate) enum Control {
    /// Describe the admitted clients.
    Sessions(oneshot::Sender<Vec<crate::admin::SessionView>>),
    /// End one session. The reply is false when the server has no session with that id.
    Kill {
        id: ConnId,
        reply: oneshot::Sender<bool>,
    },
    Metrics(oneshot::Sender<ServerMetrics>),
    /// New settings that apply to new sessions only, such as the fallback cipher.
    Reconfigure(SslServer),
    /// Check the CRL and the users file now rather than at the next poll.
    Reload,
}

/// The figures `/metrics` reports for one SSL server.
#[derive(Clone, Debug, Default)]
pub(crate) struct ServerMetrics {
    pub(crate) sessions: usize,
    pub(crate) handshaking: usize,
    pub(crate) handshakes: u64,
    pub(crate) auth_failures: u64,
    pub(crate) traffic: Traffic,
    /// Packets dropped, by reason.
    pub(crate) dropped: Vec<(&'static str, u64)>,
    /// Pauses of receive coalescing (see [`Coalescing`]).
    pub(crate) coalescing_pauses: u64,
}

pub(crate) struct Server {
    config: SslServer,
    tls: Arc<rustls::ServerConfig>,
    /// The control-channel protection, kept for rebuilding the session configuration.
    wrap: WrapConfig,
    pki_dir: PathBuf,
    address: SocketAddr,
    device_name: String,
    device: AsyncDevice,
    listener: Listener,
    sessions: Sessions<Session>,
    crl: CrlWatch,
    max_tcp_connections: usize,
    /// The identity backend of a two-factor server.
    backend: Option<Backend>,
    /// The users file of the local backend, reread when it changes.
    users: Option<UsersWatch>,
    /// `[gateway] receive_coalescing_us`.
    coalescing_pause: Duration,
}

/// The event that woke the task.
enum Wake {
    Stop,
    /// The number of packets one read of the TUN device returned.
    Tun(io::Result<usize>),
    /// The number of slots of the receive batch that contain datagrams.
    Datagram(io::Result<usize>),
    Accepted(io::Result<(TcpStream, SocketAddr)>),
    Readable(ConnId, ReadEvent),
    /// The write task of a TCP connection ended.
    Closed(ConnId),
    Timer,
    CrlPoll,
    ConnectionEnded,
    Checked(CheckResult),
    CheckEnded,
    Control(Control),
}

impl Server {
    /// Loads the credentials, binds the listener and creates the TUN device of an SSL server,
    /// whose clients get their addresses from `pool`.
    pub(crate) async fn start(
        gateway: &Gateway,
        config: &SslServer,
        admission: Admission,
        pool: Box<dyn AddressPool>,
    ) -> Result<Self, ServeError> {
        let name = config.name.clone();
        let credentials_error = |error| ServeError::Credentials {
            server: name.clone(),
            error,
        };
        let credentials = credentials::load(&gateway.pki_dir, &config.name, config.tls_crypt)
            .map_err(credentials_error)?;
        let tls = credentials
            .tls_config()
            .map_err(|error| credentials_error(credentials::CredentialsError::Tls(error)))?;
        let revoked = credentials.revoked_serials().map_err(|message| {
            credentials_error(credentials::CredentialsError::InvalidCrl {
                path: credentials::crl_path(&gateway.pki_dir, &config.name),
                message,
            })
        })?;

        let address = SocketAddr::new(gateway.listen_address, config.port);
        let listener = bind(config, address).await?;
        let device_name = tun::device_name(&config.name);
        let tunnel_address = server_address(config.client_cidr);
        let device = tun::create(
            &device_name,
            tunnel_address,
            config.client_cidr.prefix_len(),
        )
        .map_err(|error| ServeError::CreateDevice {
            server: name.clone(),
            device: device_name.clone(),
            fix: device_fix(&error),
            error,
        })?;

        let (backend, users) = identity::open_backend(config)?;
        let wrap = credentials.wrap_config();
        let session_config = Arc::new(session_config(config, tls.clone(), wrap.clone()));
        let mut sessions = Sessions::new(config, session_config, pool, admission.clone(), revoked);
        if config.protocol == Protocol::Udp {
            sessions = sessions.with_cookie(CookieKey::random()).map_err(|error| {
                ServeError::Protection {
                    server: name.clone(),
                    error,
                }
            })?;
        }
        Ok(Self {
            config: config.clone(),
            tls,
            wrap,
            pki_dir: gateway.pki_dir.clone(),
            address,
            device_name,
            device,
            listener,
            sessions,
            crl: CrlWatch::new(credentials::crl_path(&gateway.pki_dir, &config.name)),
            max_tcp_connections: admission.max() as usize + EXTRA_TCP_CONNECTIONS,
            backend,
            users,
            coalescing_pause: gateway.receive_coalescing,
        })
    }

    /// Serves clients until `stop` turns true, then sends every client a RESTART and removes
    /// the TUN device with its address and route.
    pub(crate) async fn run(
        mut self,
        stop: watch::Receiver<bool>,
        control: mpsc::Receiver<Control>,
    ) -> Result<(), ServeError> {
        let span = info_span!("ssl_server", server = %self.config.name);
        let result = self.serve(stop, control).instrument(span.clone()).await;
        let device_name = std::mem::take(&mut self.device_name);
        drop(self);
        span.in_scope(|| info!(device = %device_name, "SSL server stopped, TUN device removed"));
        result
    }

    async fn serve(
        &mut self,
        mut stop: watch::Receiver<bool>,
        mut control: mpsc::Receiver<Control>,
    ) -> Result<(), ServeError> {
        info!(
            protocol = %self.config.protocol,
            address = %self.address,
            device = %self.device_name,
            offload = self.device.tcp_gso(),
            tunnel_address = %server_address(self.config.client_cidr),
            client_cidr = %self.config.client_cidr,
            tls_crypt = self.config.tls_crypt,
            "SSL server started"
        );
        let (closed_tx, mut closed_rx) = mpsc::channel(CLOSED_QUEUE);
        let mut connections: HashMap<ConnId, Connection> = HashMap::new();
        let mut readers: FuturesUnordered<Readable> = FuturesUnordered::new();
        let mut read_buffer = match self.listener {
            Listener::Tcp(_) => vec![0u8; tcp::READ_BUFFER],
            Listener::Udp(_) => Vec::new(),
        };
        let mut tasks = JoinSet::new();
        let mut tun_receive = TunReceive::new();
        let mut udp_batch = ReceiveBatch::new();
        let mut sends = SendBatch::default();
        let mut flushes = Vec::new();
        let mut tun_sends = TunSendBatch::new();
        let mut crl_poll = tokio::time::interval(CRL_POLL_INTERVAL);
        crl_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures = Failures::default();
        let (results_tx, mut results_rx) = mpsc::channel(MAX_HANDSHAKING);
        let mut checks = JoinSet::new();

        let mut coalescing = Coalescing::new(self.coalescing_pause);
        let result = loop {
            let deadline = self.sessions.next_deadline();
            let next = async {
                tokio::select! {
                    _ = stop.changed() => Wake::Stop,
                    read = tun_receive.receive(&self.device) => Wake::Tun(read),
                    received = receive(&self.listener, &mut udp_batch) => {
                        Wake::Datagram(received)
                    }
                    accepted = accept(&self.listener) => Wake::Accepted(accepted),
                    Some((conn, event)) = readers.next(), if !readers.is_empty() => {
                        Wake::Readable(conn, event)
                    }
                    Some(conn) = closed_rx.recv() => Wake::Closed(conn),
                    () = sleep_until(deadline) => Wake::Timer,
                    _ = crl_poll.tick() => Wake::CrlPoll,
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => Wake::ConnectionEnded,
                    Some(result) = results_rx.recv() => Wake::Checked(result),
                    Some(_) = checks.join_next(), if !checks.is_empty() => Wake::CheckEnded,
                    Some(request) = control.recv() => Wake::Control(request),
                }
            };
            let wake = coalescing.next(next).await;
            let now = Instant::now();
            let from_clients = matches!(wake, Wake::Datagram(_) | Wake::Readable(..));
            let (reloaded, users) = match wake {
                Wake::CrlPoll | Wake::Control(Control::Reload) => {
                    self.sessions.prune_throttle(now);
                    (self.reload_if_crl_changed(), self.reload_users_if_changed())
                }
                _ => (None, None),
            };
            let mut io = Outputs {
                listener: &self.listener,
                device: &self.device,
                connections: &mut connections,
                failures: &mut failures,
                sends: &mut sends,
                flushes: &mut flushes,
                tun_sends: &mut tun_sends,
            };
            match wake {
                Wake::Stop => break Ok(()),
                Wake::Tun(Ok(first)) => {
                    let mut count = first;
                    let mut handled = 0;
                    // Packets already queued are read without waiting, until the queue is
                    // empty. A device error returns on the next wake, which reports it.
                    loop {
                        for packet in tun_receive.packets(count) {
                            self.sessions.route_from_tun(&mut io, packet, now);
                        }
                        // A read that lost its packet counts as one.
                        handled += count.max(1);
                        if handled >= TUN_BATCH {
                            break;
                        }
                        count = match tun_receive.try_receive(&self.device) {
                            Ok(count) => count,
                            Err(error) if tun_batch::is_packet_error(&error) => {
                                io.failures.note("TUN read", &error);
                                0
                            }
                            Err(_) => break,
                        };
                    }
                }
                Wake::Tun(Err(error)) if tun_batch::is_packet_error(&error) => {
                    io.failures.note("TUN read", &error);
                }
                Wake::Tun(Err(error)) => {
                    break Err(ServeError::Device {
                        server: self.config.name.clone(),
                        device: self.device_name.clone(),
                        error,
                    });
                }
                Wake::Datagram(Ok(first)) => {
                    let mut count = first;
                    let mut handled = 0;
                    loop {
                        for (meta, datagram) in udp_batch.datagrams(count) {
                            let stride = meta.stride.max(1);
                            for packet in datagram.chunks_mut(stride) {
                                self.sessions.receive_datagram(
                                    &mut io,
                                    meta.addr,
                                    meta.dst_ip,
                                    packet,
                                    now,
                                );
                            }
                        }
                        handled += count;
                        // A batch with free slots emptied the kernel's queue.
                        if count < RECEIVE_SLOTS || handled >= UDP_BATCH {
                            break;
                        }
                        let Listener::Udp(socket) = &self.listener else {
                            break;
                        };
                        match socket.try_receive(&mut udp_batch) {
                            Some(more) => count = more,
                            None => break,
                        }
                    }
                }
                Wake::Datagram(Err(error)) => io.failures.note("UDP receive", &error),
                Wake::Accepted(Ok((stream, remote))) => {
                    if io.connections.len() >= self.max_tcp_connections {
                        debug!(%remote, "closed a TCP connection: too many open connections");
                        continue;
                    }
                    let from_source = io
                        .connections
                        .values()
                        .filter(|connection| connection.remote.ip() == remote.ip())
                        .count();
                    if from_source >= MAX_TCP_CONNECTIONS_PER_SOURCE {
                        self.sessions.counters.ignored += 1;
                        debug!(%remote, "closed a TCP connection: too many from this address");
                        continue;
                    }
                    let conn = self.sessions.new_conn_id();
                    let (connection, readable) =
                        tcp::spawn(&mut tasks, stream, conn, remote, closed_tx.clone());
                    io.connections.insert(conn, connection);
                    readers.push(readable);
                }
                Wake::Accepted(Err(error)) => {
                    warn!(%error, "accepting a TCP connection failed");
                    // Errors such as EMFILE repeat at once; pausing keeps the loop from spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Wake::Readable(conn, ReadEvent::Ready(reader)) => {
                    let readable = read_connection(
                        &mut self.sessions,
                        &mut io,
                        conn,
                        reader,
                        &mut read_buffer,
                        now,
                    );
                    if let Some(readable) = readable {
                        readers.push(readable);
                    }
                }
                Wake::Readable(conn, ReadEvent::Silent) => {
                    if let Some(connection) = io.connections.remove(&conn) {
                        debug!(
                            remote = %connection.remote,
                            "closed a TCP connection: no packet within {:?} of connecting",
                            tcp::FIRST_PACKET_TIMEOUT
                        );
                    }
                    self.sessions.connection_lost(&mut io, conn, now);
                }
                Wake::Readable(_, ReadEvent::Dropped) => {}
                Wake::Closed(conn) => {
                    self.sessions.connection_lost(&mut io, conn, now);
                    io.connections.remove(&conn);
                }
                Wake::Timer => self.sessions.handle_timeouts(&mut io, now),
                Wake::CrlPoll | Wake::Control(Control::Reload) => {
                    if let Some((config, revoked)) = reloaded {
                        self.sessions
                            .update_credentials(&mut io, config, revoked, now);
                    }
                    if let Some(users) = users {
                        self.sessions.close_removed_users(
                            &mut io,
                            |name| users.contains(name),
                            now,
                        );
                    }
                }
                Wake::Checked(result) => self.sessions.finish_password_check(&mut io, result, now),
                Wake::ConnectionEnded | Wake::CheckEnded => {}
                Wake::Control(Control::Sessions(reply)) => {
                    let _ = reply.send(self.sessions.views(&self.config.name));
                }
                Wake::Control(Control::Kill { id, reply }) => {
                    let _ = reply.send(self.sessions.kill(&mut io, id, now));
                }
                Wake::Control(Control::Metrics(reply)) => {
                    let _ = reply.send(self.metrics(coalescing.pauses()));
                }
                Wake::Control(Control::Reconfigure(config)) => {
                    info!(cipher = %config.cipher, "new settings apply to new sessions");
                    // A tls_crypt change restarts the server, so the protection stays.
                    let wrap = self.wrap.clone();
                    self.sessions.set_config(Arc::new(session_config(
                        &config,
                        self.tls.clone(),
                        wrap,
                    )));
                    self.config = config;
                }
            }
            // Sends the datagrams and writes the TUN packets this wake queued.
            drop(io);
            let written = tun_sends.take_pushed();
            if from_clients {
                coalescing.add(written);
            }
            self.spawn_password_checks(&mut checks, &results_tx);
        };
        checks.abort_all();

        let mut io = Outputs {
            listener: &self.listener,
            device: &self.device,
            connections: &mut connections,
            failures: &mut failures,
            sends: &mut sends,
            flushes: &mut flushes,
            tun_sends: &mut tun_sends,
        };
        if self.sessions.len() > 0 {
            info!(
                clients = self.sessions.len(),
                "telling clients to reconnect"
            );
        }
        self.sessions.shutdown(&mut io, Instant::now());
        drop(io);
        connections.clear();
        drop(readers);
        drop(closed_rx);
        let flushed = tokio::time::timeout(SHUTDOWN_FLUSH, async {
            while tasks.join_next().await.is_some() {}
        });
        if flushed.await.is_err() {
            debug!("closing TCP connections that did not flush in time");
            tasks.abort_all();
        }
        result
    }

    /// Starts a task for each password check the sessions queued. Each task sends its verdict
    /// back to this server's task.
    fn spawn_password_checks(
        &mut self,
        checks: &mut JoinSet<()>,
        results: &mpsc::Sender<CheckResult>,
    ) {
        let queued = self.sessions.take_password_checks();
        let Some(backend) = &self.backend else {
            return;
        };
        for check in queued {
            let backend = backend.clone();
            let results = results.clone();
            let span = tracing::Span::current();
            checks.spawn(
                async move {
                    let verdict = backend.check(&check.credentials).await;
                    // The receiver is gone only while the server stops.
                    let _ = results.send(check.result(verdict)).await;
                }
                .instrument(span),
            );
        }
    }

    fn metrics(&self, coalescing_pauses: u64) -> ServerMetrics {
        let counters = &self.sessions.counters;
        let mut dropped: Vec<(&'static str, u64)> = counters
            .dropped
            .iter()
            .map(|(&reason, &count)| (reason, count))
            .collect();
        dropped.push(("no session", counters.ignored));
        dropped.push(("no route", counters.unrouted));
        dropped.sort();
        let sessions = self.sessions.clients();
        ServerMetrics {
            sessions,
            handshaking: self.sessions.len() - sessions,
            handshakes: counters.handshakes,
            auth_failures: counters.auth_failures,
            traffic: counters.traffic,
            dropped,
            coalescing_pauses,
        }
    }

    /// Rereads the users file of the local backend when it changed, returning the new users.
    fn reload_users_if_changed(&mut self) -> Option<Arc<LocalUsers>> {
        let (Some(users), Some(backend)) = (&mut self.users, &mut self.backend) else {
            return None;
        };
        users.reload_if_changed(backend)
    }

    /// Rebuilds the session configuration and the revoked serials when the CRL file changed.
    fn reload_if_crl_changed(&mut self) -> Option<(Arc<SessionConfig>, HashSet<String>)> {
        let stamp = credentials::file_stamp(std::fs::metadata(&self.crl.path));
        if !self.crl.changed(stamp) {
            return None;
        }
        // The tls-crypt key stays as loaded at start, so the reload skips it.
        let reloaded = credentials::load(&self.pki_dir, &self.config.name, false)
            .map_err(|error| error.to_string())
            .and_then(|credentials| {
                let tls = credentials
                    .tls_config()
                    .map_err(|error| error.to_string())?;
                let revoked = credentials.revoked_serials()?;
                Ok((tls, revoked))
            });
        match reloaded {
            Ok((tls, revoked)) => {
                info!(
                    crl = %self.crl.path.display(),
                    revoked = revoked.len(),
                    "CRL changed: TLS configuration reloaded"
                );
                self.tls = tls.clone();
                let config = session_config(&self.config, tls, self.wrap.clone());
                Some((Arc::new(config), revoked))
            }
            Err(error) => {
                warn!(
                    crl = %self.crl.path.display(),
                    %error,
                    "CRL changed but could not be loaded; the previous one stays in force"
                );
                None
            }
        }
    }
}

/// Builds the settings every session of `server` shares.
fn session_config(
    server: &SslServer,
    tls: Arc<rustls::ServerConfig>,
    wrap: WrapConfig,
) -> SessionConfig {
    let fallback = server.cipher.name();
    let mut data_ciphers: Vec<String> = DATA_CIPHERS.iter().map(|&name| name.to_owned()).collect();
    data_ciphers.push(fallback.to_owned());
    SessionConfig {
        tls,
        wrap,
        data_ciphers,
        fallback_cipher: fallback.to_owned(),
        compression: server.compression,
        tcp: server.protocol == Protocol::Tcp,
        routes: server.local_networks.clone(),
        topology: server.topology,
        server_address: server_address(server.client_cidr),
        pool_netmask: server.client_cidr.netmask(),
        keepalive_interval: KEEPALIVE_INTERVAL,
        keepalive_timeout: KEEPALIVE_TIMEOUT,
        hand_window: HAND_WINDOW,
        reneg_interval: RENEG_INTERVAL,
        tls_mtu: DEFAULT_TLS_MTU,
    }
}

/// Reads the data waiting on one TCP connection into `buffer` and passes each packet to its
/// session in place. Returns the wait for the connection's next data, or None when it ended.
fn read_connection(
    sessions: &mut Sessions<Session>,
    io: &mut Outputs<'_>,
    conn: ConnId,
    reader: Reader,
    buffer: &mut [u8],
    now: Instant,
) -> Option<Readable> {
    for _ in 0..TCP_READS {
        let (count, emptied) = match reader.try_read(buffer) {
            Ok((0, _)) => {
                sessions.connection_lost(io, conn, now);
                io.connections.remove(&conn);
                return None;
            }
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) => {
                if let Some(connection) = io.connections.remove(&conn) {
                    debug!(remote = %connection.remote, %error, "TCP read failed");
                }
                sessions.connection_lost(io, conn, now);
                return None;
            }
        };
        let connection = io.connections.get_mut(&conn)?;
        let link = Link {
            conn,
            remote: connection.remote,
            local: None,
        };
        let max_packet = connection.max_packet();
        let mut decoder = connection.take_decoder();
        let decoded = decoder.decode(&mut buffer[..count], max_packet, |packet| {
            sessions.receive_stream(io, link, packet, now);
            // The session may have closed the connection.
            let connection = io.connections.get_mut(&conn)?;
            connection.mark_received();
            Some(connection.max_packet())
        });
        // A connection closed while its packets were delivered is gone with its decoder.
        io.connections.get_mut(&conn)?.put_decoder(decoder);
        if let Err(error) = decoded {
            debug!(remote = %link.remote, %error, "closing TCP connection");
            sessions.count_drop("invalid TCP length");
            sessions.connection_lost(io, conn, now);
            io.connections.remove(&conn);
            return None;
        }
        if emptied {
            break;
        }
    }
    let received = io.connections.get(&conn)?.received();
    Some(reader.readable(conn, received))
}

async fn bind(server: &SslServer, address: SocketAddr) -> Result<Listener, ServeError> {
    let bound = match server.protocol {
        Protocol::Tcp => TcpListener::bind(address).await.map(Listener::Tcp),
        Protocol::Udp => match UdpSocket::bind(address).await {
            Ok(socket) => UdpListener::new(socket).map(Listener::Udp),
            Err(error) => Err(error),
        },
    };
    bound.map_err(|error| ServeError::Bind {
        server: server.name.clone(),
        protocol: server.protocol,
        address,
        fix: bind_fix(&error),
        error,
    })
}

async fn receive(listener: &Listener, batch: &mut ReceiveBatch) -> io::Result<usize> {
    match listener {
        Listener::Udp(socket) => socket.receive(batch).await,
        Listener::Tcp(_) => std::future::pending().await,
    }
}

async fn accept(listener: &Listener) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Listener::Tcp(listener) => listener.accept().await,
        Listener::Udp(_) => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Counts failed writes by kind and logs the first of each kind and then every power of two.
#[derive(Debug, Default)]
struct Failures {
    counts: HashMap<&'static str, u64>,
}

impl Failures {
    fn note(&mut self, operation: &'static str, error: &dyn std::fmt::Display) {
        let count = self.counts.entry(operation).or_default();
        *count += 1;
        if count.is_power_of_two() {
            debug!(total = *count, %error, "{operation} failed");
        }
    }
}

/// The [`Io`] of a running SSL server for one wake of its task. Writes never wait: a full
/// socket buffer, TUN queue or connection queue drops the packet, as a congested link would.
/// UDP datagrams wait in `sends`, TCP packets in their connection and TUN packets in
/// `tun_sends` until the value is dropped.
struct Outputs<'a> {
    listener: &'a Listener,
    device: &'a AsyncDevice,
    connections: &'a mut HashMap<ConnId, Connection>,
    failures: &'a mut Failures,
    sends: &'a mut SendBatch,
    /// Connections with packets to write when the value is dropped.
    flushes: &'a mut Vec<ConnId>,
    tun_sends: &'a mut TunSendBatch,
}

impl Drop for Outputs<'_> {
    fn drop(&mut self) {
        let failures = &mut *self.failures;
        self.tun_sends
            .flush(self.device, &mut |error| failures.note("TUN write", error));
        if let Listener::Udp(socket) = self.listener {
            self.sends
                .flush(socket, &mut |error| failures.note("UDP send", error));
        }
        for conn in self.flushes.drain(..) {
            // A connection closed during the wake wrote its packets when it was dropped.
            let flushed = self
                .connections
                .get_mut(&conn)
                .is_none_or(|connection| connection.flush());
            if !flushed {
                self.failures
                    .note("TCP queue", &"queue full or connection closed");
            }
        }
    }
}

impl Io for Outputs<'_> {
    fn send(&mut self, link: Link, packet: &[u8]) {
        match self.listener {
            Listener::Udp(socket) => {
                let failures = &mut *self.failures;
                self.sends.push(socket, link, packet, &mut |error| {
                    failures.note("UDP send", error)
                });
            }
            Listener::Tcp(_) => {
                let pushed = self
                    .connections
                    .get_mut(&link.conn)
                    .and_then(|connection| connection.push(packet));
                match pushed {
                    Some(true) => self.flushes.push(link.conn),
                    Some(false) => {}
                    None => self
                        .failures
                        .note("TCP queue", &"queue full or connection closed"),
                }
            }
        }
    }

    fn authenticated(&mut self, link: Link) {
        if let Some(connection) = self.connections.get_mut(&link.conn) {
            connection.mark_authenticated();
        }
    }

    fn close(&mut self, link: Link) {
        self.connections.remove(&link.conn);
    }

    fn write_tun(&mut self, packet: &[u8]) {
        let failures = &mut *self.failures;
        self.tun_sends.push(self.device, packet, &mut |error| {
            failures.note("TUN write", error)
        });
    }
}
