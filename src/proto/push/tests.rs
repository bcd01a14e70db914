use proptest::prelude::*;

use super::*;

fn subnet_reply() -> PushReply {
    let mut reply = PushReply::new(
        Ipv4Addr::new(10, 8, 0, 1),
        ClientAddress::Subnet {
            address: Ipv4Addr::new(10, 8, 0, 2),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
        },
    );
    reply.routes = vec!["192.168.77.0/24".parse().unwrap()];
    reply.peer_id = Some(0);
    reply.cipher = Some("AES-256-GCM".to_owned());
    reply.cc_exit = true;
    reply.tls_ekm = true;
    reply
}

#[test]
fn subnet_reply_matches_openvpn() {
    let messages = subnet_reply().build().unwrap();
    assert_eq!(
        messages,
        [
            "PUSH_REPLY,route-gateway 10.8.0.1,topology subnet,ping 10,ping-restart 60,\
             route 192.168.77.0 255.255.255.0,ifconfig 10.8.0.2 255.255.255.0,peer-id 0,\
             cipher AES-256-GCM,protocol-flags cc-exit tls-ekm"
        ]
    );
}

#[test]
fn net30_reply_matches_openvpn() {
    let mut reply = PushReply::new(
        Ipv4Addr::new(10, 8, 0, 1),
        ClientAddress::Net30 {
            address: Ipv4Addr::new(10, 8, 0, 6),
            peer: Ipv4Addr::new(10, 8, 0, 5),
        },
    );
    reply.routes = vec!["192.168.77.0/24".parse().unwrap()];
    let messages = reply.build().unwrap();
    assert_eq!(
        messages,
        [
            "PUSH_REPLY,route 10.8.0.1,topology net30,ping 10,ping-restart 60,\
             route 192.168.77.0 255.255.255.0,ifconfig 10.8.0.6 10.8.0.5"
        ]
    );
}

#[test]
fn route_uses_network_address() {
    let mut reply = subnet_reply();
    reply.routes = vec![
        "172.16.5.9/16".parse().unwrap(),
        "10.1.2.3/32".parse().unwrap(),
    ];
    let options = reply.options();
    assert!(options.contains(&"route 172.16.0.0 255.255.0.0".to_owned()));
    assert!(options.contains(&"route 10.1.2.3 255.255.255.255".to_owned()));
}

#[test]
fn ekm_without_cc_exit_uses_key_derivation() {
    let mut reply = subnet_reply();
    reply.cc_exit = false;
    let options = reply.options();
    assert_eq!(
        options.last().map(String::as_str),
        Some("key-derivation tls-ekm")
    );
    assert!(
        !options
            .iter()
            .any(|option| option.starts_with("protocol-flags"))
    );
}

#[test]
fn cc_exit_without_ekm() {
    let mut reply = subnet_reply();
    reply.tls_ekm = false;
    let options = reply.options();
    assert_eq!(
        options.last().map(String::as_str),
        Some("protocol-flags cc-exit")
    );
}

#[test]
fn no_flags_for_old_client() {
    let mut reply = subnet_reply();
    reply.cc_exit = false;
    reply.tls_ekm = false;
    reply.cipher = None;
    reply.peer_id = None;
    let options = reply.options();
    assert_eq!(
        options.last().map(String::as_str),
        Some("ifconfig 10.8.0.2 255.255.255.0")
    );
}

#[test]
fn extra_and_mtu_positions() {
    let mut reply = subnet_reply();
    reply.extra = vec!["comp-lzo no".to_owned()];
    reply.tun_mtu = Some(1500);
    let options = reply.options();
    let route = options
        .iter()
        .position(|o| o.starts_with("route 192.168.77.0"))
        .unwrap();
    let extra = options.iter().position(|o| o == "comp-lzo no").unwrap();
    let ifconfig = options
        .iter()
        .position(|o| o.starts_with("ifconfig"))
        .unwrap();
    assert_eq!(extra, route + 1);
    assert_eq!(ifconfig, extra + 1);
    assert_eq!(options.last().map(String::as_str), Some("tun-mtu 1500"));
}

#[test]
fn no_options_gives_bare_push_reply() {
    assert_eq!(split_push_reply(&[]).unwrap(), ["PUSH_REPLY"]);
}

fn many_routes(count: u32) -> Vec<String> {
    (0..count)
        .map(|i| format!("route 10.{}.{}.0 255.255.255.0", i / 256, i % 256))
        .collect()
}

#[test]
fn long_reply_splits_with_continuation() {
    let options = many_routes(100);
    let messages = split_push_reply(&options).unwrap();
    assert!(messages.len() > 1);
    for message in &messages[..messages.len() - 1] {
        assert!(message.ends_with(",push-continuation 2"), "{message}");
    }
    assert!(messages.last().unwrap().ends_with(",push-continuation 1"));
    for message in &messages {
        assert!(message.starts_with("PUSH_REPLY,"), "{message}");
        assert!(message.len() < PUSH_BUNDLE_SIZE, "{} bytes", message.len());
    }
}

