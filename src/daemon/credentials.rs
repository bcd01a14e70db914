//! TLS credentials of an SSL server (its CA, certificate chain, key, CRL and tls-crypt key)
//! and the revoked serials the daemon checks connected clients against.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::pki::ServerPki;
use crate::proto::tls::{self, TlsError};
use crate::proto::wrap::{Role, StaticKey, WrapConfig};

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot open the PKI in {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("CRL {path} is invalid: {message}")]
    InvalidCrl { path: PathBuf, message: String },
    #[error("cannot build the TLS configuration: {0}")]
    Tls(TlsError),
}

/// The inputs of an SSL server's TLS configuration.
pub(crate) struct Credentials {
    pub(crate) ca: CertificateDer<'static>,
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// None while the CA has not revoked anything and has no CRL file.
    pub(crate) crl: Option<CertificateRevocationListDer<'static>>,
    /// Present when the server has `tls_crypt` on.
    pub(crate) tls_crypt_key: Option<Arc<StaticKey>>,
}

/// Returns the folder of one SSL server's CA.
fn server_dir(pki_dir: &Path, server: &str) -> PathBuf {
    pki_dir.join(server)
}

/// Returns the path of the CRL file that the daemon watches for changes.
pub(crate) fn crl_path(pki_dir: &Path, server: &str) -> PathBuf {
    server_dir(pki_dir, server).join("crl.pem")
}

/// Loads the credentials of `server` from its PKI under `pki_dir/<server>/`, creating the CA,
/// server certificate and CRL on first use. With `tls_crypt` it also loads the tls-crypt key,
/// generating it on first use.
pub(crate) fn load(
    pki_dir: &Path,
    server: &str,
    tls_crypt: bool,
) -> Result<Credentials, CredentialsError> {
    let read_error = |error: crate::pki::PkiError| CredentialsError::Read {
        path: server_dir(pki_dir, server),
        message: error.to_string(),
    };
    let pki = ServerPki::open_or_create(pki_dir, server).map_err(read_error)?;
    let tls_crypt_key = if tls_crypt {
        Some(Arc::new(pki.tls_crypt_key().map_err(read_error)?))
    } else {
        None
    };
    Ok(Credentials {
        ca: pki.ca_cert().clone(),
        chain: pki.server_cert_chain(),
        key: pki.server_key(),
        crl: Some(pki.crl().clone()),
        tls_crypt_key,
    })
}

impl Credentials {
    /// Builds the rustls configuration for new sessions: client certificates must chain to the
    /// CA and must not be in the CRL.
    pub(crate) fn tls_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        tls::server_config(
            self.ca.clone(),
            self.chain.clone(),
            self.key.clone_key(),
            self.crl.iter().cloned().collect(),
        )
    }

    /// Returns the control-channel protection of the server's sessions.
    pub(crate) fn wrap_config(&self) -> WrapConfig {
        match &self.tls_crypt_key {
            Some(key) => WrapConfig::TlsCrypt {
                key: key.clone(),
                role: Role::Server,
            },
            None => WrapConfig::None,
        }
    }

    /// Returns the serials the CRL lists, normalized by [`normalize_serial`].
    pub(crate) fn revoked_serials(&self) -> Result<HashSet<String>, String> {
        match &self.crl {
            Some(crl) => revoked_serials(crl),
            None => Ok(HashSet::new()),
        }
    }
}

/// Reads the serials of every revoked certificate in a DER CRL.
pub(crate) fn revoked_serials(crl_der: &[u8]) -> Result<HashSet<String>, String> {
    let (_, crl) = x509_parser::parse_x509_crl(crl_der).map_err(|error| error.to_string())?;
    let serials = crl
        .iter_revoked_certificates()
        .map(|revoked| {
            let hex: String = revoked
                .raw_serial()
                .iter()
                .map(|byte| format!("{byte:02X}"))
                .collect();
            normalize_serial(&hex)
        })
        .collect();
    Ok(serials)
}

/// Uppercase hex without leading zeros, so that "07", "7" and "007" compare equal.
pub(crate) fn normalize_serial(hex: &str) -> String {
    hex.trim_start_matches('0').to_ascii_uppercase()
}

/// The modification time and length of a file, or None when it does not exist.
pub(crate) type FileStamp = Option<(SystemTime, u64)>;

