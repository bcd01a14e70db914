//! The CLI's side of the admin API: sends a [`Request`] to the daemon's unix socket as
//! HTTP/1.1 and turns the response back into a [`Reply`].

use std::io::ErrorKind as IoErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;

use super::model::{ApiError, ErrorKind, Reply, Request};

/// Time to wait for a response; longer than the 60 s the server waits for the daemon.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(75);
/// Largest response body read, in bytes; a zip profile is a few kilobytes.
const RESPONSE_LIMIT: usize = 16 * 1024 * 1024;

/// A connection to a running daemon's admin API.
pub struct Client {
    socket: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// Connects to the daemon's socket. Returns `None` when no daemon listens there, so the
    /// caller carries the request out on the files instead.
    pub fn connect(socket: &Path) -> Result<Option<Self>, ApiError> {
        match std::os::unix::net::UnixStream::connect(socket) {
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    IoErrorKind::NotFound | IoErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(connect_error(socket, &error)),
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| {
                ApiError::internal(format!("failed to start the admin API client: {error}"))
            })?;
        Ok(Some(Self {
            socket: socket.to_owned(),
            runtime,
        }))
    }

    /// Sends one request and waits for its reply.
    pub fn send(&self, request: &Request) -> Result<Reply, ApiError> {
        let route = route_for(request)?;
        let exchange = async { tokio::time::timeout(RESPONSE_TIMEOUT, self.exchange(route)).await };
        match self.runtime.block_on(exchange) {
            Ok(result) => result,
            Err(_) => Err(ApiError::new(
                ErrorKind::Unavailable,
                format!(
                    "the daemon on {} did not answer within {} s",
                    self.socket.display(),
                    RESPONSE_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    async fn exchange(&self, route: Route) -> Result<Reply, ApiError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|error| connect_error(&self.socket, &error))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| self.transport_error(&error))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "admin API client connection failed");
            }
        });

        let mut builder = hyper::Request::builder()
            .method(route.method)
            .uri(&route.path)
            .header(header::HOST, "localhost");
        if route.body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let body = Full::new(Bytes::from(route.body.unwrap_or_default()));
        let request = builder
            .body(body)
            .map_err(|error| ApiError::internal(format!("failed to build the request: {error}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| self.transport_error(&error))?;
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, RESPONSE_LIMIT)
            .collect()
            .await
            .map_err(|error| {
                ApiError::internal(format!("failed to read the daemon's response: {error}"))
            })?
            .to_bytes();
        parse_response(parts.status, &parts.headers, &bytes)
    }

    fn transport_error(&self, error: &hyper::Error) -> ApiError {
        ApiError::new(
            ErrorKind::Unavailable,
            format!("the admin API on {} failed: {error}", self.socket.display()),
        )
    }
}

fn connect_error(socket: &Path, error: &std::io::Error) -> ApiError {
    if error.kind() == IoErrorKind::PermissionDenied {
        return ApiError::new(
            ErrorKind::Unauthorized,
            format!(
                "permission denied on the admin socket {}; run the command as root or as the \
                 socket's owner",
                socket.display()
            ),
        );
    }
    ApiError::new(
        ErrorKind::Unavailable,
        format!(
            "failed to connect to the admin socket {}: {error}",
            socket.display()
        ),
    )
}

/// The HTTP form of one request.
struct Route {
    method: Method,
    /// Path and query, percent-encoded.
    path: String,
    body: Option<Vec<u8>>,
}

fn route_for(request: &Request) -> Result<Route, ApiError> {
    let server_path = |server: &str| format!("/v1/servers/{}", encode(server));
    let (method, path, body) = match request {
        Request::ListServers => (Method::GET, "/v1/servers".to_owned(), None),
        Request::ShowServer { server } => (Method::GET, server_path(server), None),
        Request::CreateServer { server, fields } => {
            let mut body = match serde_json::to_value(fields) {
                Ok(serde_json::Value::Object(body)) => body,
                _ => serde_json::Map::new(),
            };
            body.insert("name".to_owned(), server.clone().into());
            (Method::POST, "/v1/servers".to_owned(), Some(body.into()))
        }
        Request::ModifyServer { server, fields } => {
            let body = serde_json::to_value(fields).map_err(encode_error)?;
            (Method::PATCH, server_path(server), Some(body))
        }
        Request::DeleteServer { server } => (Method::DELETE, server_path(server), None),
        Request::ListCerts { server } => {
            (Method::GET, format!("{}/certs", server_path(server)), None)
        }
        Request::CreateCert { server, name, days } => {
            let mut body = serde_json::json!({ "name": name });
            if let Some(days) = days {
                body["days"] = (*days).into();
            }
            (
                Method::POST,
                format!("{}/certs", server_path(server)),
                Some(body),
            )
        }
        Request::ExportCert {
            server,
            name,
            format,
        } => {
            let format = match format {
                super::ProfileFormat::Ovpn => "ovpn",
                super::ProfileFormat::Zip => "zip",
            };
            let path = format!(
                "{}/certs/{}/profile?format={format}",
                server_path(server),
                encode(name)
            );
            (Method::GET, path, None)
        }
        Request::DeleteCert { server, name } => {
            let path = format!("{}/certs/{}", server_path(server), encode(name));
            (Method::DELETE, path, None)
        }
        Request::ListUsers { server } => {
            (Method::GET, format!("{}/users", server_path(server)), None)
        }
        Request::AddUser {
            server,
            name,
            password,
        } => {
            let body = serde_json::json!({ "name": name, "password": password });
            (
                Method::POST,
                format!("{}/users", server_path(server)),
                Some(body),
            )
        }
        Request::SetPassword {
            server,
            name,
            password,
        } => {
            let path = format!("{}/users/{}/password", server_path(server), encode(name));
            let body = serde_json::json!({ "password": password });
            (Method::PUT, path, Some(body))
        }
        Request::DeleteUser { server, name } => {
            let path = format!("{}/users/{}", server_path(server), encode(name));
            (Method::DELETE, path, None)
        }
        Request::ListSessions { server: None } => (Method::GET, "/v1/sessions".to_owned(), None),
        Request::ListSessions {
            server: Some(server),
        } => {
            let path = format!("/v1/sessions?server={}", encode(server));
            (Method::GET, path, None)
        }
        Request::KillSession { id } => (Method::DELETE, format!("/v1/sessions/{id}"), None),
        Request::Metrics => (Method::GET, "/metrics".to_owned(), None),
    };
    let body = match body {
        Some(value) => Some(serde_json::to_vec(&value).map_err(encode_error)?),
        None => None,
    };
    Ok(Route { method, path, body })
}

