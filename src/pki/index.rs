//! The index of a server's client certificates (`index.json`).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::PkiError;
use super::files::{self, PUBLIC_MODE};
use super::serial::Serial;

/// Version of the index file format this code reads and writes.
const FORMAT: u32 = 1;

/// Every client certificate a server's CA has issued, in issue order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    entries: Vec<IndexEntry>,
}

/// One issued client certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The certificate's common name.
    pub name: String,
    pub serial: Serial,
    #[serde(with = "time::serde::rfc3339")]
    pub issued: OffsetDateTime,
    /// The certificate's notAfter.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    pub state: RecordState,
    /// When the certificate was revoked; present exactly when `state` is `Revoked`.
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub revoked: Option<OffsetDateTime>,
}

/// Revocation state of a certificate as the index records it. Expiry is not recorded because it
/// follows from the date, see [`IndexEntry::status_at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    Valid,
    Revoked,
}

/// The status shown to an admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    Valid,
    Expired,
    Revoked,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexFile {
    format: u32,
    certificates: Vec<IndexEntry>,
}

impl Index {
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let bytes = files::read(path)?;
        let file: IndexFile =
            serde_json::from_slice(&bytes).map_err(|error| PkiError::Corrupt {
                path: path.to_owned(),
                reason: error.to_string(),
            })?;
        if file.format != FORMAT {
            return Err(PkiError::Corrupt {
                path: path.to_owned(),
                reason: format!(
                    "format {} is not supported; this build reads format {FORMAT}",
                    file.format
                ),
            });
        }
        Ok(Self {
            entries: file.certificates,
        })
    }

    /// Writes the index atomically, replacing the previous file.
    pub fn save(&self, path: &Path) -> Result<(), PkiError> {
        write_index(path, &self.entries)
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Finds the certificate named `name` that is not revoked. At most one exists because
    /// issuing rejects a second one.
    pub fn unrevoked(&self, name: &str) -> Option<&IndexEntry> {
        self.entries
            .iter()
            .find(|entry| entry.name == name && entry.state == RecordState::Valid)
    }

    /// Finds the most recently issued certificate named `name`, revoked or not.
    pub fn latest(&self, name: &str) -> Option<&IndexEntry> {
        self.entries.iter().rev().find(|entry| entry.name == name)
    }

    pub fn contains_serial(&self, serial: &Serial) -> bool {
        self.entries.iter().any(|entry| &entry.serial == serial)
    }

    pub fn revoked(&self) -> impl Iterator<Item = &IndexEntry> {
        self.entries
            .iter()
            .filter(|entry| entry.state == RecordState::Revoked)
    }

    pub fn push(&mut self, entry: IndexEntry) {
        self.entries.push(entry);
    }

    /// Marks the unrevoked certificate named `name` as revoked at `at` and returns it.
    pub fn revoke(&mut self, name: &str, at: OffsetDateTime) -> Option<&IndexEntry> {
        let entry = self
            .entries
            .iter_mut()
            .find(|entry| entry.name == name && entry.state == RecordState::Valid)?;
        entry.state = RecordState::Revoked;
        entry.revoked = Some(at);
        Some(entry)
    }
}

/// Writes an empty index, for a PKI being created.
pub fn write_empty(path: &Path) -> Result<(), PkiError> {
    write_index(path, &[])
}

fn write_index(path: &Path, entries: &[IndexEntry]) -> Result<(), PkiError> {
    let file = IndexFile {
        format: FORMAT,
        certificates: entries.to_vec(),
    };
    let mut text = serde_json::to_vec_pretty(&file).map_err(|error| PkiError::Corrupt {
        path: path.to_owned(),
        reason: error.to_string(),
    })?;
    text.push(b'\n');
    files::write_atomic(path, &text, PUBLIC_MODE)
}

impl IndexEntry {
    pub fn status_at(&self, now: OffsetDateTime) -> CertStatus {
        match self.state {
            RecordState::Revoked => CertStatus::Revoked,
            RecordState::Valid if self.expires <= now => CertStatus::Expired,
            RecordState::Valid => CertStatus::Valid,
        }
    }
}

impl CertStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

impl fmt::Display for CertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;

    fn entry(name: &str, serial: u8, now: OffsetDateTime) -> IndexEntry {
        IndexEntry {
            name: name.to_owned(),
            serial: Serial::from_bytes(&[0x40, serial]),
            issued: now,
            expires: now + Duration::days(30),
            state: RecordState::Valid,
            revoked: None,
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000).expect("valid timestamp")
    }

    #[test]
    fn save_load_round_trip() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("index.json");
        let mut index = Index::default();
        index.push(entry("alice", 1, now()));
        index.push(entry("bob", 2, now()));
        index.revoke("bob", now() + Duration::hours(1));
        index.save(&path).expect("save");

        let loaded = Index::load(&path).expect("load");
        assert_eq!(loaded, index);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("\"serial\": \"4002\""), "{text}");
        assert!(
            text.contains("\"revoked\": \"2025-06-15T16:06:40Z\""),
            "{text}"
        );
    }

    #[test]
    fn revoke_frees_name() {
        let mut index = Index::default();
        index.push(entry("alice", 1, now()));
        assert!(index.unrevoked("alice").is_some());
        let revoked = index.revoke("alice", now()).expect("revoked");
        assert_eq!(revoked.state, RecordState::Revoked);
        assert!(index.unrevoked("alice").is_none());
        assert!(index.revoke("alice", now()).is_none());
        assert_eq!(index.revoked().count(), 1);
    }

    #[test]
    fn status_follows_date() {
        let item = entry("alice", 1, now());
        assert_eq!(item.status_at(now()), CertStatus::Valid);
        assert_eq!(
            item.status_at(now() + Duration::days(31)),
            CertStatus::Expired
        );
    }

    #[test]
    fn unknown_format_rejected() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("index.json");
        std::fs::write(&path, br#"{"format": 2, "certificates": []}"#).expect("write");
        let result = Index::load(&path);
        assert!(
            matches!(result, Err(PkiError::Corrupt { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn truncated_index_rejected() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("index.json");
        std::fs::write(&path, br#"{"format": 1, "certif"#).expect("write");
        assert!(Index::load(&path).is_err());
    }
}
