//! The tunnel address pool: one IPv4 address (net30: one /30) per connected client.
//!
//! The layout follows OpenVPN 2.6's `server` directive for `dev tun` (helper.c, pool.c,
//! multi.c):
//! - net30: the server takes `network+1` with peer `network+2`. The pool then starts at
//!   `network+4` and hands out whole /30 blocks up to the end of the network. Block `b` gives
//!   the client `b+2` with peer `b+1`, so the first client of `10.8.0.0/24` gets
//!   `ifconfig 10.8.0.6 10.8.0.5`.
//! - subnet: the server takes `network+1`, and clients get `network+2` up to the last
//!   address before the broadcast address, each with the network's netmask.
//!
//! A client that reconnects with the same certificate common name gets its previous address
//! back while no other client has it. A new name takes the address that has been free the
//! longest, which keeps recently released addresses available for their previous owners.
//! [`AddressPool::sticky_entries`] and [`AddressPool::restore_sticky`] carry these remembered
//! addresses over to a new pool, as OpenVPN's `ifconfig-pool-persist` does.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Shortest accepted prefix: OpenVPN rejects a `server` network larger than a /16.
pub const MIN_PREFIX_LEN: u8 = 16;
/// Longest accepted prefix: OpenVPN requires a /29 or larger for `dev tun` servers.
///
/// NOTE: OpenVPN 2.6 also rejects a net30 /29 because its pool would hold only one client;
/// this pool accepts it with a capacity of one.
pub const MAX_PREFIX_LEN: u8 = 29;

pub use crate::config::Topology;

/// An address handed to one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The client's tunnel address.
    pub address: Ipv4Addr,
    /// The point-to-point peer address (net30 only).
    pub peer: Option<Ipv4Addr>,
    /// Netmask of the client's tunnel network: 255.255.255.252 for net30, the pool's
    /// netmask for subnet.
    pub netmask: Ipv4Addr,
}

impl Lease {
    /// Returns the two arguments of the pushed `ifconfig` option: the client address and
    /// then the peer address (net30) or the netmask (subnet).
    pub fn ifconfig_arguments(&self) -> (Ipv4Addr, Ipv4Addr) {
        (self.address, self.peer.unwrap_or(self.netmask))
    }
}

/// A common name and the address the pool keeps for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyEntry {
    pub common_name: String,
    pub address: Ipv4Addr,
}

/// Errors of pool construction and release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("tunnel network {network} has host bits set; use {expected}")]
    HostBitsSet { network: Ipv4Net, expected: Ipv4Net },
    #[error(
        "tunnel network {0} is not supported: its prefix length must be between \
         /{MIN_PREFIX_LEN} and /{MAX_PREFIX_LEN}"
    )]
    PrefixLength(Ipv4Net),
    #[error("address {0} is not a client address of the pool")]
    NotInPool(Ipv4Addr),
    #[error("address {0} is not leased")]
    NotLeased(Ipv4Addr),
}

/// Index value that marks the end of the free list.
const NIL: u32 = u32::MAX;

struct Slot {
    leased: bool,
    /// Common name of the client that has the slot, or had it last.
    owner: Option<Box<str>>,
    /// Links of the free list; meaningful only while the slot is free.
    prev: u32,
    next: u32,
}

/// The address pool of one tunnel network.
///
/// Allocation and release are O(1) apart from hashing the common name. Memory is bounded by
/// the capacity: one slot per address (or /30), and at most one remembered common name per
/// slot.
pub struct AddressPool {
    network: Ipv4Net,
    topology: Topology,
    slots: Vec<Slot>,
    /// The slot each common name held last. Every entry points at a slot whose `owner` is
    /// that name, so the map has at most one entry per slot.
    sticky: HashMap<Box<str>, u32>,
    /// Free slots, the one free the longest at the head.
    free_head: u32,
    free_tail: u32,
    leased: usize,
    /// Grows by one whenever a common name gains or loses its remembered address.
    sticky_revision: u64,
}

