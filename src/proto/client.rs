//! A minimal OpenVPN client core, without I/O: enough to connect to [`super::session`] in
//! tests, negotiate a cipher, pull the push reply and move data. Renegotiation is left to the
//! server.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::proto::data::{
    AuthDigest, CompressWorkspace, Compression, CompressionFraming, DataCipher, DataKeys,
    ReplayProtection, Role, Unframed,
};
use crate::proto::keymethod::{ClientKeyMessage, Secret, ServerKeyMessage};
use crate::proto::packet::{ControlPacket, KeyId, MAX_ACKS, MAX_PIGGYBACK_ACKS, Opcode, SessionId};
use crate::proto::prf::{EKM_LABEL, KEY_BLOCK_LEN, prf_key_block};
use crate::proto::reliable::{
    ReceiveConfig, ReceiveWindow, SendConfig, SendWindow, max_control_payload,
};
use crate::proto::tls::Tls;
use crate::proto::wrap::{ControlWrap, WrapConfig};

/// The settings the test client offers.
pub struct ClientConfig {
    pub tls: Arc<rustls::ClientConfig>,
    pub wrap: WrapConfig,
    /// Sent as IV_CIPHERS; empty means an old client that announces only `options_cipher`.
    pub ciphers: Vec<String>,
    /// The `cipher` of the options string.
    pub options_cipher: String,
    /// Offer TLS-EKM key derivation (IV_PROTO bit 3).
    pub ekm: bool,
    pub comp_lzo: bool,
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The PUSH_REPLY arrived and the data keys are installed; carries the reply's options.
    Connected(Vec<String>),
    AuthFailed(String),
    Restart,
}

pub struct Client {
    config: ClientConfig,
    wrap: ControlWrap,
    own: SessionId,
    peer: Option<SessionId>,
    tls: Tls,
    send: SendWindow,
    receive: ReceiveWindow,
    max_payload: usize,
    /// TLS records waiting for room in the send window.
    tls_out: Vec<u8>,
    key_message: Option<ClientKeyMessage>,
    key_server: Option<ServerKeyMessage>,
    plaintext: Vec<u8>,
    push_options: Vec<String>,
    data: Option<DataKeys>,
    /// The key being negotiated or in use, and the one it replaced, kept for late packets.
    key_id: KeyId,
    previous: Option<(KeyId, DataKeys)>,
    /// Cipher and key derivation from the push reply, reused by renegotiations.
    negotiated: Option<(DataCipher, bool)>,
    peer_id: Option<u32>,
    /// The pushed `auth-token`, sent as the password in later key exchanges as OpenVPN does.
    auth_token: Option<String>,
    events: VecDeque<ClientEvent>,
    workspace: CompressWorkspace,
}

