//! TCP connections. Each packet on the stream is preceded by its length as a big-endian u16.
//!
//! The SSL server's task reads every connection itself. A [`Readable`] per connection waits
//! for data. The task then reads the socket, splits the bytes into packets with the
//! connection's [`FrameDecoder`] and passes each packet to its session in place. Reading in
//! the task that owns the sessions saves a thread wakeup and a copy per packet.
//!
//! The server task also writes to the socket itself: the packets of one wake for one
//! connection leave in one write at the end of the wake, while nothing is queued for the
//! connection. What the socket does not take goes to the connection's write task, which
//! waits until the client reads, so a slow client never blocks the server task.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tracing::debug;

use super::sessions::ConnId;

/// Largest packet accepted before the client authenticated. Control packets stay below it,
/// because OpenVPN sizes them to fit its link MTU, about 1500 bytes by default.
pub(crate) const MAX_UNAUTHENTICATED_PACKET: usize = 2048;
/// Largest packet accepted from an authenticated client: anything the u16 length can express.
pub(crate) const MAX_PACKET: usize = u16::MAX as usize;
/// A client sends its first packet as soon as it connects; a connection that stays silent
/// this long is closed.
pub(crate) const FIRST_PACKET_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that reads nothing for this long while packets wait is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes waiting for one connection, about 340 full-size packets. The packets of a wake that
/// would exceed it are dropped, as a congested UDP path would drop them.
const MAX_QUEUED_BYTES: usize = 512 * 1024;
/// Size of the buffer the SSL server's task reads every connection into.
pub(crate) const READ_BUFFER: usize = 64 * 1024;
/// Bytes of queued packets gathered into one write.
const MAX_WRITE_BATCH: usize = 64 * 1024;

/// The SSL server task's end of one connection. Dropping it ends the wait of its
/// [`Readable`] and closes the connection once the queued packets are written.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) remote: SocketAddr,
    stream: Arc<TcpStream>,
    /// Framed packets of this wake, written by [`Connection::flush`].
    pending: Vec<u8>,
    /// Framed bytes for the write task.
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes in `outgoing` or being written by the write task. While it is zero, the server
    /// task may write to the socket itself without reordering the stream.
    queued: Arc<AtomicUsize>,
    authenticated: bool,
    /// Whether a whole packet arrived, which ends the first packet's deadline.
    received: bool,
    decoder: FrameDecoder,
    /// Sender whose drop, with the connection, ends the wait of its [`Readable`].
    _reading: oneshot::Sender<()>,
}

impl Connection {
    /// Appends a packet to the bytes [`Connection::flush`] writes. Returns whether it is
    /// the first since the last flush, or None when the packet was dropped because too much
    /// is waiting.
    pub(crate) fn push(&mut self, packet: &[u8]) -> Option<bool> {
        let Ok(len) = u16::try_from(packet.len()) else {
            debug!(
                len = packet.len(),
                "dropped a packet too long for TCP framing"
            );
            return None;
        };
        if self.pending.len() + packet.len() > MAX_QUEUED_BYTES {
            return None;
        }
        let first = self.pending.is_empty();
        self.pending.extend_from_slice(&len.to_be_bytes());
        self.pending.extend_from_slice(packet);
        Some(first)
    }

    /// Writes the pushed packets to the socket when nothing is queued, and queues what the
    /// socket does not take for the write task. Returns false when the packets were dropped
    /// because the queue is full or the connection is gone.
    pub(crate) fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let queued = self.queued.load(Ordering::Acquire);
        if queued == 0 {
            // A failed write is queued instead, and the write task reports the error.
            let written = self.stream.try_write(&self.pending).unwrap_or(0);
            if written == self.pending.len() {
                self.pending.clear();
                return true;
            }
            self.pending.drain(..written);
        } else if queued + self.pending.len() > MAX_QUEUED_BYTES {
            self.pending.clear();
            return false;
        }
        let rest = std::mem::take(&mut self.pending);
        let len = rest.len();
        self.queued.fetch_add(len, Ordering::AcqRel);
        if self.outgoing.send(rest).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Raises the packet size limit from [`MAX_UNAUTHENTICATED_PACKET`] to [`MAX_PACKET`].
    pub(crate) fn mark_authenticated(&mut self) {
        self.authenticated = true;
    }

