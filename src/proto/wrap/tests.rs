//! Tests of `ControlWrap` across both peers, with known answers computed independently.

use std::sync::Arc;

use aws_lc_rs::cipher::{AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

use super::*;
use crate::proto::packet::{AckList, ControlPacket, KeyId, Opcode, SessionId};

const NOW: u32 = 0x6500_0000;

fn counting_key() -> StaticKey {
    let mut bytes = [0; STATIC_KEY_LEN];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = (index as u8).wrapping_mul(7).wrapping_add(3);
    }
    StaticKey::from_bytes(bytes)
}

fn plain_packet() -> Vec<u8> {
    let packet = ControlPacket {
        opcode: Opcode::ControlV1,
        key_id: KeyId::ZERO,
        session_id: SessionId([1, 2, 3, 4, 5, 6, 7, 8]),
        acks: AckList::try_from(&[0][..]).unwrap(),
        peer_session_id: Some(SessionId([9; 8])),
        message_id: Some(1),
        payload: b"\x16\x03\x01 client hello",
    };
    let mut out = Vec::new();
    packet.encode(&mut out).unwrap();
    out
}

fn wrap(wrap: &mut ControlWrap, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    wrap.wrap(plain, NOW, &mut out).unwrap();
    out
}

fn pairs() -> Vec<(&'static str, ControlWrap, ControlWrap)> {
    let key = Arc::new(counting_key());
    let mut pairs = Vec::new();
    for digest in [Digest::Sha1, Digest::Sha256, Digest::Sha512] {
        for (server, client) in [
            (KeyDirection::Normal, KeyDirection::Inverse),
            (KeyDirection::Bidirectional, KeyDirection::Bidirectional),
        ] {
            let server = WrapConfig::TlsAuth {
                key: key.clone(),
                digest,
                direction: server,
            };
            let client = WrapConfig::TlsAuth {
                key: key.clone(),
                digest,
                direction: client,
            };
            pairs.push(("tls-auth", server.build().unwrap(), client.build().unwrap()));
        }
    }
    let server = WrapConfig::TlsCrypt {
        key: key.clone(),
        role: Role::Server,
    };
    let client = WrapConfig::TlsCrypt {
        key,
        role: Role::Client,
    };
    pairs.push((
        "tls-crypt",
        server.build().unwrap(),
        client.build().unwrap(),
    ));
    pairs.push(("none", ControlWrap::None, ControlWrap::None));
    pairs
}

#[test]
fn round_trip_both_directions() {
    let plain = plain_packet();
    for (name, mut server, mut client) in pairs() {
        let wire = wrap(&mut client, &plain);
        assert_eq!(wire.len(), plain.len() + client.overhead(), "{name}");
        let mut out = Vec::new();
        server.unwrap(&wire, &mut out).unwrap();
        assert_eq!(out, plain, "{name} client to server");

        let wire = wrap(&mut server, &plain);
        let mut out = Vec::new();
        client.unwrap(&wire, &mut out).unwrap();
        assert_eq!(out, plain, "{name} server to client");
    }
}

#[test]
fn unwrap_rejects_every_flipped_bit() {
    let plain = plain_packet();
    for (name, mut server, mut client) in pairs() {
        if name == "none" {
            continue;
        }
        let wire = wrap(&mut client, &plain);
        for index in 0..wire.len() {
            for bit in [0x01, 0x80] {
                let mut tampered = wire.clone();
                tampered[index] ^= bit;
                let mut out = vec![0xaa];
                let result = server.unwrap(&tampered, &mut out);
                assert!(
                    matches!(result, Err(WrapError::AuthenticationFailed(_))),
                    "{name}: byte {index} bit {bit:#x} gave {result:?}"
                );
                assert_eq!(out, [0xaa], "{name}: output changed on error");
            }
        }
    }
}

#[test]
fn unwrap_rejects_every_truncation() {
    let plain = plain_packet();
    for (name, mut server, mut client) in pairs() {
        if name == "none" {
            continue;
        }
        let wire = wrap(&mut client, &plain);
        for len in 0..wire.len() {
            let result = server.unwrap(&wire[..len], &mut Vec::new());
            assert!(result.is_err(), "{name}: truncated to {len} accepted");
        }
    }
}

#[test]
fn unwrap_rejects_replay() {
    let plain = plain_packet();
    for (name, mut server, mut client) in pairs() {
        if name == "none" {
            continue;
        }
        let first = wrap(&mut client, &plain);
        let second = wrap(&mut client, &plain);
        assert!(server.unwrap(&second, &mut Vec::new()).is_ok(), "{name}");
        assert!(server.unwrap(&first, &mut Vec::new()).is_ok(), "{name}");
        let mut out = Vec::new();
        let result = server.unwrap(&first, &mut out);
        assert_eq!(
            result,
            Err(WrapError::Replay {
                id: ReplayId {
                    counter: 1,
                    time: NOW,
                },
                reason: ReplayReason::Duplicate,
            }),
            "{name}"
        );
        assert!(out.is_empty(), "{name}");
    }
}

