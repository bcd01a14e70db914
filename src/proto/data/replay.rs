//! Replay protection for received data packets, one window per key and direction.
//!
//! The rules follow OpenVPN's `packet_id.c` for the short (32-bit) packet id of TLS mode.
//! Id 0 is never valid. In window mode an id is accepted once if it is newer than the
//! highest id seen, or if it is less than `packets` behind it, was not seen before, and
//! arrives no later than `time` after a packet with a higher id. In sequential mode
//! (`replay-window 0`) each id must be exactly one more than the previous one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// OpenVPN's default window (`replay-window 64 15`).
pub const DEFAULT_REPLAY_WINDOW: u32 = 64;
/// OpenVPN's default time window.
pub const DEFAULT_REPLAY_TIME: Duration = Duration::from_secs(15);
/// The largest window OpenVPN accepts for `replay-window`.
pub const MAX_REPLAY_WINDOW: u32 = 65536;
/// The largest time window OpenVPN accepts for `replay-window`.
pub const MAX_REPLAY_TIME: Duration = Duration::from_secs(600);

/// The check applied to received packet ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayProtection {
    /// Accept reordering within `packets` ids and `time`. This is what OpenVPN 2.6 uses
    /// for both UDP and TCP by default. `packets` is clamped to 1..=[`MAX_REPLAY_WINDOW`]
    /// and `time` to [`MAX_REPLAY_TIME`]; a zero `time` disables the time limit.
    Window { packets: u32, time: Duration },
    /// Each id must be exactly one more than the previous one (OpenVPN's `replay-window 0`).
    /// Suits TCP, which neither loses nor reorders packets.
    Sequential,
}

impl Default for ReplayProtection {
    fn default() -> Self {
        ReplayProtection::Window {
            packets: DEFAULT_REPLAY_WINDOW,
            time: DEFAULT_REPLAY_TIME,
        }
    }
}

/// A received packet id that replay protection rejected. Each variant is counted apart so
/// that operators can tell a replay attack from reordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("packet id 0 is never valid")]
    ZeroPacketId,
    #[error("packet id {id} was already received")]
    Duplicate { id: u32 },
    #[error("packet id {id} is outside the replay window behind {highest}")]
    TooOld { id: u32, highest: u32 },
    #[error("packet id {id} arrived later than the replay time window allows")]
    Expired { id: u32 },
    #[error("packet id {id} is out of sequence, expected {expected}")]
    OutOfSequence { id: u32, expected: u32 },
}

/// The receive-side replay state of one key.
///
/// Memory is allocated once in [`ReplayWindow::new`]: one bit per packet of the window
/// and one checkpoint per second of the time window. [`ReplayWindow::accept`] never
/// allocates.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    mode: Mode,
    /// The highest id accepted so far, 0 before the first.
    highest: u32,
}

#[derive(Debug, Clone)]
enum Mode {
    Window(Box<SlidingWindow>),
    Sequential,
}

#[derive(Debug, Clone)]
struct SlidingWindow {
    packets: u32,
    /// Ring of seen bits; id `i` lives at bit `i % (seen.len() * 64)`.
    seen: Box<[u64]>,
    time: Duration,
    /// `(t, h)`: every id up to `h` was received at or before `t`, one entry per second at most.
    checkpoints: VecDeque<(Instant, u32)>,
    /// The same property for the most recent accepted packet.
    latest: Option<(Instant, u32)>,
    /// Every id up to this one is rejected because of the time window.
    expired_through: u32,
}

impl ReplayWindow {
    /// Creates an empty window.
    pub fn new(protection: ReplayProtection) -> Self {
        let mode = match protection {
            ReplayProtection::Window { packets, time } => {
                Mode::Window(Box::new(SlidingWindow::new(packets, time)))
            }
            ReplayProtection::Sequential => Mode::Sequential,
        };
        ReplayWindow { mode, highest: 0 }
    }

    /// Returns the highest packet id accepted so far, 0 before the first.
    pub fn highest(&self) -> u32 {
        self.highest
    }

    /// Checks `id` and records it if it is acceptable. Call this only for packets that
    /// passed authentication, so that forged packets cannot move the window.
    pub fn accept(&mut self, id: u32, now: Instant) -> Result<(), ReplayError> {
        if id == 0 {
            return Err(ReplayError::ZeroPacketId);
        }
        match &mut self.mode {
            Mode::Sequential => {
                let expected = self.highest.wrapping_add(1);
                if self.highest != 0 && id != expected {
                    return Err(ReplayError::OutOfSequence { id, expected });
                }
            }
            Mode::Window(window) => window.accept(id, self.highest, now)?,
        }
        self.highest = self.highest.max(id);
        Ok(())
    }
}

