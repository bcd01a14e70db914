//! Send side of the reliability layer.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::id_before;
use crate::proto::packet::Opcode;

/// Number of ACKs for later messages after which a message is sent again before its timeout
/// (`N_ACK_RETRANSMIT` in OpenVPN's `reliable.h`).
const FAST_RETRANSMIT_ACKS: u32 = 3;

/// Settings of a [`SendWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendConfig {
    /// Maximum distance from the oldest unacknowledged message id to the next id. OpenVPN
    /// uses 6 (`TLS_RELIABLE_N_SEND_BUFFERS`). Values below 1 act as 1.
    pub window: usize,
    /// Time from a message's first transmission to its first retransmission. OpenVPN uses
    /// 2 s. Each transmission doubles the wait before the next one.
    pub initial_timeout: Duration,
    /// Upper bound of the doubled wait. OpenVPN has none, but its handshake window (60 s by
    /// default) ends a stalled handshake first.
    pub max_timeout: Duration,
    /// Message id of the first message. Normally 0; a session that starts after a stateless
    /// reset exchange (in which message 0 was sent and acknowledged) starts at 1.
    pub first_message_id: u32,
}

impl Default for SendConfig {
    fn default() -> Self {
        SendConfig {
            window: 6,
            initial_timeout: Duration::from_secs(2),
            max_timeout: Duration::from_secs(64),
            first_message_id: 0,
        }
    }
}

/// Errors from queueing a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("send window full: {in_flight} of {window} message ids in flight")]
    WindowFull { in_flight: usize, window: usize },
    #[error("opcode {0:?} does not carry a message id")]
    NotReliable(Opcode),
}

/// A message to put on the wire now, returned by [`SendWindow::poll_transmit`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    pub message_id: u32,
    pub opcode: Opcode,
    pub payload: &'a [u8],
    /// Whether the message was sent before.
    pub retransmission: bool,
}

impl fmt::Debug for Transmit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transmit")
            .field("message_id", &self.message_id)
            .field("opcode", &self.opcode)
            .field("payload_len", &self.payload.len())
            .field("retransmission", &self.retransmission)
            .finish()
    }
}

struct Entry {
    message_id: u32,
    opcode: Opcode,
    payload: Vec<u8>,
    /// When the next transmission is due, `None` before the first one.
    next_try: Option<Instant>,
    /// Wait after the next transmission.
    timeout: Duration,
    /// ACKs seen for later messages since the last transmission.
    later_acks: u32,
}

impl Entry {
    fn is_due(&self, now: Instant) -> bool {
        match self.next_try {
            None => true,
            Some(at) => at <= now || self.later_acks >= FAST_RETRANSMIT_ACKS,
        }
    }
}

/// Outgoing messages that wait for an ACK.
///
/// Messages get consecutive ids. A new message fits only while its id is less than `window`
/// ids past the oldest unacknowledged one, so the peer's receive buffer never has to hold a
/// message it cannot deliver (`reliable_get_buf_output_sequenced` in OpenVPN). Memory is
/// bounded by `window` messages.
pub struct SendWindow {
    config: SendConfig,
    next_id: u32,
    /// Unacknowledged messages in id order.
    entries: VecDeque<Entry>,
}

impl SendWindow {
    /// Creates an empty window.
    pub fn new(config: SendConfig) -> SendWindow {
        let config = SendConfig {
            window: config.window.max(1),
            ..config
        };
        SendWindow {
            config,
            next_id: config.first_message_id,
            entries: VecDeque::with_capacity(config.window),
        }
    }

    /// Returns the number of messages that [`push`](SendWindow::push) accepts now.
    pub fn available(&self) -> usize {
        self.config.window - self.span()
    }

    /// Queues a message and returns its message id. `payload` must already fit into one
    /// packet (see [`super::max_control_payload`]).
    pub fn push(&mut self, opcode: Opcode, payload: Vec<u8>) -> Result<u32, SendError> {
        if !opcode.is_reliable() || opcode.is_key_method_1() {
            return Err(SendError::NotReliable(opcode));
        }
        if self.available() == 0 {
            return Err(SendError::WindowFull {
                in_flight: self.span(),
                window: self.config.window,
            });
        }
        let message_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.entries.push_back(Entry {
            message_id,
            opcode,
            payload,
            next_try: None,
            timeout: self.config.initial_timeout,
            later_acks: 0,
        });
        Ok(message_id)
    }

