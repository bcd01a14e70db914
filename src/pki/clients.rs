//! Issuing, listing and revoking client certificates.

use std::fs;
use std::io;

use time::OffsetDateTime;

use super::certs::{self, CaSigner, MAX_CLIENT_DAYS};
use super::files::{self, DirLock};
use super::index::{CertStatus, Index, IndexEntry, RecordState};
use super::layout::validate_cert_name;
use super::serial::Serial;
use super::{PkiError, ServerPki, create, crl, format_time};

/// Key material of a client profile: the CA, the client certificate and its private key, in PEM.
pub struct ClientCredentials {
    pub entry: IndexEntry,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

impl ServerPki {
    /// Issues a client certificate with common name `name`, valid for `days` days.
    ///
    /// Fails with [`PkiError::DuplicateName`] when a certificate of that name exists that is
    /// not revoked. Runs under the folder lock, so concurrent runs never lose an entry.
    pub fn issue_client(&self, name: &str, days: u32) -> Result<IndexEntry, PkiError> {
        validate_cert_name(name)?;
        if !(1..=MAX_CLIENT_DAYS).contains(&days) {
            return Err(PkiError::InvalidDays { days });
        }
        let _lock = DirLock::acquire(&self.dir.lock())?;
        let mut index = Index::load(&self.dir.index())?;
        let now = certs::whole_seconds(OffsetDateTime::now_utc());
        if let Some(existing) = index.unrevoked(name) {
            return Err(PkiError::DuplicateName {
                server: self.server_name.clone(),
                name: name.to_owned(),
                serial: existing.serial.clone(),
                status: existing.status_at(now),
            });
        }

        let signer = self.load_signer()?;
        let serial = self.unused_serial(&index)?;
        let issued = certs::new_client_cert(name, serial, days, &signer, now)?;
        files::create_dir_all(&self.dir.clients())?;
        create::write_pair(
            &issued,
            &self.dir.client_cert(&issued.serial),
            &self.dir.client_key(&issued.serial),
        )?;

        let entry = IndexEntry {
            name: name.to_owned(),
            serial: issued.serial,
            issued: now,
            expires: issued.not_after,
            state: RecordState::Valid,
            revoked: None,
        };
        index.push(entry.clone());
        index.save(&self.dir.index())?;
        tracing::debug!(
            server = %self.server_name,
            name,
            serial = %entry.serial,
            expires = %format_time(entry.expires),
            "issued a client certificate"
        );
        Ok(entry)
    }

    /// Returns every client certificate issued so far, in issue order.
    pub fn list_clients(&self) -> Result<Vec<IndexEntry>, PkiError> {
        Ok(Index::load(&self.dir.index())?.entries().to_vec())
    }

    /// Revokes the certificate named `name`: the CRL gets its serial, the index marks it
    /// revoked, and its private key file is removed. The certificate file stays as a record.
    ///
    /// The CRL is replaced before the index. After a crash between the two, the certificate is
    /// already rejected, and running the revocation again completes the index and removes
    /// the key.
    pub fn revoke_client(&mut self, name: &str) -> Result<IndexEntry, PkiError> {
        let _lock = DirLock::acquire(&self.dir.lock())?;
        let mut index = Index::load(&self.dir.index())?;
        let now = certs::whole_seconds(OffsetDateTime::now_utc());
        let Some(revoked) = index.revoke(name, now).cloned() else {
            return Err(self.missing_or_revoked(&index, name, true));
        };

        let signer = self.load_signer()?;
        let previous = crl::load(&self.dir.crl())?;
        let next_number = previous.number.saturating_add(1);
        let signed = signer.sign_crl(index.revoked(), next_number, now)?;
        let pem = signed
            .pem()
            .map_err(|source| PkiError::generate("the CRL", source))?;
        crl::save(&self.dir.crl(), &pem)?;
        index.save(&self.dir.index())?;

        let key_path = self.dir.client_key(&revoked.serial);
        match fs::remove_file(&key_path) {
            Ok(()) => files::sync_dir(&self.dir.clients())?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(PkiError::io("remove", &key_path, source)),
        }
        tracing::debug!(
            server = %self.server_name,
            name,
            serial = %revoked.serial,
            crl_number = next_number,
            "revoked a client certificate"
        );
        self.reload_crl_if_changed()?;
        Ok(revoked)
    }

    /// Reads the CA, certificate and key of the unrevoked, unexpired certificate named `name`,
    /// for writing a client profile.
    pub fn client_credentials(&self, name: &str) -> Result<ClientCredentials, PkiError> {
        let index = Index::load(&self.dir.index())?;
        let Some(entry) = index.unrevoked(name).cloned() else {
            return Err(self.missing_or_revoked(&index, name, false));
        };
        if entry.status_at(OffsetDateTime::now_utc()) == CertStatus::Expired {
            return Err(PkiError::Expired {
                server: self.server_name.clone(),
                name: name.to_owned(),
                expires: format_time(entry.expires),
            });
        }
        Ok(ClientCredentials {
            ca_pem: certs::read_text(&self.dir.ca_cert())?,
            cert_pem: certs::read_text(&self.dir.client_cert(&entry.serial))?,
            key_pem: certs::read_private_text(&self.dir.client_key(&entry.serial))?,
            entry,
        })
    }

    fn load_signer(&self) -> Result<CaSigner, PkiError> {
        CaSigner::load(&self.dir.ca_cert(), &self.dir.ca_key())
    }

    /// Draws a random serial that neither the index nor a leftover certificate file uses.
    fn unused_serial(&self, index: &Index) -> Result<Serial, PkiError> {
        loop {
            let serial = Serial::random()?;
            let in_use = index.contains_serial(&serial)
                || self.dir.client_cert(&serial).exists()
                || self.dir.client_key(&serial).exists();
            if !in_use {
                return Ok(serial);
            }
        }
    }

    /// Builds the error for a name without an unrevoked certificate: revoked (already revoked
    /// when deleting) if one was ever issued, not found otherwise.
    fn missing_or_revoked(&self, index: &Index, name: &str, deleting: bool) -> PkiError {
        let server = self.server_name.clone();
        let name = name.to_owned();
        match index.latest(&name) {
            Some(entry) if deleting => PkiError::AlreadyRevoked {
                server,
                name,
                serial: entry.serial.clone(),
            },
            Some(entry) => PkiError::Revoked {
                server,
                name,
                serial: entry.serial.clone(),
            },
            None => PkiError::NotFound { server, name },
        }
    }
}
