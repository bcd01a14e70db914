//! Arbitrary input: decryption and unframing must reject garbage without panicking and
//! must keep decompressed output within the caller's buffer.

use std::time::Instant;

use proptest::prelude::*;

use super::{V1, V2, cipher_digest_pairs, client_and_server};
use crate::proto::data::{
    AuthDigest, CompressWorkspace, Compression, CompressionFraming, Unframed,
};

const FRAMINGS: [CompressionFraming; 4] = [
    CompressionFraming::None,
    CompressionFraming::Lzo,
    CompressionFraming::Swap,
    CompressionFraming::V2,
];

proptest! {
    #[test]
    fn decrypt_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        for (cipher, digest) in cipher_digest_pairs() {
            let (_, mut server) = client_and_server(cipher, digest);
            for header_len in [0, 1, 4] {
                let mut packet = bytes.clone();
                let result = server.decrypt.decrypt(&mut packet, header_len, Instant::now());
                if let Ok(range) = result {
                    // Only `auth none` without an AEAD cipher can accept garbage.
                    prop_assert!(!cipher.is_aead());
                    prop_assert_eq!(digest, AuthDigest::None);
                    prop_assert!(range.end <= packet.len());
                }
            }
        }
    }

    #[test]
    fn unframe_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        limit in 0usize..1700,
    ) {
        for framing in FRAMINGS {
            let mut buf = bytes.clone();
            let mut out = vec![0u8; limit];
            let len = buf.len();
            let result = Compression::framing_only(framing).unframe(&mut buf, 0..len, &mut out);
            match result {
                Ok(Unframed::InPlace(range)) => prop_assert!(range.end <= len),
                Ok(Unframed::Decompressed(n)) => prop_assert!(n <= limit),
                Err(_) => {}
            }
        }
    }

    /// Arbitrary LZO1X and LZ4 streams behind a valid framing byte reach the decoders.
    #[test]
    fn decompress_arbitrary_streams(
        stream in proptest::collection::vec(any::<u8>(), 0..600),
        limit in 0usize..1700,
    ) {
        let cases = [
            (CompressionFraming::Lzo, vec![0x66]),
            (CompressionFraming::V2, vec![0x50, 0x01]),
        ];
        for (framing, prefix) in cases {
            let mut buf = prefix.clone();
            buf.extend_from_slice(&stream);
            let mut out = vec![0u8; limit];
            let len = buf.len();
            let compression = Compression::framing_only(framing);
            if let Ok(Unframed::Decompressed(n)) = compression.unframe(&mut buf, 0..len, &mut out) {
                prop_assert!(n <= limit);
            }
        }
    }

    #[test]
    fn frame_and_unframe_any_payload(
        payload in proptest::collection::vec(any::<u8>(), 0..1500),
        compress_outbound in any::<bool>(),
    ) {
        let mut workspace = CompressWorkspace::new();
        for framing in FRAMINGS {
            let compression = Compression { framing, compress_outbound };
            let mut buf = vec![0u8; payload.len() + 3];
            buf[2..2 + payload.len()].copy_from_slice(&payload);
            let framed = compression
                .frame(&mut buf, 2..2 + payload.len(), &mut workspace)
                .expect("frame");
            let mut out = vec![0u8; 1500];
            let unframed = compression.unframe(&mut buf, framed, &mut out).expect("unframe");
            prop_assert_eq!(unframed.bytes(&buf, &out), &payload[..]);
        }
    }

    #[test]
    fn encrypt_decrypt_any_payload(payload in proptest::collection::vec(any::<u8>(), 0..1500)) {
        for (cipher, digest) in cipher_digest_pairs() {
            for header in [&V1[..], &V2[..]] {
                let (mut client, mut server) = client_and_server(cipher, digest);
                let mut packet = Vec::new();
                client.encrypt.encrypt(header, &payload, &mut packet).expect("encrypt");
                let range = server
                    .decrypt
                    .decrypt(&mut packet, header.len(), Instant::now())
                    .expect("decrypt");
                prop_assert_eq!(&packet[range], &payload[..]);
            }
        }
    }
}
