//! Compression framing of data channel payloads, inside the encryption.
//!
//! Framing bytes from OpenVPN's `comp.h`, `lzo.c`, `comp-lz4.c` and `compstub.c`. Every
//! payload is framed, including pings and OCC messages; an empty payload is left as is
//! because OpenVPN never sends one.

use core::ops::Range;

/// First byte of an LZO1X-compressed payload (`comp-lzo`, `compress lzo`).
const LZO_COMPRESSED: u8 = 0x66;
/// First byte of an uncompressed payload with `comp-lzo` framing.
const LZO_UNCOMPRESSED: u8 = 0xFA;
/// First byte of an LZ4-compressed payload with swap framing.
const SWAP_LZ4_COMPRESSED: u8 = 0x69;
/// First byte of an uncompressed payload with swap framing.
const SWAP_UNCOMPRESSED: u8 = 0xFB;
/// V2 framing escape: a payload starting with it carries a second framing byte.
const V2_INDICATOR: u8 = 0x50;
const V2_UNCOMPRESSED: u8 = 0x00;
const V2_LZ4: u8 = 0x01;
/// The second byte that OpenVPN 2.4 to 2.7 actually write when escaping a payload that
/// starts with 0x50: `compv2_escape_data_ifneeded` writes its algorithm id 10 instead of
/// the wire value 0. OpenVPN's own decoders reject it; no IP packet starts with 0x50.
const V2_UNCOMPRESSED_AS_SENT: u8 = 0x0A;

/// OpenVPN's `COMPRESS_THRESHOLD`: shorter payloads are sent uncompressed.
const COMPRESS_THRESHOLD: usize = 100;

/// The maximum number of bytes that [`Compression::frame`] writes before the payload.
pub const COMPRESSION_HEADROOM: usize = 2;
/// The maximum number of bytes that [`Compression::frame`] writes after the payload.
pub const COMPRESSION_TAILROOM: usize = 1;

/// The compression framing of payloads, fixed by the compression options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionFraming {
    /// No compression options: no framing byte at all.
    #[default]
    None,
    /// `comp-lzo` (yes, no or adaptive) and `compress lzo`: one leading byte, 0x66 for
    /// LZO1X, 0xFA for uncompressed.
    Lzo,
    /// `compress lz4`, `compress stub` and bare `compress`: 0x69 for LZ4, 0xFB for
    /// uncompressed, and the payload's first byte moved to the end to keep the payload
    /// aligned.
    Swap,
    /// `compress lz4-v2` and `compress stub-v2`: no byte for an uncompressed payload,
    /// 0x50 0x01 before an LZ4 block, 0x50 0x00 before a payload that starts with 0x50.
    V2,
}

/// The compression settings of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compression {
    pub framing: CompressionFraming,
    /// Compress outbound payloads of at least 100 bytes (LZO1X with `Lzo` framing, LZ4
    /// with `Swap` and `V2`) and send the compressed form when it is smaller. Off by
    /// default, like OpenVPN 2.6's `allow-compression asym`.
    pub compress_outbound: bool,
}

/// A payload that [`Compression::unframe`] could not unframe or decompress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompressError {
    #[error("unknown {framing:?} compression framing byte {byte:#04x}")]
    UnknownFramingByte {
        framing: CompressionFraming,
        byte: u8,
    },
    #[error("compression framing byte 0x50 without the second byte")]
    TruncatedFraming,
    #[error("invalid LZO1X data")]
    InvalidLzo,
    #[error("invalid LZ4 block")]
    InvalidLz4,
    #[error("decompressed payload exceeds the limit of {limit} bytes")]
    OutputTooLarge { limit: usize },
    #[error("buffer has {available} bytes of headroom before the payload, {needed} needed")]
    InsufficientHeadroom { needed: usize, available: usize },
    #[error("buffer has {available} bytes of tailroom after the payload, {needed} needed")]
    InsufficientTailroom { needed: usize, available: usize },
    #[error("payload range {start}..{end} does not fit a buffer of {len} bytes")]
    InvalidPayloadRange {
        start: usize,
        end: usize,
        len: usize,
    },
}

