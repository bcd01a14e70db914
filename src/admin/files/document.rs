//! Edits of the config file's `[[ssl_server]]` tables that keep the admin's comments and
//! layout, and the check and atomic write of the result.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use toml_edit::{Array, DocumentMut, Item, Table, Value};

use crate::admin::model::{ApiError, ErrorKind, ServerFields};
use crate::config::{Config, ConfigError};
use crate::pki;

/// The config file as written, ready for edits.
pub(super) struct Document {
    doc: DocumentMut,
}

impl Document {
    pub fn read(path: &Path) -> Result<Self, ApiError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ApiError::internal(format!(
                "reading configuration file {} failed: {error}",
                path.display()
            ))
        })?;
        let doc = text.parse::<DocumentMut>().map_err(|error| {
            ApiError::invalid(format!("{} is not valid TOML: {error}", path.display()))
        })?;
        Ok(Self { doc })
    }

    pub fn render(&self) -> String {
        self.doc.to_string()
    }

    /// Appends a `[[ssl_server]]` table with `name` and the fields present in `fields`. When
    /// `auth_users_file` is given, adds an `auth` sub-table with the local backend.
    pub fn append_server(
        &mut self,
        name: &str,
        fields: &ServerFields,
        auth_users_file: Option<&str>,
    ) -> Result<(), ApiError> {
        let mut table = Table::new();
        table.insert("name", Item::Value(Value::from(name)));
        apply_fields(&mut table, fields);
        if let Some(users_file) = auth_users_file {
            insert_local_auth(&mut table, users_file);
        }
        let root = self.doc.as_table_mut();
        match root.get_mut("ssl_server") {
            None => {
                let mut servers = toml_edit::ArrayOfTables::new();
                servers.push(table);
                root.insert("ssl_server", Item::ArrayOfTables(servers));
            }
            Some(Item::ArrayOfTables(servers)) => servers.push(table),
            Some(_) => return Err(not_tables()),
        }
        Ok(())
    }

    /// Sets the fields present in `fields` on the table of server `name`. When `auth_users_file`
    /// is given and the table has no `auth` sub-table, adds one with the local backend.
    pub fn modify_server(
        &mut self,
        name: &str,
        fields: &ServerFields,
        auth_users_file: Option<&str>,
    ) -> Result<(), ApiError> {
        let table = self.server_table(name)?;
        apply_fields(table, fields);
        if let Some(users_file) = auth_users_file
            && !table.contains_key("auth")
        {
            insert_local_auth(table, users_file);
        }
        Ok(())
    }

    /// Removes the table of server `name`, with the comments written above it.
    pub fn remove_server(&mut self, name: &str) -> Result<(), ApiError> {
        let servers = self.servers_mut()?;
        let index = servers
            .iter()
            .position(|table| table_name(table) == Some(name))
            .ok_or_else(|| missing_table(name))?;
        servers.remove(index);
        Ok(())
    }

    fn server_table(&mut self, name: &str) -> Result<&mut Table, ApiError> {
        self.servers_mut()?
            .iter_mut()
            .find(|table| table_name(table) == Some(name))
            .ok_or_else(|| missing_table(name))
    }

    fn servers_mut(&mut self) -> Result<&mut toml_edit::ArrayOfTables, ApiError> {
        match self.doc.as_table_mut().get_mut("ssl_server") {
            Some(Item::ArrayOfTables(servers)) => Ok(servers),
            _ => Err(not_tables()),
        }
    }
}

/// Adds the `auth` sub-table of a server with the local backend and `users_file`.
fn insert_local_auth(table: &mut Table, users_file: &str) {
    let mut auth = Table::new();
    auth.insert("backend", Item::Value(Value::from("local")));
    auth.insert("users_file", Item::Value(Value::from(users_file)));
    table.insert("auth", Item::Table(auth));
}

fn table_name(table: &Table) -> Option<&str> {
    table.get("name").and_then(Item::as_str)
}

fn missing_table(name: &str) -> ApiError {
    ApiError::internal(format!(
        "the config file has no [[ssl_server]] table with name = {name:?}"
    ))
}

fn not_tables() -> ApiError {
    ApiError::invalid(
        "ssl_server in the config file is not written as [[ssl_server]] tables; rewrite it \
         that way so the admin API can edit it",
    )
}

/// Writes each field present in `fields` into `table`, keeping the comment after a value it
/// replaces.
fn apply_fields(table: &mut Table, fields: &ServerFields) {
    if let Some(networks) = &fields.local_networks {
        let array: Array = networks.iter().map(String::as_str).collect();
        set_value(table, "local_networks", Value::Array(array));
    }
    if let Some(cidr) = &fields.client_cidr {
        set_value(table, "client_cidr", Value::from(cidr.as_str()));
    }
    if let Some(protocol) = &fields.protocol {
        set_value(table, "protocol", Value::from(protocol.as_str()));
    }
    if let Some(port) = fields.port {
        set_value(table, "port", Value::from(i64::from(port)));
    }
    if let Some(cipher) = &fields.cipher {
        set_value(table, "cipher", Value::from(cipher.as_str()));
    }
    if let Some(compression) = fields.compression {
        set_value(table, "compression", Value::from(compression));
    }
    if let Some(two_factor) = fields.two_factor {
        set_value(table, "two_factor", Value::from(two_factor));
    }
    if let Some(tls_crypt) = fields.tls_crypt {
        set_value(table, "tls_crypt", Value::from(tls_crypt));
    }
    if let Some(topology) = &fields.topology {
        set_value(table, "topology", Value::from(topology.as_str()));
    }
}

fn set_value(table: &mut Table, key: &str, mut value: Value) {
    if let Some(Item::Value(old)) = table.get(key) {
        *value.decor_mut() = old.decor().clone();
    }
    table.insert(key, Item::Value(value));
}

/// Parses and checks `text` with the config file's rules, resolving relative paths against
/// the folder of `path` as [`Config::load`] does.
pub(super) fn validate(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut loaded = Config::from_toml(text).map_err(|error| error.with_path(path))?;
    loaded
        .config
        .resolve_paths(path.parent().unwrap_or(Path::new(".")));
    Ok(loaded.config)
}

/// Maps a failed check of an edited config to an error stating that nothing was changed.
pub(super) fn rejected(error: ConfigError, action: &str) -> ApiError {
    match error {
        ConfigError::Invalid { violations, .. } => ApiError {
            status: ErrorKind::Invalid,
            message: format!(
                "{action} breaks {} rule(s) of the config file; nothing was changed",
                violations.len()
            ),
            violations: violations.iter().map(ToString::to_string).collect(),
        },
        other => ApiError::invalid(format!("{action} is invalid: {other}; nothing was changed")),
    }
}

/// Replaces the config file atomically (temporary file, fsync, rename), keeping its mode.
pub(super) fn write(path: &Path, text: &str) -> Result<(), ApiError> {
    let mode = std::fs::metadata(path)
        .map(|metadata| metadata.permissions().mode() & 0o7777)
        .map_err(|error| {
            ApiError::internal(format!(
                "reading the mode of {} failed: {error}",
                path.display()
            ))
        })?;
    pki::write_atomic(path, text.as_bytes(), mode)
        .map_err(|error| ApiError::internal(error.to_string()))
}
