//! Data packet headers.
//!
//! DATA_V1 has only the op/key_id byte. DATA_V2 has four bytes, big-endian
//! `(op << 3 | key_id) << 24 | peer_id`, where peer id 0xFFFFFF means "no peer id"
//! (`ssl.c` and `crypto.c` in OpenVPN).

use super::{KeyId, Opcode, PacketError, first_byte};

/// Peer id value that a DATA_V2 header carries when the sender has no peer id.
pub const PEER_ID_NONE: u32 = 0x00ff_ffff;

/// Data packet format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataOpcode {
    V1,
    V2,
}

impl DataOpcode {
    /// Returns the header length on the wire.
    pub fn header_len(self) -> usize {
        match self {
            DataOpcode::V1 => 1,
            DataOpcode::V2 => 4,
        }
    }

    fn opcode(self) -> Opcode {
        match self {
            DataOpcode::V1 => Opcode::DataV1,
            DataOpcode::V2 => Opcode::DataV2,
        }
    }
}

/// Header of a data packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataHeader {
    pub opcode: DataOpcode,
    pub key_id: KeyId,
    /// Peer id of a DATA_V2 header, `None` when the wire value is [`PEER_ID_NONE`]. Always
    /// `None` for DATA_V1.
    pub peer_id: Option<u32>,
}

impl DataHeader {
    /// Parses the header and returns it with the bytes that follow it.
    pub fn parse(packet: &[u8]) -> Result<(DataHeader, &[u8]), PacketError> {
        let (opcode, key_id) = super::peek(packet)?;
        let opcode = match opcode {
            Opcode::DataV1 => DataOpcode::V1,
            Opcode::DataV2 => DataOpcode::V2,
            other => return Err(PacketError::NotData(other)),
        };
        let Some((header, rest)) = packet.split_at_checked(opcode.header_len()) else {
            return Err(PacketError::Truncated {
                field: "DATA_V2 peer id",
                needed: opcode.header_len(),
                remaining: packet.len(),
            });
        };
        let peer_id = match opcode {
            DataOpcode::V1 => None,
            DataOpcode::V2 => {
                let value = u32::from_be_bytes([0, header[1], header[2], header[3]]);
                (value != PEER_ID_NONE).then_some(value)
            }
        };
        let header = DataHeader {
            opcode,
            key_id,
            peer_id,
        };
        Ok((header, rest))
    }

    /// Returns the header length on the wire.
    pub fn encoded_len(&self) -> usize {
        self.opcode.header_len()
    }

    /// Appends the header to `out`. Fails, appending nothing, for a DATA_V1 header with a
    /// peer id or a peer id above 0xFFFFFE.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), PacketError> {
        let byte = first_byte(self.opcode.opcode(), self.key_id);
        match (self.opcode, self.peer_id) {
            (DataOpcode::V1, None) => out.push(byte),
            (DataOpcode::V1, Some(peer_id)) => return Err(PacketError::PeerIdInDataV1(peer_id)),
            (DataOpcode::V2, Some(peer_id)) if peer_id >= PEER_ID_NONE => {
                return Err(PacketError::InvalidPeerId(peer_id));
            }
            (DataOpcode::V2, peer_id) => {
                let peer_id = peer_id.unwrap_or(PEER_ID_NONE);
                let word = u32::from(byte) << 24 | peer_id;
                out.extend_from_slice(&word.to_be_bytes());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(header: &DataHeader) -> Vec<u8> {
        let mut out = Vec::new();
        header.write(&mut out).unwrap();
        out
    }

    #[test]
    fn data_v2_layout() {
        let header = DataHeader {
            opcode: DataOpcode::V2,
            key_id: KeyId::new(2).unwrap(),
            peer_id: Some(0x0001_0203),
        };
        let bytes = write(&header);
        assert_eq!(bytes, [0x4a, 0x01, 0x02, 0x03]);
        let mut packet = bytes.clone();
        packet.extend_from_slice(b"rest");
        assert_eq!(DataHeader::parse(&packet), Ok((header, &b"rest"[..])));
    }

    #[test]
    fn data_v2_without_peer_id() {
        let header = DataHeader {
            opcode: DataOpcode::V2,
            key_id: KeyId::ZERO,
            peer_id: None,
        };
        let bytes = write(&header);
        assert_eq!(bytes, [0x48, 0xff, 0xff, 0xff]);
        assert_eq!(DataHeader::parse(&bytes), Ok((header, &[][..])));
    }

    #[test]
    fn data_v1_layout() {
        let header = DataHeader {
            opcode: DataOpcode::V1,
            key_id: KeyId::new(7).unwrap(),
            peer_id: None,
        };
        let bytes = write(&header);
        assert_eq!(bytes, [0x37]);
        assert_eq!(DataHeader::parse(&[0x37, 9]), Ok((header, &[9][..])));
    }

    #[test]
    fn truncated_data_v2_rejected() {
        for len in 1..4 {
            let bytes = &[0x48, 0, 0][..len];
            assert_eq!(
                DataHeader::parse(bytes),
                Err(PacketError::Truncated {
                    field: "DATA_V2 peer id",
                    needed: 4,
                    remaining: len,
                })
            );
        }
    }

    #[test]
    fn control_opcode_is_not_data() {
        assert_eq!(
            DataHeader::parse(&[0x20, 0, 0, 0]),
            Err(PacketError::NotData(Opcode::ControlV1))
        );
        assert_eq!(DataHeader::parse(&[]), Err(PacketError::Empty));
    }

    #[test]
    fn write_rejects_invalid_peer_ids() {
        let mut out = Vec::new();
        let v1 = DataHeader {
            opcode: DataOpcode::V1,
            key_id: KeyId::ZERO,
            peer_id: Some(1),
        };
        assert_eq!(v1.write(&mut out), Err(PacketError::PeerIdInDataV1(1)));
        let v2 = DataHeader {
            opcode: DataOpcode::V2,
            key_id: KeyId::ZERO,
            peer_id: Some(PEER_ID_NONE),
        };
        assert_eq!(
            v2.write(&mut out),
            Err(PacketError::InvalidPeerId(PEER_ID_NONE))
        );
        assert!(out.is_empty());
    }
}
