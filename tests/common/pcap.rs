//! A reader of classic libpcap files (not pcapng), enough to pull OpenVPN packets out of a
//! capture.
//!
//! Supported: both byte orders, microsecond and nanosecond timestamps, link types Ethernet
//! (with 802.1Q tags), Linux cooked capture v1 and v2, and raw IP; IPv4 and IPv6 without
//! extension headers; UDP datagrams and TCP streams reassembled per direction. Fragmented
//! IPv4 packets are skipped.
//!
//! A file is a 24-byte global header (magic number, version, snap length, link type) and
//! then records, each a 16-byte header (seconds, fraction, captured length, original length)
//! and the captured bytes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_IPV4: u32 = 228;
const LINKTYPE_IPV6: u32 = 229;
const LINKTYPE_LINUX_SLL2: u32 = 276;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("file is {0} bytes long, shorter than the 24-byte global header")]
    TooShort(usize),
    #[error("unknown magic number {0:#010x} (pcapng and other formats are not supported)")]
    Magic(u32),
    #[error("unsupported link type {0}")]
    LinkType(u32),
    #[error("record {index} is cut off: needs {needed} bytes at offset {offset}, file has {len}")]
    Truncated {
        index: usize,
        offset: usize,
        needed: usize,
        len: usize,
    },
    #[error("TCP stream {src} -> {dst} has a gap at relative sequence number {at}")]
    StreamGap {
        src: SocketAddr,
        dst: SocketAddr,
        at: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    LinuxSll,
    LinuxSll2,
    /// Raw IPv4 or IPv6, distinguished by the version nibble.
    Raw,
}

/// One captured frame.
#[derive(Clone)]
pub struct Record {
    /// Capture time since the Unix epoch, in nanoseconds.
    pub timestamp_ns: u64,
    /// Length of the frame on the wire; `data` is shorter when the snap length cut it.
    pub original_len: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("timestamp_ns", &self.timestamp_ns)
            .field("original_len", &self.original_len)
            .field("captured_len", &self.data.len())
            .finish()
    }
}

/// A parsed capture file.
#[derive(Debug, Clone)]
pub struct Capture {
    pub link_type: LinkType,
    pub snap_len: u32,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
}

