//! The `http` identity backend: one HTTP/1.1 POST per login to an admin-run service.
//!
//! The request body is JSON with the username, password, certificate common name and serial,
//! the SSL server's name and the client's real address. A 2xx status admits the client, 401
//! and 403 reject it, and anything else (another status, a timeout, a connection or protocol
//! error) rejects it as "backend unavailable". Only `http://` URLs are supported, so the
//! service belongs on the gateway itself or on a trusted network.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use super::{CredentialCheck, Verdict};

/// Bytes of the response read at most; the status line and 1xx heads must fit in them.
pub const MAX_RESPONSE_HEAD: usize = 8192;

/// A parsed `http://host[:port][/path][?query]` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    text: String,
    /// Host name or IP address without brackets, as passed to the resolver.
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    target: String,
}

/// The reason a backend URL is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("only http:// URLs are supported; use e.g. \"http://127.0.0.1:9180/verify\"")]
    Scheme,
    #[error("has no host; use e.g. \"http://127.0.0.1:9180/verify\"")]
    MissingHost,
    #[error("user info before the host is not supported; remove the part up to '@'")]
    UserInfo,
    #[error("{host:?} is not a host name or IP address")]
    InvalidHost { host: String },
    #[error("port {port:?} is not 1 to 65535")]
    InvalidPort { port: String },
    #[error("contains {found:?}; write spaces and other special characters percent-encoded")]
    InvalidCharacter { found: char },
    #[error("has a fragment (#...); remove it")]
    Fragment,
}

impl HttpUrl {
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        if let Some(found) = text.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(UrlError::InvalidCharacter { found });
        }
        let scheme_end = "http://".len();
        let has_scheme = text
            .get(..scheme_end)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
        if !has_scheme {
            return Err(UrlError::Scheme);
        }
        let rest = &text[scheme_end..];
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = split_host_port(authority)?;
        let target = match target {
            "" => "/".to_owned(),
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_owned(),
        };
        Ok(Self {
            text: text.to_owned(),
            host,
            port,
            target,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the request target: path and query.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Returns the `Host` header value: the host, in brackets when it is an IPv6 address, and
    /// the port.
    fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for HttpUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

fn split_host_port(authority: &str) -> Result<(String, u16), UrlError> {
    if authority.is_empty() {
        return Err(UrlError::MissingHost);
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inside, after)) = bracketed.split_once(']') else {
            return Err(UrlError::InvalidHost {
                host: authority.to_owned(),
            });
        };
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(UrlError::InvalidHost {
                host: inside.to_owned(),
            });
        }
        let port = match after {
            "" => None,
            after => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => {
                    return Err(UrlError::InvalidHost {
                        host: authority.to_owned(),
                    });
                }
            },
        };
        (inside, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if !authority.starts_with('[') && host.parse::<IpAddr>().is_err() && !is_host_name(host) {
        return Err(UrlError::InvalidHost {
            host: host.to_owned(),
        });
    }
    let port = match port {
        None => 80,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => {
                return Err(UrlError::InvalidPort {
                    port: text.to_owned(),
                });
            }
        },
    };
    Ok((host.to_owned(), port))
}

fn is_host_name(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The JSON body the backend receives.
#[derive(Serialize)]
struct RequestBody<'a> {
    username: &'a str,
    password: &'a str,
    common_name: &'a str,
    certificate_serial: &'a str,
    server: &'a str,
    client_address: String,
    client_port: u16,
}

/// The reason an HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connecting to {address} failed: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("sending the request failed: {0}")]
    Write(std::io::Error),
    #[error("reading the response failed: {0}")]
    Read(std::io::Error),
    #[error("the backend closed the connection before sending a status line")]
    Closed,
    #[error("the response head exceeds {MAX_RESPONSE_HEAD} bytes without a final status line")]
    TooLarge,
    #[error("invalid status line {line:?}")]
    InvalidStatusLine { line: String },
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
}

