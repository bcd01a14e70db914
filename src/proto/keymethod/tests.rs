use proptest::prelude::*;

use super::*;

const CLIENT_OPTIONS: &str = "V4,dev-type tun,link-mtu 1557,tun-mtu 1500,proto UDPv4,\
     cipher AES-128-CBC,auth SHA1,keysize 128,key-method 2,tls-client";

fn client_message() -> ClientKeyMessage {
    ClientKeyMessage {
        pre_master: Zeroizing::new([0x11; PRE_MASTER_LEN]),
        random1: [0x22; RANDOM_LEN],
        random2: [0x33; RANDOM_LEN],
        options: CLIENT_OPTIONS.to_owned(),
        username: Some("alice".to_owned()),
        password: Some(Secret::new("hunter2")),
        peer_info: "IV_VER=2.6.12\nIV_PLAT=linux\nIV_PROTO=990\n".to_owned(),
    }
}

/// Builds a message by hand: header, `key_material`, then each string as (length, bytes).
fn raw_message(key_material: &[u8], strings: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0, 2];
    out.extend_from_slice(key_material);
    for string in strings {
        if string.is_empty() {
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(&(string.len() as u16 + 1).to_be_bytes());
            out.extend_from_slice(string);
            out.push(0);
        }
    }
    out
}

fn client_key_material() -> Vec<u8> {
    let mut out = vec![0x11; PRE_MASTER_LEN];
    out.extend_from_slice(&[0x22; RANDOM_LEN]);
    out.extend_from_slice(&[0x33; RANDOM_LEN]);
    out
}

#[test]
fn client_message_layout() {
    let encoded = client_message().encode().unwrap();
    let expected = raw_message(
        &client_key_material(),
        &[
            CLIENT_OPTIONS.as_bytes(),
            b"alice",
            b"hunter2",
            b"IV_VER=2.6.12\nIV_PLAT=linux\nIV_PROTO=990\n",
        ],
    );
    assert_eq!(encoded.as_slice(), expected.as_slice());
}

#[test]
fn client_message_round_trip() {
    let original = client_message();
    let encoded = original.encode().unwrap();
    let parsed = ClientKeyMessage::parse(&encoded).unwrap();
    assert_eq!(parsed.pre_master, original.pre_master);
    assert_eq!(parsed.random1, original.random1);
    assert_eq!(parsed.random2, original.random2);
    assert_eq!(parsed.options, original.options);
    assert_eq!(parsed.username.as_deref(), Some("alice"));
    assert_eq!(
        parsed.password.as_ref().map(Secret::expose),
        Some(&b"hunter2"[..])
    );
    assert_eq!(parsed.peer_info, original.peer_info);
}

#[test]
fn client_without_credentials() {
    let bytes = raw_message(
        &client_key_material(),
        &[CLIENT_OPTIONS.as_bytes(), b"", b"", b""],
    );
    let parsed = ClientKeyMessage::parse(&bytes).unwrap();
    assert_eq!(parsed.username, None);
    assert!(parsed.password.is_none());
    assert_eq!(parsed.peer_info, "");
}

#[test]
fn absent_fields_encode_as_zero_length() {
    let mut message = client_message();
    message.username = None;
    message.password = None;
    message.peer_info.clear();
    let encoded = message.encode().unwrap();
    let expected = raw_message(
        &client_key_material(),
        &[CLIENT_OPTIONS.as_bytes(), b"", b"", b""],
    );
    assert_eq!(encoded.as_slice(), expected.as_slice());
}

#[test]
fn old_client_omits_trailing_fields() {
    let bytes = raw_message(&client_key_material(), &[CLIENT_OPTIONS.as_bytes()]);
    let parsed = ClientKeyMessage::parse(&bytes).unwrap();
    assert_eq!(parsed.options, CLIENT_OPTIONS);
    assert_eq!(parsed.username, None);
    assert!(parsed.password.is_none());
    assert_eq!(parsed.peer_info, "");
}

#[test]
fn client_without_peer_info() {
    let bytes = raw_message(
        &client_key_material(),
        &[CLIENT_OPTIONS.as_bytes(), b"bob", b"pw"],
    );
    let parsed = ClientKeyMessage::parse(&bytes).unwrap();
    assert_eq!(parsed.username.as_deref(), Some("bob"));
    assert_eq!(parsed.peer_info, "");
}

#[test]
fn empty_username_is_present() {
    let mut bytes = raw_message(&client_key_material(), &[b"V4"]);
    bytes.extend_from_slice(&[0, 1, 0]); // username: only its NUL
    bytes.extend_from_slice(&[0, 0]); // no password
    let parsed = ClientKeyMessage::parse(&bytes).unwrap();
    assert_eq!(parsed.username.as_deref(), Some(""));
    assert!(parsed.password.is_none());
}

