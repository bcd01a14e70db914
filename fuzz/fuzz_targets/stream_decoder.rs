//! TCP length framing fed in arbitrary chunks: the decoder must return the same packets and
//! the same error as a whole-stream reference parse, and keep its buffer bounded.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sslvpn::proto::packet::{FramingError, StreamDecoder};

#[derive(Arbitrary, Debug)]
struct Input {
    max_packet_len: u16,
    /// Chunk lengths, used in turn. A zero length passes an empty chunk.
    chunks: Vec<u8>,
    stream: Vec<u8>,
}

/// Splits the whole stream at once, stopping at the first invalid length.
fn reference(stream: &[u8], max: usize) -> (Vec<Vec<u8>>, Option<FramingError>) {
    let mut packets = Vec::new();
    let mut rest = stream;
    while let [high, low, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*high, *low]));
        if len == 0 || len > max {
            return (packets, Some(FramingError::InvalidLength { len, max }));
        }
        let Some((packet, tail)) = tail.split_at_checked(len) else {
            break;
        };
        packets.push(packet.to_vec());
        rest = tail;
    }
    (packets, None)
}

fuzz_target!(|input: Input| {
    let max = usize::from(input.max_packet_len);
    let mut decoder = StreamDecoder::new(max);
    let mut packets = Vec::new();
    let mut error = None;
    let mut rest = &input.stream[..];
    // Chunk lengths of zero only would never consume the stream.
    let whole = input.chunks.iter().all(|&size| size == 0);
    let mut sizes = input.chunks.iter().cycle();
    while error.is_none() {
        let size = if whole {
            rest.len()
        } else {
            usize::from(*sizes.next().expect("cycle of a non-empty list"))
        };
        let (head, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        let mut chunk = head;
        loop {
            match decoder.decode(&mut chunk) {
                Ok(Some(packet)) => packets.push(packet.to_vec()),
                Ok(None) => {
                    assert!(chunk.is_empty(), "Ok(None) left input unconsumed");
                    break;
                }
                Err(failure) => {
                    error = Some(failure);
                    break;
                }
            }
            assert!(decoder.buffered_len() <= max + 2);
        }
        if rest.is_empty() {
            break;
        }
    }

    let (expected_packets, expected_error) = reference(&input.stream, max);
    assert_eq!(packets, expected_packets);
    assert_eq!(error, expected_error);
    if let Some(error) = error {
        let mut more: &[u8] = &[0, 1, 0];
        assert_eq!(decoder.decode(&mut more), Err(error), "error is not sticky");
    }
});
