//! PUSH_REPLY composition and the control channel text messages a server receives.
//!
//! Sources: OpenVPN 2.6 `push.c` (prepare_push_reply, send_push_reply), `helper.c` (what the
//! `server` and `keepalive` directives push).

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Capacity of the buffer OpenVPN builds each PUSH_REPLY in, its NUL included
/// (`PUSH_BUNDLE_SIZE`).
pub const PUSH_BUNDLE_SIZE: usize = 1024;

/// Room OpenVPN keeps free in each message for `,push-continuation 2`. Options are added
/// while the message stays below `PUSH_BUNDLE_SIZE - PUSH_RESERVED`.
const PUSH_RESERVED: usize = 84;

const PUSH_REPLY: &str = "PUSH_REPLY";

/// The client's tunnel addresses, by topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAddress {
    /// Each client owns a /30: it gets `ifconfig <address> <peer>`, e.g. `10.8.0.6 10.8.0.5`.
    Net30 { address: Ipv4Addr, peer: Ipv4Addr },
    /// The clients share the pool's subnet: `ifconfig <address> <netmask>`.
    Subnet {
        address: Ipv4Addr,
        netmask: Ipv4Addr,
    },
}

/// The contents of one client's PUSH_REPLY.
///
/// `Debug` shows only the first word of each extra option, because `auth-token` is a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PushReply {
    /// The server's own tunnel address: `route-gateway` with subnet, the pushed host route
    /// with net30.
    pub server_address: Ipv4Addr,
    pub client: ClientAddress,
    /// Networks behind the server, pushed as `route NETWORK NETMASK`.
    pub routes: Vec<Ipv4Net>,
    /// `keepalive` interval in seconds, pushed as `ping`.
    pub ping: u32,
    /// `keepalive` timeout in seconds, pushed as `ping-restart`.
    pub ping_restart: u32,
    /// Pushed for clients that support DATA_V2.
    pub peer_id: Option<u32>,
    /// The negotiated cipher, pushed to clients that negotiate (see `ncp::Negotiated`).
    pub cipher: Option<String>,
    /// The client announced cc-exit (IV_PROTO bit 7).
    pub cc_exit: bool,
    /// The data channel keys come from TLS-EKM.
    pub tls_ekm: bool,
    /// The server's tun-mtu, pushed to clients that sent `IV_MTU`.
    pub tun_mtu: Option<u16>,
    /// Further options, pushed after the routes as written, e.g. `comp-lzo no`, `compress`,
    /// `auth-token ...`. None may contain a comma.
    pub extra: Vec<String>,
}

impl fmt::Debug for PushReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extra: Vec<String> = self.extra.iter().map(|option| first_word(option)).collect();
        f.debug_struct("PushReply")
            .field("server_address", &self.server_address)
            .field("client", &self.client)
            .field("routes", &self.routes)
            .field("ping", &self.ping)
            .field("ping_restart", &self.ping_restart)
            .field("peer_id", &self.peer_id)
            .field("cipher", &self.cipher)
            .field("cc_exit", &self.cc_exit)
            .field("tls_ekm", &self.tls_ekm)
            .field("tun_mtu", &self.tun_mtu)
            .field("extra", &extra)
            .finish()
    }
}

/// Errors from composing a PUSH_REPLY. They name the option only by its first word, because
/// an option such as `auth-token` carries a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("pushed option {name:?} contains a comma, NUL or line break")]
    InvalidOption { name: String },
    #[error("pushed option {name:?} is {len} bytes, too long for one PUSH_REPLY")]
    OptionTooLong { name: String, len: usize },
}

impl PushReply {
    /// Creates a reply with the `keepalive 10 60` values and nothing optional.
    pub fn new(server_address: Ipv4Addr, client: ClientAddress) -> Self {
        Self {
            server_address,
            client,
            routes: Vec::new(),
            ping: 10,
            ping_restart: 60,
            peer_id: None,
            cipher: None,
            cc_exit: false,
            tls_ekm: false,
            tun_mtu: None,
            extra: Vec::new(),
        }
    }

    /// Lists the options in the order OpenVPN 2.6 sends them: the ones common to all clients,
    /// then the per-client ones.
    pub fn options(&self) -> Vec<String> {
        let mut options = Vec::new();
        match self.client {
            ClientAddress::Net30 { .. } => {
                options.push(format!("route {}", self.server_address));
                options.push("topology net30".to_owned());
            }
            ClientAddress::Subnet { .. } => {
                options.push(format!("route-gateway {}", self.server_address));
                options.push("topology subnet".to_owned());
            }
        }
        options.push(format!("ping {}", self.ping));
        options.push(format!("ping-restart {}", self.ping_restart));
        for route in &self.routes {
            options.push(format!("route {} {}", route.network(), route.netmask()));
        }
        options.extend(self.extra.iter().cloned());

        options.push(match self.client {
            ClientAddress::Net30 { address, peer } => format!("ifconfig {address} {peer}"),
            ClientAddress::Subnet { address, netmask } => format!("ifconfig {address} {netmask}"),
        });
        if let Some(peer_id) = self.peer_id {
            options.push(format!("peer-id {peer_id}"));
        }
        if let Some(cipher) = &self.cipher {
            options.push(format!("cipher {cipher}"));
        }
        options.extend(self.protocol_flags());
        if let Some(mtu) = self.tun_mtu {
            options.push(format!("tun-mtu {mtu}"));
        }
        options
    }

