//! Username and password checks of two-factor SSL servers: the `local` backend (a users file
//! of argon2id hashes) and the `http` backend (a POST to an admin-run service), the throttle
//! of failed logins and the session tokens pushed to accepted clients.
//!
//! The daemon runs each check in a task of its own, so a slow backend delays only the client
//! that waits for it.

pub mod http;
pub mod password;
pub mod throttle;
pub mod token;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::proto::keymethod::Secret;

use self::http::HttpUrl;
use self::users::UserFile;

/// Password verifications of one SSL server that run at once. Each argon2id verification with
/// the default parameters takes 19 MiB and tens of milliseconds of one core.
// NOTE: a guessed bound, sized to keep memory small rather than measured.
pub const MAX_PARALLEL_VERIFICATIONS: usize = 4;

/// The credentials a client presented, with the context a backend may use to decide.
pub struct CredentialCheck {
    pub username: String,
    pub password: Secret,
    pub common_name: String,
    pub serial_hex: String,
    /// The SSL server's name.
    pub server: String,
    /// The client's real address.
    pub client: SocketAddr,
}

impl std::fmt::Debug for CredentialCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCheck")
            .field("username", &self.username)
            .field("common_name", &self.common_name)
            .field("serial_hex", &self.serial_hex)
            .field("server", &self.server)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The outcome of a check. The reasons are for the log; they never contain the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// The credentials are wrong: counted as a failed login.
    Denied(String),
    /// The backend could not decide (timeout, connection error, unexpected status). The
    /// client is rejected, but no failure is counted against it.
    Unavailable(String),
}

/// An identity backend, ready to check credentials.
#[derive(Clone, Debug)]
pub enum Backend {
    Local(Arc<LocalUsers>),
    Http { url: HttpUrl, timeout: Duration },
}

/// The users of the `local` backend, and the bound on parallel verifications.
#[derive(Debug)]
pub struct LocalUsers {
    users: UserFile,
    verifications: Arc<Semaphore>,
}

impl LocalUsers {
    pub fn new(users: UserFile) -> Self {
        Self::with_semaphore(users, Arc::new(Semaphore::new(MAX_PARALLEL_VERIFICATIONS)))
    }

    /// Creates the backend for a reread users file, sharing the bound of the previous one.
    pub fn replace(&self, users: UserFile) -> Self {
        Self::with_semaphore(users, self.verifications.clone())
    }

    fn with_semaphore(users: UserFile, verifications: Arc<Semaphore>) -> Self {
        Self {
            users,
            verifications,
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn contains(&self, username: &str) -> bool {
        self.users.hash_of(username).is_some()
    }

    /// Verifies a password on the blocking thread pool.
    pub async fn check(&self, check: &CredentialCheck) -> Verdict {
        let Ok(_permit) = self.verifications.acquire().await else {
            return Verdict::Unavailable("password verification is shutting down".to_owned());
        };
        let hash = self.users.hash_of(&check.username).map(str::to_owned);
        let known = hash.is_some();
        let password = check.password.clone();
        let verified = tokio::task::spawn_blocking(move || match hash {
            Some(hash) => password::verify_password(password.expose(), &hash),
            None => password::verify_unknown_user(password.expose()),
        })
        .await;
        match verified {
            Ok(true) => Verdict::Accepted,
            Ok(false) if known => Verdict::Denied("wrong password".to_owned()),
            Ok(false) => Verdict::Denied("unknown user".to_owned()),
            Err(error) => Verdict::Unavailable(format!("password verification failed: {error}")),
        }
    }
}

impl Backend {
    /// Runs one check to its end. Every problem becomes a verdict, so there is no error case.
    pub async fn check(&self, check: &CredentialCheck) -> Verdict {
        match self {
            Self::Local(users) => users.check(check).await,
            Self::Http { url, timeout } => http::check(url, *timeout, check).await,
        }
    }
}

#[cfg(test)]
mod tests;
