//! Control packets without control-channel protection.
//!
//! Layout (`ssl_pkt.c` and `reliable.c` in OpenVPN):
//!
//! ```text
//! op/key_id (1) | own session id (8) | ack count (1) | acked message ids (4 each)
//!   | peer session id (8, only when ack count > 0)
//!   | message id (4, absent in ACK_V1) | payload (absent in ACK_V1)
//! ```
//!
//! tls-auth and tls-crypt turn this layout into their own wire format and back (see
//! `proto::wrap`). HARD_RESET_CLIENT_V3 and CONTROL_WKC_V1 have the same layout once the
//! tls-crypt-v2 wrapped client key at their end has been removed.

use std::fmt;

use super::{ID_LEN, KeyId, Opcode, PacketError, Reader, SESSION_ID_LEN, SessionId, first_byte};

/// Maximum number of acknowledged ids in one packet (`RELIABLE_ACK_SIZE` in OpenVPN).
pub const MAX_ACKS: usize = 8;

/// Maximum number of acknowledged ids that OpenVPN puts on a packet that also carries a
/// message (`CONTROL_SEND_ACK_MAX`). Some third-party servers drop packets with more.
pub const MAX_PIGGYBACK_ACKS: usize = 4;

/// Up to [`MAX_ACKS`] acknowledged message ids, in wire order.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct AckList {
    ids: [u32; MAX_ACKS],
    len: u8,
}

impl AckList {
    /// Creates an empty list.
    pub fn new() -> AckList {
        AckList::default()
    }

    /// Appends an id, returning `false` when the list is full.
    pub fn push(&mut self, id: u32) -> bool {
        let Some(slot) = self.ids.get_mut(usize::from(self.len)) else {
            return false;
        };
        *slot = id;
        self.len += 1;
        true
    }

    /// Returns the ids in wire order.
    pub fn as_slice(&self) -> &[u32] {
        &self.ids[..usize::from(self.len)]
    }

    /// Returns the number of ids.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Returns whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns whether the list contains [`MAX_ACKS`] ids.
    pub fn is_full(&self) -> bool {
        self.len() == MAX_ACKS
    }

    /// Returns the number of bytes that the ack count, the ids and the peer session id take
    /// on the wire (`ACK_SIZE` in OpenVPN's `reliable.h`).
    pub fn wire_len(&self) -> usize {
        ack_section_len(self.len())
    }
}

impl TryFrom<&[u32]> for AckList {
    type Error = PacketError;

    fn try_from(ids: &[u32]) -> Result<AckList, PacketError> {
        if ids.len() > MAX_ACKS {
            return Err(PacketError::TooManyAcks(ids.len()));
        }
        let mut list = AckList::new();
        for &id in ids {
            list.push(id);
        }
        Ok(list)
    }
}

impl fmt::Debug for AckList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Returns the wire length of an ack section with `count` ids.
pub(crate) fn ack_section_len(count: usize) -> usize {
    let peer_session_id = if count > 0 { SESSION_ID_LEN } else { 0 };
    1 + count * ID_LEN + peer_session_id
}

/// A parsed or to-be-encoded control packet. The payload borrows from the parsed buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket<'a> {
    pub opcode: Opcode,
    pub key_id: KeyId,
    /// Session id of the sender.
    pub session_id: SessionId,
    /// Message ids of the receiver's messages that the sender acknowledges.
    pub acks: AckList,
    /// Session id of the receiver. The wire carries it only when `acks` is not empty, so
    /// [`encode`](ControlPacket::encode) ignores it otherwise and `parse` returns `None`.
    pub peer_session_id: Option<SessionId>,
    /// Reliability layer message id, `None` exactly for ACK_V1.
    pub message_id: Option<u32>,
    /// TLS bytes for CONTROL_V1. Reset packets usually carry none, but OpenVPN 2.6 servers may
    /// put early negotiation data into HARD_RESET_SERVER_V2. Empty for ACK_V1.
    pub payload: &'a [u8],
}

