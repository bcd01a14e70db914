//! The accept loops and the layers around the routes: connection limit, timeouts, body limit,
//! bearer token and request logging.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::listen::BearerToken;
use super::routes::{error_response, error_with_status};
use crate::admin::model::{ApiError, ErrorKind};

/// Largest request body accepted, in bytes.
pub(super) const BODY_LIMIT: usize = 64 * 1024;
/// Time a client gets to send the request headers, and then again the body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on one connection: receiving the request, the daemon's 60 s and the reply.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(90);
/// Pause after a failed accept, e.g. when the process is out of file descriptors.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

pub(super) enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

impl Listener {
    async fn accept(&self) -> std::io::Result<Box<dyn Stream>> {
        match self {
            Self::Unix(listener) => {
                let (stream, _) = listener.accept().await?;
                Ok(Box::new(stream))
            }
            Self::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                Ok(Box::new(stream))
            }
        }
    }
}

/// Wraps the routes for the unix socket, whose file mode is the access control.
pub(super) fn unix_router(routes: Router) -> Router {
    routes
        .layer(middleware::from_fn(read_body))
        .layer(middleware::from_fn(log_request))
}

/// Wraps the routes for the TCP listener, where every request needs the bearer token.
pub(super) fn tcp_router(routes: Router, token: BearerToken) -> Router {
    routes
        .layer(middleware::from_fn(read_body))
        .layer(middleware::from_fn_with_state(
            Arc::new(token),
            require_token,
        ))
        .layer(middleware::from_fn(log_request))
}

/// Accepts connections until `stop`'s sender is dropped, then drops the open connections.
pub(super) async fn accept_loop(
    listener: Listener,
    router: Router,
    limit: Arc<Semaphore>,
    mut stop: watch::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "admin API failed to accept a connection");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT)
                .keep_alive(false);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%error, "admin API connection failed"),
                Err(_) => tracing::debug!("admin API connection timed out"),
            }
        });
    }
}

/// Logs method, path and status; never the query, headers or body.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "admin API request");
    response
}

/// Buffers the body, rejecting one over [`BODY_LIMIT`] with 413 and one that does not
/// arrive within [`REQUEST_TIMEOUT`] with 408.
async fn read_body(request: Request, next: Next) -> Response {
    let too_large = || {
        error_with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::invalid(format!("the request body exceeds {BODY_LIMIT} bytes")),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT as u64) {
        return too_large();
    }

    let (parts, body) = request.into_parts();
    let collect = Limited::new(body, BODY_LIMIT).collect();
    let bytes = match tokio::time::timeout(REQUEST_TIMEOUT, collect).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return too_large();
        }
        Ok(Err(_)) => {
            return error_response(ApiError::invalid("failed to read the request body"));
        }
        Err(_) => {
            return error_with_status(
                StatusCode::REQUEST_TIMEOUT,
                ApiError::invalid(format!(
                    "the request body did not arrive within {} s",
                    REQUEST_TIMEOUT.as_secs()
                )),
            );
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Requires `Authorization: Bearer <token>` with the token from `admin_token_file`.
async fn require_token(
    State(token): State<Arc<BearerToken>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credentials)| credentials.trim());
    let message = match presented {
        Some(credentials) if token.matches(credentials.as_bytes()) => {
            return next.run(request).await;
        }
        Some(_) => "invalid bearer token",
        None => "missing `Authorization: Bearer <token>` header; use the token in admin_token_file",
    };
    let error = ApiError::new(ErrorKind::Unauthorized, message);
    let mut response = error_response(error);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response.into_response()
}