impl SlidingWindow {
    fn new(packets: u32, time: Duration) -> Self {
        let packets = packets.clamp(1, MAX_REPLAY_WINDOW);
        let time = time.min(MAX_REPLAY_TIME);
        let words = packets.div_ceil(64) as usize;
        // Checkpoints are at least a second apart and expire after `time`.
        let checkpoint_capacity = if time.is_zero() {
            0
        } else {
            time.as_secs() as usize + 2
        };
        SlidingWindow {
            packets,
            seen: vec![0; words].into_boxed_slice(),
            time,
            checkpoints: VecDeque::with_capacity(checkpoint_capacity),
            latest: None,
            expired_through: 0,
        }
    }

    fn ring_bits(&self) -> u32 {
        // At most 65536 / 64 words, so the product fits.
        (self.seen.len() * 64) as u32
    }

    fn bit(&self, id: u32) -> (usize, u64) {
        let position = id % self.ring_bits();
        ((position / 64) as usize, 1u64 << (position % 64))
    }

    fn accept(&mut self, id: u32, highest: u32, now: Instant) -> Result<(), ReplayError> {
        if id > highest {
            self.advance(highest, id);
        } else {
            let behind = highest - id;
            if behind >= self.packets {
                return Err(ReplayError::TooOld { id, highest });
            }
            let (word, mask) = self.bit(id);
            if self.seen[word] & mask != 0 {
                return Err(ReplayError::Duplicate { id });
            }
            self.expire(now);
            if id <= self.expired_through {
                return Err(ReplayError::Expired { id });
            }
            self.seen[word] |= mask;
        }
        self.record_time(id.max(highest), now);
        Ok(())
    }

    /// Moves the top of the window from `highest` to `id`, clearing the bits of the ids
    /// that enter the window.
    fn advance(&mut self, highest: u32, id: u32) {
        let step = id - highest;
        if step >= self.ring_bits() {
            self.seen.fill(0);
        } else {
            for entering in highest + 1..id {
                let (word, mask) = self.bit(entering);
                self.seen[word] &= !mask;
            }
        }
        let (word, mask) = self.bit(id);
        self.seen[word] |= mask;
    }

