//! Batched I/O on a TUN device with offload (see [`super::tun::create`]), through tun-rs.
//! One read returns a GSO packet split into its segments, and one write carries the TCP or
//! UDP segments of one flow coalesced into one packet (GRO). The kernel then handles one
//! packet where it would handle dozens. On a device without offload the same calls read
//! and write one packet each.

use std::io;

use tun_rs::{
    AsyncDevice, DeviceImpl, ExpandBuffer, GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN,
};

use super::tun::MTU;
use super::udp::MAX_DATAGRAM;

/// Segments one read may return. The device's `gso_max_segs` is set to this, so the kernel
/// segments larger GSO packets in software before the daemon reads them.
pub(super) const RECEIVE_SEGMENTS: usize = IDEAL_BATCH_SIZE;
/// Packets written to the device with one [`TunSendBatch::flush`].
const SEND_SLOTS: usize = IDEAL_BATCH_SIZE;
/// Largest IPv4 packet, so also the largest packet GRO may build.
const MAX_PACKET: usize = u16::MAX as usize;
/// Room in front of each queued packet for the virtio-net header.
const SEND_OFFSET: usize = VIRTIO_NET_HDR_LEN;
/// Capacity of one send slot. tun-rs coalesces into a slot only while the result leaves
/// `2 * SEND_OFFSET` bytes of its capacity free, so no coalesced packet exceeds
/// [`MAX_PACKET`].
const SLOT_CAPACITY: usize = 2 * SEND_OFFSET + MAX_PACKET;

/// Buffers for reading the device, allocated once per server.
pub(super) struct TunReceive {
    /// One read: the virtio-net header and a packet of up to 64 KiB.
    raw: Vec<u8>,
    /// The packets of the last read. The first slot is large enough for any packet the
    /// kernel did not segment, which is all a device without offload reads. The others
    /// receive one segment each, which the device's MTU bounds.
    packets: Vec<Vec<u8>>,
    sizes: Vec<usize>,
}

impl TunReceive {
    pub(super) fn new() -> Self {
        let mut packets = vec![vec![0u8; usize::from(MTU)]; RECEIVE_SEGMENTS];
        packets[0] = vec![0u8; MAX_DATAGRAM];
        Self {
            raw: vec![0u8; VIRTIO_NET_HDR_LEN + MAX_DATAGRAM],
            packets,
            sizes: vec![0; RECEIVE_SEGMENTS],
        }
    }

    /// Waits for the device to be readable and reads one packet, split into the segments
    /// it carries, and returns how many packets the read produced.
    pub(super) async fn receive(&mut self, device: &AsyncDevice) -> io::Result<usize> {
        device
            .recv_multiple(&mut self.raw, &mut self.packets, &mut self.sizes, 0)
            .await
    }

    /// Reads one queued packet like [`Self::receive`], or fails with
    /// [`io::ErrorKind::WouldBlock`] when none is queued.
    pub(super) fn try_receive(&mut self, device: &AsyncDevice) -> io::Result<usize> {
        device.try_recv_multiple(&mut self.raw, &mut self.packets, &mut self.sizes, 0)
    }

    /// Returns the first `count` packets of the last read.
    pub(super) fn packets(&self, count: usize) -> impl Iterator<Item = &[u8]> {
        self.packets
            .iter()
            .zip(&self.sizes)
            .take(count)
            .map(|(packet, &size)| &packet[..size])
    }
}

/// Returns whether a failed read lost only the packet it read and the device still works.
/// The kernel's errors carry an errno. tun-rs's errors for a GSO packet it cannot split
/// (malformed, or with more segments than [`RECEIVE_SEGMENTS`]) carry none. Its
/// [`io::ErrorKind::WouldBlock`] for an empty queue carries none either but loses nothing.
pub(super) fn is_packet_error(error: &io::Error) -> bool {
    error.raw_os_error().is_none() && error.kind() != io::ErrorKind::WouldBlock
}

/// A send slot: a packet behind [`SEND_OFFSET`] bytes of room, in a buffer of
/// [`SLOT_CAPACITY`] bytes.
struct Slot(Vec<u8>);