    /// Processes an ACK from the peer. Returns whether it acknowledged a message in flight;
    /// ACKs for unknown or already acknowledged ids are ignored.
    pub fn on_ack(&mut self, message_id: u32) -> bool {
        let Some(index) = self
            .entries
            .iter()
            .position(|entry| entry.message_id == message_id)
        else {
            return false;
        };
        self.entries.remove(index);
        for entry in self.entries.iter_mut() {
            if id_before(entry.message_id, message_id) {
                entry.later_acks = entry.later_acks.saturating_add(1);
            }
        }
        true
    }

    /// Returns the next message to send at `now`, if any: a first transmission, a message
    /// whose timeout expired, or one that three ACKs for later messages showed as lost. The
    /// lowest id goes first. The call schedules the message's next retransmission and doubles
    /// its timeout, up to `max_timeout`.
    ///
    /// Call it until it returns `None` after every [`push`](SendWindow::push),
    /// [`on_ack`](SendWindow::on_ack) and expired [`next_timeout`](SendWindow::next_timeout).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit<'_>> {
        let max_timeout = self.config.max_timeout;
        let entry = self.entries.iter_mut().find(|entry| entry.is_due(now))?;
        let retransmission = entry.next_try.is_some();
        entry.next_try = Some(now + entry.timeout);
        entry.timeout = entry.timeout.saturating_mul(2).min(max_timeout);
        entry.later_acks = 0;
        Some(Transmit {
            message_id: entry.message_id,
            opcode: entry.opcode,
            payload: &entry.payload,
            retransmission,
        })
    }

    /// Returns the earliest time at which a sent message is due for retransmission, or `None`
    /// when no sent message waits for an ACK.
    ///
    /// Messages that were never sent, and messages due for a fast retransmission, are not
    /// counted because they are due at once: [`poll_transmit`](SendWindow::poll_transmit)
    /// returns them on the next call.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.entries.iter().filter_map(|entry| entry.next_try).min()
    }

    /// Returns whether every queued message has been acknowledged.
    pub fn is_idle(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the number of messages that wait for an ACK.
    pub fn unacked(&self) -> usize {
        self.entries.len()
    }

    /// Returns the message id that the next [`push`](SendWindow::push) assigns.
    pub fn next_message_id(&self) -> u32 {
        self.next_id
    }

    /// Distance from the oldest unacknowledged id to the next id.
    fn span(&self) -> usize {
        match self.entries.front() {
            Some(oldest) => self.next_id.wrapping_sub(oldest.message_id) as usize,
            None => 0,
        }
    }
}