    /// Returns the largest packet the connection may send now.
    pub(crate) fn max_packet(&self) -> usize {
        if self.authenticated {
            MAX_PACKET
        } else {
            MAX_UNAUTHENTICATED_PACKET
        }
    }

    /// Notes that a whole packet arrived.
    pub(crate) fn mark_received(&mut self) {
        self.received = true;
    }

    /// Returns whether a whole packet arrived.
    pub(crate) fn received(&self) -> bool {
        self.received
    }

    /// Takes the decoder out while its packets are delivered. [`Connection::put_decoder`]
    /// returns it.
    pub(crate) fn take_decoder(&mut self) -> FrameDecoder {
        std::mem::take(&mut self.decoder)
    }

    pub(crate) fn put_decoder(&mut self, decoder: FrameDecoder) {
        self.decoder = decoder;
    }
}

impl Drop for Connection {
    /// Hands the packets of this wake to the write task, which writes them before it ends.
    fn drop(&mut self) {
        self.flush();
    }
}

/// Starts the write task of an accepted connection. Returns the server task's end of it and
/// the [`Readable`] that reports its first data.
pub(crate) fn spawn(
    tasks: &mut JoinSet<()>,
    stream: TcpStream,
    conn: ConnId,
    remote: SocketAddr,
    closed: mpsc::Sender<ConnId>,
) -> (Connection, Readable) {
    let _ = stream.set_nodelay(true);
    let stream = Arc::new(stream);
    let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let (reading, stop) = oneshot::channel();
    let task = WriteTask {
        conn,
        remote,
        stream: stream.clone(),
        closed,
        outgoing: outgoing_rx,
        queued: queued.clone(),
    };
    tasks.spawn(task.run());
    let connection = Connection {
        remote,
        stream: stream.clone(),
        pending: Vec::new(),
        outgoing,
        queued,
        authenticated: false,
        received: false,
        decoder: FrameDecoder::default(),
        _reading: reading,
    };
    let reader = Reader {
        stream,
        stop,
        first_packet: Some(Box::pin(tokio::time::sleep(FIRST_PACKET_TIMEOUT))),
    };
    (connection, reader.readable(conn, false))
}

/// The reading side of a connection, held by the server task while it reads and by a
/// [`Readable`] while it waits.
#[derive(Debug)]
pub(crate) struct Reader {
    stream: Arc<TcpStream>,
    /// Ends the wait when the server task drops the [`Connection`].
    stop: oneshot::Receiver<()>,
    /// Deadline of the first packet, or None once one arrived.
    first_packet: Option<Pin<Box<Sleep>>>,
}

