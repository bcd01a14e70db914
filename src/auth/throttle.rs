//! Limits failed logins per client IP address and per username.
//!
//! Each address and each username may have at most `max_failures` failed attempts within any
//! `window` (`lockout_seconds`). Checks still running count as failures until they finish, so
//! parallel connections cannot try more passwords than that. Once the limit is reached,
//! further attempts are rejected without being checked until the oldest failure in the window
//! is `window` old. A successful login clears the failures of its username, not of its
//! address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Tracked addresses and usernames above which records without recent failures are
/// pruned.
const PRUNE_ABOVE: usize = 4096;

/// Failed attempts and running checks of one address or username.
#[derive(Debug, Default)]
struct Record {
    /// Times of the failures within the window, oldest first.
    failures: VecDeque<Instant>,
    in_flight: u32,
}

impl Record {
    fn forget_before(&mut self, cutoff: Option<Instant>) {
        while let (Some(&oldest), Some(cutoff)) = (self.failures.front(), cutoff) {
            if oldest > cutoff {
                break;
            }
            self.failures.pop_front();
        }
    }

    fn is_idle(&self) -> bool {
        self.failures.is_empty() && self.in_flight == 0
    }

    /// Failures and running checks together.
    fn load(&self) -> usize {
        self.failures.len() + self.in_flight as usize
    }
}

/// The limit that rejected a login attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Locked {
    Address {
        address: IpAddr,
        retry_after: Duration,
    },
    Username {
        username: String,
        retry_after: Duration,
    },
}

impl std::fmt::Display for Locked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Address {
                address,
                retry_after,
            } => write!(
                f,
                "too many failed logins from {address}; retry in {} s",
                retry_after.as_secs().max(1)
            ),
            Self::Username {
                username,
                retry_after,
            } => write!(
                f,
                "too many failed logins for user {username:?}; retry in {} s",
                retry_after.as_secs().max(1)
            ),
        }
    }
}

/// The outcome of a check that [`Throttle::begin`] admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Succeeded,
    Failed,
    /// The backend could not decide (timeout, error); not counted against the client.
    Undecided,
}

#[derive(Debug)]
pub struct Throttle {
    max_failures: usize,
    window: Duration,
    by_address: HashMap<IpAddr, Record>,
    by_username: HashMap<String, Record>,
}

impl Throttle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1) as usize,
            window,
            by_address: HashMap::new(),
            by_username: HashMap::new(),
        }
    }

    /// Admits a check of `username` from `address`, counting it as running, or returns why
    /// not.
    pub fn begin(&mut self, address: IpAddr, username: &str, now: Instant) -> Result<(), Locked> {
        self.prune_if_large(now);
        let cutoff = now.checked_sub(self.window);
        let window = self.window;
        let max = self.max_failures;
        let record = self.by_address.get_mut(&address);
        if let Some(retry_after) = retry_after(record, max, window, cutoff, now) {
            return Err(Locked::Address {
                address,
                retry_after,
            });
        }
        let record = self.by_username.get_mut(username);
        if let Some(retry_after) = retry_after(record, max, window, cutoff, now) {
            return Err(Locked::Username {
                username: username.to_owned(),
                retry_after,
            });
        }
        self.by_address.entry(address).or_default().in_flight += 1;
        self.by_username
            .entry(username.to_owned())
            .or_default()
            .in_flight += 1;
        Ok(())
    }

    /// Records the end of a check admitted by [`Throttle::begin`].
    pub fn finish(&mut self, address: IpAddr, username: &str, attempt: Attempt, now: Instant) {
        for record in [
            self.by_address.get_mut(&address),
            self.by_username.get_mut(username),
        ]
        .into_iter()
        .flatten()
        {
            record.in_flight = record.in_flight.saturating_sub(1);
            if attempt == Attempt::Failed {
                record.failures.push_back(now);
                // Only the newest `max_failures` decide when the key unlocks.
                while record.failures.len() > self.max_failures {
                    record.failures.pop_front();
                }
            }
        }
        if attempt == Attempt::Succeeded
            && let Some(record) = self.by_username.get_mut(username)
        {
            record.failures.clear();
        }
        self.remove_if_idle(address, username);
    }

    /// Forgets failures older than the window and records with nothing left.
    pub fn prune(&mut self, now: Instant) {
        let cutoff = now.checked_sub(self.window);
        self.by_address.retain(|_, record| {
            record.forget_before(cutoff);
            !record.is_idle()
        });
        self.by_username.retain(|_, record| {
            record.forget_before(cutoff);
            !record.is_idle()
        });
    }

    /// Number of addresses and usernames with recent failures or running checks.
    pub fn tracked(&self) -> usize {
        self.by_address.len() + self.by_username.len()
    }

    fn remove_if_idle(&mut self, address: IpAddr, username: &str) {
        if self.by_address.get(&address).is_some_and(Record::is_idle) {
            self.by_address.remove(&address);
        }
        if self.by_username.get(username).is_some_and(Record::is_idle) {
            self.by_username.remove(username);
        }
    }

    fn prune_if_large(&mut self, now: Instant) {
        if self.tracked() > PRUNE_ABOVE {
            self.prune(now);
        }
    }
}

/// Returns how long a key with `record` stays locked, or None when it may try now.
fn retry_after(
    record: Option<&mut Record>,
    max_failures: usize,
    window: Duration,
    cutoff: Option<Instant>,
    now: Instant,
) -> Option<Duration> {
    let record = record?;
    record.forget_before(cutoff);
    if record.load() < max_failures {
        return None;
    }
    // With only running checks in the way, the client may retry once they finish.
    let unlocks = record.failures.front().map(|&oldest| oldest + window);
    Some(unlocks.map_or(Duration::from_secs(1), |at| {
        at.saturating_duration_since(now)
    }))
}

#[cfg(test)]
mod tests;
