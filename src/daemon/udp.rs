//! The UDP listener of an SSL server: batched receives with `recvmmsg` and batched sends
//! with UDP GSO, through quinn-udp.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;
use tracing::debug;

use super::sessions::Link;

/// Room for any IPv4 packet or UDP datagram.
pub(super) const MAX_DATAGRAM: usize = 65_536;
/// Largest UDP payload sent as one GSO segment: what fits a 1500-byte link without IP
/// fragmentation. Linux rejects a GSO send whose segments exceed the device MTU.
// NOTE: on a device with a smaller MTU such sends fail, and their datagrams are then sent
// one by one.
const MAX_SEGMENT_V4: usize = 1500 - 20 - 8;
const MAX_SEGMENT_V6: usize = 1500 - 40 - 8;
/// Largest UDP payload of one send: the IPv4 limit of 65,535 bytes less the IP and UDP
/// headers.
const MAX_GSO_PAYLOAD: usize = 65_535 - 20 - 8;

/// A UDP socket with quinn-udp's state, which reports the destination address of each
/// datagram (IP_PKTINFO) and sends from a chosen source address.
pub(super) struct UdpListener {
    socket: UdpSocket,
    state: quinn_udp::UdpSocketState,
}

/// Receive buffer of a UDP listener. A burst of junk must not fill the kernel's queue so far
/// that clients' packets are dropped before the server reads them.
const UDP_RECEIVE_BUFFER: usize = 4 * 1024 * 1024;
/// Datagrams one `recvmmsg` call may return: quinn-udp's limit (32 on Linux).
pub(super) const RECEIVE_SLOTS: usize = quinn_udp::BATCH_SIZE;

/// Buffers for one `recvmmsg` call, allocated once per server: a slot of [`MAX_DATAGRAM`]
/// bytes per datagram, so each slot fits any datagram or any GRO batch of the kernel.
pub(super) struct ReceiveBatch {
    buffer: Vec<u8>,
    meta: [quinn_udp::RecvMeta; RECEIVE_SLOTS],
}

impl ReceiveBatch {
    pub(super) fn new() -> Self {
        Self {
            buffer: vec![0u8; RECEIVE_SLOTS * MAX_DATAGRAM],
            meta: [quinn_udp::RecvMeta::default(); RECEIVE_SLOTS],
        }
    }

    /// Receives up to [`RECEIVE_SLOTS`] queued datagrams with one system call.
    fn receive_from(&mut self, listener: &UdpListener) -> io::Result<usize> {
        let mut slots = self.buffer.chunks_mut(MAX_DATAGRAM);
        let mut slices: [io::IoSliceMut<'_>; RECEIVE_SLOTS] =
            std::array::from_fn(|_| io::IoSliceMut::new(slots.next().unwrap_or_default()));
        listener
            .state
            .recv((&listener.socket).into(), &mut slices, &mut self.meta)
    }

    /// Returns the first `count` received datagrams with their metadata.
    pub(super) fn datagrams(
        &mut self,
        count: usize,
    ) -> impl Iterator<Item = (&quinn_udp::RecvMeta, &mut [u8])> {
        self.meta
            .iter()
            .zip(self.buffer.chunks_mut(MAX_DATAGRAM))
            .take(count)
            .map(|(meta, slot)| {
                let len = meta.len.min(slot.len());
                (meta, &mut slot[..len])
            })
    }
}

impl UdpListener {
    pub(super) fn new(socket: UdpSocket) -> io::Result<Self> {
        let state = quinn_udp::UdpSocketState::new((&socket).into())?;
        set_receive_buffer(&socket, UDP_RECEIVE_BUFFER);
        allow_fragmentation(&socket)?;
        Ok(Self { socket, state })
    }

    /// Receives the datagrams that are already queued, without waiting, and returns how many
    /// slots of `batch` they fill; None when none are queued or the receive failed.
    pub(super) fn try_receive(&self, batch: &mut ReceiveBatch) -> Option<usize> {
        self.socket
            .try_io(tokio::io::Interest::READABLE, || batch.receive_from(self))
            .ok()
    }

