//! Peer info: the `NAME=value` lines a client sends after its credentials.

use super::MAX_PEER_INFO_LEN;

/// The `IV_PROTO` bit field (OpenVPN `ssl.h`, `IV_PROTO_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IvProto(pub u32);

impl IvProto {
    pub const DATA_V2: u32 = 1 << 1;
    pub const REQUEST_PUSH: u32 = 1 << 2;
    pub const TLS_KEY_EXPORT: u32 = 1 << 3;
    pub const AUTH_PENDING_KW: u32 = 1 << 4;
    pub const NCP_P2P: u32 = 1 << 5;
    pub const DNS_OPTION: u32 = 1 << 6;
    pub const CC_EXIT_NOTIFY: u32 = 1 << 7;
    pub const AUTH_FAIL_TEMP: u32 = 1 << 8;
    pub const DYN_TLS_CRYPT: u32 = 1 << 9;
    pub const DATA_EPOCH: u32 = 1 << 10;
    pub const DNS_OPTION_V2: u32 = 1 << 11;
    pub const PUSH_UPDATE: u32 = 1 << 12;

    fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    /// Returns whether the client accepts DATA_V2 packets with a peer-id.
    pub fn data_v2(self) -> bool {
        self.has(Self::DATA_V2)
    }

    /// Returns whether the server may send PUSH_REPLY without waiting for PUSH_REQUEST.
    pub fn request_push(self) -> bool {
        self.has(Self::REQUEST_PUSH)
    }

    /// Returns whether the client can take data channel keys from the TLS keying material
    /// exporter (RFC 5705).
    pub fn tls_ekm(self) -> bool {
        self.has(Self::TLS_KEY_EXPORT)
    }

    /// Returns whether the client reads keywords such as `timeout=` in AUTH_PENDING.
    pub fn auth_pending_kw(self) -> bool {
        self.has(Self::AUTH_PENDING_KW)
    }

    /// Returns whether the client runs in peer-to-peer mode, so it will not accept a pushed
    /// cipher.
    pub fn ncp_p2p(self) -> bool {
        self.has(Self::NCP_P2P)
    }

    /// Returns whether the client sends the `EXIT` control message and reads the pushed
    /// `protocol-flags` option.
    pub fn cc_exit(self) -> bool {
        self.has(Self::CC_EXIT_NOTIFY)
    }

    /// Returns whether the client understands `AUTH_FAILED,TEMP` messages.
    pub fn auth_failed_temp(self) -> bool {
        self.has(Self::AUTH_FAIL_TEMP)
    }

    /// Returns whether the client can derive tls-crypt keys from TLS-EKM on renegotiation.
    pub fn dyn_tls_crypt(self) -> bool {
        self.has(Self::DYN_TLS_CRYPT)
    }

    /// Returns whether the client supports the epoch data channel format with 64-bit packet
    /// ids.
    pub fn data_epoch(self) -> bool {
        self.has(Self::DATA_EPOCH)
    }

    /// Returns whether the client reads the `dns` option in the form that followed its
    /// incompatible changes.
    pub fn dns_option_v2(self) -> bool {
        self.has(Self::DNS_OPTION_V2)
    }

    /// Returns whether the client accepts PUSH_UPDATE messages.
    pub fn push_update(self) -> bool {
        self.has(Self::PUSH_UPDATE)
    }
}

/// The version, platform and capabilities a client announces in its peer info.
///
/// Lines that are not `NAME=value`, unknown names and `UV_*` user variables are ignored. When a
/// name repeats, the first line counts, as in OpenVPN.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// `IV_VER`: the client's version, e.g. `2.6.12`.
    pub iv_ver: Option<String>,
    /// `IV_PLAT`: `linux`, `win`, `mac`, `ios`, `android`, ...
    pub iv_plat: Option<String>,
    /// `IV_PLAT_VER`: the operating system version.
    pub iv_plat_ver: Option<String>,
    /// `IV_GUI_VER`: the front end, e.g. `OCmacOS_3.4.4-4629`.
    pub iv_gui_ver: Option<String>,
    /// `IV_PROTO`; zero when absent.
    pub iv_proto: IvProto,
    /// `IV_CIPHERS`: the data ciphers the client accepts (2.5+). `Some` even when the list is
    /// empty, because its presence alone marks a client that negotiates.
    pub iv_ciphers: Option<Vec<String>>,
    /// `IV_NCP`: 2 for a 2.4 client that accepts AES-256-GCM and AES-128-GCM.
    pub iv_ncp: Option<u32>,
    /// `IV_MTU`: the largest tun-mtu the client accepts in a push.
    pub iv_mtu: Option<u32>,
    /// `IV_TCPNL=1`: the client supports TCP non-linear mode.
    pub iv_tcpnl: bool,
    /// `IV_SSO`: the single sign-on methods the client supports (`openurl`, `webauth`, ...).
    pub iv_sso: Vec<String>,
    /// `IV_HWADDR`: the MAC address of the client's default gateway interface.
    pub iv_hwaddr: Option<String>,
    /// `IV_SSL`: the client's TLS library and version.
    pub iv_ssl: Option<String>,
    /// The compression formats the client can decode.
    pub compression: CompressionSupport,
}

