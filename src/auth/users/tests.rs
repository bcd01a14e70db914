use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::auth::password::{hash_password, verify_password};

/// A fixed valid hash, so tests that only move entries around skip the hashing.
const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$Wa+oC0XGOiqCHr8q6Udq+6fXeWKwKdw1ZFU/XvDPFBQ";

#[test]
fn save_and_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let mut users = UserFile::default();
    users.add("bob", HASH.to_owned()).unwrap();
    users
        .add("alice", hash_password(b"alice password").unwrap())
        .unwrap();
    users.save(&path).unwrap();

    let loaded = UserFile::load(&path).unwrap();
    assert_eq!(loaded, users);
    assert_eq!(loaded.names().collect::<Vec<_>>(), ["alice", "bob"]);
    let hash = loaded.hash_of("alice").unwrap();
    assert!(verify_password(b"alice password", hash));
}

#[test]
fn saved_file_has_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let mut users = UserFile::default();
    users.add("alice", HASH.to_owned()).unwrap();
    users.save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn saved_file_holds_no_plain_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let mut users = UserFile::default();
    users
        .add("alice", hash_password(b"plain-secret-123").unwrap())
        .unwrap();
    users.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("plain-secret-123"));
    assert!(text.contains("$argon2id$"));
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    assert!(matches!(
        UserFile::load(&path),
        Err(UsersError::NotFound { .. })
    ));
    assert!(UserFile::load_or_empty(&path).unwrap().is_empty());
}

#[test]
fn parse_rejects_plain_passwords() {
    let text = "[[user]]\nname = \"alice\"\npassword_hash = \"hunter2\"\n";
    let error = UserFile::parse(text, Path::new("users.toml")).unwrap_err();
    assert!(
        matches!(&error, UsersError::InvalidHash { name, .. } if name == "alice"),
        "{error}"
    );
}

#[test]
fn parse_rejects_unknown_keys() {
    let text =
        format!("[[user]]\nname = \"alice\"\npassword = \"x\"\npassword_hash = \"{HASH}\"\n");
    let error = UserFile::parse(&text, Path::new("users.toml")).unwrap_err();
    assert!(error.to_string().contains("password"), "{error}");
}

#[test]
fn parse_rejects_duplicates() {
    let entry = format!("[[user]]\nname = \"alice\"\npassword_hash = \"{HASH}\"\n");
    let error = UserFile::parse(&entry.repeat(2), Path::new("users.toml")).unwrap_err();
    assert!(error.to_string().contains("listed twice"), "{error}");
}

#[test]
fn parse_rejects_invalid_usernames() {
    let text = format!("[[user]]\nname = \"al ice\"\npassword_hash = \"{HASH}\"\n");
    let error = UserFile::parse(&text, Path::new("users.toml")).unwrap_err();
    assert!(error.to_string().contains("' '"), "{error}");
}

#[test]
fn empty_file_has_no_users() {
    let users = UserFile::parse("", Path::new("users.toml")).unwrap();
    assert!(users.is_empty());
}

#[test]
fn add_existing_user_fails() {
    let mut users = UserFile::default();
    users.add("alice", HASH.to_owned()).unwrap();
    assert!(matches!(
        users.add("alice", HASH.to_owned()),
        Err(UsersError::Exists { .. })
    ));
}

#[test]
fn set_password_and_remove() {
    let mut users = UserFile::default();
    users.add("alice", HASH.to_owned()).unwrap();
    let new_hash = hash_password(b"new password").unwrap();
    users.set_password("alice", new_hash.clone()).unwrap();
    assert_eq!(users.hash_of("alice"), Some(new_hash.as_str()));
    assert!(matches!(
        users.set_password("bob", HASH.to_owned()),
        Err(UsersError::UnknownUser { .. })
    ));
    users.remove("alice").unwrap();
    assert!(users.hash_of("alice").is_none());
    assert!(matches!(
        users.remove("alice"),
        Err(UsersError::UnknownUser { .. })
    ));
}

#[test]
fn username_rules() {
    for name in [
        "alice",
        "a",
        "alice@example.com",
        "a.b-c_d",
        &"x".repeat(64),
    ] {
        assert!(validate_username(name).is_ok(), "{name}");
    }
    for name in ["", "al ice", "alice\n", "ålice", "a/b", &"x".repeat(65)] {
        assert!(validate_username(name).is_err(), "{name:?}");
    }
}

#[test]
fn lock_file_sits_beside_the_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let guard = lock(&path).unwrap();
    assert!(dir.path().join(".users.toml.lock").exists());
    drop(guard);
}
