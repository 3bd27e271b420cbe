//! A map keyed by [`FourTuple`] whose IPv4 entries are small.
//!
//! Connection tables (the server's ehash, the driver's client sockets) are
//! looked up for every packet, and at high connection rates they hold
//! thousands of entries: their size decides whether lookups hit the CPU
//! caches. A `FourTuple` is 64 bytes (two `SocketAddr`s sized for IPv6); an
//! IPv4 4-tuple is 12 bytes of information. IPv4 tuples are stored under
//! that exact 12-byte key, other tuples under the full tuple. No hashing
//! shortcut: lookups compare the whole key, as the kernel's established
//! hash compares the whole 4-tuple.

use crate::packet::FourTuple;
use rustc_hash::FxHashMap;
use std::net::SocketAddr;

/// The exact key of an IPv4 4-tuple: addresses `(local << 32) | remote`,
/// ports `(local << 16) | remote`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
struct V4Key(u64, u32);

impl V4Key {
    #[inline]
    fn of(t: &FourTuple) -> Option<V4Key> {
        match (&t.local, &t.remote) {
            (SocketAddr::V4(l), SocketAddr::V4(r)) => Some(V4Key(
                (u64::from(l.ip().to_bits()) << 32) | u64::from(r.ip().to_bits()),
                (u32::from(l.port()) << 16) | u32::from(r.port()),
            )),
            _ => None,
        }
    }
}

/// A hash map from [`FourTuple`] to `V` (see the module docs). Iteration is
/// not offered: its order would depend on hashing.
#[derive(Clone, Debug)]
pub struct TupleMap<V> {
    v4: FxHashMap<V4Key, V>,
    other: FxHashMap<FourTuple, V>,
}

impl<V> Default for TupleMap<V> {
    fn default() -> Self {
        TupleMap {
            v4: FxHashMap::default(),
            other: FxHashMap::default(),
        }
    }
}

impl<V> TupleMap<V> {
    /// The value for `t`.
    #[inline]
    pub fn get(&self, t: &FourTuple) -> Option<&V> {
        match V4Key::of(t) {
            Some(k) => self.v4.get(&k),
            None => self.other.get(t),
        }
    }

    /// True if `t` has a value.
    #[inline]
    pub fn contains_key(&self, t: &FourTuple) -> bool {
        self.get(t).is_some()
    }

    /// Sets the value for `t`, returning the previous one.
    #[inline]
    pub fn insert(&mut self, t: FourTuple, v: V) -> Option<V> {
        match V4Key::of(&t) {
            Some(k) => self.v4.insert(k, v),
            None => self.other.insert(t, v),
        }
    }

    /// Removes the value for `t`.
    #[inline]
    pub fn remove(&mut self, t: &FourTuple) -> Option<V> {
        match V4Key::of(t) {
            Some(k) => self.v4.remove(&k),
            None => self.other.remove(t),
        }
    }

    /// Removes the value for `t` if `remove(value)` is true, with one lookup.
    #[inline]
    pub fn remove_if(&mut self, t: &FourTuple, remove: impl FnOnce(&V) -> bool) -> Option<V> {
        use std::collections::hash_map::Entry;
        fn take<K, V>(e: Entry<'_, K, V>, remove: impl FnOnce(&V) -> bool) -> Option<V> {
            match e {
                Entry::Occupied(e) if remove(e.get()) => Some(e.remove()),
                _ => None,
            }
        }
        match V4Key::of(t) {
            Some(k) => take(self.v4.entry(k), remove),
            None => take(self.other.entry(*t), remove),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`crate::shrink_after_peak`] for both tables.
    pub fn shrink_after_peak(&mut self) {
        crate::shrink_after_peak(&mut self.v4);
        crate::shrink_after_peak(&mut self.other);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{RngCore, SeedableRng};
    use std::collections::BTreeMap;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn addr(rng: &mut impl RngCore) -> SocketAddr {
        // Few distinct values, so that random operations meet existing keys.
        let n = rng.next_u32() % 4;
        let port = (rng.next_u32() % 3) as u16;
        let ip = match rng.next_u32() % 3 {
            0 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n as u16)),
            // An IPv4-mapped IPv6 address is a different address.
            1 => IpAddr::V6(Ipv4Addr::new(10, 0, 0, n as u8).to_ipv6_mapped()),
            _ => IpAddr::V4(Ipv4Addr::new(10, 0, 0, n as u8)),
        };
        SocketAddr::new(ip, port)
    }

    /// Against a `BTreeMap` of whole tuples: random inserts, removals,
    /// conditional removals and lookups of IPv4, IPv6, IPv4-mapped and
    /// mixed tuples, including tuples that differ only in one field or
    /// only in which end is local.
    #[test]
    fn matches_a_map_of_whole_tuples() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut map = TupleMap::default();
        let mut model = BTreeMap::new();
        for i in 0..50_000u32 {
            let t = FourTuple {
                local: addr(&mut rng),
                remote: addr(&mut rng),
            };
            match rng.next_u32() % 4 {
                0 => assert_eq!(map.insert(t, i), model.insert(t, i)),
                1 => assert_eq!(map.remove(&t), model.remove(&t)),
                2 => {
                    let odd = |v: &u32| v % 2 == 1;
                    let want = model.get(&t).copied().filter(odd);
                    if want.is_some() {
                        model.remove(&t);
                    }
                    assert_eq!(map.remove_if(&t, odd), want);
                }
                _ => assert_eq!(map.get(&t), model.get(&t)),
            }
            assert_eq!(
                map.contains_key(&t.reversed()),
                model.contains_key(&t.reversed())
            );
            assert_eq!(map.len(), model.len());
        }
        assert!(
            !map.v4.is_empty() && !map.other.is_empty(),
            "both tables used"
        );
    }
}
