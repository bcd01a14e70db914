//! Replay packet ids of tls-auth and tls-crypt: a u32 counter and the u32 unix time at which
//! the sender started counting, written counter first (`packet_id.c` in OpenVPN).

use std::fmt;

/// Number of counters below the highest one seen that the window still accepts. OpenVPN's
/// default `--replay-window` is 64.
const WINDOW: u32 = 64;

/// Replay packet id of a protected control packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayId {
    pub counter: u32,
    /// Unix time in seconds at which the sender's counter started.
    pub time: u32,
}

/// Wire length of a [`ReplayId`].
pub(crate) const REPLAY_ID_LEN: usize = 8;

impl ReplayId {
    pub(crate) fn to_bytes(self) -> [u8; REPLAY_ID_LEN] {
        let mut bytes = [0; REPLAY_ID_LEN];
        bytes[..4].copy_from_slice(&self.counter.to_be_bytes());
        bytes[4..].copy_from_slice(&self.time.to_be_bytes());
        bytes
    }

    pub(crate) fn from_bytes(bytes: &[u8; REPLAY_ID_LEN]) -> ReplayId {
        ReplayId {
            counter: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            time: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }
}

/// Reason why [`ReplayWindow`] rejected a replay id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayReason {
    /// Counter 0 is never sent, because senders increment before the first packet.
    ZeroCounter,
    /// The time field is older than the newest time seen.
    TimeBacktrack,
    /// The counter is more than the window size below the highest counter seen.
    TooOld,
    /// The same counter was seen before.
    Duplicate,
}

impl fmt::Display for ReplayReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ReplayReason::ZeroCounter => "counter 0 is invalid",
            ReplayReason::TimeBacktrack => "time is older than the newest packet",
            ReplayReason::TooOld => "counter is outside the replay window",
            ReplayReason::Duplicate => "counter was seen before",
        };
        f.write_str(text)
    }
}

/// Sender's replay id state. The time is taken from the first packet and stays fixed until
/// the counter wraps, as in OpenVPN.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReplayIdSender {
    counter: u32,
    time: Option<u32>,
}

impl ReplayIdSender {
    /// Sets the counter of the last packet sent, so the next packet uses `counter + 1`.
    pub(crate) fn set_counter(&mut self, counter: u32) {
        self.counter = counter;
    }

    /// Returns the id for the next packet, or `None` when the counter is exhausted and the
    /// clock has not moved past the time of the current series.
    pub(crate) fn next(&mut self, now_unix: u32) -> Option<ReplayId> {
        let time = *self.time.get_or_insert(now_unix);
        if self.counter == u32::MAX {
            if now_unix <= time {
                return None;
            }
            self.time = Some(now_unix);
            self.counter = 0;
        }
        self.counter += 1;
        Some(ReplayId {
            counter: self.counter,
            time: self.time.unwrap_or(now_unix),
        })
    }
}

/// Sliding window over received replay ids (OpenVPN's `packet_id_test` in backtrack mode).
///
/// Ids with a newer time start a new window. Within one time, counters up to 63 below the
/// highest seen are accepted once each. OpenVPN also expires window entries after
/// `--replay-window`'s time argument (15 s). This window omits that expiry, because it only
/// rejects late packets that were never seen before, which are no replays.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    /// Time and highest counter seen, `None` before the first packet.
    newest: Option<ReplayId>,
    /// Bit `i` is set when counter `highest - i` was seen.
    seen: u64,
}

impl ReplayWindow {
    /// Checks an id without recording it.
    pub fn check(&self, id: ReplayId) -> Result<(), ReplayReason> {
        if id.counter == 0 {
            return Err(ReplayReason::ZeroCounter);
        }
        let Some(newest) = self.newest else {
            return Ok(());
        };
        if id.time > newest.time {
            return Ok(());
        }
        if id.time < newest.time {
            return Err(ReplayReason::TimeBacktrack);
        }
        if id.counter > newest.counter {
            return Ok(());
        }
        let distance = newest.counter - id.counter;
        if distance >= WINDOW {
            return Err(ReplayReason::TooOld);
        }
        if self.seen & (1 << distance) != 0 {
            return Err(ReplayReason::Duplicate);
        }
        Ok(())
    }