impl<'a> ControlPacket<'a> {
    /// Creates an ACK_V1 packet.
    pub fn ack(
        key_id: KeyId,
        session_id: SessionId,
        acks: AckList,
        peer_session_id: SessionId,
    ) -> ControlPacket<'static> {
        ControlPacket {
            opcode: Opcode::AckV1,
            key_id,
            session_id,
            acks,
            peer_session_id: Some(peer_session_id),
            message_id: None,
            payload: &[],
        }
    }

    /// Parses a control packet in the layout without protection.
    ///
    /// Rejects data opcodes, the key method 1 opcodes 1 and 2, unknown opcodes, more than
    /// [`MAX_ACKS`] acks, truncated fields and bytes after the ack section of an ACK_V1.
    pub fn parse(packet: &'a [u8]) -> Result<ControlPacket<'a>, PacketError> {
        let (opcode, key_id) = super::peek(packet)?;
        check_control_opcode(opcode)?;

        let mut reader = Reader::new(packet);
        reader.u8("opcode")?;
        let session_id = reader.session_id("session id")?;

        let count = usize::from(reader.u8("ack count")?);
        if count > MAX_ACKS {
            return Err(PacketError::TooManyAcks(count));
        }
        let mut acks = AckList::new();
        for _ in 0..count {
            acks.push(reader.u32("acked message id")?);
        }
        let peer_session_id = if count > 0 {
            Some(reader.session_id("peer session id")?)
        } else {
            None
        };

        let message_id = if opcode == Opcode::AckV1 {
            if !reader.rest.is_empty() {
                return Err(PacketError::AckWithMessage);
            }
            None
        } else {
            Some(reader.u32("message id")?)
        };

        Ok(ControlPacket {
            opcode,
            key_id,
            session_id,
            acks,
            peer_session_id,
            message_id,
            payload: reader.rest(),
        })
    }

    /// Returns the number of bytes that [`encode`](ControlPacket::encode) appends.
    pub fn encoded_len(&self) -> usize {
        let message_id = if self.message_id.is_some() { ID_LEN } else { 0 };
        1 + SESSION_ID_LEN + self.acks.wire_len() + message_id + self.payload.len()
    }

    /// Appends the packet in the layout without protection to `out`, leaving earlier bytes
    /// of `out` in place. On error nothing is appended.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PacketError> {
        self.validate()?;
        out.reserve(self.encoded_len());
        out.push(first_byte(self.opcode, self.key_id));
        out.extend_from_slice(self.session_id.as_bytes());
        out.push(self.acks.len() as u8);
        for id in self.acks.as_slice() {
            out.extend_from_slice(&id.to_be_bytes());
        }
        if let (false, Some(peer)) = (self.acks.is_empty(), self.peer_session_id) {
            out.extend_from_slice(peer.as_bytes());
        }
        if let Some(id) = self.message_id {
            out.extend_from_slice(&id.to_be_bytes());
        }
        out.extend_from_slice(self.payload);
        Ok(())
    }

    fn validate(&self) -> Result<(), PacketError> {
        check_control_opcode(self.opcode)?;
        if !self.acks.is_empty() && self.peer_session_id.is_none() {
            return Err(PacketError::MissingPeerSessionId(self.acks.len()));
        }
        if self.opcode == Opcode::AckV1 {
            if self.message_id.is_some() || !self.payload.is_empty() {
                return Err(PacketError::AckWithMessage);
            }
        } else if self.message_id.is_none() {
            return Err(PacketError::MissingMessageId(self.opcode));
        }
        Ok(())
    }
}

fn check_control_opcode(opcode: Opcode) -> Result<(), PacketError> {
    if opcode.is_key_method_1() {
        return Err(PacketError::KeyMethod1(opcode));
    }
    if opcode.is_data() {
        return Err(PacketError::NotControl(opcode));
    }
    Ok(())
}

