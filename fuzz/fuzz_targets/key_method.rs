//! Key method 2 messages, the peer info and options strings, cipher negotiation and control
//! channel text messages, as a client sends them after the TLS handshake.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sslvpn::proto::data::{AuthDigest, DataCipher};
use sslvpn::proto::keymethod::{ClientKeyMessage, OccOptions, PeerInfo, ServerKeyMessage};
use sslvpn::proto::ncp::negotiate_cipher;
use sslvpn::proto::push::ControlMessage;

const ALLOWED: [&str; 4] = [
    "AES-256-GCM",
    "AES-128-GCM",
    "CHACHA20-POLY1305",
    "AES-128-CBC",
];

fuzz_target!(|bytes: &[u8]| {
    if let Ok(message) = ClientKeyMessage::parse(bytes) {
        let _ = format!("{message:?}");
        check_client_round_trip(&message);
        let info = PeerInfo::parse(&message.peer_info);
        let options = OccOptions::parse(&message.options);
        check_negotiation(&info, &options);
    }
    if let Ok(message) = ServerKeyMessage::parse(bytes) {
        let encoded = message.encode().expect("a parsed server message encodes");
        let again = ServerKeyMessage::parse(&encoded).expect("an encoded server message parses");
        assert_eq!(again.random1, message.random1);
        assert_eq!(again.random2, message.random2);
        assert_eq!(again.options, message.options);
    }

    let text = String::from_utf8_lossy(bytes);
    let info = PeerInfo::parse(&text);
    let options = OccOptions::parse(&text);
    check_negotiation(&info, &options);

    if let Ok(message) = ControlMessage::parse(bytes) {
        let _ = format!("{message:?}");
    }
});

/// Whatever parses must encode and parse back to the same fields. Peer info is read with
/// invalid UTF-8 replaced, so its encoding may grow past the limit and fail.
fn check_client_round_trip(message: &ClientKeyMessage) {
    let Ok(encoded) = message.encode() else {
        return;
    };
    let again = ClientKeyMessage::parse(&encoded).expect("an encoded client message parses");
    assert_eq!(again.pre_master, message.pre_master);
    assert_eq!(again.random1, message.random1);
    assert_eq!(again.random2, message.random2);
    assert_eq!(again.options, message.options);
    assert_eq!(again.username, message.username);
    assert_eq!(
        again
            .password
            .as_ref()
            .map(|secret| secret.expose().to_vec()),
        message
            .password
            .as_ref()
            .map(|secret| secret.expose().to_vec())
    );
    assert_eq!(again.peer_info, message.peer_info);
}

/// Runs the server's cipher choice on the client's announcements, as the session does.
fn check_negotiation(info: &PeerInfo, options: &OccOptions) {
    let _ = info.supports_ncp();
    for fallback in [None, Some("AES-128-CBC")] {
        if let Ok(chosen) = negotiate_cipher(&ALLOWED, fallback, info, options.cipher.as_deref()) {
            assert!(
                ALLOWED.contains(&chosen.cipher.as_str()),
                "negotiated {} outside the allowed list",
                chosen.cipher
            );
            DataCipher::from_openvpn_name(&chosen.cipher).expect("allowed ciphers are known");
        }
    }
    if let Some(auth) = options.auth.as_deref() {
        let _ = AuthDigest::from_openvpn_name(auth);
    }
    if let Some(cipher) = options.cipher.as_deref() {
        let _ = DataCipher::from_openvpn_name(cipher);
    }
}
