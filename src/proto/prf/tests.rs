use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use super::*;
use crate::proto::keymethod::{PRE_MASTER_LEN, RANDOM_LEN};

fn pattern<const N: usize>(start: u8) -> [u8; N] {
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = start.wrapping_add(i as u8);
    }
    out
}

/// The widely used TLS 1.0 PRF test vector ("PRF Testvector", posted to the IETF TLS list):
/// secret 48 bytes of 0xab, seed 64 bytes of 0xcd, 104 bytes of output.
#[test]
fn tls1_prf_published_vector() {
    let mut out = [0u8; 104];
    tls1_prf(&[0xab; 48], b"PRF Testvector", &[&[0xcd; 64]], &mut out);
    let expected = hex::decode(
        "d3d4d1e349b5d515044666d51de32bab258cb521b6b053463e354832fd976754\
         443bcf9a296519bc289abcbc1187e4ebd31e602353776c408aafb74cbc85eff6\
         9255f9788faa184cbb957a9819d84a5d7eb006eb459d3ae8de9810454b8b2d8f\
         1afbc655a8c9a013",
    )
    .unwrap();
    assert_eq!(out.as_slice(), expected.as_slice());
}

/// The inputs and output of OpenVPN's own TLS1 PRF unit test. Its secret is 117 bytes long,
/// so the MD5 and SHA1 halves share the middle byte.
#[test]
fn tls1_prf_odd_secret_vector() {
    let secret = b"Lorem ipsum dolor sit amet, consectetur adipisici elit, \
                   sed eiusmod tempor incidunt ut labore et dolore magna aliqua.";
    let seed = b"Quis aute iure reprehenderit in voluptate velit esse cillum dolore";
    let mut out = [0u8; 32];
    tls1_prf(secret, b"", &[seed], &mut out);
    let expected =
        hex::decode("d98c8518c85e946927916acfc2d592fbb1567e4b4b1459e6a904ac2ddab72d67").unwrap();
    assert_eq!(out.as_slice(), expected.as_slice());
}

#[test]
fn tls1_prf_seed_parts_concatenate() {
    let mut joined = [0u8; 40];
    let mut split = [0u8; 40];
    tls1_prf(b"secret", b"label", &[b"seedseed"], &mut joined);
    tls1_prf(b"secret", b"label", &[b"se", b"", b"edseed"], &mut split);
    assert_eq!(joined, split);
}

#[test]
fn tls1_prf_output_prefix_is_stable() {
    let mut short = [0u8; 20];
    let mut long = [0u8; 100];
    tls1_prf(b"secret", b"label", &[b"seed"], &mut short);
    tls1_prf(b"secret", b"label", &[b"seed"], &mut long);
    assert_eq!(short, long[..20]);
}

fn key_messages() -> (ClientKeyMessage, ServerKeyMessage) {
    let client = ClientKeyMessage {
        pre_master: Zeroizing::new(pattern::<PRE_MASTER_LEN>(0x00)),
        random1: pattern::<RANDOM_LEN>(0x40),
        random2: pattern::<RANDOM_LEN>(0x80),
        options: String::new(),
        username: None,
        password: None,
        peer_info: String::new(),
    };
    let server = ServerKeyMessage {
        random1: pattern::<RANDOM_LEN>(0x60),
        random2: pattern::<RANDOM_LEN>(0xa0),
        options: String::new(),
    };
    (client, server)
}

