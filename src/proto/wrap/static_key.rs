//! OpenVPN static key files, as used by `tls-auth` and `tls-crypt` (`ta.key`).
//!
//! The file contains 2048 bits in hex between the lines `-----BEGIN OpenVPN Static key V1-----`
//! and `-----END OpenVPN Static key V1-----`; `openvpn --genkey secret` writes 16 bytes per
//! line. Lines before the header are comments. The 256 bytes are two sets of
//! (64-byte cipher key, 64-byte HMAC key) (`read_key_file` and `write_key_file` in OpenVPN's
//! `crypto.c`).

use std::fmt;

use aws_lc_rs::rand::SecureRandom;

/// Length of a static key in bytes.
pub const STATIC_KEY_LEN: usize = 256;

/// Length of each cipher key and HMAC key inside a static key.
const PART_LEN: usize = 64;

const HEADER: &str = "-----BEGIN OpenVPN Static key V1-----";
const FOOTER: &str = "-----END OpenVPN Static key V1-----";
const BYTES_PER_LINE: usize = 16;

/// Errors from reading a static key file. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaticKeyError {
    #[error("static key header line '{HEADER}' not found")]
    MissingHeader,
    #[error("static key footer line '{FOOTER}' not found")]
    MissingFooter,
    #[error("invalid character {character:?} on line {line} of the static key")]
    InvalidCharacter { line: usize, character: char },
    #[error("static key has an odd number of hex digits")]
    OddDigitCount,
    #[error(
        "static key contains {0} bytes, expected 256 (generate one with `openvpn --genkey secret`)"
    )]
    WrongLength(usize),
    #[error("random number generator failed")]
    Random,
}

/// A 2048-bit OpenVPN static key. `Debug` never prints the key, and the bytes are overwritten
/// with zeros on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticKey {
    bytes: [u8; STATIC_KEY_LEN],
}

impl StaticKey {
    /// Creates a key from raw bytes, such as 256 bytes from a secure random source.
    pub fn from_bytes(bytes: [u8; STATIC_KEY_LEN]) -> StaticKey {
        StaticKey { bytes }
    }

    /// Generates a new key from a secure random source, e.g. `aws_lc_rs::rand::SystemRandom`.
    pub fn generate(random: &dyn SecureRandom) -> Result<StaticKey, StaticKeyError> {
        let mut key = StaticKey::from_bytes([0; STATIC_KEY_LEN]);
        random
            .fill(&mut key.bytes)
            .map_err(|_| StaticKeyError::Random)?;
        Ok(key)
    }

    /// Parses the text of a static key file.
    ///
    /// Text before the header line is ignored, as are whitespace and line breaks (LF or
    /// CRLF) between the hex digits. Exactly 256 bytes must follow the header, then the
    /// footer line. OpenVPN also accepts files with a single 128-byte key set; this parser
    /// rejects them because tls-auth with a key direction and tls-crypt need both sets.
    pub fn parse(text: &str) -> Result<StaticKey, StaticKeyError> {
        let mut lines = text.lines().enumerate();
        lines
            .by_ref()
            .find(|(_, line)| line.trim().starts_with(HEADER))
            .ok_or(StaticKeyError::MissingHeader)?;

        let mut key = StaticKey::from_bytes([0; STATIC_KEY_LEN]);
        let mut count = 0;
        let mut high_nibble: Option<u8> = None;
        let mut footer_found = false;
        for (index, line) in lines {
            let line = line.trim();
            if line.starts_with('-') {
                footer_found = line.starts_with(FOOTER);
                break;
            }
            for character in line.chars() {
                if character.is_ascii_whitespace() {
                    continue;
                }
                let Some(nibble) = character.to_digit(16) else {
                    return Err(StaticKeyError::InvalidCharacter {
                        line: index + 1,
                        character,
                    });
                };
                let nibble = nibble as u8;
                let Some(high) = high_nibble.take() else {
                    high_nibble = Some(nibble);
                    continue;
                };
                if let Some(slot) = key.bytes.get_mut(count) {
                    *slot = high << 4 | nibble;
                }
                count += 1;
            }
        }

        if !footer_found {
            return Err(StaticKeyError::MissingFooter);
        }
        if high_nibble.is_some() {
            return Err(StaticKeyError::OddDigitCount);
        }
        if count != STATIC_KEY_LEN {
            return Err(StaticKeyError::WrongLength(count));
        }
        Ok(key)
    }

    /// Returns the key in OpenVPN's file format, as `openvpn --genkey secret` writes it.
    pub fn to_file_text(&self) -> String {
        let mut text = String::from("#\n# 2048 bit OpenVPN static key\n#\n");
        text.push_str(HEADER);
        text.push('\n');
        for line in self.bytes.chunks(BYTES_PER_LINE) {
            for byte in line {
                text.push_str(&format!("{byte:02x}"));
            }
            text.push('\n');
        }
        text.push_str(FOOTER);
        text.push('\n');
        text
    }

