//! Known-answer tests of every packet layout.
//!
//! The expected packets were computed outside this crate with Python's `cryptography`
//! package (OpenSSL) from the same key block and payload, following the layouts of
//! OpenVPN's `crypto.c`: `header | packet id | tag | ciphertext` with the nonce
//! `packet id | HMAC key slot[..8]` for AEAD, `header | HMAC(IV | ciphertext) | IV |
//! AES-CBC(packet id | payload | PKCS#7)` for CBC, and `header | HMAC(packet id |
//! payload) | packet id | payload` for `cipher none`.

use std::time::Instant;

use aws_lc_rs::{aead, cipher, hmac};

use super::{V1, V2, key_block, keys, sample_payload};
use crate::proto::data::{AuthDigest, DataCipher, Role};

/// Encrypts the sample payload as the first packet of `role` and compares it with
/// `expected`, then decrypts it with the other end's keys.
fn check_encrypt(
    cipher: DataCipher,
    digest: AuthDigest,
    role: Role,
    header: &[u8],
    expected: &str,
) {
    let mut sender = keys(cipher, digest, role);
    let mut packet = Vec::new();
    sender
        .encrypt
        .encrypt(header, &sample_payload(), &mut packet)
        .expect("encrypt");
    assert_eq!(
        hex::encode(&packet),
        expected,
        "{cipher:?} {digest:?} {role:?}"
    );

    check_decrypt(cipher, digest, role, header, expected);
}

/// Decrypts `packet_hex`, sent by `sender_role`, with the receiving end's keys.
fn check_decrypt(
    cipher: DataCipher,
    digest: AuthDigest,
    sender_role: Role,
    header: &[u8],
    packet_hex: &str,
) {
    let receiver_role = match sender_role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let mut receiver = keys(cipher, digest, receiver_role);
    let mut packet = hex::decode(packet_hex).expect("hex");
    let payload = receiver
        .decrypt
        .decrypt(&mut packet, header.len(), Instant::now())
        .expect("decrypt");
    assert_eq!(
        packet[payload],
        sample_payload()[..],
        "{cipher:?} {digest:?}"
    );
    assert_eq!(receiver.decrypt.replay_window().highest(), 1);
}

#[test]
fn aes_256_gcm_data_v2_server() {
    check_encrypt(
        DataCipher::Aes256Gcm,
        AuthDigest::Sha1,
        Role::Server,
        &V2,
        "48000007000000011f4329168129c09dce6035e072e855abf9056a52ca86caa868fec434416364f04e60abb2d1c7cc01a14c9a9a70e51c5a60c1a39c5d",
    );
}

#[test]
fn aes_256_gcm_data_v2_client() {
    check_encrypt(
        DataCipher::Aes256Gcm,
        AuthDigest::Sha256,
        Role::Client,
        &V2,
        "4800000700000001245a55d1582405aa2821cdb8766557bd8b8a39fe2ff3e08e5df71e3c387b466ca33c6bf2a49cc41aab15bde2a029540fd030be65b2",
    );
}

#[test]
fn aes_128_gcm_data_v1_server() {
    check_encrypt(
        DataCipher::Aes128Gcm,
        AuthDigest::Sha1,
        Role::Server,
        &V1,
        "30000000015d1980c5332f529a0d69d229f1cec22d864a0f43a531567b44916ccd0cd8c0d674700abc787d78d02bc71d2daa634ddbac1fd329cf",
    );
}

#[test]
fn aes_192_gcm_data_v2_second_packet() {
    let mut sender = keys(DataCipher::Aes192Gcm, AuthDigest::Sha1, Role::Server);
    let mut packet = Vec::new();
    for _ in 0..2 {
        sender
            .encrypt
            .encrypt(&V2, &sample_payload(), &mut packet)
            .expect("encrypt");
    }
    assert_eq!(
        hex::encode(&packet),
        "48000007000000020405f7796012d24ac79c577abb1937f4e89cdbfc306d294b3be581938704c42f2d9c722f98d7945783400385e13abe2d0e57fea658"
    );
}

