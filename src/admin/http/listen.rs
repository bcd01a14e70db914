//! Preparing the listeners: the unix socket file with its checks and mode, and the bearer
//! token of the TCP listener.

use std::io::ErrorKind as IoErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_lc_rs::digest;
use tokio::net::{UnixListener, UnixStream};

use super::ApiStartError;

/// Time a live daemon gets to accept the probe connection on an existing socket.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Minimum token length in characters: 32 hex digits carry 128 bits.
const MIN_TOKEN_LENGTH: usize = 32;

/// The socket file this server bound. Dropping it removes the file, unless another process
/// has replaced it since.
pub(super) struct SocketFile {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let Ok(metadata) = std::fs::symlink_metadata(&self.path) else {
            return;
        };
        if metadata.dev() != self.device || metadata.ino() != self.inode {
            return;
        }
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "failed to remove the admin socket");
        }
    }
}

/// Binds the admin socket at `path` with mode 0600.
///
/// The socket is bound under a temporary name in the same folder, set to mode 0600 and then
/// renamed, so no client can connect while the mode is still the umask's default.
pub(super) async fn bind_socket(path: &Path) -> Result<(SocketFile, UnixListener), ApiStartError> {
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    if !folder.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)
            .map_err(|source| ApiStartError::CreateFolder {
                path: folder.to_owned(),
                source,
            })?;
    }
    // NOTE: two daemons that start at the same moment can both pass this check, and the later
    // rename then takes the path from the earlier one.
    remove_stale_socket(path).await?;

    static BIND_COUNT: AtomicU32 = AtomicU32::new(0);
    let temporary = folder.join(format!(
        ".sslvpn-{}-{}",
        std::process::id(),
        BIND_COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    let bind_error = |source| ApiStartError::BindSocket {
        path: path.to_owned(),
        source,
    };
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary).map_err(bind_error)?;
    let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(source) = placed {
        let _ = std::fs::remove_file(&temporary);
        return Err(bind_error(source));
    }
    let metadata = std::fs::symlink_metadata(path).map_err(bind_error)?;
    let file = SocketFile {
        path: path.to_owned(),
        device: metadata.dev(),
        inode: metadata.ino(),
    };
    Ok((file, listener))
}

/// Removes a socket file that no process listens on, and rejects one that a process serves.
async fn remove_stale_socket(path: &Path) -> Result<(), ApiStartError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == IoErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ApiStartError::Inspect {
                path: path.to_owned(),
                source,
            });
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(ApiStartError::NotASocket {
            path: path.to_owned(),
        });
    }
    match tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await {
        // A socket whose backlog is full still belongs to a live process.
        Ok(Ok(_)) | Err(_) => Err(ApiStartError::InUse {
            path: path.to_owned(),
        }),
        Ok(Err(error)) if error.kind() == IoErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing a stale admin socket");
            match std::fs::remove_file(path) {
                Err(source) if source.kind() != IoErrorKind::NotFound => {
                    Err(ApiStartError::RemoveStale {
                        path: path.to_owned(),
                        source,
                    })
                }
                _ => Ok(()),
            }
        }
        Ok(Err(error)) if error.kind() == IoErrorKind::NotFound => Ok(()),
        Ok(Err(source)) => Err(ApiStartError::Inspect {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The TCP listener's bearer token, kept as its SHA-256 digest so that comparing a presented
/// token takes the same time whatever its length and content.
pub(super) struct BearerToken {
    digest: digest::Digest,
}

impl BearerToken {
    pub(super) fn matches(&self, presented: &[u8]) -> bool {
        let presented = digest::digest(&digest::SHA256, presented);
        aws_lc_rs::constant_time::verify_slices_are_equal(self.digest.as_ref(), presented.as_ref())
            .is_ok()
    }
}

/// Reads the token file, which must be private to its owner and hold at least 32 characters
/// before its trailing newline.
pub(super) fn read_token(path: &Path) -> Result<BearerToken, ApiStartError> {
    let read_error = |source| ApiStartError::TokenRead {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(ApiStartError::TokenPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(read_error)?);
    let token = text.trim_end_matches(['\n', '\r']);
    let length = token.chars().count();
    if length < MIN_TOKEN_LENGTH {
        return Err(ApiStartError::TokenTooShort {
            path: path.to_owned(),
            length,
        });
    }
    Ok(BearerToken {
        digest: digest::digest(&digest::SHA256, token.as_bytes()),
    })
}
