//! The one link setting the daemon changes over rtnetlink: a device's `gso_max_segs`.

use std::io;

use netlink_packet_core::{
    DecodeError, NLM_F_ACK, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, parse_u32,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage, LinkMessageBuffer};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

/// Room for one reply: an RTM_NEWLINK message with every attribute of a TUN device, or an
/// error that quotes the request.
const REPLY_BUFFER: usize = 64 * 1024;
/// RTM_NEWLINK, from linux/rtnetlink.h.
const RTM_NEWLINK: u16 = 16;
/// IFLA_GSO_MAX_SEGS, from linux/if_link.h.
const IFLA_GSO_MAX_SEGS: u16 = 40;

/// Sets the maximum number of segments of one GSO packet the kernel passes to the device
/// with `index` (IFLA_GSO_MAX_SEGS, as `ip link set DEVICE gso_max_segs N`), and reads the
/// value back. The kernel segments larger packets in software before the device receives
/// them.
///
/// Fails when the kernel rejects the request or keeps another value, as kernels that accept
/// the attribute only when a device is created may do.
pub(crate) fn set_gso_max_segs(index: u32, segments: u32) -> io::Result<()> {
    let socket = connect()?;
    let mut request = LinkMessage::default();
    request.header.index = index;
    request.attributes.push(LinkAttribute::GsoMaxSegs(segments));
    let reply = exchange(
        &socket,
        RouteNetlinkMessage::SetLink(request),
        NLM_F_REQUEST | NLM_F_ACK,
    )?;
    match decode(&reply)? {
        NetlinkPayload::Error(error) if error.code.is_none() => {}
        NetlinkPayload::Error(error) => return Err(error.to_io()),
        other => return Err(unexpected(&other)),
    }

    let mut query = LinkMessage::default();
    query.header.index = index;
    let reply = exchange(&socket, RouteNetlinkMessage::GetLink(query), NLM_F_REQUEST)?;
    let reported = gso_max_segs_of(&reply)?;
    if reported == Some(segments) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "the kernel reports gso_max_segs {reported:?} after setting it to {segments}"
        )))
    }
}

fn connect() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// Sends one request and returns the first reply.
fn exchange(socket: &Socket, message: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<u8>> {
    let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(message));
    packet.header.flags = flags;
    packet.header.sequence_number = 1;
    packet.finalize();
    let mut request = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut request);
    socket.send(&request, 0)?;

    let mut reply = Vec::with_capacity(REPLY_BUFFER);
    socket.recv(&mut reply, 0)?;
    Ok(reply)
}

fn decode(reply: &[u8]) -> io::Result<NetlinkPayload<RouteNetlinkMessage>> {
    let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(reply).map_err(invalid)?;
    Ok(parsed.payload)
}

/// Reads IFLA_GSO_MAX_SEGS from the reply to RTM_GETLINK. Only that attribute is decoded,
/// because the full decoding logs a warning for every attribute that is longer than
/// netlink-packet-route expects, such as IFLA_INET6_CONF of a newer kernel.
fn gso_max_segs_of(reply: &[u8]) -> io::Result<Option<u32>> {
    let message = NetlinkBuffer::new_checked(reply).map_err(invalid)?;
    if message.message_type() != RTM_NEWLINK {
        return match decode(reply)? {
            NetlinkPayload::Error(error) => Err(error.to_io()),
            other => Err(unexpected(&other)),
        };
    }
    let link = LinkMessageBuffer::new_checked(message.payload()).map_err(invalid)?;
    for attribute in link.attributes() {
        let attribute = attribute.map_err(invalid)?;
        if attribute.kind() == IFLA_GSO_MAX_SEGS {
            return parse_u32(attribute.value()).map(Some).map_err(invalid);
        }
    }
    Ok(None)
}

fn invalid(error: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

fn unexpected(payload: &NetlinkPayload<RouteNetlinkMessage>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected rtnetlink reply: {payload:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an RTM_NEWLINK message with the given attributes, each a kind and a value.
    fn new_link(attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = vec![0u8; 16];
        for (kind, value) in attributes {
            let len = 4 + value.len();
            body.extend_from_slice(&(len as u16).to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        let mut message = Vec::new();
        message.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        message.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
        message.extend_from_slice(&[0u8; 10]);
        message.extend_from_slice(&body);
        message
    }

    #[test]
    fn reads_gso_max_segs_among_unknown_attributes() {
        // IFLA_AF_SPEC (26) with contents no parser would accept.
        let reply = new_link(&[(26, &[0xff; 7]), (IFLA_GSO_MAX_SEGS, &128u32.to_ne_bytes())]);
        assert_eq!(gso_max_segs_of(&reply).unwrap(), Some(128));
    }

    #[test]
    fn missing_gso_max_segs_reads_none() {
        let reply = new_link(&[(3, b"svpn-a\0")]);
        assert_eq!(gso_max_segs_of(&reply).unwrap(), None);
    }

    #[test]
    fn truncated_reply_is_invalid() {
        let reply = new_link(&[(IFLA_GSO_MAX_SEGS, &128u32.to_ne_bytes())]);
        let error = gso_max_segs_of(&reply[..20]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
