//! Certificate serial numbers.

use std::fmt;
use std::str::FromStr;

use super::PkiError;

/// Length of the serial numbers this PKI issues, in bytes.
pub const SERIAL_LENGTH: usize = 16;

/// A certificate serial number: the big-endian magnitude of a positive DER INTEGER, without
/// leading zero bytes. Displayed and parsed as upper-case hex, as `openssl x509 -serial` prints it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// Draws a random serial of [`SERIAL_LENGTH`] bytes from the system CSPRNG.
    ///
    /// The top byte is forced into 0x40..=0x7F, so the INTEGER is positive, has no leading zero
    /// byte to strip, and always prints as 32 hex digits. That leaves 126 random bits, so a
    /// collision is negligible; issuing still checks the index for one.
    pub fn random() -> Result<Self, PkiError> {
        let mut bytes = [0u8; SERIAL_LENGTH];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PkiError::Random)?;
        bytes[0] = (bytes[0] & 0x3f) | 0x40;
        Ok(Self(bytes.to_vec()))
    }

    /// Builds a serial from the content bytes of a DER INTEGER, as x509-parser and rustls return
    /// them. Leading zero bytes, which only mark the number positive, are dropped.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        Self(bytes[start..].to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("00");
        }
        for byte in &self.0 {
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

impl FromStr for Serial {
    type Err = PkiError;

    /// Parses hex digits in either case, with or without ':' separators.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || PkiError::InvalidSerial {
            text: text.to_owned(),
        };
        let digits: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
        if digits.is_empty() || !digits.len().is_multiple_of(2) || digits.len() > 2 * 20 {
            return Err(invalid());
        }
        let mut bytes = Vec::with_capacity(digits.len() / 2);
        for pair in digits.chunks(2) {
            let high = hex_value(pair[0]).ok_or_else(invalid)?;
            let low = hex_value(pair[1]).ok_or_else(invalid)?;
            bytes.push(high << 4 | low);
        }
        Ok(Self::from_bytes(&bytes))
    }
}

impl serde::Serialize for Serial {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Serial {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serial_shape() {
        let serial = Serial::random().expect("random serial");
        assert_eq!(serial.as_bytes().len(), SERIAL_LENGTH);
        let top = serial.as_bytes()[0];
        assert!((0x40..=0x7f).contains(&top), "top byte {top:#x}");
        assert_eq!(serial.to_string().len(), 2 * SERIAL_LENGTH);
    }

    #[test]
    fn random_serials_differ() {
        let first = Serial::random().expect("random serial");
        let second = Serial::random().expect("random serial");
        assert_ne!(first, second);
    }

    #[test]
    fn leading_zero_dropped() {
        assert_eq!(
            Serial::from_bytes(&[0x00, 0x80, 0x01]).as_bytes(),
            &[0x80, 0x01]
        );
    }

    #[test]
    fn hex_round_trip() {
        let serial = Serial::from_bytes(&[0x4a, 0x0b, 0xff]);
        assert_eq!(serial.to_string(), "4A0BFF");
        assert_eq!("4a:0b:ff".parse::<Serial>().expect("parses"), serial);
        assert_eq!("4A0BFF".parse::<Serial>().expect("parses"), serial);
    }

    #[test]
    fn bad_hex_rejected() {
        for text in ["", "4", "4G", "xyz1", &"00".repeat(21)] {
            assert!(text.parse::<Serial>().is_err(), "{text:?} was accepted");
        }
    }
}
