//! The routes: each one builds a [`Request`], hands it to the daemon and turns the reply into
//! an HTTP response.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use super::Call;
use crate::admin::model::{ApiError, ErrorKind, ProfileFormat, Reply, Request, ServerFields};

/// Time the daemon gets to reply to one request, because creating a certificate can take
/// seconds.
const DAEMON_REPLY_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) const PROFILE_CONTENT_TYPE: &str = "application/x-openvpn-profile";
pub(super) const ZIP_CONTENT_TYPE: &str = "application/zip";
pub(super) const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

pub(super) fn router(calls: mpsc::Sender<Call>) -> Router {
    Router::new()
        .route("/v1/servers", get(list_servers).post(create_server))
        .route(
            "/v1/servers/{name}",
            get(show_server).patch(modify_server).delete(delete_server),
        )
        .route(
            "/v1/servers/{name}/certs",
            get(list_certs).post(create_cert),
        )
        .route("/v1/servers/{name}/certs/{cert}", delete(delete_cert))
        .route("/v1/servers/{name}/certs/{cert}/profile", get(export_cert))
        .route("/v1/servers/{name}/users", get(list_users).post(add_user))
        .route("/v1/servers/{name}/users/{user}", delete(delete_user))
        .route(
            "/v1/servers/{name}/users/{user}/password",
            put(set_password),
        )
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{id}", delete(kill_session))
        .route("/metrics", get(metrics))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(calls)
}

type Calls = State<mpsc::Sender<Call>>;

async fn list_servers(State(calls): Calls) -> Response {
    answer(&calls, Request::ListServers, StatusCode::OK).await
}

async fn show_server(State(calls): Calls, PathParams(server): PathParams<String>) -> Response {
    answer(&calls, Request::ShowServer { server }, StatusCode::OK).await
}

