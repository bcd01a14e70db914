//! The OCC options string: the comma-separated summary of settings each side sends in its key
//! method message, e.g.
//! `V4,dev-type tun,link-mtu 1457,tun-mtu 1400,proto UDPv4,cipher AES-128-CBC,auth SHA1,keysize 128,key-method 2,tls-client`.
//!
//! OpenVPN 2.x compares the two strings only to warn about mismatches. A server reads the
//! client's `cipher` (for clients that cannot negotiate) and `comp-lzo` from it.

/// The TLS role named at the end of an options string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsRole {
    Client,
    Server,
}

/// The settings read from a peer's options string. Unknown items are ignored, and when an
/// item repeats the first one counts, as in OpenVPN.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OccOptions {
    /// The format version, the first item: `V4` for all OpenVPN 2.x.
    pub version: Option<String>,
    pub dev_type: Option<String>,
    pub link_mtu: Option<u32>,
    pub tun_mtu: Option<u32>,
    /// `UDPv4`, `TCPv4_CLIENT` or `TCPv4_SERVER`, whatever the socket's address family.
    pub proto: Option<String>,
    /// The peer's data cipher; the `[null-cipher]` that OpenVPN sends for cipher none is
    /// returned as `none`.
    pub cipher: Option<String>,
    /// The peer's HMAC digest, `[null-digest]` for none or with an AEAD cipher.
    pub auth: Option<String>,
    pub keysize: Option<u32>,
    pub key_method: Option<u32>,
    /// The peer has a compression context (`comp-lzo` is sent for every compression mode).
    pub comp_lzo: bool,
    /// The item `compress`, which OpenVPN 2.x does not write; it is read in case a peer does.
    pub compress: bool,
    pub tls_auth: bool,
    pub tls_role: Option<TlsRole>,
}

impl OccOptions {
    /// Parses an options string. Unknown and malformed items are skipped, so parsing cannot
    /// fail.
    pub fn parse(options: &str) -> Self {
        let mut parsed = Self::default();
        let mut items = options.split(',');
        if let Some(first) = items.next() {
            parsed.version = Some(first.to_owned());
        }
        for item in items {
            let (name, value) = match item.split_once(' ') {
                Some((name, value)) => (name, Some(value)),
                None => (item, None),
            };
            parsed.set(name, value);
        }
        parsed
    }

    fn set(&mut self, name: &str, value: Option<&str>) {
        let text = |slot: &mut Option<String>| {
            if let Some(value) = value.filter(|value| !value.is_empty()) {
                slot.get_or_insert_with(|| value.to_owned());
            }
        };
        let number = |slot: &mut Option<u32>| {
            if slot.is_none() {
                *slot = value.and_then(|value| value.parse().ok());
            }
        };
        match name {
            "dev-type" => text(&mut self.dev_type),
            "link-mtu" => number(&mut self.link_mtu),
            "tun-mtu" => number(&mut self.tun_mtu),
            "proto" => text(&mut self.proto),
            "cipher" => {
                text(&mut self.cipher);
                if self.cipher.as_deref() == Some("[null-cipher]") {
                    self.cipher = Some("none".to_owned());
                }
            }
            "auth" => text(&mut self.auth),
            "keysize" => number(&mut self.keysize),
            "key-method" => number(&mut self.key_method),
            "comp-lzo" => self.comp_lzo = true,
            "compress" => self.compress = true,
            "tls-auth" => self.tls_auth = true,
            "tls-client" => {
                self.tls_role.get_or_insert(TlsRole::Client);
            }
            "tls-server" => {
                self.tls_role.get_or_insert(TlsRole::Server);
            }
            _ => {}
        }
    }
}

/// The transport as an options string names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OccProto {
    /// `UDPv4`, also for IPv6 sockets.
    Udp,
    /// `TCPv4_SERVER`, also for IPv6 sockets.
    TcpServer,
}

