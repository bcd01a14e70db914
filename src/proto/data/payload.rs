//! Payloads of decrypted data packets: IP packets, keepalive pings and OCC messages.

/// The payload of a keepalive ping (OpenVPN `ping.c`, `ping_string`). A received ping
/// is never written to the TUN device.
pub const PING_PAYLOAD: [u8; 16] = [
    0x2a, 0x18, 0x7b, 0xf3, 0x64, 0x1e, 0xb4, 0xcb, 0x07, 0xed, 0x2d, 0x0a, 0x98, 0x1f, 0xc7, 0x48,
];

/// The prefix of an OCC (options consistency check) message (OpenVPN `occ.c`,
/// `occ_magic`); one opcode byte follows.
pub const OCC_MAGIC: [u8; 16] = [
    0x28, 0x7f, 0x34, 0x6b, 0xd4, 0xef, 0x7a, 0x81, 0x2d, 0x56, 0xb8, 0xd3, 0xaf, 0xc5, 0x45, 0x9c,
];

/// An OCC opcode (OpenVPN `occ.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OccOp {
    /// A request for our options string.
    Request,
    /// The options string, NUL-terminated, follows.
    Reply,
    /// A request for a packet of the size in the following u16.
    MtuLoadRequest,
    /// A padding packet of the requested size.
    MtuLoad,
    /// A request for the largest packet size received so far.
    MtuRequest,
    /// Two u16 sizes follow: largest received, largest sent.
    MtuReply,
    /// The peer is leaving (sent by clients without `cc-exit` support).
    Exit,
    /// An opcode this version does not know; OpenVPN ignores such messages.
    Unknown(u8),
}

impl OccOp {
    /// Returns the opcode for its wire byte.
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            0 => OccOp::Request,
            1 => OccOp::Reply,
            2 => OccOp::MtuLoadRequest,
            3 => OccOp::MtuLoad,
            4 => OccOp::MtuRequest,
            5 => OccOp::MtuReply,
            6 => OccOp::Exit,
            other => OccOp::Unknown(other),
        }
    }

    /// Returns the wire byte of the opcode.
    pub fn to_byte(self) -> u8 {
        match self {
            OccOp::Request => 0,
            OccOp::Reply => 1,
            OccOp::MtuLoadRequest => 2,
            OccOp::MtuLoad => 3,
            OccOp::MtuRequest => 4,
            OccOp::MtuReply => 5,
            OccOp::Exit => 6,
            OccOp::Unknown(byte) => byte,
        }
    }
}

/// The content of a decrypted, unframed data channel payload.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Nothing; OpenVPN drops such a packet.
    Empty,
    /// A keepalive ping.
    Ping,
    /// An OCC message. `op` is `None` when the payload ends right after the magic, which
    /// OpenVPN ignores. `body` is what follows the opcode byte.
    Occ { op: Option<OccOp>, body: &'a [u8] },
    /// Anything else: a packet for the TUN device.
    Ip(&'a [u8]),
}

impl<'a> Payload<'a> {
    /// Classifies a payload the way OpenVPN does (`forward.c`, `process_incoming_link`):
    /// a ping must match exactly, an OCC message only starts with the magic.
    pub fn classify(payload: &'a [u8]) -> Self {
        if payload.is_empty() {
            return Payload::Empty;
        }
        if payload == PING_PAYLOAD {
            return Payload::Ping;
        }
        match payload.strip_prefix(&OCC_MAGIC) {
            Some([]) => Payload::Occ {
                op: None,
                body: &[],
            },
            Some([op, body @ ..]) => Payload::Occ {
                op: Some(OccOp::from_byte(*op)),
                body,
            },
            None => Payload::Ip(payload),
        }
    }
}

impl core::fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Payload::Empty => f.write_str("Empty"),
            Payload::Ping => f.write_str("Ping"),
            Payload::Occ { op, body } => f
                .debug_struct("Occ")
                .field("op", op)
                .field("body_len", &body.len())
                .finish(),
            Payload::Ip(bytes) => f.debug_struct("Ip").field("len", &bytes.len()).finish(),
        }
    }
}

/// Replaces the contents of `out` with an OCC message: magic, opcode and `body`.
pub fn write_occ(op: OccOp, body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&OCC_MAGIC);
    out.push(op.to_byte());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_ping() {
        assert_eq!(Payload::classify(&PING_PAYLOAD), Payload::Ping);
    }

    #[test]
    fn classify_ping_with_extra_byte_is_ip() {
        let mut longer = PING_PAYLOAD.to_vec();
        longer.push(0);
        assert_eq!(Payload::classify(&longer), Payload::Ip(&longer));
    }

    #[test]
    fn classify_empty() {
        assert_eq!(Payload::classify(&[]), Payload::Empty);
    }

    #[test]
    fn classify_ipv4_packet() {
        let packet = [0x45, 0x00, 0x00, 0x14, 0, 0, 0, 0, 64, 1, 0, 0];
        assert_eq!(Payload::classify(&packet), Payload::Ip(&packet));
    }

    #[test]
    fn classify_occ_exit() {
        let mut message = Vec::new();
        write_occ(OccOp::Exit, &[], &mut message);
        assert_eq!(message.len(), 17);
        assert_eq!(message[16], 6);
        assert_eq!(
            Payload::classify(&message),
            Payload::Occ {
                op: Some(OccOp::Exit),
                body: &[]
            }
        );
    }

    #[test]
    fn classify_occ_with_body() {
        let mut message = Vec::new();
        write_occ(OccOp::MtuReply, &[0x05, 0xdc, 0x05, 0x78], &mut message);
        assert_eq!(
            Payload::classify(&message),
            Payload::Occ {
                op: Some(OccOp::MtuReply),
                body: &[0x05, 0xdc, 0x05, 0x78]
            }
        );
    }

    #[test]
    fn classify_occ_without_opcode() {
        assert_eq!(
            Payload::classify(&OCC_MAGIC),
            Payload::Occ {
                op: None,
                body: &[]
            }
        );
    }

    #[test]
    fn occ_opcodes_round_trip() {
        for byte in 0..=u8::MAX {
            assert_eq!(OccOp::from_byte(byte).to_byte(), byte);
        }
        assert_eq!(OccOp::from_byte(0), OccOp::Request);
        assert_eq!(OccOp::from_byte(1), OccOp::Reply);
        assert_eq!(OccOp::from_byte(7), OccOp::Unknown(7));
    }

    #[test]
    fn payload_debug_hides_bytes() {
        let packet = [0x45, 0xde, 0xad, 0xbe, 0xef];
        let text = format!("{:?}", Payload::classify(&packet));
        assert_eq!(text, "Ip { len: 5 }");
    }
}
