//! Start retries of SSL servers that failed to start, when the daemon started or after a
//! config change, with an exponential backoff.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// Delay between the first failed start and the next attempt. Each failed retry doubles the
/// delay, up to [`MAX_DELAY`].
pub(super) const FIRST_DELAY: Duration = Duration::from_secs(5);
pub(super) const MAX_DELAY: Duration = Duration::from_secs(60);

/// The next start attempt of one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Retry {
    /// Failed starts so far, including the one that scheduled this retry.
    pub(super) failures: u32,
    /// Time from that failed start to this attempt.
    pub(super) delay: Duration,
    pub(super) due: Instant,
}

/// The pending start retries, by server name.
#[derive(Debug, Default)]
pub(super) struct StartRetries {
    pending: HashMap<String, Retry>,
}

impl StartRetries {
    /// Records a failed start of `server` at `now` and schedules the next attempt. Its delay
    /// is [`FIRST_DELAY`] when no retry was pending, else twice the last delay, up to
    /// [`MAX_DELAY`].
    pub(super) fn record_failure(&mut self, server: &str, now: Instant) -> Retry {
        let (failures, delay) = match self.pending.get(server) {
            None => (1, FIRST_DELAY),
            Some(last) => (
                last.failures.saturating_add(1),
                last.delay.saturating_mul(2).min(MAX_DELAY),
            ),
        };
        let retry = Retry {
            failures,
            delay,
            due: now + delay,
        };
        self.pending.insert(server.to_owned(), retry);
        retry
    }

    /// Removes the pending retry of `server` and returns it.
    pub(super) fn cancel(&mut self, server: &str) -> Option<Retry> {
        self.pending.remove(server)
    }

    pub(super) fn get(&self, server: &str) -> Option<&Retry> {
        self.pending.get(server)
    }

    /// Returns the number of servers with a pending retry.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Returns the earliest due time of all pending retries.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.pending.values().map(|retry| retry.due).min()
    }

    /// Returns the names of the servers whose retry is due at `now`, sorted.
    pub(super) fn due(&self, now: Instant) -> Vec<String> {
        let mut names: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, retry)| retry.due <= now)
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn delay_doubles_up_to_maximum() {
        let start = Instant::now();
        let mut retries = StartRetries::default();
        let mut now = start;
        let mut delays = Vec::new();
        for _ in 0..7 {
            let retry = retries.record_failure("office", now);
            assert_eq!(retry.due, now + retry.delay);
            delays.push(retry.delay.as_secs());
            now = retry.due;
        }
        assert_eq!(delays, [5, 10, 20, 40, 60, 60, 60]);
        assert_eq!(retries.get("office").map(|retry| retry.failures), Some(7));
    }

    #[test]
    fn retry_is_due_at_its_time_only() {
        let start = Instant::now();
        let mut retries = StartRetries::default();
        assert_eq!(retries.next_due(), None);
        assert!(retries.due(start + MAX_DELAY).is_empty());

        retries.record_failure("office", start);
        retries.record_failure("lab", start + 2 * SECOND);
        assert_eq!(retries.next_due(), Some(start + FIRST_DELAY));
        assert!(retries.due(start + FIRST_DELAY - SECOND).is_empty());
        assert_eq!(retries.due(start + FIRST_DELAY), ["office"]);
        assert_eq!(
            retries.due(start + FIRST_DELAY + 2 * SECOND),
            ["lab", "office"]
        );
    }

    #[test]
    fn cancel_removes_retry_and_resets_backoff() {
        let start = Instant::now();
        let mut retries = StartRetries::default();
        retries.record_failure("office", start);
        retries.record_failure("office", start + FIRST_DELAY);
        retries.record_failure("lab", start);

        let cancelled = retries.cancel("office");
        assert_eq!(cancelled.map(|retry| retry.failures), Some(2));
        assert_eq!(retries.cancel("office"), None);
        assert_eq!(retries.next_due(), Some(start + FIRST_DELAY));
        assert_eq!(retries.due(start + MAX_DELAY), ["lab"]);

        // A server that fails again after a cancel starts over at the first delay.
        let later = start + MAX_DELAY;
        let retry = retries.record_failure("office", later);
        assert_eq!(retry.failures, 1);
        assert_eq!(retry.delay, FIRST_DELAY);
    }
}