/// The settings that make up a server's options string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerOccConfig<'a> {
    pub proto: OccProto,
    pub tun_mtu: u16,
    /// The fallback cipher for clients that cannot negotiate (`data-ciphers-fallback`), or
    /// `None` when there is none: an OpenVPN 2.6 server then computes the string for its
    /// BF-CBC default without announcing it.
    pub fallback_cipher: Option<&'a str>,
    /// Whether the string names the fallback cipher; OpenVPN does so only when the cipher is
    /// also in its allowed list (`data-ciphers`).
    pub announce_cipher: bool,
    /// The HMAC digest for CBC ciphers (`auth`), `SHA1` by default.
    pub auth: &'a str,
    pub compression: OccCompression,
    pub tls_auth: bool,
    /// The server's `key-direction` with tls-auth.
    pub key_direction: Option<u8>,
}

/// The server's compression setting, as far as the options string shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OccCompression {
    /// No `comp-lzo` or `compress` option.
    None,
    /// A framing with a leading byte on every packet: `comp-lzo` (any mode), `compress`,
    /// `compress lz4` or `compress stub`.
    V1,
    /// `compress lz4-v2` or `compress stub-v2`, which add no byte to uncompressed packets.
    V2,
}

/// A cipher or digest name that the options string composer does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OccCipherError {
    #[error("unknown data cipher {0:?} for the options string")]
    UnknownCipher(String),
    #[error("unknown HMAC digest {0:?} for the options string")]
    UnknownDigest(String),
}

impl<'a> ServerOccConfig<'a> {
    /// Creates the settings of an OpenVPN 2.6 `server` configuration with its defaults:
    /// tun-mtu 1500, no fallback cipher, `auth SHA1`, no compression and no tls-auth.
    pub fn new(proto: OccProto) -> Self {
        Self {
            proto,
            tun_mtu: 1500,
            fallback_cipher: None,
            announce_cipher: false,
            auth: "SHA1",
            compression: OccCompression::None,
            tls_auth: false,
            key_direction: None,
        }
    }

    /// Composes the options string the way OpenVPN 2.6's options_string() does for a server
    /// in `mode server` with a tun device, e.g.
    /// `V4,dev-type tun,link-mtu 1559,tun-mtu 1500,proto TCPv4_SERVER,cipher AES-128-CBC,auth SHA1,keysize 128,key-method 2,tls-server`.
    pub fn options_string(&self) -> Result<String, OccCipherError> {
        let cipher = match self.fallback_cipher {
            Some(name) => CipherInfo::lookup(name)
                .ok_or_else(|| OccCipherError::UnknownCipher(name.to_owned()))?,
            None => &BF_CBC,
        };
        let digest = match cipher.kind {
            CipherKind::Aead { .. } => &NULL_DIGEST,
            _ => DigestInfo::lookup(self.auth)
                .ok_or_else(|| OccCipherError::UnknownDigest(self.auth.to_owned()))?,
        };
        let link_mtu = self.link_mtu(cipher, digest);
        let proto = match self.proto {
            OccProto::Udp => "UDPv4",
            OccProto::TcpServer => "TCPv4_SERVER",
        };

        let mut out = format!(
            "V4,dev-type tun,link-mtu {link_mtu},tun-mtu {},proto {proto}",
            self.tun_mtu
        );
        // OpenVPN writes comp-lzo for every compression setting.
        if self.compression != OccCompression::None {
            out.push_str(",comp-lzo");
        }
        if let Some(direction) = self.key_direction {
            out.push_str(&format!(",keydir {direction}"));
        }
        if self.announce_cipher {
            out.push_str(&format!(",cipher {}", cipher.occ_name));
        }
        out.push_str(&format!(
            ",auth {},keysize {}",
            digest.occ_name, cipher.key_bits
        ));
        if self.tls_auth {
            out.push_str(",tls-auth");
        }
        out.push_str(",key-method 2,tls-server");
        Ok(out)
    }

