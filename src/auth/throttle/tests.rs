use super::*;

const WINDOW: Duration = Duration::from_secs(300);

fn address(last: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, last])
}

/// Records `count` failed attempts of `username` from `from`, one second apart.
fn fail(throttle: &mut Throttle, from: IpAddr, username: &str, start: Instant, count: u32) {
    for i in 0..count {
        let now = start + Duration::from_secs(u64::from(i));
        throttle.begin(from, username, now).unwrap();
        throttle.finish(from, username, Attempt::Failed, now);
    }
}

#[test]
fn allows_attempts_below_the_limit() {
    let mut throttle = Throttle::new(5, WINDOW);
    let start = Instant::now();
    fail(&mut throttle, address(1), "alice", start, 4);
    assert!(throttle.begin(address(1), "alice", start).is_ok());
}

#[test]
fn locks_the_address_after_max_failures() {
    let mut throttle = Throttle::new(5, WINDOW);
    let start = Instant::now();
    for (i, user) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let now = start + Duration::from_secs(i as u64);
        throttle.begin(address(1), user, now).unwrap();
        throttle.finish(address(1), user, Attempt::Failed, now);
    }
    let later = start + Duration::from_secs(10);
    let locked = throttle.begin(address(1), "f", later).unwrap_err();
    assert_eq!(
        locked,
        Locked::Address {
            address: address(1),
            retry_after: Duration::from_secs(290),
        }
    );
    assert!(
        throttle.begin(address(2), "f", later).is_ok(),
        "another address is not locked"
    );
}

#[test]
fn locks_the_username_across_addresses() {
    let mut throttle = Throttle::new(3, WINDOW);
    let start = Instant::now();
    for last in 1..=3 {
        throttle.begin(address(last), "alice", start).unwrap();
        throttle.finish(address(last), "alice", Attempt::Failed, start);
    }
    let locked = throttle.begin(address(9), "alice", start).unwrap_err();
    assert!(
        matches!(&locked, Locked::Username { username, .. } if username == "alice"),
        "{locked:?}"
    );
    assert!(throttle.begin(address(9), "bob", start).is_ok());
}

#[test]
fn lock_ends_when_the_oldest_failure_leaves_the_window() {
    let mut throttle = Throttle::new(2, WINDOW);
    let start = Instant::now();
    fail(&mut throttle, address(1), "alice", start, 2);
    let just_before = start + WINDOW - Duration::from_millis(1);
    assert!(throttle.begin(address(1), "alice", just_before).is_err());
    let after = start + WINDOW;
    assert!(throttle.begin(address(1), "alice", after).is_ok());
}

#[test]
fn running_checks_count_toward_the_limit() {
    let mut throttle = Throttle::new(2, WINDOW);
    let now = Instant::now();
    throttle.begin(address(1), "alice", now).unwrap();
    throttle.begin(address(1), "alice", now).unwrap();
    let locked = throttle.begin(address(1), "alice", now);
    assert!(locked.is_err(), "a third parallel check must wait");
    throttle.finish(address(1), "alice", Attempt::Undecided, now);
    assert!(throttle.begin(address(1), "alice", now).is_ok());
}

#[test]
fn undecided_checks_are_not_failures() {
    let mut throttle = Throttle::new(1, WINDOW);
    let now = Instant::now();
    for _ in 0..3 {
        throttle.begin(address(1), "alice", now).unwrap();
        throttle.finish(address(1), "alice", Attempt::Undecided, now);
    }
    assert!(throttle.begin(address(1), "alice", now).is_ok());
}

#[test]
fn success_clears_the_username_but_not_the_address() {
    let mut throttle = Throttle::new(3, WINDOW);
    let start = Instant::now();
    fail(&mut throttle, address(1), "alice", start, 2);
    throttle.begin(address(1), "alice", start).unwrap();
    throttle.finish(address(1), "alice", Attempt::Succeeded, start);
    // The username starts over; the address keeps its two failures.
    fail(&mut throttle, address(2), "alice", start, 2);
    assert!(throttle.begin(address(3), "alice", start).is_ok());
    throttle.finish(address(3), "alice", Attempt::Undecided, start);
    throttle.begin(address(1), "bob", start).unwrap();
    throttle.finish(address(1), "bob", Attempt::Failed, start);
    assert!(throttle.begin(address(1), "carol", start).is_err());
}

#[test]
fn prune_forgets_old_failures() {
    let mut throttle = Throttle::new(5, WINDOW);
    let start = Instant::now();
    fail(&mut throttle, address(1), "alice", start, 3);
    assert_eq!(throttle.tracked(), 2);
    throttle.prune(start + WINDOW + Duration::from_secs(5));
    assert_eq!(throttle.tracked(), 0);
}

#[test]
fn records_of_successful_logins_are_removed() {
    let mut throttle = Throttle::new(5, WINDOW);
    let now = Instant::now();
    throttle.begin(address(1), "alice", now).unwrap();
    throttle.finish(address(1), "alice", Attempt::Succeeded, now);
    assert_eq!(throttle.tracked(), 0);
}

#[test]
fn lock_message_names_the_key() {
    let locked = Locked::Username {
        username: "alice".to_owned(),
        retry_after: Duration::from_secs(42),
    };
    assert_eq!(
        locked.to_string(),
        "too many failed logins for user \"alice\"; retry in 42 s"
    );
}
