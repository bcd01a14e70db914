//! The one link setting the daemon changes over rtnetlink: a device's `gso_max_segs`.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

/// Room for one reply: an RTM_NEWLINK message with every attribute of a TUN device, or an
/// error that quotes the request.
const REPLY_BUFFER: usize = 64 * 1024;

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
    match reply {
        NetlinkPayload::Error(error) if error.code.is_none() => {}
        NetlinkPayload::Error(error) => return Err(error.to_io()),
        other => return Err(unexpected(&other)),
    }

    let mut query = LinkMessage::default();
    query.header.index = index;
    let reply = exchange(&socket, RouteNetlinkMessage::GetLink(query), NLM_F_REQUEST)?;
    let link = match reply {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => link,
        NetlinkPayload::Error(error) => return Err(error.to_io()),
        other => return Err(unexpected(&other)),
    };
    let reported = link
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::GsoMaxSegs(value) => Some(*value),
            _ => None,
        });
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

/// Sends one request and returns the payload of the first reply.
fn exchange(
    socket: &Socket,
    message: RouteNetlinkMessage,
    flags: u16,
) -> io::Result<NetlinkPayload<RouteNetlinkMessage>> {
    let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(message));
    packet.header.flags = flags;
    packet.header.sequence_number = 1;
    packet.finalize();
    let mut request = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut request);
    socket.send(&request, 0)?;

    let mut reply = Vec::with_capacity(REPLY_BUFFER);
    socket.recv(&mut reply, 0)?;
    let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
    Ok(parsed.payload)
}

fn unexpected(payload: &NetlinkPayload<RouteNetlinkMessage>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected rtnetlink reply: {payload:?}"),
    )
}
