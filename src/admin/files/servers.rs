//! Create, modify and delete of SSL servers: an edit of the config file, checked with the
//! file's rules before anything is written, plus the PKI work the change needs.

use crate::admin::model::{ApiError, ErrorKind, Reply, ServerFields};
use crate::pki::{ServerDir, ServerPki};

use super::diff::{self, created_report, deleted_report, modified_report, unchanged_report};
use super::document::{self, Document};
use super::{Files, Outcome, pki_error};

impl Files {
    /// Appends a server; missing fields take the config file's defaults. With `two_factor`
    /// on, it also gets an `[ssl_server.auth]` table with the local backend, as a modify that
    /// turns `two_factor` on does. Creates its CA after the new config passed every rule and
    /// before the config file is written.
    pub(super) fn create_server(
        &self,
        name: &str,
        fields: &ServerFields,
    ) -> Result<Outcome, ApiError> {
        let current = self.load()?;
        if current.server(name).is_some() {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!(
                    "{} already has an SSL server named {name:?}; change it with \
                     `sslvpn server modify` or choose another name",
                    self.config_path.display()
                ),
            ));
        }
        let users_file = default_users_file(name);
        let add_auth = fields.two_factor == Some(true);
        let mut doc = Document::read(&self.config_path)?;
        doc.append_server(name, fields, add_auth.then_some(users_file.as_str()))?;
        let text = doc.render();
        let action = format!("creating SSL server {name:?}");
        let config = document::validate(&text, &self.config_path)
            .map_err(|error| document::rejected(error, &action))?;
        let server = self.find_server(&config, name)?;

        let pki_dir = &config.gateway.pki_dir;
        let pki_root = ServerDir::new(pki_dir, name).map_err(pki_error)?;
        let pki_existed = pki_root.root().exists();
        ServerPki::open_or_create(pki_dir, name).map_err(pki_error)?;
        if let Err(error) = document::write(&self.config_path, &text) {
            if !pki_existed {
                // Leaves no CA behind for a server that the config file does not have.
                let _ = std::fs::remove_dir_all(pki_root.root());
            }
            return Err(error);
        }
        let note = add_auth.then(|| added_auth_note(name, &users_file));
        let change = created_report(server, note.as_deref());
        Ok(Outcome {
            reply: Reply::Changed { change },
            config: Some(config),
        })
    }

    /// Changes the fields present in `fields`. The new config is checked first, then client
    /// certificates are revoked when the change needs it, then the config file is written. So
    /// a failed revocation leaves the config file as it was.
    pub(super) fn modify_server(
        &self,
        name: &str,
        fields: &ServerFields,
    ) -> Result<Outcome, ApiError> {
        let current = self.load()?;
        let old = self.find_server(&current, name)?;
        let users_file = default_users_file(name);
        let add_auth = fields.two_factor == Some(true) && !old.two_factor && old.auth.is_none();

        let mut doc = Document::read(&self.config_path)?;
        doc.modify_server(name, fields, add_auth.then_some(users_file.as_str()))?;
        let text = doc.render();
        let action = format!("modifying SSL server {name:?}");
        let config = document::validate(&text, &self.config_path)
            .map_err(|error| document::rejected(error, &action))?;
        let new = self.find_server(&config, name)?;

        let change = diff::diff(old, new);
        if change.is_empty() {
            return Ok(Outcome::reply(Reply::Changed {
                change: unchanged_report(name),
            }));
        }
        let revoked = if change.revoke_certs {
            diff::revoke_all(&config.gateway.pki_dir, name)?
        } else {
            Vec::new()
        };
        document::write(&self.config_path, &text)?;
        let note = add_auth.then(|| added_auth_note(name, &users_file));
        let change = modified_report(name, &change, revoked, note.as_deref(), self.daemon_applies);
        Ok(Outcome {
            reply: Reply::Changed { change },
            config: Some(config),
        })
    }

    /// Removes a server from the config file, then deletes its PKI folder. Its users file
    /// stays.
    pub(super) fn delete_server(&self, name: &str) -> Result<Outcome, ApiError> {
        let current = self.load()?;
        self.find_server(&current, name)?;
        let mut doc = Document::read(&self.config_path)?;
        doc.remove_server(name)?;
        let text = doc.render();
        let action = format!("deleting SSL server {name:?}");
        let config = document::validate(&text, &self.config_path)
            .map_err(|error| document::rejected(error, &action))?;
        document::write(&self.config_path, &text)?;
        diff::delete_pki(&current.gateway.pki_dir, name)?;
        Ok(Outcome {
            reply: Reply::Changed {
                change: deleted_report(name),
            },
            config: Some(config),
        })
    }
}

/// Returns the users file that an `[ssl_server.auth]` table added for server `name` names,
/// relative to the config file's folder.
fn default_users_file(name: &str) -> String {
    format!("users-{name}.toml")
}

/// Describes the `[ssl_server.auth]` table added for server `name` and the next step.
fn added_auth_note(name: &str, users_file: &str) -> String {
    format!(
        "added [ssl_server.auth] with the local backend and users_file = {users_file:?}; add \
         users with `sslvpn user add --server {name}`"
    )
}