impl AsRef<[u8]> for Slot {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsMut<[u8]> for Slot {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl ExpandBuffer for Slot {
    /// Reports at most [`SLOT_CAPACITY`] even where the allocator gave more, which bounds
    /// what GRO coalesces into the slot.
    fn buf_capacity(&self) -> usize {
        self.0.capacity().min(SLOT_CAPACITY)
    }

    fn buf_resize(&mut self, new_len: usize, value: u8) {
        self.0.resize(new_len, value);
    }

    fn buf_extend_from_slice(&mut self, src: &[u8]) {
        self.0.extend_from_slice(src);
    }
}

/// IP packets for the TUN device queued during one wake of the server task and written
/// when the wake ends. On a device with offload, tun-rs first coalesces consecutive TCP
/// segments of one flow into one packet of up to 64 KiB with a virtio-net header. It does
/// the same for UDP datagrams where the kernel accepts UDP GSO (Linux 6.2 and later). A
/// burst of uploads then costs one `write` per coalesced packet instead of one per
/// segment. The slots and the GRO table are allocated once.
// NOTE: tun-rs 2.8.16 copies each TCP and UDP packet it examines for GRO into a new Vec, so
// GRO allocates once per such packet although the batch itself does not.
pub(super) struct TunSendBatch {
    slots: Vec<Slot>,
    /// Slots in use, from the first.
    queued: usize,
    /// Packets queued since [`Self::take_pushed`] last ran.
    pushed: usize,
    gro: GROTable,
}

impl TunSendBatch {
    pub(super) fn new() -> Self {
        // Each slot gets its capacity when first used, so an idle server keeps only the
        // slots its busiest wake needed.
        let slots = (0..SEND_SLOTS).map(|_| Slot(Vec::new())).collect();
        Self {
            slots,
            queued: 0,
            pushed: 0,
            gro: GROTable::new(),
        }
    }

    /// Queues a packet, after writing the queued ones when every slot is taken. Drops an
    /// empty packet or one longer than 65,535 bytes and passes the error to `note`.
    pub(super) fn push(
        &mut self,
        device: &AsyncDevice,
        packet: &[u8],
        note: &mut dyn FnMut(&io::Error),
    ) {
        if self.is_full() {
            self.flush(device, note);
        }
        if let Err(error) = self.queue(packet) {
            note(&error);
        }
    }

    fn is_full(&self) -> bool {
        self.queued == self.slots.len()
    }

    /// Copies a packet into the next free slot, which the caller made sure exists.
    fn queue(&mut self, packet: &[u8]) -> io::Result<()> {
        if packet.is_empty() || packet.len() > MAX_PACKET {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid IP packet length {}", packet.len()),
            ));
        }
        let slot = &mut self.slots[self.queued].0;
        slot.clear();
        // GRO coalesces into a slot only as far as its capacity allows.
        slot.reserve_exact(SLOT_CAPACITY);
        slot.resize(SEND_OFFSET, 0);
        slot.extend_from_slice(packet);
        self.queued += 1;
        self.pushed += 1;
        Ok(())
    }

    /// Returns how many packets were queued since the last call.
    pub(super) fn take_pushed(&mut self) -> usize {
        std::mem::take(&mut self.pushed)
    }

    /// Writes the queued packets without waiting. tun-rs writes every packet even after a
    /// failed one and returns the last error, which goes to `note`. A full queue in the
    /// kernel drops packets, as a congested link would.
    pub(super) fn flush(&mut self, device: &AsyncDevice, note: &mut dyn FnMut(&io::Error)) {
        if self.queued == 0 {
            return;
        }
        let slots = &mut self.slots[..self.queued];
        self.queued = 0;
        // `AsyncDevice::send_multiple` waits for the device to be writable between packets;
        // the blocking device's method writes to the non-blocking descriptor without waiting.
        let device: &DeviceImpl = device;
        if let Err(error) = device.send_multiple(&mut self.gro, slots, SEND_OFFSET) {
            note(&error);
        }
    }
}

#[cfg(test)]
mod tests {
    use tun_rs::{VIRTIO_NET_HDR_GSO_TCPV4, VirtioNetHdr};

