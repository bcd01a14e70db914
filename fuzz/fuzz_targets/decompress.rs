//! The data channel receive path: compression unframing for every framing with a bounded
//! output buffer, and decryption of arbitrary and tampered packets with fixed keys.

#![no_main]

use std::time::Instant;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sslvpn::proto::data::{
    AuthDigest, COMPRESSION_HEADROOM, COMPRESSION_TAILROOM, CompressWorkspace, Compression,
    CompressionFraming, DataCipher, DataError, DataKeys, KEY_BLOCK_LEN, Payload, Role, Unframed,
};

const FRAMINGS: [CompressionFraming; 4] = [
    CompressionFraming::None,
    CompressionFraming::Lzo,
    CompressionFraming::Swap,
    CompressionFraming::V2,
];

#[derive(Arbitrary, Debug)]
struct Sealed {
    payload: Vec<u8>,
    compress: bool,
    change: Option<(u16, u8)>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    limit: u16,
    keys: u8,
    data_v2: bool,
    bytes: Vec<u8>,
    sealed: Vec<Sealed>,
}

fn key_block() -> [u8; KEY_BLOCK_LEN] {
    core::array::from_fn(|i| (i as u8).wrapping_mul(13).wrapping_add(1))
}

/// Unframes `buf[payload]` with every framing and checks that the result stays inside the
/// buffers.
fn unframe_all(buf: &[u8], payload: std::ops::Range<usize>, limit: usize) {
    for framing in FRAMINGS {
        let mut input = buf.to_vec();
        let mut out = vec![0u8; limit];
        let result =
            Compression::framing_only(framing).unframe(&mut input, payload.clone(), &mut out);
        let bytes = match &result {
            Ok(Unframed::InPlace(range)) => {
                assert!(range.start >= payload.start);
                assert!(range.end <= payload.end);
                &input[range.clone()]
            }
            Ok(Unframed::Decompressed(len)) => {
                assert!(
                    *len <= limit,
                    "decompressed {len} bytes past the limit {limit}"
                );
                &out[..*len]
            }
            Err(_) => continue,
        };
        let _ = format!("{:?}", Payload::classify(bytes));
    }
}

fuzz_target!(|input: Input| {
    let limit = usize::from(input.limit % 4096);
    unframe_all(&input.bytes, 0..input.bytes.len(), limit);

    let cipher = DataCipher::ALL[usize::from(input.keys % 8)];
    let digest = AuthDigest::ALL[usize::from(input.keys / 8 % 6)];
    let block = key_block();
    let mut client = DataKeys::new(cipher, digest, &block, Role::Client).expect("client keys");
    let mut server = DataKeys::new(cipher, digest, &block, Role::Server).expect("server keys");
    let unauthenticated = !cipher.is_aead() && digest == AuthDigest::None;
    let header: &[u8] = if input.data_v2 {
        &[0x48, 0, 0, 7]
    } else {
        &[0x30]
    };
    let now = Instant::now();

    let mut raw_keys = DataKeys::new(cipher, digest, &block, Role::Server).expect("server keys");
    let mut packet = input.bytes.clone();
    if let Ok(range) = raw_keys.decrypt.decrypt(&mut packet, header.len(), now) {
        assert!(
            unauthenticated,
            "{cipher:?}/{digest:?} accepted arbitrary bytes"
        );
        assert!(range.end <= packet.len());
        unframe_all(&packet, range, limit);
    }

    let mut workspace = CompressWorkspace::new();
    for sealed in input.sealed {
        let framing = FRAMINGS[sealed.payload.len() % FRAMINGS.len()];
        let compression = Compression {
            framing,
            compress_outbound: sealed.compress,
        };
        let start = COMPRESSION_HEADROOM;
        let end = start + sealed.payload.len();
        let mut framed = vec![0u8; end + COMPRESSION_TAILROOM];
        framed[start..end].copy_from_slice(&sealed.payload);
        let Ok(range) = compression.frame(&mut framed, start..end, &mut workspace) else {
            continue;
        };
        let mut packet = Vec::new();
        client
            .encrypt
            .encrypt(header, &framed[range], &mut packet)
            .expect("encryption with fresh keys");
        let changed = match sealed.change {
            Some((at, mask)) if mask != 0 => {
                let at = usize::from(at) % packet.len();
                packet[at] ^= mask;
                // Only AEAD ciphers with DATA_V2 authenticate the header.
                at >= header.len() || (cipher.is_aead() && input.data_v2)
            }
            _ => false,
        };
        let result = server.decrypt.decrypt(&mut packet, header.len(), now);
        let range = match result {
            Ok(range) => range,
            // Without authentication a changed packet id can move the replay window past
            // the ids that follow.
            Err(DataError::Replay(_)) if unauthenticated => continue,
            Err(error) => {
                assert!(
                    changed,
                    "{cipher:?}/{digest:?} rejected its own packet: {error}"
                );
                continue;
            }
        };
        assert!(
            !changed || unauthenticated,
            "{cipher:?}/{digest:?} accepted a changed packet"
        );
        if changed {
            unframe_all(&packet, range, limit);
            continue;
        }
        let mut out = vec![0u8; sealed.payload.len()];
        let unframed = compression
            .unframe(&mut packet, range, &mut out)
            .expect("own framing unframes");
        assert_eq!(unframed.bytes(&packet, &out), &sealed.payload[..]);
    }
});
