use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use super::super::tests::{
    FakeSession, RESET, RecordingIo, control, remote, session_config, ssl_server,
};
use super::*;
use crate::config::{AuthBackend, AuthSettings, Protocol};
use crate::daemon::addresses::open_pool;
use crate::daemon::admission::Admission;

fn two_factor_table(
    admission: &Admission,
    max_failures: u32,
    must_match: bool,
    revoked: HashSet<String>,
) -> Sessions<FakeSession> {
    let mut server = ssl_server(Protocol::Udp);
    server.two_factor = true;
    server.auth = Some(AuthSettings {
        backend: AuthBackend::Local {
            users_file: PathBuf::from("users.toml"),
        },
        username_must_match_cn: must_match,
        max_failures,
        lockout_seconds: 300,
    });
    Sessions::new(
        &server,
        session_config(),
        open_pool(&server),
        admission.clone(),
        revoked,
    )
}

/// A scripted command `<command> <serial> <name>\0<username>\0<password>`.
fn with_credentials(command: u8, name: &str, serial: u8, user: &str, password: &[u8]) -> Vec<u8> {
    let mut bytes = vec![command, serial];
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(user.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(password);
    control(&bytes)
}

/// Starts a UDP session from `from` that authenticates as `name` with a username and password.
fn login(
    sessions: &mut Sessions<FakeSession>,
    io: &mut RecordingIo,
    from: SocketAddr,
    user: &str,
    password: &[u8],
    now: Instant,
) {
    sessions.receive_datagram(io, from, None, &mut RESET.to_vec(), now);
    let mut packet = with_credentials(b'A', user, 7, user, password);
    sessions.receive_datagram(io, from, None, &mut packet, now);
}

/// Answers the one queued check with `verdict`.
fn answer(
    sessions: &mut Sessions<FakeSession>,
    io: &mut RecordingIo,
    verdict: Verdict,
    now: Instant,
) {
    let checks = sessions.take_password_checks();
    assert_eq!(checks.len(), 1, "expected one queued check");
    let result = checks[0].result(verdict);
    sessions.finish_password_check(io, result, now);
}

/// The token of the last PUSH_REPLY sent to `to`.
fn pushed_token(io: &RecordingIo, to: SocketAddr) -> String {
    io.sent_to(to)
        .iter()
        .rev()
        .find_map(|packet| packet.split("auth-token ").nth(1).map(str::to_owned))
        .expect("a pushed auth-token")
}

#[test]
fn check_is_queued_with_request_details() {
    let mut sessions = two_factor_table(&Admission::new(10), 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    login(
        &mut sessions,
        &mut io,
        remote(1000),
        "alice",
        b"pw-alice",
        Instant::now(),
    );
    let checks = sessions.take_password_checks();
    assert_eq!(checks.len(), 1);
    let credentials = &checks[0].credentials;
    assert_eq!(credentials.username, "alice");
    assert_eq!(credentials.password.expose(), b"pw-alice");
    assert_eq!(credentials.common_name, "alice");
    assert_eq!(credentials.serial_hex, "07");
    assert_eq!(credentials.server, "office");
    assert_eq!(credentials.client, remote(1000));
    assert!(sessions.take_password_checks().is_empty(), "taken once");
}

#[test]
fn session_waits_for_the_verdict() {
    let admission = Admission::new(10);
    let mut sessions = two_factor_table(&admission, 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    login(
        &mut sessions,
        &mut io,
        remote(1000),
        "alice",
        b"pw-alice",
        Instant::now(),
    );
    assert!(!io.sent_text_to(remote(1000), "PUSH_REPLY"));
    assert!(!io.sent_text_to(remote(1000), "AUTH_FAILED"));
    assert_eq!(admission.active(), 0);
    assert_eq!(sessions.len(), 1);
}

#[test]
fn accepted_password_admits_with_token() {
    let admission = Admission::new(10);
    let mut sessions = two_factor_table(&admission, 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    login(
        &mut sessions,
        &mut io,
        remote(1000),
        "alice",
        b"pw-alice",
        now,
    );
    answer(&mut sessions, &mut io, Verdict::Accepted, now);
    assert!(io.sent_text_to(remote(1000), "PUSH_REPLY,ifconfig 10.8.0.6"));
    let token = pushed_token(&io, remote(1000));
    assert!(looks_like_token(token.as_bytes()), "{token}");
    assert_eq!(admission.active(), 1);
}

#[test]
fn denied_password_gets_auth_failed() {
    let admission = Admission::new(10);
    let mut sessions = two_factor_table(&admission, 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    login(&mut sessions, &mut io, remote(1000), "alice", b"wrong", now);
    answer(
        &mut sessions,
        &mut io,
        Verdict::Denied("wrong password".into()),
        now,
    );
    assert!(io.sent_text_to(
        remote(1000),
        "AUTH_FAILED,username or password is incorrect"
    ));
    assert_eq!(sessions.len(), 0);
    assert_eq!(admission.active(), 0);
}

#[test]
fn unavailable_backend_rejects() {
    let mut sessions = two_factor_table(&Admission::new(10), 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    login(
        &mut sessions,
        &mut io,
        remote(1000),
        "alice",
        b"pw-alice",
        now,
    );
    answer(
        &mut sessions,
        &mut io,
        Verdict::Unavailable("timed out".into()),
        now,
    );
    assert!(io.sent_text_to(
        remote(1000),
        "AUTH_FAILED,authentication service unavailable"
    ));
    assert_eq!(sessions.len(), 0);
}

#[test]
fn missing_credentials_are_rejected_unchecked() {
    let mut sessions = two_factor_table(&Admission::new(10), 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    sessions.receive_datagram(&mut io, remote(1000), None, &mut RESET.to_vec(), now);
    sessions.receive_datagram(
        &mut io,
        remote(1000),
        None,
        &mut control(b"A\x07alice"),
        now,
    );
    assert!(sessions.take_password_checks().is_empty());
    assert!(io.sent_text_to(remote(1000), "AUTH_FAILED,username and password required"));
    assert_eq!(sessions.len(), 0);
}

#[test]
fn username_must_match_common_name() {
    let mut sessions = two_factor_table(&Admission::new(10), 5, true, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    sessions.receive_datagram(&mut io, remote(1000), None, &mut RESET.to_vec(), now);
    let mut packet = with_credentials(b'A', "alice", 7, "bob", b"pw-bob");
    sessions.receive_datagram(&mut io, remote(1000), None, &mut packet, now);
    assert!(sessions.take_password_checks().is_empty());
    assert!(io.sent_text_to(remote(1000), "AUTH_FAILED,username does not match"));
}

#[test]
fn matching_username_is_checked() {
    let mut sessions = two_factor_table(&Admission::new(10), 5, true, HashSet::new());
    let mut io = RecordingIo::default();
    login(
        &mut sessions,
        &mut io,
        remote(1000),
        "alice",
        b"pw-alice",
        Instant::now(),
    );
    assert_eq!(sessions.take_password_checks().len(), 1);
}

#[test]
fn token_of_earlier_session_is_rejected_unchecked() {
    let mut sessions = two_factor_table(&Admission::new(10), 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let old = SessionToken::generate().unwrap();
    login(
        &mut sessions,
        &mut io,
        remote(1000),
        "alice",
        old.secret().expose(),
        now,
    );
    assert!(sessions.take_password_checks().is_empty());
    assert!(io.sent_text_to(remote(1000), "AUTH_FAILED,session token expired"));
}

#[test]
fn revoked_certificate_is_not_checked() {
    let revoked = HashSet::from(["7".to_owned()]);
    let mut sessions = two_factor_table(&Admission::new(10), 5, false, revoked);
    let mut io = RecordingIo::default();
    login(
        &mut sessions,
        &mut io,
        remote(1000),
        "alice",
        b"pw-alice",
        Instant::now(),
    );
    assert!(sessions.take_password_checks().is_empty());
    assert!(io.sent_text_to(remote(1000), "AUTH_FAILED,certificate serial 07 is revoked"));
}

#[test]
fn revocation_during_the_check_rejects() {
    let mut sessions = two_factor_table(&Admission::new(10), 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    login(
        &mut sessions,
        &mut io,
        remote(1000),
        "alice",
        b"pw-alice",
        now,
    );
    let checks = sessions.take_password_checks();
    sessions.update_credentials(&mut io, session_config(), HashSet::from(["7".into()]), now);
    sessions.finish_password_check(&mut io, checks[0].result(Verdict::Accepted), now);
    assert!(io.sent_text_to(remote(1000), "AUTH_FAILED,certificate serial 07 is revoked"));
    assert!(!io.sent_text_to(remote(1000), "PUSH_REPLY"));
}

#[test]
fn failures_throttle_the_next_attempt() {
    let mut sessions = two_factor_table(&Admission::new(10), 2, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    for port in [1000, 1001] {
        login(&mut sessions, &mut io, remote(port), "alice", b"wrong", now);
        answer(
            &mut sessions,
            &mut io,
            Verdict::Denied("wrong password".into()),
            now,
        );
    }
    login(
        &mut sessions,
        &mut io,
        remote(1002),
        "alice",
        b"pw-alice",
        now,
    );
    assert!(sessions.take_password_checks().is_empty(), "locked out");
    assert!(io.sent_text_to(remote(1002), "AUTH_FAILED,too many failed logins"));
}

#[test]
fn parallel_attempts_count_toward_the_limit() {
    let mut sessions = two_factor_table(&Admission::new(10), 2, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    for port in [1000, 1001, 1002] {
        login(&mut sessions, &mut io, remote(port), "alice", b"guess", now);
    }
    assert_eq!(sessions.take_password_checks().len(), 2);
    assert!(io.sent_text_to(remote(1002), "AUTH_FAILED,too many failed logins"));
}

#[test]
fn verdict_for_a_closed_session_is_ignored() {
    let admission = Admission::new(10);
    let mut sessions = two_factor_table(&admission, 1, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    login(&mut sessions, &mut io, remote(1000), "alice", b"wrong", now);
    let checks = sessions.take_password_checks();
    sessions.receive_datagram(&mut io, remote(1000), None, &mut control(b"C"), now);
    assert_eq!(sessions.len(), 0);
    sessions.finish_password_check(&mut io, checks[0].result(Verdict::Denied("x".into())), now);
    assert_eq!(admission.active(), 0);
    // The failure still counts: the next attempt is throttled.
    login(
        &mut sessions,
        &mut io,
        remote(1001),
        "alice",
        b"pw-alice",
        now,
    );
    assert!(sessions.take_password_checks().is_empty());
}

#[test]
fn other_sessions_proceed_during_a_check() {
    let admission = Admission::new(10);
    let mut sessions = two_factor_table(&admission, 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    login(
        &mut sessions,
        &mut io,
        remote(1000),
        "alice",
        b"pw-alice",
        now,
    );
    let slow = sessions.take_password_checks();
    login(&mut sessions, &mut io, remote(2000), "bob", b"pw-bob", now);
    answer(&mut sessions, &mut io, Verdict::Accepted, now);
    assert!(io.sent_text_to(remote(2000), "PUSH_REPLY"));
    assert!(!io.sent_text_to(remote(1000), "PUSH_REPLY"));
    sessions.finish_password_check(&mut io, slow[0].result(Verdict::Accepted), now);
    assert!(io.sent_text_to(remote(1000), "PUSH_REPLY"));
    assert_eq!(admission.active(), 2);
}

/// Logs `alice` in and returns her pushed token.
fn accepted_alice(
    sessions: &mut Sessions<FakeSession>,
    io: &mut RecordingIo,
    now: Instant,
) -> String {
    login(sessions, io, remote(1000), "alice", b"pw-alice", now);
    answer(sessions, io, Verdict::Accepted, now);
    sessions.receive_datagram(io, remote(1000), None, &mut control(b"E"), now);
    pushed_token(io, remote(1000))
}

#[test]
fn renegotiation_with_token_keeps_session() {
    let mut sessions = two_factor_table(&Admission::new(10), 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let token = accepted_alice(&mut sessions, &mut io, now);
    let mut packet = with_credentials(b'R', "alice", 7, "alice", token.as_bytes());
    sessions.receive_datagram(&mut io, remote(1000), None, &mut packet, now);
    assert_eq!(sessions.len(), 1);
    assert!(
        sessions.take_password_checks().is_empty(),
        "no backend check"
    );
}

#[test]
fn renegotiation_with_wrong_token_closes() {
    let mut sessions = two_factor_table(&Admission::new(10), 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    accepted_alice(&mut sessions, &mut io, now);
    let other = SessionToken::generate().unwrap();
    let mut packet = with_credentials(b'R', "alice", 7, "alice", other.secret().expose());
    sessions.receive_datagram(&mut io, remote(1000), None, &mut packet, now);
    assert_eq!(sessions.len(), 0);
}

#[test]
fn renegotiation_with_password_instead_of_token_closes() {
    let mut sessions = two_factor_table(&Admission::new(10), 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    accepted_alice(&mut sessions, &mut io, now);
    let mut packet = with_credentials(b'R', "alice", 7, "alice", b"pw-alice");
    sessions.receive_datagram(&mut io, remote(1000), None, &mut packet, now);
    assert_eq!(sessions.len(), 0);
}

#[test]
fn renegotiation_with_other_username_closes() {
    let mut sessions = two_factor_table(&Admission::new(10), 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    let token = accepted_alice(&mut sessions, &mut io, now);
    let mut packet = with_credentials(b'R', "alice", 7, "bob", token.as_bytes());
    sessions.receive_datagram(&mut io, remote(1000), None, &mut packet, now);
    assert_eq!(sessions.len(), 0);
}

#[test]
fn renegotiation_without_credentials_closes() {
    let mut sessions = two_factor_table(&Admission::new(10), 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    accepted_alice(&mut sessions, &mut io, now);
    sessions.receive_datagram(
        &mut io,
        remote(1000),
        None,
        &mut control(b"R\x07alice"),
        now,
    );
    assert_eq!(sessions.len(), 0);
}

#[test]
fn certificate_only_server_queues_no_checks() {
    let mut server = ssl_server(Protocol::Udp);
    server.two_factor = false;
    let mut sessions: Sessions<FakeSession> = Sessions::new(
        &server,
        session_config(),
        open_pool(&server),
        Admission::new(10),
        HashSet::new(),
    );
    let mut io = RecordingIo::default();
    login(
        &mut sessions,
        &mut io,
        remote(1000),
        "alice",
        b"pw-alice",
        Instant::now(),
    );
    assert!(sessions.take_password_checks().is_empty());
    assert!(io.sent_text_to(remote(1000), "PUSH_REPLY"));
    assert!(!io.sent_text_to(remote(1000), "auth-token"));
}

#[test]
fn removed_user_is_disconnected() {
    let admission = Admission::new(10);
    let mut sessions = two_factor_table(&admission, 5, false, HashSet::new());
    let mut io = RecordingIo::default();
    let now = Instant::now();
    accepted_alice(&mut sessions, &mut io, now);
    sessions.close_removed_users(&mut io, |name| name == "alice", now);
    assert_eq!(sessions.len(), 1, "alice still exists");
    sessions.close_removed_users(&mut io, |name| name == "bob", now);
    assert_eq!(sessions.len(), 0);
    assert_eq!(admission.active(), 0);
}
