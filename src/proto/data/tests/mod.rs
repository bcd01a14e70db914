//! Tests across the data channel modules: known answers, round trips, tampering, replay
//! and arbitrary input.

mod known_answer;
mod properties;
mod round_trip;

use super::{AuthDigest, DataCipher, DataKeys, KEY_BLOCK_LEN, Role};

/// DATA_V1 header with key id 0.
const V1: [u8; 1] = [0x30];
/// DATA_V2 header with key id 0 and peer id 7.
const V2: [u8; 4] = [0x48, 0x00, 0x00, 0x07];

/// Returns a key block whose bytes equal their offsets, so a wrong slice shows in the
/// output.
fn key_block() -> [u8; KEY_BLOCK_LEN] {
    core::array::from_fn(|i| i as u8)
}

/// Returns a 37-byte payload. 4 + 37 is not a multiple of 16, so CBC pads it with 7 bytes.
fn sample_payload() -> Vec<u8> {
    (0x40..0x40 + 37).collect()
}

fn keys(cipher: DataCipher, digest: AuthDigest, role: Role) -> DataKeys {
    DataKeys::new(cipher, digest, &key_block(), role).expect("key setup")
}

/// Keys of both ends, for traffic from client to server.
fn client_and_server(cipher: DataCipher, digest: AuthDigest) -> (DataKeys, DataKeys) {
    (
        keys(cipher, digest, Role::Client),
        keys(cipher, digest, Role::Server),
    )
}

/// Lists every cipher with the digests worth testing: SHA1 (the default), SHA512 (the
/// longest HMAC) and `auth none` for the non-AEAD ciphers.
fn cipher_digest_pairs() -> Vec<(DataCipher, AuthDigest)> {
    let mut pairs = Vec::new();
    for cipher in DataCipher::ALL {
        if cipher.is_aead() {
            pairs.push((cipher, AuthDigest::Sha1));
        } else {
            for digest in [AuthDigest::Sha1, AuthDigest::Sha512, AuthDigest::None] {
                pairs.push((cipher, digest));
            }
        }
    }
    pairs
}

/// Sessions move between worker threads, so their keys must too.
#[test]
fn keys_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<DataKeys>();
    assert_send::<super::CompressWorkspace>();
    assert_send::<super::ReplayWindow>();
}
