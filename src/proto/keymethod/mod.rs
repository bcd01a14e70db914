//! Key method 2 messages: the first TLS application data each side sends after the handshake.
//!
//! Layout (OpenVPN 2.x `ssl.c`, key_method_2_write and key_method_2_read):
//!
//! ```text
//! u32 0 | u8 key method | key material | options | username | password | peer info
//! ```
//!
//! The client's key material is pre_master (48) | random1 (32) | random2 (32), the server's is
//! random1 (32) | random2 (32). Each string is a big-endian u16 length that counts a terminating
//! NUL, then the bytes and the NUL; length 0 means the string is absent.

mod occ;
mod peer_info;

pub use occ::{OccCipherError, OccCompression, OccOptions, OccProto, ServerOccConfig, TlsRole};
pub use peer_info::{IvProto, PeerInfo};

use std::fmt;

use zeroize::Zeroizing;

/// The only key method OpenVPN 2.4 and later speak.
pub const KEY_METHOD_2: u8 = 2;

/// OpenVPN reads the key method from the low four bits of its byte; the rest are flags.
const KEY_METHOD_MASK: u8 = 0x0f;

pub const PRE_MASTER_LEN: usize = 48;
pub const RANDOM_LEN: usize = 32;

/// Maximum encoded length of the options string, its NUL included (OpenVPN's `TLS_OPTIONS_LEN`).
pub const MAX_OPTIONS_LEN: usize = 512;

/// Maximum encoded length of the username and of the password, each with its NUL.
///
/// NOTE: this is OpenVPN's `USER_PASS_LEN` for builds without PKCS#11. Builds with PKCS#11
/// (Debian's, for one) accept up to 4096, still bounded by the 2048-byte plaintext buffer below.
pub const MAX_CREDENTIAL_LEN: usize = 128;

/// Maximum encoded length of the peer info string.
///
/// OpenVPN 2.x reads a key method message with one 2048-byte TLS read (`TLS_CHANNEL_BUF_SIZE`),
/// so no peer info that an OpenVPN server accepts is longer.
pub const MAX_PEER_INFO_LEN: usize = 2048;

/// Errors from parsing or encoding a key method 2 message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyMethodError {
    /// The buffer ends inside a field: wait for more TLS plaintext and parse again.
    #[error("key method message incomplete: {field} needs {needed} more bytes")]
    Incomplete { field: &'static str, needed: usize },
    #[error("unsupported key method {0} (only key method 2 is supported)")]
    UnsupportedKeyMethod(u8),
    #[error("{field} is {len} bytes with its NUL, longer than the maximum of {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("{field} contains a NUL byte and cannot be encoded")]
    EmbeddedNul { field: &'static str },
}

impl KeyMethodError {
    /// Returns true when more data may complete the message, false when it is invalid.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, Self::Incomplete { .. })
    }
}

/// A password or other secret string whose `Debug` never shows the value.
///
/// The bytes are zeroed on drop. They are kept as bytes because OpenVPN passes passwords on
/// unchanged and does not require UTF-8. There is no `PartialEq`, so that callers compare
/// secrets in constant time.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(bytes.into()))
    }

    /// Returns the secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Returns the secret as text, or `None` when it is not valid UTF-8.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The key method 2 message a client sends.
#[derive(Clone)]
pub struct ClientKeyMessage {
    /// The secret input of the PRF key derivation, zeroed on drop.
    pub pre_master: Zeroizing<[u8; PRE_MASTER_LEN]>,
    pub random1: [u8; RANDOM_LEN],
    pub random2: [u8; RANDOM_LEN],
    /// The client's OCC options string, e.g. `V4,dev-type tun,...,tls-client`.
    pub options: String,
    /// Absent when the client does not use `auth-user-pass`.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Newline-separated `NAME=value` lines; empty when absent. See [`PeerInfo::parse`].
    pub peer_info: String,
}

/// The key method 2 message a server sends.
#[derive(Clone)]
pub struct ServerKeyMessage {
    pub random1: [u8; RANDOM_LEN],
    pub random2: [u8; RANDOM_LEN],
    /// The server's OCC options string, see [`ServerOccConfig::options_string`].
    pub options: String,
}

impl ClientKeyMessage {
    /// Parses a client's message from the start of the TLS plaintext received so far.
    ///
    /// Username, password and peer info are optional trailing fields: old clients omit them,
    /// so a buffer that ends right after the options string (or after the username or
    /// password) is a complete message. OpenVPN writes the whole message with one TLS write,
    /// which arrives as one TLS record, so parse once per record received. A buffer that ends
    /// inside a field returns [`KeyMethodError::Incomplete`]. Bytes after the peer info are
    /// ignored, as OpenVPN does.
    pub fn parse(buf: &[u8]) -> Result<Self, KeyMethodError> {
        let mut reader = Reader::new(buf);
        reader.header()?;
        let pre_master = Zeroizing::new(reader.array("pre_master")?);
        let random1 = reader.array("random1")?;
        let random2 = reader.array("random2")?;
        let options = reader.options()?;

        let username = match reader.optional_string("username", MAX_CREDENTIAL_LEN)? {
            Some(bytes) => Some(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| KeyMethodError::InvalidUtf8 { field: "username" })?,
            ),
            None => None,
        };
        let password = reader
            .optional_string("password", MAX_CREDENTIAL_LEN)?
            .map(Secret::new);
        let peer_info = reader
            .optional_string("peer info", MAX_PEER_INFO_LEN)?
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default();

