//! The tls-crypt key of an SSL server: `tls-crypt.key` in its PKI folder, in OpenVPN's static
//! key format, as `openvpn --genkey secret` writes it.

use aws_lc_rs::rand::SystemRandom;

use super::{DirLock, PkiError, SECRET_MODE, ServerPki, files};
use crate::proto::wrap::StaticKey;

impl ServerPki {
    /// Reads the server's tls-crypt key, generating and saving one first when the file does
    /// not exist. An existing key is never replaced, so turning `tls_crypt` off and on again
    /// keeps the profiles exported before valid.
    pub fn tls_crypt_key(&self) -> Result<StaticKey, PkiError> {
        let path = self.dir().tls_crypt_key();
        // The lock keeps a daemon and an export that both find no key from writing two
        // different ones.
        let _lock = DirLock::acquire(&self.dir().lock())?;
        if !path.exists() {
            let key = StaticKey::generate(&SystemRandom::new()).map_err(|_| PkiError::Random)?;
            files::write_atomic(&path, key.to_file_text().as_bytes(), SECRET_MODE)?;
            return Ok(key);
        }
        let bytes = files::read(&path)?;
        let text = String::from_utf8(bytes).map_err(|_| PkiError::Corrupt {
            path: path.clone(),
            reason: "not UTF-8 text".to_owned(),
        })?;
        StaticKey::parse(&text).map_err(|error| PkiError::Corrupt {
            path,
            reason: error.to_string(),
        })
    }
}
