//! The sending half of a data channel key.

use core::ops::Range;

use aws_lc_rs::{aead, cipher, hmac, rand};
use zeroize::Zeroizing;

use super::cipher::DataCipher;
use super::error::DataError;
use super::keys::{
    AEAD_TAG_LEN, AeadKey, CBC_BLOCK_LEN, DirectionKey, PACKET_ID_LEN, RenegotiationReason,
    aead_aad_range, check_header_len,
};

/// OpenVPN's `PACKET_ID_WRAP_TRIGGER`: past this id a sender should renegotiate.
const PACKET_ID_WRAP_TRIGGER: u32 = 0xFF00_0000;

/// Encrypts outgoing data packets with one direction of a negotiated key.
///
/// Packet layouts, after the 1-byte DATA_V1 or 4-byte DATA_V2 header:
/// - AEAD: `packet id (u32 BE) | tag (16) | ciphertext`. The nonce is the packet id
///   followed by the first 8 bytes of this direction's HMAC key slot. The additional data
///   is the DATA_V2 header and the packet id, or with DATA_V1 the packet id alone.
/// - CBC: `HMAC | IV (16) | CBC(packet id | payload | PKCS#7 padding)`, the HMAC computed
///   over the IV and the ciphertext. With `auth none` the HMAC field is absent.
/// - `cipher none`: `HMAC | packet id | payload`, the HMAC computed over the packet id and
///   the payload. With `auth none` the HMAC field is absent.
///
/// # Buffer contract
///
/// [`Encryptor::encrypt_in_place`] works inside the caller's buffer: the payload must be
/// preceded by at least [`Encryptor::headroom`] bytes (at most [`MAX_HEADROOM`]) and, for
/// CBC, followed by [`Encryptor::tailroom`] bytes (at most [`MAX_TAILROOM`]) for the
/// padding. Neither method allocates except [`Encryptor::encrypt`] when `out` is too small.
///
/// Packet ids start at 1. After 0xFFFFFFFF the encryptor refuses to send, so the session
/// must renegotiate when [`Encryptor::renegotiation_needed`] reports a reason.
pub struct Encryptor {
    cipher: DataCipher,
    hmac_len: usize,
    sealer: Sealer,
    last_packet_id: u32,
    /// 16-byte blocks encrypted so far, for the AES-GCM usage limit.
    plaintext_blocks: u64,
}

/// The maximum number of bytes that any cipher writes before the payload: DATA_V2
/// header, SHA512 HMAC, CBC IV and packet id.
pub const MAX_HEADROOM: usize = 4 + 64 + CBC_BLOCK_LEN + PACKET_ID_LEN;
/// The maximum number of bytes that any cipher writes after the payload: a full block of
/// CBC padding.
pub const MAX_TAILROOM: usize = CBC_BLOCK_LEN;

enum Sealer {
    Aead(AeadKey),
    /// Boxed because the AES and HMAC contexts are large.
    Cbc(Box<CbcSealer>),
    Plain {
        hmac: Option<Box<hmac::Key>>,
    },
}

struct CbcSealer {
    key: cipher::EncryptingKey,
    hmac: Option<Box<hmac::Key>>,
    ivs: CbcIvSource,
}

impl Encryptor {
    pub(crate) fn new(key: &DirectionKey<'_>) -> Result<Self, DataError> {
        let sealer = if let Some(aead_key) = key.aead_key()? {
            Sealer::Aead(aead_key)
        } else if let Some(unbound) = key.cbc_key()? {
            let setup_error = |_| DataError::KeySetup {
                cipher: key.cipher.openvpn_name(),
            };
            Sealer::Cbc(Box::new(CbcSealer {
                key: cipher::EncryptingKey::cbc(unbound).map_err(setup_error)?,
                hmac: key.hmac_key(),
                ivs: CbcIvSource::new().map_err(setup_error)?,
            }))
        } else {
            Sealer::Plain {
                hmac: key.hmac_key(),
            }
        };
        Ok(Encryptor {
            cipher: key.cipher,
            hmac_len: key.digest.output_len(),
            sealer,
            last_packet_id: 0,
            plaintext_blocks: 0,
        })
    }

    /// Returns the cipher of this key.
    pub fn cipher(&self) -> DataCipher {
        self.cipher
    }

    /// Returns the packet id of the last packet sent, 0 before the first.
    pub fn last_packet_id(&self) -> u32 {
        self.last_packet_id
    }

    /// Returns the number of bytes written before the payload for a header of
    /// `header_len` bytes: header, HMAC, IV and packet id, or header, packet id and tag.
    pub fn headroom(&self, header_len: usize) -> usize {
        let crypto = match self.sealer {
            Sealer::Aead(_) => PACKET_ID_LEN + AEAD_TAG_LEN,
            Sealer::Cbc(_) => self.hmac_len + CBC_BLOCK_LEN + PACKET_ID_LEN,
            Sealer::Plain { .. } => self.hmac_len + PACKET_ID_LEN,
        };
        header_len + crypto
    }