#[test]
fn chacha20_poly1305_data_v2_server() {
    check_encrypt(
        DataCipher::ChaCha20Poly1305,
        AuthDigest::Sha1,
        Role::Server,
        &V2,
        "4800000700000001887f8ab1e88c685c10f98176dab2bd12bc367309834ca19d8f084a4c62806c395a469235653b00e9e9265d57441d54804014abba3b",
    );
}

#[test]
fn chacha20_poly1305_data_v1_client() {
    check_encrypt(
        DataCipher::ChaCha20Poly1305,
        AuthDigest::Sha1,
        Role::Client,
        &V1,
        "3000000001f9043332fc6f91707326ab686452e28d4ec57087b7e92579dbffadb80a85b3a53a260785ff5af33910da3fda9273cf43eeb2e4f62b",
    );
}

#[test]
fn none_sha256_data_v2_server() {
    check_encrypt(
        DataCipher::None,
        AuthDigest::Sha256,
        Role::Server,
        &V2,
        "48000007e2fe7e99adc2204d7db3fbe95c0b0f20fc286b3211a5bad8f5dc1edaad9f375300000001404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6061626364",
    );
}

#[test]
fn none_sha1_data_v2_client() {
    check_encrypt(
        DataCipher::None,
        AuthDigest::Sha1,
        Role::Client,
        &V2,
        "4800000736b0b0e1c466d86d2e3c2e6725f052176bede65f00000001404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6061626364",
    );
}

#[test]
fn none_without_digest_data_v1_server() {
    check_encrypt(
        DataCipher::None,
        AuthDigest::None,
        Role::Server,
        &V1,
        "3000000001404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6061626364",
    );
}

// CBC packets carry a random IV, so these vectors use the fixed IV a0..af and test
// decryption; `aes_256_cbc_encrypt_layout` checks the encrypted form.

#[test]
fn aes_256_cbc_sha1_data_v2_decrypt() {
    check_decrypt(
        DataCipher::Aes256Cbc,
        AuthDigest::Sha1,
        Role::Client,
        &V2,
        "480000074719d62fe8d56d5dcee202cfb3e2f018acf39356a0a1a2a3a4a5a6a7a8a9aaabacadaeafe57ff2a82562ab0be78ea8a8e09fad8c676c15e2339bdf6c319a2e592220a288ddc3e8d82c5f96fc49fbff9582033292",
    );
}

#[test]
fn aes_128_cbc_sha256_data_v1_decrypt() {
    check_decrypt(
        DataCipher::Aes128Cbc,
        AuthDigest::Sha256,
        Role::Client,
        &V1,
        "30b44736fb7e8a4bee17b0a63f78ec0554bd9e4b90cdc396538a36f93565efe5e6a0a1a2a3a4a5a6a7a8a9aaabacadaeaf17e412f668c6ef00a2e02b63471ef3c5f890cb2a8615d63856b6eae4a86f22e9be845049ec6f9fd822669b2a08c18d6c",
    );
}

#[test]
fn aes_192_cbc_sha512_data_v2_decrypt() {
    check_decrypt(
        DataCipher::Aes192Cbc,
        AuthDigest::Sha512,
        Role::Client,
        &V2,
        "480000071f2c07713f3c178cc2fcd6c9f66244954e0c75fd02046a4744179b02fc2bbd4f22a55ebb8d38266e3cc90cf41cbadc22e69e3c53f675ca3cfa778e33308045b3a0a1a2a3a4a5a6a7a8a9aaabacadaeaffce26b4b28520693d5a532693d0e9ef085eddc9391aa0657fc1f3aac01ebce156f0e5caa1777d9d42f52595be361c2ad",
    );
}

