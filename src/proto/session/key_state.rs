//! One key negotiation of a session: its TLS session, reliability windows, key method 2
//! exchange and the data-channel keys it produces. Key id 0 is the first; each renegotiation
//! makes a new one.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::proto::data::{
    AuthDigest, CompressionFraming, DataCipher, DataKeys, ReplayProtection, Role,
};
use crate::proto::keymethod::{
    ClientKeyMessage, OccCompression, OccOptions, OccProto, PeerInfo, Secret, ServerKeyMessage,
    ServerOccConfig,
};
use crate::proto::ncp::negotiate_cipher;
use crate::proto::packet::{ControlPacket, KeyId, MAX_ACKS, MAX_PIGGYBACK_ACKS, Opcode, SessionId};
use crate::proto::prf::{EKM_LABEL, KEY_BLOCK_LEN, prf_key_block};
use crate::proto::reliable::{
    ReceiveConfig, ReceiveWindow, SendConfig, SendWindow, max_control_payload,
};
use crate::proto::tls::{PeerIdentity, Tls};

use super::SessionConfig;
use super::data::DataChannel;

/// Plaintext a client may send on the control channel before a message ends; key method 2
/// messages and PUSH_REQUESTs are far shorter.
const MAX_PENDING_PLAINTEXT: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyPhase {
    /// Our reset is not acknowledged yet; TLS may already run.
    PreStart,
    /// Waiting for the client's key method 2 message.
    Start,
    /// Our key method 2 message is sent but not acknowledged.
    SentKey,
    /// Both key messages are through: the keys are usable both ways.
    Active,
}

impl KeyPhase {
    /// True once both sides exchanged key material, so control messages may flow.
    pub(super) fn is_keyed(self) -> bool {
        matches!(self, KeyPhase::SentKey | KeyPhase::Active)
    }
}

/// Data-channel settings agreed at the first key exchange and kept for renegotiations.
#[derive(Debug, Clone)]
pub(super) struct Negotiated {
    pub cipher: String,
    pub data_cipher: DataCipher,
    pub digest: AuthDigest,
    pub push_cipher: bool,
    pub data_v2: bool,
    pub tls_ekm: bool,
    pub cc_exit: bool,
    pub framing: CompressionFraming,
}

/// The result of a finished key method 2 exchange, for the session.
pub(super) struct KeyExchange {
    pub identity: PeerIdentity,
    /// The settings, or why the client is not acceptable (no shared cipher). A refused client
    /// still gets the server's key message, so it can read the AUTH_FAILED that follows.
    pub negotiated: Result<Negotiated, String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Default)]
pub(super) struct Progress {
    pub key_exchange: Option<KeyExchange>,
    /// Complete control-channel text messages, without their NUL.
    pub messages: Vec<Vec<u8>>,
}

pub(super) struct KeyState {
    pub key_id: KeyId,
    pub phase: KeyPhase,
    pub created: Instant,
    retired_at: Option<Instant>,
    tls: Tls,
    send: SendWindow,
    receive: ReceiveWindow,
    /// TLS records not yet cut into control messages, because the send window is full.
    tls_out: VecDeque<u8>,
    records: Vec<u8>,
    plaintext: Vec<u8>,
    max_payload: usize,
    data_keys: Option<DataKeys>,
}

impl KeyState {
    pub(super) fn new(
        config: &SessionConfig,
        key_id: KeyId,
        wrap_overhead: usize,
        first_message_id: u32,
        now: Instant,
    ) -> Result<Self, crate::proto::tls::TlsError> {
        let send = SendConfig {
            first_message_id,
            ..SendConfig::default()
        };
        let receive = ReceiveConfig {
            first_message_id,
            ..ReceiveConfig::default()
        };
        Ok(Self {
            key_id,
            phase: KeyPhase::PreStart,
            created: now,
            retired_at: None,
            tls: Tls::server(config.tls.clone())?,
            send: SendWindow::new(send),
            receive: ReceiveWindow::new(receive),
            tls_out: VecDeque::new(),
            records: Vec::new(),
            plaintext: Vec::new(),
            max_payload: max_control_payload(config.tls_mtu, wrap_overhead, false),
            data_keys: None,
        })
    }

