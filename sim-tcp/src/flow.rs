//! The flow hash (§4.1) and `reciprocal_scale`.

use sim_core::FourTuple;
use std::net::{IpAddr, SocketAddr};

/// A seeded 32-bit hash of a 4-tuple standing in for `inet_ehashfn` with its
/// per-boot secret: reproducible for a seed, different across seeds.
#[derive(Copy, Clone, Debug)]
pub struct FlowHasher {
    secret: u64,
}

fn put_addr(buf: &mut [u8; 40], at: usize, a: SocketAddr) -> usize {
    let mut i = at;
    match a.ip() {
        IpAddr::V4(v4) => {
            buf[i..i + 4].copy_from_slice(&v4.octets());
            i += 4;
        }
        IpAddr::V6(v6) => {
            buf[i..i + 16].copy_from_slice(&v6.octets());
            i += 16;
        }
    }
    buf[i..i + 2].copy_from_slice(&a.port().to_be_bytes());
    i + 2
}

impl FlowHasher {
    /// A hasher keyed by `secret` (derived from the run's seed).
    pub fn new(secret: u64) -> Self {
        FlowHasher { secret }
    }

    /// `sk_hash` of the flow: the same for listener selection and for the
    /// request and child sockets of that flow.
    pub fn hash(&self, t: &FourTuple) -> u32 {
        let mut buf = [0u8; 40];
        let n = put_addr(&mut buf, 0, t.local);
        let n = put_addr(&mut buf, n, t.remote);
        xxhash_rust::xxh3::xxh3_64_with_seed(&buf[..n], self.secret) as u32
    }

    /// A 32-bit keyed value of the flow for other purposes (ISNs, cookies),
    /// independent of [`FlowHasher::hash`].
    pub fn keyed(&self, t: &FourTuple, salt: u64) -> u32 {
        let mut buf = [0u8; 40];
        let n = put_addr(&mut buf, 0, t.local);
        let n = put_addr(&mut buf, n, t.remote);
        (xxhash_rust::xxh3::xxh3_64_with_seed(&buf[..n], self.secret ^ salt.rotate_left(17)) >> 32)
            as u32
    }
}

/// `reciprocal_scale(h, n) = floor(h * n / 2^32)` (§4.1).
pub fn reciprocal_scale(h: u32, n: u32) -> u32 {
    ((u64::from(h) * u64::from(n)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reciprocal_scale_maps_onto_range_4_1() {
        assert_eq!(reciprocal_scale(0, 5), 0);
        assert_eq!(reciprocal_scale(u32::MAX, 5), 4);
        assert_eq!(reciprocal_scale(1 << 31, 4), 2);
        assert_eq!(reciprocal_scale((1 << 30) - 1, 4), 0);
        assert_eq!(reciprocal_scale(1 << 30, 4), 1);
    }

    #[test]
    fn flow_hash_is_seeded_and_stable() {
        let t = FourTuple {
            local: "10.0.0.1:443".parse().unwrap(),
            remote: "10.0.1.1:40000".parse().unwrap(),
        };
        let a = FlowHasher::new(1);
        assert_eq!(a.hash(&t), FlowHasher::new(1).hash(&t));
        assert_ne!(a.hash(&t), FlowHasher::new(2).hash(&t));
        let t2 = FourTuple {
            remote: "10.0.1.1:40001".parse().unwrap(),
            ..t
        };
        assert_ne!(a.hash(&t), a.hash(&t2));
    }
}
