//! The control channel's reliability layer: message ids, selective ACKs, retransmission with
//! back-off, the send window, the receive buffer and in-order delivery.
//!
//! Every message that needs delivery (CONTROL_V1, HARD_RESET_*, SOFT_RESET_V1,
//! CONTROL_WKC_V1) carries a message id. Ids start at 0 in each direction and grow by one per
//! message without gaps. The receiver acknowledges ids selectively, standalone in ACK_V1 or
//! piggybacked on its own messages. Behaviour follows OpenVPN's `reliable.c` and `ssl.c`.
//!
//! [`SendWindow`] and [`ReceiveWindow`] are independent. A session owns one of each per key
//! state and moves acknowledged ids from incoming packets into [`SendWindow::on_ack`] and ids
//! to acknowledge out of [`ReceiveWindow::take_acks`].
//!
//! One round of a session with the codec and the protection layer:
//!
//! ```
//! use std::time::Instant;
//! use sslvpn::proto::packet::{ControlPacket, KeyId, MAX_ACKS, MAX_PIGGYBACK_ACKS, Opcode, SessionId};
//! use sslvpn::proto::reliable::*;
//! use sslvpn::proto::wrap::ControlWrap;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (own, peer) = (SessionId([1; 8]), SessionId([2; 8]));
//! let mut send = SendWindow::new(SendConfig::default());
//! let mut receive = ReceiveWindow::new(ReceiveConfig::default());
//! let mut protection = ControlWrap::None;
//! let (now, now_unix) = (Instant::now(), 1_700_000_000);
//!
//! // Outgoing TLS bytes: queue as many pieces as the window takes, then transmit.
//! let tls_output = vec![0x16; 3000];
//! let max_payload = max_control_payload(TLS_MTU_DEFAULT, protection.mtu_overhead(), false);
//! for piece in fragment(&tls_output, max_payload).take(send.available()) {
//!     send.push(Opcode::ControlV1, piece.to_vec())?;
//! }
//! let mut datagrams = Vec::new();
//! while let Some(transmit) = send.poll_transmit(now) {
//!     let packet = ControlPacket {
//!         opcode: transmit.opcode,
//!         key_id: KeyId::ZERO,
//!         session_id: own,
//!         acks: receive.take_acks(MAX_PIGGYBACK_ACKS),
//!         peer_session_id: Some(peer),
//!         message_id: Some(transmit.message_id),
//!         payload: transmit.payload,
//!     };
//!     let mut plain = Vec::new();
//!     packet.encode(&mut plain)?;
//!     let mut wire = Vec::new();
//!     protection.wrap(&plain, now_unix, &mut wire)?;
//!     datagrams.push(wire);
//! }
//! assert_eq!(datagrams.len(), 3);
//!
//! // An incoming packet (here the first datagram, looped back): unwrap, parse, apply its
//! // ACKs, store its message.
//! let wire = datagrams.remove(0);
//! let mut plain = Vec::new();
//! protection.unwrap(&wire, &mut plain)?;
//! let packet = ControlPacket::parse(&plain)?;
//! for &id in packet.acks.as_slice() {
//!     send.on_ack(id);
//! }
//! if let Some(message_id) = packet.message_id {
//!     receive.receive(message_id, packet.opcode, packet.payload)?;
//! }
//! while let Some(message) = receive.pop_message() {
//!     assert_eq!(message.payload.len(), max_payload); // hand this to TLS
//! }
//! // ACKs that no outgoing message carried go out in ACK_V1 packets.
//! while receive.has_pending_acks() {
//!     let ack = ControlPacket::ack(KeyId::ZERO, own, receive.take_acks(MAX_ACKS), peer);
//!     ack.encode(&mut Vec::new())?;
//! }
//! # Ok(())
//! # }
//! ```

mod receive;
mod send;

pub use receive::{ReceiveConfig, ReceiveError, ReceiveOutcome, ReceiveWindow, ReceivedMessage};
pub use send::{SendConfig, SendError, SendWindow, Transmit};

use crate::proto::packet::{AckList, MAX_PIGGYBACK_ACKS, SESSION_ID_LEN};

/// Default `tls-mtu` of OpenVPN 2.6 and later (`TLS_MTU_DEFAULT` in `mtu.h`).
pub const TLS_MTU_DEFAULT: usize = 1250;

