//! The PKI of each SSL server: its own CA, the server certificate, client certificates, the
//! index of issued certificates and the CRL.
//!
//! Each SSL server has a CA of its own, so a certificate issued for one server never
//! authenticates to another. The files live in `pki_dir/<server name>/`, see [`ServerDir`].
//! The folder is created complete on first use and never overwritten. Changes to the index
//! and the CRL run under an exclusive lock, and every file is replaced atomically.
//!
//! The daemon opens a server's PKI with [`ServerPki::open_or_create`], builds its rustls
//! configuration from [`ServerPki::server_cert_chain`], [`ServerPki::server_key`] and
//! [`ServerPki::client_verifier`], and calls [`ServerPki::reload_crl_if_changed`] now and then
//! to pick up certificates that `sslvpn cert delete` revoked.

mod certs;
mod clients;
mod create;
mod crl;
mod files;
mod index;
mod layout;
mod profile;
mod serial;
mod tls_crypt;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use time::OffsetDateTime;

pub use certs::{CA_DAYS, DEFAULT_CLIENT_DAYS, MAX_CLIENT_DAYS};
pub use clients::ClientCredentials;
pub use files::{DirLock, PUBLIC_MODE, SECRET_MODE, sync_dir, write_atomic, write_new};
pub use index::{CertStatus, IndexEntry, RecordState};
pub use layout::{MAX_CERT_NAME_LENGTH, ServerDir, validate_cert_name};
pub use profile::{AEAD_CIPHERS, ProfileSettings};
pub use serial::Serial;

/// An error of a PKI operation.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{action} {path} failed: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} not found; the PKI folder is incomplete")]
    MissingFile { path: PathBuf },
    #[error("{path} is invalid: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "SSL server {server:?} has no PKI yet ({dir} not found); \
         `sslvpn cert create` or `sslvpn serve` creates it"
    )]
    NotCreated { server: String, dir: PathBuf },
    #[error(
        "invalid SSL server name {name:?}: it must start with a letter and contain only \
         letters, digits, '-', '_' and '.'"
    )]
    InvalidServerName { name: String },
    #[error("invalid certificate name {name:?}: {reason}")]
    InvalidCertName { name: String, reason: String },
    #[error("invalid lifetime of {days} days: use 1 to {MAX_CLIENT_DAYS} days")]
    InvalidDays { days: u32 },
    #[error("invalid serial number {text:?}: expected up to 20 bytes in hex")]
    InvalidSerial { text: String },
    #[error(
        "SSL server {server:?} already has a certificate named {name:?} (serial {serial}, \
         {status}); revoke it with `sslvpn cert delete` before creating a new one"
    )]
    DuplicateName {
        server: String,
        name: String,
        serial: Serial,
        status: CertStatus,
    },
    #[error("SSL server {server:?} has no certificate named {name:?}")]
    NotFound { server: String, name: String },
    #[error(
        "certificate {name:?} of SSL server {server:?} (serial {serial}) is revoked; \
         create a new one with `sslvpn cert create`"
    )]
    Revoked {
        server: String,
        name: String,
        serial: Serial,
    },
    #[error("certificate {name:?} of SSL server {server:?} (serial {serial}) is already revoked")]
    AlreadyRevoked {
        server: String,
        name: String,
        serial: Serial,
    },
    #[error(
        "certificate {name:?} of SSL server {server:?} expired on {expires}; \
         delete it and create a new one"
    )]
    Expired {
        server: String,
        name: String,
        expires: String,
    },
    #[error("{path} already exists; remove it or choose another output path")]
    OutputExists { path: PathBuf },
    #[error("generating {item} failed: {source}")]
    Generate { item: String, source: rcgen::Error },
    #[error("the system random number generator failed")]
    Random,
    #[error("building the client certificate verifier failed: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error(
        "adding the CA certificate of SSL server {server:?} to the trust store failed: {source}"
    )]
    TrustAnchor {
        server: String,
        source: rustls::Error,
    },
    #[error("writing the zip bundle failed: {0}")]
    Zip(#[from] zip::result::ZipError),
}

impl PkiError {
    fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }

    fn generate(item: &str, source: rcgen::Error) -> Self {
        Self::Generate {
            item: item.to_owned(),
            source,
        }
    }
}

/// The PKI of one SSL server, loaded for serving and for managing client certificates.
pub struct ServerPki {
    server_name: String,
    dir: ServerDir,
    ca_cert: CertificateDer<'static>,
    server_cert: CertificateDer<'static>,
    server_key: PrivateKeyDer<'static>,
    crl: crl::LoadedCrl,
    crl_generation: u64,
}

impl ServerPki {
    /// Opens the PKI of `server_name` under `pki_dir`, creating the CA, the server certificate,
    /// an empty index and an empty CRL when the folder does not exist yet.
    pub fn open_or_create(pki_dir: &Path, server_name: &str) -> Result<Self, PkiError> {
        let dir = ServerDir::new(pki_dir, server_name)?;
        if is_missing_or_empty(dir.root())? {
            create::create(pki_dir, &dir, server_name, OffsetDateTime::now_utc())?;
        }
        Self::open(pki_dir, server_name)
    }

