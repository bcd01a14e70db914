//! Property tests: the parsers and state machines that an unauthenticated peer can reach
//! never panic and keep their memory bounds on arbitrary input.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use sslvpn::proto::packet::{
    AckList, ControlPacket, DataHeader, KeyId, MAX_ACKS, Opcode, SessionId, StreamDecoder, peek,
};
use sslvpn::proto::reliable::{
    ReceiveConfig, ReceiveWindow, SendConfig, SendWindow, fragment, max_control_payload,
};
use sslvpn::proto::wrap::{ControlWrap, Digest, KeyDirection, Role, STATIC_KEY_LEN, StaticKey};

fn test_key() -> StaticKey {
    let mut bytes = [0; STATIC_KEY_LEN];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = index as u8 ^ 0x5a;
    }
    StaticKey::from_bytes(bytes)
}

fn all_wraps() -> Vec<ControlWrap> {
    let key = test_key();
    vec![
        ControlWrap::None,
        ControlWrap::tls_auth(&key, Digest::Sha1, KeyDirection::Normal),
        ControlWrap::tls_auth(&key, Digest::Sha512, KeyDirection::Bidirectional),
        ControlWrap::tls_crypt(&key, Role::Server).unwrap(),
    ]
}

fn reliable_opcode() -> impl Strategy<Value = Opcode> {
    prop::sample::select(vec![
        Opcode::SoftResetV1,
        Opcode::ControlV1,
        Opcode::HardResetClientV2,
        Opcode::HardResetServerV2,
        Opcode::HardResetClientV3,
        Opcode::ControlWkcV1,
    ])
}

proptest! {
    #[test]
    fn control_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(packet) = ControlPacket::parse(&bytes) {
            prop_assert!(packet.acks.len() <= MAX_ACKS);
            prop_assert!(packet.payload.len() < bytes.len());
            let mut encoded = Vec::new();
            packet.encode(&mut encoded).unwrap();
            prop_assert_eq!(encoded, bytes);
        }
    }

    #[test]
    fn control_parse_of_plausible_header(
        first in any::<u8>(),
        count in 0u8..12,
        rest in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut bytes = vec![first, 1, 2, 3, 4, 5, 6, 7, 8, count];
        bytes.extend_from_slice(&rest);
        let _ = ControlPacket::parse(&bytes);
    }

    #[test]
    fn data_header_and_peek_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..8)) {
        let _ = peek(&bytes);
        if let Ok((header, rest)) = DataHeader::parse(&bytes) {
            prop_assert_eq!(header.encoded_len() + rest.len(), bytes.len());
            let mut written = Vec::new();
            header.write(&mut written).unwrap();
            prop_assert_eq!(&written[1..], &bytes[1..header.encoded_len()]);
        }
    }

    #[test]
    fn stream_decoder_never_panics_and_stays_bounded(
        max_len in 0usize..100_000,
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
    ) {
        let mut decoder = StreamDecoder::new(max_len);
        for chunk in &chunks {
            let mut input = &chunk[..];
            loop {
                match decoder.decode(&mut input) {
                    Ok(Some(packet)) => prop_assert!(!packet.is_empty()),
                    Ok(None) => break,
                    Err(_) => break,
                }
            }
            prop_assert!(decoder.buffered_len() <= max_len.min(65_535) + 2);
        }
    }

    #[test]
    fn unwrap_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        for mut wrap in all_wraps() {
            let mut out = vec![1, 2, 3];
            match wrap.unwrap(&bytes, &mut out) {
                Ok(_) => prop_assert!(matches!(wrap, ControlWrap::None)),
                Err(_) => prop_assert_eq!(&out, &[1, 2, 3]),
            }
        }
    }

    #[test]
    fn static_key_parse_never_panics(text in ".{0,600}") {
        let _ = StaticKey::parse(&text);
        let _ = StaticKey::parse(&format!("-----BEGIN OpenVPN Static key V1-----\n{text}"));
    }

    #[test]
    fn control_packet_round_trip(
        opcode in reliable_opcode(),
        key_id in 0u8..8,
        session in any::<[u8; 8]>(),
        peer in any::<[u8; 8]>(),
        acks in prop::collection::vec(any::<u32>(), 0..=MAX_ACKS),
        message_id in any::<u32>(),
        payload in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let packet = ControlPacket {
            opcode,
            key_id: KeyId::new(key_id).unwrap(),
            session_id: SessionId(session),
            acks: AckList::try_from(&acks[..]).unwrap(),
            peer_session_id: (!acks.is_empty()).then_some(SessionId(peer)),
            message_id: Some(message_id),
            payload: &payload,
        };
        let mut bytes = Vec::new();
        packet.encode(&mut bytes).unwrap();
        prop_assert_eq!(ControlPacket::parse(&bytes), Ok(packet));
    }

    #[test]
    fn receive_window_stays_bounded(
        messages in prop::collection::vec((any::<u32>(), 0u32..30, 0usize..3000), 0..200),
    ) {
        let mut window = ReceiveWindow::new(ReceiveConfig::default());
        let mut next = 0u32;
        for (random_id, near_id, len) in messages {
            let id = if random_id % 2 == 0 { random_id } else { near_id };
            let _ = window.receive(id, Opcode::ControlV1, &vec![0; len]);
            prop_assert!(window.pending_ack_count() <= MAX_ACKS);
            while let Some(message) = window.pop_message() {
                prop_assert_eq!(message.message_id, next);
                prop_assert!(message.payload.len() <= 2048);
                next += 1;
            }
            if random_id % 5 == 0 {
                let acks = window.take_acks(MAX_ACKS);
                prop_assert!(acks.len() <= MAX_ACKS);
            }
        }
    }

    #[test]
    fn send_window_survives_arbitrary_acks(
        acks in prop::collection::vec(any::<u32>(), 0..100),
        steps in prop::collection::vec(0u64..5000, 0..100),
    ) {
        let start = Instant::now();
        let mut window = SendWindow::new(SendConfig::default());
        for (index, id) in acks.iter().enumerate() {
            if window.available() > 0 {
                window.push(Opcode::ControlV1, vec![index as u8]).unwrap();
            }
            window.on_ack(*id % 16);
            let offset = steps.get(index).copied().unwrap_or(0);
            let now = start + Duration::from_millis(offset * index as u64);
            while window.poll_transmit(now).is_some() {}
            prop_assert!(window.unacked() <= 6);
            prop_assert!(window.available() <= 6);
        }
    }

    #[test]
    fn fragments_fit_payload_size(
        data in prop::collection::vec(any::<u8>(), 0..10_000),
        tls_mtu in 0usize..5000,
        wrap_overhead in 0usize..200,
        ipv6 in any::<bool>(),
    ) {
        let max_payload = max_control_payload(tls_mtu, wrap_overhead, ipv6);
        prop_assert!(max_payload >= 16);
        let pieces: Vec<&[u8]> = fragment(&data, max_payload).collect();
        prop_assert!(pieces.iter().all(|piece| piece.len() <= max_payload));
        prop_assert_eq!(pieces.concat(), data);
    }
}