    /// OpenVPN announces tls-ekm inside `protocol-flags` only to clients that support cc-exit,
    /// and with `key-derivation tls-ekm` to the others.
    fn protocol_flags(&self) -> Option<String> {
        match (self.cc_exit, self.tls_ekm) {
            (true, true) => Some("protocol-flags cc-exit tls-ekm".to_owned()),
            (true, false) => Some("protocol-flags cc-exit".to_owned()),
            (false, true) => Some("key-derivation tls-ekm".to_owned()),
            (false, false) => None,
        }
    }

    /// Builds the PUSH_REPLY messages, each to be sent as text followed by a NUL.
    pub fn build(&self) -> Result<Vec<String>, PushError> {
        split_push_reply(&self.options())
    }
}

/// Packs options into PUSH_REPLY messages as OpenVPN 2.6's send_push_reply does.
///
/// An option goes into the current message while the message stays shorter than
/// `PUSH_BUNDLE_SIZE - 84` bytes, not counting the option's comma. Otherwise the current
/// message is closed with `,push-continuation 2` and a new one started. When more than one
/// message results, the last ends with `,push-continuation 1`, and a single message carries
/// no continuation. No options give one bare `PUSH_REPLY`.
pub fn split_push_reply(options: &[String]) -> Result<Vec<String>, PushError> {
    let limit = PUSH_BUNDLE_SIZE - PUSH_RESERVED;
    let mut messages = Vec::new();
    let mut current = String::from(PUSH_REPLY);
    for option in options {
        validate_option(option)?;
        if PUSH_REPLY.len() + option.len() >= limit {
            return Err(PushError::OptionTooLong {
                name: first_word(option),
                len: option.len(),
            });
        }
        if current.len() + option.len() >= limit {
            current.push_str(",push-continuation 2");
            messages.push(std::mem::replace(&mut current, String::from(PUSH_REPLY)));
        }
        current.push(',');
        current.push_str(option);
    }
    if !messages.is_empty() {
        current.push_str(",push-continuation 1");
    }
    messages.push(current);
    Ok(messages)
}

fn validate_option(option: &str) -> Result<(), PushError> {
    if option.contains([',', '\0', '\n', '\r']) {
        return Err(PushError::InvalidOption {
            name: first_word(option),
        });
    }
    Ok(())
}

fn first_word(option: &str) -> String {
    let word = option.split([' ', ',']).next().unwrap_or_default();
    word.chars().take(64).collect()
}

/// A control channel text message that a server receives from a client.
///
/// `Debug` prints the payload's length only, because a challenge response carries a secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ControlMessage<'a> {
    /// `PUSH_REQUEST`: the client asks for its PUSH_REPLY.
    PushRequest,
    /// `EXIT`: the client is leaving (cc-exit clients).
    Exit,
    /// `ACC,...`: an app custom control message from OpenVPN 3 clients, as the text after
    /// `ACC,`.
    AppControl(&'a str),
    /// `CR_RESPONSE,...`: the response to a challenge, as the text after `CR_RESPONSE,`.
    ChallengeResponse(&'a str),
    /// `INFO` or `INFO,...`: free text after `INFO,`, empty when absent.
    Info(&'a str),
    /// Any other message, with its text.
    Unknown(&'a str),
}

impl fmt::Debug for ControlMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, payload) = match self {
            Self::PushRequest => return f.write_str("PushRequest"),
            Self::Exit => return f.write_str("Exit"),
            Self::AppControl(text) => ("AppControl", text),
            Self::ChallengeResponse(text) => ("ChallengeResponse", text),
            Self::Info(text) => ("Info", text),
            Self::Unknown(text) => ("Unknown", text),
        };
        write!(f, "{name}({} bytes)", payload.len())
    }
}

/// Errors from reading a control channel text message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlMessageError {
    #[error("control message is empty")]
    Empty,
    #[error("control message of {len} bytes is not valid UTF-8")]
    InvalidUtf8 { len: usize },
}

impl<'a> ControlMessage<'a> {
    /// Parses one message. The text ends at the first NUL, so the trailing NUL that OpenVPN
    /// sends may be included or not; surrounding whitespace is ignored.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ControlMessageError> {
        let text_len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let text = std::str::from_utf8(&bytes[..text_len])
            .map_err(|_| ControlMessageError::InvalidUtf8 { len: text_len })?
            .trim();
        if text.is_empty() {
            return Err(ControlMessageError::Empty);
        }
        let (keyword, rest) = text.split_once(',').unwrap_or((text, ""));
        Ok(match keyword {
            "PUSH_REQUEST" => Self::PushRequest,
            "EXIT" => Self::Exit,
            "ACC" => Self::AppControl(rest),
            "CR_RESPONSE" => Self::ChallengeResponse(rest),
            "INFO" => Self::Info(rest),
            _ => Self::Unknown(text),
        })
    }
}

#[cfg(test)]
mod tests;