/// Encodes the whole POST request. The result contains the password, so it is zeroed on drop.
pub fn encode_request(url: &HttpUrl, check: &CredentialCheck) -> Option<Zeroizing<Vec<u8>>> {
    let password = check.password.expose_str()?;
    let body = RequestBody {
        username: &check.username,
        password,
        common_name: &check.common_name,
        certificate_serial: &check.serial_hex,
        server: &check.server,
        client_address: check.client.ip().to_string(),
        client_port: check.client.port(),
    };
    let body = Zeroizing::new(serde_json::to_vec(&body).ok()?);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sslvpn/{}\r\nAccept: */*\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        url.target(),
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    let mut request = Zeroizing::new(Vec::with_capacity(head.len() + body.len()));
    request.extend_from_slice(head.as_bytes());
    request.extend_from_slice(&body);
    Some(request)
}

/// Finds the final (non-1xx) status code in the bytes of a response received so far.
///
/// Returns `Ok(None)` while more bytes are needed. Interim 1xx responses are skipped.
pub fn final_status(mut response: &[u8]) -> Result<Option<u16>, HttpError> {
    loop {
        let Some(line_end) = response.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line = &response[..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let status = parse_status_line(line)?;
        if !(100..200).contains(&status) {
            return Ok(Some(status));
        }
        // An interim response ends with an empty line; the final response follows it.
        let Some(head_end) = find(response, b"\r\n\r\n") else {
            return Ok(None);
        };
        response = &response[head_end + 4..];
    }
}

/// Parses `HTTP/1.x NNN reason` and returns NNN.
fn parse_status_line(line: &[u8]) -> Result<u16, HttpError> {
    let invalid = || HttpError::InvalidStatusLine {
        line: String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned(),
    };
    let rest = line.strip_prefix(b"HTTP/1.").ok_or_else(invalid)?;
    let (&minor, rest) = rest.split_first().ok_or_else(invalid)?;
    if !minor.is_ascii_digit() {
        return Err(invalid());
    }
    let rest = rest.strip_prefix(b" ").ok_or_else(invalid)?;
    let code = rest.get(..3).ok_or_else(invalid)?;
    if !code.iter().all(u8::is_ascii_digit) || !matches!(rest.get(3), None | Some(b' ')) {
        return Err(invalid());
    }
    let code = code
        .iter()
        .fold(0u16, |value, digit| value * 10 + u16::from(digit - b'0'));
    if !(100..=599).contains(&code) {
        return Err(invalid());
    }
    Ok(code)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Maps a final status code to a verdict.
pub fn verdict_for_status(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Accepted,
        401 | 403 => Verdict::Denied(format!("backend rejected the credentials (HTTP {status})")),
        _ => Verdict::Unavailable(format!(
            "backend answered HTTP {status}; it must answer 2xx, 401 or 403"
        )),
    }
}

/// Sends one check to the backend and waits at most `timeout` for its status.
pub async fn check(url: &HttpUrl, timeout: Duration, check: &CredentialCheck) -> Verdict {
    let Some(request) = encode_request(url, check) else {
        return Verdict::Denied("password is not valid UTF-8, which JSON cannot carry".to_owned());
    };
    match tokio::time::timeout(timeout, exchange(url, &request)).await {
        Ok(Ok(status)) => verdict_for_status(status),
        Ok(Err(error)) => Verdict::Unavailable(format!("backend {url}: {error}")),
        Err(_) => Verdict::Unavailable(format!("backend {url}: {}", HttpError::Timeout(timeout))),
    }
}

async fn exchange(url: &HttpUrl, request: &[u8]) -> Result<u16, HttpError> {
    let mut stream = TcpStream::connect((url.host(), url.port()))
        .await
        .map_err(|source| HttpError::Connect {
            address: url.host_header(),
            source,
        })?;
    stream.write_all(request).await.map_err(HttpError::Write)?;
    let mut response = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(status) = final_status(&response)? {
            return Ok(status);
        }
        if response.len() >= MAX_RESPONSE_HEAD {
            return Err(HttpError::TooLarge);
        }
        let room = (MAX_RESPONSE_HEAD - response.len()).min(chunk.len());
        let read = stream
            .read(&mut chunk[..room])
            .await
            .map_err(HttpError::Read)?;
        if read == 0 {
            return Err(HttpError::Closed);
        }
        response.extend_from_slice(&chunk[..read]);
    }
}

#[cfg(test)]
mod tests;
