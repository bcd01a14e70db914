//! The reliability layer fed arbitrary message ids, opcodes, payloads and ACKs: the receive
//! window must deliver in id order exactly what it accepted, and both windows must stay
//! within their bounds.

#![no_main]

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sslvpn::proto::packet::{MAX_ACKS, Opcode};
use sslvpn::proto::reliable::{
    ReceiveConfig, ReceiveError, ReceiveOutcome, ReceiveWindow, SendConfig, SendWindow,
};

#[derive(Arbitrary, Debug)]
enum Step {
    Receive {
        message_id: u32,
        opcode: u8,
        payload: Vec<u8>,
    },
    /// A message id close to the next one expected, the usual case.
    ReceiveNear {
        offset: i8,
        opcode: u8,
        payload: Vec<u8>,
    },
    Pop,
    TakeAcks(u8),
    Push(u8),
    Ack(u32),
    AckNear(i8),
    Transmit(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    max_message_len: u16,
    max_pending_acks: u8,
    first_message_id: u32,
    send_window: u8,
    steps: Vec<Step>,
}

fn id_before(a: u32, b: u32) -> bool {
    let distance = b.wrapping_sub(a);
    distance != 0 && distance < 0x8000_0000
}

fuzz_target!(|input: Input| {
    let receive_config = ReceiveConfig {
        capacity: usize::from(input.capacity % 32),
        max_message_len: usize::from(input.max_message_len % 4096),
        max_pending_acks: usize::from(input.max_pending_acks % 16),
        first_message_id: input.first_message_id,
    };
    let capacity = receive_config.capacity.max(1);
    let mut receive = ReceiveWindow::new(receive_config);
    // Messages accepted but not yet delivered, by id.
    let mut stored: BTreeMap<u32, (Opcode, Vec<u8>)> = BTreeMap::new();
    let mut next_id = input.first_message_id;

    let send_config = SendConfig {
        window: usize::from(input.send_window % 16),
        first_message_id: input.first_message_id,
        ..SendConfig::default()
    };
    let window = send_config.window.max(1);
    let mut send = SendWindow::new(send_config);
    let mut now = Instant::now();

    for step in input.steps {
        match step {
            Step::Receive {
                message_id,
                opcode,
                payload,
            } => check_receive(
                &mut receive,
                &mut stored,
                next_id,
                capacity,
                receive_config.max_message_len,
                message_id,
                opcode,
                &payload,
            ),
            Step::ReceiveNear {
                offset,
                opcode,
                payload,
            } => {
                let message_id = next_id.wrapping_add_signed(i32::from(offset));
                check_receive(
                    &mut receive,
                    &mut stored,
                    next_id,
                    capacity,
                    receive_config.max_message_len,
                    message_id,
                    opcode,
                    &payload,
                );
            }
            Step::Pop => match receive.pop_message() {
                Some(message) => {
                    assert_eq!(message.message_id, next_id, "delivered out of order");
                    let (opcode, payload) = stored
                        .remove(&next_id)
                        .expect("delivered a message that was never accepted");
                    assert_eq!(message.opcode, opcode);
                    assert_eq!(message.payload, payload);
                    next_id = next_id.wrapping_add(1);
                }
                None => assert!(!stored.contains_key(&next_id), "next message withheld"),
            },
            Step::TakeAcks(max) => {
                let before = receive.pending_ack_count();
                let acks = receive.take_acks(usize::from(max));
                assert!(acks.len() <= usize::from(max).min(MAX_ACKS));
                assert_eq!(acks.len(), before.min(usize::from(max)).min(MAX_ACKS));
            }
            Step::Push(len) => {
                let available = send.available();
                let result = send.push(Opcode::ControlV1, vec![0x16; usize::from(len)]);
                assert_eq!(result.is_ok(), available > 0);
            }
            Step::Ack(message_id) => {
                send.on_ack(message_id);
            }
            Step::AckNear(offset) => {
                let message_id = send
                    .next_message_id()
                    .wrapping_add_signed(i32::from(offset));
                send.on_ack(message_id);
            }
            Step::Transmit(millis) => {
                now += Duration::from_millis(u64::from(millis));
                let mut count = 0;
                while send.poll_transmit(now).is_some() {
                    count += 1;
                    assert!(count <= window, "more transmissions than messages");
                }
            }
        }
        assert!(stored.len() <= capacity);
        assert!(receive.pending_ack_count() <= receive_config.max_pending_acks);
        assert_eq!(receive.next_message_id(), next_id);
        assert!(send.unacked() <= window);
        assert!(send.available() <= window);
    }
});

#[allow(clippy::too_many_arguments)]
fn check_receive(
    receive: &mut ReceiveWindow,
    stored: &mut BTreeMap<u32, (Opcode, Vec<u8>)>,
    next_id: u32,
    capacity: usize,
    max_message_len: usize,
    message_id: u32,
    opcode: u8,
    payload: &[u8],
) {
    let Some(opcode) = Opcode::from_u8(opcode % 16) else {
        return;
    };
    let result = receive.receive(message_id, opcode, payload);
    if !opcode.is_reliable() || opcode.is_key_method_1() {
        assert_eq!(result, Err(ReceiveError::NotReliable(opcode)));
        return;
    }
    if payload.len() > max_message_len {
        assert!(matches!(result, Err(ReceiveError::TooLong { .. })));
        return;
    }
    let offset = message_id.wrapping_sub(next_id) as usize;
    let expected = if offset >= capacity {
        if id_before(message_id, next_id) {
            ReceiveOutcome::Duplicate
        } else {
            ReceiveOutcome::BeyondWindow
        }
    } else {
        match stored.entry(message_id) {
            Entry::Occupied(_) => ReceiveOutcome::Duplicate,
            Entry::Vacant(slot) => {
                slot.insert((opcode, payload.to_vec()));
                ReceiveOutcome::New
            }
        }
    };
    assert_eq!(result, Ok(expected));
}
