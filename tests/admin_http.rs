//! The admin API's HTTP server and client over a temporary socket, with a fake daemon that
//! records each request and replies from a table.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sslvpn::admin::client::Client;
use sslvpn::admin::http::{ApiServer, ApiStartError, Call};
use sslvpn::admin::{
    ApiError, ChangeReport, ErrorKind, ProfileFormat, Reply, Request, ServerFields,
};
use sslvpn::config::{Config, Gateway};
use tokio::sync::mpsc;

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";

type Answer = fn(&Request) -> Result<Reply, ApiError>;

fn answer_done(_: &Request) -> Result<Reply, ApiError> {
    Ok(Reply::Done)
}

/// A running ApiServer with a fake daemon task.
struct Harness {
    runtime: tokio::runtime::Runtime,
    server: Option<ApiServer>,
    requests: Arc<Mutex<Vec<Request>>>,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn start(answer: Answer) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let socket = dir.path().join("run").join("admin.sock");
        let gateway = gateway(&socket, None);
        Self::start_with(dir, socket, &gateway, answer)
    }

    fn start_with(
        dir: tempfile::TempDir,
        socket: PathBuf,
        gateway: &Gateway,
        answer: Answer,
    ) -> Self {
        match Self::try_start(dir, socket, gateway, answer) {
            Ok(harness) => harness,
            Err(error) => panic!("the admin API failed to start: {error}"),
        }
    }

    fn try_start(
        dir: tempfile::TempDir,
        socket: PathBuf,
        gateway: &Gateway,
        answer: Answer,
    ) -> Result<Self, ApiStartError> {
        let runtime = runtime();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (calls, mut received) = mpsc::channel::<Call>(8);
        let recorded = requests.clone();
        runtime.spawn(async move {
            while let Some(call) = received.recv().await {
                let reply = answer(&call.request);
                recorded.lock().expect("request log").push(call.request);
                let _ = call.reply.send(reply);
            }
        });
        let server = runtime.block_on(ApiServer::start(gateway, calls))?;
        Ok(Self {
            runtime,
            server: Some(server),
            requests,
            socket,
            _dir: dir,
        })
    }

    fn client(&self) -> Client {
        Client::connect(&self.socket)
            .expect("connect succeeds")
            .expect("a daemon listens")
    }

    fn last_request(&self) -> Option<Request> {
        self.requests.lock().expect("request log").last().cloned()
    }

    fn tcp_address(&self) -> SocketAddr {
        let server = self.server.as_ref().expect("server runs");
        server.tcp_address().expect("TCP listener bound")
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn gateway(socket: &Path, tcp: Option<(SocketAddr, &Path)>) -> Gateway {
    let mut text = format!(
        "[gateway]\npublic_address = \"vpn.example.com\"\nadmin_socket = \"{}\"\n",
        socket.display()
    );
    if let Some((address, token_file)) = tcp {
        text.push_str(&format!(
            "admin_address = \"{address}\"\nadmin_token_file = \"{}\"\n",
            token_file.display()
        ));
    }
    match Config::from_toml(&text) {
        Ok(loaded) => loaded.config.gateway,
        Err(error) => panic!("test config is invalid: {error}"),
    }
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}

fn write_token(dir: &Path, token: &str, mode: u32) -> PathBuf {
    let path = dir.join("admin.token");
    std::fs::write(&path, format!("{token}\n")).expect("write token");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod token");
    path
}

/// A response read from a raw HTTP/1.1 exchange.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn error(&self) -> ApiError {
        match serde_json::from_slice(&self.body) {
            Ok(error) => error,
            Err(error) => panic!(
                "body is not an ApiError ({error}): {}",
                String::from_utf8_lossy(&self.body)
            ),
        }
    }
}

