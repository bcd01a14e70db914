//! Property tests of the packet parsers on arbitrary bytes: nothing panics, and whatever
//! parses encodes back to the same bytes.

use proptest::prelude::*;

use super::{ControlPacket, DataHeader, FramingError, StreamDecoder, frame_into, peek};

/// Control packets with a valid layout: a control opcode, up to eight acks and a payload.
fn control_bytes() -> impl Strategy<Value = Vec<u8>> {
    let opcode = prop::sample::select(vec![3u8, 4, 5, 7, 8, 10, 11]);
    (
        opcode,
        0u8..8,
        any::<[u8; 8]>(),
        prop::collection::vec(any::<u32>(), 0..=8),
        any::<[u8; 8]>(),
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(opcode, key_id, session, acks, peer, message_id, payload)| {
                let mut bytes = vec![opcode << 3 | key_id];
                bytes.extend_from_slice(&session);
                bytes.push(acks.len() as u8);
                for id in &acks {
                    bytes.extend_from_slice(&id.to_be_bytes());
                }
                if !acks.is_empty() {
                    bytes.extend_from_slice(&peer);
                }
                if opcode != 5 {
                    bytes.extend_from_slice(&message_id.to_be_bytes());
                    bytes.extend_from_slice(&payload);
                }
                bytes
            },
        )
}

proptest! {
    #[test]
    fn control_parse_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = peek(&bytes);
        if let Ok(packet) = ControlPacket::parse(&bytes) {
            let mut encoded = Vec::new();
            packet.encode(&mut encoded).expect("a parsed packet encodes");
            prop_assert_eq!(encoded, bytes);
        }
    }

    #[test]
    fn control_valid_layout_round_trips(bytes in control_bytes()) {
        let packet = ControlPacket::parse(&bytes).expect("valid layout parses");
        prop_assert_eq!(packet.encoded_len(), bytes.len());
        let mut encoded = Vec::new();
        packet.encode(&mut encoded).expect("a parsed packet encodes");
        prop_assert_eq!(encoded, bytes);
    }

    #[test]
    fn control_truncated_layout_rejected(bytes in control_bytes(), cut in any::<prop::sample::Index>()) {
        let packet = ControlPacket::parse(&bytes).expect("valid layout parses");
        // Everything before the payload is required, but the payload may be cut anywhere.
        let required = bytes.len() - packet.payload.len();
        let len = cut.index(required);
        prop_assert!(ControlPacket::parse(&bytes[..len]).is_err());
    }

    #[test]
    fn data_header_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..8)) {
        if let Ok((header, rest)) = DataHeader::parse(&bytes) {
            let mut encoded = Vec::new();
            header.write(&mut encoded).expect("a parsed header encodes");
            prop_assert_eq!(encoded.len() + rest.len(), bytes.len());
            prop_assert_eq!(&encoded[..], &bytes[..encoded.len()]);
        }
    }

    #[test]
    fn stream_arbitrary_chunks(
        packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut stream = Vec::new();
        for packet in &packets {
            frame_into(packet, &mut stream).expect("short packet frames");
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();

        let mut decoder = StreamDecoder::new(300);
        let mut decoded = Vec::new();
        let mut start = 0;
        for end in cuts {
            let mut chunk = &stream[start..end];
            while let Some(packet) = decoder.decode(&mut chunk).expect("valid stream") {
                decoded.push(packet.to_vec());
            }
            prop_assert!(chunk.is_empty());
            prop_assert!(decoder.buffered_len() <= 302);
            start = end;
        }
        prop_assert_eq!(decoded, packets);
        prop_assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn stream_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600), max in 0usize..400) {
        let mut decoder = StreamDecoder::new(max);
        let mut input = &bytes[..];
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(packet)) => prop_assert!(!packet.is_empty() && packet.len() <= max),
                Ok(None) => break,
                Err(FramingError::InvalidLength { len, .. }) => {
                    prop_assert!(len == 0 || len > max);
                    break;
                }
                Err(error) => prop_assert!(false, "unexpected error {error}"),
            }
        }
        prop_assert!(decoder.buffered_len() <= max + 2);
    }
}
