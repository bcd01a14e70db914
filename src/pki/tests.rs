//! Tests of a whole server PKI: creation, issuing, revocation, crash safety, and full rustls
//! handshakes with the certificates it issues.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    ServerConfig, ServerConnection, SignatureScheme, SupportedProtocolVersion,
};
use rustls_pki_types::pem::PemObject;

use super::*;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// Checks the server's chain and extended key usage like an OpenVPN client with
/// `remote-cert-tls server`, which never compares host names: a name mismatch, which webpki
/// reports only after the chain verified, counts as success.
#[derive(Debug)]
struct ChainOnlyVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A client certificate chain and key read from a PKI folder.
struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn client_identity(pki: &ServerPki, entry: &IndexEntry) -> ClientIdentity {
    let cert = CertificateDer::from_pem_file(pki.dir().client_cert(&entry.serial))
        .expect("client certificate");
    let key =
        PrivateKeyDer::from_pem_file(pki.dir().client_key(&entry.serial)).expect("client key");
    ClientIdentity {
        chain: vec![cert],
        key,
    }
}

/// Runs a TLS handshake in memory between a client holding `identity`, which trusts
/// `client_trusts`, and a server with `server`'s certificate and client verifier. Returns the
/// first error either side raised.
fn handshake(
    server: &ServerPki,
    client_trusts: &CertificateDer<'static>,
    identity: ClientIdentity,
    version: &'static SupportedProtocolVersion,
) -> Result<(), rustls::Error> {
    let server_config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])?
        .with_client_cert_verifier(server.client_verifier().expect("verifier"))
        .with_single_cert(server.server_cert_chain(), server.server_key())?;

    let mut roots = RootCertStore::empty();
    roots.add(client_trusts.clone())?;
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .expect("server verifier");
    let client_config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier(inner)))
        .with_client_auth_cert(identity.chain, identity.key)?;

    let name = ServerName::try_from("vpn.invalid").expect("server name");
    let mut client = ClientConnection::new(Arc::new(client_config), name)?;
    let mut server_side = ServerConnection::new(Arc::new(server_config))?;
    for _ in 0..20 {
        let mut moved = false;
        while client.wants_write() {
            let mut bytes = Vec::new();
            client.write_tls(&mut bytes).expect("client write");
            server_side
                .read_tls(&mut bytes.as_slice())
                .expect("server read");
            server_side.process_new_packets()?;
            moved = true;
        }
        while server_side.wants_write() {
            let mut bytes = Vec::new();
            server_side.write_tls(&mut bytes).expect("server write");
            client.read_tls(&mut bytes.as_slice()).expect("client read");
            client.process_new_packets()?;
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert!(!client.is_handshaking(), "client handshake did not finish");
    assert!(
        !server_side.is_handshaking(),
        "server handshake did not finish"
    );
    Ok(())
}

const VERSIONS: [&SupportedProtocolVersion; 2] = [&rustls::version::TLS12, &rustls::version::TLS13];

#[test]
fn issued_client_completes_handshake() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let alice = pki.issue_client("alice", 30).expect("issue");
    for version in VERSIONS {
        let result = handshake(&pki, pki.ca_cert(), client_identity(&pki, &alice), version);
        assert!(result.is_ok(), "{version:?}: {result:?}");
    }
}

#[test]
fn revoked_client_fails_handshake() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let mut pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let alice = pki.issue_client("alice", 30).expect("issue");
    let identity = || client_identity(&pki, &alice);
    let before = handshake(&pki, pki.ca_cert(), identity(), &rustls::version::TLS13);
    assert!(before.is_ok(), "{before:?}");

    // The key file goes away on revocation, so keep the identity from before.
    let saved = identity();
    pki.revoke_client("alice").expect("revoke");
    for version in VERSIONS {
        let saved_copy = ClientIdentity {
            chain: saved.chain.clone(),
            key: saved.key.clone_key(),
        };
        let result = handshake(&pki, pki.ca_cert(), saved_copy, version);
        assert_eq!(
            result,
            Err(rustls::Error::InvalidCertificate(CertificateError::Revoked)),
            "{version:?}"
        );
    }
}

