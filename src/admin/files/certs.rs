//! Client certificates: what `sslvpn cert list/create/export/delete` do.

use time::OffsetDateTime;

use crate::admin::model::{ApiError, CertView, ProfileFormat, Reply};
use crate::pki::{self, DEFAULT_CLIENT_DAYS, IndexEntry, PkiError, ProfileSettings, ServerPki};

use super::{Files, pki_error};

impl Files {
    /// Lists the certificates of one server; a server whose PKI is not created yet has none.
    pub(super) fn list_certs(&self, server: &str) -> Result<Reply, ApiError> {
        let config = self.load()?;
        let server = self.find_server(&config, server)?;
        let pki = match ServerPki::open(&config.gateway.pki_dir, &server.name) {
            Ok(pki) => pki,
            Err(PkiError::NotCreated { .. }) => return Ok(Reply::Certs { certs: Vec::new() }),
            Err(error) => return Err(pki_error(error)),
        };
        let now = OffsetDateTime::now_utc();
        let certs = pki
            .list_clients()
            .map_err(pki_error)?
            .iter()
            .map(|entry| cert_view(entry, now))
            .collect();
        Ok(Reply::Certs { certs })
    }

    /// Issues a client certificate, creating the server's CA on first use.
    pub(super) fn create_cert(
        &self,
        server: &str,
        name: &str,
        days: Option<u32>,
    ) -> Result<Reply, ApiError> {
        let config = self.load()?;
        let server = self.find_server(&config, server)?;
        let pki =
            ServerPki::open_or_create(&config.gateway.pki_dir, &server.name).map_err(pki_error)?;
        let entry = pki
            .issue_client(name, days.unwrap_or(DEFAULT_CLIENT_DAYS))
            .map_err(pki_error)?;
        Ok(Reply::Cert {
            cert: cert_view(&entry, OffsetDateTime::now_utc()),
        })
    }

    /// Builds a client profile with the CA, the certificate and its private key.
    pub(super) fn export_cert(
        &self,
        server: &str,
        name: &str,
        format: ProfileFormat,
    ) -> Result<Reply, ApiError> {
        let config = self.load()?;
        let server = self.find_server(&config, server)?;
        let pki = ServerPki::open(&config.gateway.pki_dir, &server.name).map_err(pki_error)?;
        let credentials = pki.client_credentials(name).map_err(pki_error)?;
        let tls_crypt_key = if server.tls_crypt {
            Some(pki.tls_crypt_key().map_err(pki_error)?)
        } else {
            None
        };
        let settings = ProfileSettings::new(&config.gateway, server, tls_crypt_key);
        let (file_name, bytes) = match format {
            ProfileFormat::Ovpn => (
                format!("{name}.ovpn"),
                settings.inline_profile(&credentials).into_bytes(),
            ),
            ProfileFormat::Zip => (
                format!("{name}.zip"),
                settings.zip_bundle(&credentials).map_err(pki_error)?,
            ),
        };
        Ok(Reply::Profile { file_name, bytes })
    }

    /// Revokes a client certificate, rewrites the CRL and removes the private key.
    pub(super) fn delete_cert(&self, server: &str, name: &str) -> Result<Reply, ApiError> {
        let config = self.load()?;
        let server = self.find_server(&config, server)?;
        let mut pki = ServerPki::open(&config.gateway.pki_dir, &server.name).map_err(pki_error)?;
        let entry = pki.revoke_client(name).map_err(pki_error)?;
        Ok(Reply::Cert {
            cert: cert_view(&entry, OffsetDateTime::now_utc()),
        })
    }
}

fn cert_view(entry: &IndexEntry, now: OffsetDateTime) -> CertView {
    CertView {
        name: entry.name.clone(),
        serial: entry.serial.to_string(),
        issued: pki::format_time(entry.issued),
        expires: pki::format_time(entry.expires),
        status: entry.status_at(now).to_string(),
    }
}