impl Reader {
    /// Reads the data in the socket's buffer without waiting. Returns the number of bytes
    /// read, 0 at the end of the stream, and whether the read emptied the socket's buffer.
    /// Fails with `WouldBlock` when the buffer is empty.
    ///
    /// A read that does not fill `buffer` emptied the socket's buffer, so the readiness is
    /// then cleared. The next wait then sleeps until data arrives instead of starting with a
    /// read that finds nothing.
    pub(crate) fn try_read(&self, buffer: &mut [u8]) -> io::Result<(usize, bool)> {
        let mut emptied = None;
        let read = self.stream.try_io(tokio::io::Interest::READABLE, || {
            let count = self.stream.try_read(buffer)?;
            if count > 0 && count < buffer.len() {
                emptied = Some(count);
                // tokio clears the readiness on WouldBlock, unless data arrived since.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(count)
        });
        match emptied {
            Some(count) => Ok((count, true)),
            None => read.map(|count| (count, false)),
        }
    }

    /// Waits for the next data. `received` ends the first packet's deadline.
    pub(crate) fn readable(mut self, conn: ConnId, received: bool) -> Readable {
        if received {
            self.first_packet = None;
        }
        Readable {
            conn,
            reader: Some(self),
        }
    }
}

/// The event that ends the wait of a [`Readable`].
#[derive(Debug)]
pub(crate) enum ReadEvent {
    /// The socket has data, an end of stream or an error to read.
    Ready(Reader),
    /// No whole packet arrived within [`FIRST_PACKET_TIMEOUT`] of connecting.
    Silent,
    /// The server task dropped the connection.
    Dropped,
}

/// Waits until one connection has something to read.
#[derive(Debug)]
pub(crate) struct Readable {
    conn: ConnId,
    /// None once the wait is over.
    reader: Option<Reader>,
}

impl Future for Readable {
    type Output = (ConnId, ReadEvent);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let conn = self.conn;
        let reader = self
            .reader
            .as_mut()
            .expect("Readable polled after completion");
        if Pin::new(&mut reader.stop).poll(cx).is_ready() {
            self.reader = None;
            return Poll::Ready((conn, ReadEvent::Dropped));
        }
        // An error counts as ready: the read that follows reports it.
        if reader.stream.poll_read_ready(cx).is_ready() {
            let reader = self.reader.take().expect("checked above");
            return Poll::Ready((conn, ReadEvent::Ready(reader)));
        }
        if let Some(deadline) = &mut reader.first_packet
            && deadline.as_mut().poll(cx).is_ready()
        {
            self.reader = None;
            return Poll::Ready((conn, ReadEvent::Silent));
        }
        Poll::Pending
    }
}

/// Writes the bytes queued for one connection.
struct WriteTask {
    conn: ConnId,
    remote: SocketAddr,
    stream: Arc<TcpStream>,
    /// Told when a write fails, so the server task ends the session.
    closed: mpsc::Sender<ConnId>,
    outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

impl WriteTask {
    /// Writes until the server task drops the connection or a write fails. The bytes queued
    /// before the drop (a RESTART, an AUTH_FAILED) are still written. The socket closes when
    /// the server task and this task both let go of it.
    async fn run(mut self) {
        let mut batch = Vec::new();
        while let Some(first) = self.outgoing.recv().await {
            self.gather(first, &mut batch);
            let written = tokio::time::timeout(WRITE_TIMEOUT, write_all(&self.stream, &batch));
            match written.await {
                Ok(Ok(())) => {
                    self.queued.fetch_sub(batch.len(), Ordering::AcqRel);
                }
                Ok(Err(error)) => {
                    debug!(remote = %self.remote, %error, "TCP write failed");
                    break;
                }
                Err(_) => {
                    debug!(remote = %self.remote, "TCP write timed out");
                    break;
                }
            }
        }
        // After the server task dropped the connection, the message has no receiver.
        let _ = self.closed.send(self.conn).await;
    }

    /// Joins `first` and the bytes queued behind it into `batch`.
    fn gather(&mut self, first: Vec<u8>, batch: &mut Vec<u8>) {
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < MAX_WRITE_BATCH {
            let Ok(more) = self.outgoing.try_recv() else {
                break;
            };
            batch.extend_from_slice(&more);
        }
    }
}

/// Writes all of `bytes`, waiting while the socket's buffer is full.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(count) => bytes = &bytes[count..],
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Appends the length prefix and `packet` to `out`.
#[cfg(test)]
fn frame_into(packet: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(packet.len()).expect("test packets fit the length prefix");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("invalid packet length {len} in TCP stream, expected 1 to {max}")]
    InvalidLength { len: usize, max: usize },
}

/// Capacity of a decoder's buffer kept after a packet that was split across reads. A larger
/// buffer, left by a long packet, is freed.
const KEPT_PARTIAL_CAPACITY: usize = 4 * 1024;

/// Splits a TCP byte stream into packets. A packet that arrives whole in one read is passed
/// on in place. Only a packet split across reads is copied into `partial`, so `partial`
/// contains at most one packet.
#[derive(Debug, Default)]
pub(crate) struct FrameDecoder {
    partial: Vec<u8>,
}

