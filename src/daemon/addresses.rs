//! Tunnel addresses: the gateway's own address on each TUN device and the pool that leases
//! client addresses.
//!
//! Both topologies put the gateway on the first host address of `client_cidr` (10.8.0.1 in
//! 10.8.0.0/24). With net30 each client gets the /30 block after it (10.8.0.6 with peer
//! 10.8.0.5, then 10.8.0.10 with peer 10.8.0.9, ...). With subnet each client gets the next
//! host address (10.8.0.2, 10.8.0.3, ...) with the pool's netmask.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipnet::Ipv4Net;

use crate::config::SslServer;
use crate::daemon::pool::AddressPool as Pool;
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

/// Creates the address pool of an SSL server. The configuration rules guarantee a client CIDR
/// the pool accepts (prefix 16 to 29, no host bits).
pub(crate) fn new_pool(server: &SslServer) -> Pool {
    Pool::new(server.client_cidr, server.topology).expect("validated client_cidr is a valid pool")
}

#[cfg(test)]
pub(crate) fn open_pool(server: &SslServer) -> Box<dyn AddressPool> {
    Box::new(new_pool(server))
}

/// An address pool that a server's sessions lease from while the gateway reads its sticky
/// addresses, from any thread. The sessions lock it only to connect or disconnect a client.
#[derive(Clone)]
pub(crate) struct SharedPool(Arc<Mutex<Pool>>);

impl SharedPool {
    pub(crate) fn new(pool: Pool) -> Self {
        Self(Arc::new(Mutex::new(pool)))
    }

    /// Locks the pool. The lock is held for one pool call at a time, so a poisoned lock means
    /// a bug in the pool. The pool is then used as it is rather than failing every later call.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Pool> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AddressPool for SharedPool {
    fn allocate(&mut self, common_name: &str) -> Option<ClientNetwork> {
        AddressPool::allocate(&mut *self.lock(), common_name)
    }

    fn release(&mut self, address: Ipv4Addr) {
        AddressPool::release(&mut *self.lock(), address);
    }
}

impl AddressPool for Pool {
    fn allocate(&mut self, common_name: &str) -> Option<ClientNetwork> {
        let lease = Pool::allocate(self, common_name)?;
        let (address, peer_or_netmask) = lease.ifconfig_arguments();
        Some(ClientNetwork {
            address,
            peer_or_netmask,
        })
    }

    fn release(&mut self, address: Ipv4Addr) {
        // Releasing an address the pool did not lease is a bookkeeping slip, not a reason to
        // stop serving; the pool stays consistent either way.
        let _ = Pool::release(self, address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Topology;

    fn pool(cidr: &str, topology: Topology) -> Box<dyn AddressPool> {
        Box::new(Pool::new(cidr.parse().unwrap(), topology).unwrap())
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
    fn shared_pool_clones_share_leases() {
        let server_pool = Pool::new("10.8.0.0/24".parse().unwrap(), Topology::Net30).unwrap();
        let shared = SharedPool::new(server_pool);
        let mut sessions_side: Box<dyn AddressPool> = Box::new(shared.clone());
        let alice = sessions_side.allocate("alice").unwrap();
        assert_eq!(shared.lock().leased(), 1);
        sessions_side.release(alice.address);
        let entries = shared.lock().sticky_entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].common_name, "alice");
        assert_eq!(entries[0].address, alice.address);
        assert_eq!(shared.lock().leased(), 0);
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
}
