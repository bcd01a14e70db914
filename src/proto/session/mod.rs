//! The server side of one client's OpenVPN session, without I/O.
//!
//! A session starts from the client's HARD_RESET_CLIENT_V2 and lives until the client leaves,
//! times out or is dropped. The driver hands it every packet from that client
//! ([`Session::handle_packet`]), every IPv4 packet for it from the TUN device
//! ([`Session::encrypt`]), and calls [`Session::handle_timeout`] at [`Session::poll_timeout`].
//! After each call it drains [`Session::poll_transmit`] and [`Session::poll_event`].

mod data;
mod key_state;
mod stateless;

pub use stateless::StatelessHandshake;

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use crate::config::Topology;
use crate::proto::data::{OccOp, Payload, Unframed};
use crate::proto::keymethod::{PeerInfo, Secret};
use crate::proto::packet::{ControlPacket, KeyId, Opcode, PEER_ID_NONE, SessionId};
use crate::proto::push::{ClientAddress, ControlMessage, PushReply};
use crate::proto::wrap::{ControlWrap, WrapConfig};

use data::DataChannel;
use key_state::{KeyPhase, KeyState, Negotiated};

/// OpenVPN's default control-channel MTU (`tls-mtu`).
pub const DEFAULT_TLS_MTU: usize = 1250;
/// How long a closing session keeps sending so its last control message (AUTH_FAILED,
/// RESTART) reaches the client and is acknowledged.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// How long an old key still decrypts after its replacement took over, so packets in flight
/// during a renegotiation are not lost.
const LAME_DUCK_TIME: Duration = Duration::from_secs(60);

/// Settings shared by every session of one SSL server.
pub struct SessionConfig {
    /// rustls server configuration that verifies client certificates against the CA and CRL
    /// (see [`crate::proto::tls::server_config`]).
    pub tls: Arc<rustls::ServerConfig>,
    /// Control-channel protection (`tls-auth`, `tls-crypt`) or none.
    pub wrap: WrapConfig,
    /// Ciphers clients may negotiate, in order of preference; includes the fallback.
    pub data_ciphers: Vec<String>,
    /// The cipher for clients that cannot negotiate (`cipher` in the config).
    pub fallback_cipher: String,
    /// Frame data packets as `comp-lzo` does (0xFA uncompressed, 0x66 LZO); compressed
    /// packets from clients are decoded, and outbound packets are never compressed.
    pub compression: bool,
    pub tcp: bool,
    /// Local networks, pushed as routes.
    pub routes: Vec<Ipv4Net>,
    pub topology: Topology,
    /// The gateway's own tunnel address.
    pub server_address: Ipv4Addr,
    /// Netmask of the client pool, pushed with topology subnet.
    pub pool_netmask: Ipv4Addr,
    /// Interval of keepalive pings (pushed as `ping`).
    pub keepalive_interval: Duration,
    /// Silence after which a client restarts (pushed as `ping-restart`); the server waits
    /// twice as long before it drops the client.
    pub keepalive_timeout: Duration,
    /// Time a key negotiation may take (`hand-window`).
    pub hand_window: Duration,
    /// Lifetime of a data-channel key before the server renegotiates (`reneg-sec`).
    pub reneg_interval: Duration,
    pub tls_mtu: usize,
}

/// The identity and credentials of a client whose certificate is verified and whose key
/// method 2 message was read.
#[derive(Debug)]
pub struct AuthRequest {
    pub common_name: String,
    pub serial_hex: String,
    pub username: Option<String>,
    /// The password as sent, which `Debug` does not show.
    pub password: Option<Secret>,
    pub client_version: Option<String>,
    pub client_platform: Option<String>,
    pub cipher: String,
}

/// The network settings the driver gives an accepted client.
#[derive(Clone, Debug)]
pub struct ClientNetwork {
    pub address: Ipv4Addr,
    /// With topology net30 the /30's peer address (`ifconfig <address> <peer>`); with subnet
    /// the pool netmask.
    pub peer_or_netmask: Ipv4Addr,
}

