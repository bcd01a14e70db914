//! Receive side of the reliability layer.

use std::collections::VecDeque;
use std::fmt;

use crate::proto::packet::{AckList, MAX_ACKS, Opcode};

/// Settings of a [`ReceiveWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveConfig {
    /// Number of message ids, starting at the next one to deliver, that the window accepts.
    /// OpenVPN uses 12 (`TLS_RELIABLE_N_REC_BUFFERS`). Values below 1 act as 1.
    pub capacity: usize,
    /// Maximum payload length accepted. OpenVPN peers send at most `tls-mtu` bytes, and
    /// OpenVPN caps `tls-mtu` at 2048.
    pub max_message_len: usize,
    /// Maximum number of ids waiting to be acknowledged. Further ids are not recorded, and the
    /// peer's retransmission gets them acknowledged later. OpenVPN keeps 8
    /// (`RELIABLE_ACK_SIZE`).
    pub max_pending_acks: usize,
    /// Message id of the first message to deliver. Normally 0; a session that starts after a
    /// stateless reset exchange (in which message 0 was received) starts at 1.
    pub first_message_id: u32,
}

impl Default for ReceiveConfig {
    fn default() -> Self {
        ReceiveConfig {
            capacity: 12,
            max_message_len: 2048,
            max_pending_acks: MAX_ACKS,
            first_message_id: 0,
        }
    }
}

/// Errors from accepting a message. The message is dropped and not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    #[error("control message {message_id} of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        message_id: u32,
        len: usize,
        max: usize,
    },
    #[error("opcode {0:?} does not carry a message id")]
    NotReliable(Opcode),
}

/// Result of [`ReceiveWindow::receive`] for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveOutcome {
    /// The message was stored for delivery, and its id will be acknowledged.
    New,
    /// The message was stored or delivered before. Its id will be acknowledged again, because
    /// the peer evidently missed the earlier ACK.
    Duplicate,
    /// The id lies beyond the receive buffer. The message was dropped without an ACK, so the
    /// peer sends it again later.
    BeyondWindow,
}

/// A message delivered in order by [`ReceiveWindow::pop_message`].
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: u32,
    pub opcode: Opcode,
    pub payload: Vec<u8>,
}

impl fmt::Debug for ReceivedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedMessage")
            .field("message_id", &self.message_id)
            .field("opcode", &self.opcode)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Incoming messages in the receive buffer and the ids to acknowledge.
///
/// Memory is bounded by `capacity` messages of at most `max_message_len` bytes plus
/// `max_pending_acks` ids, whatever the peer sends.
pub struct ReceiveWindow {
    config: ReceiveConfig,
    /// Id of the next message to deliver.
    next_id: u32,
    /// Slot `i` contains the message with id `next_id + i`, if it arrived.
    slots: VecDeque<Option<(Opcode, Vec<u8>)>>,
    /// Ids to acknowledge, oldest first, without repeats.
    pending_acks: VecDeque<u32>,
}

impl ReceiveWindow {
    /// Creates an empty window.
    pub fn new(config: ReceiveConfig) -> ReceiveWindow {
        let config = ReceiveConfig {
            capacity: config.capacity.max(1),
            ..config
        };
        ReceiveWindow {
            config,
            next_id: config.first_message_id,
            slots: VecDeque::with_capacity(config.capacity),
            pending_acks: VecDeque::with_capacity(config.max_pending_acks),
        }
    }

    /// Accepts a message from a packet that passed control-channel protection and whose
    /// session ids match.
    ///
    /// Ids from the next one to deliver up to `capacity - 1` past it are stored and
    /// acknowledged. Ids before the next one to deliver were delivered already (or came from
    /// a stateless reset exchange), so they are acknowledged again and dropped. Later ids are
    /// dropped without an ACK, as OpenVPN does.
    pub fn receive(
        &mut self,
        message_id: u32,
        opcode: Opcode,
        payload: &[u8],
    ) -> Result<ReceiveOutcome, ReceiveError> {
        if !opcode.is_reliable() || opcode.is_key_method_1() {
            return Err(ReceiveError::NotReliable(opcode));
        }
        if payload.len() > self.config.max_message_len {
            return Err(ReceiveError::TooLong {
                message_id,
                len: payload.len(),
                max: self.config.max_message_len,
            });
        }

        let offset = message_id.wrapping_sub(self.next_id) as usize;
        if offset >= self.config.capacity {
            if super::id_before(message_id, self.next_id) {
                self.record_ack(message_id);
                return Ok(ReceiveOutcome::Duplicate);
            }
            return Ok(ReceiveOutcome::BeyondWindow);
        }

        self.record_ack(message_id);
        if self.slots.len() <= offset {
            self.slots.resize(offset + 1, None);
        }
        let slot = &mut self.slots[offset];
        if slot.is_some() {
            return Ok(ReceiveOutcome::Duplicate);
        }
        *slot = Some((opcode, payload.to_vec()));
        Ok(ReceiveOutcome::New)
    }

