//! File names inside a server's PKI folder, and the rules for the names that become part of them.

use std::path::{Path, PathBuf};

use super::PkiError;
use super::serial::Serial;

/// Maximum length of a certificate name, in characters.
pub const MAX_CERT_NAME_LENGTH: usize = 64;

/// The folder `pki_dir/<server name>/` and the files in it.
///
/// ```text
/// ca.crt  ca.key            the server's own CA
/// server.crt  server.key    the certificate the SSL server presents
/// index.json                every client certificate issued: name, serial, dates, status
/// crl.pem                   the certificates revoked so far, signed by the CA
/// clients/<serial>.crt      issued client certificates, kept after revocation
/// clients/<serial>.key      their private keys, removed on revocation
/// .lock                     flock target that serializes changes to the index and CRL
/// ipp.txt                   tunnel address of each known client, written by `sslvpn serve`
/// tls-crypt.key             OpenVPN static key of tls-crypt, made when first needed
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerDir {
    root: PathBuf,
}

impl ServerDir {
    pub const CA_CERT: &'static str = "ca.crt";
    pub const CA_KEY: &'static str = "ca.key";
    pub const SERVER_CERT: &'static str = "server.crt";
    pub const SERVER_KEY: &'static str = "server.key";
    pub const INDEX: &'static str = "index.json";
    pub const CRL: &'static str = "crl.pem";
    pub const CLIENTS: &'static str = "clients";
    pub const LOCK: &'static str = ".lock";
    /// OpenVPN's name for its `ifconfig-pool-persist` file.
    pub const STICKY_ADDRESSES: &'static str = "ipp.txt";
    pub const TLS_CRYPT_KEY: &'static str = "tls-crypt.key";

    /// Returns the folder of `server_name` under `pki_dir`, after checking that the name is a
    /// single, plain path component.
    pub fn new(pki_dir: &Path, server_name: &str) -> Result<Self, PkiError> {
        validate_server_name(server_name)?;
        Ok(Self {
            root: pki_dir.join(server_name),
        })
    }

    pub(super) fn at(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.root.join(Self::CA_CERT)
    }

    pub fn ca_key(&self) -> PathBuf {
        self.root.join(Self::CA_KEY)
    }

    pub fn server_cert(&self) -> PathBuf {
        self.root.join(Self::SERVER_CERT)
    }

    pub fn server_key(&self) -> PathBuf {
        self.root.join(Self::SERVER_KEY)
    }

    pub fn index(&self) -> PathBuf {
        self.root.join(Self::INDEX)
    }

    pub fn crl(&self) -> PathBuf {
        self.root.join(Self::CRL)
    }

    pub fn lock(&self) -> PathBuf {
        self.root.join(Self::LOCK)
    }

    pub fn sticky_addresses(&self) -> PathBuf {
        self.root.join(Self::STICKY_ADDRESSES)
    }

    pub fn tls_crypt_key(&self) -> PathBuf {
        self.root.join(Self::TLS_CRYPT_KEY)
    }

    pub fn clients(&self) -> PathBuf {
        self.root.join(Self::CLIENTS)
    }

    pub fn client_cert(&self, serial: &Serial) -> PathBuf {
        self.clients().join(format!("{serial}.crt"))
    }

    pub fn client_key(&self, serial: &Serial) -> PathBuf {
        self.clients().join(format!("{serial}.key"))
    }
}

/// Checks that an SSL server name can name a folder: the configuration enforces the same rule
/// (a letter, then letters, digits, '-', '_' and '.'), and this repeats it for callers that did
/// not load a configuration.
fn validate_server_name(name: &str) -> Result<(), PkiError> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(PkiError::InvalidServerName {
            name: name.to_owned(),
        })
    }
}

/// Checks a client certificate name: 1 to 64 characters, a letter or digit first, then letters,
/// digits, '-', '_', '.' and '@'. The name becomes the certificate's common name.
pub fn validate_cert_name(name: &str) -> Result<(), PkiError> {
    let problem = if name.is_empty() || name.chars().count() > MAX_CERT_NAME_LENGTH {
        Some(format!(
            "must be 1 to {MAX_CERT_NAME_LENGTH} characters long"
        ))
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        Some("must start with a letter or digit".to_owned())
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')))
            .map(|bad| format!("contains {bad:?}; use only letters, digits, '-', '_', '.' and '@'"))
    };
    match problem {
        Some(reason) => Err(PkiError::InvalidCertName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_names_accepted() {
        for name in ["alice", "bob.smith@example.com", "laptop-01", "x", "A_1"] {
            assert!(validate_cert_name(name).is_ok(), "{name:?} was rejected");
        }
        let longest = "a".repeat(MAX_CERT_NAME_LENGTH);
        assert!(validate_cert_name(&longest).is_ok());
    }

    #[test]
    fn cert_names_rejected() {
        let too_long = "a".repeat(MAX_CERT_NAME_LENGTH + 1);
        for name in [
            "",
            too_long.as_str(),
            "../ca",
            "a/b",
            "a\\b",
            ".hidden",
            "-flag",
            "with space",
            "tab\t",
            "ünï",
            "semi;colon",
        ] {
            assert!(validate_cert_name(name).is_err(), "{name:?} was accepted");
        }
    }

    #[test]
    fn server_names_rejected() {
        for name in ["", "..", ".", "a/b", "/abs", "1office", "off ice"] {
            let result = ServerDir::new(Path::new("/pki"), name);
            assert!(result.is_err(), "{name:?} was accepted");
        }
    }

    #[test]
    fn server_dir_paths() {
        let dir = ServerDir::new(Path::new("/pki"), "office").expect("valid name");
        assert_eq!(dir.root(), Path::new("/pki/office"));
        assert_eq!(dir.ca_key(), Path::new("/pki/office/ca.key"));
        assert_eq!(dir.crl(), Path::new("/pki/office/crl.pem"));
        let serial = Serial::from_bytes(&[0x4a, 0x01]);
        assert_eq!(
            dir.client_key(&serial),
            Path::new("/pki/office/clients/4A01.key")
        );
    }
}
