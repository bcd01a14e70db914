//! The identity backend of a two-factor SSL server, and the watch that rereads the users file
//! of the local backend when `sslvpn user` changes it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::auth::users::UserFile;
use crate::auth::{Backend, LocalUsers};
use crate::config::{AuthBackend, SslServer};

use super::credentials::{FileStamp, file_stamp};
use super::error::ServeError;

/// Notices changes of a users file between polls.
#[derive(Debug)]
pub(crate) struct UsersWatch {
    path: PathBuf,
    seen: FileStamp,
}

/// Builds the backend of `server`, or None when it checks certificates only. A missing users
/// file means no users yet; an invalid one stops the server from starting.
pub(crate) fn open_backend(
    server: &SslServer,
) -> Result<(Option<Backend>, Option<UsersWatch>), ServeError> {
    let Some(auth) = server.auth.as_ref().filter(|_| server.two_factor) else {
        return Ok((None, None));
    };
    match &auth.backend {
        AuthBackend::Local { users_file } => {
            let seen = file_stamp(std::fs::metadata(users_file));
            let users = UserFile::load_or_empty(users_file).map_err(|error| ServeError::Users {
                server: server.name.clone(),
                error,
            })?;
            if users.is_empty() {
                warn!(
                    server = %server.name,
                    users_file = %users_file.display(),
                    "the users file has no users, so every client is rejected; add one with \
                     `sslvpn user add`"
                );
            }
            let watch = UsersWatch {
                path: users_file.clone(),
                seen,
            };
            let backend = Backend::Local(Arc::new(LocalUsers::new(users)));
            Ok((Some(backend), Some(watch)))
        }
        AuthBackend::Http { url, timeout_ms } => {
            let backend = Backend::Http {
                url: url.clone(),
                timeout: Duration::from_millis(u64::from(*timeout_ms)),
            };
            Ok((Some(backend), None))
        }
    }
}

impl UsersWatch {
    /// Rereads the users file when its stamp changed, swaps it into `backend` and returns
    /// the new users. An invalid file keeps the previous users in force.
    pub(crate) fn reload_if_changed(&mut self, backend: &mut Backend) -> Option<Arc<LocalUsers>> {
        let stamp = file_stamp(std::fs::metadata(&self.path));
        if stamp == self.seen {
            return None;
        }
        self.seen = stamp;
        let Backend::Local(current) = backend else {
            return None;
        };
        match UserFile::load_or_empty(&self.path) {
            Ok(users) => {
                info!(
                    users_file = %self.path.display(),
                    users = users.len(),
                    "users file changed: users reloaded"
                );
                *current = Arc::new(current.replace(users));
                Some(current.clone())
            }
            Err(error) => {
                warn!(
                    users_file = %self.path.display(),
                    %error,
                    "users file changed but could not be loaded; the previous users stay in force"
                );
                None
            }
        }
    }
}
