//! Data channel key derivation: the TLS 1.0 PRF that OpenVPN uses by default, and TLS-EKM.
//!
//! Without EKM (OpenVPN `ssl.c`, generate_key_expansion_openvpn_prf):
//!
//! ```text
//! master (48)     = PRF(pre_master, "OpenVPN master secret", client random1 | server random1)
//! key block (256) = PRF(master, "OpenVPN key expansion",
//!                       client random2 | server random2 | client session id | server session id)
//! ```
//!
//! With EKM, the key block is the RFC 5705 exporter output for [`EKM_LABEL`] with no context.
//! The RustCrypto `md-5`, `sha1` and `hmac` crates provide HMAC-MD5, which aws-lc-rs lacks.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha1::Sha1;
use zeroize::{Zeroize, Zeroizing};

use crate::proto::keymethod::{ClientKeyMessage, ServerKeyMessage};

/// Length of the key block: two directions of (cipher key 64 | HMAC key 64).
pub const KEY_BLOCK_LEN: usize = 256;

/// Length of one cipher key or HMAC key slot in the key block.
pub const KEY_SLOT_LEN: usize = 64;

/// Length of an OpenVPN session id.
pub const SESSION_ID_LEN: usize = 8;

/// The RFC 5705 exporter label for the key block (OpenVPN `ssl_backend.h`).
pub const EKM_LABEL: &str = "EXPORTER-OpenVPN-datakeys";

const MASTER_SECRET_LEN: usize = 48;
const MASTER_SECRET_LABEL: &[u8] = b"OpenVPN master secret";
const KEY_EXPANSION_LABEL: &[u8] = b"OpenVPN key expansion";

/// Errors from deriving a key block.
#[derive(Debug, thiserror::Error)]
pub enum PrfError {
    /// rustls refused to export keying material, e.g. before the handshake completed.
    #[error("TLS keying material export failed: {0}")]
    Export(#[from] rustls::Error),
}

/// The 256-byte data channel key block, zeroed on drop.
///
/// The first half keys the client-to-server direction and the second half the
/// server-to-client direction. Each half is a cipher key slot followed by an HMAC key slot,
/// and a cipher uses as many leading bytes of a slot as it needs.
pub struct KeyBlock([u8; KEY_BLOCK_LEN]);

/// The keys of one direction, borrowed from a [`KeyBlock`].
#[derive(Clone, Copy)]
pub struct DirectionKeys<'a> {
    pub cipher: &'a [u8; KEY_SLOT_LEN],
    /// For AEAD ciphers, its first 8 bytes are the implicit IV.
    pub hmac: &'a [u8; KEY_SLOT_LEN],
}

impl KeyBlock {
    pub fn from_bytes(bytes: [u8; KEY_BLOCK_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_BLOCK_LEN] {
        &self.0
    }

    /// Keys for packets the client sends: a server decrypts with them.
    pub fn client_to_server(&self) -> DirectionKeys<'_> {
        self.direction(0)
    }

    /// Keys for packets the server sends: a server encrypts with them.
    pub fn server_to_client(&self) -> DirectionKeys<'_> {
        self.direction(2 * KEY_SLOT_LEN)
    }

    fn direction(&self, start: usize) -> DirectionKeys<'_> {
        let slot = |offset: usize| -> &[u8; KEY_SLOT_LEN] {
            let bytes = &self.0[offset..offset + KEY_SLOT_LEN];
            bytes.try_into().expect("slot is KEY_SLOT_LEN bytes")
        };
        DirectionKeys {
            cipher: slot(start),
            hmac: slot(start + KEY_SLOT_LEN),
        }
    }
}

impl Drop for KeyBlock {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for KeyBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyBlock(..)")
    }
}

impl fmt::Debug for DirectionKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DirectionKeys(..)")
    }
}

/// Derives the key block with OpenVPN's PRF from both key method messages and the session ids.
pub fn prf_key_block(
    client: &ClientKeyMessage,
    server: &ServerKeyMessage,
    client_session_id: &[u8; SESSION_ID_LEN],
    server_session_id: &[u8; SESSION_ID_LEN],
) -> KeyBlock {
    let mut master = Zeroizing::new([0u8; MASTER_SECRET_LEN]);
    tls1_prf(
        client.pre_master.as_ref(),
        MASTER_SECRET_LABEL,
        &[&client.random1, &server.random1],
        master.as_mut(),
    );

    let mut block = KeyBlock([0; KEY_BLOCK_LEN]);
    let seed: [&[u8]; 4] = [
        &client.random2,
        &server.random2,
        client_session_id,
        server_session_id,
    ];
    tls1_prf(master.as_ref(), KEY_EXPANSION_LABEL, &seed, &mut block.0);
    block
}

/// Derives the key block with the TLS keying material exporter (RFC 5705), for clients that
/// announce TLS-EKM and a server that pushes it. The handshake must be complete.
pub fn ekm_key_block<Data>(conn: &rustls::ConnectionCommon<Data>) -> Result<KeyBlock, PrfError> {
    let bytes = conn.export_keying_material([0u8; KEY_BLOCK_LEN], EKM_LABEL.as_bytes(), None)?;
    Ok(KeyBlock(bytes))
}

/// Fills `out` with the TLS 1.0 PRF (RFC 2246, section 5):
/// P_MD5(first half of secret, label | seed) XOR P_SHA1(second half, label | seed).
///
/// The seed is given in parts that are concatenated. For an odd secret length the halves
/// share the middle byte.
pub fn tls1_prf(secret: &[u8], label: &[u8], seed: &[&[u8]], out: &mut [u8]) {
    let half = secret.len().div_ceil(2);
    out.fill(0);
    xor_p_hash::<Hmac<Md5>>(&secret[..half], label, seed, out);
    xor_p_hash::<Hmac<Sha1>>(&secret[secret.len() - half..], label, seed, out);
}

/// XORs P_hash(secret, label | seed) into `out`:
/// A(0) = label | seed, A(i) = HMAC(secret, A(i-1)),
/// output = HMAC(secret, A(1) | label | seed) | HMAC(secret, A(2) | label | seed) | ...
fn xor_p_hash<M: Mac + KeyInit + Clone>(
    secret: &[u8],
    label: &[u8],
    seed: &[&[u8]],
    out: &mut [u8],
) {
    let keyed = <M as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    let with_seed = |mut mac: M| {
        mac.update(label);
        for part in seed {
            mac.update(part);
        }
        mac
    };

    let mut a = Zeroizing::new(with_seed(keyed.clone()).finalize().into_bytes().to_vec());
    for chunk in out.chunks_mut(a.len()) {
        let mut mac = keyed.clone();
        mac.update(&a);
        let block = Zeroizing::new(with_seed(mac).finalize().into_bytes().to_vec());
        for (byte, mask) in chunk.iter_mut().zip(block.iter()) {
            *byte ^= mask;
        }

        let mut next = keyed.clone();
        next.update(&a);
        a = Zeroizing::new(next.finalize().into_bytes().to_vec());
    }
}

#[cfg(test)]
mod tests;