    /// Removes and returns the next message in id order, or `None` while it is missing.
    pub fn pop_message(&mut self) -> Option<ReceivedMessage> {
        let (opcode, payload) = self.slots.front_mut()?.take()?;
        self.slots.pop_front();
        let message_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        Some(ReceivedMessage {
            message_id,
            opcode,
            payload,
        })
    }

    /// Removes up to `max` pending ids (never more than [`MAX_ACKS`]), oldest first, for the
    /// ack section of an outgoing packet. Use [`crate::proto::packet::MAX_PIGGYBACK_ACKS`]
    /// for packets that carry a message and [`MAX_ACKS`] for ACK_V1.
    pub fn take_acks(&mut self, max: usize) -> AckList {
        let mut acks = AckList::new();
        while acks.len() < max.min(MAX_ACKS) {
            let Some(id) = self.pending_acks.pop_front() else {
                break;
            };
            acks.push(id);
        }
        acks
    }

    /// Returns whether ids wait to be acknowledged.
    pub fn has_pending_acks(&self) -> bool {
        !self.pending_acks.is_empty()
    }

    /// Returns the number of ids waiting to be acknowledged.
    pub fn pending_ack_count(&self) -> usize {
        self.pending_acks.len()
    }

    /// Returns the id of the next message to deliver.
    pub fn next_message_id(&self) -> u32 {
        self.next_id
    }

    fn record_ack(&mut self, message_id: u32) {
        if self.pending_acks.contains(&message_id)
            || self.pending_acks.len() >= self.config.max_pending_acks
        {
            return;
        }
        self.pending_acks.push_back(message_id);
    }
}

