//! OpenVPN packet codec: opcodes, key ids, session ids, control packets, data packet headers
//! and TCP length framing.
//!
//! Every packet starts with one byte, `opcode << 3 | key_id` (`ssl_pkt.h` in OpenVPN). The
//! parsers here accept any bytes without panicking and return a [`PacketError`] that names the
//! offending value.

mod control;
mod data;
mod stream;

use std::fmt;

pub use control::{AckList, ControlPacket, MAX_ACKS, MAX_PIGGYBACK_ACKS};
pub use data::{DataHeader, DataOpcode, PEER_ID_NONE};
pub use stream::{FramingError, MAX_FRAMED_LEN, StreamDecoder, frame_into};

/// Length of a session id on the wire.
pub const SESSION_ID_LEN: usize = 8;

/// Length of a message id, an acknowledged id or a peer id field on the wire.
pub const ID_LEN: usize = 4;

const OPCODE_SHIFT: u8 = 3;
const KEY_ID_MASK: u8 = 0x07;

/// Errors from parsing or encoding packets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("empty packet")]
    Empty,
    #[error("unknown opcode {0}")]
    UnknownOpcode(u8),
    #[error(
        "opcode {0:?} belongs to key method 1, which is not supported; the client must use \
         key-method 2"
    )]
    KeyMethod1(Opcode),
    #[error("opcode {0:?} is not a control channel opcode")]
    NotControl(Opcode),
    #[error("opcode {0:?} is not a data channel opcode")]
    NotData(Opcode),
    #[error("packet truncated in {field}: {needed} bytes needed, {remaining} left")]
    Truncated {
        field: &'static str,
        needed: usize,
        remaining: usize,
    },
    #[error("ack count {0} exceeds the maximum of 8")]
    TooManyAcks(usize),
    #[error("invalid key id {0}, expected 0 to 7")]
    InvalidKeyId(u8),
    #[error("invalid peer id {0:#x}, expected at most 0xfffffe")]
    InvalidPeerId(u32),
    #[error("packet acknowledges {0} ids but has no peer session id")]
    MissingPeerSessionId(usize),
    #[error("opcode {0:?} requires a message id")]
    MissingMessageId(Opcode),
    #[error("ACK_V1 carries neither a message id nor a payload")]
    AckWithMessage,
    #[error("DATA_V1 header has no peer id field, but peer id {0:#x} was given")]
    PeerIdInDataV1(u32),
}

/// Packet opcode, the high five bits of the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Key method 1 client reset. Obsolete, rejected by [`ControlPacket::parse`].
    HardResetClientV1 = 1,
    /// Key method 1 server reset. Obsolete, rejected by [`ControlPacket::parse`].
    HardResetServerV1 = 2,
    /// Starts a renegotiation with a new key id.
    SoftResetV1 = 3,
    /// Reliable control message carrying TLS bytes.
    ControlV1 = 4,
    /// Acknowledgements only.
    AckV1 = 5,
    /// Data packet with a one-byte header.
    DataV1 = 6,
    /// Client session start.
    HardResetClientV2 = 7,
    /// Server reply to [`Opcode::HardResetClientV2`] or [`Opcode::HardResetClientV3`].
    HardResetServerV2 = 8,
    /// Data packet with a four-byte header that carries a 24-bit peer id.
    DataV2 = 9,
    /// Client session start followed by a tls-crypt-v2 wrapped client key.
    HardResetClientV3 = 10,
    /// [`Opcode::ControlV1`] followed by a tls-crypt-v2 wrapped client key.
    ControlWkcV1 = 11,
}

impl Opcode {
    /// Converts the five-bit opcode value, returning `None` for values outside 1..=11.
    pub fn from_u8(value: u8) -> Option<Opcode> {
        let opcode = match value {
            1 => Opcode::HardResetClientV1,
            2 => Opcode::HardResetServerV1,
            3 => Opcode::SoftResetV1,
            4 => Opcode::ControlV1,
            5 => Opcode::AckV1,
            6 => Opcode::DataV1,
            7 => Opcode::HardResetClientV2,
            8 => Opcode::HardResetServerV2,
            9 => Opcode::DataV2,
            10 => Opcode::HardResetClientV3,
            11 => Opcode::ControlWkcV1,
            _ => return None,
        };
        Some(opcode)
    }

    /// Returns the five-bit opcode value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Returns whether packets with this opcode belong to the control channel, including the
    /// obsolete key method 1 resets.
    pub fn is_control(self) -> bool {
        !self.is_data()
    }

    /// Returns whether packets with this opcode belong to the data channel.
    pub fn is_data(self) -> bool {
        matches!(self, Opcode::DataV1 | Opcode::DataV2)
    }

    /// Returns whether packets with this opcode carry a message id and go through the
    /// reliability layer.
    pub fn is_reliable(self) -> bool {
        self.is_control() && self != Opcode::AckV1
    }

    /// Returns whether the opcode belongs to key method 1.
    pub fn is_key_method_1(self) -> bool {
        matches!(self, Opcode::HardResetClientV1 | Opcode::HardResetServerV1)
    }
}

/// Key id, the low three bits of the first byte.
///
/// Key id 0 belongs to the first key of a session. Every renegotiation moves to the
/// [`next`](KeyId::next) value, which cycles through 1..=7 and never returns to 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct KeyId(u8);

impl KeyId {
    /// Key id of the first key of a session.
    pub const ZERO: KeyId = KeyId(0);

    /// Creates a key id, rejecting values above 7.
    pub fn new(value: u8) -> Result<KeyId, PacketError> {
        if value > KEY_ID_MASK {
            return Err(PacketError::InvalidKeyId(value));
        }
        Ok(KeyId(value))
    }

