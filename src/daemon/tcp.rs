//! TCP connections: one task per connection splits the stream into OpenVPN packets, each
//! preceded by its length as a big-endian u16, and writes the packets its session sends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::debug;

use super::sessions::ConnId;

/// Largest packet accepted before the client authenticated. Control packets stay below it,
/// because OpenVPN sizes them to fit its link MTU, about 1500 bytes by default.
pub(crate) const MAX_UNAUTHENTICATED_PACKET: usize = 2048;
/// Largest packet accepted from an authenticated client: anything the u16 length can express.
pub(crate) const MAX_PACKET: usize = u16::MAX as usize;
/// A client sends its first packet as soon as it connects; a connection that stays silent
/// this long is closed.
const FIRST_PACKET_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that reads nothing for this long while packets wait is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time the packets still queued when a connection ends get to be written.
const FINAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Packets waiting for one connection; more are dropped, as a congested UDP path would.
const OUTGOING_QUEUE: usize = 256;
const READ_CHUNK: usize = 16 * 1024;
/// Bytes of queued packets gathered into one write.
const MAX_WRITE_BATCH: usize = 64 * 1024;

/// Messages from connection tasks to their SSL server's task.
#[derive(Debug)]
pub(crate) enum FromConnection {
    Packet {
        conn: ConnId,
        packet: Vec<u8>,
    },
    /// The connection ended; no packet of it follows.
    Closed {
        conn: ConnId,
    },
}

/// The SSL server task's end of one connection. Dropping it closes the connection once the
/// queued packets are written.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) remote: SocketAddr,
    outgoing: mpsc::Sender<Vec<u8>>,
    authenticated: Arc<AtomicBool>,
}

impl Connection {
    /// Queues a packet; false when the queue is full or the connection is gone.
    pub(crate) fn send(&self, packet: &[u8]) -> bool {
        self.outgoing.try_send(packet.to_vec()).is_ok()
    }

    /// Raises the packet size limit from [`MAX_UNAUTHENTICATED_PACKET`] to [`MAX_PACKET`].
    pub(crate) fn mark_authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }
}

/// Starts the task of an accepted connection.
pub(crate) fn spawn(
    tasks: &mut JoinSet<()>,
    stream: TcpStream,
    conn: ConnId,
    remote: SocketAddr,
    packets: mpsc::Sender<FromConnection>,
) -> Connection {
    let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
    let authenticated = Arc::new(AtomicBool::new(false));
    let task = ConnectionTask {
        conn,
        remote,
        packets,
        outgoing: outgoing_rx,
        authenticated: authenticated.clone(),
    };
    tasks.spawn(task.run(stream));
    Connection {
        remote,
        outgoing,
        authenticated,
    }
}

struct ConnectionTask {
    conn: ConnId,
    remote: SocketAddr,
    packets: mpsc::Sender<FromConnection>,
    outgoing: mpsc::Receiver<Vec<u8>>,
    authenticated: Arc<AtomicBool>,
}

impl ConnectionTask {
    async fn run(mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let mut decoder = FrameDecoder::default();
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut batch = Vec::new();
        let first_packet = tokio::time::sleep(FIRST_PACKET_TIMEOUT);
        tokio::pin!(first_packet);
        let mut received = false;

        loop {
            tokio::select! {
                outgoing = self.outgoing.recv() => {
                    let Some(packet) = outgoing else {
                        break;
                    };
                    self.gather(packet, &mut batch);
                    let written = tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&batch)).await;
                    match written {
                        Ok(Ok(())) => {}
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
                read = reader.read(&mut chunk) => {
                    let count = match read {
                        Ok(0) => break,
                        Ok(count) => count,
                        Err(error) => {
                            debug!(remote = %self.remote, %error, "TCP read failed");
                            break;
                        }
                    };
                    decoder.extend(&chunk[..count]);
                    match self.forward(&mut decoder).await {
                        Ok(forwarded) => received |= forwarded,
                        Err(()) => break,
                    }
                }
                () = &mut first_packet, if !received => {
                    debug!(remote = %self.remote, "no packet within {FIRST_PACKET_TIMEOUT:?} of connecting");
                    break;
                }
            }
        }

        // Packets queued before the end (a RESTART at shutdown) still go out if the client
        // reads them quickly.
        if let Ok(packet) = self.outgoing.try_recv() {
            self.gather(packet, &mut batch);
            let _ = tokio::time::timeout(FINAL_WRITE_TIMEOUT, writer.write_all(&batch)).await;
        }
        let _ = writer.shutdown().await;
        let _ = self
            .packets
            .send(FromConnection::Closed { conn: self.conn })
            .await;
    }

