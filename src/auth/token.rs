//! Session tokens: the `auth-token` a two-factor server pushes to each accepted client.
//!
//! OpenVPN 2.4 and later clients send a pushed token as their password in every later key
//! exchange of the session, so a renegotiation neither asks the user again nor needs the
//! cached password that `auth-nocache` discards. The server accepts a token only from the
//! session it was issued to.
//!
//! A client also keeps its token when it reconnects (after a server restart or a ping
//! timeout) and sends it to the new session. Tokens therefore carry a fixed prefix: a new
//! session rejects a password of the token shape at once, without asking the backend or
//! counting a failure, and OpenVPN answers that AUTH_FAILED by retrying with the password
//! (OpenVPN 2.6 `push.c`, receive_auth_failed).

use std::fmt;

use base64ct::{Base64UrlUnpadded, Encoding};

use crate::proto::keymethod::Secret;

/// The start of every token.
pub const TOKEN_PREFIX: &str = "sslvpn-session-";
/// Random bytes per token.
pub const TOKEN_RANDOM_BYTES: usize = 32;
/// Length of a token in characters: the prefix and 43 base64url characters.
pub const TOKEN_LENGTH: usize = TOKEN_PREFIX.len() + 43;

#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// One session's token. `Debug` does not show it.
#[derive(Clone)]
pub struct SessionToken(Secret);

impl SessionToken {
    /// Generates a token from 32 random bytes.
    pub fn generate() -> Result<Self, RandomError> {
        let mut random = [0u8; TOKEN_RANDOM_BYTES];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| RandomError)?;
        let text = format!(
            "{TOKEN_PREFIX}{}",
            Base64UrlUnpadded::encode_string(&random)
        );
        Ok(Self(Secret::new(text.into_bytes())))
    }

    /// Returns the token as pushed to the client.
    pub fn secret(&self) -> &Secret {
        &self.0
    }

    /// Compares a presented password with the token in constant time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.expose(), presented).is_ok()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

/// Returns whether `password` has the shape of a token: the prefix and 43 base64url
/// characters.
pub fn looks_like_token(password: &[u8]) -> bool {
    password.len() == TOKEN_LENGTH
        && password.starts_with(TOKEN_PREFIX.as_bytes())
        && password[TOKEN_PREFIX.len()..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_has_prefix_and_length() {
        let token = SessionToken::generate().unwrap();
        let text = token.secret().expose_str().unwrap();
        assert!(text.starts_with(TOKEN_PREFIX), "{text}");
        assert_eq!(text.len(), TOKEN_LENGTH);
        assert!(looks_like_token(text.as_bytes()));
    }

    #[test]
    fn token_is_a_valid_push_option_word() {
        let token = SessionToken::generate().unwrap();
        let text = token.secret().expose_str().unwrap();
        assert!(!text.contains([',', ' ', '\0', '\n']), "{text}");
    }

    #[test]
    fn tokens_differ() {
        let first = SessionToken::generate().unwrap();
        let second = SessionToken::generate().unwrap();
        assert!(!first.matches(second.secret().expose()));
    }

    #[test]
    fn token_matches_itself_only() {
        let token = SessionToken::generate().unwrap();
        let text = token.secret().expose().to_vec();
        assert!(token.matches(&text));
        let mut changed = text.clone();
        let last = changed.len() - 1;
        changed[last] = if changed[last] == b'A' { b'B' } else { b'A' };
        assert!(!token.matches(&changed));
        assert!(!token.matches(&text[..text.len() - 1]));
        assert!(!token.matches(b""));
    }

    #[test]
    fn debug_hides_the_token() {
        let token = SessionToken::generate().unwrap();
        let text = token.secret().expose_str().unwrap().to_owned();
        let debug = format!("{token:?}");
        assert!(!debug.contains(&text[TOKEN_PREFIX.len()..]), "{debug}");
    }

    #[test]
    fn ordinary_passwords_do_not_look_like_tokens() {
        assert!(!looks_like_token(b"correct horse battery staple"));
        assert!(!looks_like_token(TOKEN_PREFIX.as_bytes()));
        let mut almost = format!("{TOKEN_PREFIX}{}", "a".repeat(42)).into_bytes();
        assert!(!looks_like_token(&almost));
        almost.push(b'+');
        assert!(!looks_like_token(&almost));
    }
}