fn encode_error(error: serde_json::Error) -> ApiError {
    ApiError::internal(format!("failed to encode the request: {error}"))
}

/// Percent-encodes one path segment or query value, keeping only RFC 3986's unreserved
/// characters.
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Turns an HTTP response into the reply or error it carries.
fn parse_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Result<Reply, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();

    if !status.is_success() {
        if media_type == "application/json"
            && let Ok(error) = serde_json::from_slice::<ApiError>(body)
        {
            return Err(error);
        }
        let text = String::from_utf8_lossy(body);
        let text: String = text.trim().chars().take(200).collect();
        return Err(ApiError::new(
            kind_for_status(status),
            format!("the admin API returned HTTP {status}: {text}"),
        ));
    }

    if body.is_empty() {
        return Ok(Reply::Done);
    }
    match media_type.as_str() {
        "application/json" => serde_json::from_slice(body).map_err(|error| {
            ApiError::internal(format!("the daemon's reply is not valid JSON: {error}"))
        }),
        "text/plain" => Ok(Reply::Metrics {
            text: String::from_utf8_lossy(body).into_owned(),
        }),
        "application/x-openvpn-profile" | "application/zip" => Ok(Reply::Profile {
            file_name: attachment_name(headers).unwrap_or_else(|| "profile".to_owned()),
            bytes: body.to_vec(),
        }),
        other => Err(ApiError::internal(format!(
            "the daemon replied with unexpected content type `{other}`"
        ))),
    }
}

/// Extracts the `filename` parameter of a `Content-Disposition: attachment` header.
fn attachment_name(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    value.split(';').find_map(|parameter| {
        let (key, name) = parameter.trim().split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("filename") {
            return None;
        }
        Some(name.trim().trim_matches('"').to_owned())
    })
}

fn kind_for_status(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        400..=499 => ErrorKind::Invalid,
        503 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_unreserved_characters() {
        assert_eq!(encode("office-1.a_b~"), "office-1.a_b~");
    }

    #[test]
    fn encode_escapes_reserved_characters() {
        assert_eq!(encode("a b/c?é"), "a%20b%2Fc%3F%C3%A9");
    }

    #[test]
    fn plain_error_body_keeps_status() {
        let headers = HeaderMap::new();
        let error = parse_response(StatusCode::BAD_GATEWAY, &headers, b"upstream down")
            .expect_err("a 502 is an error");
        assert_eq!(error.status, ErrorKind::Internal);
        assert!(error.message.contains("502"), "{}", error.message);
        assert!(error.message.contains("upstream down"), "{}", error.message);
    }

    #[test]
    fn plain_404_maps_to_not_found() {
        let headers = HeaderMap::new();
        let error =
            parse_response(StatusCode::NOT_FOUND, &headers, b"").expect_err("a 404 is an error");
        assert_eq!(error.status, ErrorKind::NotFound);
    }

    #[test]
    fn permission_denied_names_the_fix() {
        let denied = std::io::Error::from(IoErrorKind::PermissionDenied);
        let error = connect_error(Path::new("/run/sslvpn/admin.sock"), &denied);
        assert_eq!(error.status, ErrorKind::Unauthorized);
        assert!(
            error.message.contains("/run/sslvpn/admin.sock"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("run the command as root"),
            "{}",
            error.message
        );
    }

    #[test]
    fn attachment_name_reads_quoted_file_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_DISPOSITION,
            header::HeaderValue::from_static("attachment; filename=\"alice.ovpn\""),
        );
        assert_eq!(attachment_name(&headers).as_deref(), Some("alice.ovpn"));
    }
}