#[derive(Debug)]
pub enum Event {
    /// The client passed TLS and key method 2; the driver decides with [`Session::authorize`].
    Authenticate(AuthRequest),
    /// The PUSH_REPLY went out and data flows.
    Established { cipher: String },
    /// A renegotiation finished with this certificate and these credentials. A client that
    /// got an `auth-token` sends it as the password.
    Renegotiated {
        common_name: String,
        serial_hex: String,
        username: Option<String>,
        password: Option<Secret>,
    },
    /// The session is over; the driver removes it and frees its address and peer-id.
    Closed { reason: String },
}

pub enum Authorization {
    Accept(ClientNetwork),
    /// Sends `AUTH_FAILED,<reason>`, then closes.
    Reject(String),
}

/// The kind of a received packet, as far as the driver needs it.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// Control traffic or a keepalive: nothing to forward.
    Consumed,
    /// An IPv4 packet from the client at `packet[range]`, decrypted in place, whose source
    /// address is the client's tunnel address.
    Ip(Range<usize>),
    /// An IPv4 packet from the client that had to be decompressed out of place.
    Decompressed(&'a [u8]),
    /// Dropped; the label names the reason for counters.
    Dropped(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("first packet is not a usable client hard reset: {0}")]
    BadFirstPacket(String),
    #[error("control-channel protection failed: {0}")]
    Wrap(#[from] crate::proto::wrap::WrapError),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] crate::proto::tls::TlsError),
}

pub enum CloseKind {
    /// Tell the client to reconnect at once (server shutdown): sends RESTART.
    Restart,
    /// Tell the client it may not come back (certificate revoked, user removed): sends
    /// `AUTH_FAILED,<reason>`, which makes OpenVPN clients stop instead of reconnecting.
    Revoke(String),
    /// Drop without a message (connection lost, replaced by a newer one).
    Drop,
}

/// The identifiers a session starts with.
struct Start {
    own_session_id: SessionId,
    peer_session_id: SessionId,
    /// The first control message id of key 0 in each direction: 0, or 1 when the hard resets
    /// were exchanged statelessly before the session existed.
    first_message_id: u32,
}

/// State of the session as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    /// Negotiating, or established.
    Open,
    /// Sending a last message until the deadline.
    Closing(Instant),
    Closed,
}

pub struct Session {
    config: Arc<SessionConfig>,
    own_session_id: SessionId,
    peer_session_id: SessionId,
    peer_id: u32,
    wrap: ControlWrap,
    /// Wall-clock seconds at `started`, for the replay ids of the control-channel protection.
    unix_at_start: u64,
    started: Instant,
    /// The current key first, then a renegotiating or retiring one.
    keys: Vec<KeyState>,
    next_key_id: KeyId,
    /// Settings fixed at the first key exchange.
    negotiated: Option<Negotiated>,
    peer_info: Option<PeerInfo>,
    identity: Option<(String, String)>,
    client: Option<ClientNetwork>,
    /// Pushed as `auth-token` when set.
    auth_token: Option<Secret>,
    push_requested: bool,
    established: bool,
    data: DataChannel,
    last_received: Instant,
    last_sent: Instant,
    lifecycle: Lifecycle,
    events: VecDeque<Event>,
    /// Reused buffers, so steady-state packets allocate nothing.
    scratch: Vec<u8>,
    decompressed: Vec<u8>,
}

impl Session {
    /// Creates a session from a client's first packet, a HARD_RESET_CLIENT_V2.
    ///
    /// `peer_id` is the DATA_V2 peer-id the driver assigns; `unix_time` the wall clock now.
    pub fn new(
        config: Arc<SessionConfig>,
        first_packet: &[u8],
        peer_id: u32,
        now: Instant,
        unix_time: u64,
    ) -> Result<Self, SessionError> {
        let mut wrap = config.wrap.build()?;
        let mut plain = Vec::with_capacity(first_packet.len());
        wrap.unwrap(first_packet, &mut plain)?;
        let packet = ControlPacket::parse(&plain)
            .map_err(|error| SessionError::BadFirstPacket(error.to_string()))?;
        if packet.opcode != Opcode::HardResetClientV2 || packet.key_id.get() != 0 {
            return Err(SessionError::BadFirstPacket(format!(
                "opcode {:?} with key id {}",
                packet.opcode,
                packet.key_id.get()
            )));
        }
        let mut own = [0u8; 8];
        aws_lc_rs::rand::fill(&mut own)
            .map_err(|_| SessionError::BadFirstPacket("no random bytes".to_owned()))?;
        let start = Start {
            own_session_id: SessionId(own),
            peer_session_id: packet.session_id,
            first_message_id: 0,
        };
        let mut session = Self::build(config, wrap, start, peer_id, now, unix_time)?;
        session.keys[0].start(Opcode::HardResetServerV2);
        session.handle_control(&plain, now);
        Ok(session)
    }

