//! The stateless handshake of UDP servers: the server's session id is a keyed hash of a time
//! slot, the client's address and the client's session id.
//!
//! The server replies to a client's hard reset without keeping any state, and creates the session
//! only when a later packet from the same address echoes a session id that hashes correctly
//! for the current or the previous time slot. A flood of hard resets from spoofed addresses
//! therefore costs no memory and earns one small reply each, never the TLS flight. OpenVPN 2.6
//! does the same (`ssl_pkt.c`, `calculate_session_id_hmac`), so clients of every version
//! connect unchanged.

use std::net::SocketAddr;
use std::time::Duration;

use siphasher::sip::SipHasher24;
use std::hash::Hasher;

use crate::proto::packet::SessionId;

/// The secret behind the server's session ids; one per SSL server, made at startup.
#[derive(Clone)]
pub struct CookieKey {
    key: [u8; 16],
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

impl CookieKey {
    pub fn new(key: [u8; 16]) -> Self {
        Self { key }
    }

    /// Makes a key from the system's random source.
    pub fn random() -> Self {
        let mut key = [0u8; 16];
        aws_lc_rs::rand::fill(&mut key).expect("the system random source works");
        Self::new(key)
    }

    /// Computes the server's session id for `client` in time slot `slot`.
    pub fn session_id(
        &self,
        slot: u64,
        client: SocketAddr,
        client_session: &SessionId,
    ) -> SessionId {
        let mut hasher = SipHasher24::new_with_key(&self.key);
        hasher.write(&slot.to_be_bytes());
        match client {
            SocketAddr::V4(address) => hasher.write(&address.ip().octets()),
            SocketAddr::V6(address) => hasher.write(&address.ip().octets()),
        }
        hasher.write(&client.port().to_be_bytes());
        hasher.write(client_session.as_bytes());
        SessionId(hasher.finish().to_be_bytes())
    }

    /// Checks a session id a client echoed against the current and the previous time slot.
    pub fn verify(
        &self,
        unix_time: u64,
        hand_window: Duration,
        client: SocketAddr,
        client_session: &SessionId,
        echoed: &SessionId,
    ) -> bool {
        let slot = time_slot(unix_time, hand_window);
        [slot, slot.wrapping_sub(1)]
            .iter()
            .any(|&slot| self.session_id(slot, client, client_session) == *echoed)
    }
}

/// Returns the time slot of `unix_time`. Slots last half the handshake window, as in OpenVPN, so a
/// reply stays valid for between one half and one whole window.
pub fn time_slot(unix_time: u64, hand_window: Duration) -> u64 {
    let length = hand_window.as_secs().div_ceil(2);
    unix_time / length.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn client() -> SocketAddr {
        "192.0.2.2:40000".parse().unwrap()
    }

    fn client_session() -> SessionId {
        SessionId([1, 2, 3, 4, 5, 6, 7, 8])
    }

    #[test]
    fn slot_is_half_the_hand_window() {
        assert_eq!(time_slot(0, WINDOW), 0);
        assert_eq!(time_slot(29, WINDOW), 0);
        assert_eq!(time_slot(30, WINDOW), 1);
        assert_eq!(time_slot(61, Duration::from_secs(61)), 1);
        assert_eq!(time_slot(62, Duration::from_secs(61)), 2);
    }

    #[test]
    fn cookie_valid_in_current_and_previous_slot() {
        let key = CookieKey::new([7; 16]);
        let issued_at = 1_000_000;
        let id = key.session_id(time_slot(issued_at, WINDOW), client(), &client_session());
        assert!(key.verify(issued_at, WINDOW, client(), &client_session(), &id));
        assert!(key.verify(issued_at + 30, WINDOW, client(), &client_session(), &id));
        assert!(!key.verify(issued_at + 60, WINDOW, client(), &client_session(), &id));
        assert!(!key.verify(issued_at - 30, WINDOW, client(), &client_session(), &id));
    }

    #[test]
    fn cookie_bound_to_address_port_and_session() {
        let key = CookieKey::new([7; 16]);
        let now = 1_000_000;
        let id = key.session_id(time_slot(now, WINDOW), client(), &client_session());
        let other_port: SocketAddr = "192.0.2.2:40001".parse().unwrap();
        let other_host: SocketAddr = "192.0.2.3:40000".parse().unwrap();
        let other_session = SessionId([9; 8]);
        assert!(!key.verify(now, WINDOW, other_port, &client_session(), &id));
        assert!(!key.verify(now, WINDOW, other_host, &client_session(), &id));
        assert!(!key.verify(now, WINDOW, client(), &other_session, &id));
    }

    #[test]
    fn cookie_depends_on_key() {
        let now = 1_000_000;
        let slot = time_slot(now, WINDOW);
        let a = CookieKey::new([1; 16]).session_id(slot, client(), &client_session());
        let b = CookieKey::new([2; 16]).session_id(slot, client(), &client_session());
        assert_ne!(a, b);
    }

    proptest::proptest! {
        #[test]
        fn forged_cookies_fail(echoed: [u8; 8], port: u16, now in 0u64..4_000_000_000) {
            let key = CookieKey::new([3; 16]);
            let address = SocketAddr::from(([198, 51, 100, 7], port));
            let genuine = key.session_id(time_slot(now, WINDOW), address, &client_session());
            let previous = key.session_id(time_slot(now, WINDOW).wrapping_sub(1), address, &client_session());
            let echoed = SessionId(echoed);
            let accepted = key.verify(now, WINDOW, address, &client_session(), &echoed);
            proptest::prop_assert_eq!(accepted, echoed == genuine || echoed == previous);
        }
    }
}
