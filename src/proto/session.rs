//! API of the per-client protocol session (the sans-IO core). The daemon drives it.
//! STUB: the real implementation lands from another branch with these exact signatures.
#![allow(unused_variables, clippy::ptr_arg)]

use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

/// Settings shared by every session of one SSL server; built once by the daemon.
pub struct SessionConfig {
    /// rustls server configuration with client-certificate verification against the CA and CRL
    /// (see `proto::tls::server_config`). Swapped for a new one when the CRL changes.
    pub tls: Arc<rustls::ServerConfig>,
    /// Ciphers new clients may negotiate, in order of preference, e.g. AES-256-GCM, AES-128-GCM,
    /// CHACHA20-POLY1305, then the fallback.
    pub data_ciphers: Vec<String>,
    /// The configured cipher for clients that cannot negotiate (`cipher` in the config).
    pub fallback_cipher: String,
    pub compression: bool,
    pub tcp: bool,
    /// Local networks pushed as routes.
    pub routes: Vec<ipnet::Ipv4Net>,
    /// net30 or subnet, the gateway's own tunnel address and the pool's netmask.
    pub topology: crate::config::Topology,
    pub server_address: Ipv4Addr,
    pub pool_netmask: Ipv4Addr,
    pub keepalive_interval: std::time::Duration,  // ping 10
    pub keepalive_timeout: std::time::Duration,   // ping-restart 60 (pushed); server drops after 2x
    pub hand_window: std::time::Duration,         // 60 s
    pub reneg_interval: std::time::Duration,      // 3600 s
}

/// What a client asks for once its certificate is verified and its key method 2 message read.
#[derive(Debug)]
pub struct AuthRequest {
    pub common_name: String,
    pub serial_hex: String,
    pub username: Option<String>,
    /// Never log it.
    pub password: Option<String>,
    pub client_version: Option<String>,
    pub client_platform: Option<String>,
    pub cipher: String,
}

/// The network settings the daemon gives an accepted client.
#[derive(Clone, Debug)]
pub struct ClientNetwork {
    pub address: Ipv4Addr,
    /// net30: the /30's peer address (`ifconfig <address> <peer>`); subnet: the pool netmask.
    pub peer_or_netmask: Ipv4Addr,
}

#[derive(Debug)]
pub enum Event {
    /// The client passed TLS and key method 2; answer with `Session::authorize`.
    Authenticate(AuthRequest),
    /// PUSH_REPLY sent and data keys installed: data flows.
    Established { cipher: String },
    /// A renegotiation finished; the daemon rechecks the identity (revocation).
    Renegotiated { common_name: String, serial_hex: String },
    /// The session is over: the daemon removes it, frees its address and peer-id.
    Closed { reason: String },
}

pub enum Authorization {
    Accept(ClientNetwork),
    /// Sends AUTH_FAILED with this reason, then closes.
    Reject(String),
}

/// What a received packet turned out to be.
#[derive(Debug)]
pub enum Incoming {
    /// Control traffic or a keepalive: nothing for the daemon to forward.
    Consumed,
    /// An IPv4 packet from the client at `packet[range]`, decrypted in place; its source
    /// address is already checked against the client's tunnel address.
    Ip(Range<usize>),
    /// Dropped; the reason is a short static label for counters ("replay", "auth", ...).
    Dropped(&'static str),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SessionError(pub String);

pub enum CloseKind {
    /// Tell the client to reconnect at once (server shutdown): sends RESTART.
    Restart,
    /// Drop without a message (certificate revoked, killed by an admin, replaced).
    Drop,
}

pub struct Session {}

impl Session {
    /// Creates a session from a client's first packet (HARD_RESET_CLIENT_V2).
    /// `peer_id` is the DATA_V2 peer id the daemon assigns; `unix_time` the wall clock now.
    pub fn new(config: Arc<SessionConfig>, first_packet: &[u8], peer_id: u32, now: Instant, unix_time: u64) -> Result<Self, SessionError> { todo!() }
    /// Handles one received packet (control or data). Data is decrypted in place.
    pub fn handle_packet(&mut self, packet: &mut [u8], now: Instant) -> Incoming { todo!() }
    /// Encrypts one IPv4 packet from the TUN device into `out` (cleared first); false when no
    /// data keys are ready yet (the packet is dropped).
    pub fn encrypt(&mut self, ip_packet: &[u8], out: &mut Vec<u8>, now: Instant) -> bool { todo!() }
    /// Writes the next control or keepalive packet to send into `out` (cleared first).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool { todo!() }
    pub fn poll_event(&mut self) -> Option<Event> { todo!() }
    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> { todo!() }
    pub fn handle_timeout(&mut self, now: Instant) { todo!() }
    pub fn authorize(&mut self, decision: Authorization, now: Instant) { todo!() }
    pub fn close(&mut self, kind: CloseKind, now: Instant) { todo!() }
    pub fn peer_id(&self) -> u32 { todo!() }
    /// The client's tunnel address once accepted.
    pub fn client_address(&self) -> Option<Ipv4Addr> { todo!() }
    pub fn is_closed(&self) -> bool { todo!() }
}