    /// Returns the most bytes written after the payload: 16 for CBC padding, else 0.
    pub fn tailroom(&self) -> usize {
        match self.sealer {
            Sealer::Cbc(_) => CBC_BLOCK_LEN,
            _ => 0,
        }
    }

    /// Returns the length of the packet that a payload of `payload_len` bytes becomes.
    pub fn packet_len(&self, header_len: usize, payload_len: usize) -> usize {
        self.headroom(header_len) + payload_len + self.padding_len(payload_len)
    }

    fn padding_len(&self, payload_len: usize) -> usize {
        match self.sealer {
            Sealer::Cbc(_) => CBC_BLOCK_LEN - (PACKET_ID_LEN + payload_len) % CBC_BLOCK_LEN,
            _ => 0,
        }
    }

    /// Reports whether this key should be replaced by a renegotiation, and why.
    pub fn renegotiation_needed(&self) -> Option<RenegotiationReason> {
        if self.last_packet_id >= PACKET_ID_WRAP_TRIGGER {
            return Some(RenegotiationReason::PacketIdNearWrap);
        }
        let limit = self.cipher.aead_usage_limit()?;
        let used = self.plaintext_blocks + u64::from(self.last_packet_id);
        (used > limit).then_some(RenegotiationReason::AeadUsageLimit)
    }

    /// Encrypts `payload` into `out`, replacing its contents with the whole packet.
    ///
    /// `out` is cleared first. It allocates only while its capacity is below
    /// [`Encryptor::packet_len`]. On error the contents of `out` are unspecified.
    pub fn encrypt(
        &mut self,
        header: &[u8],
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), DataError> {
        check_header_len(header.len())?;
        let headroom = self.headroom(header.len());
        let payload_end = headroom + payload.len();
        out.clear();
        out.resize(headroom, 0);
        out.extend_from_slice(payload);
        out.resize(payload_end + self.padding_len(payload.len()), 0);
        let packet = self.encrypt_in_place(header, out, headroom..payload_end)?;
        out.truncate(packet.end);
        Ok(())
    }

    /// Encrypts `buf[payload]` in place and writes the header and the crypto fields in
    /// front of it. Returns the range of the finished packet within `buf`.
    ///
    /// Requires `payload.start >= self.headroom(header.len())` and, for CBC, room after
    /// `payload.end` for the padding (see [`Encryptor::tailroom`]).
    pub fn encrypt_in_place(
        &mut self,
        header: &[u8],
        buf: &mut [u8],
        payload: Range<usize>,
    ) -> Result<Range<usize>, DataError> {
        let (headroom, padding) = self.check_buffer(header.len(), buf.len(), &payload)?;
        let packet_id = self.next_packet_id()?;

        let packet_start = payload.start - headroom;
        let packet = &mut buf[packet_start..payload.end + padding];
        packet[..header.len()].copy_from_slice(header);
        let id_start = headroom - PACKET_ID_LEN - self.id_offset();
        packet[id_start..id_start + PACKET_ID_LEN].copy_from_slice(&packet_id);

        self.seal(packet, header.len(), packet_id, padding)?;
        Ok(packet_start..payload.end + padding)
    }

    /// Checks the header length and the room around the payload, and returns the
    /// headroom and the padding length that the packet needs.
    fn check_buffer(
        &self,
        header_len: usize,
        buf_len: usize,
        payload: &Range<usize>,
    ) -> Result<(usize, usize), DataError> {
        check_header_len(header_len)?;
        if payload.start > payload.end || payload.end > buf_len {
            return Err(DataError::InvalidPayloadRange {
                start: payload.start,
                end: payload.end,
                len: buf_len,
            });
        }
        let headroom = self.headroom(header_len);
        if payload.start < headroom {
            return Err(DataError::InsufficientHeadroom {
                needed: headroom,
                available: payload.start,
            });
        }
        let padding = self.padding_len(payload.len());
        if buf_len - payload.end < padding {
            return Err(DataError::InsufficientTailroom {
                needed: padding,
                available: buf_len - payload.end,
            });
        }
        Ok((headroom, padding))
    }