impl AddressPool {
    /// Creates the pool of `network`, which must be a network address with a prefix length
    /// from /16 to /29.
    pub fn new(network: Ipv4Net, topology: Topology) -> Result<Self, PoolError> {
        if network.network() != network.addr() {
            return Err(PoolError::HostBitsSet {
                network,
                expected: network.trunc(),
            });
        }
        if !(MIN_PREFIX_LEN..=MAX_PREFIX_LEN).contains(&network.prefix_len()) {
            return Err(PoolError::PrefixLength(network));
        }
        let size = 1u32 << (32 - network.prefix_len());
        let capacity = match topology {
            // Every /30 block but the server's own.
            Topology::Net30 => size / 4 - 1,
            // Every address but the network address, the server and the broadcast address.
            Topology::Subnet => size - 3,
        };
        let slots = (0..capacity)
            .map(|i| Slot {
                leased: false,
                owner: None,
                prev: if i == 0 { NIL } else { i - 1 },
                next: if i + 1 == capacity { NIL } else { i + 1 },
            })
            .collect();
        Ok(Self {
            network,
            topology,
            slots,
            sticky: HashMap::new(),
            free_head: 0,
            free_tail: capacity - 1,
            leased: 0,
            sticky_revision: 0,
        })
    }

    pub fn network(&self) -> Ipv4Net {
        self.network
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// Returns the server's own tunnel address, the first host of the network.
    pub fn server_address(&self) -> Ipv4Addr {
        self.offset_address(1)
    }

    /// Returns the server's point-to-point peer address (net30 only), the second host of the
    /// network.
    pub fn server_peer(&self) -> Option<Ipv4Addr> {
        match self.topology {
            Topology::Net30 => Some(self.offset_address(2)),
            Topology::Subnet => None,
        }
    }

    /// Returns how many clients the pool can serve at once.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Returns how many addresses are leased now.
    pub fn leased(&self) -> usize {
        self.leased
    }

    /// Leases an address to the client with `common_name`, or returns `None` when the pool
    /// is exhausted.
    ///
    /// The client gets the address it held last if that address is free. Otherwise it gets
    /// the address that has been free the longest, so a second connection with the same name
    /// gets a second address.
    pub fn allocate(&mut self, common_name: &str) -> Option<Lease> {
        let previous = self
            .sticky
            .get(common_name)
            .copied()
            .filter(|&index| !self.slots[index as usize].leased);
        let index = match previous {
            Some(index) => index,
            None if self.free_head == NIL => return None,
            None => self.free_head,
        };
        self.unlink(index);
        self.slots[index as usize].leased = true;
        self.leased += 1;
        if previous.is_none() {
            self.set_owner(index, common_name);
        }
        Some(self.lease_of(index))
    }

    /// Returns a leased address to the pool. The address stays reserved for its last owner
    /// until every address that has been free longer is taken.
    pub fn release(&mut self, address: Ipv4Addr) -> Result<(), PoolError> {
        let index = self.slot_of(address).ok_or(PoolError::NotInPool(address))?;
        let slot = &mut self.slots[index as usize];
        if !slot.leased {
            return Err(PoolError::NotLeased(address));
        }
        slot.leased = false;
        self.leased -= 1;
        self.push_free(index);
        Ok(())
    }

    /// Returns every common name with the address the pool keeps for it. Free addresses
    /// come first, the one free the longest at the head, then the leased ones in address
    /// order. [`AddressPool::restore_sticky`] keeps that order.
    pub fn sticky_entries(&self) -> Vec<StickyEntry> {
        let mut entries = Vec::with_capacity(self.sticky.len());
        let mut index = self.free_head;
        while index != NIL {
            entries.extend(self.sticky_entry(index));
            index = self.slots[index as usize].next;
        }
        for index in 0..self.slots.len() as u32 {
            if self.slots[index as usize].leased {
                entries.extend(self.sticky_entry(index));
            }
        }
        entries
    }

    /// Reserves each entry's address for its common name, as if that client had just
    /// disconnected, and returns how many entries were restored.
    ///
    /// An entry is dropped in three cases: its address is not a client address of this pool,
    /// the address is leased or reserved by an earlier entry, or its name has an address
    /// already. New names take the unreserved addresses first, then the restored ones in the
    /// order of `entries`.
    pub fn restore_sticky(&mut self, entries: &[StickyEntry]) -> usize {
        let mut restored = 0;
        for entry in entries {
            let Some(index) = self.slot_of(entry.address) else {
                continue;
            };
            let slot = &self.slots[index as usize];
            let reserved = slot
                .owner
                .as_ref()
                .is_some_and(|owner| self.sticky.get(owner) == Some(&index));
            if slot.leased || reserved || self.sticky.contains_key(entry.common_name.as_str()) {
                continue;
            }
            self.set_owner(index, &entry.common_name);
            // Moves the slot behind the unreserved addresses.
            self.unlink(index);
            self.push_free(index);
            restored += 1;
        }
        restored
    }

    /// Returns a number that grows whenever a common name gains or loses its remembered
    /// address, so a caller can tell whether [`AddressPool::sticky_entries`] changed.
    ///
    /// NOTE: a release changes the order of the entries but not this number.
    pub fn sticky_revision(&self) -> u64 {
        self.sticky_revision
    }

    fn sticky_entry(&self, index: u32) -> Option<StickyEntry> {
        let owner = self.slots[index as usize].owner.as_deref()?;
        (self.sticky.get(owner) == Some(&index)).then(|| StickyEntry {
            common_name: owner.to_owned(),
            address: self.lease_of(index).address,
        })
    }

    /// Records `common_name` as the owner of slot `index`, dropping the previous owner's
    /// claim on it.
    fn set_owner(&mut self, index: u32, common_name: &str) {
        if self.sticky.get(common_name) == Some(&index) {
            return;
        }
        let slot = &mut self.slots[index as usize];
        if let Some(old) = slot.owner.take()
            && self.sticky.get(&old) == Some(&index)
        {
            self.sticky.remove(&old);
        }
        let name: Box<str> = common_name.into();
        slot.owner = Some(name.clone());
        self.sticky.insert(name, index);
        self.sticky_revision += 1;
    }

    fn lease_of(&self, index: u32) -> Lease {
        match self.topology {
            Topology::Net30 => {
                let block = 4 * (index + 1);
                Lease {
                    address: self.offset_address(block + 2),
                    peer: Some(self.offset_address(block + 1)),
                    netmask: Ipv4Addr::new(255, 255, 255, 252),
                }
            }
            Topology::Subnet => Lease {
                address: self.offset_address(index + 2),
                peer: None,
                netmask: self.network.netmask(),
            },
        }
    }

    /// Maps a client address back to its slot.
    fn slot_of(&self, address: Ipv4Addr) -> Option<u32> {
        if !self.network.contains(&address) {
            return None;
        }
        let offset = u32::from(address) - u32::from(self.network.network());
        let index = match self.topology {
            Topology::Net30 if offset % 4 == 2 => (offset / 4).checked_sub(1)?,
            Topology::Net30 => return None,
            Topology::Subnet => offset.checked_sub(2)?,
        };
        (index < self.slots.len() as u32).then_some(index)
    }

    fn offset_address(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network.network()) + offset)
    }

    fn unlink(&mut self, index: u32) {
        let Slot { prev, next, .. } = self.slots[index as usize];
        match prev {
            NIL => self.free_head = next,
            prev => self.slots[prev as usize].next = next,
        }
        match next {
            NIL => self.free_tail = prev,
            next => self.slots[next as usize].prev = prev,
        }
    }

    fn push_free(&mut self, index: u32) {
        let tail = self.free_tail;
        let slot = &mut self.slots[index as usize];
        slot.prev = tail;
        slot.next = NIL;
        match tail {
            NIL => self.free_head = index,
            tail => self.slots[tail as usize].next = index,
        }
        self.free_tail = index;
    }
}