    /// Queues our reset: HARD_RESET_SERVER_V2 for key 0, SOFT_RESET_V1 for a renegotiation.
    pub(super) fn start(&mut self, opcode: Opcode) {
        // A fresh send window always has room for its first message.
        let _ = self.send.push(opcode, Vec::new());
    }

    pub(super) fn handle_acks(&mut self, ids: &[u32]) {
        for &id in ids {
            self.send.on_ack(id);
        }
    }

    pub(super) fn receive(&mut self, message_id: u32, opcode: Opcode, payload: &[u8]) {
        // Duplicates are acknowledged again and messages outside the window are dropped
        // inside the window itself; an oversized message is ignored like a lost one.
        let _ = self.receive.receive(message_id, opcode, payload);
    }

    /// Feeds delivered messages to TLS and advances the key exchange.
    pub(super) fn progress(
        &mut self,
        config: &SessionConfig,
        own: SessionId,
        peer: SessionId,
        negotiated: Option<&Negotiated>,
        peer_info: &mut Option<PeerInfo>,
    ) -> Result<Progress, String> {
        let mut progress = Progress::default();
        while let Some(message) = self.receive.pop_message() {
            if message.opcode != Opcode::ControlV1 {
                continue;
            }
            if let Err(error) = self.tls.receive(&message.payload) {
                self.pump();
                return Err(error.to_string());
            }
        }
        if self.phase == KeyPhase::PreStart && self.send.is_idle() {
            self.phase = KeyPhase::Start;
        }
        self.tls.read_plaintext(&mut self.plaintext);
        if self.plaintext.len() > MAX_PENDING_PLAINTEXT {
            return Err("client sent too much control-channel data".to_owned());
        }
        let awaiting_key = matches!(self.phase, KeyPhase::PreStart | KeyPhase::Start);
        if awaiting_key && !self.tls.is_handshaking() && !self.plaintext.is_empty() {
            match ClientKeyMessage::parse(&self.plaintext) {
                Err(error) if error.is_incomplete() => {}
                Err(error) => return Err(format!("invalid key method 2 message: {error}")),
                Ok(message) => {
                    self.plaintext.clear();
                    let exchange =
                        self.exchange_keys(config, own, peer, negotiated, peer_info, message)?;
                    progress.key_exchange = Some(exchange);
                    self.phase = KeyPhase::SentKey;
                }
            }
        }
        if self.phase.is_keyed() {
            while let Some(end) = self.plaintext.iter().position(|&b| b == 0) {
                let rest = self.plaintext.split_off(end + 1);
                let mut message = std::mem::replace(&mut self.plaintext, rest);
                message.pop();
                progress.messages.push(message);
            }
        }
        self.pump();
        if self.phase == KeyPhase::SentKey && self.send.is_idle() && self.tls_out.is_empty() {
            self.phase = KeyPhase::Active;
        }
        Ok(progress)
    }

    fn exchange_keys(
        &mut self,
        config: &SessionConfig,
        own: SessionId,
        peer: SessionId,
        negotiated: Option<&Negotiated>,
        peer_info: &mut Option<PeerInfo>,
        client: ClientKeyMessage,
    ) -> Result<KeyExchange, String> {
        let identity = self
            .tls
            .peer_identity()
            .ok_or("client presented no readable certificate")?;
        let negotiated = match negotiated {
            Some(negotiated) => Ok(negotiated.clone()),
            None => {
                let info = PeerInfo::parse(&client.peer_info);
                let negotiated = negotiate(config, &client, &info);
                *peer_info = Some(info);
                negotiated
            }
        };

        let mut random = [0u8; 64];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| "no random bytes for key material")?;
        let mut occ = ServerOccConfig::new(if config.tcp {
            OccProto::TcpServer
        } else {
            OccProto::Udp
        });
        occ.fallback_cipher = Some(&config.fallback_cipher);
        if config.compression {
            occ.compression = OccCompression::V1;
        }
        let options = occ
            .options_string()
            .map_err(|error| format!("server options string: {error}"))?;
        let server = ServerKeyMessage {
            random1: random[..32].try_into().expect("32 bytes"),
            random2: random[32..].try_into().expect("32 bytes"),
            options,
        };
        let encoded = server
            .encode()
            .map_err(|error| format!("server key method 2 message: {error}"))?;
        self.tls
            .write_plaintext(&encoded)
            .map_err(|error| error.to_string())?;