    /// Returns the 256 key bytes.
    pub fn as_bytes(&self) -> &[u8; STATIC_KEY_LEN] {
        &self.bytes
    }

    /// Returns the 64-byte cipher key of set 0 or 1.
    pub(crate) fn cipher_key(&self, set: KeySet) -> &[u8] {
        let start = set.offset();
        &self.bytes[start..start + PART_LEN]
    }

    /// Returns the 64-byte HMAC key of set 0 or 1.
    pub(crate) fn hmac_key(&self, set: KeySet) -> &[u8] {
        let start = set.offset() + PART_LEN;
        &self.bytes[start..start + PART_LEN]
    }
}

/// One of the two (cipher key, HMAC key) sets in a static key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySet {
    First,
    Second,
}

impl KeySet {
    fn offset(self) -> usize {
        match self {
            KeySet::First => 0,
            KeySet::Second => 2 * PART_LEN,
        }
    }
}

impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticKey(..)")
    }
}

impl Drop for StaticKey {
    fn drop(&mut self) {
        for byte in self.bytes.iter_mut() {
            // SAFETY: `byte` is a valid, aligned, exclusive reference. The volatile write keeps
            // the compiler from removing the zeroing as a dead store.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting_key() -> StaticKey {
        let mut bytes = [0; STATIC_KEY_LEN];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = index as u8;
        }
        StaticKey::from_bytes(bytes)
    }

    #[test]
    fn file_text_round_trip() {
        let key = counting_key();
        let text = key.to_file_text();
        assert_eq!(StaticKey::parse(&text), Ok(key));
    }

    #[test]
    fn file_text_layout() {
        let text = counting_key().to_file_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3 + 1 + 16 + 1);
        assert_eq!(lines[1], "# 2048 bit OpenVPN static key");
        assert_eq!(lines[3], HEADER);
        assert_eq!(lines[4], "000102030405060708090a0b0c0d0e0f");
        assert_eq!(lines[19], "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
        assert_eq!(lines[20], FOOTER);
    }

    #[test]
    fn parse_accepts_crlf_and_uppercase() {
        let key = counting_key();
        let text = key.to_file_text().to_uppercase().replace('\n', "\r\n");
        let text = text.replace("-----BEGIN OPENVPN STATIC KEY V1-----", HEADER);
        let text = text.replace("-----END OPENVPN STATIC KEY V1-----", FOOTER);
        assert_eq!(StaticKey::parse(&text), Ok(key));
    }

    #[test]
    fn parse_rejects_missing_header() {
        assert_eq!(
            StaticKey::parse("0011\n"),
            Err(StaticKeyError::MissingHeader)
        );
    }

    #[test]
    fn parse_rejects_missing_footer() {
        let text = counting_key().to_file_text().replace(FOOTER, "");
        assert_eq!(StaticKey::parse(&text), Err(StaticKeyError::MissingFooter));
    }

    #[test]
    fn parse_rejects_short_key() {
        let text = format!("{HEADER}\n{}\n{FOOTER}\n", "00".repeat(128));
        assert_eq!(
            StaticKey::parse(&text),
            Err(StaticKeyError::WrongLength(128))
        );
    }

    #[test]
    fn parse_rejects_long_key() {
        let text = format!("{HEADER}\n{}\n{FOOTER}\n", "00".repeat(257));
        assert_eq!(
            StaticKey::parse(&text),
            Err(StaticKeyError::WrongLength(257))
        );
    }

    #[test]
    fn parse_rejects_bad_character() {
        let text = format!("# comment\n{HEADER}\n00zz\n{FOOTER}\n");
        assert_eq!(
            StaticKey::parse(&text),
            Err(StaticKeyError::InvalidCharacter {
                line: 3,
                character: 'z',
            })
        );
    }

    #[test]
    fn parse_rejects_odd_digits() {
        let text = format!("{HEADER}\n{}0\n{FOOTER}\n", "00".repeat(256));
        assert_eq!(StaticKey::parse(&text), Err(StaticKeyError::OddDigitCount));
    }

    #[test]
    fn key_sets_split_file() {
        let key = counting_key();
        assert_eq!(key.cipher_key(KeySet::First)[0], 0);
        assert_eq!(key.hmac_key(KeySet::First)[0], 64);
        assert_eq!(key.cipher_key(KeySet::Second)[0], 128);
        assert_eq!(key.hmac_key(KeySet::Second)[0], 192);
        assert_eq!(key.hmac_key(KeySet::Second).len(), 64);
    }

    #[test]
    fn generate_fills_random_bytes() {
        let random = aws_lc_rs::rand::SystemRandom::new();
        let first = StaticKey::generate(&random).unwrap();
        let second = StaticKey::generate(&random).unwrap();
        assert_ne!(first, second);
        assert_ne!(first.as_bytes(), &[0; STATIC_KEY_LEN]);
    }

    #[test]
    fn debug_hides_key() {
        assert_eq!(format!("{:?}", counting_key()), "StaticKey(..)");
    }
}