/// Reads the stamp that [`CrlWatch`] compares.
pub(crate) fn file_stamp(metadata: std::io::Result<std::fs::Metadata>) -> FileStamp {
    let metadata = metadata.ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// Notices changes of the CRL file between polls.
#[derive(Debug)]
pub(crate) struct CrlWatch {
    pub(crate) path: PathBuf,
    seen: FileStamp,
}

impl CrlWatch {
    /// Starts watching `path`, taking its current stamp as already seen.
    pub(crate) fn new(path: PathBuf) -> Self {
        let seen = file_stamp(std::fs::metadata(&path));
        Self { path, seen }
    }

    /// Records `stamp` and returns whether it differs from the one seen before.
    pub(crate) fn changed(&mut self, stamp: FileStamp) -> bool {
        if stamp == self.seen {
            return false;
        }
        self.seen = stamp;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::proto::test_pki::TestCa;

    #[test]
    fn revoked_serials_lists_every_serial() {
        let ca = TestCa::new("office CA");
        let crl = ca.crl(&[7, 0x2A]);
        let serials = revoked_serials(&crl).unwrap();
        assert_eq!(serials.len(), 2);
        assert!(serials.contains("7"));
        assert!(serials.contains("2A"));
    }

    #[test]
    fn revoked_serials_rejects_garbage() {
        assert!(revoked_serials(b"not a CRL").is_err());
    }

    #[test]
    fn normalize_serial_ignores_case_and_zeros() {
        assert_eq!(normalize_serial("07"), "7");
        assert_eq!(normalize_serial("00ab"), "AB");
        assert_eq!(normalize_serial("1f0"), "1F0");
    }

    #[test]
    fn crl_watch_reports_each_change_once() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut watch = CrlWatch {
            path: PathBuf::from("crl.pem"),
            seen: None,
        };
        assert!(!watch.changed(None));
        assert!(watch.changed(Some((start, 10))));
        assert!(!watch.changed(Some((start, 10))));
        assert!(watch.changed(Some((start, 12))));
        assert!(watch.changed(Some((start + Duration::from_secs(1), 12))));
        assert!(watch.changed(None), "a deleted CRL is a change");
    }

    /// Writes PEM credentials for `server` under `pki_dir`, with a CRL revoking `revoked`.
    #[test]
    fn load_creates_the_pki_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = load(dir.path(), "office", false).unwrap();
        assert_eq!(credentials.chain.len(), 1);
        assert!(credentials.tls_config().is_ok());
        assert!(credentials.revoked_serials().unwrap().is_empty());
        assert!(dir.path().join("office/ca.crt").exists());
        assert!(matches!(credentials.wrap_config(), WrapConfig::None));
        assert!(!dir.path().join("office/tls-crypt.key").exists());
    }

    #[test]
    fn load_with_tls_crypt_creates_the_key() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let credentials = load(dir.path(), "office", true).unwrap();
        let path = dir.path().join("office/tls-crypt.key");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let saved = StaticKey::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let WrapConfig::TlsCrypt { key, role } = credentials.wrap_config() else {
            panic!("tls-crypt expected");
        };
        assert_eq!(role, Role::Server);
        assert_eq!(*key, saved);
    }

    #[test]
    fn crl_of_another_server_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        ServerPki::open_or_create(dir.path(), "office").unwrap();
        ServerPki::open_or_create(dir.path(), "lab").unwrap();
        std::fs::copy(
            dir.path().join("lab/crl.pem"),
            dir.path().join("office/crl.pem"),
        )
        .unwrap();
        let error = load(dir.path(), "office", false)
            .err()
            .expect("foreign CRL rejected");
        assert!(
            error.to_string().contains("not by this server's CA"),
            "{error}"
        );
    }

    #[test]
    fn load_lists_revoked_serials() {
        let dir = tempfile::tempdir().unwrap();
        let mut pki = ServerPki::open_or_create(dir.path(), "office").unwrap();
        let issued = pki.issue_client("alice", 30).unwrap();
        pki.revoke_client("alice").unwrap();
        let serials = load(dir.path(), "office", false)
            .unwrap()
            .revoked_serials()
            .unwrap();
        let expected = normalize_serial(&issued.serial.to_string());
        assert!(serials.contains(&expected), "{serials:?} lacks {expected}");
    }
}