    /// Encrypts and authenticates `packet`, which already contains the header and the
    /// packet id and ends with `padding` bytes of room for CBC.
    fn seal(
        &mut self,
        packet: &mut [u8],
        header_len: usize,
        packet_id: [u8; PACKET_ID_LEN],
        padding: usize,
    ) -> Result<(), DataError> {
        let payload_start = self.headroom(header_len);
        let payload_end = packet.len() - padding;
        let encryption_failed = |_| DataError::EncryptionFailed {
            cipher: self.cipher.openvpn_name(),
        };
        match &mut self.sealer {
            Sealer::Aead(aead_key) => {
                let nonce = aead_key.nonce(packet_id);
                seal_aead(&aead_key.key, nonce, packet, header_len, payload_start)
                    .map_err(encryption_failed)?;
                let payload_len = payload_end - payload_start;
                self.plaintext_blocks += payload_len.div_ceil(CBC_BLOCK_LEN) as u64 + 1;
            }
            Sealer::Cbc(cbc) => {
                let CbcSealer { key, hmac, ivs } = &mut **cbc;
                let iv_start = header_len + self.hmac_len;
                let iv = ivs.next().map_err(encryption_failed)?;
                packet[iv_start..iv_start + CBC_BLOCK_LEN].copy_from_slice(&iv);
                packet[payload_end..].fill(padding as u8);

                let ciphertext = &mut packet[payload_start - PACKET_ID_LEN..];
                let context = cipher::EncryptionContext::Iv128(iv.into());
                key.less_safe_encrypt(ciphertext, context)
                    .map_err(encryption_failed)?;
                sign(hmac.as_deref(), packet, header_len, iv_start);
            }
            Sealer::Plain { hmac } => {
                let id_start = payload_start - PACKET_ID_LEN;
                sign(hmac.as_deref(), packet, header_len, id_start);
            }
        }
        Ok(())
    }

    /// Returns the distance from the packet id to the payload: the AEAD tag, else 0.
    fn id_offset(&self) -> usize {
        match self.sealer {
            Sealer::Aead(_) => AEAD_TAG_LEN,
            _ => 0,
        }
    }

    /// Moves the packet id counter, so tests can reach the end of the id space.
    #[cfg(test)]
    pub(crate) fn set_last_packet_id(&mut self, id: u32) {
        self.last_packet_id = id;
    }

    /// Sets the usage counter, so tests can reach the AES-GCM limit.
    #[cfg(test)]
    pub(crate) fn set_plaintext_blocks(&mut self, blocks: u64) {
        self.plaintext_blocks = blocks;
    }

    fn next_packet_id(&mut self) -> Result<[u8; PACKET_ID_LEN], DataError> {
        let id = self
            .last_packet_id
            .checked_add(1)
            .ok_or(DataError::PacketIdExhausted)?;
        self.last_packet_id = id;
        Ok(id.to_be_bytes())
    }
}

/// Seals `packet[payload_start..]` in place and writes the tag in front of it.
fn seal_aead(
    key: &aead::LessSafeKey,
    nonce: aead::Nonce,
    packet: &mut [u8],
    header_len: usize,
    payload_start: usize,
) -> Result<(), aws_lc_rs::error::Unspecified> {
    let (front, plaintext) = packet.split_at_mut(payload_start);
    let aad = aead::Aad::from(&front[aead_aad_range(header_len)]);
    let tag = key.seal_in_place_separate_tag(nonce, aad, plaintext)?;
    front[header_len + PACKET_ID_LEN..].copy_from_slice(tag.as_ref());
    Ok(())
}

/// Writes the HMAC of `packet[signed_start..]` right after the header.
fn sign(hmac: Option<&hmac::Key>, packet: &mut [u8], header_len: usize, signed_start: usize) {
    let Some(hmac) = hmac else {
        return;
    };
    let tag = hmac::sign(hmac, &packet[signed_start..]);
    let tag = tag.as_ref();
    packet[header_len..header_len + tag.len()].copy_from_slice(tag);
}

/// A source of unpredictable CBC IVs that needs no system RNG call per packet. Each IV is
/// a counter encrypted with AES-128 under a random key that exists only in this struct,
/// so a peer without that key cannot predict the next IV from the previous ones.
struct CbcIvSource {
    key: cipher::EncryptingKey,
    counter: u128,
}

impl CbcIvSource {
    fn new() -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut seed = Zeroizing::new([0u8; 16]);
        rand::fill(&mut seed[..])?;
        let unbound = cipher::UnboundCipherKey::new(&cipher::AES_128, &seed[..])?;
        Ok(CbcIvSource {
            key: cipher::EncryptingKey::ecb(unbound)?,
            counter: 0,
        })
    }

    fn next(&mut self) -> Result<[u8; CBC_BLOCK_LEN], aws_lc_rs::error::Unspecified> {
        self.counter = self.counter.wrapping_add(1);
        let mut block = self.counter.to_be_bytes();
        self.key.encrypt(&mut block)?;
        Ok(block)
    }
}

impl core::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Encryptor")
            .field("cipher", &self.cipher)
            .field("hmac_len", &self.hmac_len)
            .field("last_packet_id", &self.last_packet_id)
            .finish_non_exhaustive()
    }
}
