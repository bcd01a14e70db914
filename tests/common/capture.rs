//! The OpenVPN packets of the capture fixtures in `tests/fixtures/capture/`.
//!
//! Each fixture is a session between a real OpenVPN 2.6 client and server, captured on the
//! server's transport port. The README beside the fixtures describes how they were made.

use std::path::{Path, PathBuf};

use super::openvpn::{PORT, Transport};
use super::pcap::{self, Capture, PcapError};

/// Every fixture: transport and control-channel protection, as named in the file names.
pub const FIXTURES: &[(Transport, &str)] = &[
    (Transport::Udp, "plain"),
    (Transport::Udp, "tls-auth"),
    (Transport::Udp, "tls-crypt"),
    (Transport::Tcp, "plain"),
    (Transport::Tcp, "tls-auth"),
    (Transport::Tcp, "tls-crypt"),
];

/// Length of an OpenVPN static key: two sets of a 64-byte cipher key and a 64-byte HMAC key.
pub const STATIC_KEY_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// One OpenVPN packet as the transport carried it, without the TCP length prefix.
#[derive(Clone)]
pub struct OpenvpnPacket {
    pub direction: Direction,
    /// Capture time in nanoseconds since the Unix epoch; for TCP, the time its last byte
    /// arrived.
    pub timestamp_ns: u64,
    pub bytes: Vec<u8>,
}

impl OpenvpnPacket {
    /// Returns the opcode, the high five bits of the first byte.
    pub fn opcode(&self) -> Option<u8> {
        self.bytes.first().map(|byte| byte >> 3)
    }

    /// Returns the key id, the low three bits of the first byte.
    pub fn key_id(&self) -> Option<u8> {
        self.bytes.first().map(|byte| byte & 0x07)
    }
}

impl std::fmt::Debug for OpenvpnPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenvpnPacket")
            .field("direction", &self.direction)
            .field("opcode", &self.opcode())
            .field("len", &self.bytes.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Pcap(#[from] PcapError),
    #[error(
        "TCP stream {stream} ends inside a packet: {left} bytes left, announced length {length}"
    )]
    PartialFrame {
        stream: String,
        left: usize,
        length: usize,
    },
    #[error("reading static key {path}: {reason}")]
    StaticKey { path: String, reason: String },
}

/// Returns the directory of the committed fixtures.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/capture")
}

/// Returns the file name of a fixture, for example `udp-tls-auth.pcap`.
pub fn fixture_name(transport: Transport, protection: &str) -> String {
    format!("{}-{protection}.pcap", transport.name())
}

/// Loads the OpenVPN packets of a committed fixture.
pub fn load_fixture(
    transport: Transport,
    protection: &str,
) -> Result<Vec<OpenvpnPacket>, CaptureError> {
    let path = fixture_dir().join(fixture_name(transport, protection));
    let capture = pcap::read_file(&path)?;
    openvpn_packets(&capture, transport, PORT)
}

/// Extracts the OpenVPN packets of a capture with the server on `server_port`. UDP packets
/// come in capture order; TCP packets of both directions are merged by arrival time.
pub fn openvpn_packets(
    capture: &Capture,
    transport: Transport,
    server_port: u16,
) -> Result<Vec<OpenvpnPacket>, CaptureError> {
    let direction_of = |dst_port: u16| {
        if dst_port == server_port {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        }
    };
    match transport {
        Transport::Udp => Ok(capture
            .udp_datagrams(server_port)
            .into_iter()
            .map(|datagram| OpenvpnPacket {
                direction: direction_of(datagram.dst.port()),
                timestamp_ns: datagram.timestamp_ns,
                bytes: datagram.payload,
            })
            .collect()),
        Transport::Tcp => {
            let mut packets = Vec::new();
            for stream in capture.tcp_streams(server_port)? {
                let direction = direction_of(stream.dst.port());
                let mut end = 0;
                for frame in split_tcp_frames(&stream.data).map_err(|(left, length)| {
                    CaptureError::PartialFrame {
                        stream: format!("{} -> {}", stream.src, stream.dst),
                        left,
                        length,
                    }
                })? {
                    end += 2 + frame.len();
                    packets.push(OpenvpnPacket {
                        direction,
                        timestamp_ns: stream.arrival_of(end).unwrap_or_default(),
                        bytes: frame.to_vec(),
                    });
                }
            }
            packets.sort_by_key(|packet| packet.timestamp_ns);
            Ok(packets)
        }
    }
}

/// Splits a TCP stream into OpenVPN packets, each preceded by its length as a big-endian
/// u16. Returns `(bytes left, announced length)` if the stream ends inside a packet.
pub fn split_tcp_frames(mut stream: &[u8]) -> Result<Vec<&[u8]>, (usize, usize)> {
    let mut frames = Vec::new();
    while !stream.is_empty() {
        let Some((prefix, rest)) = stream.split_first_chunk::<2>() else {
            return Err((stream.len(), 0));
        };
        let length = usize::from(u16::from_be_bytes(*prefix));
        let Some((frame, rest)) = rest.split_at_checked(length) else {
            return Err((stream.len(), length));
        };
        frames.push(frame);
        stream = rest;
    }
    Ok(frames)
}

/// Reads an OpenVPN static key file (`-----BEGIN OpenVPN Static key V1-----`, hex lines)
/// and returns its 256 bytes.
pub fn read_static_key(path: &Path) -> Result<Vec<u8>, CaptureError> {
    let error = |reason: String| CaptureError::StaticKey {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let body: String = text
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN OpenVPN Static key V1-----"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END OpenVPN Static key V1-----"))
        .collect();
    let key = hex::decode(body.trim()).map_err(|e| error(format!("invalid hex: {e}")))?;
    if key.len() != STATIC_KEY_LEN {
        return Err(error(format!(
            "{} bytes, expected {STATIC_KEY_LEN}",
            key.len()
        )));
    }
    Ok(key)
}
