//! Administration of a gateway while it runs: the API's requests and replies, the edits of
//! the config file and the PKI they cause, the HTTP API and its client.
//!
//! The daemon is the only writer while it runs: the CLI sends it a [`Request`] over the
//! API. When no daemon listens on the socket, the CLI carries the request out on the files itself, under
//! the same lock and with the same rules.

pub mod client;
pub mod files;
pub mod http;
pub mod model;

pub use model::{
    ApiError, CertView, ChangeReport, ErrorKind, ProfileFormat, Reply, Request, ServerFields,
    ServerView, SessionView,
};