#[test]
fn every_truncation_is_incomplete_or_complete() {
    let encoded = client_message().encode().unwrap();
    let options_end = 5 + client_key_material().len() + 2 + CLIENT_OPTIONS.len() + 1;
    for len in 0..encoded.len() {
        let result = ClientKeyMessage::parse(&encoded[..len]);
        if len < options_end {
            let error = result.unwrap_err();
            assert!(error.is_incomplete(), "length {len}: {error}");
        } else if let Err(error) = result {
            assert!(error.is_incomplete(), "length {len}: {error}");
        }
    }
}

#[test]
fn truncated_key_material_names_field() {
    let encoded = client_message().encode().unwrap();
    let error = ClientKeyMessage::parse(&encoded[..20]).unwrap_err();
    assert_eq!(
        error,
        KeyMethodError::Incomplete {
            field: "pre_master",
            needed: 33
        }
    );
}

#[test]
fn truncated_username_is_incomplete() {
    let encoded = client_message().encode().unwrap();
    let options_end = 5 + client_key_material().len() + 2 + CLIENT_OPTIONS.len() + 1;
    // The length prefix and "al" of "alice\0" are there.
    let error = ClientKeyMessage::parse(&encoded[..options_end + 4]).unwrap_err();
    assert_eq!(
        error,
        KeyMethodError::Incomplete {
            field: "username",
            needed: 4
        }
    );
}

#[test]
fn key_method_1_rejected() {
    let mut bytes = client_message().encode().unwrap();
    bytes[4] = 1;
    let error = ClientKeyMessage::parse(&bytes).unwrap_err();
    assert_eq!(error, KeyMethodError::UnsupportedKeyMethod(1));
    assert!(!error.is_incomplete());
}

#[test]
fn key_method_flag_bits_ignored() {
    let mut bytes = client_message().encode().unwrap();
    bytes[4] = 0x12;
    assert!(ClientKeyMessage::parse(&bytes).is_ok());
}

#[test]
fn long_username_rejected() {
    let name = "u".repeat(MAX_CREDENTIAL_LEN);
    let bytes = raw_message(&client_key_material(), &[b"V4", name.as_bytes(), b"pw"]);
    let error = ClientKeyMessage::parse(&bytes).unwrap_err();
    assert_eq!(
        error,
        KeyMethodError::TooLong {
            field: "username",
            len: 129,
            max: 128
        }
    );
    assert_eq!(
        error.to_string(),
        "username is 129 bytes with its NUL, longer than the maximum of 128"
    );
}

#[test]
fn username_of_127_bytes_accepted() {
    let name = "u".repeat(MAX_CREDENTIAL_LEN - 1);
    let bytes = raw_message(&client_key_material(), &[b"V4", name.as_bytes(), b"pw"]);
    let parsed = ClientKeyMessage::parse(&bytes).unwrap();
    assert_eq!(parsed.username.as_deref(), Some(name.as_str()));
}

#[test]
fn long_password_rejected() {
    let password = [b'p'; 300];
    let bytes = raw_message(&client_key_material(), &[b"V4", b"bob", &password]);
    let error = ClientKeyMessage::parse(&bytes).unwrap_err();
    assert!(matches!(
        error,
        KeyMethodError::TooLong {
            field: "password",
            ..
        }
    ));
}

#[test]
fn long_options_rejected() {
    let options = "V".repeat(MAX_OPTIONS_LEN);
    let bytes = raw_message(&client_key_material(), &[options.as_bytes()]);
    let error = ClientKeyMessage::parse(&bytes).unwrap_err();
    assert!(matches!(
        error,
        KeyMethodError::TooLong {
            field: "options",
            ..
        }
    ));
}

#[test]
fn oversized_length_rejected_before_data_arrives() {
    let mut bytes = raw_message(&client_key_material(), &[b"V4", b"bob", b"pw"]);
    bytes.extend_from_slice(&60000u16.to_be_bytes());
    let error = ClientKeyMessage::parse(&bytes).unwrap_err();
    assert!(!error.is_incomplete());
}

#[test]
fn non_utf8_username_rejected() {
    let bytes = raw_message(&client_key_material(), &[b"V4", b"\xff\xfe", b"pw"]);
    let error = ClientKeyMessage::parse(&bytes).unwrap_err();
    assert_eq!(error, KeyMethodError::InvalidUtf8 { field: "username" });
}