impl Client {
    pub fn new(config: ClientConfig) -> Self {
        let wrap = config.wrap.build().expect("valid wrap configuration");
        let mut own = [0u8; 8];
        aws_lc_rs::rand::fill(&mut own).expect("random bytes");
        let mut send = SendWindow::new(SendConfig::default());
        send.push(Opcode::HardResetClientV2, Vec::new())
            .expect("empty window");
        Self {
            tls: Tls::client(config.tls.clone()).expect("TLS client"),
            max_payload: max_control_payload(1250, wrap.overhead(), false),
            tls_out: Vec::new(),
            wrap,
            own: SessionId(own),
            peer: None,
            send,
            receive: ReceiveWindow::new(ReceiveConfig::default()),
            key_message: None,
            key_server: None,
            plaintext: Vec::new(),
            push_options: Vec::new(),
            data: None,
            key_id: KeyId::ZERO,
            previous: None,
            negotiated: None,
            peer_id: None,
            auth_token: None,
            events: VecDeque::new(),
            workspace: CompressWorkspace::new(),
            config,
        }
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Writes the next control packet to send into `out` (cleared first).
    pub fn poll_transmit(&mut self, now: Instant, unix: u32, out: &mut Vec<u8>) -> bool {
        out.clear();
        let mut plain = Vec::new();
        if let Some(transmit) = self.send.poll_transmit(now) {
            let acks = self.receive.take_acks(MAX_PIGGYBACK_ACKS);
            let packet = ControlPacket {
                opcode: transmit.opcode,
                key_id: self.key_id,
                session_id: self.own,
                acks,
                peer_session_id: if acks.is_empty() { None } else { self.peer },
                message_id: Some(transmit.message_id),
                payload: transmit.payload,
            };
            packet.encode(&mut plain).expect("valid packet");
        } else if let (true, Some(peer)) = (self.receive.has_pending_acks(), self.peer) {
            let acks = self.receive.take_acks(MAX_ACKS);
            ControlPacket::ack(self.key_id, self.own, acks, peer)
                .encode(&mut plain)
                .expect("valid packet");
        } else {
            return false;
        }
        self.wrap.wrap(&plain, unix, out).is_ok()
    }

    /// Handles one packet from the server; returns the decrypted payload of a data packet.
    pub fn handle_packet(&mut self, packet: &mut [u8], now: Instant) -> Option<Vec<u8>> {
        let first = *packet.first()?;
        if matches!(
            Opcode::from_u8(first >> 3),
            Some(Opcode::DataV1 | Opcode::DataV2)
        ) {
            return self.decrypt(packet, now);
        }
        let mut plain = Vec::new();
        self.wrap.unwrap(packet, &mut plain).ok()?;
        let control = ControlPacket::parse(&plain).ok()?;
        if self.peer.is_none() && control.opcode == Opcode::HardResetServerV2 {
            self.peer = Some(control.session_id);
        }
        if Some(control.session_id) != self.peer {
            return None;
        }
        if control.key_id != self.key_id {
            if control.opcode != Opcode::SoftResetV1 || control.key_id != self.key_id.next() {
                return None;
            }
            self.start_renegotiation(control.key_id);
        }
        for &id in control.acks.as_slice() {
            self.send.on_ack(id);
        }
        self.pump();
        if let Some(id) = control.message_id {
            let _ = self.receive.receive(id, control.opcode, control.payload);
        }
        while let Some(message) = self.receive.pop_message() {
            if message.opcode == Opcode::ControlV1 {
                self.tls.receive(&message.payload).ok()?;
            }
        }
        self.advance();
        None
    }

    fn advance(&mut self) {
        if !self.tls.is_handshaking() && self.key_message.is_none() {
            self.send_key_message();
        }
        self.tls.read_plaintext(&mut self.plaintext);
        let awaiting_server_key = self.key_message.is_some() && self.key_server.is_none();
        if awaiting_server_key && let Ok(server) = ServerKeyMessage::parse(&self.plaintext) {
            // Text messages may follow in the same read. The server's message re-encodes to
            // exactly the bytes it took, because a server sends no username or peer info.
            let used = server
                .encode()
                .map(|bytes| bytes.len())
                .unwrap_or(usize::MAX);
            self.plaintext.drain(..used.min(self.plaintext.len()));
            self.key_server = Some(server);
            match self.negotiated {
                // A renegotiation: the new keys take over at once, without a push.
                Some((cipher, ekm)) => {
                    let keys = self.derive_keys(cipher, ekm);
                    let old = self.data.replace(keys);
                    self.previous = old.map(|old| (self.previous_key_id(), old));
                }
                None => self.write_text("PUSH_REQUEST"),
            }
        }
        while let Some(end) = self.plaintext.iter().position(|&b| b == 0) {
            let rest = self.plaintext.split_off(end + 1);
            let mut message = std::mem::replace(&mut self.plaintext, rest);
            message.pop();
            self.handle_text(&String::from_utf8_lossy(&message));
        }
        self.pump();
    }

    fn send_key_message(&mut self) {
        let mut random = [0u8; 112];
        aws_lc_rs::rand::fill(&mut random).expect("random bytes");
        let mut iv_proto = 2 | 4 | (1 << 7);
        if self.config.ekm {
            iv_proto |= 1 << 3;
        }
        let mut peer_info = format!("IV_VER=2.6.14\nIV_PLAT=linux\nIV_PROTO={iv_proto}\n");
        if !self.config.ciphers.is_empty() {
            peer_info.push_str(&format!("IV_CIPHERS={}\n", self.config.ciphers.join(":")));
        }
        let mut options = format!(
            "V4,dev-type tun,link-mtu 1557,tun-mtu 1500,proto UDPv4,cipher {},auth SHA1,keysize 128,key-method 2,tls-client",
            self.config.options_cipher
        );
        if self.config.comp_lzo {
            options.push_str(",comp-lzo");
        }
        let message = ClientKeyMessage {
            pre_master: zeroize::Zeroizing::new(random[..48].try_into().expect("48 bytes")),
            random1: random[48..80].try_into().expect("32 bytes"),
            random2: random[80..].try_into().expect("32 bytes"),
            options,
            username: self.config.username.clone(),
            password: self
                .auth_token
                .as_ref()
                .or(self.config.password.as_ref())
                .map(|password| Secret::new(password.as_bytes().to_vec())),
            peer_info,
        };
        let encoded = message.encode().expect("valid key message");
        self.tls
            .write_plaintext(&encoded)
            .expect("TLS accepts plaintext");
        self.key_message = Some(message);
    }

    fn write_text(&mut self, text: &str) {
        let mut message = text.as_bytes().to_vec();
        message.push(0);
        self.tls
            .write_plaintext(&message)
            .expect("TLS accepts plaintext");
    }

    fn handle_text(&mut self, text: &str) {
        if let Some(reason) = text.strip_prefix("AUTH_FAILED") {
            let reason = reason.trim_start_matches(',').to_owned();
            self.events.push_back(ClientEvent::AuthFailed(reason));
        } else if text.starts_with("RESTART") {
            self.events.push_back(ClientEvent::Restart);
        } else if let Some(options) = text.strip_prefix("PUSH_REPLY") {
            let options: Vec<String> = options
                .split(',')
                .filter(|option| !option.is_empty())
                .map(str::to_owned)
                .collect();
            let last = !options.iter().any(|option| option == "push-continuation 2");
            self.push_options.extend(options);
            if last {
                self.install_keys();
            }
        }
    }

    fn option(&self, name: &str) -> Option<&str> {
        self.push_options
            .iter()
            .find_map(|option| option.strip_prefix(name)?.strip_prefix(' '))
    }

    fn install_keys(&mut self) {
        let cipher_name = self
            .option("cipher")
            .unwrap_or(&self.config.options_cipher)
            .to_owned();
        let ekm = self.option("key-derivation") == Some("tls-ekm")
            || self
                .option("protocol-flags")
                .is_some_and(|flags| flags.split(' ').any(|flag| flag == "tls-ekm"));
        self.peer_id = self.option("peer-id").and_then(|id| id.parse().ok());
        self.auth_token = self.option("auth-token").map(str::to_owned);
        let cipher = DataCipher::from_openvpn_name(&cipher_name).expect("known cipher");
        self.negotiated = Some((cipher, ekm));
        self.data = Some(self.derive_keys(cipher, ekm));
        let options = self.push_options.clone();
        self.events.push_back(ClientEvent::Connected(options));
    }

    fn derive_keys(&self, cipher: DataCipher, ekm: bool) -> DataKeys {
        let mut block = [0u8; KEY_BLOCK_LEN];
        if ekm {
            self.tls
                .export_keying_material(&mut block, EKM_LABEL.as_bytes())
                .expect("exporter");
        } else {
            let client = self.key_message.as_ref().expect("client key message sent");
            let server = self.key_server.as_ref().expect("server key message read");
            let peer = self.peer.expect("server session id known");
            block.copy_from_slice(prf_key_block(client, server, &self.own.0, &peer.0).as_bytes());
        }
        DataKeys::new_with_replay(
            cipher,
            AuthDigest::Sha1,
            &block,
            Role::Client,
            ReplayProtection::default(),
        )
        .expect("data keys")
    }

    /// Starts the key exchange for `key_id` that the server asked for with its SOFT_RESET.
    fn start_renegotiation(&mut self, key_id: KeyId) {
        self.key_id = key_id;
        self.tls = Tls::client(self.config.tls.clone()).expect("TLS client");
        self.send = SendWindow::new(SendConfig::default());
        self.receive = ReceiveWindow::new(ReceiveConfig::default());
        self.tls_out.clear();
        self.plaintext.clear();
        self.key_message = None;
        self.key_server = None;
        self.send
            .push(Opcode::SoftResetV1, Vec::new())
            .expect("empty window");
    }

    /// Returns the key id before the current one; ids run 0, 1, ..., 7, 1, ...
    fn previous_key_id(&self) -> KeyId {
        let previous = match self.key_id.get() {
            1 => 0,
            n => n - 1,
        };
        KeyId::new(previous).expect("key ids are 0..=7")
    }

    /// Returns the key id of the data keys in use.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn pump(&mut self) {
        self.tls.write_records(&mut self.tls_out);
        while !self.tls_out.is_empty() && self.send.available() > 0 {
            let take = self.tls_out.len().min(self.max_payload);
            let chunk: Vec<u8> = self.tls_out.drain(..take).collect();
            self.send
                .push(Opcode::ControlV1, chunk)
                .expect("window has room");
        }
    }

