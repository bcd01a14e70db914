//! Password hashes: argon2id in the PHC string format
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
//!
//! New hashes use the argon2 crate's defaults (argon2id, version 19, 19 MiB of memory,
//! 2 passes, 1 lane), which follow OWASP's password storage recommendation. Hashes made by
//! other tools are accepted when they are argon2id and their cost stays within the bounds below,
//! so a users file cannot make one verification take unbounded memory or time.

use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params};

/// Largest memory cost accepted in a stored hash, in KiB (256 MiB).
pub const MAX_MEMORY_KIB: u32 = 256 * 1024;
/// Largest number of passes accepted in a stored hash.
pub const MAX_PASSES: u32 = 16;
/// Largest number of lanes accepted in a stored hash.
pub const MAX_LANES: u32 = 8;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("not a PHC string: {0}")]
    Format(String),
    #[error("algorithm {found:?} is not argon2id; store argon2id hashes only")]
    Algorithm { found: String },
    #[error("parameter {name} = {value} exceeds the limit of {max}")]
    Cost {
        name: &'static str,
        value: u32,
        max: u32,
    },
    #[error("the hash has no salt or no output")]
    Incomplete,
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// Hashes a password with argon2id and a random salt, returning the PHC string.
pub fn hash_password(password: &[u8]) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|error| HashError::Hashing(error.to_string()))
}

/// Checks that `phc` is an argon2id hash whose cost is within the limits.
pub fn validate_hash(phc: &str) -> Result<(), HashError> {
    let hash = PasswordHash::new(phc).map_err(|error| HashError::Format(error.to_string()))?;
    let algorithm = hash.algorithm.as_str();
    if Algorithm::new(algorithm) != Ok(Algorithm::Argon2id) {
        return Err(HashError::Algorithm {
            found: algorithm.to_owned(),
        });
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(HashError::Incomplete);
    }
    let params = Params::try_from(&hash).map_err(|error| HashError::Format(error.to_string()))?;
    let limits = [
        ("m", params.m_cost(), MAX_MEMORY_KIB),
        ("t", params.t_cost(), MAX_PASSES),
        ("p", params.p_cost(), MAX_LANES),
    ];
    for (name, value, max) in limits {
        if value > max {
            return Err(HashError::Cost { name, value, max });
        }
    }
    Ok(())
}

/// Returns whether `password` matches the stored hash. An invalid hash matches nothing.
/// This blocks for tens of milliseconds: call it off the async runtime.
pub fn verify_password(password: &[u8], phc: &str) -> bool {
    if validate_hash(phc).is_err() {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default().verify_password(password, &hash).is_ok()
}

/// Spends the time of one verification with default parameters and returns false, so that an
/// unknown username takes as long to reject as a wrong password.
pub fn verify_unknown_user(password: &[u8]) -> bool {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password(b"no user has this password").ok());
    if let Some(dummy) = dummy {
        let _ = verify_password(password, dummy);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_argon2id_phc() {
        let hash = hash_password(b"correct horse").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(validate_hash(&hash).is_ok());
    }

    #[test]
    fn hashes_of_one_password_differ() {
        let first = hash_password(b"correct horse").unwrap();
        let second = hash_password(b"correct horse").unwrap();
        assert_ne!(first, second, "salts must be random");
    }

    #[test]
    fn verify_accepts_right_password() {
        let hash = hash_password(b"correct horse").unwrap();
        assert!(verify_password(b"correct horse", &hash));
    }

    #[test]
    fn verify_rejects_wrong_password() {
        let hash = hash_password(b"correct horse").unwrap();
        assert!(!verify_password(b"correct horsE", &hash));
        assert!(!verify_password(b"", &hash));
    }

    #[test]
    fn verify_known_answer() {
        // Made with the argon2 reference CLI (Debian package argon2):
        // `echo -n secret123 | argon2 somesalt -id -t 2 -k 19456 -p 1 -e`.
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$\
                    Wa+oC0XGOiqCHr8q6Udq+6fXeWKwKdw1ZFU/XvDPFBQ";
        assert!(validate_hash(hash).is_ok());
        assert!(verify_password(b"secret123", hash));
        assert!(!verify_password(b"secret124", hash));
    }

    #[test]
    fn validate_rejects_other_algorithms() {
        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$ZmFrZWhhc2hmYWtlaGFzaA";
        assert!(matches!(
            validate_hash(argon2i),
            Err(HashError::Algorithm { .. })
        ));
        let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        assert!(validate_hash(bcrypt).is_err());
    }

    #[test]
    fn validate_rejects_plain_text() {
        assert!(matches!(
            validate_hash("hunter2"),
            Err(HashError::Format(_))
        ));
        assert!(!verify_password(b"hunter2", "hunter2"));
    }

    #[test]
    fn validate_bounds_the_cost() {
        let huge = "$argon2id$v=19$m=2097152,t=2,p=1$c29tZXNhbHQ$\
                    Wa+oC0XGOiqCHr8q6Udq+6fXeWKwKdw1ZFU/XvDPFBQ";
        assert_eq!(
            validate_hash(huge),
            Err(HashError::Cost {
                name: "m",
                value: 2_097_152,
                max: MAX_MEMORY_KIB
            })
        );
        assert!(!verify_password(b"secret123", huge));
    }

    #[test]
    fn unknown_user_never_matches() {
        assert!(!verify_unknown_user(b"no user has this password"));
    }
}
