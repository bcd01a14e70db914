use std::net::SocketAddr;

use super::password::hash_password;
use super::*;

fn check(username: &str, password: &[u8]) -> CredentialCheck {
    CredentialCheck {
        username: username.to_owned(),
        password: Secret::new(password.to_vec()),
        common_name: "alice".to_owned(),
        serial_hex: "01".to_owned(),
        server: "office".to_owned(),
        client: SocketAddr::from(([198, 51, 100, 7], 51234)),
    }
}

fn local(users: &[(&str, &[u8])]) -> LocalUsers {
    let mut file = UserFile::default();
    for (name, password) in users {
        file.add(name, hash_password(password).unwrap()).unwrap();
    }
    LocalUsers::new(file)
}

#[tokio::test]
async fn local_accepts_right_password() {
    let backend = local(&[("alice", b"alice password")]);
    let verdict = backend.check(&check("alice", b"alice password")).await;
    assert_eq!(verdict, Verdict::Accepted);
}

#[tokio::test]
async fn local_denies_wrong_password() {
    let backend = local(&[("alice", b"alice password")]);
    let verdict = backend.check(&check("alice", b"bob password")).await;
    assert_eq!(verdict, Verdict::Denied("wrong password".to_owned()));
}

#[tokio::test]
async fn local_denies_unknown_user() {
    let backend = local(&[("alice", b"alice password")]);
    let verdict = backend.check(&check("mallory", b"alice password")).await;
    assert_eq!(verdict, Verdict::Denied("unknown user".to_owned()));
}

#[tokio::test]
async fn local_accepts_non_utf8_password() {
    let backend = local(&[("alice", b"caf\xe9 latte")]);
    let verdict = backend.check(&check("alice", b"caf\xe9 latte")).await;
    assert_eq!(verdict, Verdict::Accepted);
}

#[test]
fn debug_of_a_check_hides_the_password() {
    let debug = format!("{:?}", check("alice", b"very secret"));
    assert!(!debug.contains("very secret"), "{debug}");
    assert!(debug.contains("alice"), "{debug}");
}
