//! The requests and replies of the admin API. The CLI builds a [`Request`]. The daemon carries it
//! out when it runs, reached through the HTTP API, and the CLI carries it out on the files
//! when the daemon does not run.

use serde::{Deserialize, Serialize};

use crate::config::SslServer;

/// One admin operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    ListServers,
    ShowServer {
        server: String,
    },
    CreateServer {
        server: String,
        fields: ServerFields,
    },
    ModifyServer {
        server: String,
        fields: ServerFields,
    },
    DeleteServer {
        server: String,
    },
    ListCerts {
        server: String,
    },
    CreateCert {
        server: String,
        name: String,
        days: Option<u32>,
    },
    ExportCert {
        server: String,
        name: String,
        format: ProfileFormat,
    },
    DeleteCert {
        server: String,
        name: String,
    },
    ListUsers {
        server: String,
    },
    AddUser {
        server: String,
        name: String,
        password: String,
    },
    SetPassword {
        server: String,
        name: String,
        password: String,
    },
    DeleteUser {
        server: String,
        name: String,
    },
    /// Sessions of one server, or of every server.
    ListSessions {
        server: Option<String>,
    },
    KillSession {
        id: u64,
    },
    Metrics,
}

/// Fields of an SSL server as the config file spells them. In a create request a missing
/// field takes its default; in a modify request it stays as it is. Values are checked by the
/// config file's rules, so a bad one gets the same message as in the file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_networks: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub two_factor: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_crypt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileFormat {
    /// One `.ovpn` file with the certificates inline.
    #[default]
    Ovpn,
    /// A zip of the `.ovpn` file and the certificate files.
    Zip,
}

/// The reply to a successful request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Servers {
        servers: Vec<ServerView>,
    },
    Server {
        server: ServerView,
    },
    Changed {
        change: ChangeReport,
    },
    Certs {
        certs: Vec<CertView>,
    },
    Cert {
        cert: CertView,
    },
    Profile {
        file_name: String,
        bytes: Vec<u8>,
    },
    Users {
        users: Vec<String>,
    },
    Sessions {
        sessions: Vec<SessionView>,
    },
    /// Prometheus text exposition format.
    Metrics {
        text: String,
    },
    Done,
}

/// An SSL server as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    pub name: String,
    pub local_networks: Vec<String>,
    pub client_cidr: String,
    pub protocol: String,
    pub port: u16,
    pub cipher: String,
    pub compression: bool,
    pub two_factor: bool,
    /// Older daemons omit the field; their servers never use tls-crypt.
    #[serde(default)]
    pub tls_crypt: bool,
    pub topology: String,
    /// `local` or `http` when `two_factor` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_backend: Option<String>,
    /// Connected clients, present when the running daemon replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<usize>,
    /// Whether the server's task runs, present when the daemon replies. A server whose
    /// start failed, when the daemon started or after a change, is in the config file but
    /// does not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<bool>,
    /// Seconds until the daemon tries again to start a server that does not run, present
    /// when the daemon replies and such a retry is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_seconds: Option<u64>,
}

impl From<&SslServer> for ServerView {
    fn from(server: &SslServer) -> Self {
        Self {
            name: server.name.clone(),
            local_networks: server
                .local_networks
                .iter()
                .map(|n| n.to_string())
                .collect(),
            client_cidr: server.client_cidr.to_string(),
            protocol: server.protocol.name().to_owned(),
            port: server.port,
            cipher: server.cipher.name().to_owned(),
            compression: server.compression,
            two_factor: server.two_factor,
            tls_crypt: server.tls_crypt,
            topology: server.topology.name().to_owned(),
            auth_backend: match (&server.auth, server.two_factor) {
                (Some(auth), true) => Some(auth.backend.name().to_owned()),
                _ => None,
            },
            sessions: None,
            running: None,
            retry_in_seconds: None,
        }
    }
}

/// The outcome of a create, modify or delete.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeReport {
    pub server: String,
    /// `created`, `modified`, `deleted` or `unchanged`.
    pub action: String,
    /// Fields whose value changed, as the config file names them.
    pub changed_fields: Vec<String>,
    /// Client certificates revoked by the change; their users need new profiles.
    pub revoked_certificates: Vec<String>,
    /// The server's sessions were (or, with the daemon stopped, would have been) dropped.
    pub sessions_dropped: bool,
    /// The listener moved to a new port or protocol.
    pub listener_moved: bool,
    /// Profiles exported before the change no longer connect, so users need new ones.
    /// Older daemons omit the field.
    #[serde(default)]
    pub profiles_outdated: bool,
    /// One sentence for the admin saying what happened and what users must do.
    pub message: String,
}

/// A client certificate as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertView {
    pub name: String,
    /// Hexadecimal serial number.
    pub serial: String,
    /// RFC 3339 times.
    pub issued: String,
    pub expires: String,
    /// `valid`, `expired` or `revoked`.
    pub status: String,
}

/// A connected client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// Identifies the session for `KillSession`; unique while the daemon runs.
    pub id: u64,
    pub server: String,
    pub common_name: String,
    /// The two-factor username, when the server requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Address and port the client connects from.
    pub real_address: String,
    /// Tunnel address assigned from `client_cidr`.
    pub virtual_address: String,
    /// Tunnel payload bytes received from and sent to the client.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// RFC 3339 time of the session's start.
    pub connected_since: String,
    /// Data-channel cipher, e.g. `AES-256-GCM`.
    pub cipher: String,
}

/// A failed request: the status the HTTP API returns, a message that names the value and the
/// fix, and the broken config rules when a change failed validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 400: a value is invalid.
    Invalid,
    /// 401: the bearer token is missing or wrong.
    Unauthorized,
    /// 404: no such server, certificate, user or session.
    NotFound,
    /// 409: the name is taken, or the files are locked by another writer.
    Conflict,
    /// 503: the request needs the running daemon.
    Unavailable,
    /// 500: the server failed, e.g. writing a file.
    Internal,
}

impl ErrorKind {
    pub fn http_status(self) -> u16 {
        match self {
            Self::Invalid => 400,
            Self::Unauthorized => 401,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

impl ApiError {
    pub fn new(status: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            violations: Vec::new(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}