    /// Returns the key id as a number in 0..=7.
    pub fn get(self) -> u8 {
        self.0
    }

    /// Returns the key id that the next renegotiation uses: 1..=7, wrapping from 7 to 1.
    pub fn next(self) -> KeyId {
        if self.0 >= KEY_ID_MASK {
            KeyId(1)
        } else {
            KeyId(self.0 + 1)
        }
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Session id: 8 random bytes that each side picks once per session. Renegotiations keep it.
///
/// A session id is not secret, so `Debug` and `Display` print it in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SessionId(pub [u8; SESSION_ID_LEN]);

impl SessionId {
    /// Returns the session id's bytes.
    pub fn as_bytes(&self) -> &[u8; SESSION_ID_LEN] {
        &self.0
    }

    /// Returns whether the id is all zero bytes, which OpenVPN treats as "not set".
    pub fn is_zero(&self) -> bool {
        self.0 == [0; SESSION_ID_LEN]
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Returns the first byte of a packet for an opcode and key id.
pub fn first_byte(opcode: Opcode, key_id: KeyId) -> u8 {
    opcode.as_u8() << OPCODE_SHIFT | key_id.get()
}

/// Reads the opcode and key id from the first byte of a packet without parsing the rest.
///
/// Key method 1 opcodes are returned as they are, so that a caller can log them before
/// [`ControlPacket::parse`] rejects them.
pub fn peek(packet: &[u8]) -> Result<(Opcode, KeyId), PacketError> {
    let Some(&byte) = packet.first() else {
        return Err(PacketError::Empty);
    };
    let value = byte >> OPCODE_SHIFT;
    let opcode = Opcode::from_u8(value).ok_or(PacketError::UnknownOpcode(value))?;
    Ok((opcode, KeyId(byte & KEY_ID_MASK)))
}

/// Cursor over untrusted bytes whose reads fail with [`PacketError::Truncated`].
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], PacketError> {
        let Some((head, tail)) = self.rest.split_at_checked(len) else {
            return Err(PacketError::Truncated {
                field,
                needed: len,
                remaining: self.rest.len(),
            });
        };
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, PacketError> {
        Ok(self.take(1, field)?[0])
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, PacketError> {
        let bytes = self.take(ID_LEN, field)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn session_id(&mut self, field: &'static str) -> Result<SessionId, PacketError> {
        let bytes = self.take(SESSION_ID_LEN, field)?;
        let mut id = [0; SESSION_ID_LEN];
        id.copy_from_slice(bytes);
        Ok(SessionId(id))
    }

    fn rest(self) -> &'a [u8] {
        self.rest
    }
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_OPCODES: [Opcode; 11] = [
        Opcode::HardResetClientV1,
        Opcode::HardResetServerV1,
        Opcode::SoftResetV1,
        Opcode::ControlV1,
        Opcode::AckV1,
        Opcode::DataV1,
        Opcode::HardResetClientV2,
        Opcode::HardResetServerV2,
        Opcode::DataV2,
        Opcode::HardResetClientV3,
        Opcode::ControlWkcV1,
    ];

    #[test]
    fn opcode_values_round_trip() {
        for opcode in ALL_OPCODES {
            assert_eq!(Opcode::from_u8(opcode.as_u8()), Some(opcode));
        }
    }

    #[test]
    fn opcode_values_outside_range_are_unknown() {
        assert_eq!(Opcode::from_u8(0), None);
        for value in 12..=31 {
            assert_eq!(Opcode::from_u8(value), None, "value {value}");
        }
    }

    #[test]
    fn opcode_classes() {
        assert!(Opcode::DataV1.is_data());
        assert!(Opcode::DataV2.is_data());
        assert!(!Opcode::DataV2.is_control());
        assert!(Opcode::ControlV1.is_control());
        assert!(Opcode::AckV1.is_control());
        assert!(!Opcode::AckV1.is_reliable());
        assert!(Opcode::HardResetClientV2.is_reliable());
        assert!(Opcode::HardResetClientV1.is_key_method_1());
        assert!(!Opcode::HardResetClientV2.is_key_method_1());
    }

    #[test]
    fn key_id_next_skips_zero() {
        let mut key_id = KeyId::ZERO;
        let mut seen = Vec::new();
        for _ in 0..9 {
            key_id = key_id.next();
            seen.push(key_id.get());
        }
        assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7, 1, 2]);
    }

    #[test]
    fn key_id_rejects_eight() {
        assert_eq!(KeyId::new(8), Err(PacketError::InvalidKeyId(8)));
        assert_eq!(KeyId::new(7).map(KeyId::get), Ok(7));
    }

    #[test]
    fn peek_reads_first_byte() {
        let key_id = KeyId::new(5).unwrap();
        let byte = first_byte(Opcode::DataV2, key_id);
        assert_eq!(byte, 0x4d);
        assert_eq!(peek(&[byte, 1, 2]), Ok((Opcode::DataV2, key_id)));
    }

    #[test]
    fn peek_rejects_empty_and_unknown() {
        assert_eq!(peek(&[]), Err(PacketError::Empty));
        assert_eq!(peek(&[0x07]), Err(PacketError::UnknownOpcode(0)));
        assert_eq!(peek(&[12 << 3]), Err(PacketError::UnknownOpcode(12)));
    }

    #[test]
    fn session_id_prints_hex() {
        let id = SessionId([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        assert_eq!(format!("{id:?}"), "SessionId(0123456789abcdef)");
        assert!(!id.is_zero());
        assert!(SessionId::default().is_zero());
    }
}