#[test]
fn open_leaves_replay_window() {
    let plain = plain_packet();
    for (name, mut server, mut client) in pairs() {
        if name == "none" {
            continue;
        }
        let wire = wrap(&mut client, &plain);
        let mut out = Vec::new();
        let id = server.open(&wire, &mut out).unwrap();
        assert_eq!(
            id,
            Some(ReplayId {
                counter: 1,
                time: NOW,
            })
        );
        assert_eq!(out, plain);
        assert!(server.unwrap(&wire, &mut Vec::new()).is_ok(), "{name}");
    }
}

#[test]
fn wrap_first_matches_a_new_state() {
    let plain = plain_packet();
    for (name, mut server, mut client) in pairs() {
        let mut first = Vec::new();
        server.wrap_first(&plain, NOW, &mut first).unwrap();
        let mut again = Vec::new();
        server.wrap_first(&plain, NOW + 5, &mut again).unwrap();
        let fresh = wrap(&mut server, &plain);
        assert_eq!(
            first, fresh,
            "{name}: differs from a new state's first packet"
        );
        if name == "none" {
            continue;
        }
        assert_ne!(again, first, "{name}: time ignored");
        let id = client.unwrap(&again, &mut Vec::new()).unwrap();
        let expected = ReplayId {
            counter: 1,
            time: NOW + 5,
        };
        assert_eq!(id, Some(expected), "{name}");
    }
}

#[test]
fn record_replay_id_rejects_duplicate() {
    let plain = plain_packet();
    for (name, mut server, mut client) in pairs() {
        if name == "none" {
            continue;
        }
        let wire = wrap(&mut client, &plain);
        let id = server.open(&wire, &mut Vec::new()).unwrap().unwrap();
        assert_eq!(server.record_replay_id(id), Ok(()), "{name}");
        let replayed = server.unwrap(&wire, &mut Vec::new());
        assert!(
            matches!(replayed, Err(WrapError::Replay { .. })),
            "{name}: {replayed:?}"
        );
    }
}

#[test]
fn same_direction_keys_do_not_verify() {
    let key = counting_key();
    let mut first = ControlWrap::tls_auth(&key, Digest::Sha1, KeyDirection::Normal);
    let mut second = ControlWrap::tls_auth(&key, Digest::Sha1, KeyDirection::Normal);
    let wire = wrap(&mut first, &plain_packet());
    assert_eq!(
        second.unwrap(&wire, &mut Vec::new()),
        Err(WrapError::AuthenticationFailed("tls-auth"))
    );

    let mut server = ControlWrap::tls_crypt(&key, Role::Server).unwrap();
    let mut other_server = ControlWrap::tls_crypt(&key, Role::Server).unwrap();
    let wire = wrap(&mut server, &plain_packet());
    assert_eq!(
        other_server.unwrap(&wire, &mut Vec::new()),
        Err(WrapError::AuthenticationFailed("tls-crypt"))
    );
}

#[test]
fn wrap_rejects_short_plain_packet() {
    for (name, mut server, _) in pairs() {
        let mut out = vec![1];
        let result = server.wrap(&[0x20; 8], NOW, &mut out);
        assert_eq!(result, Err(WrapError::PlainTooShort(8)), "{name}");
        assert_eq!(out, [1], "{name}");
    }
}

#[test]
fn wrap_appends_to_output() {
    for (name, mut server, mut client) in pairs() {
        let mut out = vec![0, 0];
        server.wrap(&plain_packet(), NOW, &mut out).unwrap();
        assert_eq!(&out[..2], &[0, 0], "{name}");
        let mut unwrapped = vec![7];
        client.unwrap(&out[2..], &mut unwrapped).unwrap();
        assert_eq!(&unwrapped[1..], plain_packet(), "{name}");
    }
}

#[test]
fn tls_auth_known_answer() {
    let key = counting_key();
    let plain = plain_packet();
    let mut wrap_state = ControlWrap::tls_auth(&key, Digest::Sha256, KeyDirection::Inverse);
    let wire = wrap(&mut wrap_state, &plain);

    // Independent calculation: key-direction 1 sends with the HMAC key of set 1, which starts
    // at byte 192 of the file; SHA256 takes its first 32 bytes.
    let replay_id = [0, 0, 0, 1, 0x65, 0, 0, 0];
    let hmac_key = hmac::Key::new(hmac::HMAC_SHA256, &key.as_bytes()[192..224]);
    let mut input = replay_id.to_vec();
    input.extend_from_slice(&plain);
    let tag = hmac::sign(&hmac_key, &input);

    let mut expected = plain[..9].to_vec();
    expected.extend_from_slice(tag.as_ref());
    expected.extend_from_slice(&replay_id);
    expected.extend_from_slice(&plain[9..]);
    assert_eq!(wire, expected);
}