#[test]
fn other_servers_client_fails_handshake() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let office = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI A");
    let lab = ServerPki::open_or_create(pki_dir.path(), "lab").expect("PKI B");
    let bob = lab.issue_client("bob", 30).expect("issue");
    let result = handshake(
        &office,
        office.ca_cert(),
        client_identity(&lab, &bob),
        &rustls::version::TLS13,
    );
    assert_eq!(
        result,
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
        ))
    );
}

#[test]
fn client_rejects_other_servers_certificate() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let office = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI A");
    let lab = ServerPki::open_or_create(pki_dir.path(), "lab").expect("PKI B");
    let alice = office.issue_client("alice", 30).expect("issue");
    let result = handshake(
        &lab,
        office.ca_cert(),
        client_identity(&office, &alice),
        &rustls::version::TLS13,
    );
    assert!(
        result.is_err(),
        "a client of office accepted the server of lab"
    );
}

#[test]
fn creation_writes_layout() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let dir = pki.dir();
    assert_eq!(mode_of(&dir.ca_key()), 0o600);
    assert_eq!(mode_of(&dir.server_key()), 0o600);
    assert_eq!(mode_of(dir.root()), 0o700);
    assert!(dir.ca_cert().is_file());
    assert!(dir.server_cert().is_file());
    assert!(dir.clients().is_dir());
    assert!(pki.list_clients().expect("list").is_empty());
    assert_eq!(pki.crl_generation(), 0);
    let leftovers: Vec<_> = fs::read_dir(pki_dir.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("office")]);
}

#[test]
fn reopening_keeps_ca() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let first = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let key_before = fs::read(first.dir().ca_key()).expect("CA key");
    let second = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI again");
    assert_eq!(first.ca_cert(), second.ca_cert());
    assert_eq!(fs::read(second.dir().ca_key()).expect("CA key"), key_before);
}

#[test]
fn concurrent_creation_agrees() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let path = pki_dir.path().to_owned();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                ServerPki::open_or_create(&path, "office")
                    .expect("PKI")
                    .ca_cert()
                    .clone()
            })
        })
        .collect();
    let cas: Vec<_> = threads
        .into_iter()
        .map(|thread| thread.join().expect("join"))
        .collect();
    assert!(cas.windows(2).all(|pair| pair[0] == pair[1]), "CAs differ");
    let entries = fs::read_dir(&path).expect("list").count();
    assert_eq!(entries, 1, "staging folders were left behind");
}

#[test]
fn open_without_pki_fails() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let result = ServerPki::open(pki_dir.path(), "office");
    assert!(
        matches!(result, Err(PkiError::NotCreated { .. })),
        "{result:?}"
    );
}

#[test]
fn duplicate_name_rejected_until_revoked() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let mut pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let first = pki.issue_client("alice", 30).expect("issue");
    let second = pki.issue_client("alice", 30);
    assert!(
        matches!(second, Err(PkiError::DuplicateName { .. })),
        "{second:?}"
    );

    pki.revoke_client("alice").expect("revoke");
    let third = pki.issue_client("alice", 30).expect("issue after revoke");
    assert_ne!(third.serial, first.serial);
    let entries = pki.list_clients().expect("list");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].state, RecordState::Revoked);
    assert_eq!(entries[1].state, RecordState::Valid);
}

#[test]
fn invalid_days_rejected() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    for days in [0, MAX_CLIENT_DAYS + 1] {
        let result = pki.issue_client("alice", days);
        assert!(
            matches!(result, Err(PkiError::InvalidDays { .. })),
            "{days}: {result:?}"
        );
    }
}

