//! Checks the test pcap reader on hand-built captures of every supported link type.

mod common;

use std::net::SocketAddr;

use common::capture::split_tcp_frames;
use common::pcap::{self, LinkType, PcapError, Protocol};

const CLIENT: [u8; 4] = [192, 0, 2, 2];
const SERVER: [u8; 4] = [192, 0, 2, 1];

/// Builds a pcap file: microsecond or nanosecond magic, either byte order.
fn pcap_file(link_type: u32, big_endian: bool, nanos: bool, frames: &[(u32, &[u8])]) -> Vec<u8> {
    let u32_bytes = |value: u32| {
        if big_endian {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        }
    };
    let u16_bytes = |value: u16| {
        if big_endian {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        }
    };

    let mut file = Vec::new();
    file.extend(u32_bytes(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    file.extend(u16_bytes(2));
    file.extend(u16_bytes(4));
    file.extend(u32_bytes(0));
    file.extend(u32_bytes(0));
    file.extend(u32_bytes(65535));
    file.extend(u32_bytes(link_type));

    for &(fraction, frame) in frames {
        file.extend(u32_bytes(1_700_000_000));
        file.extend(u32_bytes(fraction));
        file.extend(u32_bytes(frame.len() as u32));
        file.extend(u32_bytes(frame.len() as u32));
        file.extend_from_slice(frame);
    }
    file
}

fn ipv4(protocol: u8, src: [u8; 4], dst: [u8; 4], body: &[u8]) -> Vec<u8> {
    let total = (20 + body.len()) as u16;
    let mut packet = vec![0x45, 0];
    packet.extend(total.to_be_bytes());
    packet.extend([0, 0, 0x40, 0, 64, protocol, 0, 0]);
    packet.extend(src);
    packet.extend(dst);
    packet.extend_from_slice(body);
    packet
}

fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::new();
    datagram.extend(src_port.to_be_bytes());
    datagram.extend(dst_port.to_be_bytes());
    datagram.extend(((8 + payload.len()) as u16).to_be_bytes());
    datagram.extend([0, 0]);
    datagram.extend_from_slice(payload);
    datagram
}

fn tcp(src_port: u16, dst_port: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut segment = Vec::new();
    segment.extend(src_port.to_be_bytes());
    segment.extend(dst_port.to_be_bytes());
    segment.extend(seq.to_be_bytes());
    segment.extend(0u32.to_be_bytes());
    segment.extend([5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    segment.extend_from_slice(payload);
    segment
}

fn ethernet(ethertype: u16, vlan: bool, packet: &[u8]) -> Vec<u8> {
    let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    if vlan {
        frame.extend(0x8100u16.to_be_bytes());
        frame.extend(7u16.to_be_bytes());
    }
    frame.extend(ethertype.to_be_bytes());
    frame.extend_from_slice(packet);
    frame
}

fn sll(packet: &[u8]) -> Vec<u8> {
    let mut frame = vec![0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    frame.extend(0x0800u16.to_be_bytes());
    frame.extend_from_slice(packet);
    frame
}

fn sll2(packet: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend(0x0800u16.to_be_bytes());
    frame.extend([0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    frame.extend_from_slice(packet);
    frame
}

fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

#[test]
fn ethernet_vlan_udp_little_endian() {
    let packet = ipv4(17, CLIENT, SERVER, &udp(40000, 1194, b"\x38hello"));
    let frame = ethernet(0x0800, true, &packet);
    let capture = pcap::parse(&pcap_file(1, false, false, &[(250, &frame)])).expect("valid pcap");
    assert_eq!(capture.link_type, LinkType::Ethernet);
    assert_eq!(capture.records[0].timestamp_ns, 1_700_000_000_000_250_000);
    let datagrams = capture.udp_datagrams(1194);
    assert_eq!(datagrams.len(), 1);
    assert_eq!(datagrams[0].src, addr(CLIENT, 40000));
    assert_eq!(datagrams[0].dst, addr(SERVER, 1194));
    assert_eq!(datagrams[0].payload, b"\x38hello");
}

#[test]
fn sll2_udp_big_endian_nanoseconds() {
    let packet = ipv4(17, SERVER, CLIENT, &udp(1194, 40000, b"\x40reply"));
    let capture =
        pcap::parse(&pcap_file(276, true, true, &[(7, &sll2(&packet))])).expect("valid pcap");
    assert_eq!(capture.link_type, LinkType::LinuxSll2);
    assert_eq!(capture.records[0].timestamp_ns, 1_700_000_000_000_000_007);
    let datagrams = capture.udp_datagrams(1194);
    assert_eq!(datagrams.len(), 1);
    assert_eq!(datagrams[0].payload, b"\x40reply");
}

#[test]
fn sll_and_raw_ipv6_udp() {
    let packet = ipv4(17, CLIENT, SERVER, &udp(40000, 1194, b"v1"));
    let capture = pcap::parse(&pcap_file(113, false, false, &[(0, &sll(&packet))])).expect("sll");
    assert_eq!(capture.link_type, LinkType::LinuxSll);
    assert_eq!(capture.udp_datagrams(1194)[0].payload, b"v1");

    let body = udp(40000, 1194, b"six");
    let mut ipv6 = vec![0x60, 0, 0, 0];
    ipv6.extend((body.len() as u16).to_be_bytes());
    ipv6.extend([17, 64]);
    ipv6.extend([0u8; 15]);
    ipv6.push(2);
    ipv6.extend([0u8; 15]);
    ipv6.push(1);
    ipv6.extend(&body);
    let capture = pcap::parse(&pcap_file(101, false, false, &[(0, &ipv6)])).expect("raw");
    assert_eq!(capture.link_type, LinkType::Raw);
    let datagrams = capture.udp_datagrams(1194);
    assert_eq!(datagrams.len(), 1);
    assert_eq!(datagrams[0].payload, b"six");
    assert!(datagrams[0].src.is_ipv6());
}

#[test]
fn tcp_stream_reordered_and_retransmitted() {
    let isn = 0xffff_fff0u32; // The stream wraps the sequence space.
    let segments = [
        tcp(40000, 1194, isn, 0x02, b""),
        tcp(40000, 1194, isn.wrapping_add(1), 0x18, b"\x00\x03abc"),
        tcp(40000, 1194, isn.wrapping_add(11), 0x18, b"ghi"),
        tcp(40000, 1194, isn.wrapping_add(6), 0x18, b"\x00\x06def"),
        // Retransmission overlapping bytes already seen.
        tcp(40000, 1194, isn.wrapping_add(4), 0x18, b"bc\x00\x06"),
        tcp(1194, 40000, 77, 0x12, b""),
        tcp(1194, 40000, 78, 0x18, b"\x00\x01z"),
    ];
    let frames: Vec<Vec<u8>> = segments
        .iter()
        .map(|segment| {
            let (src, dst) = if segment[0..2] == 40000u16.to_be_bytes() {
                (CLIENT, SERVER)
            } else {
                (SERVER, CLIENT)
            };
            ethernet(0x0800, false, &ipv4(6, src, dst, segment))
        })
        .collect();
    let records: Vec<(u32, &[u8])> = frames
        .iter()
        .enumerate()
        .map(|(i, frame)| (i as u32, frame.as_slice()))
        .collect();
    let capture = pcap::parse(&pcap_file(1, false, false, &records)).expect("valid pcap");
    assert!(
        capture
            .segments()
            .iter()
            .all(|s| s.protocol == Protocol::Tcp)
    );

    let streams = capture.tcp_streams(1194).expect("no gaps");
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0].dst, addr(SERVER, 1194));
    assert_eq!(streams[0].data, b"\x00\x03abc\x00\x06defghi");
    assert_eq!(streams[1].data, b"\x00\x01z");
    let frames = split_tcp_frames(&streams[0].data).expect("whole frames");
    assert_eq!(frames, vec![&b"abc"[..], &b"defghi"[..]]);
    // "ghi" (record 2) came before "def" (record 3), so the second frame was complete only
    // at record 3.
    assert_eq!(streams[0].arrival_of(5), Some(1_700_000_000_000_001_000));
    assert_eq!(streams[0].arrival_of(13), Some(1_700_000_000_000_003_000));
    assert_eq!(streams[0].arrival_of(14), None);
}

#[test]
fn tcp_stream_gap_reported() {
    let segments = [
        tcp(40000, 1194, 100, 0x02, b""),
        tcp(40000, 1194, 105, 0x18, b"late"),
    ];
    let frames: Vec<Vec<u8>> = segments
        .iter()
        .map(|segment| ethernet(0x0800, false, &ipv4(6, CLIENT, SERVER, segment)))
        .collect();
    let records: Vec<(u32, &[u8])> = frames.iter().map(|f| (0, f.as_slice())).collect();
    let capture = pcap::parse(&pcap_file(1, false, false, &records)).expect("valid pcap");
    let result = capture.tcp_streams(1194);
    assert!(
        matches!(result, Err(PcapError::StreamGap { at: 0, .. })),
        "{result:?}"
    );
}

#[test]
fn tcp_frames_cut_off() {
    assert_eq!(split_tcp_frames(b"\x00\x05abc"), Err((5, 5)));
    assert_eq!(split_tcp_frames(b"\x00\x01a\x00"), Err((1, 0)));
    assert_eq!(split_tcp_frames(b""), Ok(Vec::new()));
}

#[test]
fn malformed_files_rejected() {
    assert!(matches!(
        pcap::parse(&[0; 10]),
        Err(PcapError::TooShort(10))
    ));

    let mut pcapng = pcap_file(1, false, false, &[]);
    pcapng[..4].copy_from_slice(&0x0a0d_0d0au32.to_le_bytes());
    assert!(matches!(
        pcap::parse(&pcapng),
        Err(PcapError::Magic(0x0a0d_0d0a))
    ));

    let unknown_link = pcap_file(147, false, false, &[]);
    assert!(matches!(
        pcap::parse(&unknown_link),
        Err(PcapError::LinkType(147))
    ));

    let mut cut = pcap_file(1, false, false, &[(0, &[0u8; 40])]);
    cut.truncate(cut.len() - 1);
    assert!(matches!(
        pcap::parse(&cut),
        Err(PcapError::Truncated {
            index: 0,
            needed: 56,
            ..
        })
    ));
}

#[test]
fn non_ip_frames_skipped() {
    let arp = ethernet(0x0806, false, &[0u8; 28]);
    let short = ethernet(0x0800, false, &[0x45, 0]);
    let capture =
        pcap::parse(&pcap_file(1, false, false, &[(0, &arp), (0, &short)])).expect("valid pcap");
    assert_eq!(capture.records.len(), 2);
    assert!(capture.segments().is_empty());
}