#[test]
fn split_keeps_every_option_in_order() {
    let options = many_routes(150);
    let messages = split_push_reply(&options).unwrap();
    let rejoined: Vec<&str> = messages
        .iter()
        .flat_map(|message| message.split(',').skip(1))
        .filter(|option| !option.starts_with("push-continuation"))
        .collect();
    assert_eq!(rejoined, options);
}

#[test]
fn split_follows_openvpn_limit() {
    // "PUSH_REPLY" (10) + 30 options of ",x...x" (31 bytes each) = 940 bytes.
    let options: Vec<String> = (0..31).map(|_| "x".repeat(30)).collect();
    let messages = split_push_reply(&options).unwrap();
    // Adding the 30th option: 10 + 29 * 31 = 909, 909 + 30 = 939 < 940, so it fits.
    // Adding the 31st: 940 + 30 >= 940, so it starts a second message.
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[0].len(),
        10 + 30 * 31 + ",push-continuation 2".len()
    );
    assert_eq!(
        messages[1],
        format!("PUSH_REPLY,{},push-continuation 1", "x".repeat(30))
    );
}

#[test]
fn option_with_comma_rejected() {
    let error = split_push_reply(&["auth-token secret,value".to_owned()]).unwrap_err();
    assert_eq!(
        error,
        PushError::InvalidOption {
            name: "auth-token".to_owned()
        }
    );
    assert!(!error.to_string().contains("secret"));
}

#[test]
fn oversized_option_rejected() {
    let option = format!("auth-token {}", "a".repeat(1000));
    let error = split_push_reply(&[option]).unwrap_err();
    assert_eq!(
        error,
        PushError::OptionTooLong {
            name: "auth-token".to_owned(),
            len: 1011
        }
    );
}

#[test]
fn debug_hides_extra_values() {
    let mut reply = subnet_reply();
    reply.extra = vec!["auth-token SESS_ID_secret".to_owned()];
    let text = format!("{reply:?}");
    assert!(text.contains("auth-token"), "{text}");
    assert!(!text.contains("SESS_ID_secret"), "{text}");
}

#[test]
fn control_messages() {
    assert_eq!(
        ControlMessage::parse(b"PUSH_REQUEST\0"),
        Ok(ControlMessage::PushRequest)
    );
    assert_eq!(
        ControlMessage::parse(b"PUSH_REQUEST"),
        Ok(ControlMessage::PushRequest)
    );
    assert_eq!(ControlMessage::parse(b"EXIT\0"), Ok(ControlMessage::Exit));
    assert_eq!(
        ControlMessage::parse(b"ACC,internal:deferred_auth,{\"x\":1}\0"),
        Ok(ControlMessage::AppControl(
            "internal:deferred_auth,{\"x\":1}"
        ))
    );
    assert_eq!(
        ControlMessage::parse(b"CR_RESPONSE,c2VjcmV0\0"),
        Ok(ControlMessage::ChallengeResponse("c2VjcmV0"))
    );
    assert_eq!(
        ControlMessage::parse(b"INFO\0"),
        Ok(ControlMessage::Info(""))
    );
    assert_eq!(
        ControlMessage::parse(b"INFO,hello world\0"),
        Ok(ControlMessage::Info("hello world"))
    );
}

#[test]
fn control_message_ignores_after_nul_and_whitespace() {
    assert_eq!(
        ControlMessage::parse(b"EXIT\0garbage\xff"),
        Ok(ControlMessage::Exit)
    );
    assert_eq!(
        ControlMessage::parse(b"PUSH_REQUEST\n\0"),
        Ok(ControlMessage::PushRequest)
    );
}

#[test]
fn control_message_unknown_and_invalid() {
    assert_eq!(
        ControlMessage::parse(b"PUSH_REQUESTX\0"),
        Ok(ControlMessage::Unknown("PUSH_REQUESTX"))
    );
    assert_eq!(
        ControlMessage::parse(b"\0"),
        Err(ControlMessageError::Empty)
    );
    assert_eq!(ControlMessage::parse(b""), Err(ControlMessageError::Empty));
    assert_eq!(
        ControlMessage::parse(b"EX\xffIT"),
        Err(ControlMessageError::InvalidUtf8 { len: 5 })
    );
}

#[test]
fn control_message_debug_hides_payload() {
    let message = ControlMessage::ChallengeResponse("123456");
    assert_eq!(format!("{message:?}"), "ChallengeResponse(6 bytes)");
}

proptest! {
    #[test]
    fn control_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = ControlMessage::parse(&bytes);
    }

    #[test]
    fn split_messages_fit_bundle(
        options in proptest::collection::vec("[a-z0-9 .-]{1,200}", 0..40),
    ) {
        let messages = split_push_reply(&options).unwrap();
        for message in &messages {
            prop_assert!(message.len() < PUSH_BUNDLE_SIZE);
            prop_assert!(message.starts_with("PUSH_REPLY"));
        }
        if messages.len() == 1 {
            prop_assert!(!messages[0].contains("push-continuation"));
        }
    }
}