    use super::*;

    const SOURCE: [u8; 4] = [10, 8, 0, 6];
    const DESTINATION: [u8; 4] = [192, 168, 50, 2];
    const FIRST_SEQUENCE: u32 = 1000;

    /// Returns the ones' complement sum of `bytes` added to `sum`, folded to 16 bits.
    fn ones_complement_sum(bytes: &[u8], mut sum: u32) -> u16 {
        for pair in bytes.chunks(2) {
            let high = u32::from(pair[0]) << 8;
            let low = pair.get(1).map_or(0, |&byte| u32::from(byte));
            sum += high | low;
        }
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        sum as u16
    }

    /// Builds an IPv4 TCP segment (ACK only) with valid checksums.
    fn tcp_segment(sequence: u32, payload: &[u8]) -> Vec<u8> {
        let total = 40 + payload.len();
        let mut packet = vec![0u8; total];
        packet[0] = 0x45;
        packet[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        packet[6] = 0x40; // Don't Fragment
        packet[8] = 64;
        packet[9] = 6;
        packet[12..16].copy_from_slice(&SOURCE);
        packet[16..20].copy_from_slice(&DESTINATION);
        let header_checksum = !ones_complement_sum(&packet[..20], 0);
        packet[10..12].copy_from_slice(&header_checksum.to_be_bytes());

        let tcp = &mut packet[20..];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&sequence.to_be_bytes());
        tcp[8..12].copy_from_slice(&77u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x10; // ACK
        tcp[14..16].copy_from_slice(&1024u16.to_be_bytes());
        tcp[20..].copy_from_slice(payload);

        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&SOURCE);
        pseudo.extend_from_slice(&DESTINATION);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&((total - 20) as u16).to_be_bytes());
        let pseudo_sum = u32::from(ones_complement_sum(&pseudo, 0));
        let tcp_checksum = !ones_complement_sum(&packet[20..], pseudo_sum);
        packet[36..38].copy_from_slice(&tcp_checksum.to_be_bytes());
        packet
    }

    /// Queues `count` consecutive segments of one flow with `payload_len` bytes each.
    fn queue_flow(batch: &mut TunSendBatch, count: usize, payload_len: usize) {
        for index in 0..count {
            let sequence = FIRST_SEQUENCE + (index * payload_len) as u32;
            let payload = vec![index as u8; payload_len];
            batch.queue(&tcp_segment(sequence, &payload)).unwrap();
        }
    }

    /// Runs tun-rs's GRO over the queued slots as `flush` does before writing.
    fn coalesce(batch: &mut TunSendBatch) {
        let queued = batch.queued;
        batch
            .gro
            .apply_gro(&mut batch.slots[..queued], SEND_OFFSET, false)
            .unwrap();
    }

    fn header(slot: &Slot) -> VirtioNetHdr {
        VirtioNetHdr::decode(&slot.0[..SEND_OFFSET]).unwrap()
    }

    fn ip_total_length(slot: &Slot) -> usize {
        let packet = &slot.0[SEND_OFFSET..];
        usize::from(u16::from_be_bytes([packet[2], packet[3]]))
    }

    fn sequence(slot: &Slot) -> u32 {
        let packet = &slot.0[SEND_OFFSET..];
        u32::from_be_bytes(packet[24..28].try_into().unwrap())
    }

    #[test]
    fn queue_copies_packet_behind_header_room() {
        let mut batch = TunSendBatch::new();
        let packet = tcp_segment(FIRST_SEQUENCE, b"hello");
        batch.queue(&packet).unwrap();

        assert_eq!(batch.queued, 1);
        assert_eq!(batch.slots[0].0.len(), SEND_OFFSET + packet.len());
        assert_eq!(&batch.slots[0].0[SEND_OFFSET..], &packet[..]);
    }

    #[test]
    fn queue_rejects_empty_and_oversized_packets() {
        let mut batch = TunSendBatch::new();
        assert!(batch.queue(&[]).is_err());
        assert!(batch.queue(&vec![0x45; MAX_PACKET + 1]).is_err());
        assert_eq!(batch.queued, 0);
    }

    #[test]
    fn batch_is_full_after_every_slot() {
        let mut batch = TunSendBatch::new();
        let packet = tcp_segment(FIRST_SEQUENCE, b"x");
        for _ in 0..SEND_SLOTS {
            assert!(!batch.is_full());
            batch.queue(&packet).unwrap();
        }
        assert!(batch.is_full());
    }

    #[test]
    fn reused_slot_holds_only_new_packet() {
        let mut batch = TunSendBatch::new();
        batch
            .queue(&tcp_segment(FIRST_SEQUENCE, &[1; 500]))
            .unwrap();
        batch.queued = 0;
        let short = tcp_segment(FIRST_SEQUENCE, b"ab");
        batch.queue(&short).unwrap();

        assert_eq!(&batch.slots[0].0[SEND_OFFSET..], &short[..]);
    }

    #[test]
    fn slots_get_capacity_on_first_use() {
        let mut batch = TunSendBatch::new();
        assert!(batch.slots.iter().all(|slot| slot.0.capacity() == 0));
        batch.queue(&tcp_segment(FIRST_SEQUENCE, b"abc")).unwrap();
        assert!(batch.slots[0].0.capacity() >= SLOT_CAPACITY);
        assert_eq!(batch.slots[1].0.capacity(), 0);
    }

    #[test]
    fn gro_coalesces_segments_of_one_flow() {
        let mut batch = TunSendBatch::new();
        queue_flow(&mut batch, 3, 1000);
        let capacity = batch.slots[0].0.capacity();
        coalesce(&mut batch);

        let first = &batch.slots[0];
        let header = header(first);
        assert_eq!(header.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
        assert_eq!(header.gso_size, 1000);
        assert_eq!(ip_total_length(first), 40 + 3 * 1000);
        assert_eq!(first.0.len(), SEND_OFFSET + 40 + 3 * 1000);
        assert_eq!(&first.0[SEND_OFFSET + 40 + 2000..], &[2u8; 1000][..]);
        assert_eq!(
            first.0.capacity(),
            capacity,
            "coalescing reallocated the slot"
        );
    }

    #[test]
    fn gro_stops_at_largest_ip_packet() {
        let payload_len = 1400;
        let per_packet = (MAX_PACKET - 40) / payload_len;
        let mut batch = TunSendBatch::new();
        queue_flow(&mut batch, per_packet + 2, payload_len);
        coalesce(&mut batch);

        let first = &batch.slots[0];
        assert_eq!(ip_total_length(first), 40 + per_packet * payload_len);
        assert!(first.0.len() - SEND_OFFSET <= MAX_PACKET);
        let next = &batch.slots[per_packet];
        let expected_sequence = FIRST_SEQUENCE + (per_packet * payload_len) as u32;
        assert_eq!(sequence(next), expected_sequence);
        assert_eq!(header(next).gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
        assert_eq!(ip_total_length(next), 40 + 2 * payload_len);
    }

    #[test]
    fn receive_packets_returns_filled_sizes() {
        let mut receive = TunReceive::new();
        receive.packets[0][..3].copy_from_slice(&[1, 2, 3]);
        receive.packets[1][..2].copy_from_slice(&[4, 5]);
        receive.sizes[0] = 3;
        receive.sizes[1] = 2;

        let packets: Vec<&[u8]> = receive.packets(2).collect();
        assert_eq!(packets, vec![&[1u8, 2, 3][..], &[4u8, 5][..]]);
    }

    #[test]
    fn packet_errors_differ_from_device_errors() {
        assert!(is_packet_error(&io::Error::other("too many GSO segments")));
        let device_gone = io::Error::from_raw_os_error(libc::EBADFD);
        assert!(!is_packet_error(&device_gone));
    }

    #[test]
    fn empty_queue_is_no_packet_error() {
        let empty = io::Error::from(io::ErrorKind::WouldBlock);
        assert!(!is_packet_error(&empty));
        let empty_from_kernel = io::Error::from_raw_os_error(libc::EAGAIN);
        assert!(!is_packet_error(&empty_from_kernel));
    }
}
