//! Data channel cipher negotiation (NCP) as an OpenVPN 2.6 server does it.
//!
//! Sources: OpenVPN's `doc/man-sections/cipher-negotiation.rst`, `ssl_ncp.c`
//! (ncp_get_best_cipher) and `multi.c` (multi_client_set_protocol_options).
//!
//! Ciphers are names as OpenVPN spells them (`AES-256-GCM`, `none`); the caller maps the
//! result to its data channel cipher type.

use std::fmt::Write as _;

use crate::proto::keymethod::PeerInfo;

/// OpenVPN 2.6's default `data-ciphers`.
pub const DEFAULT_DATA_CIPHERS: [&str; 3] = ["AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"];

/// The ciphers an OpenVPN 2.4 client accepts when it sends `IV_NCP=2` without `IV_CIPHERS`.
const IV_NCP_2_CIPHERS: [&str; 2] = ["AES-256-GCM", "AES-128-GCM"];

/// The outcome of a successful negotiation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The chosen cipher, spelled as in the server's allowed list.
    pub cipher: String,
    /// Whether PUSH_REPLY must carry `cipher X`: true for every client that negotiates
    /// (see [`PeerInfo::supports_ncp`]), false for older clients, which would only log an
    /// error about the option.
    pub push_cipher: bool,
}

/// Errors from cipher negotiation. The caller answers them with `AUTH_FAILED`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NcpError {
    #[error("no shared data cipher: client offers {client}, server allows {server}")]
    NoSharedCipher { client: String, server: String },
    #[error(
        "client announces no data cipher and no fallback cipher is set (data-ciphers-fallback), server allows {server}"
    )]
    NoCipherAnnounced { server: String },
}

/// Chooses the data channel cipher for a client.
///
/// * `allowed`: the server's `data-ciphers`, in order of preference. A fallback cipher for
///   old clients must be in it as well, or only clients that announce no cipher can use it.
/// * `fallback`: the server's `data-ciphers-fallback`.
/// * `peer`: the client's peer info.
/// * `occ_cipher`: the `cipher` from the client's options string (see
///   [`OccOptions`](crate::proto::keymethod::OccOptions)), `None` when it sent none.
///
/// A client that sends `IV_CIPHERS` (2.5+) gets the first allowed cipher in its list. A
/// client with `IV_NCP=2` (2.4) gets the first allowed cipher that is AES-256-GCM,
/// AES-128-GCM or its options string cipher. Any other client gets its options string cipher
/// if allowed. Only a client that announces no cipher at all gets the fallback. Names compare
/// ASCII case-insensitively; OpenVPN compares the normalised names exactly.
pub fn negotiate_cipher(
    allowed: &[impl AsRef<str>],
    fallback: Option<&str>,
    peer: &PeerInfo,
    occ_cipher: Option<&str>,
) -> Result<Negotiated, NcpError> {
    let push_cipher = peer.supports_ncp();
    let offered = offered_ciphers(peer);
    // A client that lists its ciphers may not accept the one in its options string.
    let matchable_occ_cipher = occ_cipher.filter(|_| peer.iv_ciphers.is_none());

    let chosen = allowed.iter().map(AsRef::as_ref).find(|candidate| {
        offered
            .iter()
            .any(|name| name.eq_ignore_ascii_case(candidate))
            || matchable_occ_cipher.is_some_and(|name| name.eq_ignore_ascii_case(candidate))
    });
    if let Some(cipher) = chosen {
        return Ok(Negotiated {
            cipher: cipher.to_owned(),
            push_cipher,
        });
    }

    let server = allowed
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(":");
    let client = if !offered.is_empty() || matchable_occ_cipher.is_some() {
        describe_offer(&offered, matchable_occ_cipher)
    } else if let Some(cipher) = occ_cipher {
        // An empty IV_CIPHERS with a cipher in the options string.
        cipher.to_owned()
    } else {
        return match fallback {
            Some(cipher) => Ok(Negotiated {
                cipher: cipher.to_owned(),
                push_cipher,
            }),
            None => Err(NcpError::NoCipherAnnounced { server }),
        };
    };
    Err(NcpError::NoSharedCipher { client, server })
}

