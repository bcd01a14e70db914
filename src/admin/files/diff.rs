//! Effects of a change of an SSL server's settings on its clients, and the PKI work the
//! change needs.

use std::path::Path;

use crate::admin::model::{ApiError, ChangeReport};
use crate::config::{Config, SslServer};
use crate::pki::{self, PkiError, RecordState, ServerDir, ServerPki};

use super::pki_error;

/// Effects of a change of one server that a running daemon must apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerDiff {
    /// Fields whose value changed, as the config file names them.
    pub changed_fields: Vec<&'static str>,
    /// `protocol`, `compression` or `two_factor` changed, so the profiles of every client no
    /// longer match and their certificates are revoked.
    pub revoke_certs: bool,
    /// `tls_crypt` changed, so the profiles of every client no longer match, but their
    /// certificates stay valid and a new export of each profile is enough.
    pub reexport_profiles: bool,
    /// Established sessions end, because their tunnel settings or their listener changed.
    pub drop_sessions: bool,
    /// `port` or `protocol` changed, so the listener moves.
    pub move_listener: bool,
}

impl ServerDiff {
    pub fn is_empty(&self) -> bool {
        self.changed_fields.is_empty()
    }
}

/// Compares two versions of one server.
pub fn diff(old: &SslServer, new: &SslServer) -> ServerDiff {
    let mut changed = Vec::new();
    let fields: [(&'static str, bool); 10] = [
        ("local_networks", old.local_networks != new.local_networks),
        ("client_cidr", old.client_cidr != new.client_cidr),
        ("protocol", old.protocol != new.protocol),
        ("port", old.port != new.port),
        ("cipher", old.cipher != new.cipher),
        ("compression", old.compression != new.compression),
        ("two_factor", old.two_factor != new.two_factor),
        ("tls_crypt", old.tls_crypt != new.tls_crypt),
        ("topology", old.topology != new.topology),
        ("auth", old.auth != new.auth),
    ];
    for (field, differs) in fields {
        if differs {
            changed.push(field);
        }
    }
    let has = |field: &str| changed.contains(&field);
    let revoke_certs = has("protocol") || has("compression") || has("two_factor");
    let reexport_profiles = has("tls_crypt");
    let move_listener = has("port") || has("protocol");
    let drop_sessions = revoke_certs
        || reexport_profiles
        || move_listener
        || has("local_networks")
        || has("client_cidr")
        || has("topology");
    ServerDiff {
        changed_fields: changed,
        revoke_certs,
        reexport_profiles,
        drop_sessions,
        move_listener,
    }
}

/// Carries out the PKI side of going from `old` to `new`, for a config file edited by hand.
/// It revokes every client certificate of a server whose `protocol`, `compression` or
/// `two_factor` changed. It creates the CA of each new server and deletes the PKI folder of
/// each removed one. Returns one report per server that changed.
pub fn apply_pki_effects(old: &Config, new: &Config) -> Result<Vec<ChangeReport>, ApiError> {
    let mut reports = Vec::new();
    for server in &new.ssl_servers {
        match old.server(&server.name) {
            None => {
                ServerPki::open_or_create(&new.gateway.pki_dir, &server.name).map_err(pki_error)?;
                reports.push(created_report(server, None));
            }
            Some(previous) => {
                let change = diff(previous, server);
                if change.is_empty() {
                    continue;
                }
                let revoked = if change.revoke_certs {
                    revoke_all(&new.gateway.pki_dir, &server.name)?
                } else {
                    Vec::new()
                };
                // Only the daemon calls this, on SIGHUP, and applies the change at once.
                reports.push(modified_report(&server.name, &change, revoked, None, true));
            }
        }
    }
    for server in &old.ssl_servers {
        if new.server(&server.name).is_none() {
            delete_pki(&old.gateway.pki_dir, &server.name)?;
            reports.push(deleted_report(&server.name));
        }
    }
    Ok(reports)
}

/// Revokes every unrevoked client certificate of a server and returns their names. A server
/// without a PKI folder has none.
pub(super) fn revoke_all(pki_dir: &Path, server: &str) -> Result<Vec<String>, ApiError> {
    let mut pki = match ServerPki::open(pki_dir, server) {
        Ok(pki) => pki,
        Err(PkiError::NotCreated { .. }) => return Ok(Vec::new()),
        Err(error) => return Err(pki_error(error)),
    };
    let names: Vec<String> = pki
        .list_clients()
        .map_err(pki_error)?
        .into_iter()
        .filter(|entry| entry.state == RecordState::Valid)
        .map(|entry| entry.name)
        .collect();
    for name in &names {
        pki.revoke_client(name).map_err(pki_error)?;
    }
    Ok(names)
}

/// Deletes a server's PKI folder: its CA, server certificate and client certificates.
pub(super) fn delete_pki(pki_dir: &Path, server: &str) -> Result<(), ApiError> {
    let dir = ServerDir::new(pki_dir, server).map_err(pki_error)?;
    match std::fs::remove_dir_all(dir.root()) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(ApiError::internal(format!(
                "deleting the PKI folder {} failed: {error}",
                dir.root().display()
            )));
        }
    }
    if let Some(parent) = dir.root().parent() {
        pki::sync_dir(parent).map_err(pki_error)?;
    }
    Ok(())
}

