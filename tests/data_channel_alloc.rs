//! Checks that the data channel packet path does not allocate once keys and buffers
//! exist, by counting the allocations of the test thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use sslvpn::proto::data::{
    AuthDigest, COMPRESSION_HEADROOM, COMPRESSION_TAILROOM, CompressWorkspace, Compression,
    CompressionFraming, DataCipher, DataKeys, MAX_HEADROOM, MAX_TAILROOM, PING_PAYLOAD, Payload,
    Role,
};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator. The counter is a
// thread-local `Cell` without a destructor, so touching it cannot reenter the allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const HEADROOM: usize = COMPRESSION_HEADROOM + MAX_HEADROOM;
const HEADER: [u8; 4] = [0x48, 0x00, 0x00, 0x01];

struct Buffers {
    packet: Vec<u8>,
    out: Vec<u8>,
    decompressed: Vec<u8>,
    garbage: Vec<u8>,
}

/// Sends `payload` from client to server through framing, encryption, decryption and
/// unframing, once in place and once through `Encryptor::encrypt`.
fn exchange(
    client: &mut DataKeys,
    server: &mut DataKeys,
    compression: &Compression,
    workspace: &mut CompressWorkspace,
    buffers: &mut Buffers,
    payload: &[u8],
) {
    let now = Instant::now();
    let packet = &mut buffers.packet;
    let range = HEADROOM..HEADROOM + payload.len();
    packet[range.clone()].copy_from_slice(payload);
    let framed = compression.frame(packet, range, workspace).expect("frame");
    let sent = client
        .encrypt
        .encrypt_in_place(&HEADER, packet, framed)
        .expect("encrypt");
    let received = &mut packet[sent];
    let plaintext = server
        .decrypt
        .decrypt(received, HEADER.len(), now)
        .expect("decrypt");
    let unframed = compression
        .unframe(received, plaintext, &mut buffers.decompressed)
        .expect("unframe");
    let bytes = unframed.bytes(received, &buffers.decompressed);
    assert_eq!(bytes, payload);
    assert!(matches!(
        Payload::classify(bytes),
        Payload::Ip(_) | Payload::Ping
    ));

    client
        .encrypt
        .encrypt(&HEADER, payload, &mut buffers.out)
        .expect("encrypt");
    server
        .decrypt
        .decrypt(&mut buffers.out, HEADER.len(), now)
        .expect("decrypt");
    let rejected = server
        .decrypt
        .decrypt(&mut buffers.garbage, HEADER.len(), now);
    assert!(rejected.is_err());
}

#[test]
fn packet_path_does_not_allocate() {
    let key_block: [u8; 256] = core::array::from_fn(|i| (i * 7) as u8);
    let mut payload = vec![0x45u8; 20];
    payload.extend((0..1380).map(|i| (i % 251) as u8));

    for cipher in DataCipher::ALL {
        for framing in [
            CompressionFraming::None,
            CompressionFraming::Lzo,
            CompressionFraming::Swap,
            CompressionFraming::V2,
        ] {
            let mut client =
                DataKeys::new(cipher, AuthDigest::Sha256, &key_block, Role::Client).expect("keys");
            let mut server =
                DataKeys::new(cipher, AuthDigest::Sha256, &key_block, Role::Server).expect("keys");
            // LZO1X compression works in the reused workspace; lz4_flex allocates its
            // hash table per call, so LZ4 framing is tested without compression.
            let compression = Compression {
                framing,
                compress_outbound: framing == CompressionFraming::Lzo,
            };
            let mut workspace = CompressWorkspace::new();
            let mut buffers = Buffers {
                packet: vec![0; HEADROOM + 1500 + COMPRESSION_TAILROOM + MAX_TAILROOM],
                out: Vec::with_capacity(2048),
                decompressed: vec![0; 1600],
                garbage: vec![0x5a; 200],
            };
            // The first exchange may create the LZO dictionary and the scratch buffer.
            exchange(
                &mut client,
                &mut server,
                &compression,
                &mut workspace,
                &mut buffers,
                &payload,
            );

            let before = allocations();
            for round in 0..50 {
                let sample: &[u8] = if round % 2 == 0 {
                    &payload
                } else {
                    &PING_PAYLOAD
                };
                exchange(
                    &mut client,
                    &mut server,
                    &compression,
                    &mut workspace,
                    &mut buffers,
                    sample,
                );
            }
            let after = allocations();
            assert_eq!(after - before, 0, "{cipher:?} {framing:?}");
        }
    }
}

#[test]
fn counter_sees_allocations() {
    let before = allocations();
    let boxed = std::hint::black_box(Box::new([0u8; 64]));
    assert_eq!(allocations() - before, 1);
    drop(boxed);
}