/// Lists the ciphers a client accepts through negotiation, without its options string cipher.
fn offered_ciphers(peer: &PeerInfo) -> Vec<&str> {
    match &peer.iv_ciphers {
        Some(list) => list.iter().map(String::as_str).collect(),
        None if peer.iv_ncp.is_some_and(|ncp| ncp >= 2) => IV_NCP_2_CIPHERS.to_vec(),
        None => Vec::new(),
    }
}

fn describe_offer(offered: &[&str], occ_cipher: Option<&str>) -> String {
    let mut text = offered.join(":");
    if let Some(cipher) = occ_cipher {
        if offered.is_empty() {
            text.push_str(cipher);
        } else {
            let _ = write!(text, " and options string cipher {cipher}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(lines: &str) -> PeerInfo {
        PeerInfo::parse(lines)
    }

    fn allowed_with_cbc() -> Vec<&'static str> {
        vec![
            "AES-256-GCM",
            "AES-128-GCM",
            "CHACHA20-POLY1305",
            "AES-128-CBC",
        ]
    }

    #[test]
    fn iv_ciphers_takes_server_order() {
        let client = peer("IV_CIPHERS=CHACHA20-POLY1305:AES-128-GCM\nIV_PROTO=990\n");
        let result = negotiate_cipher(&DEFAULT_DATA_CIPHERS, None, &client, None).unwrap();
        assert_eq!(result.cipher, "AES-128-GCM");
        assert!(result.push_cipher);
    }

    #[test]
    fn iv_ciphers_ignores_options_cipher() {
        let client = peer("IV_CIPHERS=AES-256-CBC\n");
        let error =
            negotiate_cipher(&allowed_with_cbc(), None, &client, Some("AES-128-CBC")).unwrap_err();
        assert_eq!(
            error,
            NcpError::NoSharedCipher {
                client: "AES-256-CBC".to_owned(),
                server: "AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305:AES-128-CBC".to_owned(),
            }
        );
    }

    #[test]
    fn iv_ciphers_mismatch_message_names_both_lists() {
        let client = peer("IV_CIPHERS=AES-256-CBC\n");
        let error = negotiate_cipher(&DEFAULT_DATA_CIPHERS, None, &client, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no shared data cipher: client offers AES-256-CBC, server allows \
             AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305"
        );
    }

    #[test]
    fn iv_ciphers_mismatch_skips_fallback() {
        let client = peer("IV_CIPHERS=BF-CBC\n");
        let result = negotiate_cipher(&DEFAULT_DATA_CIPHERS, Some("AES-128-CBC"), &client, None);
        assert!(matches!(result, Err(NcpError::NoSharedCipher { .. })));
    }

    #[test]
    fn openvpn3_client_gets_first_server_cipher() {
        let client = peer(
            "IV_VER=3.10\nIV_PROTO=7838\nIV_NCP=2\n\
             IV_CIPHERS=AES-128-GCM:AES-192-GCM:AES-256-GCM:CHACHA20-POLY1305\n",
        );
        let result = negotiate_cipher(&DEFAULT_DATA_CIPHERS, None, &client, None).unwrap();
        assert_eq!(result.cipher, "AES-256-GCM");
        assert!(result.push_cipher);
    }

    #[test]
    fn names_compare_without_case() {
        let client = peer("IV_CIPHERS=chacha20-poly1305\n");
        let result = negotiate_cipher(&DEFAULT_DATA_CIPHERS, None, &client, None).unwrap();
        assert_eq!(result.cipher, "CHACHA20-POLY1305");
    }

    #[test]
    fn openvpn24_gets_gcm() {
        let client = peer("IV_VER=2.4.12\nIV_PROTO=2\nIV_NCP=2\nIV_LZ4=1\n");
        let result =
            negotiate_cipher(&allowed_with_cbc(), None, &client, Some("AES-128-CBC")).unwrap();
        assert_eq!(result.cipher, "AES-256-GCM");
        assert!(result.push_cipher);
    }

    #[test]
    fn openvpn24_options_cipher_in_server_order() {
        let client = peer("IV_NCP=2\n");
        let allowed = ["AES-128-CBC", "AES-256-GCM"];
        let result = negotiate_cipher(&allowed, None, &client, Some("AES-128-CBC")).unwrap();
        assert_eq!(result.cipher, "AES-128-CBC");
        assert!(result.push_cipher);
    }

    #[test]
    fn openvpn24_without_gcm_on_server() {
        let client = peer("IV_NCP=2\n");
        let allowed = ["CHACHA20-POLY1305"];
        let error = negotiate_cipher(&allowed, None, &client, Some("BF-CBC")).unwrap_err();
        assert_eq!(
            error,
            NcpError::NoSharedCipher {
                client: "AES-256-GCM:AES-128-GCM and options string cipher BF-CBC".to_owned(),
                server: "CHACHA20-POLY1305".to_owned(),
            }
        );
    }

    #[test]
    fn ncp_disabled_client_uses_options_cipher() {
        let client = peer("IV_VER=2.4.12\nIV_PROTO=2\n");
        let result =
            negotiate_cipher(&allowed_with_cbc(), None, &client, Some("AES-128-CBC")).unwrap();
        assert_eq!(result.cipher, "AES-128-CBC");
        assert!(!result.push_cipher);
    }

    #[test]
    fn ncp_disabled_client_cipher_not_allowed() {
        let client = peer("IV_VER=2.4.12\nIV_PROTO=2\n");
        let error = negotiate_cipher(
            &DEFAULT_DATA_CIPHERS,
            Some("AES-256-CBC"),
            &client,
            Some("AES-256-CBC"),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "no shared data cipher: client offers AES-256-CBC, server allows \
             AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305"
        );
    }

    #[test]
    fn silent_client_gets_fallback() {
        let client = PeerInfo::default();
        let result =
            negotiate_cipher(&DEFAULT_DATA_CIPHERS, Some("AES-128-CBC"), &client, None).unwrap();
        assert_eq!(result.cipher, "AES-128-CBC");
        assert!(!result.push_cipher);
    }

    #[test]
    fn silent_client_without_fallback() {
        let client = PeerInfo::default();
        let error = negotiate_cipher(&DEFAULT_DATA_CIPHERS, None, &client, None).unwrap_err();
        assert_eq!(
            error,
            NcpError::NoCipherAnnounced {
                server: "AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305".to_owned(),
            }
        );
    }

    #[test]
    fn null_cipher_from_options() {
        let client = PeerInfo::default();
        let allowed = ["AES-256-GCM", "none"];
        let result = negotiate_cipher(&allowed, None, &client, Some("none")).unwrap();
        assert_eq!(result.cipher, "none");
    }

    #[test]
    fn empty_iv_ciphers_gets_fallback() {
        let client = peer("IV_CIPHERS=\n");
        let result =
            negotiate_cipher(&DEFAULT_DATA_CIPHERS, Some("AES-128-CBC"), &client, None).unwrap();
        assert_eq!(result.cipher, "AES-128-CBC");
        assert!(result.push_cipher);
    }

    #[test]
    fn empty_iv_ciphers_with_options_cipher() {
        let client = peer("IV_CIPHERS=\n");
        let error = negotiate_cipher(
            &allowed_with_cbc(),
            Some("AES-128-CBC"),
            &client,
            Some("AES-128-CBC"),
        )
        .unwrap_err();
        assert_eq!(
            error,
            NcpError::NoSharedCipher {
                client: "AES-128-CBC".to_owned(),
                server: "AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305:AES-128-CBC".to_owned(),
            }
        );
    }
}
