//! The TUN device of each SSL server: its name, its creation and the IPv4 forwarding check.
//!
//! The device gets the gateway's tunnel address with the prefix length of `client_cidr`
//! (10.8.0.1/24 for 10.8.0.0/24), so the kernel's connected route sends the whole client
//! range into the device, whatever the topology. A point-to-point address would cover only
//! one peer and need a route per client. The daemon then picks the session by destination
//! address. The device is not persistent: the kernel removes it, with its address and
//! route, when the daemon closes it or exits.

use std::hash::Hasher;
use std::io;
use std::net::Ipv4Addr;

use siphasher::sip::SipHasher13;
use tun_rs::{AsyncDevice, DeviceBuilder};

use super::netlink;
use super::tun_batch::RECEIVE_SEGMENTS;

/// MTU of every TUN device, as OpenVPN's default `tun-mtu`.
pub(crate) const MTU: u16 = 1500;

/// Prefix of every device name, so that sslvpn devices never clash with other interfaces.
pub(crate) const NAME_PREFIX: &str = "svpn-";

/// Maximum interface name length Linux accepts: IFNAMSIZ (16) minus the terminating NUL.
const MAX_NAME_LEN: usize = 15;

/// Characters of the server name kept when the name has to be shortened.
const SHORT_NAME_LEN: usize = 5;

/// Names the TUN device of an SSL server: `svpn-<name>` when that fits in 15 bytes, else
/// `svpn-<first 5 bytes of name>-<4 hex digits of a hash of the whole name>`: "headquarters"
/// becomes "svpn-headq-0536".
pub(crate) fn device_name(server: &str) -> String {
    let name = format!("{NAME_PREFIX}{server}");
    if name.len() <= MAX_NAME_LEN {
        return name;
    }
    let mut hasher = SipHasher13::new();
    hasher.write(server.as_bytes());
    let suffix = hasher.finish() & 0xFFFF;
    let mut short: String = server.chars().take(SHORT_NAME_LEN).collect();
    // Configuration names are ASCII; this keeps the result short for any other text too.
    while short.len() > SHORT_NAME_LEN {
        short.pop();
    }
    format!("{NAME_PREFIX}{short}-{suffix:04x}")
}

/// Creates the device, sets its address, netmask and MTU, and brings it up.
///
/// The device uses TUN offload when the kernel allows it. Every read and write then starts
/// with a virtio-net header. A read may return a TCP or UDP packet of up to 64 KiB that the
/// kernel did not segment (GSO), and a write may pass the segments of one flow coalesced
/// into one packet (GRO). `AsyncDevice::tcp_gso` returns whether the device has offload.
pub(crate) fn create(name: &str, address: Ipv4Addr, prefix_len: u8) -> io::Result<AsyncDevice> {
    let device = match create_with_offload(name, address, prefix_len) {
        Ok(device) => device,
        Err(error) => {
            tracing::debug!(
                device = name,
                %error,
                "TUN offload is unavailable, so the device is created without it"
            );
            build(name, address, prefix_len, false)?
        }
    };
    disable_ipv6(name);
    Ok(device)
}

/// Creates the device with offload and limits its GSO packets to [`RECEIVE_SEGMENTS`]
/// segments, as many as one read can split a packet into. An error removes the device.
fn create_with_offload(name: &str, address: Ipv4Addr, prefix_len: u8) -> io::Result<AsyncDevice> {
    let device = build(name, address, prefix_len, true)?;
    if !device.tcp_gso() {
        return Err(io::Error::other("the device has no virtio-net header"));
    }
    let segments = u32::try_from(RECEIVE_SEGMENTS).unwrap_or(u32::MAX);
    netlink::set_gso_max_segs(device.if_index()?, segments)?;
    Ok(device)
}

fn build(name: &str, address: Ipv4Addr, prefix_len: u8, offload: bool) -> io::Result<AsyncDevice> {
    DeviceBuilder::new()
        .name(name)
        .ipv4(address, prefix_len, None)
        .mtu(MTU)
        .offload(offload)
        .build_async()
}

/// Turns IPv6 off on the device, so the kernel sends no router solicitations or other IPv6
/// traffic into a tunnel that carries only IPv4. Without IPv6 support there is nothing to do.
fn disable_ipv6(name: &str) {
    let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    if let Err(error) = std::fs::write(&path, "1") {
        tracing::debug!(%path, %error, "cannot disable IPv6 on the TUN device");
    }
}

/// Returns whether the kernel forwards IPv4 packets, or None when that cannot be read.
pub(crate) fn ipv4_forwarding() -> Option<bool> {
    let value = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").ok()?;
    Some(value.trim() == "1")
}

/// Returns the destination of an IPv4 packet, or None for anything else.
pub(crate) fn destination(packet: &[u8]) -> Option<Ipv4Addr> {
    if packet.first()? >> 4 != 4 {
        return None;
    }
    let bytes: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
    Some(Ipv4Addr::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_name_keeps_server_name() {
        assert_eq!(device_name("office"), "svpn-office");
        assert_eq!(device_name("branch-123"), "svpn-branch-123");
    }

    #[test]
    fn long_name_fits_ifnamsiz() {
        let name = device_name("headquarters-berlin");
        assert_eq!(name.len(), MAX_NAME_LEN);
        assert!(name.starts_with("svpn-headq-"), "{name}");
    }

    #[test]
    fn long_names_with_same_start_differ() {
        let first = device_name("headquarters-berlin");
        let second = device_name("headquarters-munich");
        assert_ne!(first, second);
    }

    /// Device names must not change between releases, or an upgrade would leave routes and
    /// firewall rules that name the old device behind.
    #[test]
    fn device_name_is_stable() {
        assert_eq!(device_name("headquarters"), "svpn-headq-0536");
    }

    #[test]
    fn non_ascii_name_stays_short() {
        let name = device_name("büroüberwachung");
        assert!(name.len() <= MAX_NAME_LEN, "{name}");
    }

    #[test]
    fn destination_reads_ipv4_header() {
        let mut packet = [0u8; 20];
        packet[0] = 0x45;
        packet[16..20].copy_from_slice(&[10, 8, 0, 6]);
        assert_eq!(destination(&packet), Some(Ipv4Addr::new(10, 8, 0, 6)));
    }

    #[test]
    fn destination_ignores_ipv6_and_short_packets() {
        let mut ipv6 = [0u8; 40];
        ipv6[0] = 0x60;
        assert_eq!(destination(&ipv6), None);
        assert_eq!(destination(&[0x45, 0, 0]), None);
        assert_eq!(destination(&[]), None);
    }
}