async fn create_server(
    State(calls): Calls,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Response {
    let (server, fields) = match split_server_body(body) {
        Ok(parts) => parts,
        Err(error) => return error_response(error),
    };
    let request = Request::CreateServer { server, fields };
    answer(&calls, request, StatusCode::CREATED).await
}

async fn modify_server(
    State(calls): Calls,
    PathParams(server): PathParams<String>,
    JsonBody(fields): JsonBody<ServerFields>,
) -> Response {
    let request = Request::ModifyServer { server, fields };
    answer(&calls, request, StatusCode::OK).await
}

async fn delete_server(State(calls): Calls, PathParams(server): PathParams<String>) -> Response {
    answer(&calls, Request::DeleteServer { server }, StatusCode::OK).await
}

async fn list_certs(State(calls): Calls, PathParams(server): PathParams<String>) -> Response {
    answer(&calls, Request::ListCerts { server }, StatusCode::OK).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCert {
    name: String,
    #[serde(default)]
    days: Option<u32>,
}

async fn create_cert(
    State(calls): Calls,
    PathParams(server): PathParams<String>,
    JsonBody(body): JsonBody<NewCert>,
) -> Response {
    let request = Request::CreateCert {
        server,
        name: body.name,
        days: body.days,
    };
    answer(&calls, request, StatusCode::CREATED).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileQuery {
    #[serde(default)]
    format: ProfileFormat,
}

async fn export_cert(
    State(calls): Calls,
    PathParams((server, name)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<ProfileQuery>,
) -> Response {
    let request = Request::ExportCert {
        server,
        name,
        format: query.format,
    };
    answer(&calls, request, StatusCode::OK).await
}

async fn delete_cert(
    State(calls): Calls,
    PathParams((server, name)): PathParams<(String, String)>,
) -> Response {
    answer(&calls, Request::DeleteCert { server, name }, StatusCode::OK).await
}

async fn list_users(State(calls): Calls, PathParams(server): PathParams<String>) -> Response {
    answer(&calls, Request::ListUsers { server }, StatusCode::OK).await
}

/// A body with a password; it has no `Debug` so that it cannot reach a log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
}

async fn add_user(
    State(calls): Calls,
    PathParams(server): PathParams<String>,
    JsonBody(body): JsonBody<NewUser>,
) -> Response {
    let request = Request::AddUser {
        server,
        name: body.name,
        password: body.password,
    };
    answer(&calls, request, StatusCode::CREATED).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

async fn set_password(
    State(calls): Calls,
    PathParams((server, name)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<NewPassword>,
) -> Response {
    let request = Request::SetPassword {
        server,
        name,
        password: body.password,
    };
    answer(&calls, request, StatusCode::OK).await
}

async fn delete_user(
    State(calls): Calls,
    PathParams((server, name)): PathParams<(String, String)>,
) -> Response {
    answer(&calls, Request::DeleteUser { server, name }, StatusCode::OK).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsQuery {
    #[serde(default)]
    server: Option<String>,
}

async fn list_sessions(
    State(calls): Calls,
    QueryParams(query): QueryParams<SessionsQuery>,
) -> Response {
    let request = Request::ListSessions {
        server: query.server,
    };
    answer(&calls, request, StatusCode::OK).await
}

async fn kill_session(State(calls): Calls, PathParams(id): PathParams<u64>) -> Response {
    answer(&calls, Request::KillSession { id }, StatusCode::OK).await
}

async fn metrics(State(calls): Calls) -> Response {
    answer(&calls, Request::Metrics, StatusCode::OK).await
}

async fn unknown_route() -> Response {
    error_response(ApiError::not_found(
        "no such route; the admin API serves /v1/servers, /v1/sessions and /metrics",
    ))
}

async fn method_not_allowed() -> Response {
    error_with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        ApiError::invalid("this route does not accept that method"),
    )
}

/// Splits a create body, `{"name": ..., <ServerFields>}`, into the name and the fields.
fn split_server_body(body: serde_json::Value) -> Result<(String, ServerFields), ApiError> {
    let serde_json::Value::Object(mut object) = body else {
        return Err(ApiError::invalid("the body must be a JSON object"));
    };
    let name = match object.remove("name") {
        Some(serde_json::Value::String(name)) => name,
        Some(_) => return Err(ApiError::invalid("field `name` must be a string")),
        None => return Err(ApiError::invalid("missing field `name`")),
    };
    let fields = serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|error| ApiError::invalid(format!("invalid JSON body: {error}")))?;
    Ok((name, fields))
}

/// Sends `request` to the daemon and renders its reply, with `success` as the status of a
/// JSON reply.
async fn answer(calls: &mpsc::Sender<Call>, request: Request, success: StatusCode) -> Response {
    match ask_daemon(calls, request).await {
        Ok(reply) => render_reply(reply, success),
        Err(error) => error_response(error),
    }
}

async fn ask_daemon(calls: &mpsc::Sender<Call>, request: Request) -> Result<Reply, ApiError> {
    let unavailable = |message: &str| ApiError::new(ErrorKind::Unavailable, message);
    let (reply, answer) = oneshot::channel();
    let exchange = async {
        if calls.send(Call { request, reply }).await.is_err() {
            return Err(unavailable(
                "the daemon no longer takes admin requests; it may be stopping",
            ));
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(unavailable(
                "the daemon dropped the request without an answer",
            )),
        }
    };
    match tokio::time::timeout(DAEMON_REPLY_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(unavailable(
            "the daemon did not answer within 60 s; check its log and try again",
        )),
    }
}

fn render_reply(reply: Reply, success: StatusCode) -> Response {
    match reply {
        Reply::Done if success == StatusCode::CREATED => StatusCode::CREATED.into_response(),
        Reply::Done => StatusCode::NO_CONTENT.into_response(),
        Reply::Profile { file_name, bytes } => {
            let content_type = if file_name.ends_with(".zip") {
                ZIP_CONTENT_TYPE
            } else {
                PROFILE_CONTENT_TYPE
            };
            let disposition = format!("attachment; filename=\"{}\"", quote_file_name(&file_name));
            let headers = [
                (header::CONTENT_TYPE, content_type.to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ];
            (StatusCode::OK, headers, bytes).into_response()
        }
        Reply::Metrics { text } => {
            let headers = [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)];
            (StatusCode::OK, headers, text).into_response()
        }
        reply => json_response(success, &reply),
    }
}

/// Replaces the characters that cannot stand in a quoted `filename` parameter.
fn quote_file_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' | '\\' | '/' => '_',
            c if c.is_control() || !c.is_ascii() => '_',
            c => c,
        })
        .collect()
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => {
            tracing::warn!(%error, "failed to serialize an admin API reply");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub(super) fn error_response(error: ApiError) -> Response {
    let status = StatusCode::from_u16(error.status.http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_with_status(status, error)
}

pub(super) fn error_with_status(status: StatusCode, error: ApiError) -> Response {
    json_response(status, &error)
}

/// Axum's `Path` with a JSON [`ApiError`] as its rejection.
struct PathParams<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(error_response(ApiError::invalid(format!(
                "invalid path: {}",
                rejection.body_text()
            )))),
        }
    }
}

/// Axum's `Query` with a JSON [`ApiError`] as its rejection.
struct QueryParams<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(error_response(ApiError::invalid(rejection.body_text()))),
        }
    }
}

/// A JSON body; a syntax error or an unknown field becomes a JSON [`ApiError`] that names it.
/// The body has no content-type check, so a `curl -d` without a header works too.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| error_response(ApiError::invalid(rejection.body_text())))?;
        serde_json::from_slice(&bytes).map(Self).map_err(|error| {
            error_response(ApiError::invalid(format!("invalid JSON body: {error}")))
        })
    }
}

/// Returns the operation's name as the model's `op` tag spells it, which is safe to log.
pub(super) fn operation_name(request: &Request) -> &'static str {
    match request {
        Request::ListServers => "list_servers",
        Request::ShowServer { .. } => "show_server",
        Request::CreateServer { .. } => "create_server",
        Request::ModifyServer { .. } => "modify_server",
        Request::DeleteServer { .. } => "delete_server",
        Request::ListCerts { .. } => "list_certs",
        Request::CreateCert { .. } => "create_cert",
        Request::ExportCert { .. } => "export_cert",
        Request::DeleteCert { .. } => "delete_cert",
        Request::ListUsers { .. } => "list_users",
        Request::AddUser { .. } => "add_user",
        Request::SetPassword { .. } => "set_password",
        Request::DeleteUser { .. } => "delete_user",
        Request::ListSessions { .. } => "list_sessions",
        Request::KillSession { .. } => "kill_session",
        Request::Metrics => "metrics",
    }
}