impl FrameDecoder {
    /// Passes every complete packet of the stream, continued by `data`, to `deliver`, which
    /// returns the largest packet length allowed next, or None to stop. Keeps the start of
    /// an incomplete packet for the next call. A zero length or a length above the allowed
    /// one is an error after which the stream cannot be resynchronized.
    pub(crate) fn decode(
        &mut self,
        mut data: &mut [u8],
        mut max_len: usize,
        mut deliver: impl FnMut(&mut [u8]) -> Option<usize>,
    ) -> Result<(), FrameError> {
        if !self.partial.is_empty() {
            if self.partial.len() < 2 {
                let take = (2 - self.partial.len()).min(data.len());
                let (head, rest) = data.split_at_mut(take);
                self.partial.extend_from_slice(head);
                data = rest;
                if self.partial.len() < 2 {
                    return Ok(());
                }
            }
            let len = frame_len(&self.partial, max_len)?;
            let missing = 2 + len - self.partial.len();
            let take = missing.min(data.len());
            let (head, rest) = data.split_at_mut(take);
            self.partial.extend_from_slice(head);
            data = rest;
            if take < missing {
                return Ok(());
            }
            let next = deliver(&mut self.partial[2..]);
            if self.partial.capacity() > KEPT_PARTIAL_CAPACITY {
                self.partial = Vec::new();
            } else {
                self.partial.clear();
            }
            match next {
                Some(next) => max_len = next,
                None => return Ok(()),
            }
        }
        while data.len() >= 2 {
            let len = frame_len(data, max_len)?;
            if data.len() < 2 + len {
                break;
            }
            let (frame, rest) = std::mem::take(&mut data).split_at_mut(2 + len);
            data = rest;
            match deliver(&mut frame[2..]) {
                Some(next) => max_len = next,
                None => return Ok(()),
            }
        }
        self.partial.extend_from_slice(data);
        Ok(())
    }

    #[cfg(test)]
    fn buffered_len(&self) -> usize {
        self.partial.len()
    }
}