/// Builds the report of a created server. `auth_note` is appended to the message.
pub(super) fn created_report(server: &SslServer, auth_note: Option<&str>) -> ChangeReport {
    let mut message = format!(
        "created SSL server {:?} on {}/{} with a new CA; issue client certificates with \
         `sslvpn cert create --server {}`",
        server.name, server.protocol, server.port, server.name
    );
    if let Some(note) = auth_note {
        message.push_str("; ");
        message.push_str(note);
    }
    ChangeReport {
        server: server.name.clone(),
        action: "created".to_owned(),
        message,
        ..ChangeReport::default()
    }
}

/// Builds the report of a modified server. `auth_note` is appended to the message.
/// `daemon_applies` is true when a running daemon applies the change now. Without one, the
/// message names no effects on sessions, because there are none.
pub(super) fn modified_report(
    server: &str,
    change: &ServerDiff,
    revoked: Vec<String>,
    auth_note: Option<&str>,
    daemon_applies: bool,
) -> ChangeReport {
    let mut message = format!(
        "modified SSL server {server:?}: changed {}",
        change.changed_fields.join(", ")
    );
    if change.revoke_certs && revoked.is_empty() {
        message.push_str("; the server had no client certificates to revoke");
    } else if change.revoke_certs {
        message.push_str(&format!(
            "; revoked {} client certificate(s), so their users need new profiles \
             (`sslvpn cert create` and `sslvpn cert export`)",
            revoked.len()
        ));
    } else if change.reexport_profiles {
        message.push_str(
            "; client certificates stay valid, but users need new profiles because tls_crypt \
             changed (`sslvpn cert export`)",
        );
    } else if change.move_listener {
        message.push_str(
            "; client certificates stay valid, but users need new profiles because the port \
             changed (`sslvpn cert export`)",
        );
    }
    if !daemon_applies {
        message.push_str("; the change is saved and takes effect when `sslvpn serve` starts");
    } else if change.move_listener {
        message.push_str("; the listener moved and the server's sessions are dropped");
    } else if change.drop_sessions {
        message.push_str("; the server's sessions are dropped and clients reconnect");
    } else {
        message.push_str("; the change applies to new sessions");
    }
    if let Some(note) = auth_note {
        message.push_str("; ");
        message.push_str(note);
    }
    ChangeReport {
        server: server.to_owned(),
        action: "modified".to_owned(),
        changed_fields: change
            .changed_fields
            .iter()
            .map(|field| (*field).to_owned())
            .collect(),
        revoked_certificates: revoked,
        sessions_dropped: change.drop_sessions,
        listener_moved: change.move_listener,
        profiles_outdated: change.revoke_certs || change.reexport_profiles || change.move_listener,
        message,
    }
}

pub(super) fn unchanged_report(server: &str) -> ChangeReport {
    ChangeReport {
        server: server.to_owned(),
        action: "unchanged".to_owned(),
        message: format!("SSL server {server:?} already has these settings; nothing was changed"),
        ..ChangeReport::default()
    }
}

pub(super) fn deleted_report(server: &str) -> ChangeReport {
    ChangeReport {
        server: server.to_owned(),
        action: "deleted".to_owned(),
        sessions_dropped: true,
        listener_moved: true,
        message: format!(
            "deleted SSL server {server:?} with its CA and client certificates; its users file \
             was kept"
        ),
        ..ChangeReport::default()
    }
}
