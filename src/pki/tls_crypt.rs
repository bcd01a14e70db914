//! The tls-crypt key of an SSL server: `tls-crypt.key` in its PKI folder, in OpenVPN's static
//! key format, as `openvpn --genkey secret` writes it.

use aws_lc_rs::rand::SystemRandom;
use tracing::info;

use super::{DirLock, PkiError, SECRET_MODE, ServerPki, files};
use crate::proto::wrap::StaticKey;

/// The fix for a key file that cannot be read as a key.
const RESTORE_FIX: &str = "restore the file from a backup, or delete it so that a new key is \
                           made (every profile exported before then needs a new export)";

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
            // A new key makes every profile exported with an earlier one useless.
            info!(
                path = %path.display(),
                "created a new tls-crypt key; profiles exported before need a new export"
            );
            return Ok(key);
        }
        let bytes = files::read_private(&path)?;
        let text = String::from_utf8(bytes).map_err(|_| PkiError::Corrupt {
            path: path.clone(),
            reason: format!("not UTF-8 text; {RESTORE_FIX}"),
        })?;
        StaticKey::parse(&text).map_err(|error| PkiError::Corrupt {
            path,
            reason: format!("{error}; {RESTORE_FIX}"),
        })
    }
}