    /// Opens an existing PKI, failing with [`PkiError::NotCreated`] when there is none.
    pub fn open(pki_dir: &Path, server_name: &str) -> Result<Self, PkiError> {
        let dir = ServerDir::new(pki_dir, server_name)?;
        if !dir.root().is_dir() {
            return Err(PkiError::NotCreated {
                server: server_name.to_owned(),
                dir: dir.root().to_owned(),
            });
        }
        let ca_cert = certs::read_cert(&dir.ca_cert())?;
        let server_cert = certs::read_cert(&dir.server_cert())?;
        let key_path = dir.server_key();
        let server_key =
            PrivateKeyDer::from_pem_slice(&files::read_private(&key_path)?).map_err(|error| {
                PkiError::Corrupt {
                    path: key_path.clone(),
                    reason: error.to_string(),
                }
            })?;
        let crl = crl::load(&dir.crl())?;
        crl::check_issuer(&crl, ca_cert.as_ref(), &dir.crl())?;
        Ok(Self {
            server_name: server_name.to_owned(),
            dir,
            ca_cert,
            server_cert,
            server_key,
            crl,
            crl_generation: 0,
        })
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    pub fn dir(&self) -> &ServerDir {
        &self.dir
    }

    /// Returns the server's CA certificate, the only trust anchor for its clients.
    pub fn ca_cert(&self) -> &CertificateDer<'static> {
        &self.ca_cert
    }

    /// Returns the chain the server presents: its own certificate only, because clients carry
    /// the CA.
    pub fn server_cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.server_cert.clone()]
    }

    /// Returns a copy of the server's private key (PKCS#8, ECDSA P-256).
    pub fn server_key(&self) -> PrivateKeyDer<'static> {
        self.server_key.clone_key()
    }

    /// Returns the CRL as last read from `crl.pem`.
    pub fn crl(&self) -> &CertificateRevocationListDer<'static> {
        &self.crl.der
    }

    /// Counts the CRL changes this value has loaded: 0 after opening, one more each time
    /// [`Self::reload_crl_if_changed`] reads a new CRL.
    pub fn crl_generation(&self) -> u64 {
        self.crl_generation
    }

    /// Reads `crl.pem` again if the file changed since it was last read, and returns whether
    /// it did. On an error the previous CRL stays in use.
    ///
    /// A verifier from [`Self::client_verifier`] keeps the CRL it was built with, so after a
    /// change the caller builds a new one for new handshakes and checks the serials of
    /// established sessions with [`Self::is_revoked`].
    pub fn reload_crl_if_changed(&mut self) -> Result<bool, PkiError> {
        let path = self.dir.crl();
        if crl::stamp(&path)? == self.crl.stamp {
            return Ok(false);
        }
        let loaded = crl::load(&path)?;
        crl::check_issuer(&loaded, self.ca_cert.as_ref(), &path)?;
        let changed = loaded.der != self.crl.der;
        self.crl = loaded;
        if changed {
            self.crl_generation += 1;
        }
        Ok(changed)
    }

    /// Returns whether the loaded CRL lists the certificate with this serial number, given as the
    /// content bytes of its DER INTEGER (a leading zero byte is ignored).
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.crl.revoked.contains(&Serial::from_bytes(serial))
    }

    /// Builds a rustls verifier that accepts exactly the client certificates this server's CA
    /// issued, that are within their validity dates, carry clientAuth and are not on the
    /// loaded CRL. A client without a certificate is rejected.
    ///
    /// The CRL's nextUpdate is not enforced: it is set to the CA's notAfter anyway, see
    /// `CaSigner::sign_crl`.
    pub fn client_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, PkiError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca_cert.clone())
            .map_err(|source| PkiError::TrustAnchor {
                server: self.server_name.clone(),
                source,
            })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .with_crls([self.crl.der.clone()])
            .build()?;
        Ok(verifier)
    }
}

/// Returns whether `folder` is missing or empty, so that creation may put a PKI there.
fn is_missing_or_empty(folder: &Path) -> Result<bool, PkiError> {
    match std::fs::read_dir(folder) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(PkiError::io("list", folder, source)),
    }
}

impl fmt::Debug for ServerPki {
    /// Shows where the PKI lives and how many certificates are revoked, never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerPki")
            .field("server_name", &self.server_name)
            .field("dir", &self.dir.root())
            .field("revoked", &self.crl.revoked.len())
            .field("crl_generation", &self.crl_generation)
            .finish_non_exhaustive()
    }
}

/// Formats a time as RFC 3339 in UTC, e.g. `2028-06-01T09:30:00Z`.
pub fn format_time(time: OffsetDateTime) -> String {
    use time::format_description::well_known::Rfc3339;
    time.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| time.unix_timestamp().to_string())
}
