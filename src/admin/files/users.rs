//! Users of a server's local identity backend: what `sslvpn user add/passwd/delete/list` do.

use std::path::PathBuf;

use crate::admin::model::{ApiError, ErrorKind, Reply};
use crate::auth::password::hash_password;
use crate::auth::token::looks_like_token;
use crate::auth::users::{self, UserFile, UsersError};
use crate::config::{AuthBackend, AuthSettings};

use super::Files;

/// Shortest password accepted for a user, in bytes.
pub const MIN_PASSWORD_LENGTH: usize = 8;
/// Maximum password length, in bytes: OpenVPN clients send at most 127.
pub const MAX_PASSWORD_LENGTH: usize = 127;

/// Checks a new password: 8 to 127 bytes, and not of the session token's shape, which
/// every login would take for an expired token.
pub fn check_new_password(password: &str) -> Result<(), ApiError> {
    let length = password.len();
    if !(MIN_PASSWORD_LENGTH..=MAX_PASSWORD_LENGTH).contains(&length) {
        return Err(ApiError::invalid(format!(
            "the password is {length} bytes long; use {MIN_PASSWORD_LENGTH} to \
             {MAX_PASSWORD_LENGTH} bytes"
        )));
    }
    if looks_like_token(password.as_bytes()) {
        return Err(ApiError::invalid(
            "the password has the shape of a session token (sslvpn-session- and 43 base64url \
             characters), which logins reject; choose another password",
        ));
    }
    Ok(())
}

impl Files {
    pub(super) fn list_users(&self, server: &str) -> Result<Reply, ApiError> {
        let (_, path) = self.users_file(server)?;
        let file = UserFile::load_or_empty(&path).map_err(users_error)?;
        let users = file.names().map(str::to_owned).collect();
        Ok(Reply::Users { users })
    }

    pub(super) fn add_user(
        &self,
        server: &str,
        name: &str,
        password: &str,
    ) -> Result<Reply, ApiError> {
        let (_, path) = self.users_file(server)?;
        users::validate_username(name).map_err(users_error)?;
        let hash = hash(password)?;
        let _lock = users::lock(&path).map_err(users_error)?;
        let mut file = UserFile::load_or_empty(&path).map_err(users_error)?;
        file.add(name, hash).map_err(users_error)?;
        file.save(&path).map_err(users_error)?;
        Ok(Reply::Done)
    }

    pub(super) fn set_password(
        &self,
        server: &str,
        name: &str,
        password: &str,
    ) -> Result<Reply, ApiError> {
        let (server, path) = self.users_file(server)?;
        let _lock = users::lock(&path).map_err(users_error)?;
        let mut file = UserFile::load(&path).map_err(users_error)?;
        if file.hash_of(name).is_none() {
            return Err(unknown_user(&server, name));
        }
        let hash = hash(password)?;
        file.set_password(name, hash).map_err(users_error)?;
        file.save(&path).map_err(users_error)?;
        Ok(Reply::Done)
    }

    pub(super) fn delete_user(&self, server: &str, name: &str) -> Result<Reply, ApiError> {
        let (server, path) = self.users_file(server)?;
        let _lock = users::lock(&path).map_err(users_error)?;
        let mut file = UserFile::load(&path).map_err(users_error)?;
        if file.hash_of(name).is_none() {
            return Err(ApiError::not_found(format!(
                "user {name:?} of SSL server {server:?} not found; list the users with \
                 `sslvpn user list --server {server}`"
            )));
        }
        file.remove(name).map_err(users_error)?;
        file.save(&path).map_err(users_error)?;
        Ok(Reply::Done)
    }

    /// Returns the server's name and the users file of its local backend.
    pub fn users_file(&self, server: &str) -> Result<(String, PathBuf), ApiError> {
        let config = self.load()?;
        let server = self.find_server(&config, server)?;
        match &server.auth {
            Some(AuthSettings {
                backend: AuthBackend::Local { users_file },
                ..
            }) => Ok((server.name.clone(), users_file.clone())),
            Some(AuthSettings {
                backend: AuthBackend::Http { url, .. },
                ..
            }) => Err(ApiError::invalid(format!(
                "SSL server {:?} checks passwords with the http backend ({url}); manage its \
                 users in that service",
                server.name
            ))),
            None => Err(ApiError::invalid(format!(
                "SSL server {:?} in {} has no [ssl_server.auth] table; add one with \
                 backend = \"local\" and users_file = \"users-{}.toml\"",
                server.name,
                self.config_path.display(),
                server.name
            ))),
        }
    }
}

/// Builds the error for a user that the users file lacks.
pub(super) fn unknown_user(server: &str, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "SSL server {server:?} has no user {name:?}; add it with `sslvpn user add` or list \
         the users with `sslvpn user list --server {server}`"
    ))
}

fn hash(password: &str) -> Result<String, ApiError> {
    check_new_password(password)?;
    hash_password(password.as_bytes())
        .map_err(|error| ApiError::internal(format!("hashing the password failed: {error}")))
}

fn users_error(error: UsersError) -> ApiError {
    let status = match &error {
        UsersError::NotFound { .. } | UsersError::UnknownUser { .. } => ErrorKind::NotFound,
        UsersError::Exists { .. } => ErrorKind::Conflict,
        UsersError::InvalidUsername { .. } => ErrorKind::Invalid,
        UsersError::Invalid { .. } | UsersError::InvalidHash { .. } => ErrorKind::Invalid,
        UsersError::Io { .. } | UsersError::Write { .. } => ErrorKind::Internal,
    };
    ApiError::new(status, error.to_string())
}