impl fmt::Debug for SendWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u32> = self.entries.iter().map(|entry| entry.message_id).collect();
        f.debug_struct("SendWindow")
            .field("next_id", &self.next_id)
            .field("unacked", &ids)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> SendWindow {
        SendWindow::new(SendConfig::default())
    }

    fn send_all(window: &mut SendWindow, now: Instant) -> Vec<u32> {
        let mut ids = Vec::new();
        while let Some(transmit) = window.poll_transmit(now) {
            ids.push(transmit.message_id);
        }
        ids
    }

    #[test]
    fn ids_start_at_zero_and_increase() {
        let mut window = window();
        for expected in 0..3 {
            assert_eq!(window.push(Opcode::ControlV1, vec![1]), Ok(expected));
        }
        assert_eq!(send_all(&mut window, Instant::now()), [0, 1, 2]);
    }

    #[test]
    fn first_message_id_is_configurable() {
        let config = SendConfig {
            first_message_id: 1,
            ..SendConfig::default()
        };
        let mut window = SendWindow::new(config);
        assert_eq!(window.push(Opcode::ControlV1, vec![]), Ok(1));
    }

    #[test]
    fn window_full_blocks_push() {
        let mut window = window();
        for _ in 0..6 {
            window.push(Opcode::ControlV1, vec![]).unwrap();
        }
        assert_eq!(window.available(), 0);
        assert_eq!(
            window.push(Opcode::ControlV1, vec![]),
            Err(SendError::WindowFull {
                in_flight: 6,
                window: 6,
            })
        );
    }

    #[test]
    fn window_waits_for_oldest_id() {
        let mut window = window();
        for _ in 0..6 {
            window.push(Opcode::ControlV1, vec![]).unwrap();
        }
        for id in 1..6 {
            assert!(window.on_ack(id));
        }
        assert_eq!(window.available(), 0, "id 0 still blocks the window");
        assert!(window.on_ack(0));
        assert_eq!(window.available(), 6);
        assert!(window.is_idle());
    }

    #[test]
    fn ack_frees_slot() {
        let mut window = window();
        for _ in 0..6 {
            window.push(Opcode::ControlV1, vec![]).unwrap();
        }
        assert!(window.on_ack(0));
        assert_eq!(window.available(), 1);
        assert_eq!(window.push(Opcode::ControlV1, vec![]), Ok(6));
    }

    #[test]
    fn unknown_and_repeated_acks_ignored() {
        let mut window = window();
        window.push(Opcode::ControlV1, vec![]).unwrap();
        assert!(!window.on_ack(5));
        assert!(window.on_ack(0));
        assert!(!window.on_ack(0));
    }

    #[test]
    fn ack_and_data_opcodes_rejected() {
        let mut window = window();
        for opcode in [Opcode::AckV1, Opcode::DataV2, Opcode::HardResetClientV1] {
            assert_eq!(
                window.push(opcode, vec![]),
                Err(SendError::NotReliable(opcode))
            );
        }
    }

    #[test]
    fn backoff_doubles() {
        let start = Instant::now();
        let mut window = window();
        window.push(Opcode::ControlV1, vec![]).unwrap();
        let mut now = start;
        let mut sent_at = Vec::new();
        for _ in 0..5 {
            let transmit = window.poll_transmit(now).unwrap();
            sent_at.push((now - start).as_secs());
            assert_eq!(transmit.message_id, 0);
            assert!(window.poll_transmit(now).is_none());
            now = window.next_timeout().unwrap();
        }
        assert_eq!(sent_at, [0, 2, 6, 14, 30]);
    }

    #[test]
    fn backoff_stops_at_max_timeout() {
        let config = SendConfig {
            max_timeout: Duration::from_secs(5),
            ..SendConfig::default()
        };
        let mut window = SendWindow::new(config);
        window.push(Opcode::ControlV1, vec![]).unwrap();
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..5 {
            window.poll_transmit(now).unwrap();
            let next = window.next_timeout().unwrap();
            waits.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(waits, [2, 4, 5, 5, 5]);
    }

    #[test]
    fn retransmission_flag_and_payload() {
        let now = Instant::now();
        let mut window = window();
        window
            .push(Opcode::HardResetServerV2, b"abc".to_vec())
            .unwrap();
        let first = window.poll_transmit(now).unwrap();
        assert!(!first.retransmission);
        assert_eq!(first.opcode, Opcode::HardResetServerV2);
        assert_eq!(first.payload, b"abc");
        let again = window.poll_transmit(now + Duration::from_secs(2)).unwrap();
        assert!(again.retransmission);
    }

    #[test]
    fn not_due_before_timeout() {
        let now = Instant::now();
        let mut window = window();
        window.push(Opcode::ControlV1, vec![]).unwrap();
        window.poll_transmit(now).unwrap();
        assert!(
            window
                .poll_transmit(now + Duration::from_millis(1999))
                .is_none()
        );
        assert_eq!(window.next_timeout(), Some(now + Duration::from_secs(2)));
    }

    #[test]
    fn three_later_acks_retransmit_early() {
        let now = Instant::now();
        let mut window = window();
        for _ in 0..4 {
            window.push(Opcode::ControlV1, vec![]).unwrap();
        }
        assert_eq!(send_all(&mut window, now), [0, 1, 2, 3]);
        window.on_ack(1);
        window.on_ack(2);
        assert!(window.poll_transmit(now).is_none());
        window.on_ack(3);
        let transmit = window.poll_transmit(now).unwrap();
        assert_eq!(transmit.message_id, 0);
        assert!(transmit.retransmission);
    }

    #[test]
    fn idle_after_all_acked() {
        let mut window = window();
        assert!(window.is_idle());
        assert_eq!(window.next_timeout(), None);
        window.push(Opcode::ControlV1, vec![]).unwrap();
        assert!(!window.is_idle());
        window.on_ack(0);
        assert!(window.is_idle());
    }

    #[test]
    fn debug_omits_payload() {
        let mut window = window();
        window.push(Opcode::ControlV1, b"secret".to_vec()).unwrap();
        let transmit = window.poll_transmit(Instant::now()).unwrap();
        assert_eq!(
            format!("{transmit:?}"),
            "Transmit { message_id: 0, opcode: ControlV1, payload_len: 6, retransmission: false }"
        );
    }
}