    /// Frames `first` and the packets queued behind it into `batch`.
    fn gather(&mut self, first: Vec<u8>, batch: &mut Vec<u8>) {
        batch.clear();
        frame_into(&first, batch);
        while batch.len() < MAX_WRITE_BATCH {
            let Ok(packet) = self.outgoing.try_recv() else {
                break;
            };
            frame_into(&packet, batch);
        }
    }

    /// Passes every complete packet to the SSL server's task. Returns whether any was
    /// complete, or Err when the connection must close.
    async fn forward(&mut self, decoder: &mut FrameDecoder) -> Result<bool, ()> {
        let mut forwarded = false;
        loop {
            let max_len = if self.authenticated.load(Ordering::Relaxed) {
                MAX_PACKET
            } else {
                MAX_UNAUTHENTICATED_PACKET
            };
            let packet = match decoder.next_frame(max_len) {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(forwarded),
                Err(error) => {
                    debug!(remote = %self.remote, %error, "closing TCP connection");
                    return Err(());
                }
            };
            forwarded = true;
            let message = FromConnection::Packet {
                conn: self.conn,
                packet,
            };
            if self.packets.send(message).await.is_err() {
                return Err(());
            }
        }
    }
}

/// Appends the length prefix and `packet` to `out`. Sessions never produce packets longer
/// than the prefix can express; such a packet is dropped.
fn frame_into(packet: &[u8], out: &mut Vec<u8>) {
    let Ok(len) = u16::try_from(packet.len()) else {
        debug!(
            len = packet.len(),
            "dropped a packet too long for TCP framing"
        );
        return;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum FrameError {
    #[error("invalid packet length {len} in TCP stream, expected 1 to {max}")]
    InvalidLength { len: usize, max: usize },
}

/// Splits a TCP byte stream into packets. It keeps at most one incomplete packet plus the
/// last read chunk.
#[derive(Debug, Default)]
struct FrameDecoder {
    buffer: Vec<u8>,
    /// Bytes at the front of `buffer` that were already returned.
    consumed: usize,
}

impl FrameDecoder {
    fn extend(&mut self, data: &[u8]) {
        self.buffer.drain(..self.consumed);
        self.consumed = 0;
        self.buffer.extend_from_slice(data);
    }

    /// Returns the next complete packet, or None until more bytes arrive. A zero length or a
    /// length above `max_len` is an error after which the stream cannot be resynchronized.
    fn next_frame(&mut self, max_len: usize) -> Result<Option<Vec<u8>>, FrameError> {
        let pending = &self.buffer[self.consumed..];
        let Some(prefix) = pending.get(..2) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        if len == 0 || len > max_len {
            return Err(FrameError::InvalidLength { len, max: max_len });
        }
        let Some(packet) = pending.get(2..2 + len) else {
            return Ok(None);
        };
        let packet = packet.to_vec();
        self.consumed += 2 + len;
        Ok(Some(packet))
    }

    #[cfg(test)]
    fn buffered_len(&self) -> usize {
        self.buffer.len() - self.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(packets: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for packet in packets {
            frame_into(packet, &mut out);
        }
        out
    }

    fn drain(decoder: &mut FrameDecoder, max_len: usize) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        while let Some(packet) = decoder.next_frame(max_len).unwrap() {
            packets.push(packet);
        }
        packets
    }

    #[test]
    fn decoder_splits_packets_of_one_read() {
        let mut decoder = FrameDecoder::default();
        decoder.extend(&framed(&[b"abc", b"d", b"efgh"]));
        let packets = drain(&mut decoder, MAX_PACKET);
        assert_eq!(
            packets,
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
            decoder.extend(std::slice::from_ref(byte));
            packets.extend(drain(&mut decoder, MAX_PACKET));
        }
        assert_eq!(packets, vec![b"hello".to_vec(), b"world!".to_vec()]);
    }

    #[test]
    fn decoder_keeps_partial_tail() {
        let mut stream = framed(&[b"one"]);
        stream.extend_from_slice(&[0, 4, b't']);
        let mut decoder = FrameDecoder::default();
        decoder.extend(&stream);
        assert_eq!(drain(&mut decoder, MAX_PACKET), vec![b"one".to_vec()]);
        assert_eq!(decoder.buffered_len(), 3);
        decoder.extend(b"wo!");
        assert_eq!(drain(&mut decoder, MAX_PACKET), vec![b"two!".to_vec()]);
    }

    #[test]
    fn decoder_rejects_zero_length() {
        let mut decoder = FrameDecoder::default();
        decoder.extend(&[0, 0, 1]);
        let error = decoder.next_frame(MAX_PACKET).unwrap_err();
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
        decoder.extend(&[0x08, 0x01]);
        let error = decoder.next_frame(MAX_UNAUTHENTICATED_PACKET).unwrap_err();
        assert_eq!(
            error,
            FrameError::InvalidLength {
                len: 2049,
                max: MAX_UNAUTHENTICATED_PACKET
            }
        );
    }

    #[test]
    fn decoder_accepts_large_packet_after_authentication() {
        let big = vec![7u8; 3000];
        let mut decoder = FrameDecoder::default();
        decoder.extend(&framed(&[&big]));
        let packet = decoder.next_frame(MAX_PACKET).unwrap();
        assert_eq!(packet.map(|packet| packet.len()), Some(3000));
    }

    #[test]
    fn decoder_buffer_stays_bounded() {
        let mut decoder = FrameDecoder::default();
        let chunk = framed(&[&[1u8; 1000]]);
        for _ in 0..1000 {
            decoder.extend(&chunk);
            assert_eq!(drain(&mut decoder, MAX_UNAUTHENTICATED_PACKET).len(), 1);
        }
        assert!(decoder.buffer.len() <= chunk.len());
    }

    #[test]
    fn frame_into_prefixes_length() {
        let mut out = Vec::new();
        frame_into(b"xyz", &mut out);
        assert_eq!(out, vec![0, 3, b'x', b'y', b'z']);
    }

    #[tokio::test]
    async fn connection_forwards_packets_and_writes_replies() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(address).await.unwrap();
        let (stream, remote) = listener.accept().await.unwrap();
        let (packets_tx, mut packets_rx) = mpsc::channel(8);
        let mut tasks = JoinSet::new();
        let connection = spawn(&mut tasks, stream, 5, remote, packets_tx);

        client
            .write_all(&framed(&[b"\x38first", b"second"]))
            .await
            .unwrap();
        for expected in [&b"\x38first"[..], b"second"] {
            let Some(FromConnection::Packet { conn, packet }) = packets_rx.recv().await else {
                panic!("expected a packet");
            };
            assert_eq!(conn, 5);
            assert_eq!(packet, expected);
        }

        assert!(connection.send(b"reply"));
        drop(connection);
        let mut written = Vec::new();
        client.read_to_end(&mut written).await.unwrap();
        assert_eq!(written, framed(&[b"reply"]));
        let closed = packets_rx.recv().await;
        assert!(matches!(closed, Some(FromConnection::Closed { conn: 5 })));
    }

    #[tokio::test]
    async fn oversized_packet_closes_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, remote) = listener.accept().await.unwrap();
        let (packets_tx, mut packets_rx) = mpsc::channel(8);
        let mut tasks = JoinSet::new();
        let _connection = spawn(&mut tasks, stream, 9, remote, packets_tx);

        client.write_all(&[0x10, 0x00]).await.unwrap();
        let closed = packets_rx.recv().await;
        assert!(matches!(closed, Some(FromConnection::Closed { conn: 9 })));
    }

    #[tokio::test]
    async fn queued_packet_survives_server_task_exit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, remote) = listener.accept().await.unwrap();
        let (packets_tx, packets_rx) = mpsc::channel(8);
        let mut tasks = JoinSet::new();
        let connection = spawn(&mut tasks, stream, 3, remote, packets_tx);
        drop(packets_rx);

        assert!(connection.send(b"RESTART"));
        client.write_all(&framed(&[b"\x38"])).await.unwrap();
        let mut written = Vec::new();
        client.read_to_end(&mut written).await.unwrap();
        assert_eq!(written, framed(&[b"RESTART"]));
    }
}