    fn framing(&self) -> Compression {
        Compression::framing_only(if self.config.comp_lzo {
            CompressionFraming::Lzo
        } else {
            CompressionFraming::None
        })
    }

    /// Encrypts `payload` for the server; `None` before the keys are installed.
    pub fn encrypt(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let framing = self.framing();
        let keys = self.data.as_mut()?;
        let key_id = self.key_id.get();
        let header: Vec<u8> = match self.peer_id {
            Some(peer_id) => ((u32::from(Opcode::DataV2.as_u8() << 3 | key_id) << 24) | peer_id)
                .to_be_bytes()
                .to_vec(),
            None => vec![Opcode::DataV1.as_u8() << 3 | key_id],
        };
        let start = keys.encrypt.headroom(header.len()) + 2;
        let mut buf = vec![0u8; start];
        buf.extend_from_slice(payload);
        let end = buf.len();
        buf.resize(end + 1 + keys.encrypt.tailroom(), 0);
        let framed = framing
            .frame(&mut buf, start..end, &mut self.workspace)
            .ok()?;
        let packet = keys
            .encrypt
            .encrypt_in_place(&header, &mut buf, framed)
            .ok()?;
        Some(buf[packet].to_vec())
    }

    fn decrypt(&mut self, packet: &mut [u8], now: Instant) -> Option<Vec<u8>> {
        let framing = self.framing();
        let key_id = KeyId::new(packet[0] & 0x07).ok()?;
        let keys = match &mut self.previous {
            Some((previous, keys)) if *previous == key_id && key_id != self.key_id => keys,
            _ => self.data.as_mut()?,
        };
        let header_len = if packet[0] >> 3 == Opcode::DataV2.as_u8() {
            4
        } else {
            1
        };
        let payload = keys.decrypt.decrypt(packet, header_len, now).ok()?;
        let mut out = vec![0u8; 2048];
        let unframed = framing.unframe(packet, payload, &mut out).ok()?;
        Some(match unframed {
            Unframed::InPlace(range) => packet[range].to_vec(),
            Unframed::Decompressed(len) => out[..len].to_vec(),
        })
    }
}