fn exchange(
    mut stream: impl Read + Write,
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> RawResponse {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    // The server may send 413 and close before the whole body is written.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_raw(&raw)
}

fn parse_raw(raw: &[u8]) -> RawResponse {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn unix_exchange(socket: &Path, method: &str, path: &str, body: &[u8]) -> RawResponse {
    let stream = UnixStream::connect(socket).expect("connect to the socket");
    exchange(stream, method, path, "", body)
}

fn tcp_exchange(address: SocketAddr, path: &str, authorization: Option<&str>) -> RawResponse {
    let stream = TcpStream::connect(address).expect("connect to the TCP listener");
    let extra = match authorization {
        Some(value) => format!("Authorization: {value}\r\n"),
        None => String::new(),
    };
    exchange(stream, "GET", path, &extra, b"")
}

fn every_request() -> Vec<Request> {
    let server = || "office".to_owned();
    vec![
        Request::ListServers,
        Request::ShowServer { server: server() },
        Request::CreateServer {
            server: server(),
            fields: ServerFields {
                port: Some(1195),
                protocol: Some("udp".to_owned()),
                local_networks: Some(vec!["192.168.1.0/24".to_owned()]),
                ..ServerFields::default()
            },
        },
        Request::CreateServer {
            server: server(),
            fields: ServerFields::default(),
        },
        Request::ModifyServer {
            server: server(),
            fields: ServerFields {
                compression: Some(true),
                ..ServerFields::default()
            },
        },
        Request::DeleteServer { server: server() },
        Request::ListCerts { server: server() },
        Request::CreateCert {
            server: server(),
            name: "alice".to_owned(),
            days: Some(30),
        },
        Request::CreateCert {
            server: server(),
            name: "bob".to_owned(),
            days: None,
        },
        Request::ExportCert {
            server: server(),
            name: "alice".to_owned(),
            format: ProfileFormat::Ovpn,
        },
        Request::ExportCert {
            server: server(),
            name: "alice".to_owned(),
            format: ProfileFormat::Zip,
        },
        Request::DeleteCert {
            server: server(),
            name: "alice".to_owned(),
        },
        Request::ListUsers { server: server() },
        Request::AddUser {
            server: server(),
            name: "carol".to_owned(),
            password: "correct horse".to_owned(),
        },
        Request::SetPassword {
            server: server(),
            name: "carol".to_owned(),
            password: "battery staple".to_owned(),
        },
        Request::DeleteUser {
            server: server(),
            name: "carol".to_owned(),
        },
        Request::ListSessions { server: None },
        Request::ListSessions {
            server: Some("home office/2".to_owned()),
        },
        Request::KillSession { id: 42 },
        Request::Metrics,
    ]
}

#[test]
fn client_requests_reach_daemon_unchanged() {
    let harness = Harness::start(answer_done);
    let client = harness.client();
    for request in every_request() {
        let reply = client.send(&request);
        assert_eq!(reply, Ok(Reply::Done), "reply to {request:?}");
        assert_eq!(harness.last_request(), Some(request));
    }
}

#[test]
fn names_with_reserved_characters_round_trip() {
    let harness = Harness::start(answer_done);
    let request = Request::DeleteUser {
        server: "a b/c".to_owned(),
        name: "d?e#f%".to_owned(),
    };
    assert_eq!(harness.client().send(&request), Ok(Reply::Done));
    assert_eq!(harness.last_request(), Some(request));
}

fn answer_by_operation(request: &Request) -> Result<Reply, ApiError> {
    match request {
        Request::ExportCert { format, .. } => Ok(Reply::Profile {
            file_name: match format {
                ProfileFormat::Ovpn => "alice.ovpn".to_owned(),
                ProfileFormat::Zip => "alice.zip".to_owned(),
            },
            bytes: vec![0, 1, 2, 255],
        }),
        Request::Metrics => Ok(Reply::Metrics {
            text: "sslvpn_sessions 3\n".to_owned(),
        }),
        Request::ListUsers { .. } => Ok(Reply::Users {
            users: vec!["carol".to_owned()],
        }),
        Request::CreateServer { server, .. } => Ok(Reply::Changed {
            change: ChangeReport {
                server: server.clone(),
                action: "created".to_owned(),
                ..ChangeReport::default()
            },
        }),
        Request::ShowServer { .. } => Err(ApiError {
            status: ErrorKind::NotFound,
            message: "no server named `nowhere`".to_owned(),
            violations: vec!["rule one".to_owned()],
        }),
        Request::ModifyServer { .. } => Err(ApiError::invalid("port 0 is invalid")),
        _ => Ok(Reply::Done),
    }
}

#[test]
fn client_returns_daemon_replies() {
    let harness = Harness::start(answer_by_operation);
    let client = harness.client();
    for request in every_request() {
        let expected = answer_by_operation(&request);
        assert_eq!(client.send(&request), expected, "reply to {request:?}");
    }
}

#[test]
fn status_codes_follow_replies() {
    let harness = Harness::start(answer_by_operation);
    let socket = &harness.socket;

    let created = unix_exchange(
        socket,
        "POST",
        "/v1/servers",
        br#"{"name":"lab","port":1200}"#,
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.header("content-type"), Some("application/json"));

    let done = unix_exchange(socket, "DELETE", "/v1/servers/lab", b"");
    assert_eq!(done.status, 204);
    assert!(done.body.is_empty());

    let added = unix_exchange(
        socket,
        "POST",
        "/v1/servers/lab/users",
        br#"{"name":"dave","password":"secret words"}"#,
    );
    assert_eq!(added.status, 201);

    let missing = unix_exchange(socket, "GET", "/v1/servers/nowhere", b"");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error().violations, vec!["rule one".to_owned()]);

    let invalid = unix_exchange(socket, "PATCH", "/v1/servers/lab", br#"{"port":0}"#);
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.error().status, ErrorKind::Invalid);
}

#[test]
fn profile_and_metrics_use_their_content_types() {
    let harness = Harness::start(answer_by_operation);
    let socket = &harness.socket;

    let ovpn = unix_exchange(socket, "GET", "/v1/servers/lab/certs/alice/profile", b"");
    assert_eq!(ovpn.status, 200);
    assert_eq!(
        ovpn.header("content-type"),
        Some("application/x-openvpn-profile")
    );
    assert_eq!(
        ovpn.header("content-disposition"),
        Some("attachment; filename=\"alice.ovpn\"")
    );
    assert_eq!(ovpn.body, vec![0, 1, 2, 255]);

    let zip = unix_exchange(
        socket,
        "GET",
        "/v1/servers/lab/certs/alice/profile?format=zip",
        b"",
    );
    assert_eq!(zip.header("content-type"), Some("application/zip"));
    assert_eq!(
        zip.header("content-disposition"),
        Some("attachment; filename=\"alice.zip\"")
    );

    let metrics = unix_exchange(socket, "GET", "/metrics", b"");
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    assert_eq!(metrics.body, b"sslvpn_sessions 3\n");
}

#[test]
fn bad_requests_get_json_errors() {
    let harness = Harness::start(answer_done);
    let socket = &harness.socket;

    let unknown = unix_exchange(socket, "GET", "/v2/nothing", b"");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error().status, ErrorKind::NotFound);

    let syntax = unix_exchange(socket, "PATCH", "/v1/servers/lab", b"{\"port\":");
    assert_eq!(syntax.status, 400);
    assert!(
        syntax.error().message.contains("invalid JSON body"),
        "{}",
        syntax.error().message
    );

    let field = unix_exchange(
        socket,
        "POST",
        "/v1/servers",
        br#"{"name":"lab","colour":"red"}"#,
    );
    assert_eq!(field.status, 400);
    assert!(
        field.error().message.contains("colour"),
        "{}",
        field.error().message
    );

    let nameless = unix_exchange(socket, "POST", "/v1/servers", br#"{"port":1200}"#);
    assert_eq!(nameless.status, 400);
    assert!(
        nameless.error().message.contains("name"),
        "{}",
        nameless.error().message
    );

    let format = unix_exchange(
        socket,
        "GET",
        "/v1/servers/lab/certs/a/profile?format=pdf",
        b"",
    );
    assert_eq!(format.status, 400);
    assert_eq!(format.error().status, ErrorKind::Invalid);

    let id = unix_exchange(socket, "DELETE", "/v1/sessions/abc", b"");
    assert_eq!(id.status, 400);
    assert_eq!(id.error().status, ErrorKind::Invalid);

    let method = unix_exchange(socket, "PUT", "/v1/servers", b"");
    assert_eq!(method.status, 405);
    assert_eq!(method.error().status, ErrorKind::Invalid);

    assert_eq!(harness.last_request(), None);
}

#[test]
fn body_over_limit_gets_413() {
    let harness = Harness::start(answer_done);
    let mut body = br#"{"name":"lab","local_networks":[""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', 70 * 1024));
    body.extend(br#""]}"#);

    let response = unix_exchange(&harness.socket, "POST", "/v1/servers", &body);
    assert_eq!(response.status, 413);
    assert_eq!(response.error().status, ErrorKind::Invalid);
    assert_eq!(harness.last_request(), None);
}

#[test]
fn chunked_body_over_limit_gets_413() {
    let harness = Harness::start(answer_done);
    let mut stream = UnixStream::connect(&harness.socket).expect("connect");
    let head = "POST /v1/servers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).expect("write head");
    let chunk = vec![b'x'; 16 * 1024];
    for _ in 0..5 {
        let _ = stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes());
        let _ = stream.write_all(&chunk);
        let _ = stream.write_all(b"\r\n");
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert_eq!(parse_raw(&raw).status, 413);
}

#[test]
fn closed_daemon_channel_gets_503() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let socket = dir.path().join("admin.sock");
    let runtime = runtime();
    let (calls, received) = mpsc::channel::<Call>(1);
    drop(received);
    let _server = runtime
        .block_on(ApiServer::start(&gateway(&socket, None), calls))
        .expect("the admin API starts");

    let response = unix_exchange(&socket, "GET", "/v1/servers", b"");
    assert_eq!(response.status, 503);
    assert_eq!(response.error().status, ErrorKind::Unavailable);

    let client = Client::connect(&socket)
        .expect("connect")
        .expect("daemon listens");
    let error = client
        .send(&Request::Metrics)
        .expect_err("no daemon answers");
    assert_eq!(error.status, ErrorKind::Unavailable);
}

#[test]
fn dropped_reply_gets_503() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let socket = dir.path().join("admin.sock");
    let runtime = runtime();
    let (calls, mut received) = mpsc::channel::<Call>(1);
    runtime.spawn(async move {
        while let Some(call) = received.recv().await {
            drop(call);
        }
    });
    let _server = runtime
        .block_on(ApiServer::start(&gateway(&socket, None), calls))
        .expect("the admin API starts");

    let response = unix_exchange(&socket, "GET", "/v1/servers", b"");
    assert_eq!(response.status, 503);
    assert!(response.error().message.contains("without an answer"));
}