        Ok(Self {
            pre_master,
            random1,
            random2,
            options,
            username,
            password,
            peer_info,
        })
    }

    /// Encodes the message into a buffer that is zeroed on drop, because it contains the
    /// pre-master secret.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, KeyMethodError> {
        let mut out = Zeroizing::new(Vec::with_capacity(256 + self.peer_info.len()));
        write_header(&mut out);
        out.extend_from_slice(self.pre_master.as_ref());
        out.extend_from_slice(&self.random1);
        out.extend_from_slice(&self.random2);
        write_string(
            &mut out,
            "options",
            Some(self.options.as_bytes()),
            MAX_OPTIONS_LEN,
        )?;
        let username = self.username.as_deref().map(str::as_bytes);
        write_string(&mut out, "username", username, MAX_CREDENTIAL_LEN)?;
        let password = self.password.as_ref().map(Secret::expose);
        write_string(&mut out, "password", password, MAX_CREDENTIAL_LEN)?;
        let peer_info = (!self.peer_info.is_empty()).then_some(self.peer_info.as_bytes());
        write_string(&mut out, "peer info", peer_info, MAX_PEER_INFO_LEN)?;
        Ok(out)
    }
}

impl ServerKeyMessage {
    /// Parses a server's message; the rules for incomplete input match
    /// [`ClientKeyMessage::parse`]. The username, password and peer info that a server sends
    /// empty are checked for framing and then dropped.
    pub fn parse(buf: &[u8]) -> Result<Self, KeyMethodError> {
        let mut reader = Reader::new(buf);
        reader.header()?;
        let random1 = reader.array("random1")?;
        let random2 = reader.array("random2")?;
        let options = reader.options()?;
        reader.optional_string("username", MAX_CREDENTIAL_LEN)?;
        reader.optional_string("password", MAX_CREDENTIAL_LEN)?;
        reader.optional_string("peer info", MAX_PEER_INFO_LEN)?;
        Ok(Self {
            random1,
            random2,
            options,
        })
    }

    /// Encodes the message with an empty username, password and peer info, as an OpenVPN
    /// server sends it.
    pub fn encode(&self) -> Result<Vec<u8>, KeyMethodError> {
        let mut out = Vec::with_capacity(96 + self.options.len());
        write_header(&mut out);
        out.extend_from_slice(&self.random1);
        out.extend_from_slice(&self.random2);
        write_string(
            &mut out,
            "options",
            Some(self.options.as_bytes()),
            MAX_OPTIONS_LEN,
        )?;
        for field in ["username", "password", "peer info"] {
            write_string(&mut out, field, None, usize::MAX)?;
        }
        Ok(out)
    }
}

impl fmt::Debug for ClientKeyMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKeyMessage")
            .field("options_len", &self.options.len())
            .field("username", &self.username)
            .field("password", &self.password)
            .field("peer_info_len", &self.peer_info.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ServerKeyMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKeyMessage")
            .field("options_len", &self.options.len())
            .finish_non_exhaustive()
    }
}

/// A cursor over a key method message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], KeyMethodError> {
        let available = self.buf.len() - self.pos;
        if available < len {
            return Err(KeyMethodError::Incomplete {
                field,
                needed: len - available,
            });
        }
        let bytes = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], KeyMethodError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// Reads the leading u32, which OpenVPN skips without checking, and the key method byte.
    fn header(&mut self) -> Result<(), KeyMethodError> {
        self.take(4, "leading zero")?;
        let method = self.take(1, "key method")?[0];
        if method & KEY_METHOD_MASK != KEY_METHOD_2 {
            return Err(KeyMethodError::UnsupportedKeyMethod(method));
        }
        Ok(())
    }

    fn options(&mut self) -> Result<String, KeyMethodError> {
        let options = self.string("options", MAX_OPTIONS_LEN)?.unwrap_or_default();
        Ok(String::from_utf8_lossy(options).into_owned())
    }

    /// Reads a string that may be missing because the message ends before it.
    fn optional_string(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<Option<&'a [u8]>, KeyMethodError> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        self.string(field, max)
    }

    /// Reads a length-prefixed string and returns its bytes before the first NUL, or `None`
    /// for length 0. Like OpenVPN, it treats the last byte as the terminator whatever it is.
    fn string(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<Option<&'a [u8]>, KeyMethodError> {
        let len_bytes = self.take(2, field)?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len == 0 {
            return Ok(None);
        }
        if len > max {
            return Err(KeyMethodError::TooLong { field, len, max });
        }
        let bytes = &self.take(len, field)?[..len - 1];
        let text_len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Ok(Some(&bytes[..text_len]))
    }
}

fn write_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&0u32.to_be_bytes());
    out.push(KEY_METHOD_2);
}

fn write_string(
    out: &mut Vec<u8>,
    field: &'static str,
    value: Option<&[u8]>,
    max: usize,
) -> Result<(), KeyMethodError> {
    let Some(value) = value else {
        out.extend_from_slice(&0u16.to_be_bytes());
        return Ok(());
    };
    if value.contains(&0) {
        return Err(KeyMethodError::EmbeddedNul { field });
    }
    let len = value.len() + 1;
    let too_long = KeyMethodError::TooLong { field, len, max };
    if len > max {
        return Err(too_long);
    }
    let encoded_len = u16::try_from(len).map_err(|_| too_long)?;
    out.extend_from_slice(&encoded_len.to_be_bytes());
    out.extend_from_slice(value);
    out.push(0);
    Ok(())
}

#[cfg(test)]
mod tests;