/// Reads the length prefix at the start of `stream`.
fn frame_len(stream: &[u8], max_len: usize) -> Result<usize, FrameError> {
    let len = usize::from(u16::from_be_bytes([stream[0], stream[1]]));
    if len == 0 || len > max_len {
        return Err(FrameError::InvalidLength { len, max: max_len });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn framed(packets: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for packet in packets {
            frame_into(packet, &mut out);
        }
        out
    }

    /// Decodes `data` and returns the packets it completed.
    fn decode(
        decoder: &mut FrameDecoder,
        data: &[u8],
        max_len: usize,
    ) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut data = data.to_vec();
        let mut packets = Vec::new();
        decoder.decode(&mut data, max_len, |packet| {
            packets.push(packet.to_vec());
            Some(max_len)
        })?;
        Ok(packets)
    }

    #[test]
    fn decoder_splits_packets_of_one_read() {
        let mut decoder = FrameDecoder::default();
        let packets = decode(&mut decoder, &framed(&[b"abc", b"d", b"efgh"]), MAX_PACKET);
        assert_eq!(
            packets.unwrap(),
            vec![b"abc".to_vec(), b"d".to_vec(), b"efgh".to_vec()]
        );
        assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn decoder_joins_packet_across_reads() {
        let stream = framed(&[b"hello", b"world!"]);
        let mut decoder = FrameDecoder::default();
        let mut packets = Vec::new();
        for byte in &stream {
            packets.extend(decode(&mut decoder, &[*byte], MAX_PACKET).unwrap());
        }
        assert_eq!(packets, vec![b"hello".to_vec(), b"world!".to_vec()]);
    }

    #[test]
    fn decoder_joins_split_at_every_offset() {
        let stream = framed(&[b"first", b"2", &[9u8; 300], b"last packet"]);
        for split in 0..=stream.len() {
            let mut decoder = FrameDecoder::default();
            let mut packets = decode(&mut decoder, &stream[..split], MAX_PACKET).unwrap();
            packets.extend(decode(&mut decoder, &stream[split..], MAX_PACKET).unwrap());
            assert_eq!(packets.len(), 4, "split at {split}");
            assert_eq!(packets[2], vec![9u8; 300]);
            assert_eq!(packets[3], b"last packet");
            assert_eq!(decoder.buffered_len(), 0);
        }
    }

    #[test]
    fn decoder_keeps_partial_tail() {
        let mut stream = framed(&[b"one"]);
        stream.extend_from_slice(&[0, 4, b't']);
        let mut decoder = FrameDecoder::default();
        let packets = decode(&mut decoder, &stream, MAX_PACKET).unwrap();
        assert_eq!(packets, vec![b"one".to_vec()]);
        assert_eq!(decoder.buffered_len(), 3);
        let packets = decode(&mut decoder, b"wo!", MAX_PACKET).unwrap();
        assert_eq!(packets, vec![b"two!".to_vec()]);
    }

    #[test]
    fn decoder_stops_on_request() {
        let mut decoder = FrameDecoder::default();
        let mut data = framed(&[b"a", b"b", b"c"]);
        let mut seen = 0;
        decoder
            .decode(&mut data, MAX_PACKET, |_| {
                seen += 1;
                None
            })
            .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn decoder_applies_next_packet_limit() {
        let big = vec![7u8; 3000];
        let mut decoder = FrameDecoder::default();
        let mut data = framed(&[b"auth", &big]);
        let mut packets = Vec::new();
        decoder
            .decode(&mut data, MAX_UNAUTHENTICATED_PACKET, |packet| {
                packets.push(packet.len());
                Some(MAX_PACKET)
            })
            .unwrap();
        assert_eq!(packets, vec![4, 3000]);
    }

    #[test]
    fn decoder_rejects_zero_length() {
        let mut decoder = FrameDecoder::default();
        let error = decode(&mut decoder, &[0, 0, 1], MAX_PACKET).unwrap_err();
        assert_eq!(
            error,
            FrameError::InvalidLength {
                len: 0,
                max: MAX_PACKET
            }
        );
    }

    #[test]
    fn decoder_rejects_large_packet_before_authentication() {
        let mut decoder = FrameDecoder::default();
        let error = decode(&mut decoder, &[0x08, 0x01], MAX_UNAUTHENTICATED_PACKET).unwrap_err();
        assert_eq!(
            error,
            FrameError::InvalidLength {
                len: 2049,
                max: MAX_UNAUTHENTICATED_PACKET
            }
        );
    }

    #[test]
    fn decoder_rejects_large_split_packet() {
        let mut decoder = FrameDecoder::default();
        assert_eq!(
            decode(&mut decoder, &[0x08], MAX_UNAUTHENTICATED_PACKET),
            Ok(vec![])
        );
        let error = decode(&mut decoder, &[0x01, 0], MAX_UNAUTHENTICATED_PACKET).unwrap_err();
        assert_eq!(
            error,
            FrameError::InvalidLength {
                len: 2049,
                max: MAX_UNAUTHENTICATED_PACKET
            }
        );
    }

    #[test]
    fn decoder_buffer_stays_bounded() {
        let mut decoder = FrameDecoder::default();
        let mut stream = Vec::new();
        for _ in 0..1000 {
            stream.extend(framed(&[&[1u8; 1000]]));
        }
        let mut packets = 0;
        // Reads of 1500 bytes cut most packets in two.
        for read in stream.chunks(1500) {
            packets += decode(&mut decoder, read, MAX_UNAUTHENTICATED_PACKET)
                .unwrap()
                .len();
            assert!(decoder.buffered_len() < 1002);
        }
        assert_eq!(packets, 1000);
    }

    #[test]
    fn decoder_frees_a_long_packets_buffer() {
        let mut decoder = FrameDecoder::default();
        let stream = framed(&[&[5u8; 40_000]]);
        decode(&mut decoder, &stream[..100], MAX_PACKET).unwrap();
        let packets = decode(&mut decoder, &stream[100..], MAX_PACKET).unwrap();
        assert_eq!(packets.len(), 1);
        assert!(decoder.partial.capacity() <= KEPT_PARTIAL_CAPACITY);
    }

    #[test]
    fn frame_into_prefixes_length() {
        let mut out = Vec::new();
        frame_into(b"xyz", &mut out);
        assert_eq!(out, vec![0, 3, b'x', b'y', b'z']);
    }

    /// A loopback connection accepted and started as the server task starts one.
    struct Spawned {
        client: TcpStream,
        connection: Connection,
        readable: Readable,
        /// Ends reported by the write task.
        closed: mpsc::Receiver<ConnId>,
        /// The write task, which runs while this is kept.
        tasks: JoinSet<()>,
    }

    async fn spawned(conn: ConnId) -> Spawned {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, remote) = listener.accept().await.unwrap();
        let (closed_tx, closed) = mpsc::channel(8);
        let mut tasks = JoinSet::new();
        let (connection, readable) = spawn(&mut tasks, stream, conn, remote, closed_tx);
        Spawned {
            client,
            connection,
            readable,
            closed,
            tasks,
        }
    }

    /// Waits for `readable` and reads what it reports, as the server task does.
    async fn read_once(readable: Readable, buffer: &mut [u8]) -> (Reader, usize) {
        let (_, event) = readable.await;
        let ReadEvent::Ready(reader) = event else {
            panic!("expected data, got {event:?}");
        };
        let (count, _) = reader.try_read(buffer).unwrap();
        (reader, count)
    }

    #[tokio::test]
    async fn connection_reads_packets_and_writes_replies() {
        let Spawned {
            mut client,
            mut connection,
            readable,
            mut closed,
            tasks: _tasks,
        } = spawned(5).await;

        let sent = framed(&[b"\x38first", b"second"]);
        client.write_all(&sent).await.unwrap();
        let mut buffer = vec![0u8; READ_BUFFER];
        let mut packets = Vec::new();
        let mut readable = readable;
        while packets.len() < 2 {
            let (reader, count) = read_once(readable, &mut buffer).await;
            let mut decoder = connection.take_decoder();
            decoder
                .decode(&mut buffer[..count], connection.max_packet(), |packet| {
                    packets.push(packet.to_vec());
                    Some(MAX_UNAUTHENTICATED_PACKET)
                })
                .unwrap();
            connection.put_decoder(decoder);
            readable = reader.readable(5, true);
        }
        assert_eq!(packets, vec![b"\x38first".to_vec(), b"second".to_vec()]);

        assert_eq!(connection.push(b"reply"), Some(true));
        assert_eq!(connection.push(b"more"), Some(false));
        assert!(connection.flush());
        drop(connection);
        // The dropped connection ends the wait for more data.
        assert!(matches!(readable.await, (5, ReadEvent::Dropped)));
        let mut written = Vec::new();
        client.read_to_end(&mut written).await.unwrap();
        assert_eq!(written, framed(&[b"reply", b"more"]));
        assert_eq!(closed.recv().await, Some(5));
    }

    #[tokio::test]
    async fn emptying_read_waits_for_new_data() {
        let Spawned {
            mut client,
            connection: _connection,
            readable,
            closed: _closed,
            tasks: _tasks,
        } = spawned(2).await;
        let mut buffer = vec![0u8; READ_BUFFER];

        client.write_all(b"first").await.unwrap();
        let mut readable = readable;
        let mut reader = loop {
            let (_, event) = readable.await;
            let ReadEvent::Ready(reader) = event else {
                panic!("expected data, got {event:?}");
            };
            match reader.try_read(&mut buffer) {
                Ok(read) => {
                    assert_eq!(read, (5, true));
                    break reader;
                }
                Err(error) => {
                    assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
                    readable = reader.readable(2, true);
                }
            }
        };

        // The emptying read cleared the readiness, so the wait lasts until new data.
        for word in [&b"second"[..], b"third!"] {
            let wait = reader.readable(2, true);
            tokio::pin!(wait);
            let early = tokio::time::timeout(Duration::from_millis(50), &mut wait).await;
            assert!(early.is_err(), "the wait ended without new data");
            client.write_all(word).await.unwrap();
            let (_, event) = wait.await;
            let ReadEvent::Ready(next) = event else {
                panic!("expected data, got {event:?}");
            };
            let read = next.try_read(&mut buffer).unwrap();
            assert_eq!(read, (word.len(), true));
            assert_eq!(&buffer[..word.len()], word);
            reader = next;
        }
    }

    #[tokio::test]
    async fn end_of_stream_reads_zero() {
        let Spawned {
            client,
            connection: _connection,
            readable,
            closed: _closed,
            tasks: _tasks,
        } = spawned(9).await;
        drop(client);
        let mut buffer = [0u8; 16];
        let (_, count) = read_once(readable, &mut buffer).await;
        assert_eq!(count, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn silent_connection_times_out() {
        let Spawned {
            client: _client,
            connection: _connection,
            mut readable,
            closed: _closed,
            tasks: _tasks,
        } = spawned(4).await;
        let started = tokio::time::Instant::now();
        // Readiness may be reported without data; the read then finds nothing, as in the
        // server task, and the wait goes on under the same deadline.
        let event = loop {
            match readable.await {
                (4, ReadEvent::Ready(reader)) => {
                    let mut buffer = [0u8; 16];
                    let read = reader.try_read(&mut buffer);
                    assert_eq!(read.unwrap_err().kind(), io::ErrorKind::WouldBlock);
                    readable = reader.readable(4, false);
                }
                (conn, event) => {
                    assert_eq!(conn, 4);
                    break event;
                }
            }
        };
        assert!(matches!(event, ReadEvent::Silent), "{event:?}");
        assert_eq!(started.elapsed(), FIRST_PACKET_TIMEOUT);
    }

    #[tokio::test]
    async fn dropped_connection_writes_queued_packets() {
        let Spawned {
            mut client,
            mut connection,
            readable,
            mut closed,
            tasks: _tasks,
        } = spawned(3).await;

        // Dropping the connection writes what was pushed without a flush.
        assert_eq!(connection.push(b"AUTH_FAILED"), Some(true));
        assert_eq!(connection.push(b"RESTART"), Some(false));
        drop(connection);
        drop(readable);
        let mut written = Vec::new();
        client.read_to_end(&mut written).await.unwrap();
        assert_eq!(written, framed(&[b"AUTH_FAILED", b"RESTART"]));
        assert_eq!(closed.recv().await, Some(3));
    }

    #[tokio::test]
    async fn slow_reader_gets_whole_packets_in_order() {
        let Spawned {
            mut client,
            mut connection,
            readable,
            closed: _closed,
            tasks: _tasks,
        } = spawned(6).await;

        // Far more than the socket buffers take, so writes go partial, then to the queue,
        // and the queue fills.
        let mut accepted = Vec::new();
        for index in 0..400u32 {
            let mut packet = vec![(index % 251) as u8; 60_000];
            packet[..4].copy_from_slice(&index.to_be_bytes());
            assert_eq!(connection.push(&packet), Some(true));
            if connection.flush() {
                accepted.push(index);
            }
        }
        assert!(accepted.len() < 400, "the queue never filled");
        drop(connection);
        drop(readable);

        let mut written = Vec::new();
        client.read_to_end(&mut written).await.unwrap();
        let mut decoder = FrameDecoder::default();
        let mut received = Vec::new();
        decoder
            .decode(&mut written, MAX_PACKET, |packet| {
                let index = u32::from_be_bytes(packet[..4].try_into().unwrap());
                assert_eq!(packet.len(), 60_000);
                assert!(packet[4..].iter().all(|&byte| byte == (index % 251) as u8));
                received.push(index);
                Some(MAX_PACKET)
            })
            .unwrap();
        assert_eq!(decoder.buffered_len(), 0);
        assert_eq!(received, accepted);
    }

    #[tokio::test]
    async fn write_task_reports_failed_write() {
        let Spawned {
            client,
            mut connection,
            readable: _readable,
            mut closed,
            tasks: _tasks,
        } = spawned(8).await;
        // The closed client sends a reset after the first write, so a later write fails.
        drop(client);
        let packet = vec![1u8; 60_000];
        let mut sent = 0;
        while sent < 100 && closed.try_recv().is_err() {
            connection.push(&packet);
            connection.flush();
            sent += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(sent < 100, "the failed write was not reported");
    }
}