#[test]
fn non_utf8_password_kept() {
    let bytes = raw_message(&client_key_material(), &[b"V4", b"bob", b"p\xffw"]);
    let parsed = ClientKeyMessage::parse(&bytes).unwrap();
    let password = parsed.password.unwrap();
    assert_eq!(password.expose(), b"p\xffw");
    assert_eq!(password.expose_str(), None);
}

#[test]
fn string_stops_at_embedded_nul() {
    let bytes = raw_message(&client_key_material(), &[b"V4", b"bob\0junk", b"pw"]);
    let parsed = ClientKeyMessage::parse(&bytes).unwrap();
    assert_eq!(parsed.username.as_deref(), Some("bob"));
}

#[test]
fn trailing_bytes_ignored() {
    let mut bytes = client_message().encode().unwrap().to_vec();
    bytes.extend_from_slice(b"PUSH_REQUEST\0");
    let parsed = ClientKeyMessage::parse(&bytes).unwrap();
    assert_eq!(parsed.username.as_deref(), Some("alice"));
}

#[test]
fn encode_rejects_long_username() {
    let mut message = client_message();
    message.username = Some("u".repeat(200));
    let error = message.encode().unwrap_err();
    assert!(matches!(
        error,
        KeyMethodError::TooLong {
            field: "username",
            len: 201,
            ..
        }
    ));
}

#[test]
fn encode_rejects_embedded_nul() {
    let mut message = client_message();
    message.options = "V4\0x".to_owned();
    let error = message.encode().unwrap_err();
    assert_eq!(error, KeyMethodError::EmbeddedNul { field: "options" });
}

#[test]
fn server_message_layout() {
    let message = ServerKeyMessage {
        random1: [0xaa; RANDOM_LEN],
        random2: [0xbb; RANDOM_LEN],
        options: "V4,dev-type tun,tls-server".to_owned(),
    };
    let encoded = message.encode().unwrap();
    let mut key_material = vec![0xaa; RANDOM_LEN];
    key_material.extend_from_slice(&[0xbb; RANDOM_LEN]);
    let expected = raw_message(
        &key_material,
        &[b"V4,dev-type tun,tls-server", b"", b"", b""],
    );
    assert_eq!(encoded, expected);
}

#[test]
fn server_message_round_trip() {
    let message = ServerKeyMessage {
        random1: [0xaa; RANDOM_LEN],
        random2: [0xbb; RANDOM_LEN],
        options: "V4,tls-server".to_owned(),
    };
    let parsed = ServerKeyMessage::parse(&message.encode().unwrap()).unwrap();
    assert_eq!(parsed.random1, message.random1);
    assert_eq!(parsed.random2, message.random2);
    assert_eq!(parsed.options, message.options);
}

#[test]
fn debug_hides_secrets() {
    let message = client_message();
    let text = format!("{message:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("17, 17"), "{text}");
    assert!(text.contains("alice"), "{text}");
    assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(..)");
}

proptest! {
    #[test]
    fn client_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = ClientKeyMessage::parse(&bytes);
    }

    #[test]
    fn server_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = ServerKeyMessage::parse(&bytes);
    }

    #[test]
    fn client_parse_after_valid_header_never_panics(
        tail in proptest::collection::vec(any::<u8>(), 0..700),
    ) {
        let mut bytes = raw_message(&client_key_material(), &[]);
        bytes.extend_from_slice(&tail);
        let _ = ClientKeyMessage::parse(&bytes);
    }

    #[test]
    fn peer_info_parse_never_panics(text in ".{0,3000}") {
        let _ = PeerInfo::parse(&text);
    }

    #[test]
    fn occ_parse_never_panics(text in ".{0,700}") {
        let _ = OccOptions::parse(&text);
    }

    #[test]
    fn client_round_trip(
        username in proptest::option::of("[a-zA-Z0-9@._-]{0,127}"),
        password in proptest::option::of(proptest::collection::vec(1u8..=255, 0..127)),
        options in "[ -~]{0,511}",
        peer_info in "[ -~\n]{0,1000}",
    ) {
        let message = ClientKeyMessage {
            pre_master: Zeroizing::new([7; PRE_MASTER_LEN]),
            random1: [8; RANDOM_LEN],
            random2: [9; RANDOM_LEN],
            options,
            username,
            password: password.map(Secret::new),
            peer_info,
        };
        let parsed = ClientKeyMessage::parse(&message.encode().unwrap()).unwrap();
        prop_assert_eq!(&parsed.options, &message.options);
        prop_assert_eq!(&parsed.username, &message.username);
        prop_assert_eq!(
            parsed.password.as_ref().map(Secret::expose),
            message.password.as_ref().map(Secret::expose)
        );
        prop_assert_eq!(&parsed.peer_info, &message.peer_info);
    }
}

mod occ_tests;
mod peer_info_tests;
