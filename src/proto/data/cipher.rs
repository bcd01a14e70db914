//! Data channel cipher and HMAC digest names, as OpenVPN spells them.

use aws_lc_rs::{aead, cipher, hmac};

/// A cipher name or digest name that this data channel does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported data channel {kind} {name:?}")]
pub struct UnsupportedAlgorithm {
    /// "cipher" or "digest".
    pub kind: &'static str,
    /// The name as given.
    pub name: String,
}

/// A data channel cipher (`--cipher`, `--data-ciphers`).
///
/// BF-CBC and the other 64-bit block ciphers of very old peers are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataCipher {
    Aes128Gcm,
    Aes192Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    /// No encryption (`cipher none`); packets are still authenticated unless `auth none`.
    None,
}

impl DataCipher {
    /// Every supported cipher, AEAD ciphers first.
    pub const ALL: [DataCipher; 8] = [
        DataCipher::Aes128Gcm,
        DataCipher::Aes192Gcm,
        DataCipher::Aes256Gcm,
        DataCipher::ChaCha20Poly1305,
        DataCipher::Aes128Cbc,
        DataCipher::Aes192Cbc,
        DataCipher::Aes256Cbc,
        DataCipher::None,
    ];

    /// Parses a cipher name case-insensitively.
    ///
    /// Accepts OpenVPN's names ("AES-256-GCM", "CHACHA20-POLY1305", "AES-128-CBC", "none"),
    /// the "[null-cipher]" that an OpenVPN options string writes for `cipher none`, and
    /// OpenSSL's long names for AES-GCM ("id-aes256-GCM").
    pub fn from_openvpn_name(name: &str) -> Result<Self, UnsupportedAlgorithm> {
        const ALIASES: [(&str, DataCipher); 4] = [
            ("id-aes128-GCM", DataCipher::Aes128Gcm),
            ("id-aes192-GCM", DataCipher::Aes192Gcm),
            ("id-aes256-GCM", DataCipher::Aes256Gcm),
            ("[null-cipher]", DataCipher::None),
        ];
        let canonical = Self::ALL
            .iter()
            .map(|&cipher| (cipher.openvpn_name(), cipher));
        canonical
            .chain(ALIASES)
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, cipher)| cipher)
            .ok_or_else(|| UnsupportedAlgorithm {
                kind: "cipher",
                name: name.to_owned(),
            })
    }

    /// Returns the name that OpenVPN uses in `cipher` and `data-ciphers` options.
    pub fn openvpn_name(self) -> &'static str {
        match self {
            DataCipher::Aes128Gcm => "AES-128-GCM",
            DataCipher::Aes192Gcm => "AES-192-GCM",
            DataCipher::Aes256Gcm => "AES-256-GCM",
            DataCipher::ChaCha20Poly1305 => "CHACHA20-POLY1305",
            DataCipher::Aes128Cbc => "AES-128-CBC",
            DataCipher::Aes192Cbc => "AES-192-CBC",
            DataCipher::Aes256Cbc => "AES-256-CBC",
            DataCipher::None => "none",
        }
    }

    /// Returns the name written after `cipher` in the key method 2 options string;
    /// OpenVPN writes "[null-cipher]" there for `cipher none`.
    pub fn options_string_name(self) -> &'static str {
        match self {
            DataCipher::None => "[null-cipher]",
            other => other.openvpn_name(),
        }
    }

    /// Reports whether the cipher is an AEAD cipher, which ignores `--auth`.
    pub fn is_aead(self) -> bool {
        self.aead_algorithm().is_some()
    }

    /// Returns the key length in bytes (0 for `none`).
    pub fn key_len(self) -> usize {
        match self {
            DataCipher::Aes128Gcm | DataCipher::Aes128Cbc => 16,
            DataCipher::Aes192Gcm | DataCipher::Aes192Cbc => 24,
            DataCipher::Aes256Gcm | DataCipher::Aes256Cbc | DataCipher::ChaCha20Poly1305 => 32,
            DataCipher::None => 0,
        }
    }

    pub(crate) fn aead_algorithm(self) -> Option<&'static aead::Algorithm> {
        match self {
            DataCipher::Aes128Gcm => Some(&aead::AES_128_GCM),
            DataCipher::Aes192Gcm => Some(&aead::AES_192_GCM),
            DataCipher::Aes256Gcm => Some(&aead::AES_256_GCM),
            DataCipher::ChaCha20Poly1305 => Some(&aead::CHACHA20_POLY1305),
            _ => None,
        }
    }

    pub(crate) fn cbc_algorithm(self) -> Option<&'static cipher::Algorithm> {
        match self {
            DataCipher::Aes128Cbc => Some(&cipher::AES_128),
            DataCipher::Aes192Cbc => Some(&cipher::AES_192),
            DataCipher::Aes256Cbc => Some(&cipher::AES_256),
            _ => None,
        }
    }

    /// Returns the number of encrypted 16-byte blocks plus packets after which a key
    /// should be replaced, or `None` when the cipher has no such limit.
    ///
    /// OpenVPN 2.7 (`cipher_get_aead_limits`, `tls_get_limit_aead`) uses 2^36 - 1 for
    /// AES-GCM, from the AEAD confidentiality bound at a 2^-57 attack probability, and
    /// renegotiates at 7/8 of it. ChaCha20-Poly1305 has no limit there.
    pub(crate) fn aead_usage_limit(self) -> Option<u64> {
        match self {
            DataCipher::Aes128Gcm | DataCipher::Aes192Gcm | DataCipher::Aes256Gcm => {
                Some(((1u64 << 36) - 1) / 8 * 7)
            }
            _ => None,
        }
    }
}

