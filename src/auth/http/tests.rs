use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::*;
use crate::proto::keymethod::Secret;

fn request(password: &[u8]) -> CredentialCheck {
    CredentialCheck {
        username: "alice".to_owned(),
        password: Secret::new(password.to_vec()),
        common_name: "alice-laptop".to_owned(),
        serial_hex: "4A01".to_owned(),
        server: "office".to_owned(),
        client: SocketAddr::from(([198, 51, 100, 7], 51234)),
    }
}

#[test]
fn url_with_port_and_path() {
    let url = HttpUrl::parse("http://127.0.0.1:9180/verify?realm=vpn").unwrap();
    assert_eq!(url.host(), "127.0.0.1");
    assert_eq!(url.port(), 9180);
    assert_eq!(url.target(), "/verify?realm=vpn");
    assert_eq!(url.to_string(), "http://127.0.0.1:9180/verify?realm=vpn");
}

#[test]
fn url_defaults() {
    let url = HttpUrl::parse("HTTP://auth.example.com").unwrap();
    assert_eq!(url.host(), "auth.example.com");
    assert_eq!(url.port(), 80);
    assert_eq!(url.target(), "/");
    let query = HttpUrl::parse("http://auth.example.com?x=1").unwrap();
    assert_eq!(query.target(), "/?x=1");
}

#[test]
fn url_ipv6_literal() {
    let url = HttpUrl::parse("http://[::1]:9180/verify").unwrap();
    assert_eq!(url.host(), "::1");
    assert_eq!(url.port(), 9180);
    assert_eq!(url.host_header(), "[::1]:9180");
    assert_eq!(
        HttpUrl::parse("http://[::1]/").unwrap().host_header(),
        "[::1]:80"
    );
}

#[test]
fn url_rejections() {
    let cases = [
        ("https://127.0.0.1/verify", UrlError::Scheme),
        ("ftp://127.0.0.1/", UrlError::Scheme),
        ("127.0.0.1:9180/verify", UrlError::Scheme),
        ("http://", UrlError::MissingHost),
        ("http:///verify", UrlError::MissingHost),
        ("http://:9180/", UrlError::MissingHost),
        ("http://user:pw@127.0.0.1/", UrlError::UserInfo),
        (
            "http://127.0.0.1:0/",
            UrlError::InvalidPort {
                port: "0".to_owned(),
            },
        ),
        (
            "http://127.0.0.1:65536/",
            UrlError::InvalidPort {
                port: "65536".to_owned(),
            },
        ),
        (
            "http://127.0.0.1:/",
            UrlError::InvalidPort {
                port: String::new(),
            },
        ),
        (
            "http://127.0.0.1:+80/",
            UrlError::InvalidPort {
                port: "+80".to_owned(),
            },
        ),
        (
            "http://bad_host/",
            UrlError::InvalidHost {
                host: "bad_host".to_owned(),
            },
        ),
        (
            "http://[::g]/",
            UrlError::InvalidHost {
                host: "::g".to_owned(),
            },
        ),
        ("http://127.0.0.1/a#b", UrlError::Fragment),
        (
            "http://127.0.0.1/a b",
            UrlError::InvalidCharacter { found: ' ' },
        ),
        (
            "http://127.0.0.1/a\r\nX: y",
            UrlError::InvalidCharacter { found: '\r' },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(HttpUrl::parse(text), Err(expected), "{text:?}");
    }
}

#[test]
fn request_head_and_body() {
    let url = HttpUrl::parse("http://127.0.0.1:9180/verify").unwrap();
    let encoded = encode_request(&url, &request(b"pa\"ss")).unwrap();
    let text = String::from_utf8(encoded.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], "POST /verify HTTP/1.1");
    assert!(lines.contains(&"Host: 127.0.0.1:9180"), "{head}");
    assert!(lines.contains(&"Content-Type: application/json"), "{head}");
    assert!(lines.contains(&"Connection: close"), "{head}");
    let length = format!("Content-Length: {}", body.len());
    assert!(lines.contains(&length.as_str()), "{head}");
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["username"], "alice");
    assert_eq!(json["password"], "pa\"ss");
    assert_eq!(json["common_name"], "alice-laptop");
    assert_eq!(json["certificate_serial"], "4A01");
    assert_eq!(json["server"], "office");
    assert_eq!(json["client_address"], "198.51.100.7");
    assert_eq!(json["client_port"], 51234);
}

#[test]
fn request_needs_utf8_password() {
    let url = HttpUrl::parse("http://127.0.0.1:9180/verify").unwrap();
    assert!(encode_request(&url, &request(b"\xff\xfe")).is_none());
}

#[test]
fn status_line_parsing() {
    let ok = [
        (&b"HTTP/1.1 200 OK\r\n"[..], 200),
        (b"HTTP/1.0 401 Unauthorized\r\n", 401),
        (b"HTTP/1.1 403\r\n", 403),
        (b"HTTP/1.1 204 No Content\n", 204),
        (b"HTTP/1.1 500 Internal Server Error\r\nServer: x\r\n", 500),
    ];
    for (response, status) in ok {
        assert_eq!(
            final_status(response).unwrap(),
            Some(status),
            "{response:?}"
        );
    }
}

