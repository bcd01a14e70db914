//! The `[ssl_server.auth]` table: how a two-factor SSL server checks usernames and passwords.
//!
//! Types and ranges are checked while the table is read. The keys each backend needs, and
//! whether the table has any effect, are checked later by [`check`] with the other rules.

use std::path::PathBuf;

use serde::Serialize;
use toml::Table;

use crate::auth::http::HttpUrl;

use super::Violation;
use super::parse::{Fields, ServerDraft, missing, report_unknown_keys};

pub const DEFAULT_TIMEOUT_MS: u32 = 3000;
pub const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<i64> = 100..=30_000;
pub const DEFAULT_MAX_FAILURES: u32 = 5;
pub const MAX_FAILURES_RANGE: std::ops::RangeInclusive<i64> = 1..=100;
pub const DEFAULT_LOCKOUT_SECONDS: u32 = 300;
pub const LOCKOUT_SECONDS_RANGE: std::ops::RangeInclusive<i64> = 1..=86_400;

const AUTH_KEYS: &[&str] = &[
    "backend",
    "users_file",
    "url",
    "timeout_ms",
    "username_must_match_cn",
    "max_failures",
    "lockout_seconds",
];

/// The validated `[ssl_server.auth]` table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuthSettings {
    pub backend: AuthBackend,
    /// Reject a client whose username differs from its certificate's common name.
    pub username_must_match_cn: bool,
    /// Failed logins per client address and per username within `lockout_seconds` before
    /// further attempts are rejected unchecked.
    pub max_failures: u32,
    pub lockout_seconds: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum AuthBackend {
    /// A users file of argon2id hashes; a relative path is resolved from the configuration
    /// file's folder when it is loaded.
    Local { users_file: PathBuf },
    /// A service that gets one JSON POST per login.
    Http { url: HttpUrl, timeout_ms: u32 },
}

impl AuthBackend {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Local { .. } => "local",
            Self::Http { .. } => "http",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BackendName {
    Local,
    Http,
}

impl BackendName {
    const NAMES: &'static [&'static str] = &["local", "http"];

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "local" => Some(Self::Local),
            "http" => Some(Self::Http),
            _ => None,
        }
    }
}

/// A key of the table: absent, present but invalid (already reported), or valid.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) enum Setting<T> {
    #[default]
    Absent,
    Invalid,
    Set(T),
}

impl<T> Setting<T> {
    fn is_present(&self) -> bool {
        !matches!(self, Self::Absent)
    }

    fn or_default(self, default: T) -> Option<T> {
        match self {
            Self::Absent => Some(default),
            Self::Invalid => None,
            Self::Set(value) => Some(value),
        }
    }
}

/// The `[ssl_server.auth]` table with each key as read.
#[derive(Debug, Default)]
pub(super) struct AuthDraft {
    pub backend: Setting<BackendName>,
    pub users_file: Setting<PathBuf>,
    pub url: Setting<HttpUrl>,
    pub timeout_ms: Setting<u32>,
    pub username_must_match_cn: Setting<bool>,
    pub max_failures: Setting<u32>,
    pub lockout_seconds: Setting<u32>,
}

/// Reads the auth table of the server at `place`. Its violations name the field as
/// `auth.<key>`.
pub(super) fn auth_draft(table: &Table, place: &str, violations: &mut Vec<Violation>) -> AuthDraft {
    let first_new = violations.len();
    report_unknown_keys(place, table, AUTH_KEYS, violations);
    let mut fields = Fields {
        place,
        table,
        violations,
    };
    let draft = AuthDraft {
        backend: read_backend(&mut fields),
        users_file: read_users_file(&mut fields),
        url: read_url(&mut fields),
        timeout_ms: read_integer(&mut fields, "timeout_ms", TIMEOUT_MS_RANGE, "milliseconds"),
        username_must_match_cn: read_bool(&mut fields, "username_must_match_cn"),
        max_failures: read_integer(&mut fields, "max_failures", MAX_FAILURES_RANGE, "failures"),
        lockout_seconds: read_integer(
            &mut fields,
            "lockout_seconds",
            LOCKOUT_SECONDS_RANGE,
            "seconds",
        ),
    };
    for violation in &mut violations[first_new..] {
        violation.field = format!("auth.{}", violation.field);
    }
    draft
}

fn read_backend(fields: &mut Fields<'_>) -> Setting<BackendName> {
    match fields.optional_string("backend") {
        Ok(None) => Setting::Absent,
        Ok(Some(text)) => match BackendName::from_name(&text) {
            Some(name) => Setting::Set(name),
            None => {
                let quoted: Vec<String> = BackendName::NAMES
                    .iter()
                    .map(|name| format!("\"{name}\""))
                    .collect();
                let message = format!("unsupported; use one of {}", quoted.join(", "));
                fields.invalid("backend", &format!("{text:?}"), &message);
                Setting::Invalid
            }
        },
        Err(()) => Setting::Invalid,
    }
}

fn read_users_file(fields: &mut Fields<'_>) -> Setting<PathBuf> {
    const FIELD: &str = "users_file";
    let text = match fields.optional_string(FIELD) {
        Ok(None) => return Setting::Absent,
        Ok(Some(text)) => text,
        Err(()) => return Setting::Invalid,
    };
    let problem = if text.is_empty() {
        Some("must not be empty; use e.g. \"users-office.toml\"")
    } else if text.ends_with('/') || text == "." || text == ".." {
        Some("names a folder; give the path of a file, e.g. \"users-office.toml\"")
    } else if text.contains('\0') {
        Some("contains a NUL character; remove it")
    } else {
        None
    };
    match problem {
        Some(problem) => {
            fields.invalid(FIELD, &format!("{text:?}"), problem);
            Setting::Invalid
        }
        None => Setting::Set(PathBuf::from(text)),
    }
}

