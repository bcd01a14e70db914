//! The users file of the `local` backend: usernames with argon2id password hashes, in TOML.
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! ```
//!
//! `sslvpn user` changes it under an exclusive lock on `.<file name>.lock` beside it and
//! replaces it atomically with mode 0600. `sslvpn serve` rereads it when it changes.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pki::{DirLock, SECRET_MODE, write_atomic};

use super::password::{HashError, validate_hash};

/// Longest username, in bytes. OpenVPN sends at most 127 bytes, and 64 matches the longest
/// certificate common name `sslvpn cert create` issues.
pub const MAX_USERNAME_LENGTH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("users file {path} not found; `sslvpn user add` creates it")]
    NotFound { path: PathBuf },
    #[error("{action} {path} failed: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("users file {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("users file {path}: user {name:?} has an invalid password hash: {error}")]
    InvalidHash {
        path: PathBuf,
        name: String,
        error: HashError,
    },
    #[error("invalid username {name:?}: {reason}")]
    InvalidUsername { name: String, reason: String },
    #[error("user {name:?} already exists; change the password with `sslvpn user passwd`")]
    Exists { name: String },
    #[error("user {name:?} not found")]
    UnknownUser { name: String },
    #[error("writing {path} failed: {message}")]
    Write { path: PathBuf, message: String },
}

/// One `[[user]]` entry as stored.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Record {
    name: String,
    password_hash: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    #[serde(default)]
    user: Vec<Record>,
}

/// The users of one SSL server, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFile {
    users: BTreeMap<String, String>,
}

impl UserFile {
    /// Reads and validates a users file.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => UsersError::NotFound {
                path: path.to_owned(),
            },
            _ => UsersError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            },
        })?;
        Self::parse(&text, path)
    }

    /// Reads a users file, or returns an empty one when the file does not exist yet.
    pub fn load_or_empty(path: &Path) -> Result<Self, UsersError> {
        match Self::load(path) {
            Err(UsersError::NotFound { .. }) => Ok(Self::default()),
            other => other,
        }
    }

    /// Parses the text of a users file; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, UsersError> {
        let invalid = |message: String| UsersError::Invalid {
            path: path.to_owned(),
            message,
        };
        let model: FileModel = toml::from_str(text).map_err(|error| invalid(error.to_string()))?;
        let mut users = BTreeMap::new();
        for record in model.user {
            validate_username(&record.name).map_err(|error| invalid(error.to_string()))?;
            validate_hash(&record.password_hash).map_err(|error| UsersError::InvalidHash {
                path: path.to_owned(),
                name: record.name.clone(),
                error,
            })?;
            if users
                .insert(record.name.clone(), record.password_hash)
                .is_some()
            {
                return Err(invalid(format!(
                    "user {:?} is listed twice; remove one entry",
                    record.name
                )));
            }
        }
        Ok(Self { users })
    }

    /// Writes the file atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let text = self.to_toml();
        write_atomic(path, text.as_bytes(), SECRET_MODE).map_err(|error| UsersError::Write {
            path: path.to_owned(),
            message: error.to_string(),
        })
    }

    /// Serializes the users, sorted by name, below a comment that describes the file.
    pub fn to_toml(&self) -> String {
        let model = FileModel {
            user: self
                .users
                .iter()
                .map(|(name, hash)| Record {
                    name: name.clone(),
                    password_hash: hash.clone(),
                })
                .collect(),
        };
        let body = toml::to_string(&model).unwrap_or_default();
        format!(
            "# Users of the sslvpn local backend, changed by `sslvpn user`.\n\
             # Passwords are stored as argon2id hashes only.\n\n{body}"
        )
    }

    pub fn add(&mut self, name: &str, hash: String) -> Result<(), UsersError> {
        validate_username(name)?;
        if self.users.contains_key(name) {
            return Err(UsersError::Exists {
                name: name.to_owned(),
            });
        }
        self.users.insert(name.to_owned(), hash);
        Ok(())
    }

    pub fn set_password(&mut self, name: &str, hash: String) -> Result<(), UsersError> {
        match self.users.get_mut(name) {
            Some(stored) => {
                *stored = hash;
                Ok(())
            }
            None => Err(UsersError::UnknownUser {
                name: name.to_owned(),
            }),
        }
    }

    pub fn remove(&mut self, name: &str) -> Result<(), UsersError> {
        match self.users.remove(name) {
            Some(_) => Ok(()),
            None => Err(UsersError::UnknownUser {
                name: name.to_owned(),
            }),
        }
    }

    /// Returns the usernames in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Returns the stored PHC hash of `name`.
    pub fn hash_of(&self, name: &str) -> Option<&str> {
        self.users.get(name).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Takes the lock that serializes changes to the users file at `path`.
pub fn lock(path: &Path) -> Result<DirLock, UsersError> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "users".to_owned());
    let lock_path = path.with_file_name(format!(".{name}.lock"));
    DirLock::acquire(&lock_path).map_err(|error| UsersError::Write {
        path: lock_path,
        message: error.to_string(),
    })
}

/// Checks a username: 1 to 64 bytes of letters, digits, `-`, `_`, `.` and `@`, which covers
/// every certificate common name that `sslvpn cert create` issues.
pub fn validate_username(name: &str) -> Result<(), UsersError> {
    let invalid = |reason: String| UsersError::InvalidUsername {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > MAX_USERNAME_LENGTH {
        return Err(invalid(format!(
            "must be 1 to {MAX_USERNAME_LENGTH} bytes long"
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')))
    {
        return Err(invalid(format!(
            "contains {bad:?}; use only letters, digits, '-', '_', '.' and '@'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