/// The location of a payload after [`Compression::unframe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unframed {
    /// Uncompressed: this range of the input buffer.
    InPlace(Range<usize>),
    /// Decompressed: this many bytes at the start of the output buffer.
    Decompressed(usize),
}

impl Unframed {
    /// Returns the payload bytes, from `buf` or from `out`.
    pub fn bytes<'a>(&self, buf: &'a [u8], out: &'a [u8]) -> &'a [u8] {
        match self {
            Unframed::InPlace(range) => &buf[range.clone()],
            Unframed::Decompressed(len) => &out[..*len],
        }
    }
}

/// Scratch memory for outbound compression, reused across packets and sessions; one per
/// worker thread is enough. Unused when outbound compression is off.
#[derive(Default)]
pub struct CompressWorkspace {
    scratch: Vec<u8>,
    /// The LZO1X dictionary, about 450 KB, created on first use.
    lzo_dictionary: Option<Box<lzokay::compress::Dict>>,
}

impl CompressWorkspace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compresses `input` into the scratch buffer and returns the compressed bytes, or
    /// `None` if compression failed.
    fn compress(&mut self, framing: CompressionFraming, input: &[u8]) -> Option<&[u8]> {
        let len = match framing {
            CompressionFraming::None => return None,
            CompressionFraming::Lzo => {
                let worst = lzokay::compress::compress_worst_size(input.len());
                self.grow_scratch(worst);
                let dictionary = self
                    .lzo_dictionary
                    .get_or_insert_with(lzokay::compress::Dict::new);
                lzokay::compress::compress_no_alloc(input, &mut self.scratch, dictionary).ok()?
            }
            CompressionFraming::Swap | CompressionFraming::V2 => {
                self.grow_scratch(lz4_flex::block::get_maximum_output_size(input.len()));
                // NOTE: lz4_flex 0.11 allocates its hash table on every call.
                lz4_flex::block::compress_into(input, &mut self.scratch).ok()?
            }
        };
        self.scratch.get(..len)
    }

    fn grow_scratch(&mut self, len: usize) {
        if self.scratch.len() < len {
            self.scratch.resize(len, 0);
        }
    }
}

impl core::fmt::Debug for CompressWorkspace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CompressWorkspace")
            .field("scratch_len", &self.scratch.len())
            .field("has_lzo_dictionary", &self.lzo_dictionary.is_some())
            .finish()
    }
}

impl Compression {
    /// Compression settings that frame without compressing outbound payloads.
    pub fn framing_only(framing: CompressionFraming) -> Self {
        Compression {
            framing,
            compress_outbound: false,
        }
    }

    /// Frames `buf[payload]` in place for sending, compressing it first when enabled and
    /// worthwhile. Returns the range of the framed payload within `buf`.
    ///
    /// Requires [`COMPRESSION_HEADROOM`] bytes before the payload for `Lzo` (1 byte) and
    /// `V2` (2 bytes) framing, and [`COMPRESSION_TAILROOM`] after it for `Swap` framing.
    pub fn frame(
        &self,
        buf: &mut [u8],
        payload: Range<usize>,
        workspace: &mut CompressWorkspace,
    ) -> Result<Range<usize>, CompressError> {
        check_range(buf, &payload)?;
        let (headroom, tailroom) = match self.framing {
            CompressionFraming::None => (0, 0),
            CompressionFraming::Lzo => (1, 0),
            CompressionFraming::Swap => (0, 1),
            CompressionFraming::V2 => (2, 0),
        };
        if payload.start < headroom {
            return Err(CompressError::InsufficientHeadroom {
                needed: headroom,
                available: payload.start,
            });
        }
        if buf.len() - payload.end < tailroom {
            return Err(CompressError::InsufficientTailroom {
                needed: tailroom,
                available: buf.len() - payload.end,
            });
        }
        if payload.is_empty() {
            return Ok(payload);
        }
        if self.compress_outbound
            && payload.len() >= COMPRESS_THRESHOLD
            && let Some(framed) = self.frame_compressed(buf, payload.clone(), workspace)
        {
            return Ok(framed);
        }
        Ok(self.frame_uncompressed(buf, payload))
    }