fn read_url(fields: &mut Fields<'_>) -> Setting<HttpUrl> {
    const FIELD: &str = "url";
    let text = match fields.optional_string(FIELD) {
        Ok(None) => return Setting::Absent,
        Ok(Some(text)) => text,
        Err(()) => return Setting::Invalid,
    };
    match HttpUrl::parse(&text) {
        Ok(url) => Setting::Set(url),
        Err(error) => {
            fields.invalid(FIELD, &format!("{text:?}"), &error.to_string());
            Setting::Invalid
        }
    }
}

fn read_integer(
    fields: &mut Fields<'_>,
    field: &str,
    range: std::ops::RangeInclusive<i64>,
    unit: &str,
) -> Setting<u32> {
    match fields.optional_integer(field) {
        Ok(None) => Setting::Absent,
        Ok(Some(value)) if range.contains(&value) => match u32::try_from(value) {
            Ok(value) => Setting::Set(value),
            Err(_) => Setting::Invalid,
        },
        Ok(Some(value)) => {
            let message = format!("must be {} to {} {unit}", range.start(), range.end());
            fields.invalid(field, &value.to_string(), &message);
            Setting::Invalid
        }
        Err(()) => Setting::Invalid,
    }
}

fn read_bool(fields: &mut Fields<'_>, field: &str) -> Setting<bool> {
    if fields.table.get(field).is_none() {
        return Setting::Absent;
    }
    match fields.optional_bool(field) {
        Some(flag) => Setting::Set(flag),
        None => Setting::Invalid,
    }
}

/// Checks which keys the chosen backend needs and whether the table has an effect.
pub(super) fn check(
    server: &ServerDraft,
    violations: &mut Vec<Violation>,
    warnings: &mut Vec<Violation>,
) {
    let place = server.place.as_str();
    let two_factor = server.two_factor == Some(true);
    let Some(auth) = &server.auth else {
        if two_factor {
            violations.push(missing(
                place,
                "auth",
                "two_factor = true needs an [ssl_server.auth] table after the server's keys, \
                 with backend = \"local\" and users_file, or backend = \"http\" and url",
            ));
        }
        return;
    };
    if server.two_factor == Some(false) {
        warnings.push(Violation {
            place: place.to_owned(),
            field: "auth".to_owned(),
            value: String::new(),
            message: "has no effect because two_factor = false; set two_factor = true to \
                      require usernames and passwords"
                .to_owned(),
        });
    }
    let backend = match auth.backend {
        Setting::Set(backend) => backend,
        Setting::Invalid => return,
        Setting::Absent => {
            violations.push(missing(
                place,
                "auth.backend",
                "set backend = \"local\" (a users file) or backend = \"http\" (a verification \
                 service)",
            ));
            return;
        }
    };
    let unused = |field: &str, used_by: &str| Violation {
        place: place.to_owned(),
        field: format!("auth.{field}"),
        value: String::new(),
        message: format!("is only used with backend = \"{used_by}\"; remove it"),
    };
    match backend {
        BackendName::Local => {
            if !auth.users_file.is_present() {
                violations.push(missing(
                    place,
                    "auth.users_file",
                    "backend = \"local\" needs the users file that `sslvpn user add` \
                     writes, e.g. users_file = \"users-office.toml\"",
                ));
            }
            if auth.url.is_present() {
                violations.push(unused("url", "http"));
            }
            if auth.timeout_ms.is_present() {
                violations.push(unused("timeout_ms", "http"));
            }
        }
        BackendName::Http => {
            if !auth.url.is_present() {
                violations.push(missing(
                    place,
                    "auth.url",
                    "backend = \"http\" needs the verification URL, \
                     e.g. url = \"http://127.0.0.1:9180/verify\"",
                ));
            }
            if auth.users_file.is_present() {
                violations.push(unused("users_file", "local"));
            }
        }
    }
}

impl AuthDraft {
    /// Returns the draft for an `auth` key that is not a table.
    pub(super) fn invalid() -> Self {
        Self {
            backend: Setting::Invalid,
            ..Self::default()
        }
    }

    /// Builds the settings; only called once no violation was recorded.
    pub(super) fn build(self) -> Option<AuthSettings> {
        let backend = match self.backend {
            Setting::Set(BackendName::Local) => AuthBackend::Local {
                users_file: match self.users_file {
                    Setting::Set(path) => path,
                    _ => return None,
                },
            },
            Setting::Set(BackendName::Http) => AuthBackend::Http {
                url: match self.url {
                    Setting::Set(url) => url,
                    _ => return None,
                },
                timeout_ms: self.timeout_ms.or_default(DEFAULT_TIMEOUT_MS)?,
            },
            _ => return None,
        };
        Some(AuthSettings {
            backend,
            username_must_match_cn: self.username_must_match_cn.or_default(false)?,
            max_failures: self.max_failures.or_default(DEFAULT_MAX_FAILURES)?,
            lockout_seconds: self.lockout_seconds.or_default(DEFAULT_LOCKOUT_SECONDS)?,
        })
    }
}

#[cfg(test)]
mod tests;