impl fmt::Debug for ControlPacket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPacket")
            .field("opcode", &self.opcode)
            .field("key_id", &self.key_id.get())
            .field("session_id", &self.session_id)
            .field("acks", &self.acks)
            .field("peer_session_id", &self.peer_session_id)
            .field("message_id", &self.message_id)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: SessionId = SessionId([1, 2, 3, 4, 5, 6, 7, 8]);
    const PEER: SessionId = SessionId([0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8]);

    const RELIABLE_OPCODES: [Opcode; 6] = [
        Opcode::SoftResetV1,
        Opcode::ControlV1,
        Opcode::HardResetClientV2,
        Opcode::HardResetServerV2,
        Opcode::HardResetClientV3,
        Opcode::ControlWkcV1,
    ];

    fn key_id(value: u8) -> KeyId {
        KeyId::new(value).unwrap()
    }

    fn encode(packet: &ControlPacket<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        packet.encode(&mut out).unwrap();
        out
    }

    fn sample(opcode: Opcode, acks: &[u32], payload: &'static [u8]) -> ControlPacket<'static> {
        ControlPacket {
            opcode,
            key_id: key_id(3),
            session_id: OWN,
            acks: AckList::try_from(acks).unwrap(),
            peer_session_id: if acks.is_empty() { None } else { Some(PEER) },
            message_id: Some(0x0102_0304),
            payload,
        }
    }

    #[test]
    fn reliable_opcodes_round_trip() {
        for opcode in RELIABLE_OPCODES {
            for acks in [
                &[][..],
                &[7],
                &[1, 2, 3, 4],
                &[0, 1, 2, 3, 4, 5, 6, u32::MAX],
            ] {
                let packet = sample(opcode, acks, b"tls bytes");
                let bytes = encode(&packet);
                assert_eq!(bytes.len(), packet.encoded_len());
                assert_eq!(
                    ControlPacket::parse(&bytes),
                    Ok(packet),
                    "{opcode:?} {acks:?}"
                );
            }
        }
    }

    #[test]
    fn ack_round_trip() {
        let acks = AckList::try_from(&[5, 6][..]).unwrap();
        let packet = ControlPacket::ack(key_id(1), OWN, acks, PEER);
        let bytes = encode(&packet);
        assert_eq!(ControlPacket::parse(&bytes), Ok(packet));
    }

    #[test]
    fn data_opcodes_are_not_control() {
        for opcode in [Opcode::DataV1, Opcode::DataV2] {
            let bytes = [first_byte(opcode, KeyId::ZERO); 20];
            assert_eq!(
                ControlPacket::parse(&bytes),
                Err(PacketError::NotControl(opcode))
            );
            let mut packet = sample(Opcode::ControlV1, &[], b"");
            packet.opcode = opcode;
            assert_eq!(
                packet.encode(&mut Vec::new()),
                Err(PacketError::NotControl(opcode))
            );
        }
    }

    #[test]
    fn control_v1_wire_layout() {
        let packet = sample(Opcode::ControlV1, &[9], b"hi");
        let expected = hex::decode(concat!(
            "23",               // opcode 4, key id 3
            "0102030405060708", // own session id
            "01",               // one ack
            "00000009",         // acked id
            "a1a2a3a4a5a6a7a8", // peer session id
            "01020304",         // message id
            "6869",             // payload
        ))
        .unwrap();
        assert_eq!(encode(&packet), expected);
    }

    #[test]
    fn ack_v1_wire_layout() {
        let acks = AckList::try_from(&[0][..]).unwrap();
        let packet = ControlPacket::ack(KeyId::ZERO, OWN, acks, PEER);
        let expected = hex::decode(concat!(
            "28",
            "0102030405060708",
            "01",
            "00000000",
            "a1a2a3a4a5a6a7a8"
        ))
        .unwrap();
        assert_eq!(encode(&packet), expected);
    }

    #[test]
    fn encode_appends() {
        let mut out = vec![0xee, 0xff];
        sample(Opcode::ControlV1, &[], b"x")
            .encode(&mut out)
            .unwrap();
        assert_eq!(&out[..2], &[0xee, 0xff]);
        assert_eq!(out[2], 0x23);
    }

    #[test]
    fn key_method_1_rejected() {
        for opcode in [Opcode::HardResetClientV1, Opcode::HardResetServerV1] {
            let mut bytes = encode(&sample(Opcode::ControlV1, &[], b""));
            bytes[0] = first_byte(opcode, KeyId::ZERO);
            let error = ControlPacket::parse(&bytes).unwrap_err();
            assert_eq!(error, PacketError::KeyMethod1(opcode));
            assert!(error.to_string().contains("key-method 2"), "{error}");
        }
    }

    #[test]
    fn unknown_opcodes_rejected() {
        for value in [0u8, 12, 31] {
            let bytes = [value << 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            assert_eq!(
                ControlPacket::parse(&bytes),
                Err(PacketError::UnknownOpcode(value))
            );
        }
    }

    #[test]
    fn ack_count_above_eight_rejected() {
        let mut bytes = encode(&sample(Opcode::ControlV1, &[1, 2, 3, 4, 5, 6, 7, 8], b""));
        assert!(ControlPacket::parse(&bytes).is_ok());
        bytes[9] = 9;
        bytes.extend_from_slice(&[0; 4]);
        assert_eq!(
            ControlPacket::parse(&bytes),
            Err(PacketError::TooManyAcks(9))
        );
        bytes[9] = 255;
        assert_eq!(
            ControlPacket::parse(&bytes),
            Err(PacketError::TooManyAcks(255))
        );
    }

    #[test]
    fn truncation_rejected_at_every_length() {
        let packets = [
            sample(Opcode::ControlV1, &[1, 2], b""),
            sample(Opcode::HardResetClientV2, &[], b""),
            ControlPacket::ack(KeyId::ZERO, OWN, AckList::try_from(&[3][..]).unwrap(), PEER),
        ];
        for packet in packets {
            let bytes = encode(&packet);
            for len in 0..bytes.len() {
                let result = ControlPacket::parse(&bytes[..len]);
                assert!(result.is_err(), "{:?} cut to {len} parsed", packet.opcode);
            }
            assert!(ControlPacket::parse(&bytes).is_ok());
        }
    }

    #[test]
    fn truncation_names_field() {
        let bytes = encode(&sample(Opcode::ControlV1, &[1], b""));
        assert_eq!(
            ControlPacket::parse(&bytes[..12]),
            Err(PacketError::Truncated {
                field: "acked message id",
                needed: 4,
                remaining: 2,
            })
        );
    }

    #[test]
    fn ack_with_trailing_bytes_rejected() {
        let acks = AckList::try_from(&[0][..]).unwrap();
        let mut bytes = encode(&ControlPacket::ack(KeyId::ZERO, OWN, acks, PEER));
        bytes.push(0);
        assert_eq!(
            ControlPacket::parse(&bytes),
            Err(PacketError::AckWithMessage)
        );
    }

    #[test]
    fn encode_rejects_inconsistent_fields() {
        let mut packet = sample(Opcode::ControlV1, &[1], b"");
        packet.peer_session_id = None;
        assert_eq!(
            packet.encode(&mut Vec::new()),
            Err(PacketError::MissingPeerSessionId(1))
        );

        let mut packet = sample(Opcode::ControlV1, &[], b"");
        packet.message_id = None;
        assert_eq!(
            packet.encode(&mut Vec::new()),
            Err(PacketError::MissingMessageId(Opcode::ControlV1))
        );

        let mut packet = ControlPacket::ack(KeyId::ZERO, OWN, AckList::new(), PEER);
        packet.payload = b"x";
        let mut out = vec![1];
        assert_eq!(packet.encode(&mut out), Err(PacketError::AckWithMessage));
        assert_eq!(out, [1]);
    }

    #[test]
    fn peer_session_id_omitted_without_acks() {
        let mut packet = sample(Opcode::ControlV1, &[], b"");
        packet.peer_session_id = Some(PEER);
        let bytes = encode(&packet);
        assert_eq!(bytes.len(), 1 + 8 + 1 + 4);
        assert_eq!(ControlPacket::parse(&bytes).unwrap().peer_session_id, None);
    }

    #[test]
    fn ack_list_is_bounded() {
        let mut list = AckList::new();
        for id in 0..8 {
            assert!(list.push(id));
        }
        assert!(list.is_full());
        assert!(!list.push(8));
        assert_eq!(list.len(), 8);
        assert_eq!(
            AckList::try_from(&[0; 9][..]),
            Err(PacketError::TooManyAcks(9))
        );
    }

    #[test]
    fn debug_prints_payload_length_only() {
        let packet = sample(Opcode::ControlV1, &[], b"secret");
        let text = format!("{packet:?}");
        assert!(text.contains("payload_len: 6"), "{text}");
        assert!(!text.contains("115, 101"), "{text}");
    }
}