#[test]
fn status_line_incomplete() {
    assert_eq!(final_status(b"").unwrap(), None);
    assert_eq!(final_status(b"HTTP/1.1 200 O").unwrap(), None);
}

#[test]
fn status_line_invalid() {
    for response in [
        &b"HTTP/2 200 OK\r\n"[..],
        b"HTTP/1.1 20 OK\r\n",
        b"HTTP/1.1 2000 OK\r\n",
        b"HTTP/1.1 abc OK\r\n",
        b"HTTP/1.1  200 OK\r\n",
        b"HTTP/1.1 099 Low\r\n",
        b"HTTP/1.1 600 High\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"\r\n",
    ] {
        assert!(
            matches!(
                final_status(response),
                Err(HttpError::InvalidStatusLine { .. })
            ),
            "{response:?}"
        );
    }
}

#[test]
fn interim_responses_are_skipped() {
    let response = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\n";
    assert_eq!(final_status(response).unwrap(), Some(401));
    assert_eq!(
        final_status(b"HTTP/1.1 100 Continue\r\n").unwrap(),
        None,
        "the final response has not arrived"
    );
}

#[test]
fn status_to_verdict() {
    assert_eq!(verdict_for_status(200), Verdict::Accepted);
    assert_eq!(verdict_for_status(204), Verdict::Accepted);
    assert!(matches!(verdict_for_status(401), Verdict::Denied(_)));
    assert!(matches!(verdict_for_status(403), Verdict::Denied(_)));
    for status in [301, 400, 404, 500, 503] {
        assert!(
            matches!(verdict_for_status(status), Verdict::Unavailable(_)),
            "{status}"
        );
    }
}

/// Serves one connection: reads the request head and body, then writes `response` (or
/// nothing, for `None`) and keeps the connection open for `hold`.
async fn one_shot_server(
    response: Option<Vec<u8>>,
    hold: Duration,
) -> (HttpUrl, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/verify")).unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let read = stream.read(&mut chunk).await.unwrap();
            received.extend_from_slice(&chunk[..read]);
            if read == 0 || request_complete(&received) {
                break;
            }
        }
        if let Some(response) = response {
            stream.write_all(&response).await.unwrap();
        }
        tokio::time::sleep(hold).await;
        received
    });
    (url, task)
}

fn request_complete(received: &[u8]) -> bool {
    let Some(end) = find(received, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&received[..end]);
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    received.len() >= end + 4 + length
}

#[tokio::test]
async fn backend_admits_on_200() {
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
    let (url, server) = one_shot_server(Some(response), Duration::ZERO).await;
    let verdict = check(&url, Duration::from_secs(5), &request(b"right")).await;
    assert_eq!(verdict, Verdict::Accepted);
    let received = String::from_utf8(server.await.unwrap()).unwrap();
    assert!(
        received.starts_with("POST /verify HTTP/1.1\r\n"),
        "{received}"
    );
    assert!(received.contains("\"password\":\"right\""), "{received}");
}

#[tokio::test]
async fn backend_rejects_on_401() {
    let response = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec();
    let (url, _server) = one_shot_server(Some(response), Duration::ZERO).await;
    let verdict = check(&url, Duration::from_secs(5), &request(b"wrong")).await;
    assert!(matches!(verdict, Verdict::Denied(_)), "{verdict:?}");
}

#[tokio::test]
async fn backend_error_status_is_unavailable() {
    let response = b"HTTP/1.1 500 Internal Server Error\r\n\r\n".to_vec();
    let (url, _server) = one_shot_server(Some(response), Duration::ZERO).await;
    let verdict = check(&url, Duration::from_secs(5), &request(b"right")).await;
    assert!(
        matches!(&verdict, Verdict::Unavailable(reason) if reason.contains("500")),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn slow_backend_times_out() {
    let (url, _server) = one_shot_server(None, Duration::from_secs(5)).await;
    let started = std::time::Instant::now();
    let verdict = check(&url, Duration::from_millis(300), &request(b"right")).await;
    assert!(
        matches!(&verdict, Verdict::Unavailable(reason) if reason.contains("no answer within 300 ms")),
        "{verdict:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn backend_closing_early_is_unavailable() {
    let (url, _server) = one_shot_server(Some(Vec::new()), Duration::ZERO).await;
    let verdict = check(&url, Duration::from_secs(5), &request(b"right")).await;
    assert!(
        matches!(&verdict, Verdict::Unavailable(reason) if reason.contains("closed the connection")),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn endless_response_head_is_bounded() {
    let mut response = b"HTTP/1.1 100 Continue\r\n".to_vec();
    response.extend(std::iter::repeat_n(b'x', 3 * MAX_RESPONSE_HEAD));
    let (url, _server) = one_shot_server(Some(response), Duration::from_secs(1)).await;
    let verdict = check(&url, Duration::from_secs(5), &request(b"right")).await;
    assert!(
        matches!(&verdict, Verdict::Unavailable(reason) if reason.contains("exceeds")),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn refused_connection_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/verify")).unwrap();
    let verdict = check(&url, Duration::from_secs(5), &request(b"right")).await;
    assert!(
        matches!(&verdict, Verdict::Unavailable(reason) if reason.contains("connecting")),
        "{verdict:?}"
    );
}