#[test]
fn socket_has_mode_0600() {
    let harness = Harness::start(answer_done);
    let metadata = std::fs::metadata(&harness.socket).expect("socket exists");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    let folder = harness.socket.parent().expect("folder");
    let folder_mode = std::fs::metadata(folder)
        .expect("folder exists")
        .permissions()
        .mode();
    assert_eq!(folder_mode & 0o777, 0o700);
}

#[test]
fn shutdown_removes_socket() {
    let mut harness = Harness::start(answer_done);
    let server = harness.server.take().expect("server runs");
    harness.runtime.block_on(server.shutdown());
    assert!(!harness.socket.exists());
    assert!(matches!(Client::connect(&harness.socket), Ok(None)));
}

#[test]
fn drop_removes_socket() {
    let mut harness = Harness::start(answer_done);
    drop(harness.server.take());
    assert!(!harness.socket.exists());
}

#[test]
fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let socket = dir.path().join("admin.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind a stale socket"));
    assert!(socket.exists());
    assert!(matches!(Client::connect(&socket), Ok(None)));

    let gateway = gateway(&socket, None);
    let harness = Harness::start_with(dir, socket, &gateway, answer_done);
    assert_eq!(
        harness.client().send(&Request::ListServers),
        Ok(Reply::Done)
    );
}