    fn build(
        config: Arc<SessionConfig>,
        wrap: ControlWrap,
        start: Start,
        peer_id: u32,
        now: Instant,
        unix_time: u64,
    ) -> Result<Self, SessionError> {
        let first_key = KeyState::new(
            &config,
            KeyId::ZERO,
            wrap.overhead(),
            start.first_message_id,
            now,
        )?;
        Ok(Self {
            own_session_id: start.own_session_id,
            peer_session_id: start.peer_session_id,
            peer_id,
            wrap,
            unix_at_start: unix_time,
            started: now,
            keys: vec![first_key],
            next_key_id: KeyId::ZERO.next(),
            negotiated: None,
            peer_info: None,
            identity: None,
            client: None,
            auth_token: None,
            push_requested: false,
            established: false,
            data: DataChannel::new(),
            last_received: now,
            last_sent: now,
            lifecycle: Lifecycle::Open,
            events: VecDeque::new(),
            scratch: Vec::with_capacity(2048),
            decompressed: Vec::new(),
            config,
        })
    }

    /// Handles one packet received from the client. Data packets are decrypted in place.
    pub fn handle_packet(&mut self, packet: &mut [u8], now: Instant) -> Incoming<'_> {
        if self.lifecycle == Lifecycle::Closed {
            return Incoming::Dropped("closed");
        }
        let Some(&first) = packet.first() else {
            return Incoming::Dropped("empty");
        };
        match Opcode::from_u8(first >> 3) {
            Some(Opcode::DataV1 | Opcode::DataV2) => self.handle_data(packet, now),
            Some(_) => {
                let mut plain = std::mem::take(&mut self.scratch);
                plain.clear();
                let result = self.wrap.unwrap(packet, &mut plain);
                let incoming = match result {
                    Ok(_) => self.handle_control(&plain, now),
                    Err(_) => Incoming::Dropped("control authentication"),
                };
                self.scratch = plain;
                incoming
            }
            None => Incoming::Dropped("unknown opcode"),
        }
    }

    fn handle_control(&mut self, plain: &[u8], now: Instant) -> Incoming<'static> {
        let Ok(packet) = ControlPacket::parse(plain) else {
            return Incoming::Dropped("malformed control packet");
        };
        if packet.session_id != self.peer_session_id {
            return Incoming::Dropped("wrong session id");
        }
        if packet
            .peer_session_id
            .is_some_and(|id| id != self.own_session_id)
        {
            return Incoming::Dropped("wrong peer session id");
        }
        let index = match self.key_index(packet.key_id) {
            Some(index) => index,
            None if packet.opcode == Opcode::SoftResetV1
                && packet.key_id == self.next_key_id
                && self.lifecycle == Lifecycle::Open =>
            {
                match self.begin_renegotiation(now) {
                    Some(index) => index,
                    None => return Incoming::Dropped("renegotiation failed"),
                }
            }
            None => return Incoming::Dropped("unknown key id"),
        };
        self.last_received = now;
        let key = &mut self.keys[index];
        key.handle_acks(packet.acks.as_slice());
        if self.lifecycle != Lifecycle::Open {
            // A closing session only waits for the ACK of its last message, so it reads no
            // more TLS and reports no more events.
            return Incoming::Consumed;
        }
        if let Some(message_id) = packet.message_id {
            key.receive(message_id, packet.opcode, packet.payload);
        }
        self.progress(index, now);
        Incoming::Consumed
    }

    fn handle_data(&mut self, packet: &mut [u8], now: Instant) -> Incoming<'_> {
        if self.lifecycle != Lifecycle::Open {
            return Incoming::Dropped("closing");
        }
        let Ok(key_id) = KeyId::new(packet[0] & 0x07) else {
            return Incoming::Dropped("bad key id");
        };
        let Some(index) = self.key_index(key_id) else {
            return Incoming::Dropped("unknown key id");
        };
        let Some(negotiated) = &self.negotiated else {
            return Incoming::Dropped("no data keys");
        };
        // The peer-id is authenticated only by AEAD ciphers, so check it for every cipher.
        if packet[0] >> 3 == Opcode::DataV2.as_u8() {
            let peer_id = packet
                .get(1..4)
                .map(|b| u32::from_be_bytes([0, b[0], b[1], b[2]]));
            if peer_id != Some(self.peer_id) && peer_id != Some(PEER_ID_NONE) {
                return Incoming::Dropped("wrong peer-id");
            }
        }
        let framing = negotiated.framing;
        let payload = match self.keys[index].decrypt(packet, now) {
            Ok(range) => range,
            Err(reason) => return Incoming::Dropped(reason),
        };
        self.last_received = now;
        let unframed = match self
            .data
            .unframe(framing, packet, payload, &mut self.decompressed)
        {
            Ok(unframed) => unframed,
            Err(reason) => return Incoming::Dropped(reason),
        };
        let kind = match Payload::classify(unframed.bytes(packet, &self.decompressed)) {
            Payload::Ip(ip) => match self.client_address() {
                Some(client) if source_is(ip, client) => None,
                Some(_) => return Incoming::Dropped("spoofed source"),
                None => return Incoming::Dropped("not authorized"),
            },
            Payload::Occ {
                op: Some(OccOp::Exit),
                ..
            } => Some(true),
            Payload::Ping | Payload::Occ { .. } | Payload::Empty => Some(false),
        };
        match (kind, unframed) {
            (Some(true), _) => {
                self.finish("client sent exit notification");
                Incoming::Consumed
            }
            (Some(false), _) => Incoming::Consumed,
            (None, Unframed::InPlace(range)) => Incoming::Ip(range),
            (None, Unframed::Decompressed(len)) => {
                Incoming::Decompressed(&self.decompressed[..len])
            }
        }
    }

    /// Returns the session id the client chose for this session.
    pub fn peer_session_id(&self) -> SessionId {
        self.peer_session_id
    }

    /// Encrypts one IPv4 packet from the TUN device into `out`; false when the session has no
    /// data keys for sending yet (the packet is dropped).
    pub fn encrypt(&mut self, ip_packet: &[u8], out: &mut Vec<u8>, now: Instant) -> bool {
        if self.lifecycle != Lifecycle::Open || !self.established {
            return false;
        }
        let Some(negotiated) = &self.negotiated else {
            return false;
        };
        let (framing, data_v2) = (negotiated.framing, negotiated.data_v2);
        let Some(key) = self.keys.iter_mut().find(|key| key.can_send_data()) else {
            return false;
        };
        let peer_id = data_v2.then_some(self.peer_id);
        if !key.encrypt(ip_packet, framing, peer_id, &mut self.data, out) {
            return false;
        }
        self.last_sent = now;
        true
    }

    /// Writes the next control or keepalive packet to send into `out` (cleared first).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        if self.lifecycle == Lifecycle::Closed {
            return false;
        }
        let unix = self.unix_now(now);
        for key in &mut self.keys {
            let mut plain = std::mem::take(&mut self.scratch);
            plain.clear();
            let ready =
                key.poll_control(now, self.own_session_id, self.peer_session_id, &mut plain);
            let wrapped = ready && self.wrap.wrap(&plain, unix, out).is_ok();
            self.scratch = plain;
            if wrapped {
                return true;
            }
        }
        if self.lifecycle == Lifecycle::Open && self.established && self.ping_due(now) {
            let Some(negotiated) = &self.negotiated else {
                return false;
            };
            let (framing, data_v2) = (negotiated.framing, negotiated.data_v2);
            let peer_id = data_v2.then_some(self.peer_id);
            let key = self.keys.iter_mut().find(|key| key.can_send_data());
            if key
                .is_some_and(|key| key.encrypt(&data::PING, framing, peer_id, &mut self.data, out))
            {
                self.last_sent = now;
                return true;
            }
        }
        false
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Lifecycle::Closing(at) = self.lifecycle {
            return Some(at);
        }
        if self.lifecycle == Lifecycle::Closed {
            return None;
        }
        let mut deadline = self.last_received + 2 * self.config.keepalive_timeout;
        for key in &self.keys {
            if let Some(at) = key.next_timeout(self.config.hand_window) {
                deadline = deadline.min(at);
            }
            if let Some(at) = key.retirement_end(LAME_DUCK_TIME) {
                deadline = deadline.min(at);
            }
        }
        if self.established {
            deadline = deadline.min(self.last_sent + self.config.keepalive_interval);
            // Like `handle_timeout`, start no renegotiation while one runs. Otherwise the
            // expired time stays the deadline and the driver spins.
            if let Some(current) = self.sole_active_key() {
                deadline = deadline.min(current.created + self.config.reneg_interval);
            }
        }
        for key in &self.keys {
            if let Some(retired) = key.retired_at() {
                deadline = deadline.min(retired + LAME_DUCK_TIME);
            }
        }
        Some(deadline)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.lifecycle {
            Lifecycle::Closed => return,
            Lifecycle::Closing(at) => {
                if now >= at {
                    self.lifecycle = Lifecycle::Closed;
                }
                return;
            }
            Lifecycle::Open => {}
        }
        if now >= self.last_received + 2 * self.config.keepalive_timeout {
            let seconds = (2 * self.config.keepalive_timeout).as_secs();
            self.finish(&format!("no packet from the client for {seconds} s"));
            return;
        }
        let hand_window = self.config.hand_window;
        if let Some(index) = self
            .keys
            .iter()
            .position(|key| key.negotiation_expired(now, hand_window))
        {
            if self.keys[index].key_id.get() == 0 || !self.established {
                let seconds = hand_window.as_secs();
                self.finish(&format!(
                    "key negotiation did not finish within {seconds} s"
                ));
                return;
            }
            self.keys.remove(index);
        }
        self.keys
            .retain(|key| !key.retired_before(now, LAME_DUCK_TIME));
        let key_expired = self
            .sole_active_key()
            .is_some_and(|key| now >= key.created + self.config.reneg_interval);
        if self.established && key_expired {
            self.begin_renegotiation(now);
        }
    }

    /// Accepts or rejects a client after [`Event::Authenticate`]. A session that is already
    /// closing or closed ignores the decision, because it reported `Closed` once already.
    pub fn authorize(&mut self, decision: Authorization, now: Instant) {
        if self.lifecycle != Lifecycle::Open {
            return;
        }
        match decision {
            Authorization::Accept(client) => {
                self.client = Some(client);
                // Clients that announce it (IV_PROTO bit 2) take the reply without asking,
                // which saves the second they wait before their first PUSH_REQUEST.
                let pushes_early = self
                    .peer_info
                    .as_ref()
                    .is_some_and(|info| info.iv_proto.request_push());
                if self.push_requested || pushes_early {
                    self.send_push_reply(now);
                }
            }
            Authorization::Reject(reason) => {
                let message = format!("AUTH_FAILED,{reason}");
                self.send_text(&message, now);
                self.lifecycle = Lifecycle::Closing(now + CLOSE_LINGER);
                self.events.push_back(Event::Closed {
                    reason: format!("authentication failed: {reason}"),
                });
            }
        }
    }

    /// Sets the token pushed as `auth-token` in the PUSH_REPLY; call it before accepting the
    /// client. OpenVPN clients send the token as their password in later renegotiations.
    pub fn set_auth_token(&mut self, token: Secret) {
        self.auth_token = Some(token);
    }

    pub fn close(&mut self, kind: CloseKind, now: Instant) {
        if self.lifecycle != Lifecycle::Open {
            return;
        }
        match kind {
            CloseKind::Restart => {
                self.send_text("RESTART", now);
                self.lifecycle = Lifecycle::Closing(now + CLOSE_LINGER);
                self.events.push_back(Event::Closed {
                    reason: "server is restarting".to_owned(),
                });
            }
            CloseKind::Revoke(reason) => {
                self.send_text(&format!("AUTH_FAILED,{reason}"), now);
                self.lifecycle = Lifecycle::Closing(now + CLOSE_LINGER);
                self.events.push_back(Event::Closed { reason });
            }
            CloseKind::Drop => self.finish("dropped by the server"),
        }
    }

    pub fn peer_id(&self) -> u32 {
        self.peer_id
    }

    /// Returns the client's tunnel address once accepted.
    pub fn client_address(&self) -> Option<Ipv4Addr> {
        self.client.as_ref().map(|client| client.address)
    }

    /// True once the session has ended and sends nothing more.
    pub fn is_closed(&self) -> bool {
        self.lifecycle == Lifecycle::Closed
    }

    fn unix_now(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.started).as_secs();
        (self.unix_at_start + elapsed) as u32
    }

    fn ping_due(&self, now: Instant) -> bool {
        now >= self.last_sent + self.config.keepalive_interval
    }

    /// Returns the current key when no renegotiation runs; retired keys do not count.
    fn sole_active_key(&self) -> Option<&KeyState> {
        let mut active = self.keys.iter().filter(|key| !key.is_retired());
        match (active.next(), active.next()) {
            (Some(key), None) => Some(key),
            _ => None,
        }
    }

    fn key_index(&self, key_id: KeyId) -> Option<usize> {
        self.keys.iter().position(|key| key.key_id == key_id)
    }

    /// Adds a key state for the next key id; the caller decides who sends the soft reset.
    fn begin_renegotiation(&mut self, now: Instant) -> Option<usize> {
        // A new key exchange ends the lame duck time of a retired key, as in OpenVPN, which
        // keeps one lame duck at most. Renegotiations closer together than the lame duck
        // time would otherwise run out of key slots.
        self.keys.retain(|key| !key.is_retired());
        if self.negotiated.is_none() || self.keys.len() >= 2 {
            return None;
        }
        let key_id = self.next_key_id;
        let key = KeyState::new(&self.config, key_id, self.wrap.overhead(), 0, now).ok()?;
        self.next_key_id = key_id.next();
        self.keys.push(key);
        let index = self.keys.len() - 1;
        // Either side may start, so our SOFT_RESET replies to the client's or requests one.
        self.keys[index].start(Opcode::SoftResetV1);
        Some(index)
    }

    /// Advances the key state at `index` after new input: TLS, key method 2, control messages.
    fn progress(&mut self, index: usize, now: Instant) {
        let own = self.own_session_id;
        let peer = self.peer_session_id;
        let result = self.keys[index].progress(
            &self.config,
            own,
            peer,
            self.negotiated.as_ref(),
            &mut self.peer_info,
        );
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(reason) => {
                self.finish(&reason);
                return;
            }
        };
        if let Some(exchange) = outcome.key_exchange {
            self.on_key_exchange(index, exchange, now);
        }
        let key = &self.keys[index];
        if index > 0 && key.phase == KeyPhase::Active && !key.is_retired() {
            // The renegotiated key takes over sending; the old one keeps decrypting for a
            // while as a lame duck.
            let new = self.keys.remove(index);
            self.keys[0].retire(now);
            self.keys.insert(0, new);
        }
        for message in outcome.messages {
            self.handle_text(&message, now);
        }
    }

    fn on_key_exchange(&mut self, index: usize, exchange: key_state::KeyExchange, now: Instant) {
        let serial = exchange.identity.serial_hex();
        let common_name = exchange.identity.common_name.clone();
        let negotiated = match exchange.negotiated {
            Ok(negotiated) => negotiated,
            Err(reason) => {
                self.authorize(Authorization::Reject(reason), now);
                return;
            }
        };
        if self.keys[index].key_id.get() == 0 {
            self.negotiated = Some(negotiated.clone());
            self.identity = Some((common_name.clone(), serial.clone()));
            let peer_info = self.peer_info.as_ref();
            self.events.push_back(Event::Authenticate(AuthRequest {
                common_name,
                serial_hex: serial,
                username: exchange.username,
                password: exchange.password,
                client_version: peer_info.and_then(|info| info.iv_ver.clone()),
                client_platform: peer_info.and_then(|info| info.iv_plat.clone()),
                cipher: negotiated.cipher,
            }));
        } else {
            let same = self
                .identity
                .as_ref()
                .is_some_and(|(name, _)| *name == common_name);
            if !same {
                self.finish("renegotiation presented another certificate");
                return;
            }
            self.events.push_back(Event::Renegotiated {
                common_name,
                serial_hex: serial,
                username: exchange.username,
                password: exchange.password,
            });
        }
    }

    fn handle_text(&mut self, message: &[u8], now: Instant) {
        // A renegotiation with another certificate ends the session in the middle of a
        // batch of messages, and a PUSH_REQUEST after that must not report Established.
        if self.lifecycle != Lifecycle::Open {
            return;
        }
        match ControlMessage::parse(message) {
            Ok(ControlMessage::PushRequest) => {
                self.push_requested = true;
                if self.client.is_some() {
                    self.send_push_reply(now);
                }
            }
            Ok(ControlMessage::Exit) => self.finish("client sent EXIT"),
            _ => {}
        }
    }

    fn send_push_reply(&mut self, now: Instant) {
        let (Some(client), Some(negotiated)) = (&self.client, &self.negotiated) else {
            return;
        };
        let address = match self.config.topology {
            Topology::Net30 => ClientAddress::Net30 {
                address: client.address,
                peer: client.peer_or_netmask,
            },
            Topology::Subnet => ClientAddress::Subnet {
                address: client.address,
                netmask: client.peer_or_netmask,
            },
        };
        let mut reply = PushReply::new(self.config.server_address, address);
        reply.routes = self.config.routes.clone();
        reply.ping = self.config.keepalive_interval.as_secs() as u32;
        reply.ping_restart = self.config.keepalive_timeout.as_secs() as u32;
        reply.peer_id = negotiated.data_v2.then_some(self.peer_id);
        reply.cipher = negotiated.push_cipher.then(|| negotiated.cipher.clone());
        reply.cc_exit = negotiated.cc_exit;
        reply.tls_ekm = negotiated.tls_ekm;
        if let Some(token) = self.auth_token.as_ref().and_then(Secret::expose_str) {
            reply.extra.push(format!("auth-token {token}"));
        }
        let cipher = negotiated.cipher.clone();
        let Ok(messages) = reply.build() else {
            self.finish("PUSH_REPLY could not be built");
            return;
        };
        for message in messages {
            self.send_text(&message, now);
        }
        if !self.established {
            self.established = true;
            self.last_sent = now;
            self.events.push_back(Event::Established { cipher });
        }
    }

    /// Sends a NUL-terminated text message on the current key's control channel.
    fn send_text(&mut self, text: &str, _now: Instant) {
        if let Some(key) = self.keys.iter_mut().find(|key| key.phase.is_keyed()) {
            key.send_text(text);
        }
    }

    /// Ends the session at once.
    fn finish(&mut self, reason: &str) {
        if self.lifecycle == Lifecycle::Closed {
            return;
        }
        let announced = matches!(self.lifecycle, Lifecycle::Closing(_));
        self.lifecycle = Lifecycle::Closed;
        if !announced {
            self.events.push_back(Event::Closed {
                reason: reason.to_owned(),
            });
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer_id", &self.peer_id)
            .field("keys", &self.keys.len())
            .field("established", &self.established)
            .field("lifecycle", &self.lifecycle)
            .finish()
    }
}

/// Returns whether `ip` is an IPv4 packet from `address`.
fn source_is(ip: &[u8], address: Ipv4Addr) -> bool {
    ip.len() >= 20 && ip[0] >> 4 == 4 && ip[12..16] == address.octets()
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
