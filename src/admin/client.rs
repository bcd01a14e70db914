//! The CLI's side of the admin API: sends a [`Request`] to the daemon's unix socket.

use std::path::Path;

use super::model::{ApiError, Reply, Request};

/// A connection to a running daemon's admin API.
pub struct Client {
    _private: (),
}

impl Client {
    /// Connects to the daemon's socket. Returns `None` when no daemon listens there, so the
    /// caller carries the request out on the files instead.
    pub fn connect(socket: &Path) -> Result<Option<Self>, ApiError> {
        // TODO: speak HTTP over the socket.
        let _ = socket;
        Ok(None)
    }

    /// Sends one request and waits for its reply.
    pub fn send(&self, request: &Request) -> Result<Reply, ApiError> {
        let _ = request;
        Err(ApiError::internal("the admin API client is not built yet"))
    }
}
