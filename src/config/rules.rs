//! The rules a configuration must satisfy beyond its types.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::parse::{Draft, ServerDraft};
use super::{Topology, Violation};

/// Ports an SSL server may not use because other services of a gateway host own them
/// (SSH, management, DNS, DHCP, NTP, HTTP(S), IKE).
pub const RESERVED_PORTS: &[u16] = &[
    22, 2222, 22222, 9000, 9001, 9002, 7505, 80, 443, 53, 68, 123, 4510, 4560, 500, 4500,
];

const MAX_NAME_LENGTH: usize = 64;
const MAX_LOCAL_NETWORKS: usize = 5;
const LOCAL_NETWORK_PREFIXES: std::ops::RangeInclusive<u8> = 8..=32;
const CLIENT_CIDR_PREFIXES: std::ops::RangeInclusive<u8> = 16..=29;
/// Tunnel addresses needed per connection: with topology net30 each client owns a /30.
const ADDRESSES_PER_CONNECTION: u64 = 4;

/// Ranges that must never be routed into the tunnel: loopback, link-local, multicast and the
/// limited broadcast block.
const FORBIDDEN_NETWORKS: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(255, 0, 0, 0), 8, "broadcast"),
];

const PRIVATE_NETWORKS: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
];

/// Checks every rule, appending violations and warnings.
pub(super) fn check(draft: &Draft, violations: &mut Vec<Violation>, warnings: &mut Vec<Violation>) {
    check_public_address(draft, violations);
    if draft.servers.is_empty() {
        warnings.push(Violation {
            place: "top level".to_owned(),
            field: "ssl_server".to_owned(),
            value: String::new(),
            message: "no SSL server is configured, so the gateway accepts no clients; \
                      add an [[ssl_server]] entry"
                .to_owned(),
        });
    }
    for server in &draft.servers {
        check_name(server, violations);
        check_local_networks(server, violations);
        check_client_cidr(server, draft.gateway.max_connections, violations, warnings);
        check_port(server, violations);
        super::auth::check(server, violations, warnings);
    }
    check_unique_names(draft, violations);
    check_client_cidrs_disjoint(draft, violations);
    check_client_cidrs_clear_of_gateway(draft, violations);
    check_listeners_unique(draft, violations);
}

fn violation(
    place: &str,
    field: &str,
    value: impl ToString,
    message: impl Into<String>,
) -> Violation {
    Violation {
        place: place.to_owned(),
        field: field.to_owned(),
        value: value.to_string(),
        message: message.into(),
    }
}

fn check_public_address(draft: &Draft, violations: &mut Vec<Violation>) {
    let Some(address) = &draft.gateway.public_address else {
        return;
    };
    if address.parse::<std::net::IpAddr>().is_ok() || is_host_name(address) {
        return;
    }
    violations.push(violation(
        "[gateway]",
        "public_address",
        format!("{address:?}"),
        "not a host name or IP address; use the name or address clients connect to, \
         e.g. \"vpn.example.com\"",
    ));
}