/// Seals the same nonce and additional data with aws-lc-rs directly and finds the tag
/// and ciphertext at their places in the packet.
#[test]
fn aes_128_gcm_data_v2_matches_direct_seal() {
    let block = key_block();
    let mut sender = keys(DataCipher::Aes128Gcm, AuthDigest::Sha1, Role::Client);
    let mut packet = Vec::new();
    sender
        .encrypt
        .encrypt(&V2, &sample_payload(), &mut packet)
        .expect("encrypt");

    let key = aead::UnboundKey::new(&aead::AES_128_GCM, &block[..16]).expect("key");
    let key = aead::LessSafeKey::new(key);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&1u32.to_be_bytes());
    nonce[4..].copy_from_slice(&block[64..72]);
    let mut aad = V2.to_vec();
    aad.extend_from_slice(&1u32.to_be_bytes());
    let mut sealed = sample_payload();
    let tag = key
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(&aad),
            &mut sealed,
        )
        .expect("seal");

    assert_eq!(packet.len(), 4 + 4 + 16 + 37);
    assert_eq!(packet[..4], V2);
    assert_eq!(packet[4..8], 1u32.to_be_bytes());
    assert_eq!(packet[8..24], *tag.as_ref());
    assert_eq!(packet[24..], sealed[..]);
}

/// Checks the CBC layout of an encrypted packet by undoing it step by step with
/// aws-lc-rs: HMAC-SHA1 over IV and ciphertext, then AES-256-CBC with the packet's IV.
#[test]
fn aes_256_cbc_encrypt_layout() {
    let block = key_block();
    let mut sender = keys(DataCipher::Aes256Cbc, AuthDigest::Sha1, Role::Client);
    let mut packet = Vec::new();
    sender
        .encrypt
        .encrypt(&V2, &sample_payload(), &mut packet)
        .expect("encrypt");

    // Header 4, HMAC 20, IV 16, then 4 + 37 + 7 padding bytes of ciphertext.
    assert_eq!(packet.len(), 4 + 20 + 16 + 48);
    assert_eq!(packet[..4], V2);
    let hmac_key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &block[64..84]);
    let expected_hmac = hmac::sign(&hmac_key, &packet[24..]);
    assert_eq!(packet[4..24], *expected_hmac.as_ref());

    let mut iv = [0u8; 16];
    iv.copy_from_slice(&packet[24..40]);
    let unbound = cipher::UnboundCipherKey::new(&cipher::AES_256, &block[..32]).expect("key");
    let key = cipher::DecryptingKey::cbc(unbound).expect("key");
    let mut ciphertext = packet[40..].to_vec();
    let plaintext = key
        .decrypt(&mut ciphertext, cipher::DecryptionContext::Iv128(iv.into()))
        .expect("decrypt");
    assert_eq!(plaintext[..4], 1u32.to_be_bytes());
    assert_eq!(plaintext[4..41], sample_payload()[..]);
    assert_eq!(plaintext[41..], [7u8; 7]);
}

#[test]
fn cbc_ivs_differ_between_packets() {
    let mut sender = keys(DataCipher::Aes128Cbc, AuthDigest::Sha1, Role::Server);
    let mut first = Vec::new();
    let mut second = Vec::new();
    sender
        .encrypt
        .encrypt(&V1, &sample_payload(), &mut first)
        .expect("encrypt");
    sender
        .encrypt
        .encrypt(&V1, &sample_payload(), &mut second)
        .expect("encrypt");
    assert_ne!(first[21..37], second[21..37]);
}

#[test]
fn cbc_full_block_of_padding() {
    // 4 + 28 bytes fill two blocks exactly, so a whole block of padding follows.
    let (mut client, mut server) =
        super::client_and_server(DataCipher::Aes128Cbc, AuthDigest::Sha1);
    let payload = [0x45u8; 28];
    let mut packet = Vec::new();
    client
        .encrypt
        .encrypt(&V1, &payload, &mut packet)
        .expect("encrypt");
    assert_eq!(packet.len(), 1 + 20 + 16 + 48);
    let range = server
        .decrypt
        .decrypt(&mut packet, 1, Instant::now())
        .expect("decrypt");
    assert_eq!(packet[range], payload);
}