/// Compression formats announced in peer info, each by `NAME=1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompressionSupport {
    /// `IV_LZO`: `comp-lzo`.
    pub lzo: bool,
    /// `IV_LZO_STUB`: the `comp-lzo no` framing only.
    pub lzo_stub: bool,
    /// `IV_LZ4`: `compress lz4`.
    pub lz4: bool,
    /// `IV_LZ4v2`: `compress lz4-v2`.
    pub lz4v2: bool,
    /// `IV_COMP_STUB`: `compress stub`.
    pub comp_stub: bool,
    /// `IV_COMP_STUBv2`: `compress stub-v2`.
    pub comp_stubv2: bool,
}

impl PeerInfo {
    /// Parses peer info text. Only the first [`MAX_PEER_INFO_LEN`] bytes are read, and junk
    /// lines and values that do not parse are skipped.
    pub fn parse(text: &str) -> Self {
        let mut info = Self::default();
        let mut seen = Seen::default();
        for line in truncate(text, MAX_PEER_INFO_LEN).split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            let Some(index) = KNOWN_NAMES.iter().position(|known| *known == name) else {
                continue;
            };
            if !seen.mark(index) {
                info.set(name, value);
            }
        }
        info
    }

    /// Returns whether the client negotiates ciphers, by sending `IV_CIPHERS` or `IV_NCP` of 2
    /// or more.
    ///
    /// A server pushes `cipher` only to these clients (OpenVPN `ssl_ncp.c`,
    /// tls_peer_supports_ncp).
    pub fn supports_ncp(&self) -> bool {
        self.iv_ciphers.is_some() || self.iv_ncp.is_some_and(|ncp| ncp >= 2)
    }

    fn set(&mut self, name: &str, value: &str) {
        let flag = value == "1";
        match name {
            "IV_VER" => self.iv_ver = Some(value.to_owned()),
            "IV_PLAT" => self.iv_plat = Some(value.to_owned()),
            "IV_PLAT_VER" => self.iv_plat_ver = Some(value.to_owned()),
            "IV_GUI_VER" => self.iv_gui_ver = Some(value.to_owned()),
            "IV_PROTO" => self.iv_proto = IvProto(parse_leading_u32(value).unwrap_or(0)),
            "IV_CIPHERS" => self.iv_ciphers = Some(split_list(value, ':')),
            "IV_NCP" => self.iv_ncp = parse_leading_u32(value),
            "IV_MTU" => self.iv_mtu = parse_leading_u32(value),
            "IV_TCPNL" => self.iv_tcpnl = flag,
            "IV_SSO" => self.iv_sso = split_list(value, ','),
            "IV_HWADDR" => self.iv_hwaddr = Some(value.to_owned()),
            "IV_SSL" => self.iv_ssl = Some(value.to_owned()),
            "IV_LZO" => self.compression.lzo = flag,
            "IV_LZO_STUB" => self.compression.lzo_stub = flag,
            "IV_LZ4" => self.compression.lz4 = flag,
            "IV_LZ4v2" => self.compression.lz4v2 = flag,
            "IV_COMP_STUB" => self.compression.comp_stub = flag,
            "IV_COMP_STUBv2" => self.compression.comp_stubv2 = flag,
            _ => {}
        }
    }
}

const KNOWN_NAMES: [&str; 18] = [
    "IV_VER",
    "IV_PLAT",
    "IV_PLAT_VER",
    "IV_GUI_VER",
    "IV_PROTO",
    "IV_CIPHERS",
    "IV_NCP",
    "IV_MTU",
    "IV_TCPNL",
    "IV_SSO",
    "IV_HWADDR",
    "IV_SSL",
    "IV_LZO",
    "IV_LZO_STUB",
    "IV_LZ4",
    "IV_LZ4v2",
    "IV_COMP_STUB",
    "IV_COMP_STUBv2",
];

/// A bit set of the [`KNOWN_NAMES`] already read.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    /// Marks a name as read and returns whether it was read before.
    fn mark(&mut self, index: usize) -> bool {
        let bit = 1 << index;
        let before = self.0 & bit != 0;
        self.0 |= bit;
        before
    }
}

/// Returns the longest prefix of `text` of at most `max` bytes that ends on a char boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Parses the leading decimal digits of `value`, as C's `%u` does after optional spaces.
/// Returns `None` when there are no digits or the number overflows.
fn parse_leading_u32(value: &str) -> Option<u32> {
    let value = value.trim_start();
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    value[..digits].parse().ok()
}

fn split_list(value: &str, separator: char) -> Vec<String> {
    value
        .split(separator)
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}