#[test]
fn revocation_updates_crl_and_index() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let mut pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let alice = pki.issue_client("alice", 30).expect("issue");
    let bob = pki.issue_client("bob", 30).expect("issue");
    assert_eq!(mode_of(&pki.dir().client_key(&alice.serial)), 0o600);
    assert!(!pki.is_revoked(alice.serial.as_bytes()));

    let revoked = pki.revoke_client("alice").expect("revoke");
    assert_eq!(revoked.serial, alice.serial);
    assert!(revoked.revoked.is_some());
    assert!(pki.is_revoked(alice.serial.as_bytes()));
    assert!(!pki.is_revoked(bob.serial.as_bytes()));
    assert_eq!(pki.crl_generation(), 1);
    assert!(!pki.dir().client_key(&alice.serial).exists());
    assert!(pki.dir().client_cert(&alice.serial).exists());

    let again = pki.revoke_client("alice");
    assert!(
        matches!(again, Err(PkiError::AlreadyRevoked { .. })),
        "{again:?}"
    );
    let unknown = pki.revoke_client("carol");
    assert!(
        matches!(unknown, Err(PkiError::NotFound { .. })),
        "{unknown:?}"
    );
    let export = pki.client_credentials("alice");
    assert!(
        matches!(export, Err(PkiError::Revoked { .. })),
        "{export:?}"
    );
}

#[test]
fn daemon_sees_crl_change() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let mut admin = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let alice = admin.issue_client("alice", 30).expect("issue");
    let mut daemon = ServerPki::open(pki_dir.path(), "office").expect("open");
    assert!(!daemon.reload_crl_if_changed().expect("check"));

    admin.revoke_client("alice").expect("revoke");
    assert!(!daemon.is_revoked(alice.serial.as_bytes()));
    assert!(daemon.reload_crl_if_changed().expect("reload"));
    assert!(daemon.is_revoked(alice.serial.as_bytes()));
    assert_eq!(daemon.crl_generation(), 1);
    assert!(!daemon.reload_crl_if_changed().expect("check again"));
}

#[test]
fn is_revoked_ignores_sign_byte() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let mut pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let alice = pki.issue_client("alice", 30).expect("issue");
    pki.revoke_client("alice").expect("revoke");
    let mut with_zero = vec![0u8];
    with_zero.extend_from_slice(alice.serial.as_bytes());
    assert!(pki.is_revoked(&with_zero));
}

#[test]
fn concurrent_issues_all_recorded() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let path = pki_dir.path().to_owned();
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let pki = ServerPki::open(&path, "office").expect("open");
                pki.issue_client(&format!("user{i}"), 30).expect("issue")
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("join");
    }
    let pki = ServerPki::open(&path, "office").expect("open");
    let mut names: Vec<String> = pki
        .list_clients()
        .expect("list")
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    names.sort();
    let expected: Vec<String> = (0..6).map(|i| format!("user{i}")).collect();
    assert_eq!(names, expected);
}

#[test]
fn stray_temp_files_ignored() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let mut pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    pki.issue_client("alice", 30).expect("issue");
    let index_before = fs::read(pki.dir().index()).expect("index");
    let crl_before = fs::read(pki.dir().crl()).expect("CRL");

    // What a crash between writing a temporary file and renaming it leaves behind.
    let root = pki.dir().root().to_owned();
    fs::write(
        root.join(".index.json.tmp-1-00"),
        b"{\"format\": 1, \"certif",
    )
    .expect("write");
    fs::write(
        root.join(".crl.pem.tmp-1-00"),
        b"-----BEGIN X509 CRL-----\n",
    )
    .expect("write");

    assert_eq!(fs::read(pki.dir().index()).expect("index"), index_before);
    assert_eq!(fs::read(pki.dir().crl()).expect("CRL"), crl_before);
    let reopened = ServerPki::open(pki_dir.path(), "office").expect("reopen");
    assert_eq!(reopened.list_clients().expect("list").len(), 1);
    pki.issue_client("bob", 30).expect("issue after crash");
    pki.revoke_client("alice").expect("revoke after crash");
    assert_eq!(pki.list_clients().expect("list").len(), 2);
}

fn stray_files(folder: &Path) -> usize {
    fs::read_dir(folder)
        .expect("list")
        .filter(|entry| {
            let name = entry.as_ref().expect("entry").file_name();
            name.to_string_lossy().contains(".tmp-")
        })
        .count()
}