/// Expected output computed independently with OpenSSL 3's TLS1-PRF KDF (digest MD5-SHA1):
/// master = PRF(pre_master, "OpenVPN master secret" | client random1 | server random1), then
/// PRF(master, "OpenVPN key expansion" | client random2 | server random2 | client sid | server sid).
#[test]
fn prf_key_block_vector() {
    let (client, server) = key_messages();
    let block = prf_key_block(&client, &server, &pattern(0x01), &pattern(0xf1));
    let expected = hex::decode(
        "4adfa72295d7c258c710fc34e389eacb82d653f1c0ab75b1854834d697cf0925\
         f9c10b8df398502170190f2ed3ea4871d031db0373eee7729f8d458139ed7d42\
         ffe24683e0ff0bd07429c37ae3633a9a67314b48b810f28af95f5d792df032e0\
         608262cbfc40b7f477b2b7770b510cd6889c856dc641b00d916ac5882761ce64\
         e2eeba0bd81e501a8ed69d57b0cfe15b5ce9fe2384953cf953ede4ac08c795d2\
         e21e0fb8fb7535f32387ac5a80c326262c5877ecc05e6d468935cbd4c4e94854\
         93fa85c537edde7ffe9b2006d823116bc045d2a3ff497336449dcbb5a5b255e7\
         03c135da49563724df4dde2fecb3f037b0c1411ce85e6734e40d59d6fd0ce9db",
    )
    .unwrap();
    assert_eq!(block.as_bytes().as_slice(), expected.as_slice());
}

#[test]
fn prf_key_block_depends_on_session_ids() {
    let (client, server) = key_messages();
    let block = prf_key_block(&client, &server, &pattern(0x01), &pattern(0xf1));
    let swapped = prf_key_block(&client, &server, &pattern(0xf1), &pattern(0x01));
    assert_ne!(block.as_bytes(), swapped.as_bytes());
}

#[test]
fn key_block_directions() {
    let block = KeyBlock::from_bytes(std::array::from_fn(|i| (i / 64) as u8));
    assert_eq!(block.client_to_server().cipher, &[0; 64]);
    assert_eq!(block.client_to_server().hmac, &[1; 64]);
    assert_eq!(block.server_to_client().cipher, &[2; 64]);
    assert_eq!(block.server_to_client().hmac, &[3; 64]);
}

#[test]
fn key_block_debug_hides_bytes() {
    let block = KeyBlock::from_bytes([0x5a; KEY_BLOCK_LEN]);
    assert_eq!(format!("{block:?}"), "KeyBlock(..)");
    assert_eq!(
        format!("{:?}", block.client_to_server()),
        "DirectionKeys(..)"
    );
}

fn handshake(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (ClientConnection, ServerConnection) {
    let certified = rcgen::generate_simple_self_signed(vec!["vpn.test".to_owned()]).unwrap();
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));

    let server_config = ServerConfig::builder_with_protocol_versions(versions)
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_config = ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_no_client_auth();

    let mut client =
        ClientConnection::new(Arc::new(client_config), "vpn.test".try_into().unwrap()).unwrap();
    let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();
    for _ in 0..10 {
        let mut flight = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut flight).unwrap();
        }
        server.read_tls(&mut flight.as_slice()).unwrap();
        server.process_new_packets().unwrap();

        let mut flight = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut flight).unwrap();
        }
        client.read_tls(&mut flight.as_slice()).unwrap();
        client.process_new_packets().unwrap();
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
    }
    assert!(!client.is_handshaking());
    assert!(!server.is_handshaking());
    (client, server)
}

#[test]
fn ekm_key_block_matches_on_both_sides() {
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let (client, server) = handshake(versions);
        let server_block = ekm_key_block(&server).unwrap();
        let client_block = ekm_key_block(&client).unwrap();
        assert_eq!(server_block.as_bytes(), client_block.as_bytes());
        assert_ne!(server_block.as_bytes(), &[0; KEY_BLOCK_LEN]);

        let direct = server
            .export_keying_material([0u8; KEY_BLOCK_LEN], b"EXPORTER-OpenVPN-datakeys", None)
            .unwrap();
        assert_eq!(server_block.as_bytes(), &direct);
    }
}

#[test]
fn ekm_before_handshake_fails() {
    let certified = rcgen::generate_simple_self_signed(vec!["vpn.test".to_owned()]).unwrap();
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let server = ServerConnection::new(Arc::new(config)).unwrap();
    assert!(matches!(ekm_key_block(&server), Err(PrfError::Export(_))));
}
