//! Round trips through framing, encryption, decryption and unframing, and the ways a
//! packet is rejected.

use std::time::Instant;

use super::{V1, V2, cipher_digest_pairs, client_and_server, keys, sample_payload};
use crate::proto::data::{
    AuthDigest, COMPRESSION_HEADROOM, COMPRESSION_TAILROOM, CompressWorkspace, Compression,
    CompressionFraming, DataCipher, DataError, DataKeys, Decryptor, Encryptor, MAX_HEADROOM,
    MAX_TAILROOM, OccOp, PING_PAYLOAD, Payload, RenegotiationReason, ReplayError, ReplayProtection,
    Role, write_occ,
};

const HEADROOM: usize = COMPRESSION_HEADROOM + MAX_HEADROOM;
const TAILROOM: usize = COMPRESSION_TAILROOM + MAX_TAILROOM;
const DECOMPRESSED_LIMIT: usize = 1600;

const FRAMINGS: [CompressionFraming; 4] = [
    CompressionFraming::None,
    CompressionFraming::Lzo,
    CompressionFraming::Swap,
    CompressionFraming::V2,
];

/// Frames and encrypts `payload` the way the daemon does, in one buffer with headroom.
fn send(
    compression: &Compression,
    workspace: &mut CompressWorkspace,
    encryptor: &mut Encryptor,
    header: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut buf = vec![0u8; HEADROOM + payload.len() + TAILROOM];
    let payload_range = HEADROOM..HEADROOM + payload.len();
    buf[payload_range.clone()].copy_from_slice(payload);
    let framed = compression
        .frame(&mut buf, payload_range, workspace)
        .expect("frame");
    let packet = encryptor
        .encrypt_in_place(header, &mut buf, framed)
        .expect("encrypt");
    buf[packet].to_vec()
}

/// Decrypts and unframes a packet, returning the payload.
fn receive(
    compression: &Compression,
    decryptor: &mut Decryptor,
    header_len: usize,
    mut packet: Vec<u8>,
) -> Vec<u8> {
    let plaintext = decryptor
        .decrypt(&mut packet, header_len, Instant::now())
        .expect("decrypt");
    let mut out = [0u8; DECOMPRESSED_LIMIT];
    let unframed = compression
        .unframe(&mut packet, plaintext, &mut out)
        .expect("unframe");
    unframed.bytes(&packet, &out).to_vec()
}

/// Returns a 300-byte IPv4 packet with a repetitive body that LZO and LZ4 both shrink.
fn compressible_packet() -> Vec<u8> {
    let mut packet = vec![0x45, 0x00, 0x01, 0x2c];
    packet.resize(20, 0x11);
    while packet.len() < 300 {
        packet.extend_from_slice(b"OpenVPN data channel compression test. ");
    }
    packet.truncate(300);
    packet
}

/// Returns 1400 bytes that do not compress.
fn incompressible_packet() -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut packet = vec![0x60];
    while packet.len() < 1400 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        packet.push(state as u8);
    }
    packet
}

fn test_payloads() -> Vec<Vec<u8>> {
    let mut occ_exit = Vec::new();
    write_occ(OccOp::Exit, &[], &mut occ_exit);
    vec![
        sample_payload(),
        vec![0x45],
        PING_PAYLOAD.to_vec(),
        occ_exit,
        vec![0x50, 0x01, 0x02, 0x03],
        vec![0x50],
        compressible_packet(),
        incompressible_packet(),
    ]
}