#[test]
fn live_socket_rejects_second_server() {
    let harness = Harness::start(answer_done);
    let (calls, _received) = mpsc::channel::<Call>(1);
    let second = harness
        .runtime
        .block_on(ApiServer::start(&gateway(&harness.socket, None), calls));
    let Err(error) = second else {
        panic!("a second server started on a live socket");
    };
    assert!(matches!(error, ApiStartError::InUse { .. }), "{error}");
    assert!(
        error.to_string().contains("another sslvpn daemon serves"),
        "{error}"
    );
    assert_eq!(
        harness.client().send(&Request::ListServers),
        Ok(Reply::Done)
    );
}

#[test]
fn regular_file_at_socket_path_is_rejected() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let socket = dir.path().join("admin.sock");
    std::fs::write(&socket, "not a socket").expect("write file");
    let (calls, _received) = mpsc::channel::<Call>(1);
    let result = runtime().block_on(ApiServer::start(&gateway(&socket, None), calls));
    assert!(matches!(result, Err(ApiStartError::NotASocket { .. })));
    assert!(socket.exists());
}

#[test]
fn client_without_socket_returns_none() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let result = Client::connect(&dir.path().join("admin.sock"));
    assert!(matches!(result, Ok(None)));
}

fn start_tcp(token: &str, mode: u32) -> Result<Harness, ApiStartError> {
    let dir = tempfile::tempdir().expect("temporary folder");
    let socket = dir.path().join("admin.sock");
    let token_file = write_token(dir.path(), token, mode);
    let gateway = gateway(&socket, Some((free_port(), &token_file)));
    Harness::try_start(dir, socket, &gateway, answer_by_operation)
}