#[test]
fn tls_crypt_known_answer() {
    let key = counting_key();
    let plain = plain_packet();
    let mut server = ControlWrap::tls_crypt(&key, Role::Server).unwrap();
    let wire = wrap(&mut server, &plain);

    // Independent calculation: the server sends with set 0, so the AES key is bytes 0..32 and
    // the HMAC key bytes 64..96 of the file.
    let replay_id = [0, 0, 0, 1, 0x65, 0, 0, 0];
    let hmac_key = hmac::Key::new(hmac::HMAC_SHA256, &key.as_bytes()[64..96]);
    let mut input = plain[..9].to_vec();
    input.extend_from_slice(&replay_id);
    input.extend_from_slice(&plain[9..]);
    let tag = hmac::sign(&hmac_key, &input);
    let mut iv = [0; 16];
    iv.copy_from_slice(&tag.as_ref()[..16]);
    let aes = UnboundCipherKey::new(&AES_256, &key.as_bytes()[..32]).unwrap();
    let aes = EncryptingKey::ctr(aes).unwrap();
    let mut ciphertext = plain[9..].to_vec();
    aes.less_safe_encrypt(
        &mut ciphertext,
        EncryptionContext::Iv128(FixedLength::from(iv)),
    )
    .unwrap();

    let mut expected = plain[..9].to_vec();
    expected.extend_from_slice(&replay_id);
    expected.extend_from_slice(tag.as_ref());
    expected.extend_from_slice(&ciphertext);
    assert_eq!(wire, expected);
}

#[test]
fn replay_counter_starts_at_early_negotiation() {
    let key = counting_key();
    let mut client = ControlWrap::tls_crypt(&key, Role::Client).unwrap();
    let mut server = ControlWrap::tls_crypt(&key, Role::Server).unwrap();
    client.set_send_counter(EARLY_NEGOTIATION_START);
    let wire = wrap(&mut client, &plain_packet());
    let id = server.unwrap(&wire, &mut Vec::new()).unwrap();
    assert_eq!(id.map(|id| id.counter), Some(0x0f00_0001));
}

#[test]
fn mtu_overhead_matches_openvpn() {
    for (name, server, _) in pairs() {
        let expected = match (name, &server) {
            ("tls-crypt", _) => 56,
            ("none", _) => 0,
            (_, ControlWrap::TlsAuth(auth)) => auth.overhead(),
            _ => unreachable!(),
        };
        assert_eq!(server.mtu_overhead(), expected, "{name}");
    }
}

#[test]
fn debug_hides_keys() {
    for (name, server, _) in pairs() {
        let text = format!("{server:?}");
        assert!(!text.contains("Key {"), "{name}: {text}");
        assert!(text.len() < 60, "{name}: {text}");
    }
}

proptest::proptest! {
    #[test]
    fn unwrap_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        for (name, mut server, _) in pairs() {
            let mut out = vec![0xaa];
            let result = server.unwrap(&bytes, &mut out);
            if name == "none" {
                proptest::prop_assert_eq!(result.is_ok(), bytes.len() >= HEADER_LEN);
                continue;
            }
            proptest::prop_assert!(result.is_err(), "{} accepted arbitrary bytes", name);
            proptest::prop_assert_eq!(&out, &[0xaa]);
        }
    }

    #[test]
    fn arbitrary_plaintext_round_trips(
        plain in proptest::collection::vec(proptest::prelude::any::<u8>(), 9..300),
        counter in proptest::prelude::any::<u32>(),
    ) {
        for (name, mut server, mut client) in pairs() {
            client.set_send_counter(counter);
            let mut wire = Vec::new();
            if client.wrap(&plain, NOW, &mut wire).is_err() {
                // Only an exhausted counter stops wrapping.
                proptest::prop_assert_eq!(counter, u32::MAX);
                continue;
            }
            let mut out = Vec::new();
            server.unwrap(&wire, &mut out).expect("own packet unwraps");
            proptest::prop_assert_eq!(&out, &plain, "{}", name);
            let replayed = server.unwrap(&wire, &mut Vec::new());
            proptest::prop_assert_eq!(replayed.is_err(), name != "none", "{}", name);
        }
    }
}