    /// Compresses `buf[payload]` and writes the framed result over it, if the result
    /// with its framing is smaller than the payload.
    fn frame_compressed(
        &self,
        buf: &mut [u8],
        payload: Range<usize>,
        workspace: &mut CompressWorkspace,
    ) -> Option<Range<usize>> {
        let compressed = workspace.compress(self.framing, &buf[payload.clone()])?;
        let start = payload.start;
        let end = start + compressed.len();
        match self.framing {
            CompressionFraming::None => None,
            CompressionFraming::Lzo if compressed.len() < payload.len() => {
                buf[start..end].copy_from_slice(compressed);
                buf[start - 1] = LZO_COMPRESSED;
                Some(start - 1..end)
            }
            CompressionFraming::Swap if compressed.len() < payload.len() => {
                buf[start..end].copy_from_slice(compressed);
                buf[end] = buf[start];
                buf[start] = SWAP_LZ4_COMPRESSED;
                Some(start..end + 1)
            }
            CompressionFraming::V2 if compressed.len() + 2 < payload.len() => {
                buf[start..end].copy_from_slice(compressed);
                buf[start - 2..start].copy_from_slice(&[V2_INDICATOR, V2_LZ4]);
                Some(start - 2..end)
            }
            _ => None,
        }
    }

    fn frame_uncompressed(&self, buf: &mut [u8], payload: Range<usize>) -> Range<usize> {
        let Range { start, end } = payload;
        match self.framing {
            CompressionFraming::None => start..end,
            CompressionFraming::Lzo => {
                buf[start - 1] = LZO_UNCOMPRESSED;
                start - 1..end
            }
            CompressionFraming::Swap => {
                buf[end] = buf[start];
                buf[start] = SWAP_UNCOMPRESSED;
                start..end + 1
            }
            CompressionFraming::V2 if buf[start] == V2_INDICATOR => {
                buf[start - 2..start].copy_from_slice(&[V2_INDICATOR, V2_UNCOMPRESSED]);
                start - 2..end
            }
            CompressionFraming::V2 => start..end,
        }
    }

    /// Removes the framing of a received, decrypted payload `buf[payload]`.
    ///
    /// An uncompressed payload stays in `buf` (swap framing moves its first byte back in
    /// place). A compressed payload is decompressed into `out`, whose length is the limit:
    /// a payload that would decompress to more is rejected without allocating. On error
    /// the contents of `buf[payload]` and `out` are unspecified.
    pub fn unframe(
        &self,
        buf: &mut [u8],
        payload: Range<usize>,
        out: &mut [u8],
    ) -> Result<Unframed, CompressError> {
        check_range(buf, &payload)?;
        if payload.is_empty() {
            return Ok(Unframed::InPlace(payload));
        }
        let Range { start, end } = payload;
        let first = buf[start];
        match self.framing {
            CompressionFraming::None => Ok(Unframed::InPlace(payload)),
            CompressionFraming::Lzo => match first {
                LZO_UNCOMPRESSED => Ok(Unframed::InPlace(start + 1..end)),
                LZO_COMPRESSED => decompress_lzo(&buf[start + 1..end], out),
                byte => Err(self.unknown_byte(byte)),
            },
            CompressionFraming::Swap => {
                let last = end - 1;
                buf[start] = buf[last];
                match first {
                    SWAP_UNCOMPRESSED => Ok(Unframed::InPlace(start..last)),
                    SWAP_LZ4_COMPRESSED => decompress_lz4(&buf[start..last], out),
                    byte => Err(self.unknown_byte(byte)),
                }
            }
            CompressionFraming::V2 if first != V2_INDICATOR => Ok(Unframed::InPlace(payload)),
            CompressionFraming::V2 => match buf[start + 1..end].first() {
                None => Err(CompressError::TruncatedFraming),
                Some(&(V2_UNCOMPRESSED | V2_UNCOMPRESSED_AS_SENT)) => {
                    Ok(Unframed::InPlace(start + 2..end))
                }
                Some(&V2_LZ4) => decompress_lz4(&buf[start + 2..end], out),
                Some(&byte) => Err(self.unknown_byte(byte)),
            },
        }
    }