/// A DNS host name: dot-separated labels of letters, digits and inner hyphens.
fn is_host_name(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn check_name(server: &ServerDraft, violations: &mut Vec<Violation>) {
    let Some(name) = &server.name else {
        return;
    };
    let problem = if name.is_empty() || name.chars().count() > MAX_NAME_LENGTH {
        Some(format!("must be 1 to {MAX_NAME_LENGTH} characters long"))
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("must start with a letter".to_owned())
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .map(|bad| format!("contains {bad:?}; use only letters, digits, '-', '_' and '.'"))
    };
    if let Some(problem) = problem {
        violations.push(violation(
            &server.place,
            "name",
            format!("{name:?}"),
            problem,
        ));
    }
}

fn check_unique_names(draft: &Draft, violations: &mut Vec<Violation>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for server in &draft.servers {
        let Some(name) = server.name.as_deref() else {
            continue;
        };
        let count = seen.entry(name).or_default();
        *count += 1;
        if *count == 2 {
            violations.push(violation(
                &server.place,
                "name",
                format!("{name:?}"),
                "used by more than one SSL server; give each server a unique name",
            ));
        }
    }
}

fn check_local_networks(server: &ServerDraft, violations: &mut Vec<Violation>) {
    const FIELD: &str = "local_networks";
    let Some(networks) = &server.local_networks else {
        return;
    };
    if networks.is_empty() || networks.len() > MAX_LOCAL_NETWORKS {
        violations.push(violation(
            &server.place,
            FIELD,
            format!("{} entries", networks.len()),
            format!("must list 1 to {MAX_LOCAL_NETWORKS} networks"),
        ));
    }
    let mut seen: Vec<Ipv4Net> = Vec::new();
    for (text, network) in networks {
        let Some(network) = network else {
            continue;
        };
        let quoted = format!("{text:?}");
        if !LOCAL_NETWORK_PREFIXES.contains(&network.prefix_len()) {
            violations.push(violation(
                &server.place,
                FIELD,
                &quoted,
                "prefix length must be 8 to 32",
            ));
            continue;
        }
        if let Some(fixed) = host_bits_fix(network) {
            violations.push(violation(
                &server.place,
                FIELD,
                &quoted,
                format!("host bits are set; use \"{fixed}\""),
            ));
            continue;
        }
        for &(base, prefix, what) in FORBIDDEN_NETWORKS {
            let forbidden = Ipv4Net::new(base, prefix).expect("constant prefix is valid");
            if overlaps(network, &forbidden) {
                violations.push(violation(
                    &server.place,
                    FIELD,
                    &quoted,
                    format!("overlaps the {what} range {forbidden}, which cannot be routed to clients; remove it"),
                ));
            }
        }
        if seen.contains(network) {
            violations.push(violation(
                &server.place,
                FIELD,
                &quoted,
                "listed twice; remove the duplicate",
            ));
        }
        seen.push(*network);
    }
}

fn check_client_cidr(
    server: &ServerDraft,
    max_connections: Option<u32>,
    violations: &mut Vec<Violation>,
    warnings: &mut Vec<Violation>,
) {
    const FIELD: &str = "client_cidr";
    let Some((text, cidr)) = &server.client_cidr else {
        return;
    };
    let quoted = format!("{text:?}");
    if !CLIENT_CIDR_PREFIXES.contains(&cidr.prefix_len()) {
        violations.push(violation(
            &server.place,
            FIELD,
            &quoted,
            "prefix length must be 16 to 29",
        ));
        return;
    }
    if let Some(fixed) = host_bits_fix(cidr) {
        violations.push(violation(
            &server.place,
            FIELD,
            &quoted,
            format!("host bits are set; use \"{fixed}\""),
        ));
        return;
    }
    for &(base, prefix, what) in FORBIDDEN_NETWORKS {
        let forbidden = Ipv4Net::new(base, prefix).expect("constant prefix is valid");
        if overlaps(cidr, &forbidden) {
            violations.push(violation(
                &server.place,
                FIELD,
                &quoted,
                format!("overlaps the {what} range {forbidden}, which cannot hold tunnel addresses; use a private range such as \"10.8.0.0/24\""),
            ));
        }
    }
    let local_networks = server.local_networks.iter().flatten();
    for (network_text, network) in local_networks {
        if network.is_some_and(|network| overlaps(cidr, &network)) {
            violations.push(violation(
                &server.place,
                FIELD,
                &quoted,
                format!("overlaps local network {network_text:?}; pick a pool outside the local networks"),
            ));
        }
    }
    if let Some(max_connections) = max_connections {
        let size = 1u64 << (32 - cidr.prefix_len());
        let connections = u64::from(max_connections);
        // With net30 the server keeps the first /30 for itself. With subnet the network, server
        // and broadcast addresses are not leased.
        let (capacity, needed, per_client) = match server.topology.unwrap_or(Topology::Net30) {
            Topology::Net30 => (
                size / ADDRESSES_PER_CONNECTION - 1,
                ADDRESSES_PER_CONNECTION * (connections + 1),
                "4 per connection and 4 for the server",
            ),
            Topology::Subnet => (
                size - 3,
                connections + 3,
                "1 per connection and 3 for the network, server and broadcast addresses",
            ),
        };
        if capacity < connections {
            violations.push(violation(
                &server.place,
                FIELD,
                &quoted,
                format!(
                    "holds {size} addresses but max_connections = {max_connections} needs \
                     {needed} ({per_client}); use a prefix of /{} or shorter, or lower \
                     max_connections",
                    prefix_for(needed)
                ),
            ));
        }
    }
    let private = PRIVATE_NETWORKS
        .iter()
        .map(|&(base, prefix)| Ipv4Net::new(base, prefix).expect("constant prefix is valid"))
        .any(|private| private.contains(cidr));
    if !private {
        warnings.push(violation(
            &server.place,
            FIELD,
            &quoted,
            "is outside 10.0.0.0/8, 172.16.0.0/12 and 192.168.0.0/16; the network behind \
             the gateway must route it back to the gateway",
        ));
    }
}

fn check_client_cidrs_disjoint(draft: &Draft, violations: &mut Vec<Violation>) {
    let pools: Vec<(&ServerDraft, &Ipv4Net)> = draft
        .servers
        .iter()
        .filter_map(|server| server.client_cidr.as_ref().map(|(_, cidr)| (server, cidr)))
        .collect();
    for (index, (server, cidr)) in pools.iter().enumerate() {
        for (other, other_cidr) in &pools[..index] {
            if overlaps(cidr, other_cidr) {
                let other_name = other.name.as_deref().unwrap_or("?");
                violations.push(violation(
                    &server.place,
                    "client_cidr",
                    format!("\"{cidr}\""),
                    format!(
                        "overlaps client_cidr \"{other_cidr}\" of SSL server {other_name:?}; \
                         give each server its own pool"
                    ),
                ));
            }
        }
    }
}

/// Rejects a pool that contains an address clients reach the gateway at: the route into the
/// tunnel would take their own packets to the gateway.
fn check_client_cidrs_clear_of_gateway(draft: &Draft, violations: &mut Vec<Violation>) {
    let public = draft
        .gateway
        .public_address
        .as_deref()
        .and_then(|address| address.parse::<Ipv4Addr>().ok())
        .map(|address| ("public_address", address));
    let listen = match draft.gateway.listen_address {
        Some(std::net::IpAddr::V4(address)) if !address.is_unspecified() => {
            Some(("listen_address", address))
        }
        _ => None,
    };
    for server in &draft.servers {
        let Some((_, cidr)) = &server.client_cidr else {
            continue;
        };
        let clash = [public, listen]
            .into_iter()
            .flatten()
            .find(|(_, address)| cidr.contains(address));
        if let Some((field, address)) = clash {
            violations.push(violation(
                &server.place,
                "client_cidr",
                format!("\"{cidr}\""),
                format!(
                    "contains the gateway's {field} {address}, so clients' packets to the \
                     gateway would be routed into the tunnel; choose a pool without it, e.g. \
                     \"10.8.0.0/24\""
                ),
            ));
        }
    }
}

fn check_port(server: &ServerDraft, violations: &mut Vec<Violation>) {
    let Some(port) = server.port else {
        return;
    };
    if port == 0 {
        violations.push(violation(&server.place, "port", port, "must be 1 to 65535"));
    } else if RESERVED_PORTS.contains(&port) {
        violations.push(violation(
            &server.place,
            "port",
            port,
            "is reserved for another service of the gateway; use another port, e.g. 1194",
        ));
    }
}

fn check_listeners_unique(draft: &Draft, violations: &mut Vec<Violation>) {
    let mut seen: HashMap<(super::Protocol, u16), &str> = HashMap::new();
    for server in &draft.servers {
        let (Some(protocol), Some(port)) = (server.protocol, server.port) else {
            continue;
        };
        let name = server.name.as_deref().unwrap_or("?");
        if let Some(first) = seen.insert((protocol, port), name) {
            seen.insert((protocol, port), first);
            violations.push(violation(
                &server.place,
                "port",
                port,
                format!(
                    "SSL server {first:?} already listens on {protocol}/{port}; use another port"
                ),
            ));
        }
    }
}

/// Returns the network with its host bits cleared when `network` has any set.
fn host_bits_fix(network: &Ipv4Net) -> Option<Ipv4Net> {
    let fixed = network.trunc();
    (fixed.addr() != network.addr()).then_some(fixed)
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Returns the longest prefix whose network contains at least `addresses` addresses.
fn prefix_for(addresses: u64) -> u32 {
    let bits = 64 - (addresses.max(1) - 1).leading_zeros();
    32u32.saturating_sub(bits)
}