impl fmt::Debug for AddressPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressPool")
            .field("network", &self.network)
            .field("topology", &self.topology)
            .field("capacity", &self.capacity())
            .field("leased", &self.leased)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pool(network: &str, topology: Topology) -> AddressPool {
        AddressPool::new(network.parse().expect("valid network"), topology).expect("valid pool")
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().expect("valid address")
    }

    #[test]
    fn net30_server_addresses() {
        let pool = pool("10.8.0.0/24", Topology::Net30);
        assert_eq!(pool.server_address(), ip("10.8.0.1"));
        assert_eq!(pool.server_peer(), Some(ip("10.8.0.2")));
        assert_eq!(pool.capacity(), 63);
    }

    #[test]
    fn net30_first_lease() {
        let mut pool = pool("10.8.0.0/24", Topology::Net30);
        let lease = pool.allocate("alice").expect("free address");
        assert_eq!(lease.address, ip("10.8.0.6"));
        assert_eq!(lease.peer, Some(ip("10.8.0.5")));
        assert_eq!(lease.netmask, ip("255.255.255.252"));
        assert_eq!(lease.ifconfig_arguments(), (ip("10.8.0.6"), ip("10.8.0.5")));
        assert_eq!(pool.leased(), 1);
    }

    #[test]
    fn net30_second_and_last_lease() {
        let mut pool = pool("10.8.0.0/24", Topology::Net30);
        let leases: Vec<Lease> = (0..63)
            .map(|i| pool.allocate(&format!("client{i}")).expect("free address"))
            .collect();
        assert_eq!(leases[1].address, ip("10.8.0.10"));
        assert_eq!(leases[1].peer, Some(ip("10.8.0.9")));
        assert_eq!(leases[62].address, ip("10.8.0.254"));
        assert_eq!(leases[62].peer, Some(ip("10.8.0.253")));
    }

    #[test]
    fn net30_exhaustion() {
        let mut pool = pool("10.8.0.0/24", Topology::Net30);
        for i in 0..63 {
            assert!(pool.allocate(&format!("client{i}")).is_some(), "lease {i}");
        }
        assert_eq!(pool.allocate("one-too-many"), None);
        assert_eq!(pool.leased(), 63);
    }

    #[test]
    fn subnet_leases() {
        let mut pool = pool("10.8.0.0/24", Topology::Subnet);
        assert_eq!(pool.server_address(), ip("10.8.0.1"));
        assert_eq!(pool.server_peer(), None);
        assert_eq!(pool.capacity(), 253);
        let first = pool.allocate("alice").expect("free address");
        assert_eq!(first.address, ip("10.8.0.2"));
        assert_eq!(first.peer, None);
        assert_eq!(first.netmask, ip("255.255.255.0"));
        assert_eq!(
            first.ifconfig_arguments(),
            (ip("10.8.0.2"), ip("255.255.255.0"))
        );
        let second = pool.allocate("bob").expect("free address");
        assert_eq!(second.address, ip("10.8.0.3"));
    }

    #[test]
    fn subnet_exhaustion() {
        let mut pool = pool("10.8.0.0/24", Topology::Subnet);
        let mut last = None;
        for i in 0..253 {
            last = pool.allocate(&format!("client{i}"));
            assert!(last.is_some(), "lease {i}");
        }
        assert_eq!(last.map(|lease| lease.address), Some(ip("10.8.0.254")));
        assert_eq!(pool.allocate("one-too-many"), None);
    }

    #[test]
    fn net30_slash29_boundary() {
        let mut pool = pool("10.8.0.0/29", Topology::Net30);
        assert_eq!(pool.capacity(), 1);
        let lease = pool.allocate("alice").expect("free address");
        assert_eq!(lease.address, ip("10.8.0.6"));
        assert_eq!(lease.peer, Some(ip("10.8.0.5")));
        assert_eq!(pool.allocate("bob"), None);
    }

    #[test]
    fn subnet_slash29_boundary() {
        let mut pool = pool("10.8.0.0/29", Topology::Subnet);
        assert_eq!(pool.capacity(), 5);
        let addresses: Vec<Ipv4Addr> = (0..5)
            .map(|i| {
                pool.allocate(&format!("client{i}"))
                    .expect("free address")
                    .address
            })
            .collect();
        let expected: Vec<Ipv4Addr> = (2..=6).map(|host| Ipv4Addr::new(10, 8, 0, host)).collect();
        assert_eq!(addresses, expected);
        assert_eq!(pool.allocate("client5"), None);
    }

    #[test]
    fn prefix_length_limits() {
        for network in ["10.8.0.0/30", "10.8.0.0/32", "10.0.0.0/15"] {
            let network: Ipv4Net = network.parse().expect("valid network");
            for topology in [Topology::Net30, Topology::Subnet] {
                let result = AddressPool::new(network, topology);
                assert_eq!(result.err(), Some(PoolError::PrefixLength(network)));
            }
        }
        assert_eq!(pool("10.8.0.0/16", Topology::Net30).capacity(), 16383);
        assert_eq!(pool("10.8.0.0/16", Topology::Subnet).capacity(), 65533);
    }

    #[test]
    fn host_bits_rejected() {
        let network: Ipv4Net = "10.8.0.1/24".parse().expect("valid network");
        let result = AddressPool::new(network, Topology::Subnet);
        assert_eq!(
            result.err(),
            Some(PoolError::HostBitsSet {
                network,
                expected: "10.8.0.0/24".parse().expect("valid network"),
            })
        );
    }

    #[test]
    fn sticky_address_after_release() {
        let mut pool = pool("10.8.0.0/24", Topology::Net30);
        let alice = pool.allocate("alice").expect("free address");
        let bob = pool.allocate("bob").expect("free address");
        pool.release(alice.address).expect("leased");
        let carol = pool.allocate("carol").expect("free address");
        assert_ne!(carol.address, alice.address);
        assert_ne!(carol.address, bob.address);
        let again = pool.allocate("alice").expect("free address");
        assert_eq!(again, alice);
    }

    #[test]
    fn sticky_address_lost_when_pool_fills() {
        let mut pool = pool("10.8.0.0/29", Topology::Subnet);
        let alice = pool.allocate("alice").expect("free address");
        pool.release(alice.address).expect("leased");
        let addresses: Vec<Ipv4Addr> = (0..5)
            .map(|i| {
                pool.allocate(&format!("client{i}"))
                    .expect("free address")
                    .address
            })
            .collect();
        // New names take the never-used addresses first and alice's address last.
        assert_eq!(addresses[4], alice.address);
        pool.release(ip("10.8.0.3")).expect("leased");
        let again = pool.allocate("alice").expect("free address");
        assert_eq!(again.address, ip("10.8.0.3"));
    }

    #[test]
    fn release_then_reuse_oldest_free() {
        let mut pool = pool("10.8.0.0/29", Topology::Subnet);
        let leases: Vec<Lease> = (0..5)
            .map(|i| pool.allocate(&format!("client{i}")).expect("free address"))
            .collect();
        pool.release(leases[3].address).expect("leased");
        pool.release(leases[1].address).expect("leased");
        assert_eq!(pool.leased(), 3);
        let first = pool.allocate("new1").expect("free address");
        let second = pool.allocate("new2").expect("free address");
        assert_eq!(first.address, leases[3].address);
        assert_eq!(second.address, leases[1].address);
        assert_eq!(pool.allocate("new3"), None);
    }

    #[test]
    fn same_name_twice_gets_two_addresses() {
        let mut pool = pool("10.8.0.0/24", Topology::Subnet);
        let first = pool.allocate("alice").expect("free address");
        let second = pool.allocate("alice").expect("free address");
        assert_ne!(first.address, second.address);
        pool.release(first.address).expect("leased");
        pool.release(second.address).expect("leased");
        let again = pool.allocate("alice").expect("free address");
        assert_eq!(again.address, second.address);
    }

    #[test]
    fn release_errors() {
        let mut pool = pool("10.8.0.0/24", Topology::Net30);
        let lease = pool.allocate("alice").expect("free address");
        for address in ["10.8.0.1", "10.8.0.2", "10.8.0.5", "10.8.0.7", "10.9.0.6"] {
            assert_eq!(
                pool.release(ip(address)),
                Err(PoolError::NotInPool(ip(address)))
            );
        }
        assert_eq!(
            pool.release(ip("10.8.0.10")),
            Err(PoolError::NotLeased(ip("10.8.0.10")))
        );
        assert_eq!(pool.release(lease.address), Ok(()));
        assert_eq!(
            pool.release(lease.address),
            Err(PoolError::NotLeased(lease.address))
        );
        assert_eq!(pool.leased(), 0);
    }

    #[test]
    fn subnet_release_outside_hosts() {
        let mut pool = pool("10.8.0.0/29", Topology::Subnet);
        for address in ["10.8.0.0", "10.8.0.1", "10.8.0.7"] {
            assert_eq!(
                pool.release(ip(address)),
                Err(PoolError::NotInPool(ip(address)))
            );
        }
    }

    fn entry(common_name: &str, address: &str) -> StickyEntry {
        StickyEntry {
            common_name: common_name.to_owned(),
            address: ip(address),
        }
    }

    #[test]
    fn sticky_entries_list_free_then_leased() {
        let mut pool = pool("10.8.0.0/24", Topology::Subnet);
        for name in ["alice", "bob", "carol", "dave"] {
            pool.allocate(name).expect("free address");
        }
        pool.release(ip("10.8.0.4")).expect("leased");
        pool.release(ip("10.8.0.2")).expect("leased");
        assert_eq!(
            pool.sticky_entries(),
            vec![
                entry("carol", "10.8.0.4"),
                entry("alice", "10.8.0.2"),
                entry("bob", "10.8.0.3"),
                entry("dave", "10.8.0.5"),
            ]
        );
    }

    #[test]
    fn sticky_entries_skip_replaced_owner() {
        let mut pool = pool("10.8.0.0/29", Topology::Subnet);
        let alice = pool.allocate("alice").expect("free address");
        pool.release(alice.address).expect("leased");
        // Four new names take the never-used addresses, the fifth takes alice's.
        for i in 0..5 {
            pool.allocate(&format!("client{i}")).expect("free address");
        }
        let entries = pool.sticky_entries();
        assert_eq!(entries.len(), 5);
        assert!(
            entries.iter().all(|entry| entry.common_name != "alice"),
            "{entries:?}"
        );
        assert!(
            entries.contains(&entry("client4", "10.8.0.2")),
            "{entries:?}"
        );
    }

    #[test]
    fn restored_names_get_their_addresses() {
        let mut old = pool("10.8.0.0/24", Topology::Net30);
        for name in ["alice", "bob", "carol"] {
            old.allocate(name).expect("free address");
        }
        old.release(ip("10.8.0.10")).expect("leased");
        let entries = old.sticky_entries();

        let mut pool = pool("10.8.0.0/24", Topology::Net30);
        assert_eq!(pool.restore_sticky(&entries), 3);
        assert_eq!(pool.leased(), 0);
        // A new name connecting first takes an address that no restored name had.
        let dave = pool.allocate("dave").expect("free address");
        assert_eq!(dave.address, ip("10.8.0.18"));
        for (name, address) in [
            ("carol", "10.8.0.14"),
            ("bob", "10.8.0.10"),
            ("alice", "10.8.0.6"),
        ] {
            let lease = pool.allocate(name).expect("free address");
            assert_eq!(lease.address, ip(address), "{name}");
        }
    }

    #[test]
    fn restore_drops_addresses_outside_pool() {
        let mut pool = pool("10.8.0.0/24", Topology::Net30);
        let entries = [
            entry("other-network", "10.9.0.6"),
            entry("server", "10.8.0.1"),
            entry("server-peer", "10.8.0.2"),
            entry("block-base", "10.8.0.4"),
            entry("peer", "10.8.0.5"),
            entry("broadcast", "10.8.0.255"),
            entry("kept", "10.8.0.254"),
        ];
        assert_eq!(pool.restore_sticky(&entries), 1);
        assert_eq!(pool.sticky_entries(), vec![entry("kept", "10.8.0.254")]);
    }

    #[test]
    fn restore_drops_duplicates() {
        let mut pool = pool("10.8.0.0/24", Topology::Subnet);
        let entries = [
            entry("alice", "10.8.0.7"),
            entry("alice", "10.8.0.8"),
            entry("bob", "10.8.0.7"),
            entry("bob", "10.8.0.9"),
        ];
        assert_eq!(pool.restore_sticky(&entries), 2);
        assert_eq!(
            pool.sticky_entries(),
            vec![entry("alice", "10.8.0.7"), entry("bob", "10.8.0.9")]
        );
    }

    #[test]
    fn restore_skips_leased_addresses() {
        let mut pool = pool("10.8.0.0/24", Topology::Subnet);
        let carol = pool.allocate("carol").expect("free address");
        let entries = [entry("alice", "10.8.0.2"), entry("carol", "10.8.0.3")];
        assert_eq!(carol.address, ip("10.8.0.2"));
        assert_eq!(pool.restore_sticky(&entries), 0);
        assert_eq!(pool.sticky_entries(), vec![entry("carol", "10.8.0.2")]);
    }

    #[test]
    fn restore_respects_capacity() {
        let mut pool = pool("10.8.0.0/29", Topology::Subnet);
        let entries: Vec<StickyEntry> = (0..=7)
            .map(|host| StickyEntry {
                common_name: format!("old{host}"),
                address: Ipv4Addr::new(10, 8, 0, host),
            })
            .collect();
        // 10.8.0.2 to 10.8.0.6 are the pool's five client addresses.
        assert_eq!(pool.restore_sticky(&entries), 5);
        assert_eq!(pool.sticky_entries().len(), pool.capacity());
        // Reserved addresses still go to new names once nothing else is free.
        for i in 0..5 {
            assert!(pool.allocate(&format!("new{i}")).is_some(), "lease {i}");
        }
        assert_eq!(pool.allocate("one-too-many"), None);
        assert!(pool.sticky.len() <= pool.capacity());
    }

    #[test]
    fn restore_after_topology_change() {
        let net30 = [entry("alice", "10.8.0.6"), entry("bob", "10.8.0.10")];
        let mut subnet = pool("10.8.0.0/24", Topology::Subnet);
        assert_eq!(subnet.restore_sticky(&net30), 2);
        assert_eq!(
            subnet.allocate("bob").map(|lease| lease.address),
            Some(ip("10.8.0.10"))
        );

        let subnet_entries = [
            entry("alice", "10.8.0.2"),
            entry("bob", "10.8.0.3"),
            entry("carol", "10.8.0.6"),
        ];
        let mut net30 = pool("10.8.0.0/24", Topology::Net30);
        assert_eq!(net30.restore_sticky(&subnet_entries), 1);
        assert_eq!(net30.sticky_entries(), vec![entry("carol", "10.8.0.6")]);
    }

    #[test]
    fn sticky_revision_counts_owner_changes() {
        let mut pool = pool("10.8.0.0/24", Topology::Subnet);
        let start = pool.sticky_revision();
        let alice = pool.allocate("alice").expect("free address");
        let after_alice = pool.sticky_revision();
        assert!(after_alice > start);
        pool.release(alice.address).expect("leased");
        pool.allocate("alice").expect("free address");
        assert_eq!(pool.sticky_revision(), after_alice);
        pool.restore_sticky(&[entry("bob", "10.8.0.9")]);
        assert!(pool.sticky_revision() > after_alice);
    }

    proptest! {
        #[test]
        fn leases_stay_unique_and_bounded(
            steps in proptest::collection::vec((any::<bool>(), 0u8..12), 1..200),
            net30 in any::<bool>(),
        ) {
            let topology = if net30 { Topology::Net30 } else { Topology::Subnet };
            let mut pool = pool("10.8.0.0/28", topology);
            let mut held: Vec<Lease> = Vec::new();
            for (connect, name) in steps {
                if connect {
                    match pool.allocate(&format!("client{name}")) {
                        Some(lease) => {
                            prop_assert!(pool.network().contains(&lease.address));
                            prop_assert!(held.iter().all(|h| h.address != lease.address));
                            held.push(lease);
                        }
                        None => prop_assert_eq!(held.len(), pool.capacity()),
                    }
                } else if let Some(lease) = held.pop() {
                    prop_assert_eq!(pool.release(lease.address), Ok(()));
                }
                prop_assert_eq!(pool.leased(), held.len());
                prop_assert!(pool.sticky.len() <= pool.capacity());
            }
        }

        #[test]
        fn restore_reproduces_sticky_entries(
            steps in proptest::collection::vec((any::<bool>(), 0u8..12), 1..200),
            net30 in any::<bool>(),
        ) {
            let topology = if net30 { Topology::Net30 } else { Topology::Subnet };
            let mut old = pool("10.8.0.0/28", topology);
            let mut held: Vec<Lease> = Vec::new();
            for (connect, name) in steps {
                if connect {
                    held.extend(old.allocate(&format!("client{name}")));
                } else if let Some(lease) = held.pop() {
                    prop_assert_eq!(old.release(lease.address), Ok(()));
                }
            }
            let entries = old.sticky_entries();
            let mut restored = pool("10.8.0.0/28", topology);
            prop_assert_eq!(restored.restore_sticky(&entries), entries.len());
            prop_assert_eq!(restored.sticky_entries(), entries);
        }
    }
}