        if let Ok(negotiated) = &negotiated {
            self.data_keys =
                Some(self.derive_keys(config, negotiated, &client, &server, own, peer)?);
        }

        Ok(KeyExchange {
            identity,
            negotiated,
            username: client.username.clone(),
            password: client.password.clone(),
        })
    }

    fn derive_keys(
        &self,
        config: &SessionConfig,
        negotiated: &Negotiated,
        client: &ClientKeyMessage,
        server: &ServerKeyMessage,
        own: SessionId,
        peer: SessionId,
    ) -> Result<DataKeys, String> {
        let mut block = [0u8; KEY_BLOCK_LEN];
        if negotiated.tls_ekm {
            self.tls
                .export_keying_material(&mut block, EKM_LABEL.as_bytes())
                .map_err(|error| error.to_string())?;
        } else {
            let derived = prf_key_block(client, server, &peer.0, &own.0);
            block.copy_from_slice(derived.as_bytes());
        }
        let replay = if config.tcp {
            ReplayProtection::Sequential
        } else {
            ReplayProtection::default()
        };
        let keys = DataKeys::new_with_replay(
            negotiated.data_cipher,
            negotiated.digest,
            &block,
            Role::Server,
            replay,
        );
        block.fill(0);
        keys.map_err(|error| format!("data channel keys: {error}"))
    }

    /// Moves pending TLS records into the send window as far as it has room.
    fn pump(&mut self) {
        self.records.clear();
        self.tls.write_records(&mut self.records);
        self.tls_out.extend(self.records.iter());
        while !self.tls_out.is_empty() && self.send.available() > 0 {
            let take = self.tls_out.len().min(self.max_payload);
            let chunk: Vec<u8> = self.tls_out.drain(..take).collect();
            if self.send.push(Opcode::ControlV1, chunk).is_err() {
                break;
            }
        }
    }

    /// Sends a text message (PUSH_REPLY, AUTH_FAILED, RESTART) with its terminating NUL.
    pub(super) fn send_text(&mut self, text: &str) {
        let mut message = Vec::with_capacity(text.len() + 1);
        message.extend_from_slice(text.as_bytes());
        message.push(0);
        if self.tls.write_plaintext(&message).is_ok() {
            self.pump();
        }
    }

    /// Writes the next control packet of this key (a due message or bare ACKs) into `out`.
    pub(super) fn poll_control(
        &mut self,
        now: Instant,
        own: SessionId,
        peer: SessionId,
        out: &mut Vec<u8>,
    ) -> bool {
        self.pump();
        if let Some(transmit) = self.send.poll_transmit(now) {
            let acks = self.receive.take_acks(MAX_PIGGYBACK_ACKS);
            let packet = ControlPacket {
                opcode: transmit.opcode,
                key_id: self.key_id,
                session_id: own,
                acks,
                peer_session_id: (!acks.is_empty()).then_some(peer),
                message_id: Some(transmit.message_id),
                payload: transmit.payload,
            };
            return packet.encode(out).is_ok();
        }
        if self.receive.has_pending_acks() {
            let acks = self.receive.take_acks(MAX_ACKS);
            return ControlPacket::ack(self.key_id, own, acks, peer)
                .encode(out)
                .is_ok();
        }
        false
    }

    pub(super) fn next_timeout(&self, hand_window: Duration) -> Option<Instant> {
        let retransmit = self.send.next_timeout();
        let negotiation = (self.phase != KeyPhase::Active).then(|| self.created + hand_window);
        match (retransmit, negotiation) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn negotiation_expired(&self, now: Instant, hand_window: Duration) -> bool {
        self.phase != KeyPhase::Active && now >= self.created + hand_window
    }

    pub(super) fn retire(&mut self, now: Instant) {
        self.retired_at = Some(now);
    }

    pub(super) fn retired_at(&self) -> Option<Instant> {
        self.retired_at
    }

    pub(super) fn is_retired(&self) -> bool {
        self.retired_at.is_some()
    }

    pub(super) fn retired_before(&self, now: Instant, lame_duck: Duration) -> bool {
        self.retirement_end(lame_duck).is_some_and(|end| now >= end)
    }

    /// When a retired key stops decrypting; `None` for a key in use.
    pub(super) fn retirement_end(&self, lame_duck: Duration) -> Option<Instant> {
        self.retired_at.map(|at| at + lame_duck)
    }

    pub(super) fn can_send_data(&self) -> bool {
        self.data_keys.is_some() && self.phase.is_keyed() && self.retired_at.is_none()
    }

    pub(super) fn decrypt(
        &mut self,
        packet: &mut [u8],
        now: Instant,
    ) -> Result<Range<usize>, &'static str> {
        let Some(keys) = &mut self.data_keys else {
            return Err("no data keys");
        };
        let header_len = if packet[0] >> 3 == Opcode::DataV2.as_u8() {
            4
        } else {
            1
        };
        keys.decrypt
            .decrypt(packet, header_len, now)
            .map_err(|error| drop_label(&error))
    }

    pub(super) fn encrypt(
        &mut self,
        payload: &[u8],
        framing: CompressionFraming,
        peer_id: Option<u32>,
        data: &mut DataChannel,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(keys) = &mut self.data_keys else {
            return false;
        };
        let key_id = self.key_id.get();
        let mut header = [0u8; 4];
        let header = match peer_id {
            Some(peer_id) => {
                let word = (u32::from(Opcode::DataV2.as_u8() << 3 | key_id) << 24)
                    | (peer_id & 0x00ff_ffff);
                header = word.to_be_bytes();
                &header[..]
            }
            None => {
                header[0] = Opcode::DataV1.as_u8() << 3 | key_id;
                &header[..1]
            }
        };
        data.seal(&mut keys.encrypt, header, payload, framing, out)
    }
}

