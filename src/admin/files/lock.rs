//! The lock that makes one process at a time the writer of a gateway's files.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::admin::model::{ApiError, ErrorKind};
use crate::pki::DirLock;

/// How long [`ConfigLock::acquire`] waits for another holder to let go.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);
/// Pause between two attempts while waiting.
const RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// Exclusive `flock` on `<config path>.lock`, held until dropped.
///
/// The daemon keeps it for its whole run and a CLI that edits the files keeps it for one
/// request, so the config file, the PKI folders and the users files have one writer at a time.
/// flock locks belong to an open file description, so two holders in one process also
/// exclude each other.
#[derive(Debug)]
pub struct ConfigLock {
    _lock: DirLock,
    path: PathBuf,
}

impl ConfigLock {
    /// Waits up to 10 s, then fails with [`ErrorKind::Conflict`] naming the lock file.
    pub fn acquire(config_path: &Path) -> Result<Self, ApiError> {
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            if let Some(lock) = Self::try_acquire(config_path)? {
                return Ok(lock);
            }
            if Instant::now() >= deadline {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    format!(
                        "{} is locked: another sslvpn (the daemon, or another CLI command) \
                         holds it; waited {} s, try again when it has finished",
                        lock_path(config_path).display(),
                        LOCK_WAIT.as_secs()
                    ),
                ));
            }
            std::thread::sleep(RETRY_INTERVAL);
        }
    }

    /// Takes the lock without waiting; `Ok(None)` when another holder has it.
    pub fn try_acquire(config_path: &Path) -> Result<Option<Self>, ApiError> {
        let path = lock_path(config_path);
        let lock = DirLock::try_acquire(&path)
            .map_err(|error| ApiError::internal(format!("config lock: {error}")))?;
        Ok(lock.map(|lock| Self { _lock: lock, path }))
    }

    /// Returns the lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Returns `<config path>.lock`.
pub fn lock_path(config_path: &Path) -> PathBuf {
    let mut name = config_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}