#[test]
fn crash_before_crl_rename_keeps_old_state() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let mut pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let alice = pki.issue_client("alice", 30).expect("issue");
    let index_before = fs::read(pki.dir().index()).expect("index");
    let crl_before = fs::read(pki.dir().crl()).expect("CRL");

    files::crash_point::arm(ServerDir::CRL);
    let result = pki.revoke_client("alice");

    assert!(result.is_err());
    assert_eq!(stray_files(pki.dir().root()), 1);
    assert_eq!(fs::read(pki.dir().index()).expect("index"), index_before);
    assert_eq!(fs::read(pki.dir().crl()).expect("CRL"), crl_before);
    let reopened = ServerPki::open(pki_dir.path(), "office").expect("reopen");
    assert!(!reopened.is_revoked(alice.serial.as_bytes()));
    assert!(pki.dir().client_key(&alice.serial).exists());

    pki.revoke_client("alice").expect("revoke after the crash");
    assert!(pki.is_revoked(alice.serial.as_bytes()));
}

#[test]
fn crash_before_index_rename_still_revokes() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let mut pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let alice = pki.issue_client("alice", 30).expect("issue");
    let index_before = fs::read(pki.dir().index()).expect("index");

    files::crash_point::arm(ServerDir::INDEX);
    let result = pki.revoke_client("alice");

    assert!(result.is_err());
    assert_eq!(fs::read(pki.dir().index()).expect("index"), index_before);
    let mut daemon = ServerPki::open(pki_dir.path(), "office").expect("reopen");
    assert!(
        daemon.is_revoked(alice.serial.as_bytes()),
        "CRL lacks the serial"
    );

    pki.revoke_client("alice").expect("revoke after the crash");
    let entries = pki.list_clients().expect("list");
    assert_eq!(entries[0].state, RecordState::Revoked);
    assert!(!pki.dir().client_key(&alice.serial).exists());
    daemon.reload_crl_if_changed().expect("reload");
    assert!(daemon.is_revoked(alice.serial.as_bytes()));
}

#[test]
fn crash_during_issue_loses_nothing() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    pki.issue_client("alice", 30).expect("issue");
    let index_before = fs::read(pki.dir().index()).expect("index");

    files::crash_point::arm(ServerDir::INDEX);
    let result = pki.issue_client("bob", 30);

    assert!(result.is_err());
    assert_eq!(fs::read(pki.dir().index()).expect("index"), index_before);
    let names: Vec<String> = pki
        .list_clients()
        .expect("list")
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert_eq!(names, vec!["alice".to_owned()]);
    pki.issue_client("bob", 30).expect("issue after the crash");
    assert_eq!(pki.list_clients().expect("list").len(), 2);
}

#[test]
fn credentials_of_live_cert() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let alice = pki.issue_client("alice", 30).expect("issue");
    let credentials = pki.client_credentials("alice").expect("credentials");
    assert_eq!(credentials.entry, alice);
    assert!(
        credentials
            .key_pem
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(
        credentials
            .ca_pem
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let debug = format!("{credentials:?}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    let missing = pki.client_credentials("bob");
    assert!(
        matches!(missing, Err(PkiError::NotFound { .. })),
        "{missing:?}"
    );
}

#[test]
fn debug_hides_key() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let pki = ServerPki::open_or_create(pki_dir.path(), "office").expect("PKI");
    let debug = format!("{pki:?}");
    assert!(debug.contains("office"));
    assert!(!debug.contains("server_key"), "{debug}");
}

#[test]
fn tls_crypt_key_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ServerPki::open_or_create(dir.path(), "office").unwrap();
    let path = dir.path().join("office").join(ServerDir::TLS_CRYPT_KEY);
    assert!(!path.exists(), "the key is made only when first needed");

    let first = pki.tls_crypt_key().unwrap();
    assert_eq!(mode_of(&path), 0o600);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains("-----BEGIN OpenVPN Static key V1-----\n"));
    assert_eq!(crate::proto::wrap::StaticKey::parse(&text).unwrap(), first);

    let second = pki.tls_crypt_key().unwrap();
    assert_eq!(second, first, "an existing key is reused");
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn tls_crypt_key_corrupt_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ServerPki::open_or_create(dir.path(), "office").unwrap();
    let path = dir.path().join("office").join(ServerDir::TLS_CRYPT_KEY);
    fs::write(&path, "not a key\n").unwrap();
    let error = pki.tls_crypt_key().unwrap_err();
    assert!(matches!(error, PkiError::Corrupt { .. }), "{error}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "not a key\n");
}