    /// Waits for datagrams and receives as many as are queued, up to one per slot of `batch`.
    /// A slot may hold several datagrams of the same size coalesced by GRO.
    ///
    /// Unlike TCP reads, a batch with free slots leaves the readiness set, so the next wait
    /// starts with a receive. During a single client's upload that receive usually finds the
    /// datagrams that arrived meanwhile, which measured cheaper than sleeping until the next
    /// one arrives.
    pub(super) async fn receive(&self, batch: &mut ReceiveBatch) -> io::Result<usize> {
        loop {
            self.socket.readable().await?;
            let received = self
                .socket
                .try_io(tokio::io::Interest::READABLE, || batch.receive_from(self));
            match received {
                Ok(count) => return Ok(count),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Sends one datagram, or several of `segment_size` bytes (the last may be shorter) with
    /// UDP GSO.
    fn send(&self, link: Link, contents: &[u8], segment_size: Option<usize>) -> io::Result<()> {
        let transmit = quinn_udp::Transmit {
            destination: link.remote,
            ecn: None,
            contents,
            segment_size,
            src_ip: link.local,
        };
        self.state.try_send((&self.socket).into(), &transmit)
    }
}

/// Datagrams queued during one wake of the server task, sent when the wake ends. Consecutive
/// datagrams to one client of the same size, such as a burst from the TUN device, leave with
/// one `sendmsg` through UDP GSO, and the kernel splits them into datagrams again. The queue
/// keeps the order of all datagrams because any other datagram sends the queued ones first.
#[derive(Default)]
pub(super) struct SendBatch {
    /// The queued datagrams, back to back; all but the last are `segment_size` bytes.
    buffer: Vec<u8>,
    /// Destination and source address of the queued datagrams.
    link: Option<Link>,
    segment_size: usize,
}

impl SendBatch {
    /// Queues a datagram behind the queued ones when one GSO send can carry them all, else
    /// sends the queued ones first. `note` gets each send error.
    pub(super) fn push(
        &mut self,
        listener: &UdpListener,
        link: Link,
        packet: &[u8],
        note: &mut dyn FnMut(&io::Error),
    ) {
        let max_segment = match link.remote {
            SocketAddr::V4(_) => MAX_SEGMENT_V4,
            SocketAddr::V6(_) => MAX_SEGMENT_V6,
        };
        // quinn-udp reports 64 on Linux with UDP GSO, and 1 without it or after a GSO send
        // failed with EIO or EINVAL.
        let max_segments = listener.state.max_gso_segments();
        if max_segments <= 1 || packet.len() > max_segment || packet.is_empty() {
            self.flush(listener, note);
            if let Err(error) = listener.send(link, packet, None) {
                note(&error);
            }
            return;
        }
        if !self.buffer.is_empty() && !self.fits(link, packet.len(), max_segments) {
            self.flush(listener, note);
        }
        if self.buffer.is_empty() {
            self.link = Some(link);
            self.segment_size = packet.len();
        }
        self.buffer.extend_from_slice(packet);
    }

    /// Returns whether a datagram of `len` bytes to `link` can follow the queued ones in the
    /// same GSO send: same addresses, all queued segments full, and room left.
    fn fits(&self, link: Link, len: usize, max_segments: usize) -> bool {
        let Some(queued) = self.link else {
            return false;
        };
        let segments = self.buffer.len().div_ceil(self.segment_size);
        queued.remote == link.remote
            && queued.local == link.local
            && len <= self.segment_size
            && self.buffer.len().is_multiple_of(self.segment_size)
            && segments < max_segments
            && self.buffer.len() + len <= MAX_GSO_PAYLOAD
    }

    /// Sends the queued datagrams. When the GSO send fails for another reason than a full
    /// socket buffer, each datagram is sent on its own.
    pub(super) fn flush(&mut self, listener: &UdpListener, note: &mut dyn FnMut(&io::Error)) {
        let Some(link) = self.link.take() else {
            return;
        };
        let segment_size = self.segment_size;
        let single = self.buffer.len() <= segment_size;
        let sent = listener.send(link, &self.buffer, (!single).then_some(segment_size));
        match sent {
            Ok(()) => {}
            Err(error) if single || error.kind() == io::ErrorKind::WouldBlock => note(&error),
            Err(error) => {
                note(&error);
                for packet in self.buffer.chunks(segment_size) {
                    if let Err(error) = listener.send(link, packet, None) {
                        note(&error);
                    }
                }
            }
        }
        self.buffer.clear();
    }
}

/// Lets the kernel fragment large datagrams, as OpenVPN does by default. quinn-udp sets the
/// Don't Fragment bit for QUIC's path MTU probing, which would make every encrypted packet of
/// a full-size tunnel packet fail with EMSGSIZE on a 1500-byte link.
fn allow_fragmentation(socket: &UdpSocket) -> io::Result<()> {
    let (level, option, value) = match socket.local_addr()? {
        SocketAddr::V4(_) => (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DONT,
        ),
        SocketAddr::V6(_) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DONT,
        ),
    };
    set_int_option(socket, level, option, value)
}

/// Raises a socket's receive buffer, past `net.core.rmem_max` when the process may
/// (CAP_NET_ADMIN); a failure keeps the kernel's default, which still works.
fn set_receive_buffer(socket: &UdpSocket, bytes: usize) {
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        if set_int_option(socket, libc::SOL_SOCKET, option, size).is_ok() {
            return;
        }
    }
    debug!("could not raise the UDP receive buffer; keeping the default");
}

/// Sets an integer socket option.
fn set_int_option(
    socket: &UdpSocket,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads `value` for the length given; the descriptor belongs to a
    // socket that outlives the call.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, UdpSocket as StdUdpSocket};
    use std::time::Duration;

    use super::*;

    async fn listener() -> UdpListener {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        UdpListener::new(socket).unwrap()
    }

    /// Binds a plain socket without UDP_GRO, so the kernel splits GSO sends into datagrams
    /// for it.
    fn client() -> (StdUdpSocket, Link) {
        let socket = StdUdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let link = Link {
            conn: 1,
            remote: socket.local_addr().unwrap(),
            local: None,
        };
        (socket, link)
    }

    fn next_datagram(socket: &StdUdpSocket) -> Vec<u8> {
        let mut buffer = [0u8; 2048];
        let len = socket.recv(&mut buffer).unwrap();
        buffer[..len].to_vec()
    }

    fn no_datagram_left(socket: &StdUdpSocket) -> bool {
        socket.set_nonblocking(true).unwrap();
        let mut buffer = [0u8; 2048];
        socket.recv(&mut buffer).is_err()
    }

    #[tokio::test]
    async fn send_batch_splits_back_into_datagrams() {
        let listener = listener().await;
        let (client, link) = client();
        let mut batch = SendBatch::default();
        let mut errors = Vec::new();
        let packets: [Vec<u8>; 4] = [vec![1; 100], vec![2; 100], vec![3; 100], vec![4; 40]];
        for packet in &packets {
            batch.push(&listener, link, packet, &mut |error| {
                errors.push(error.to_string())
            });
        }
        batch.flush(&listener, &mut |error| errors.push(error.to_string()));

        assert!(errors.is_empty(), "{errors:?}");
        for packet in &packets {
            assert_eq!(&next_datagram(&client), packet);
        }
        assert!(no_datagram_left(&client));
    }

    #[tokio::test]
    async fn send_batch_keeps_order_across_clients_and_sizes() {
        let listener = listener().await;
        let (first, first_link) = client();
        let (second, second_link) = client();
        let mut batch = SendBatch::default();
        let mut errors = Vec::new();
        let sends = [
            (first_link, vec![1; 50]),
            (first_link, vec![2; 60]),
            (second_link, vec![3; 60]),
            (first_link, vec![4; 60]),
            (first_link, vec![5; 60]),
        ];
        for (link, packet) in &sends {
            batch.push(&listener, *link, packet, &mut |error| {
                errors.push(error.to_string())
            });
        }
        batch.flush(&listener, &mut |error| errors.push(error.to_string()));

        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(next_datagram(&first), vec![1; 50]);
        assert_eq!(next_datagram(&first), vec![2; 60]);
        assert_eq!(next_datagram(&first), vec![4; 60]);
        assert_eq!(next_datagram(&first), vec![5; 60]);
        assert!(no_datagram_left(&first));
        assert_eq!(next_datagram(&second), vec![3; 60]);
        assert!(no_datagram_left(&second));
    }

    #[tokio::test]
    async fn receive_batch_returns_datagrams_in_order() {
        let listener = listener().await;
        let (client, _) = client();
        let server = listener.socket.local_addr().unwrap();
        for fill in 1..=5u8 {
            client.send_to(&[fill; 30], server).unwrap();
        }
        let mut batch = ReceiveBatch::new();
        let mut received = Vec::new();
        while received.len() < 5 {
            let count = listener.receive(&mut batch).await.unwrap();
            for (meta, datagram) in batch.datagrams(count) {
                assert_eq!(meta.addr, client.local_addr().unwrap());
                received.push(datagram.to_vec());
            }
        }

        let expected: Vec<Vec<u8>> = (1..=5u8).map(|fill| vec![fill; 30]).collect();
        assert_eq!(received, expected);
    }
}