#[test]
fn every_cipher_header_and_framing() {
    for (cipher, digest) in cipher_digest_pairs() {
        for header in [&V1[..], &V2[..]] {
            for framing in FRAMINGS {
                for compress_outbound in [false, true] {
                    let compression = Compression {
                        framing,
                        compress_outbound,
                    };
                    let (mut client, mut server) = client_and_server(cipher, digest);
                    let mut workspace = CompressWorkspace::new();
                    for payload in test_payloads() {
                        let packet = send(
                            &compression,
                            &mut workspace,
                            &mut client.encrypt,
                            header,
                            &payload,
                        );
                        let received =
                            receive(&compression, &mut server.decrypt, header.len(), packet);
                        assert_eq!(
                            received,
                            payload,
                            "{cipher:?} {digest:?} header {} {compression:?}",
                            header.len()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn compression_shrinks_compressible_packets() {
    let payload = compressible_packet();
    for framing in [
        CompressionFraming::Lzo,
        CompressionFraming::Swap,
        CompressionFraming::V2,
    ] {
        let (mut client, _) = client_and_server(DataCipher::Aes256Gcm, AuthDigest::Sha1);
        let mut workspace = CompressWorkspace::new();
        let compressed = Compression {
            framing,
            compress_outbound: true,
        };
        let plain = Compression::framing_only(framing);
        let small = send(
            &compressed,
            &mut workspace,
            &mut client.encrypt,
            &V2,
            &payload,
        );
        let large = send(&plain, &mut workspace, &mut client.encrypt, &V2, &payload);
        assert!(
            small.len() < large.len() / 2,
            "{framing:?}: {} bytes",
            small.len()
        );
    }
}

#[test]
fn received_ping_is_classified() {
    let (mut client, mut server) =
        client_and_server(DataCipher::ChaCha20Poly1305, AuthDigest::Sha1);
    let compression = Compression::framing_only(CompressionFraming::Swap);
    let packet = send(
        &compression,
        &mut CompressWorkspace::new(),
        &mut client.encrypt,
        &V2,
        &PING_PAYLOAD,
    );
    let payload = receive(&compression, &mut server.decrypt, V2.len(), packet);
    assert_eq!(Payload::classify(&payload), Payload::Ping);
}

/// Lists every configuration except `auth none` with a CBC or `none` cipher, which
/// leaves packets unauthenticated.
fn authenticated_pairs() -> impl Iterator<Item = (DataCipher, AuthDigest)> {
    cipher_digest_pairs()
        .into_iter()
        .filter(|(cipher, digest)| cipher.is_aead() || *digest != AuthDigest::None)
}

/// Flips one bit at a time: every authenticated byte must make decryption fail, and the
/// failures must not disturb the replay window.
#[test]
fn tampered_packets_rejected() {
    for (cipher, digest) in authenticated_pairs() {
        for header in [&V1[..], &V2[..]] {
            let (mut client, mut server) = client_and_server(cipher, digest);
            let mut packet = Vec::new();
            client
                .encrypt
                .encrypt(header, &sample_payload(), &mut packet)
                .expect("encrypt");
            for index in header.len()..packet.len() {
                for bit in [0x01, 0x80] {
                    let mut tampered = packet.clone();
                    tampered[index] ^= bit;
                    let result =
                        server
                            .decrypt
                            .decrypt(&mut tampered, header.len(), Instant::now());
                    assert_eq!(
                        result,
                        Err(DataError::AuthenticationFailed),
                        "{cipher:?} {digest:?} header {} byte {index}",
                        header.len()
                    );
                }
            }
            let payload = server
                .decrypt
                .decrypt(&mut packet, header.len(), Instant::now())
                .expect("untampered packet");
            assert_eq!(payload.len(), sample_payload().len());
        }
    }
}

#[test]
fn aead_data_v2_header_is_authenticated() {
    for cipher in DataCipher::ALL
        .into_iter()
        .filter(|cipher| cipher.is_aead())
    {
        let (mut client, mut server) = client_and_server(cipher, AuthDigest::Sha1);
        let mut packet = Vec::new();
        client
            .encrypt
            .encrypt(&V2, &sample_payload(), &mut packet)
            .expect("encrypt");
        for index in 0..V2.len() {
            let mut tampered = packet.clone();
            tampered[index] ^= 0x01;
            let result = server
                .decrypt
                .decrypt(&mut tampered, V2.len(), Instant::now());
            assert_eq!(
                result,
                Err(DataError::AuthenticationFailed),
                "{cipher:?} {index}"
            );
        }
        assert_eq!(server.decrypt.failed_decryptions(), 4);
    }
}

/// As in OpenVPN, the HMAC of CBC and `none` does not cover the header; the session
/// checks the opcode, key id and peer id itself.
#[test]
fn cbc_header_is_not_authenticated() {
    let (mut client, mut server) = client_and_server(DataCipher::Aes256Cbc, AuthDigest::Sha1);
    let mut packet = Vec::new();
    client
        .encrypt
        .encrypt(&V2, &sample_payload(), &mut packet)
        .expect("encrypt");
    packet[3] ^= 0x01;
    let result = server
        .decrypt
        .decrypt(&mut packet, V2.len(), Instant::now());
    assert!(result.is_ok());
}

#[test]
fn own_direction_cannot_be_decrypted() {
    for (cipher, digest) in authenticated_pairs() {
        let mut server = keys(cipher, digest, Role::Server);
        let mut packet = Vec::new();
        server
            .encrypt
            .encrypt(&V2, &sample_payload(), &mut packet)
            .expect("encrypt");
        let result = server
            .decrypt
            .decrypt(&mut packet, V2.len(), Instant::now());
        assert_eq!(result, Err(DataError::AuthenticationFailed), "{cipher:?}");
    }
}

fn encrypt_many(encryptor: &mut Encryptor, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|_| {
            let mut packet = Vec::new();
            encryptor
                .encrypt(&V2, &sample_payload(), &mut packet)
                .expect("encrypt");
            packet
        })
        .collect()
}

#[test]
fn replayed_and_reordered_packets() {
    let now = Instant::now();
    let (mut client, mut server) = client_and_server(DataCipher::Aes128Gcm, AuthDigest::Sha1);
    let packets = encrypt_many(&mut client.encrypt, 3);
    let mut decrypt = |index: usize| {
        let mut packet = packets[index].clone();
        server
            .decrypt
            .decrypt(&mut packet, V2.len(), now)
            .map(|_| ())
    };
    assert_eq!(decrypt(2), Ok(()));
    assert_eq!(decrypt(0), Ok(()));
    assert_eq!(decrypt(1), Ok(()));
    assert_eq!(
        decrypt(1),
        Err(DataError::Replay(ReplayError::Duplicate { id: 2 }))
    );
}

#[test]
fn packet_older_than_window_rejected() {
    let now = Instant::now();
    let (mut client, mut server) = client_and_server(DataCipher::Aes128Cbc, AuthDigest::Sha256);
    let mut packets = encrypt_many(&mut client.encrypt, 100);
    let last = packets.len() - 1;
    assert!(
        server
            .decrypt
            .decrypt(&mut packets[last], V2.len(), now)
            .is_ok()
    );
    assert_eq!(
        server.decrypt.decrypt(&mut packets[0], V2.len(), now),
        Err(DataError::Replay(ReplayError::TooOld {
            id: 1,
            highest: 100
        }))
    );
    assert!(
        server
            .decrypt
            .decrypt(&mut packets[50], V2.len(), now)
            .is_ok()
    );
}

#[test]
fn sequential_replay_protection() {
    let now = Instant::now();
    let block = super::key_block();
    let cipher = DataCipher::Aes256Gcm;
    let mut client = DataKeys::new(cipher, AuthDigest::Sha1, &block, Role::Client).expect("keys");
    let mut server = DataKeys::new_with_replay(
        cipher,
        AuthDigest::Sha1,
        &block,
        Role::Server,
        ReplayProtection::Sequential,
    )
    .expect("keys");
    let mut packets = encrypt_many(&mut client.encrypt, 3);
    assert!(
        server
            .decrypt
            .decrypt(&mut packets[0], V2.len(), now)
            .is_ok()
    );
    assert_eq!(
        server.decrypt.decrypt(&mut packets[2], V2.len(), now),
        Err(DataError::Replay(ReplayError::OutOfSequence {
            id: 3,
            expected: 2
        }))
    );
}

#[test]
fn packet_id_limits() {
    let mut keys = keys(DataCipher::ChaCha20Poly1305, AuthDigest::Sha1, Role::Server);
    let mut packet = Vec::new();
    keys.encrypt.set_last_packet_id(0xFEFF_FFFE);
    keys.encrypt
        .encrypt(&V2, b"x", &mut packet)
        .expect("encrypt");
    assert_eq!(keys.encrypt.renegotiation_needed(), None);
    keys.encrypt
        .encrypt(&V2, b"x", &mut packet)
        .expect("encrypt");
    assert_eq!(keys.encrypt.last_packet_id(), 0xFF00_0000);
    assert_eq!(
        keys.encrypt.renegotiation_needed(),
        Some(RenegotiationReason::PacketIdNearWrap)
    );

    keys.encrypt.set_last_packet_id(u32::MAX - 1);
    keys.encrypt
        .encrypt(&V2, b"x", &mut packet)
        .expect("last id");
    assert_eq!(packet[4..8], [0xff; 4]);
    assert_eq!(
        keys.encrypt.encrypt(&V2, b"x", &mut packet),
        Err(DataError::PacketIdExhausted)
    );
}

#[test]
fn aes_gcm_usage_limit() {
    let limit = ((1u64 << 36) - 1) / 8 * 7;
    let mut packet = Vec::new();
    let mut gcm = keys(DataCipher::Aes256Gcm, AuthDigest::Sha1, Role::Server);
    // One packet of 16 bytes counts 2 blocks and 1 packet id.
    gcm.encrypt.set_plaintext_blocks(limit - 3);
    gcm.encrypt
        .encrypt(&V2, &[0; 16], &mut packet)
        .expect("encrypt");
    assert_eq!(gcm.encrypt.renegotiation_needed(), None);
    gcm.encrypt
        .encrypt(&V2, &[0; 16], &mut packet)
        .expect("encrypt");
    assert_eq!(
        gcm.encrypt.renegotiation_needed(),
        Some(RenegotiationReason::AeadUsageLimit)
    );

    let mut chacha = keys(DataCipher::ChaCha20Poly1305, AuthDigest::Sha1, Role::Server);
    chacha.encrypt.set_plaintext_blocks(u64::MAX / 2);
    chacha
        .encrypt
        .encrypt(&V2, &[0; 16], &mut packet)
        .expect("encrypt");
    assert_eq!(chacha.encrypt.renegotiation_needed(), None);
}

#[test]
fn invalid_buffers_and_headers() {
    let (mut client, mut server) = client_and_server(DataCipher::Aes128Cbc, AuthDigest::Sha1);
    let mut buf = vec![0u8; 100];
    assert_eq!(
        client.encrypt.encrypt_in_place(&V1, &mut buf, 10..50),
        Err(DataError::InsufficientHeadroom {
            needed: 1 + 20 + 16 + 4,
            available: 10
        })
    );
    assert_eq!(
        client.encrypt.encrypt_in_place(&V1, &mut buf, 41..100),
        Err(DataError::InsufficientTailroom {
            needed: 1,
            available: 0
        })
    );
    assert_eq!(
        client.encrypt.encrypt_in_place(&V1, &mut buf, 60..120),
        Err(DataError::InvalidPayloadRange {
            start: 60,
            end: 120,
            len: 100
        })
    );
    assert_eq!(
        client
            .encrypt
            .encrypt_in_place(&[0x48, 0], &mut buf, 60..80),
        Err(DataError::InvalidHeaderLength(2))
    );
    assert_eq!(client.encrypt.last_packet_id(), 0);

    let mut short = vec![0u8; 40];
    assert_eq!(
        server.decrypt.decrypt(&mut short, 4, Instant::now()),
        Err(DataError::PacketTooShort { len: 40, min: 56 })
    );
    assert_eq!(
        server.decrypt.decrypt(&mut buf, 3, Instant::now()),
        Err(DataError::InvalidHeaderLength(3))
    );
}

#[test]
fn encrypt_reuses_output_capacity() {
    let (mut client, _) = client_and_server(DataCipher::Aes256Gcm, AuthDigest::Sha1);
    let mut packet = Vec::with_capacity(2048);
    let capacity = packet.capacity();
    for _ in 0..10 {
        client
            .encrypt
            .encrypt(&V2, &incompressible_packet(), &mut packet)
            .expect("encrypt");
        assert_eq!(packet.len(), 4 + 4 + 16 + 1400);
    }
    assert_eq!(packet.capacity(), capacity);
    assert_eq!(client.encrypt.packet_len(4, 1400), packet.len());
}