    /// Checks an id and records it when accepted. Call this only for authenticated packets,
    /// so that forged ids cannot move the window.
    pub fn check_and_record(&mut self, id: ReplayId) -> Result<(), ReplayReason> {
        self.check(id)?;
        match self.newest {
            Some(newest) if newest.time == id.time && id.counter <= newest.counter => {
                self.seen |= 1 << (newest.counter - id.counter);
            }
            Some(newest) if newest.time == id.time => {
                let shift = id.counter - newest.counter;
                self.seen = if shift >= WINDOW {
                    1
                } else {
                    self.seen << shift | 1
                };
                self.newest = Some(id);
            }
            _ => {
                self.seen = 1;
                self.newest = Some(id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(counter: u32) -> ReplayId {
        ReplayId {
            counter,
            time: 1000,
        }
    }

    #[test]
    fn id_bytes_counter_first() {
        let bytes = ReplayId {
            counter: 0x0102_0304,
            time: 0x0a0b_0c0d,
        }
        .to_bytes();
        assert_eq!(bytes, [1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(ReplayId::from_bytes(&bytes).counter, 0x0102_0304);
    }

    #[test]
    fn sender_starts_at_one_and_keeps_time() {
        let mut sender = ReplayIdSender::default();
        assert_eq!(
            sender.next(1000),
            Some(ReplayId {
                counter: 1,
                time: 1000,
            })
        );
        assert_eq!(
            sender.next(1005),
            Some(ReplayId {
                counter: 2,
                time: 1000,
            })
        );
    }

    #[test]
    fn sender_wraps_only_when_time_moves() {
        let mut sender = ReplayIdSender::default();
        sender.next(1000);
        sender.set_counter(u32::MAX);
        assert_eq!(sender.next(1000), None);
        assert_eq!(
            sender.next(1001),
            Some(ReplayId {
                counter: 1,
                time: 1001,
            })
        );
    }

    #[test]
    fn window_accepts_first_and_rejects_duplicate() {
        let mut window = ReplayWindow::default();
        assert_eq!(window.check_and_record(id(0x0f00_0001)), Ok(()));
        assert_eq!(
            window.check_and_record(id(0x0f00_0001)),
            Err(ReplayReason::Duplicate)
        );
    }

    #[test]
    fn window_accepts_reordered() {
        let mut window = ReplayWindow::default();
        window.check_and_record(id(5)).unwrap();
        assert_eq!(window.check_and_record(id(3)), Ok(()));
        assert_eq!(window.check_and_record(id(4)), Ok(()));
        assert_eq!(window.check_and_record(id(3)), Err(ReplayReason::Duplicate));
        assert_eq!(window.check_and_record(id(6)), Ok(()));
        assert_eq!(window.check_and_record(id(5)), Err(ReplayReason::Duplicate));
    }

    #[test]
    fn window_rejects_old_counter() {
        let mut window = ReplayWindow::default();
        window.check_and_record(id(100)).unwrap();
        assert_eq!(window.check(id(37)), Ok(()));
        assert_eq!(window.check(id(36)), Err(ReplayReason::TooOld));
        window.check_and_record(id(300)).unwrap();
        assert_eq!(window.check(id(100)), Err(ReplayReason::TooOld));
    }

    #[test]
    fn window_rejects_zero_counter() {
        let window = ReplayWindow::default();
        assert_eq!(window.check(id(0)), Err(ReplayReason::ZeroCounter));
    }

    #[test]
    fn newer_time_resets_window() {
        let mut window = ReplayWindow::default();
        window.check_and_record(id(100)).unwrap();
        let later = ReplayId {
            counter: 1,
            time: 1001,
        };
        assert_eq!(window.check_and_record(later), Ok(()));
        assert_eq!(window.check(id(101)), Err(ReplayReason::TimeBacktrack));
        assert_eq!(window.check_and_record(later), Err(ReplayReason::Duplicate));
    }

    #[test]
    fn check_does_not_record() {
        let mut window = ReplayWindow::default();
        assert_eq!(window.check(id(1)), Ok(()));
        assert_eq!(window.check_and_record(id(1)), Ok(()));
    }

    proptest::proptest! {
        /// The window against a plain model: an id is accepted once, unless its counter is
        /// 0, its time is older than the newest time, or its counter lies 64 or more below
        /// the highest counter of the newest time.
        #[test]
        fn window_matches_model(
            ids in proptest::collection::vec((0u32..200, 0u32..3), 0..300),
        ) {
            let mut window = ReplayWindow::default();
            let mut newest: Option<ReplayId> = None;
            let mut seen = std::collections::BTreeSet::new();
            for (counter, time) in ids {
                let id = ReplayId { counter, time };
                let accept = counter != 0
                    && match newest {
                        None => true,
                        Some(newest) if time != newest.time => time > newest.time,
                        Some(newest) => {
                            counter > newest.counter
                                || (newest.counter - counter < WINDOW
                                    && !seen.contains(&(time, counter)))
                        }
                    };
                proptest::prop_assert_eq!(window.check_and_record(id).is_ok(), accept, "{:?}", id);
                if accept {
                    seen.insert((time, counter));
                    if newest.is_none_or(|newest| time > newest.time || counter > newest.counter) {
                        newest = Some(id);
                    }
                }
            }
        }
    }
}