    fn record_time(&mut self, highest: u32, now: Instant) {
        if self.time.is_zero() {
            return;
        }
        // Dropping old checkpoints first keeps the queue within its capacity.
        self.expire(now);
        self.latest = Some((now, highest));
        let due = self
            .checkpoints
            .back()
            .is_none_or(|&(at, _)| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if due && self.checkpoints.len() < self.checkpoints.capacity() {
            self.checkpoints.push_back((now, highest));
        }
    }

    /// Raises `expired_through` to the highest id that was already received more than
    /// `time` ago: an older id arriving now would be later than the time window allows.
    fn expire(&mut self, now: Instant) {
        if self.time.is_zero() {
            return;
        }
        let is_old = |at: Instant| now.saturating_duration_since(at) > self.time;
        while let Some(&(at, highest)) = self.checkpoints.front() {
            if !is_old(at) {
                break;
            }
            self.expired_through = self.expired_through.max(highest);
            self.checkpoints.pop_front();
        }
        if let Some((at, highest)) = self.latest
            && is_old(at)
        {
            self.expired_through = self.expired_through.max(highest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(packets: u32, seconds: u64) -> ReplayWindow {
        ReplayWindow::new(ReplayProtection::Window {
            packets,
            time: Duration::from_secs(seconds),
        })
    }

    #[test]
    fn window_accepts_increasing_ids() {
        let now = Instant::now();
        let mut replay = window(64, 15);
        for id in 1..=200 {
            assert_eq!(replay.accept(id, now), Ok(()));
        }
        assert_eq!(replay.highest(), 200);
    }

    #[test]
    fn window_rejects_zero() {
        let mut replay = window(64, 15);
        assert_eq!(
            replay.accept(0, Instant::now()),
            Err(ReplayError::ZeroPacketId)
        );
    }

    #[test]
    fn window_rejects_duplicate() {
        let now = Instant::now();
        let mut replay = window(64, 15);
        assert_eq!(replay.accept(5, now), Ok(()));
        assert_eq!(replay.accept(5, now), Err(ReplayError::Duplicate { id: 5 }));
        assert_eq!(replay.accept(3, now), Ok(()));
        assert_eq!(replay.accept(3, now), Err(ReplayError::Duplicate { id: 3 }));
    }

    #[test]
    fn window_accepts_reordered_within_window() {
        let now = Instant::now();
        let mut replay = window(64, 15);
        assert_eq!(replay.accept(100, now), Ok(()));
        assert_eq!(replay.accept(37, now), Ok(()));
        assert_eq!(replay.accept(99, now), Ok(()));
        assert_eq!(replay.accept(50, now), Ok(()));
        assert_eq!(replay.highest(), 100);
    }

    #[test]
    fn window_rejects_too_old() {
        let now = Instant::now();
        let mut replay = window(64, 15);
        assert_eq!(replay.accept(100, now), Ok(()));
        assert_eq!(
            replay.accept(36, now),
            Err(ReplayError::TooOld {
                id: 36,
                highest: 100
            })
        );
    }

    #[test]
    fn window_forgets_ids_that_slide_out() {
        let now = Instant::now();
        let mut replay = window(64, 15);
        assert_eq!(replay.accept(10, now), Ok(()));
        // 10 + 128 reuses the ring bit of 10; it must read as unseen.
        assert_eq!(replay.accept(138, now), Ok(()));
        assert_eq!(replay.accept(137, now), Ok(()));
        assert_eq!(replay.accept(75, now), Ok(()));
        assert_eq!(
            replay.accept(138, now),
            Err(ReplayError::Duplicate { id: 138 })
        );
    }

    #[test]
    fn window_large_jump_clears_bits() {
        let now = Instant::now();
        let mut replay = window(64, 15);
        for id in 1..=64 {
            assert_eq!(replay.accept(id, now), Ok(()));
        }
        assert_eq!(replay.accept(1_000_000, now), Ok(()));
        assert_eq!(replay.accept(999_990, now), Ok(()));
        assert_eq!(replay.accept(999_960, now), Ok(()));
    }

    #[test]
    fn window_of_max_size() {
        let now = Instant::now();
        let mut replay = window(MAX_REPLAY_WINDOW, 15);
        assert_eq!(replay.accept(70_000, now), Ok(()));
        assert_eq!(replay.accept(70_000 - 65_535, now), Ok(()));
        assert_eq!(
            replay.accept(70_000 - 65_536, now),
            Err(ReplayError::TooOld {
                id: 4464,
                highest: 70_000
            })
        );
    }

    #[test]
    fn window_size_is_clamped() {
        let now = Instant::now();
        let mut replay = window(0, 15);
        assert_eq!(replay.accept(5, now), Ok(()));
        assert_eq!(
            replay.accept(4, now),
            Err(ReplayError::TooOld { id: 4, highest: 5 })
        );
    }

    #[test]
    fn window_time_limit_expires_late_packets() {
        let start = Instant::now();
        let mut replay = window(64, 15);
        assert_eq!(replay.accept(10, start), Ok(()));
        // Id 5 was sent before 10, which arrived 16 s ago.
        let late = start + Duration::from_secs(16);
        assert_eq!(replay.accept(5, late), Err(ReplayError::Expired { id: 5 }));
        // Newer ids are unaffected.
        assert_eq!(replay.accept(11, late), Ok(()));
    }

    #[test]
    fn window_time_limit_allows_recent_reordering() {
        let start = Instant::now();
        let mut replay = window(64, 15);
        assert_eq!(replay.accept(10, start), Ok(()));
        let soon = start + Duration::from_secs(14);
        assert_eq!(replay.accept(5, soon), Ok(()));
    }

    #[test]
    fn window_time_limit_uses_arrival_of_higher_id() {
        let start = Instant::now();
        let mut replay = window(64, 15);
        for second in 0..30u64 {
            let id = second as u32 * 2 + 2;
            let at = start + Duration::from_secs(second);
            assert_eq!(replay.accept(id, at), Ok(()));
        }
        let now = start + Duration::from_secs(30);
        // Id 40 (higher than 39) arrived at second 19, 11 s ago: 39 is still welcome.
        assert_eq!(replay.accept(39, now), Ok(()));
        // Id 20 arrived at second 9, 21 s ago: 19 is expired.
        assert_eq!(replay.accept(19, now), Err(ReplayError::Expired { id: 19 }));
    }

    #[test]
    fn window_without_time_limit() {
        let start = Instant::now();
        let mut replay = window(64, 0);
        assert_eq!(replay.accept(10, start), Ok(()));
        let much_later = start + Duration::from_secs(3600);
        assert_eq!(replay.accept(5, much_later), Ok(()));
    }

    #[test]
    fn sequential_requires_next_id() {
        let now = Instant::now();
        let mut replay = ReplayWindow::new(ReplayProtection::Sequential);
        assert_eq!(replay.accept(7, now), Ok(()));
        assert_eq!(replay.accept(8, now), Ok(()));
        assert_eq!(
            replay.accept(8, now),
            Err(ReplayError::OutOfSequence { id: 8, expected: 9 })
        );
        assert_eq!(
            replay.accept(10, now),
            Err(ReplayError::OutOfSequence {
                id: 10,
                expected: 9
            })
        );
        assert_eq!(replay.accept(9, now), Ok(()));
        assert_eq!(replay.accept(0, now), Err(ReplayError::ZeroPacketId));
    }

    #[test]
    fn window_highest_id_at_u32_max() {
        let now = Instant::now();
        let mut replay = window(64, 15);
        assert_eq!(replay.accept(u32::MAX, now), Ok(()));
        assert_eq!(
            replay.accept(u32::MAX, now),
            Err(ReplayError::Duplicate { id: u32::MAX })
        );
        assert_eq!(replay.accept(u32::MAX - 1, now), Ok(()));
    }
}
