//! TCP framing: every packet is preceded by its length as a big-endian u16 that does not count
//! the two length bytes.

/// Largest packet that the u16 length prefix can describe.
pub const MAX_FRAMED_LEN: usize = u16::MAX as usize;

const PREFIX_LEN: usize = 2;

/// Errors from TCP framing. Each of them means the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("invalid packet length {len} in TCP stream, expected 1 to {max}")]
    InvalidLength { len: usize, max: usize },
    #[error("packet of {0} bytes is too long for TCP framing, the maximum is 65535")]
    TooLong(usize),
}

/// Splits a TCP byte stream into packets.
///
/// The decoder copies at most one packet and its length prefix into its buffer, so it never
/// stores more than `max_packet_len + 2` bytes, whatever the size of the chunks passed in.
/// After a [`FramingError`] the decoder returns the same error on every call.
#[derive(Debug)]
pub struct StreamDecoder {
    max_packet_len: usize,
    buf: Vec<u8>,
    /// The buffer contains a complete packet that the previous call returned.
    complete: bool,
    error: Option<FramingError>,
}

impl StreamDecoder {
    /// Creates a decoder that rejects packets longer than `max_packet_len` bytes. Values above
    /// [`MAX_FRAMED_LEN`] act as [`MAX_FRAMED_LEN`].
    pub fn new(max_packet_len: usize) -> StreamDecoder {
        StreamDecoder {
            max_packet_len: max_packet_len.min(MAX_FRAMED_LEN),
            buf: Vec::new(),
            complete: false,
            error: None,
        }
    }

    /// Consumes bytes from the front of `input` and returns the next complete packet, if any.
    ///
    /// The call consumes only up to the end of the packet that it returns, so the caller
    /// repeats it until it returns `Ok(None)`, which means that all of `input` was consumed:
    ///
    /// ```
    /// # use sslvpn::proto::packet::StreamDecoder;
    /// let mut decoder = StreamDecoder::new(1600);
    /// let mut input: &[u8] = &[0, 2, 0xaa, 0xbb, 0, 1];
    /// assert_eq!(decoder.decode(&mut input), Ok(Some(&[0xaa, 0xbb][..])));
    /// assert_eq!(decoder.decode(&mut input), Ok(None));
    /// assert!(input.is_empty());
    /// ```
    ///
    /// A zero length or a length above the maximum is an error, and the caller should close
    /// the connection.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<&[u8]>, FramingError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        if self.complete {
            self.buf.clear();
            self.complete = false;
        }

        if self.buf.len() < PREFIX_LEN {
            self.fill(input, PREFIX_LEN);
            if self.buf.len() < PREFIX_LEN {
                return Ok(None);
            }
        }

        let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        if len == 0 || len > self.max_packet_len {
            let error = FramingError::InvalidLength {
                len,
                max: self.max_packet_len,
            };
            self.error = Some(error.clone());
            self.buf = Vec::new();
            return Err(error);
        }

        self.fill(input, PREFIX_LEN + len);
        if self.buf.len() < PREFIX_LEN + len {
            return Ok(None);
        }
        self.complete = true;
        Ok(Some(&self.buf[PREFIX_LEN..]))
    }

    /// Returns the number of bytes of an incomplete packet held in the buffer.
    pub fn buffered_len(&self) -> usize {
        if self.complete { 0 } else { self.buf.len() }
    }

    /// Moves bytes from `input` into the buffer until it contains `target` bytes.
    fn fill(&mut self, input: &mut &[u8], target: usize) {
        let count = target.saturating_sub(self.buf.len()).min(input.len());
        let (head, tail) = input.split_at(count);
        self.buf.extend_from_slice(head);
        *input = tail;
    }
}

/// Appends the length prefix and `packet` to `out`.
pub fn frame_into(packet: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
    let Ok(len) = u16::try_from(packet.len()) else {
        return Err(FramingError::TooLong(packet.len()));
    };
    out.reserve(PREFIX_LEN + packet.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut StreamDecoder, mut input: &[u8]) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        while let Some(packet) = decoder.decode(&mut input).unwrap() {
            packets.push(packet.to_vec());
        }
        assert!(input.is_empty());
        packets
    }

    fn framed(packets: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for packet in packets {
            frame_into(packet, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn several_packets_in_one_chunk() {
        let stream = framed(&[b"one", b"two!", b"x"]);
        let mut decoder = StreamDecoder::new(100);
        let packets = decode_all(&mut decoder, &stream);
        assert_eq!(packets, [&b"one"[..], b"two!", b"x"]);
        assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn packets_split_at_every_byte() {
        let stream = framed(&[b"first packet", b"second"]);
        let mut decoder = StreamDecoder::new(100);
        let mut packets = Vec::new();
        for byte in &stream {
            packets.extend(decode_all(&mut decoder, std::slice::from_ref(byte)));
        }
        assert_eq!(packets, [&b"first packet"[..], b"second"]);
    }

    #[test]
    fn packets_split_at_every_boundary() {
        let stream = framed(&[b"abc", b"defgh"]);
        for cut in 0..=stream.len() {
            let mut decoder = StreamDecoder::new(100);
            let mut packets = decode_all(&mut decoder, &stream[..cut]);
            packets.extend(decode_all(&mut decoder, &stream[cut..]));
            assert_eq!(packets, [&b"abc"[..], b"defgh"], "cut at {cut}");
        }
    }

    #[test]
    fn oversize_length_is_error() {
        let mut decoder = StreamDecoder::new(10);
        let mut input: &[u8] = &[0, 11, 1, 2, 3];
        let expected = FramingError::InvalidLength { len: 11, max: 10 };
        assert_eq!(decoder.decode(&mut input), Err(expected.clone()));
        let mut more: &[u8] = &[0, 1, 1];
        assert_eq!(decoder.decode(&mut more), Err(expected));
    }

    #[test]
    fn zero_length_is_error() {
        let mut decoder = StreamDecoder::new(10);
        let mut input: &[u8] = &[0, 0];
        assert_eq!(
            decoder.decode(&mut input),
            Err(FramingError::InvalidLength { len: 0, max: 10 })
        );
    }

    #[test]
    fn buffer_stays_bounded() {
        let mut decoder = StreamDecoder::new(1000);
        let mut stream = Vec::new();
        for _ in 0..200 {
            frame_into(&[7; 1000], &mut stream).unwrap();
        }
        let mut input = &stream[..];
        let mut count = 0;
        while let Some(packet) = decoder.decode(&mut input).unwrap() {
            assert_eq!(packet.len(), 1000);
            count += 1;
        }
        assert_eq!(count, 200);
        assert!(
            decoder.buf.capacity() <= 2 * 1002,
            "{}",
            decoder.buf.capacity()
        );
    }

    #[test]
    fn frame_rejects_too_long() {
        let mut out = Vec::new();
        assert!(frame_into(&vec![0; MAX_FRAMED_LEN], &mut out).is_ok());
        assert_eq!(
            frame_into(&vec![0; MAX_FRAMED_LEN + 1], &mut out),
            Err(FramingError::TooLong(MAX_FRAMED_LEN + 1))
        );
    }
}