impl fmt::Debug for ReceiveWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stored: Vec<u32> = (0u32..)
            .zip(&self.slots)
            .filter(|(_, slot)| slot.is_some())
            .map(|(offset, _)| self.next_id.wrapping_add(offset))
            .collect();
        f.debug_struct("ReceiveWindow")
            .field("next_id", &self.next_id)
            .field("stored", &stored)
            .field("pending_acks", &self.pending_acks)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> ReceiveWindow {
        ReceiveWindow::new(ReceiveConfig::default())
    }

    fn receive(window: &mut ReceiveWindow, id: u32) -> ReceiveOutcome {
        window
            .receive(id, Opcode::ControlV1, &id.to_be_bytes())
            .unwrap()
    }

    fn delivered(window: &mut ReceiveWindow) -> Vec<u32> {
        std::iter::from_fn(|| window.pop_message())
            .map(|message| message.message_id)
            .collect()
    }

    #[test]
    fn in_order_delivery() {
        let mut window = window();
        assert_eq!(receive(&mut window, 0), ReceiveOutcome::New);
        assert_eq!(receive(&mut window, 1), ReceiveOutcome::New);
        let message = window.pop_message().unwrap();
        assert_eq!(message.message_id, 0);
        assert_eq!(message.opcode, Opcode::ControlV1);
        assert_eq!(message.payload, [0, 0, 0, 0]);
        assert_eq!(delivered(&mut window), [1]);
    }

    #[test]
    fn reordered_messages_wait_for_gap() {
        let mut window = window();
        receive(&mut window, 2);
        receive(&mut window, 1);
        assert_eq!(delivered(&mut window), Vec::<u32>::new());
        receive(&mut window, 0);
        assert_eq!(delivered(&mut window), [0, 1, 2]);
        assert_eq!(window.next_message_id(), 3);
    }

    #[test]
    fn acks_are_selective() {
        let mut window = window();
        receive(&mut window, 3);
        receive(&mut window, 1);
        assert_eq!(window.take_acks(8).as_slice(), [3, 1]);
        assert!(!window.has_pending_acks());
    }

    #[test]
    fn stored_duplicate_acked_again() {
        let mut window = window();
        receive(&mut window, 1);
        window.take_acks(8);
        assert_eq!(receive(&mut window, 1), ReceiveOutcome::Duplicate);
        assert_eq!(window.take_acks(8).as_slice(), [1]);
    }

    #[test]
    fn delivered_duplicate_acked_again() {
        let mut window = window();
        receive(&mut window, 0);
        delivered(&mut window);
        window.take_acks(8);
        assert_eq!(receive(&mut window, 0), ReceiveOutcome::Duplicate);
        assert_eq!(window.take_acks(8).as_slice(), [0]);
        assert_eq!(window.pop_message(), None);
    }

    #[test]
    fn pending_acks_not_repeated() {
        let mut window = window();
        receive(&mut window, 0);
        receive(&mut window, 0);
        assert_eq!(window.pending_ack_count(), 1);
    }

    #[test]
    fn beyond_window_dropped_without_ack() {
        let mut window = window();
        assert_eq!(receive(&mut window, 11), ReceiveOutcome::New);
        assert_eq!(receive(&mut window, 12), ReceiveOutcome::BeyondWindow);
        assert_eq!(
            receive(&mut window, 0x7fff_ffff),
            ReceiveOutcome::BeyondWindow
        );
        assert_eq!(window.take_acks(8).as_slice(), [11]);
    }

    #[test]
    fn window_moves_with_delivery() {
        let mut window = window();
        receive(&mut window, 0);
        delivered(&mut window);
        assert_eq!(receive(&mut window, 12), ReceiveOutcome::New);
    }

    #[test]
    fn piggyback_takes_at_most_four() {
        let mut window = window();
        for id in 0..6 {
            receive(&mut window, id);
        }
        assert_eq!(window.take_acks(4).as_slice(), [0, 1, 2, 3]);
        assert_eq!(window.take_acks(100).as_slice(), [4, 5]);
    }

    #[test]
    fn pending_acks_bounded() {
        let mut window = window();
        for id in 0..12 {
            receive(&mut window, id);
        }
        assert_eq!(window.pending_ack_count(), 8);
        assert_eq!(window.take_acks(8).as_slice(), [0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn first_message_id_is_configurable() {
        let config = ReceiveConfig {
            first_message_id: 1,
            ..ReceiveConfig::default()
        };
        let mut window = ReceiveWindow::new(config);
        assert_eq!(receive(&mut window, 0), ReceiveOutcome::Duplicate);
        assert_eq!(receive(&mut window, 1), ReceiveOutcome::New);
        assert_eq!(delivered(&mut window), [1]);
        assert_eq!(window.take_acks(8).as_slice(), [0, 1]);
    }

    #[test]
    fn ids_wrap_around() {
        let config = ReceiveConfig {
            first_message_id: u32::MAX,
            ..ReceiveConfig::default()
        };
        let mut window = ReceiveWindow::new(config);
        receive(&mut window, 0);
        receive(&mut window, u32::MAX);
        assert_eq!(delivered(&mut window), [u32::MAX, 0]);
        assert_eq!(receive(&mut window, u32::MAX), ReceiveOutcome::Duplicate);
    }

    #[test]
    fn long_message_rejected() {
        let mut window = window();
        let payload = vec![0; 2049];
        assert_eq!(
            window.receive(0, Opcode::ControlV1, &payload),
            Err(ReceiveError::TooLong {
                message_id: 0,
                len: 2049,
                max: 2048,
            })
        );
        assert!(!window.has_pending_acks());
    }

    #[test]
    fn ack_opcode_rejected() {
        let mut window = window();
        assert_eq!(
            window.receive(0, Opcode::AckV1, &[]),
            Err(ReceiveError::NotReliable(Opcode::AckV1))
        );
    }

    #[test]
    fn opcode_kept_per_message() {
        let mut window = window();
        window.receive(0, Opcode::SoftResetV1, &[]).unwrap();
        let message = window.pop_message().unwrap();
        assert_eq!(message.opcode, Opcode::SoftResetV1);
    }

    proptest::proptest! {
        /// Arbitrary ids, many of them near the next expected one, with pops in between:
        /// delivery is in id order without gaps or repeats, each message keeps the payload
        /// of its first arrival, and the window never contains more than its capacity.
        #[test]
        fn arbitrary_ids_deliver_in_order(
            first in proptest::prelude::any::<u32>(),
            steps in proptest::collection::vec((-20i64..20, 0u8..4), 0..200),
        ) {
            let config = ReceiveConfig {
                first_message_id: first,
                ..ReceiveConfig::default()
            };
            let mut window = ReceiveWindow::new(config);
            let mut expected = first;
            for (offset, action) in steps {
                if action == 0 {
                    if let Some(message) = window.pop_message() {
                        proptest::prop_assert_eq!(message.message_id, expected);
                        proptest::prop_assert_eq!(message.payload, expected.to_be_bytes());
                        expected = expected.wrapping_add(1);
                    }
                    continue;
                }
                let id = window.next_message_id().wrapping_add_signed(offset as i32);
                let outcome = window.receive(id, Opcode::ControlV1, &id.to_be_bytes());
                proptest::prop_assert!(outcome.is_ok());
                proptest::prop_assert!(window.slots.len() <= config.capacity);
                proptest::prop_assert!(window.pending_ack_count() <= config.max_pending_acks);
            }
        }

        #[test]
        fn arbitrary_input_never_panics(
            ids in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..50),
            opcode in 0u8..32,
            len in 0usize..3000,
        ) {
            let mut window = window();
            for id in ids {
                if let Some(opcode) = Opcode::from_u8(opcode) {
                    let _ = window.receive(id, opcode, &vec![0; len]);
                }
                let _ = window.pop_message();
                let acks = window.take_acks(MAX_ACKS);
                proptest::prop_assert!(acks.len() <= MAX_ACKS);
            }
        }
    }
}