/// Picks the data-channel settings for a client's first key exchange.
fn negotiate(
    config: &SessionConfig,
    client: &ClientKeyMessage,
    info: &PeerInfo,
) -> Result<Negotiated, String> {
    let occ = OccOptions::parse(&client.options);
    let chosen = negotiate_cipher(
        &config.data_ciphers,
        Some(&config.fallback_cipher),
        info,
        occ.cipher.as_deref(),
    )
    .map_err(|error| error.to_string())?;
    let data_cipher = DataCipher::from_openvpn_name(&chosen.cipher)
        .map_err(|error| format!("negotiated cipher: {error}"))?;
    let digest = match occ.auth.as_deref() {
        Some(name) => AuthDigest::from_openvpn_name(name)
            .map_err(|error| format!("client's auth digest: {error}"))?,
        None => AuthDigest::Sha1,
    };
    // As with OpenVPN's own `comp-lzo`, the server's setting decides the framing. Every
    // profile of a server with compression on carries `comp-lzo no`, which frames the same way.
    let framing = if config.compression {
        CompressionFraming::Lzo
    } else {
        CompressionFraming::None
    };
    Ok(Negotiated {
        cipher: chosen.cipher,
        data_cipher,
        digest,
        push_cipher: chosen.push_cipher,
        data_v2: info.iv_proto.data_v2(),
        tls_ekm: info.iv_proto.tls_ekm(),
        cc_exit: info.iv_proto.cc_exit(),
        framing,
    })
}

/// Returns a short label for counting dropped data packets by reason.
fn drop_label(error: &crate::proto::data::DataError) -> &'static str {
    use crate::proto::data::DataError;
    match error {
        DataError::Replay(_) => "replay",
        DataError::AuthenticationFailed | DataError::InvalidPadding => "authentication",
        DataError::TooManyFailedDecryptions(_) => "too many failed decryptions",
        _ => "malformed data packet",
    }
}
