// Temporary stand-in, replaced by the real module.
use super::model::*;
use crate::config::Gateway;
pub struct Call {
    pub request: Request,
    pub reply: tokio::sync::oneshot::Sender<Result<Reply, ApiError>>,
}
pub struct ApiServer;
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct ApiStartError;
impl ApiServer {
    pub async fn start(
        _gateway: &Gateway,
        _calls: tokio::sync::mpsc::Sender<Call>,
    ) -> Result<Self, ApiStartError> {
        Ok(Self)
    }
    pub async fn shutdown(self) {}
}
