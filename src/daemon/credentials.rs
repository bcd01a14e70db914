//! TLS credentials of an SSL server (its CA, certificate chain, key and CRL) and the revoked
//! serials the daemon checks connected clients against.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::proto::tls::{self, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {path}: {message}; create the SSL server's CA and certificates first")]
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
}

/// Returns the folder of one SSL server's CA.
fn server_dir(pki_dir: &Path, server: &str) -> PathBuf {
    pki_dir.join(server)
}

/// Returns the path of the CRL file that the daemon watches for changes.
pub(crate) fn crl_path(pki_dir: &Path, server: &str) -> PathBuf {
    server_dir(pki_dir, server).join("crl.pem")
}

/// Reads the credentials of `server` from `pki_dir/<server>/`: `ca.crt`, `server.crt` (the
/// chain, leaf first), `server.key` and the optional `crl.pem`, all PEM.
pub(crate) fn load(pki_dir: &Path, server: &str) -> Result<Credentials, CredentialsError> {
    // TODO: call the `pki` module's open-or-create function here once it is merged; it owns
    // the file layout, which this reader only assumes.
    let dir = server_dir(pki_dir, server);

    let read_error = |path: &Path, error: &dyn std::fmt::Display| CredentialsError::Read {
        path: path.to_owned(),
        message: error.to_string(),
    };
    let ca_path = dir.join("ca.crt");
    let ca = CertificateDer::from_pem_file(&ca_path).map_err(|e| read_error(&ca_path, &e))?;
    let chain_path = dir.join("server.crt");
    let chain = CertificateDer::pem_file_iter(&chain_path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|e| read_error(&chain_path, &e))?;
    let key_path = dir.join("server.key");
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| read_error(&key_path, &e))?;

    let crl_path = crl_path(pki_dir, server);
    let crl = if crl_path.exists() {
        let crl = CertificateRevocationListDer::from_pem_file(&crl_path).map_err(|error| {
            CredentialsError::InvalidCrl {
                path: crl_path.clone(),
                message: error.to_string(),
            }
        })?;
        Some(crl)
    } else {
        None
    };
    Ok(Credentials {
        ca,
        chain,
        key,
        crl,
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
    fn write_credentials(pki_dir: &Path, server: &str, revoked: u8) {
        use rcgen::{
            BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa,
            Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
        };
        let folder = pki_dir.join(server);
        std::fs::create_dir_all(&folder).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "office CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let server_params = CertificateParams::new(vec!["office-server".to_owned()]).unwrap();
        let certificate = server_params.signed_by(&key, &issuer).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let crl = CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(30),
            crl_number: SerialNumber::from(vec![1]),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(vec![revoked]),
                revocation_time: now - time::Duration::minutes(5),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)
        .unwrap();
        std::fs::write(folder.join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(folder.join("server.crt"), certificate.pem()).unwrap();
        std::fs::write(folder.join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(folder.join("crl.pem"), crl.pem().unwrap()).unwrap();
    }

    #[test]
    fn load_reads_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        write_credentials(dir.path(), "office", 9);
        let credentials = load(dir.path(), "office").unwrap();
        assert_eq!(credentials.chain.len(), 1);
        assert!(credentials.crl.is_some());
        assert!(credentials.tls_config().is_ok());
        let serials = credentials.revoked_serials().unwrap();
        assert!(serials.contains("9"));
    }

    #[test]
    fn load_names_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let error = load(dir.path(), "office").err().unwrap().to_string();
        assert!(error.contains("office/ca.crt"), "{error}");
    }
}
