use super::super::*;

const OPENVPN_2_6: &str = "IV_VER=2.6.12\nIV_PLAT=linux\nIV_TCPNL=1\nIV_MTU=1600\nIV_NCP=2\n\
     IV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\nIV_PROTO=990\nIV_LZO_STUB=1\n\
     IV_COMP_STUB=1\nIV_COMP_STUBv2=1\nIV_SSO=openurl,webauth,crtext\nUV_GROUP=ops\n";

#[test]
fn parse_openvpn_2_6_client() {
    let info = PeerInfo::parse(OPENVPN_2_6);
    assert_eq!(info.iv_ver.as_deref(), Some("2.6.12"));
    assert_eq!(info.iv_plat.as_deref(), Some("linux"));
    assert!(info.iv_tcpnl);
    assert_eq!(info.iv_mtu, Some(1600));
    assert_eq!(info.iv_ncp, Some(2));
    assert_eq!(
        info.iv_ciphers,
        Some(vec![
            "AES-256-GCM".to_owned(),
            "AES-128-GCM".to_owned(),
            "CHACHA20-POLY1305".to_owned()
        ])
    );
    assert_eq!(info.iv_proto, IvProto(990));
    assert_eq!(info.iv_sso, ["openurl", "webauth", "crtext"]);
    assert!(info.compression.lzo_stub);
    assert!(info.compression.comp_stub);
    assert!(info.compression.comp_stubv2);
    assert!(!info.compression.lzo);
    assert!(!info.compression.lz4);
    assert!(info.supports_ncp());
}

#[test]
fn iv_proto_990_bits() {
    // 990 = DATA_V2 | REQUEST_PUSH | TLS_KEY_EXPORT | AUTH_PENDING_KW | CC_EXIT | AUTH_FAIL_TEMP | DYN_TLS_CRYPT
    let proto = IvProto(990);
    assert!(proto.data_v2());
    assert!(proto.request_push());
    assert!(proto.tls_ekm());
    assert!(proto.auth_pending_kw());
    assert!(!proto.ncp_p2p());
    assert!(proto.cc_exit());
    assert!(proto.auth_failed_temp());
    assert!(proto.dyn_tls_crypt());
    assert!(!proto.data_epoch());
    assert!(!proto.dns_option_v2());
    assert!(!proto.push_update());
}

#[test]
fn iv_proto_openvpn3_bits() {
    let proto = IvProto(0x1F9E);
    assert!(proto.data_v2());
    assert!(proto.tls_ekm());
    assert!(proto.cc_exit());
    assert!(proto.auth_failed_temp());
    assert!(proto.data_epoch());
    assert!(proto.push_update());
    assert!(!proto.ncp_p2p());
}

#[test]
fn parse_openvpn_2_4_client() {
    let info = PeerInfo::parse(
        "IV_VER=2.4.12\nIV_PLAT=win\nIV_PROTO=2\nIV_NCP=2\nIV_LZ4=1\nIV_LZ4v2=1\nIV_LZO=1\n\
         IV_COMP_STUB=1\nIV_COMP_STUBv2=1\nIV_TCPNL=1\n",
    );
    assert_eq!(info.iv_proto, IvProto(2));
    assert_eq!(info.iv_ciphers, None);
    assert!(info.compression.lz4);
    assert!(info.compression.lz4v2);
    assert!(info.compression.lzo);
    assert!(info.supports_ncp());
    assert!(!info.iv_proto.tls_ekm());
}

#[test]
fn client_without_ncp() {
    let info = PeerInfo::parse("IV_VER=2.3.18\nIV_PLAT=linux\n");
    assert!(!info.supports_ncp());
    assert_eq!(info.iv_proto, IvProto(0));
}

#[test]
fn iv_ncp_1_is_not_ncp() {
    let info = PeerInfo::parse("IV_NCP=1\n");
    assert!(!info.supports_ncp());
}

#[test]
fn empty_iv_ciphers_is_ncp() {
    let info = PeerInfo::parse("IV_CIPHERS=\n");
    assert_eq!(info.iv_ciphers, Some(Vec::new()));
    assert!(info.supports_ncp());
}

#[test]
fn first_value_wins() {
    let info = PeerInfo::parse("IV_PROTO=2\nIV_PROTO=990\nIV_VER=a\nIV_VER=b\n");
    assert_eq!(info.iv_proto, IvProto(2));
    assert_eq!(info.iv_ver.as_deref(), Some("a"));
}

#[test]
fn junk_lines_ignored() {
    let info = PeerInfo::parse(
        "garbage\n=\n=value\nIV_PROTO\nIV_MTU=abc\nIV_NCP=99999999999999\n\
         iv_ver=lower\n\0\nIV_PLAT=mac\r\nIV_PROTO=6trailing\n",
    );
    assert_eq!(info.iv_mtu, None);
    assert_eq!(info.iv_ncp, None);
    assert_eq!(info.iv_ver, None);
    assert_eq!(info.iv_plat.as_deref(), Some("mac"));
    assert_eq!(info.iv_proto, IvProto(6));
}

#[test]
fn value_may_contain_equals() {
    let info = PeerInfo::parse("IV_GUI_VER=OpenVPN_GUI=11\n");
    assert_eq!(info.iv_gui_ver.as_deref(), Some("OpenVPN_GUI=11"));
}

#[test]
fn flag_needs_value_1() {
    let info = PeerInfo::parse("IV_LZ4=0\nIV_TCPNL=yes\n");
    assert!(!info.compression.lz4);
    assert!(!info.iv_tcpnl);
}

#[test]
fn text_beyond_limit_ignored() {
    let mut text = "X".repeat(MAX_PEER_INFO_LEN - 3);
    text.push_str("\nIV_VER=2.6.0\n");
    let info = PeerInfo::parse(&text);
    assert_eq!(info.iv_ver, None);
}

#[test]
fn truncation_respects_char_boundary() {
    let mut text = "é".repeat(MAX_PEER_INFO_LEN);
    text.insert_str(0, "IV_VER=1\n");
    let info = PeerInfo::parse(&text);
    assert_eq!(info.iv_ver.as_deref(), Some("1"));
}
