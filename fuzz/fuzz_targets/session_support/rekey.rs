//! The client side of one renegotiation, which the test client does not do: SOFT_RESET_V1,
//! a new TLS handshake and a key method 2 message for the next key id.

use std::sync::Arc;
use std::time::Instant;

use sslvpn::proto::keymethod::ClientKeyMessage;
use sslvpn::proto::packet::{
    ControlPacket, KeyId, MAX_ACKS, MAX_PIGGYBACK_ACKS, Opcode, SessionId,
};
use sslvpn::proto::reliable::{ReceiveConfig, ReceiveWindow, SendConfig, SendWindow};
use sslvpn::proto::tls::Tls;

/// Largest TLS chunk per control message, well below the default control-channel MTU.
const MAX_CHUNK: usize = 1000;

pub struct Rekey {
    pub key_id: KeyId,
    own: SessionId,
    peer: SessionId,
    tls: Tls,
    send: SendWindow,
    receive: ReceiveWindow,
    tls_out: Vec<u8>,
    sent_key: bool,
    plaintext: Vec<u8>,
    /// Send PUSH_REQUEST right after the key method 2 message, which OpenVPN clients do only
    /// on the first key.
    pub push_request: bool,
}

impl Rekey {
    /// Starts a renegotiation for `key_id` between the client session `own` and the server
    /// session `peer`.
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        key_id: KeyId,
        own: SessionId,
        peer: SessionId,
    ) -> Self {
        let mut send = SendWindow::new(SendConfig::default());
        send.push(Opcode::SoftResetV1, Vec::new())
            .expect("a new window has room");
        Rekey {
            key_id,
            own,
            peer,
            tls: Tls::client(tls).expect("TLS client"),
            send,
            receive: ReceiveWindow::new(ReceiveConfig::default()),
            tls_out: Vec::new(),
            sent_key: false,
            plaintext: Vec::new(),
            push_request: false,
        }
    }

    /// Returns whether the key method 2 message went out and every message was acknowledged.
    pub fn is_done(&self) -> bool {
        self.sent_key && self.send.is_idle() && self.tls_out.is_empty()
    }

    /// Returns the control packets due at `now`, in the layout without protection.
    pub fn poll(&mut self, now: Instant) -> Vec<Vec<u8>> {
        self.pump();
        let mut packets = Vec::new();
        while let Some(transmit) = self.send.poll_transmit(now) {
            let acks = self.receive.take_acks(MAX_PIGGYBACK_ACKS);
            let packet = ControlPacket {
                opcode: transmit.opcode,
                key_id: self.key_id,
                session_id: self.own,
                acks,
                peer_session_id: Some(self.peer),
                message_id: Some(transmit.message_id),
                payload: transmit.payload,
            };
            let mut out = Vec::new();
            packet.encode(&mut out).expect("valid control packet");
            packets.push(out);
        }
        if self.receive.has_pending_acks() {
            let acks = self.receive.take_acks(MAX_ACKS);
            let mut out = Vec::new();
            ControlPacket::ack(self.key_id, self.own, acks, self.peer)
                .encode(&mut out)
                .expect("valid ACK packet");
            packets.push(out);
        }
        packets
    }

    /// Handles a server packet of this key id in the layout without protection.
    pub fn handle(&mut self, plain: &[u8]) {
        let Ok(packet) = ControlPacket::parse(plain) else {
            return;
        };
        if packet.key_id != self.key_id {
            return;
        }
        for &id in packet.acks.as_slice() {
            self.send.on_ack(id);
        }
        if let Some(id) = packet.message_id {
            let _ = self.receive.receive(id, packet.opcode, packet.payload);
        }
        while let Some(message) = self.receive.pop_message() {
            if message.opcode == Opcode::ControlV1 && self.tls.receive(&message.payload).is_err() {
                return;
            }
        }
        if !self.tls.is_handshaking() && !self.sent_key {
            self.send_key_message();
        }
        self.tls.read_plaintext(&mut self.plaintext);
        self.pump();
    }

    fn send_key_message(&mut self) {
        let message = ClientKeyMessage {
            pre_master: zeroize::Zeroizing::new([0x5a; 48]),
            random1: [0x11; 32],
            random2: [0x22; 32],
            options: "V4,dev-type tun,link-mtu 1557,tun-mtu 1500,proto UDPv4,cipher AES-128-CBC,auth SHA1,keysize 128,key-method 2,tls-client".to_owned(),
            username: None,
            password: None,
            peer_info: "IV_VER=2.6.14\nIV_PROTO=14\nIV_CIPHERS=AES-256-GCM\n".to_owned(),
        };
        let mut encoded = message.encode().expect("valid key message").to_vec();
        if self.push_request {
            encoded.extend_from_slice(b"PUSH_REQUEST\0");
        }
        if self.tls.write_plaintext(&encoded).is_ok() {
            self.sent_key = true;
        }
    }

    fn pump(&mut self) {
        self.tls.write_records(&mut self.tls_out);
        while !self.tls_out.is_empty() && self.send.available() > 0 {
            let take = self.tls_out.len().min(MAX_CHUNK);
            let chunk: Vec<u8> = self.tls_out.drain(..take).collect();
            if self.send.push(Opcode::ControlV1, chunk).is_err() {
                break;
            }
        }
    }
}
