use super::super::*;

#[test]
fn parse_client_options() {
    let options = OccOptions::parse(
        "V4,dev-type tun,link-mtu 1457,tun-mtu 1400,proto UDPv4,cipher AES-128-CBC,\
         auth SHA1,keysize 128,key-method 2,tls-client",
    );
    assert_eq!(options.version.as_deref(), Some("V4"));
    assert_eq!(options.dev_type.as_deref(), Some("tun"));
    assert_eq!(options.link_mtu, Some(1457));
    assert_eq!(options.tun_mtu, Some(1400));
    assert_eq!(options.proto.as_deref(), Some("UDPv4"));
    assert_eq!(options.cipher.as_deref(), Some("AES-128-CBC"));
    assert_eq!(options.auth.as_deref(), Some("SHA1"));
    assert_eq!(options.keysize, Some(128));
    assert_eq!(options.key_method, Some(2));
    assert_eq!(options.tls_role, Some(TlsRole::Client));
    assert!(!options.comp_lzo);
    assert!(!options.tls_auth);
}

#[test]
fn parse_null_cipher_as_none() {
    let options = OccOptions::parse("V4,cipher [null-cipher],auth [null-digest]");
    assert_eq!(options.cipher.as_deref(), Some("none"));
    assert_eq!(options.auth.as_deref(), Some("[null-digest]"));
}

#[test]
fn parse_compression_and_tls_auth() {
    let options = OccOptions::parse("V4,proto TCPv4_CLIENT,comp-lzo,keydir 1,tls-auth,tls-client");
    assert!(options.comp_lzo);
    assert!(options.tls_auth);
    assert!(!options.compress);
    assert_eq!(options.proto.as_deref(), Some("TCPv4_CLIENT"));
}

#[test]
fn parse_compress_item() {
    let options = OccOptions::parse("V4,compress lz4-v2,tls-client");
    assert!(options.compress);
    assert!(!options.comp_lzo);
}

#[test]
fn parse_keeps_first_cipher() {
    let options = OccOptions::parse("V4,cipher AES-256-CBC,cipher BF-CBC");
    assert_eq!(options.cipher.as_deref(), Some("AES-256-CBC"));
}

#[test]
fn parse_tolerates_junk() {
    let options =
        OccOptions::parse("garbage,,cipher,link-mtu abc,tun-mtu 99999999999, ,tls-server");
    assert_eq!(options.version.as_deref(), Some("garbage"));
    assert_eq!(options.cipher, None);
    assert_eq!(options.link_mtu, None);
    assert_eq!(options.tun_mtu, None);
    assert_eq!(options.tls_role, Some(TlsRole::Server));
}

#[test]
fn parse_empty_string() {
    let options = OccOptions::parse("");
    assert_eq!(options.version.as_deref(), Some(""));
    assert_eq!(options.cipher, None);
}

#[test]
fn server_default_udp() {
    let options = ServerOccConfig::new(OccProto::Udp)
        .options_string()
        .unwrap();
    assert_eq!(
        options,
        "V4,dev-type tun,link-mtu 1541,tun-mtu 1500,proto UDPv4,auth SHA1,keysize 128,\
         key-method 2,tls-server"
    );
}

#[test]
fn server_default_tcp() {
    let options = ServerOccConfig::new(OccProto::TcpServer)
        .options_string()
        .unwrap();
    assert_eq!(
        options,
        "V4,dev-type tun,link-mtu 1543,tun-mtu 1500,proto TCPv4_SERVER,auth SHA1,keysize 128,\
         key-method 2,tls-server"
    );
}

#[test]
fn server_announces_cbc_fallback() {
    let config = ServerOccConfig {
        fallback_cipher: Some("AES-128-CBC"),
        announce_cipher: true,
        ..ServerOccConfig::new(OccProto::TcpServer)
    };
    assert_eq!(
        config.options_string().unwrap(),
        "V4,dev-type tun,link-mtu 1559,tun-mtu 1500,proto TCPv4_SERVER,cipher AES-128-CBC,\
         auth SHA1,keysize 128,key-method 2,tls-server"
    );
}

#[test]
fn server_cipher_name_normalised() {
    let config = ServerOccConfig {
        fallback_cipher: Some("aes-256-cbc"),
        announce_cipher: true,
        ..ServerOccConfig::new(OccProto::Udp)
    };
    let options = config.options_string().unwrap();
    assert!(options.contains(",cipher AES-256-CBC,"), "{options}");
    assert!(options.contains(",keysize 256,"), "{options}");
}