/// Smallest `tls-mtu` that OpenVPN accepts (`TLS_CHANNEL_MTU_MIN` in `common.h`).
pub const TLS_MTU_MIN: usize = 154;

/// Largest `tls-mtu` that OpenVPN accepts (`TLS_CHANNEL_BUF_SIZE` in `common.h`).
pub const TLS_MTU_MAX: usize = 2048;

/// Payload size that OpenVPN falls back to when the overhead leaves less.
const MIN_CONTROL_PAYLOAD: usize = 16;

/// Returns the maximum payload of one control message for a control channel MTU.
///
/// This repeats OpenVPN's calculation (`write_outgoing_tls_ciphertext` and
/// `calc_control_channel_frame_overhead` in `ssl.c`, 2.6 and master). `tls_mtu` is clamped to
/// [`TLS_MTU_MIN`]..=[`TLS_MTU_MAX`], then reduced by the opcode byte, the own session id, an
/// ack section with [`MAX_PIGGYBACK_ACKS`] ids, the message id, the protection overhead
/// (`wrap_overhead`, see `ControlWrap::overhead`) and the IPv4 or IPv6 plus UDP header
/// (28 or 48 bytes; OpenVPN counts UDP even on TCP). Like OpenVPN, the result is never below
/// 16 bytes. With the default 1250 and no protection, an IPv4 peer gets 1184 bytes.
pub fn max_control_payload(tls_mtu: usize, wrap_overhead: usize, peer_is_ipv6: bool) -> usize {
    let mtu = tls_mtu.clamp(TLS_MTU_MIN, TLS_MTU_MAX);
    let ip_udp_header = if peer_is_ipv6 { 40 + 8 } else { 20 + 8 };
    let mut acks = AckList::new();
    for id in 0..MAX_PIGGYBACK_ACKS as u32 {
        acks.push(id);
    }
    let overhead = 1 + SESSION_ID_LEN + acks.wire_len() + 4 + wrap_overhead + ip_udp_header;
    mtu.saturating_sub(overhead).max(MIN_CONTROL_PAYLOAD)
}

/// Cuts a byte stream, such as TLS output, into message payloads of at most `max_payload`
/// bytes each. A `max_payload` of 0 acts as 1.
pub fn fragment(data: &[u8], max_payload: usize) -> std::slice::Chunks<'_, u8> {
    data.chunks(max_payload.max(1))
}

/// Returns whether message id `a` comes before `b`, allowing for wrap-around of the u32 ids.
fn id_before(a: u32, b: u32) -> bool {
    let distance = b.wrapping_sub(a);
    distance != 0 && distance < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_payload_matches_openvpn() {
        assert_eq!(max_control_payload(TLS_MTU_DEFAULT, 0, false), 1184);
        assert_eq!(max_control_payload(TLS_MTU_DEFAULT, 0, true), 1164);
    }

    #[test]
    fn payload_shrinks_by_wrap_overhead() {
        let tls_auth_sha1 = 20 + 8;
        let tls_crypt = 8 + 32 + 16;
        assert_eq!(max_control_payload(1250, tls_auth_sha1, false), 1156);
        assert_eq!(max_control_payload(1250, tls_crypt, false), 1128);
    }

    #[test]
    fn payload_clamps_mtu() {
        assert_eq!(max_control_payload(100_000, 0, false), 2048 - 66);
        assert_eq!(max_control_payload(0, 0, false), 154 - 66);
        assert_eq!(max_control_payload(154, 200, true), 16);
    }

    #[test]
    fn fragment_cuts_pieces() {
        let data: Vec<u8> = (0..=9).collect();
        let pieces: Vec<&[u8]> = fragment(&data, 4).collect();
        assert_eq!(pieces, [&[0, 1, 2, 3][..], &[4, 5, 6, 7], &[8, 9]]);
        assert_eq!(fragment(&data, 0).count(), 10);
        assert_eq!(fragment(&[], 4).count(), 0);
    }

    #[test]
    fn id_order_wraps() {
        assert!(id_before(1, 2));
        assert!(!id_before(2, 1));
        assert!(!id_before(5, 5));
        assert!(id_before(u32::MAX, 0));
        assert!(!id_before(0, u32::MAX));
    }
}

#[cfg(test)]
mod sim_tests;
