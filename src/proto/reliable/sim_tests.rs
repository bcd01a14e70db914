//! Two peers on simulated time exchange messages through a network that loses, duplicates
//! and reorders packets. Packets go through the real codec.

use std::time::{Duration, Instant};

use super::*;
use crate::proto::packet::{ControlPacket, KeyId, MAX_ACKS, Opcode, SessionId};

const SENDER: SessionId = SessionId([1; 8]);
const RECEIVER: SessionId = SessionId([2; 8]);

/// Small deterministic generator so that every seed replays the same run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn percent(&mut self, chance: u64) -> bool {
        self.next() % 100 < chance
    }
}

struct Network {
    rng: Rng,
    loss: u64,
    duplication: u64,
    /// Packets in flight with their arrival time.
    in_flight: Vec<(Instant, Vec<u8>)>,
}

impl Network {
    fn send(&mut self, now: Instant, packet: Vec<u8>) {
        if self.rng.percent(self.loss) {
            return;
        }
        let copies = if self.rng.percent(self.duplication) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = Duration::from_millis(10 + self.rng.next() % 500);
            self.in_flight.push((now + delay, packet.clone()));
        }
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.iter().map(|(at, _)| *at).min()
    }

    fn take_arrived(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let (arrived, waiting) = self.in_flight.drain(..).partition(|(at, _)| *at <= now);
        self.in_flight = waiting;
        arrived.into_iter().map(|(_, packet)| packet).collect()
    }
}

struct Outcome {
    delivered: Vec<Vec<u8>>,
    sender_idle: bool,
    pending_acks: usize,
    elapsed: Duration,
}

fn run(seed: u64, loss: u64, duplication: u64, messages: &[Vec<u8>]) -> Outcome {
    let start = Instant::now();
    let mut now = start;
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut forward = Network {
        rng: Rng(rng.next() | 1),
        loss,
        duplication,
        in_flight: Vec::new(),
    };
    let mut backward = Network {
        rng: Rng(rng.next() | 1),
        loss,
        duplication,
        in_flight: Vec::new(),
    };
    let mut sender = SendWindow::new(SendConfig::default());
    let mut receiver = ReceiveWindow::new(ReceiveConfig::default());
    let mut queued = messages.iter().peekable();
    let mut delivered = Vec::new();

    for _ in 0..100_000 {
        while sender.available() > 0 {
            let Some(message) = queued.next() else { break };
            sender.push(Opcode::ControlV1, message.clone()).unwrap();
        }
        while let Some(transmit) = sender.poll_transmit(now) {
            let packet = ControlPacket {
                opcode: transmit.opcode,
                key_id: KeyId::ZERO,
                session_id: SENDER,
                acks: Default::default(),
                peer_session_id: None,
                message_id: Some(transmit.message_id),
                payload: transmit.payload,
            };
            let mut bytes = Vec::new();
            packet.encode(&mut bytes).unwrap();
            forward.send(now, bytes);
        }

        for bytes in forward.take_arrived(now) {
            let packet = ControlPacket::parse(&bytes).unwrap();
            let id = packet.message_id.unwrap();
            receiver.receive(id, packet.opcode, packet.payload).unwrap();
        }
        while let Some(message) = receiver.pop_message() {
            delivered.push(message.payload);
        }
        while receiver.has_pending_acks() {
            let acks = receiver.take_acks(MAX_ACKS);
            let mut bytes = Vec::new();
            ControlPacket::ack(KeyId::ZERO, RECEIVER, acks, SENDER)
                .encode(&mut bytes)
                .unwrap();
            backward.send(now, bytes);
        }

        for bytes in backward.take_arrived(now) {
            let packet = ControlPacket::parse(&bytes).unwrap();
            for &id in packet.acks.as_slice() {
                sender.on_ack(id);
            }
        }

        let done = delivered.len() == messages.len() && sender.is_idle();
        if done && forward.in_flight.is_empty() && backward.in_flight.is_empty() {
            break;
        }
        if queued.peek().is_some() && sender.available() > 0 {
            continue;
        }
        let wake = [
            sender.next_timeout(),
            forward.next_arrival(),
            backward.next_arrival(),
        ];
        let Some(next) = wake.into_iter().flatten().min() else {
            break;
        };
        now = next.max(now);
    }

    Outcome {
        delivered,
        sender_idle: sender.is_idle(),
        pending_acks: receiver.pending_ack_count(),
        elapsed: now - start,
    }
}

fn messages(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("message {i}").into_bytes())
        .collect()
}

#[test]
fn lossless_network_delivers_in_order() {
    let messages = messages(40);
    let outcome = run(1, 0, 0, &messages);
    assert_eq!(outcome.delivered, messages);
    assert!(outcome.sender_idle);
    assert_eq!(outcome.pending_acks, 0);
}

#[test]
fn reordering_and_duplication_deliver_in_order() {
    let messages = messages(40);
    for seed in 0..20 {
        let outcome = run(seed, 0, 30, &messages);
        assert_eq!(outcome.delivered, messages, "seed {seed}");
        assert!(outcome.sender_idle, "seed {seed}");
    }
}

#[test]
fn loss_still_delivers_everything() {
    let messages = messages(40);
    for seed in 0..20 {
        let outcome = run(seed, 25, 10, &messages);
        assert_eq!(outcome.delivered, messages, "seed {seed}");
        assert!(
            outcome.sender_idle,
            "seed {seed}: messages left unacknowledged"
        );
        assert_eq!(outcome.pending_acks, 0, "seed {seed}");
        assert!(
            outcome.elapsed < Duration::from_secs(3600),
            "seed {seed}: {:?}",
            outcome.elapsed
        );
    }
}
