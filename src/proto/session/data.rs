//! Compression framing around the data-channel ciphers, with reused buffers.

use std::ops::Range;

use crate::proto::data::{
    COMPRESSION_HEADROOM, CompressWorkspace, Compression, CompressionFraming, Encryptor,
    PING_PAYLOAD, Unframed,
};

/// The keepalive ping payload.
pub(super) const PING: [u8; 16] = PING_PAYLOAD;

/// Largest payload a decompressed packet may have: a full TUN MTU plus slack for headers.
const MAX_DECOMPRESSED: usize = 1600;

pub(super) struct DataChannel {
    workspace: CompressWorkspace,
}

impl DataChannel {
    pub(super) fn new() -> Self {
        Self {
            workspace: CompressWorkspace::new(),
        }
    }

    /// Frames and encrypts `payload` into `out`, which then contains exactly the packet.
    pub(super) fn seal(
        &mut self,
        encryptor: &mut Encryptor,
        header: &[u8],
        payload: &[u8],
        framing: CompressionFraming,
        out: &mut Vec<u8>,
    ) -> bool {
        let start = encryptor.headroom(header.len()) + COMPRESSION_HEADROOM;
        out.clear();
        out.resize(start, 0);
        out.extend_from_slice(payload);
        let end = out.len();
        out.resize(end + 1 + encryptor.tailroom(), 0);
        let compression = Compression::framing_only(framing);
        let Ok(framed) = compression.frame(out, start..end, &mut self.workspace) else {
            return false;
        };
        let Ok(packet) = encryptor.encrypt_in_place(header, out, framed) else {
            return false;
        };
        let len = packet.len();
        out.copy_within(packet, 0);
        out.truncate(len);
        true
    }

    /// Removes the compression framing of a decrypted payload.
    pub(super) fn unframe(
        &mut self,
        framing: CompressionFraming,
        packet: &mut [u8],
        payload: Range<usize>,
        decompressed: &mut Vec<u8>,
    ) -> Result<Unframed, &'static str> {
        if framing == CompressionFraming::None {
            return Ok(Unframed::InPlace(payload));
        }
        decompressed.resize(MAX_DECOMPRESSED, 0);
        Compression::framing_only(framing)
            .unframe(packet, payload, decompressed)
            .map_err(|_| "compression framing")
    }
}
