//! Control packet and data header parsing: whatever parses must encode back to the same
//! bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sslvpn::proto::packet::{ControlPacket, DataHeader, peek};

fuzz_target!(|bytes: &[u8]| {
    let _ = peek(bytes);

    if let Ok(packet) = ControlPacket::parse(bytes) {
        let mut encoded = Vec::new();
        packet
            .encode(&mut encoded)
            .expect("a parsed control packet encodes");
        assert_eq!(encoded, bytes, "re-encoded control packet differs");
        assert_eq!(packet.encoded_len(), bytes.len());
        let _ = format!("{packet:?}");
    }

    if let Ok((header, rest)) = DataHeader::parse(bytes) {
        let mut encoded = Vec::new();
        header
            .write(&mut encoded)
            .expect("a parsed data header encodes");
        assert_eq!(encoded.len(), header.encoded_len());
        assert_eq!(encoded.len() + rest.len(), bytes.len());
        // The peer id PEER_ID_NONE parses as `None` and is written back as the same value.
        assert_eq!(
            encoded,
            bytes[..encoded.len()],
            "re-encoded data header differs"
        );
    }
});