    fn unknown_byte(&self, byte: u8) -> CompressError {
        CompressError::UnknownFramingByte {
            framing: self.framing,
            byte,
        }
    }
}

fn check_range(buf: &[u8], payload: &Range<usize>) -> Result<(), CompressError> {
    if payload.start > payload.end || payload.end > buf.len() {
        return Err(CompressError::InvalidPayloadRange {
            start: payload.start,
            end: payload.end,
            len: buf.len(),
        });
    }
    Ok(())
}

fn decompress_lzo(compressed: &[u8], out: &mut [u8]) -> Result<Unframed, CompressError> {
    match lzokay::decompress::decompress(compressed, out) {
        Ok(len) => Ok(Unframed::Decompressed(len)),
        Err(lzokay::Error::OutputOverrun) => {
            Err(CompressError::OutputTooLarge { limit: out.len() })
        }
        Err(_) => Err(CompressError::InvalidLzo),
    }
}

/// Decompresses an LZ4 block. Like OpenVPN, an empty result counts as invalid.
fn decompress_lz4(compressed: &[u8], out: &mut [u8]) -> Result<Unframed, CompressError> {
    match lz4_flex::block::decompress_into(compressed, out) {
        Ok(0) => Err(CompressError::InvalidLz4),
        Ok(len) => Ok(Unframed::Decompressed(len)),
        Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) => {
            Err(CompressError::OutputTooLarge { limit: out.len() })
        }
        Err(_) => Err(CompressError::InvalidLz4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 300-byte IPv4 packet, and its compressed forms made by liblzo2 2.10
    /// (`lzo1x_1_compress`) and liblz4 1.9.4 (`LZ4_compress_default`), the libraries
    /// OpenVPN 2.6 links.
    const SAMPLE: &str = "4500012c12344000401100000a0800020a0800014f70656e56504e2064617461206368616e6e656c20636f6d7072657373696f6e20746573742e204f70656e56504e2064617461206368616e6e656c20636f6d7072657373696f6e20746573742e204f70656e56504e2064617461206368616e6e656c20636f6d7072657373696f6e20746573742e204f70656e56504e2064617461206368616e6e656c20636f6d7072657373696f6e20746573742e204f70656e56504e2064617461206368616e6e656c20636f6d7072657373696f6e20746573742e204f70656e56504e2064617461206368616e6e656c20636f6d7072657373696f6e20746573742e204f70656e56504e2064617461206368616e6e656c20636f6d7072657373696f6e20746573742e204f70656e56504e";
    const SAMPLE_LZO1X: &str = "002a4500012c12344000401100000a0800020a0800014f70656e56504e2064617461206368616e6e656c20636f6d7072657373696f6e20746573742e204f20bb98000002657373696f6e20746573742e204f70656e56504e110000";
    const SAMPLE_LZ4: &str = "ff2c4500012c12344000401100000a0800020a0800014f70656e56504e2064617461206368616e6e656c20636f6d7072657373696f6e20746573742e202700d950656e56504e";

    fn frame(compression: Compression, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; payload.len() + COMPRESSION_HEADROOM + COMPRESSION_TAILROOM];
        let range = COMPRESSION_HEADROOM..COMPRESSION_HEADROOM + payload.len();
        buf[range.clone()].copy_from_slice(payload);
        let framed = compression
            .frame(&mut buf, range, &mut CompressWorkspace::new())
            .expect("frame");
        buf[framed].to_vec()
    }

    fn unframe(framing: CompressionFraming, framed: &[u8]) -> Result<Vec<u8>, CompressError> {
        let mut buf = framed.to_vec();
        let mut out = [0u8; 1600];
        let unframed =
            Compression::framing_only(framing).unframe(&mut buf, 0..framed.len(), &mut out)?;
        Ok(unframed.bytes(&buf, &out).to_vec())
    }

    #[test]
    fn none_adds_nothing() {
        let framed = frame(Compression::default(), &[0x45, 1, 2]);
        assert_eq!(framed, [0x45, 1, 2]);
        assert_eq!(
            unframe(CompressionFraming::None, &framed),
            Ok(vec![0x45, 1, 2])
        );
    }

    #[test]
    fn lzo_uncompressed_byte() {
        let framed = frame(
            Compression::framing_only(CompressionFraming::Lzo),
            &[0x45, 1, 2],
        );
        assert_eq!(framed, [0xFA, 0x45, 1, 2]);
        assert_eq!(
            unframe(CompressionFraming::Lzo, &framed),
            Ok(vec![0x45, 1, 2])
        );
    }

    #[test]
    fn swap_moves_first_byte_to_end() {
        let framed = frame(
            Compression::framing_only(CompressionFraming::Swap),
            &[0x45, 1, 2],
        );
        assert_eq!(framed, [0xFB, 1, 2, 0x45]);
        assert_eq!(
            unframe(CompressionFraming::Swap, &framed),
            Ok(vec![0x45, 1, 2])
        );
    }

    #[test]
    fn swap_single_byte() {
        let framed = frame(Compression::framing_only(CompressionFraming::Swap), &[0x45]);
        assert_eq!(framed, [0xFB, 0x45]);
        assert_eq!(unframe(CompressionFraming::Swap, &framed), Ok(vec![0x45]));
        assert_eq!(unframe(CompressionFraming::Swap, &[0xFB]), Ok(vec![]));
    }

    #[test]
    fn v2_plain_and_escaped() {
        let v2 = Compression::framing_only(CompressionFraming::V2);
        assert_eq!(frame(v2, &[0x45, 1]), [0x45, 1]);
        assert_eq!(frame(v2, &[0x50, 1]), [0x50, 0x00, 0x50, 1]);
        assert_eq!(
            unframe(CompressionFraming::V2, &[0x45, 1]),
            Ok(vec![0x45, 1])
        );
        assert_eq!(
            unframe(CompressionFraming::V2, &[0x50, 0x00, 0x50, 1]),
            Ok(vec![0x50, 1])
        );
        assert_eq!(
            unframe(CompressionFraming::V2, &[0x50, 0x0A, 0x50, 1]),
            Ok(vec![0x50, 1])
        );
        assert_eq!(
            unframe(CompressionFraming::V2, &[0x50]),
            Err(CompressError::TruncatedFraming)
        );
    }

    #[test]
    fn empty_payload_stays_empty() {
        for framing in [
            CompressionFraming::None,
            CompressionFraming::Lzo,
            CompressionFraming::Swap,
            CompressionFraming::V2,
        ] {
            assert_eq!(
                frame(Compression::framing_only(framing), &[]),
                Vec::<u8>::new()
            );
            assert_eq!(unframe(framing, &[]), Ok(vec![]));
        }
    }

    #[test]
    fn unknown_framing_bytes_rejected() {
        let cases = [
            (CompressionFraming::Lzo, vec![0x69, 1, 2], 0x69),
            (CompressionFraming::Lzo, vec![0x45, 1, 2], 0x45),
            (CompressionFraming::Swap, vec![0x66, 1, 2], 0x66),
            (CompressionFraming::Swap, vec![0xFA, 1, 2], 0xFA),
            (CompressionFraming::V2, vec![0x50, 0x02, 2], 0x02),
        ];
        for (framing, framed, byte) in cases {
            assert_eq!(
                unframe(framing, &framed),
                Err(CompressError::UnknownFramingByte { framing, byte })
            );
        }
    }

    #[test]
    fn decompress_liblzo2_output() {
        let sample = hex::decode(SAMPLE).expect("hex");
        let mut framed = vec![0x66];
        framed.extend(hex::decode(SAMPLE_LZO1X).expect("hex"));
        assert_eq!(unframe(CompressionFraming::Lzo, &framed), Ok(sample));
    }

    #[test]
    fn decompress_liblz4_output_swap() {
        let sample = hex::decode(SAMPLE).expect("hex");
        let compressed = hex::decode(SAMPLE_LZ4).expect("hex");
        // Swap framing: 0x69, the block without its first byte, then that byte.
        let mut framed = vec![0x69];
        framed.extend_from_slice(&compressed[1..]);
        framed.push(compressed[0]);
        assert_eq!(unframe(CompressionFraming::Swap, &framed), Ok(sample));
    }

    #[test]
    fn decompress_liblz4_output_v2() {
        let sample = hex::decode(SAMPLE).expect("hex");
        let mut framed = vec![0x50, 0x01];
        framed.extend(hex::decode(SAMPLE_LZ4).expect("hex"));
        assert_eq!(unframe(CompressionFraming::V2, &framed), Ok(sample));
    }

    #[test]
    fn decompressed_size_is_bounded() {
        let mut framed = vec![0x50, 0x01];
        framed.extend(hex::decode(SAMPLE_LZ4).expect("hex"));
        let mut out = [0u8; 299];
        let result = Compression::framing_only(CompressionFraming::V2).unframe(
            &mut framed.clone(),
            0..framed.len(),
            &mut out,
        );
        assert_eq!(result, Err(CompressError::OutputTooLarge { limit: 299 }));

        let mut framed = vec![0x66];
        framed.extend(hex::decode(SAMPLE_LZO1X).expect("hex"));
        let result = Compression::framing_only(CompressionFraming::Lzo).unframe(
            &mut framed.clone(),
            0..framed.len(),
            &mut out,
        );
        assert_eq!(result, Err(CompressError::OutputTooLarge { limit: 299 }));
    }

    #[test]
    fn compressed_framing_bytes() {
        let sample = hex::decode(SAMPLE).expect("hex");
        let lzo = frame(
            Compression {
                framing: CompressionFraming::Lzo,
                compress_outbound: true,
            },
            &sample,
        );
        assert_eq!(lzo[0], 0x66);
        assert!(lzo.len() < sample.len());
        let swap = frame(
            Compression {
                framing: CompressionFraming::Swap,
                compress_outbound: true,
            },
            &sample,
        );
        assert_eq!(swap[0], 0x69);
        assert!(swap.len() < sample.len());
        let v2 = frame(
            Compression {
                framing: CompressionFraming::V2,
                compress_outbound: true,
            },
            &sample,
        );
        assert_eq!(v2[..2], [0x50, 0x01]);
        assert!(v2.len() < sample.len());
    }

    #[test]
    fn short_payloads_not_compressed() {
        let payload = [0u8; 99];
        let framed = frame(
            Compression {
                framing: CompressionFraming::Lzo,
                compress_outbound: true,
            },
            &payload,
        );
        assert_eq!(framed[0], 0xFA);
        assert_eq!(framed.len(), 100);
    }

    #[test]
    fn frame_checks_room() {
        let mut buf = [0u8; 10];
        let mut workspace = CompressWorkspace::new();
        let lzo = Compression::framing_only(CompressionFraming::Lzo);
        assert_eq!(
            lzo.frame(&mut buf, 0..5, &mut workspace),
            Err(CompressError::InsufficientHeadroom {
                needed: 1,
                available: 0
            })
        );
        let swap = Compression::framing_only(CompressionFraming::Swap);
        assert_eq!(
            swap.frame(&mut buf, 2..10, &mut workspace),
            Err(CompressError::InsufficientTailroom {
                needed: 1,
                available: 0
            })
        );
    }
}