/// A UDP datagram or TCP segment with its payload.
#[derive(Clone)]
pub struct Segment {
    /// Index of the record it came from.
    pub record: usize,
    pub timestamp_ns: u64,
    pub protocol: Protocol,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// TCP only: sequence number and flags (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10).
    pub tcp_seq: u32,
    pub tcp_flags: u8,
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("record", &self.record)
            .field("protocol", &self.protocol)
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// The bytes one side of a TCP connection sent, in order.
#[derive(Clone)]
pub struct TcpStream {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub data: Vec<u8>,
    /// `(end, timestamp_ns)` each time the contiguous start of the stream grew: all of
    /// `data[..end]` had arrived at that capture time.
    pub arrivals: Vec<(usize, u64)>,
}

impl TcpStream {
    /// Returns the capture time at which all of `data[..end]` had arrived, or `None` when
    /// `end` is past the stream.
    pub fn arrival_of(&self, end: usize) -> Option<u64> {
        self.arrivals
            .iter()
            .find(|&&(arrived, _)| arrived >= end)
            .map(|&(_, timestamp_ns)| timestamp_ns)
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("len", &self.data.len())
            .finish()
    }
}

const TCP_SYN: u8 = 0x02;

/// Reads and parses the capture file at `path`.
pub fn read_file(path: &Path) -> Result<Capture, PcapError> {
    let bytes = std::fs::read(path).map_err(|source| PcapError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&bytes)
}

/// Parses a classic pcap file.
pub fn parse(bytes: &[u8]) -> Result<Capture, PcapError> {
    let header: [u8; GLOBAL_HEADER_LEN] = bytes
        .get(..GLOBAL_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(PcapError::TooShort(bytes.len()))?;
    let magic_le = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let magic_be = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let (big_endian, nanos) = match (magic_le, magic_be) {
        (MAGIC_MICROS, _) => (false, false),
        (MAGIC_NANOS, _) => (false, true),
        (_, MAGIC_MICROS) => (true, false),
        (_, MAGIC_NANOS) => (true, true),
        _ => return Err(PcapError::Magic(magic_le)),
    };
    let read_u32 = |b: &[u8], at: usize| {
        let word = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if big_endian {
            u32::from_be_bytes(word)
        } else {
            u32::from_le_bytes(word)
        }
    };
    let snap_len = read_u32(&header, 16);
    // The upper bits of the link-type field carry FCS information; the type is the low 16.
    let link_type = match read_u32(&header, 20) & 0xffff {
        LINKTYPE_ETHERNET => LinkType::Ethernet,
        LINKTYPE_LINUX_SLL => LinkType::LinuxSll,
        LINKTYPE_LINUX_SLL2 => LinkType::LinuxSll2,
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => LinkType::Raw,
        other => return Err(PcapError::LinkType(other)),
    };

    let mut records = Vec::new();
    let mut offset = GLOBAL_HEADER_LEN;
    while offset < bytes.len() {
        let truncated = |needed| PcapError::Truncated {
            index: records.len(),
            offset,
            needed,
            len: bytes.len(),
        };
        let record_header = bytes
            .get(offset..offset + RECORD_HEADER_LEN)
            .ok_or_else(|| truncated(RECORD_HEADER_LEN))?;
        let seconds = u64::from(read_u32(record_header, 0));
        let fraction = u64::from(read_u32(record_header, 4));
        let captured_len = read_u32(record_header, 8) as usize;
        let original_len = read_u32(record_header, 12);
        let start = offset + RECORD_HEADER_LEN;
        let data = bytes
            .get(start..start.saturating_add(captured_len))
            .ok_or_else(|| truncated(RECORD_HEADER_LEN + captured_len))?;
        let fraction_ns = if nanos { fraction } else { fraction * 1000 };
        records.push(Record {
            timestamp_ns: seconds * 1_000_000_000 + fraction_ns,
            original_len,
            data: data.to_vec(),
        });
        offset = start + captured_len;
    }
    Ok(Capture {
        link_type,
        snap_len,
        records,
    })
}

impl Capture {
    /// Returns every UDP datagram and TCP segment of the capture, in capture order.
    /// Frames of other protocols and frames too short to parse are skipped.
    pub fn segments(&self) -> Vec<Segment> {
        self.records
            .iter()
            .enumerate()
            .filter_map(|(index, record)| {
                let ip = network_layer(self.link_type, &record.data)?;
                let mut segment = transport_layer(ip)?;
                segment.record = index;
                segment.timestamp_ns = record.timestamp_ns;
                Some(segment)
            })
            .collect()
    }

    /// Returns the UDP datagrams to or from `port`.
    pub fn udp_datagrams(&self, port: u16) -> Vec<Segment> {
        self.segments()
            .into_iter()
            .filter(|s| s.protocol == Protocol::Udp)
            .filter(|s| s.src.port() == port || s.dst.port() == port)
            .collect()
    }

    /// Reassembles the TCP streams to and from `port`, one per direction and connection,
    /// ordered by their first segment. Retransmitted bytes appear once.
    pub fn tcp_streams(&self, port: u16) -> Result<Vec<TcpStream>, PcapError> {
        let mut directions: Vec<(SocketAddr, SocketAddr)> = Vec::new();
        let mut segments: BTreeMap<(SocketAddr, SocketAddr), Vec<Segment>> = BTreeMap::new();
        for segment in self.segments() {
            if segment.protocol != Protocol::Tcp {
                continue;
            }
            if segment.src.port() != port && segment.dst.port() != port {
                continue;
            }
            let key = (segment.src, segment.dst);
            if !segments.contains_key(&key) {
                directions.push(key);
            }
            segments.entry(key).or_default().push(segment);
        }
        directions
            .into_iter()
            .map(|key| reassemble(key.0, key.1, &segments[&key]))
            .collect()
    }
}

/// Puts one direction's segments in sequence order, drops bytes seen before, and records
/// when each prefix of the stream was complete.
fn reassemble(
    src: SocketAddr,
    dst: SocketAddr,
    segments: &[Segment],
) -> Result<TcpStream, PcapError> {
    // The first data byte follows the SYN; without a SYN, the lowest sequence number seen
    // is taken as the start.
    let start = segments
        .iter()
        .find(|s| s.tcp_flags & TCP_SYN != 0)
        .map(|s| s.tcp_seq.wrapping_add(1))
        .unwrap_or_else(|| segments.iter().map(|s| s.tcp_seq).min().unwrap_or(0));
    // Relative sequence number, payload and capture time, in capture order.
    let pieces: Vec<(u32, &[u8], u64)> = segments
        .iter()
        .filter(|s| !s.payload.is_empty())
        .map(|s| {
            (
                s.tcp_seq.wrapping_sub(start),
                s.payload.as_slice(),
                s.timestamp_ns,
            )
        })
        .collect();

    let mut by_sequence = pieces.clone();
    by_sequence.sort_by_key(|&(relative, _, _)| relative);
    let mut data = Vec::new();
    for (relative, payload, _) in by_sequence {
        let end = data.len() as u32;
        if relative > end {
            return Err(PcapError::StreamGap { src, dst, at: end });
        }
        let already = (end - relative) as usize;
        if already < payload.len() {
            data.extend_from_slice(&payload[already..]);
        }
    }

    Ok(TcpStream {
        src,
        dst,
        data,
        arrivals: prefix_arrivals(&pieces),
    })
}

/// Replays the pieces in capture order and returns `(prefix length, time)` each time the
/// contiguous prefix of the stream grew.
fn prefix_arrivals(pieces: &[(u32, &[u8], u64)]) -> Vec<(usize, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut prefix = 0u64;
    let mut arrivals = Vec::new();
    for &(relative, payload, timestamp_ns) in pieces {
        let begin = u64::from(relative);
        ranges.push((begin, begin + payload.len() as u64));
        let before = prefix;
        while let Some(&(_, end)) = ranges
            .iter()
            .find(|&&(begin, end)| begin <= prefix && end > prefix)
        {
            prefix = end;
        }
        if prefix > before {
            arrivals.push((prefix as usize, timestamp_ns));
        }
    }
    arrivals
}

/// Returns the IP packet inside a link-layer frame.
fn network_layer(link_type: LinkType, frame: &[u8]) -> Option<&[u8]> {
    let (ethertype, rest) = match link_type {
        LinkType::Raw => return Some(frame),
        LinkType::Ethernet => {
            let mut ethertype = be16(frame, 12)?;
            let mut offset = 14;
            while ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
                ethertype = be16(frame, offset + 2)?;
                offset += 4;
            }
            (ethertype, frame.get(offset..)?)
        }
        // Packet type, ARPHRD type, address length, address (8), protocol.
        LinkType::LinuxSll => (be16(frame, 14)?, frame.get(16..)?),
        // Protocol, reserved, interface index, ARPHRD type, packet type, address length,
        // address (8).
        LinkType::LinuxSll2 => (be16(frame, 0)?, frame.get(20..)?),
    };
    matches!(ethertype, ETHERTYPE_IPV4 | ETHERTYPE_IPV6).then_some(rest)
}

/// Parses the IP and UDP or TCP headers of `packet`.
fn transport_layer(packet: &[u8]) -> Option<Segment> {
    let version = packet.first()? >> 4;
    let (src_ip, dst_ip, protocol, body): (IpAddr, IpAddr, u8, &[u8]) = match version {
        4 => {
            let header_len = usize::from(packet[0] & 0x0f) * 4;
            let total_len = usize::from(be16(packet, 2)?);
            let fragment = be16(packet, 6)?;
            // More-fragments flag or a non-zero offset: the transport header is incomplete.
            if fragment & 0x3fff != 0 || header_len < 20 || total_len < header_len {
                return None;
            }
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(packet.get(12..16)?).ok()?);
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(packet.get(16..20)?).ok()?);
            let body = packet.get(header_len..total_len.min(packet.len()))?;
            (src.into(), dst.into(), packet[9], body)
        }
        6 => {
            let payload_len = usize::from(be16(packet, 4)?);
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(packet.get(8..24)?).ok()?);
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(packet.get(24..40)?).ok()?);
            let body = packet.get(40..(40 + payload_len).min(packet.len()))?;
            (src.into(), dst.into(), packet[6], body)
        }
        _ => return None,
    };
    let src_port = be16(body, 0)?;
    let dst_port = be16(body, 2)?;
    let (protocol, tcp_seq, tcp_flags, payload) = match protocol {
        IPPROTO_UDP => {
            let udp_len = usize::from(be16(body, 4)?);
            let end = udp_len.clamp(8, body.len());
            (Protocol::Udp, 0, 0, body.get(8..end)?)
        }
        IPPROTO_TCP => {
            let seq = u32::from_be_bytes(body.get(4..8)?.try_into().ok()?);
            let data_offset = usize::from(body.get(12)? >> 4) * 4;
            let flags = *body.get(13)?;
            (Protocol::Tcp, seq, flags, body.get(data_offset..)?)
        }
        _ => return None,
    };
    Some(Segment {
        record: 0,
        timestamp_ns: 0,
        protocol,
        src: SocketAddr::new(src_ip, src_port),
        dst: SocketAddr::new(dst_ip, dst_port),
        tcp_seq,
        tcp_flags,
        payload: payload.to_vec(),
    })
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}