#[test]
fn tcp_requires_bearer_token() {
    let harness = start_tcp(TOKEN, 0o600).expect("the admin API starts");
    let address = harness.tcp_address();

    let missing = tcp_exchange(address, "/v1/servers/lab/users", None);
    assert_eq!(missing.status, 401);
    assert_eq!(missing.error().status, ErrorKind::Unauthorized);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));

    let wrong = tcp_exchange(address, "/v1/servers/lab/users", Some("Bearer wrong-token"));
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.error().status, ErrorKind::Unauthorized);

    let prefix = format!("Bearer {}", &TOKEN[..40]);
    let truncated = tcp_exchange(address, "/v1/servers/lab/users", Some(&prefix));
    assert_eq!(truncated.status, 401);

    let basic = format!("Basic {TOKEN}");
    let other_scheme = tcp_exchange(address, "/v1/servers/lab/users", Some(&basic));
    assert_eq!(other_scheme.status, 401);

    let unknown_route = tcp_exchange(address, "/v2/nothing", None);
    assert_eq!(unknown_route.status, 401);

    assert_eq!(harness.last_request(), None);

    let bearer = format!("Bearer {TOKEN}");
    let right = tcp_exchange(address, "/v1/servers/lab/users", Some(&bearer));
    assert_eq!(right.status, 200);
    let reply: Reply = serde_json::from_slice(&right.body).expect("JSON reply");
    assert_eq!(
        reply,
        Reply::Users {
            users: vec!["carol".to_owned()]
        }
    );
    assert_eq!(
        harness.last_request(),
        Some(Request::ListUsers {
            server: "lab".to_owned()
        })
    );
}

#[test]
fn token_readable_by_others_is_rejected() {
    let Err(error) = start_tcp(TOKEN, 0o644) else {
        panic!("a world-readable token file was accepted");
    };
    assert!(
        matches!(error, ApiStartError::TokenPermissions { mode: 0o644, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("chmod 600"), "{error}");
}

#[test]
fn short_token_is_rejected() {
    let Err(error) = start_tcp(&TOKEN[..31], 0o600) else {
        panic!("a 31-character token was accepted");
    };
    assert!(
        matches!(error, ApiStartError::TokenTooShort { length: 31, .. }),
        "{error}"
    );
}

#[test]
fn token_of_32_characters_is_accepted() {
    let harness = start_tcp(&TOKEN[..32], 0o600).expect("the admin API starts");
    let bearer = format!("Bearer {}", &TOKEN[..32]);
    let response = tcp_exchange(harness.tcp_address(), "/metrics", Some(&bearer));
    assert_eq!(response.status, 200);
}

#[test]
fn missing_token_file_is_rejected() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let socket = dir.path().join("admin.sock");
    let token_file = dir.path().join("absent.token");
    let gateway = gateway(&socket, Some((free_port(), &token_file)));
    let (calls, _received) = mpsc::channel::<Call>(1);
    let result = runtime().block_on(ApiServer::start(&gateway, calls));
    assert!(matches!(result, Err(ApiStartError::TokenRead { .. })));
    assert!(!socket.exists());
}

/// Takes about 20 s: the idle clients hold every slot until their 10 s header timeout, and
/// the slow body then gets its own 10 s.
#[test]
fn slow_clients_time_out_and_free_slots() {
    let harness = Harness::start(answer_done);
    let idle: Vec<UnixStream> = (0..64)
        .map(|_| UnixStream::connect(&harness.socket).expect("connect an idle client"))
        .collect();
    let started = std::time::Instant::now();

    let mut slow_body = UnixStream::connect(&harness.socket).expect("connect");
    let waiting_socket = harness.socket.clone();
    let waiting =
        std::thread::spawn(move || unix_exchange(&waiting_socket, "GET", "/metrics", b""));

    let head = "PATCH /v1/servers/lab HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n";
    slow_body.write_all(head.as_bytes()).expect("write head");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        !waiting.is_finished(),
        "a 66th client was served while 64 were connected"
    );

    let answered = waiting.join().expect("waiting client");
    assert_eq!(answered.status, 204);
    assert!(started.elapsed() >= std::time::Duration::from_secs(9));

    let mut raw = Vec::new();
    let _ = slow_body.read_to_end(&mut raw);
    assert_eq!(parse_raw(&raw).status, 408);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    drop(idle);
}
