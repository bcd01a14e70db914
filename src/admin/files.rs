// Temporary stand-in, replaced by the real module.
use super::model::*;
use crate::config::{Config, SslServer};
use std::path::Path;
pub struct ConfigLock;
impl ConfigLock {
    pub fn acquire(_config_path: &Path) -> Result<Self, ApiError> {
        Ok(Self)
    }
    pub fn try_acquire(_config_path: &Path) -> Result<Option<Self>, ApiError> {
        Ok(Some(Self))
    }
}
pub struct Files;
impl Files {
    pub fn new(_config_path: &Path) -> Self {
        Self
    }
    pub fn execute(&self, _lock: &ConfigLock, _request: &Request) -> Result<Outcome, ApiError> {
        todo!()
    }
}
pub struct Outcome {
    pub reply: Reply,
    pub config: Option<Config>,
}
pub struct ServerDiff {
    pub changed_fields: Vec<&'static str>,
    pub revoke_certs: bool,
    pub drop_sessions: bool,
    pub move_listener: bool,
}
pub fn diff(_old: &SslServer, _new: &SslServer) -> ServerDiff {
    todo!()
}
pub fn apply_pki_effects(_old: &Config, _new: &Config) -> Result<Vec<ChangeReport>, ApiError> {
    todo!()
}
