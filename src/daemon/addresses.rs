//! Tunnel addresses: the gateway's own address on each TUN device and the pool that leases
//! client addresses.
//!
//! Both topologies put the gateway on the first host address of `client_cidr` (10.8.0.1 in
//! 10.8.0.0/24). With net30 each client gets the /30 block after it (10.8.0.6 with peer
//! 10.8.0.5, then 10.8.0.10 with peer 10.8.0.9, ...). With subnet each client gets the next
//! host address (10.8.0.2, 10.8.0.3, ...) with the pool's netmask.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::{SslServer, Topology};
use crate::proto::session::ClientNetwork;

/// Leases client tunnel addresses of one SSL server.
pub(crate) trait AddressPool: Send {
    /// Leases an address to `common_name`, preferring the one it had before. None when the pool
    /// is exhausted.
    fn allocate(&mut self, common_name: &str) -> Option<ClientNetwork>;
    /// Returns a leased address to the pool.
    fn release(&mut self, address: Ipv4Addr);
}

/// The gateway's own tunnel address: the first host address of the pool.
pub(crate) fn server_address(client_cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(client_cidr.network()).wrapping_add(1))
}

/// Creates the address pool of an SSL server.
pub(crate) fn open_pool(server: &SslServer) -> Box<dyn AddressPool> {
    // TODO: use `daemon::pool` here once it is merged; this pool keeps no state on disk.
    Box::new(FirstFreePool::new(server.client_cidr, server.topology))
}

/// Hands out the lowest free address, or the address a common name had before if it is free.
#[derive(Debug)]
struct FirstFreePool {
    cidr: Ipv4Net,
    topology: Topology,
    leased: HashSet<Ipv4Addr>,
    previous: HashMap<String, Ipv4Addr>,
}

impl FirstFreePool {
    fn new(cidr: Ipv4Net, topology: Topology) -> Self {
        Self {
            cidr,
            topology,
            leased: HashSet::new(),
            previous: HashMap::new(),
        }
    }

    /// Every client address of the pool in order, with its peer address or netmask.
    fn candidates(&self) -> impl Iterator<Item = ClientNetwork> + '_ {
        let network = u32::from(self.cidr.network());
        let size = 1u64 << (32 - u32::from(self.cidr.prefix_len()));
        let netmask = self.cidr.netmask();
        let at = move |offset: u64| Ipv4Addr::from(network.wrapping_add(offset as u32));
        let (step, first, last) = match self.topology {
            // Blocks of four; block 0 is the gateway's.
            Topology::Net30 => (4, 4, size.saturating_sub(4)),
            // Host addresses after the gateway's, without the broadcast address.
            Topology::Subnet => (1, 2, size.saturating_sub(2)),
        };
        let topology = self.topology;
        (first..=last)
            .step_by(step)
            .map(move |offset| match topology {
                Topology::Net30 => ClientNetwork {
                    address: at(offset + 2),
                    peer_or_netmask: at(offset + 1),
                },
                Topology::Subnet => ClientNetwork {
                    address: at(offset),
                    peer_or_netmask: netmask,
                },
            })
    }

    fn network_of(&self, address: Ipv4Addr) -> Option<ClientNetwork> {
        self.candidates()
            .find(|candidate| candidate.address == address)
    }
}

impl AddressPool for FirstFreePool {
    fn allocate(&mut self, common_name: &str) -> Option<ClientNetwork> {
        let previous = self
            .previous
            .get(common_name)
            .filter(|address| !self.leased.contains(address))
            .and_then(|&address| self.network_of(address));
        let network = match previous {
            Some(network) => network,
            None => self
                .candidates()
                .find(|candidate| !self.leased.contains(&candidate.address))?,
        };
        self.leased.insert(network.address);
        self.previous
            .insert(common_name.to_owned(), network.address);
        Some(network)
    }

    fn release(&mut self, address: Ipv4Addr) {
        self.leased.remove(&address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidr: &str, topology: Topology) -> FirstFreePool {
        FirstFreePool::new(cidr.parse().unwrap(), topology)
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn server_address_is_first_host() {
        assert_eq!(
            server_address("10.8.0.0/24".parse().unwrap()),
            ip("10.8.0.1")
        );
    }

    #[test]
    fn net30_leases_second_block_first() {
        let mut pool = pool("10.8.0.0/24", Topology::Net30);
        let first = pool.allocate("alice").unwrap();
        let second = pool.allocate("bob").unwrap();
        assert_eq!(first.address, ip("10.8.0.6"));
        assert_eq!(first.peer_or_netmask, ip("10.8.0.5"));
        assert_eq!(second.address, ip("10.8.0.10"));
        assert_eq!(second.peer_or_netmask, ip("10.8.0.9"));
    }

    #[test]
    fn net30_pool_holds_one_client_per_block() {
        let mut pool = pool("10.8.0.0/28", Topology::Net30);
        let names = ["a", "b", "c", "d"];
        let leases: Vec<_> = names.iter().map(|name| pool.allocate(name)).collect();
        assert_eq!(leases[2].as_ref().unwrap().address, ip("10.8.0.14"));
        assert!(leases[3].is_none());
    }

    #[test]
    fn subnet_leases_consecutive_hosts() {
        let mut pool = pool("10.9.0.0/29", Topology::Subnet);
        let first = pool.allocate("alice").unwrap();
        assert_eq!(first.address, ip("10.9.0.2"));
        assert_eq!(first.peer_or_netmask, ip("255.255.255.248"));
        for name in ["b", "c", "d", "e"] {
            assert!(pool.allocate(name).is_some());
        }
        assert!(
            pool.allocate("f").is_none(),
            "10.9.0.7 is the broadcast address"
        );
    }

    #[test]
    fn released_address_returns_to_same_name() {
        let mut pool = pool("10.8.0.0/24", Topology::Net30);
        let alice = pool.allocate("alice").unwrap();
        pool.allocate("bob").unwrap();
        pool.release(alice.address);
        let again = pool.allocate("alice").unwrap();
        assert_eq!(again.address, alice.address);
    }

    #[test]
    fn released_address_is_reused_by_others() {
        let mut pool = pool("10.8.0.0/24", Topology::Subnet);
        let alice = pool.allocate("alice").unwrap();
        pool.release(alice.address);
        let bob = pool.allocate("bob").unwrap();
        assert_eq!(bob.address, alice.address);
    }
}