    /// Computes `link-mtu` as OpenVPN 2.6 does for the options string (`mtu.c`,
    /// calc_options_string_link_mtu): tun-mtu plus the largest data packet overhead. For
    /// compatibility with older versions, OpenVPN also counts an IV and a cipher block for
    /// AEAD ciphers, which their packets do not carry.
    fn link_mtu(&self, cipher: &CipherInfo, digest: &DigestInfo) -> usize {
        const PACKET_ID_LEN: usize = 4;
        let mut mtu = usize::from(self.tun_mtu);
        if self.compression == OccCompression::V1 {
            mtu += 1;
        }
        if self.proto == OccProto::TcpServer {
            mtu += 2;
        }
        // The opcode byte: the server's own string is computed before any peer-id is set.
        mtu += 1;
        mtu += PACKET_ID_LEN;
        mtu += match cipher.kind {
            CipherKind::Aead { tag_len } => tag_len + cipher.iv_len + cipher.block_len,
            CipherKind::Cbc => cipher.block_len + cipher.iv_len + digest.len,
            CipherKind::None => digest.len,
        };
        mtu
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CipherKind {
    Cbc,
    Aead { tag_len: usize },
    None,
}

/// The sizes of a data cipher that enter the options string.
struct CipherInfo {
    occ_name: &'static str,
    key_bits: usize,
    iv_len: usize,
    /// OpenVPN takes the block size of the CBC variant; ChaCha20 has none and counts 1.
    block_len: usize,
    kind: CipherKind,
}

/// OpenVPN counts BF-CBC as cipher none plus 16 bytes, the same total as a CBC cipher with an
/// 8-byte block and IV.
const BF_CBC: CipherInfo = CipherInfo {
    occ_name: "BF-CBC",
    key_bits: 128,
    iv_len: 8,
    block_len: 8,
    kind: CipherKind::Cbc,
};

const fn cipher(occ_name: &'static str, key_bits: usize, kind: CipherKind) -> CipherInfo {
    let (iv_len, block_len) = match kind {
        CipherKind::Cbc => (16, 16),
        _ => (12, 16),
    };
    CipherInfo {
        occ_name,
        key_bits,
        iv_len,
        block_len,
        kind,
    }
}

const AEAD: CipherKind = CipherKind::Aead { tag_len: 16 };

const CIPHERS: [CipherInfo; 9] = [
    cipher("AES-128-CBC", 128, CipherKind::Cbc),
    cipher("AES-192-CBC", 192, CipherKind::Cbc),
    cipher("AES-256-CBC", 256, CipherKind::Cbc),
    cipher("AES-128-GCM", 128, AEAD),
    cipher("AES-192-GCM", 192, AEAD),
    cipher("AES-256-GCM", 256, AEAD),
    CipherInfo {
        occ_name: "CHACHA20-POLY1305",
        key_bits: 256,
        iv_len: 12,
        block_len: 1,
        kind: AEAD,
    },
    BF_CBC,
    CipherInfo {
        occ_name: "[null-cipher]",
        key_bits: 0,
        iv_len: 0,
        block_len: 0,
        kind: CipherKind::None,
    },
];

impl CipherInfo {
    /// Finds a cipher by its OpenVPN name, ignoring case as OpenVPN does.
    fn lookup(name: &str) -> Option<&'static Self> {
        if name.eq_ignore_ascii_case("none") {
            return CIPHERS.last();
        }
        CIPHERS
            .iter()
            .find(|cipher| cipher.occ_name.eq_ignore_ascii_case(name))
    }
}

struct DigestInfo {
    occ_name: &'static str,
    len: usize,
}

const NULL_DIGEST: DigestInfo = DigestInfo {
    occ_name: "[null-digest]",
    len: 0,
};

const DIGESTS: [DigestInfo; 6] = [
    DigestInfo {
        occ_name: "MD5",
        len: 16,
    },
    DigestInfo {
        occ_name: "SHA1",
        len: 20,
    },
    DigestInfo {
        occ_name: "SHA224",
        len: 28,
    },
    DigestInfo {
        occ_name: "SHA256",
        len: 32,
    },
    DigestInfo {
        occ_name: "SHA384",
        len: 48,
    },
    DigestInfo {
        occ_name: "SHA512",
        len: 64,
    },
];

impl DigestInfo {
    fn lookup(name: &str) -> Option<&'static Self> {
        if name.eq_ignore_ascii_case("none") {
            return Some(&NULL_DIGEST);
        }
        let name = name.replace('-', "");
        DIGESTS
            .iter()
            .find(|digest| digest.occ_name.eq_ignore_ascii_case(&name))
    }
}