#[test]
fn server_link_mtu_matches_openvpn_compat_example() {
    // The two strings OpenVPN's ssl_util.c gives as the input and output of its comp-lzo
    // compatibility rewrite: a 128-bit CBC cipher, SHA1, tun-mtu 1400, UDP.
    let config = ServerOccConfig {
        tun_mtu: 1400,
        fallback_cipher: Some("AES-128-CBC"),
        ..ServerOccConfig::new(OccProto::Udp)
    };
    assert_eq!(
        config.options_string().unwrap(),
        "V4,dev-type tun,link-mtu 1457,tun-mtu 1400,proto UDPv4,auth SHA1,keysize 128,\
         key-method 2,tls-server"
    );
    let with_lzo = ServerOccConfig {
        compression: OccCompression::V1,
        ..config
    };
    assert_eq!(
        with_lzo.options_string().unwrap(),
        "V4,dev-type tun,link-mtu 1458,tun-mtu 1400,proto UDPv4,comp-lzo,auth SHA1,keysize 128,\
         key-method 2,tls-server"
    );
}

#[test]
fn server_aead_cipher_has_null_digest() {
    let config = ServerOccConfig {
        fallback_cipher: Some("AES-256-GCM"),
        announce_cipher: true,
        ..ServerOccConfig::new(OccProto::Udp)
    };
    assert_eq!(
        config.options_string().unwrap(),
        "V4,dev-type tun,link-mtu 1549,tun-mtu 1500,proto UDPv4,cipher AES-256-GCM,\
         auth [null-digest],keysize 256,key-method 2,tls-server"
    );
}

#[test]
fn server_chacha_link_mtu() {
    let config = ServerOccConfig {
        fallback_cipher: Some("CHACHA20-POLY1305"),
        ..ServerOccConfig::new(OccProto::Udp)
    };
    let options = config.options_string().unwrap();
    assert!(options.contains(",link-mtu 1534,"), "{options}");
}

#[test]
fn server_null_cipher() {
    let config = ServerOccConfig {
        fallback_cipher: Some("none"),
        announce_cipher: true,
        ..ServerOccConfig::new(OccProto::Udp)
    };
    assert_eq!(
        config.options_string().unwrap(),
        "V4,dev-type tun,link-mtu 1525,tun-mtu 1500,proto UDPv4,cipher [null-cipher],\
         auth SHA1,keysize 0,key-method 2,tls-server"
    );
}

#[test]
fn server_tls_auth_with_direction() {
    let config = ServerOccConfig {
        tls_auth: true,
        key_direction: Some(0),
        auth: "SHA256",
        ..ServerOccConfig::new(OccProto::Udp)
    };
    assert_eq!(
        config.options_string().unwrap(),
        "V4,dev-type tun,link-mtu 1553,tun-mtu 1500,proto UDPv4,keydir 0,auth SHA256,\
         keysize 128,tls-auth,key-method 2,tls-server"
    );
}

#[test]
fn server_string_reads_back() {
    let config = ServerOccConfig {
        fallback_cipher: Some("AES-192-CBC"),
        announce_cipher: true,
        ..ServerOccConfig::new(OccProto::TcpServer)
    };
    let parsed = OccOptions::parse(&config.options_string().unwrap());
    assert_eq!(parsed.cipher.as_deref(), Some("AES-192-CBC"));
    assert_eq!(parsed.keysize, Some(192));
    assert_eq!(parsed.tls_role, Some(TlsRole::Server));
    assert_eq!(parsed.proto.as_deref(), Some("TCPv4_SERVER"));
}

#[test]
fn server_unknown_cipher() {
    let config = ServerOccConfig {
        fallback_cipher: Some("DES-CBC"),
        ..ServerOccConfig::new(OccProto::Udp)
    };
    assert_eq!(
        config.options_string().unwrap_err(),
        OccCipherError::UnknownCipher("DES-CBC".to_owned())
    );
}

#[test]
fn server_unknown_digest() {
    let config = ServerOccConfig {
        auth: "WHIRLPOOL",
        ..ServerOccConfig::new(OccProto::Udp)
    };
    assert_eq!(
        config.options_string().unwrap_err(),
        OccCipherError::UnknownDigest("WHIRLPOOL".to_owned())
    );
}

#[test]
fn server_compression_v2_link_mtu() {
    let config = ServerOccConfig {
        compression: OccCompression::V2,
        ..ServerOccConfig::new(OccProto::Udp)
    };
    assert_eq!(
        config.options_string().unwrap(),
        "V4,dev-type tun,link-mtu 1541,tun-mtu 1500,proto UDPv4,comp-lzo,auth SHA1,keysize 128,\
         key-method 2,tls-server"
    );
}