/// The HMAC digest of CBC and `none` ciphers (`--auth`). AEAD ciphers ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AuthDigest {
    /// OpenVPN's default.
    #[default]
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    /// No HMAC (`auth none`): received packets are not authenticated at all.
    None,
}

impl AuthDigest {
    /// Every supported digest.
    pub const ALL: [AuthDigest; 6] = [
        AuthDigest::Sha1,
        AuthDigest::Sha224,
        AuthDigest::Sha256,
        AuthDigest::Sha384,
        AuthDigest::Sha512,
        AuthDigest::None,
    ];

    /// Parses a digest name case-insensitively.
    ///
    /// Accepts OpenVPN's names ("SHA1", "SHA256", "none"), OpenSSL 3's names ("SHA2-256")
    /// and the "[null-digest]" that an OpenVPN options string writes for `auth none`.
    pub fn from_openvpn_name(name: &str) -> Result<Self, UnsupportedAlgorithm> {
        const ALIASES: [(&str, AuthDigest); 10] = [
            ("SHA-1", AuthDigest::Sha1),
            ("SHA2-224", AuthDigest::Sha224),
            ("SHA-224", AuthDigest::Sha224),
            ("SHA2-256", AuthDigest::Sha256),
            ("SHA-256", AuthDigest::Sha256),
            ("SHA2-384", AuthDigest::Sha384),
            ("SHA-384", AuthDigest::Sha384),
            ("SHA2-512", AuthDigest::Sha512),
            ("SHA-512", AuthDigest::Sha512),
            ("[null-digest]", AuthDigest::None),
        ];
        let canonical = Self::ALL
            .iter()
            .map(|&digest| (digest.openvpn_name(), digest));
        canonical
            .chain(ALIASES)
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, digest)| digest)
            .ok_or_else(|| UnsupportedAlgorithm {
                kind: "digest",
                name: name.to_owned(),
            })
    }

    /// Returns the name that OpenVPN uses in the `auth` option.
    pub fn openvpn_name(self) -> &'static str {
        match self {
            AuthDigest::Sha1 => "SHA1",
            AuthDigest::Sha224 => "SHA224",
            AuthDigest::Sha256 => "SHA256",
            AuthDigest::Sha384 => "SHA384",
            AuthDigest::Sha512 => "SHA512",
            AuthDigest::None => "none",
        }
    }

    /// Returns the name written after `auth` in the key method 2 options string;
    /// OpenVPN writes "[null-digest]" there for `auth none`.
    pub fn options_string_name(self) -> &'static str {
        match self {
            AuthDigest::None => "[null-digest]",
            other => other.openvpn_name(),
        }
    }

    /// Returns the HMAC output length in bytes, which is also the number of bytes of the
    /// 64-byte HMAC key that OpenVPN uses as the key (0 for `none`).
    pub fn output_len(self) -> usize {
        self.hmac_algorithm()
            .map_or(0, |algorithm| algorithm.digest_algorithm().output_len())
    }

    pub(crate) fn hmac_algorithm(self) -> Option<hmac::Algorithm> {
        match self {
            AuthDigest::Sha1 => Some(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
            AuthDigest::Sha224 => Some(hmac::HMAC_SHA224),
            AuthDigest::Sha256 => Some(hmac::HMAC_SHA256),
            AuthDigest::Sha384 => Some(hmac::HMAC_SHA384),
            AuthDigest::Sha512 => Some(hmac::HMAC_SHA512),
            AuthDigest::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names_round_trip() {
        for cipher in DataCipher::ALL {
            let parsed = DataCipher::from_openvpn_name(cipher.openvpn_name());
            assert_eq!(parsed, Ok(cipher));
            let from_options = DataCipher::from_openvpn_name(cipher.options_string_name());
            assert_eq!(from_options, Ok(cipher));
        }
    }

    #[test]
    fn cipher_names_ignore_case() {
        assert_eq!(
            DataCipher::from_openvpn_name("aes-256-gcm"),
            Ok(DataCipher::Aes256Gcm)
        );
        assert_eq!(
            DataCipher::from_openvpn_name("ChaCha20-Poly1305"),
            Ok(DataCipher::ChaCha20Poly1305)
        );
        assert_eq!(DataCipher::from_openvpn_name("NONE"), Ok(DataCipher::None));
        assert_eq!(
            DataCipher::from_openvpn_name("[null-cipher]"),
            Ok(DataCipher::None)
        );
    }

    #[test]
    fn cipher_unknown_name_rejected() {
        let error = DataCipher::from_openvpn_name("BF-CBC").unwrap_err();
        assert_eq!(error.name, "BF-CBC");
        assert_eq!(
            error.to_string(),
            "unsupported data channel cipher \"BF-CBC\""
        );
    }

    #[test]
    fn cipher_properties() {
        assert!(DataCipher::Aes128Gcm.is_aead());
        assert!(DataCipher::ChaCha20Poly1305.is_aead());
        assert!(!DataCipher::Aes256Cbc.is_aead());
        assert!(!DataCipher::None.is_aead());
        assert_eq!(DataCipher::Aes192Gcm.key_len(), 24);
        assert_eq!(DataCipher::ChaCha20Poly1305.key_len(), 32);
        assert_eq!(DataCipher::None.key_len(), 0);
        assert_eq!(DataCipher::None.options_string_name(), "[null-cipher]");
    }

    #[test]
    fn digest_names_round_trip() {
        for digest in AuthDigest::ALL {
            let parsed = AuthDigest::from_openvpn_name(digest.openvpn_name());
            assert_eq!(parsed, Ok(digest));
            let from_options = AuthDigest::from_openvpn_name(digest.options_string_name());
            assert_eq!(from_options, Ok(digest));
        }
        assert_eq!(
            AuthDigest::from_openvpn_name("sha2-256"),
            Ok(AuthDigest::Sha256)
        );
        assert!(AuthDigest::from_openvpn_name("MD5").is_err());
    }

    #[test]
    fn digest_output_lengths() {
        assert_eq!(AuthDigest::Sha1.output_len(), 20);
        assert_eq!(AuthDigest::Sha256.output_len(), 32);
        assert_eq!(AuthDigest::Sha512.output_len(), 64);
        assert_eq!(AuthDigest::None.output_len(), 0);
        assert_eq!(AuthDigest::default(), AuthDigest::Sha1);
    }
}
