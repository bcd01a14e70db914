//! Deadlines of the sessions of one SSL server, earliest first.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use super::sessions::ConnId;

/// Heap entries above this multiple of the live deadlines trigger a rebuild of the heap.
const STALE_FACTOR: usize = 2;
/// Heap entries always tolerated before a rebuild, so small tables do not rebuild often.
const STALE_SLACK: usize = 64;

/// A min-heap of session deadlines with lazy deletion: changing or removing a deadline leaves
/// the old heap entry in place, and it is skipped when it reaches the top.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// The live deadline of each connection; a heap entry that differs from it is stale.
    deadlines: HashMap<ConnId, Instant>,
}

impl Timers {
    /// Sets or clears the deadline of `conn`.
    pub(crate) fn set(&mut self, conn: ConnId, deadline: Option<Instant>) {
        let Some(deadline) = deadline else {
            self.deadlines.remove(&conn);
            return;
        };
        if self.deadlines.insert(conn, deadline) == Some(deadline) {
            return;
        }
        self.heap.push(Reverse((deadline, conn)));
        if self.heap.len() > STALE_FACTOR * self.deadlines.len() + STALE_SLACK {
            self.rebuild();
        }
    }

    pub(crate) fn remove(&mut self, conn: ConnId) {
        self.deadlines.remove(&conn);
    }

    /// Returns the earliest live deadline.
    pub(crate) fn next(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, conn))) = self.heap.peek() {
            if self.is_live(deadline, conn) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the connections whose deadline is at or before `now`.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<ConnId> {
        let mut due = Vec::new();
        while let Some(&Reverse((deadline, conn))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if self.is_live(deadline, conn) {
                self.deadlines.remove(&conn);
                due.push(conn);
            }
        }
        due
    }

    fn is_live(&self, deadline: Instant, conn: ConnId) -> bool {
        self.deadlines.get(&conn) == Some(&deadline)
    }

    fn rebuild(&mut self) {
        self.heap = self
            .deadlines
            .iter()
            .map(|(&conn, &deadline)| Reverse((deadline, conn)))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn expired_returns_due_in_order() {
        let start = Instant::now();
        let mut timers = Timers::default();
        timers.set(1, Some(start + Duration::from_secs(3)));
        timers.set(2, Some(start + Duration::from_secs(1)));
        timers.set(3, Some(start + Duration::from_secs(10)));
        assert_eq!(timers.next(), Some(start + Duration::from_secs(1)));
        assert_eq!(timers.expired(start + Duration::from_secs(5)), vec![2, 1]);
        assert_eq!(timers.next(), Some(start + Duration::from_secs(10)));
    }

    #[test]
    fn changed_deadline_replaces_old_one() {
        let start = Instant::now();
        let mut timers = Timers::default();
        timers.set(1, Some(start + Duration::from_secs(1)));
        timers.set(1, Some(start + Duration::from_secs(7)));
        assert_eq!(timers.next(), Some(start + Duration::from_secs(7)));
        assert!(timers.expired(start + Duration::from_secs(2)).is_empty());
        assert_eq!(timers.expired(start + Duration::from_secs(7)), vec![1]);
    }

    #[test]
    fn removed_and_cleared_deadlines_never_fire() {
        let start = Instant::now();
        let mut timers = Timers::default();
        timers.set(1, Some(start));
        timers.set(2, Some(start));
        timers.remove(1);
        timers.set(2, None);
        assert_eq!(timers.next(), None);
        assert!(timers.expired(start + Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn heap_stays_bounded_under_churn() {
        let start = Instant::now();
        let mut timers = Timers::default();
        for step in 0..10_000u64 {
            timers.set(step % 3, Some(start + Duration::from_millis(step)));
        }
        assert!(timers.heap.len() <= STALE_FACTOR * 3 + STALE_SLACK + 1);
        assert_eq!(timers.expired(start + Duration::from_secs(60)).len(), 3);
    }
}
