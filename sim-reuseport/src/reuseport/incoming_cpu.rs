//! `SO_INCOMING_CPU` in listener selection (§4.2 "Exact form";
//! docs/linux-semantics/so-incoming-cpu.md): the 6.1+ form of
//! `reuseport_select_sock_by_hash()` and the CPU a flow's packets are
//! processed on.
//!
//! Kernel (net/core/sock_reuseport.c since "soreuseport: Fix socket
//! selection for SO_INCOMING_CPU"): `reuse->incoming_cpu` counts the
//! members, live and closed sections alike, whose `sk_incoming_cpu >= 0`
//! (`reuseport_get_incoming_cpu()` in `__reuseport_add_sock` /
//! `__reuseport_add_closed_sock`, `reuseport_put_incoming_cpu()` in the
//! detach functions, `reuseport_update_incoming_cpu()` from setsockopt).
//! When it is 0 the pick is `socks[reciprocal_scale(hash, num_socks)]`;
//! otherwise the live section is scanned cyclically from that index for the
//! first member with `sk_incoming_cpu == raw_smp_processor_id()`, falling
//! back to the first valid member, which is the hash pick (listeners are
//! never `TCP_ESTABLISHED`, the UDP-only skip).

use sim_tcp::{reciprocal_scale, ListenerId};

/// Entries of the default RSS indirection table (`ETH_RXFH_INDIR_NO_CHANGE`
/// drivers size it 128 and fill it with `ethtool_rxfh_indir_default(i, n)
/// = i % n`).
pub const RSS_INDIR_SIZE: u32 = 128;

/// The CPU that runs the softirq of a flow's packets on a host with `cpus`
/// CPUs, modelled as receive-side scaling with the default indirection
/// table: entry `hash % 128` holds queue `entry % cpus`, one queue per CPU.
/// The NIC's RSS hash is also the skb hash the listener lookup scales, so
/// the same flow hash feeds both; RSS reads its low bits while
/// `reciprocal_scale` reads its high bits, so the two choices are
/// independent. With one CPU every flow is on CPU 0.
pub fn rss_cpu(hash: u32, cpus: u16) -> u16 {
    ((hash % RSS_INDIR_SIZE) % u32::from(cpus.max(1))) as u16
}

/// `reuseport_select_sock_by_hash(reuse, hash, num_socks)` over the live
/// section `live` when `reuse->incoming_cpu` is `incoming_cpu_count`, for a
/// packet processed on `cpu`; `incoming_cpu_of` is each member's
/// `sk_incoming_cpu` (`None` = -1, never set).
pub fn select_sock_by_hash(
    live: &[Option<ListenerId>],
    hash: u32,
    incoming_cpu_count: usize,
    cpu: u16,
    incoming_cpu_of: impl Fn(ListenerId) -> Option<u16>,
) -> Option<ListenerId> {
    let n = live.len();
    if n == 0 {
        return None;
    }
    let start = reciprocal_scale(hash, n as u32) as usize;
    let first_valid = live[start];
    if incoming_cpu_count == 0 {
        return first_valid;
    }
    (0..n)
        .map(|k| live[(start + k) % n])
        .find(|s| s.is_some_and(|l| incoming_cpu_of(l) == Some(cpu)))
        .unwrap_or(first_valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socks(n: u32) -> Vec<Option<ListenerId>> {
        (0..n).map(|i| Some(ListenerId(i))).collect()
    }

    /// Hashes whose `reciprocal_scale` over `n` starts at each index, with
    /// low bits for both CPUs of a 2-CPU host.
    fn hashes() -> impl Iterator<Item = u32> {
        (0..64u32).map(|k| k.wrapping_mul(0x9E37_79B9))
    }

    #[test]
    fn rss_cpu_uses_the_default_indirection_table_over_the_low_bits() {
        assert_eq!(rss_cpu(0, 2), 0);
        assert_eq!(rss_cpu(1, 2), 1);
        assert_eq!(rss_cpu(127, 3), 127 % 3);
        assert_eq!(rss_cpu(128 + 5, 4), 1, "entry 5 of 128 → queue 5 % 4");
        assert_eq!(rss_cpu(u32::MAX, 1), 0, "one CPU");
        // The high bits, which pick the listener, do not move the CPU.
        assert_eq!(rss_cpu(0x8000_0001, 2), rss_cpu(1, 2));
    }

    /// Probe rows (tools/kernel-probes/results/incoming_cpu.txt) as
    /// `(listeners' SO_INCOMING_CPU, packet CPU, what wins)`.
    #[test]
    fn matching_cpu_wins_over_the_hash_as_measured_on_6_18() {
        let live = socks(2);
        for h in hashes() {
            let hash_pick = live[reciprocal_scale(h, 2) as usize];
            // "L0=0, L1=1": every CPU-0 flow to L0, every CPU-1 flow to L1.
            let pinned = |l: ListenerId| Some(l.0 as u16);
            assert_eq!(
                select_sock_by_hash(&live, h, 2, 0, pinned),
                Some(ListenerId(0))
            );
            assert_eq!(
                select_sock_by_hash(&live, h, 2, 1, pinned),
                Some(ListenerId(1))
            );
            // "L0 unset, L1=1": CPU 0 matches nobody → the hash pick.
            let only_l1 = |l: ListenerId| (l.0 == 1).then_some(1);
            assert_eq!(select_sock_by_hash(&live, h, 1, 0, only_l1), hash_pick);
            assert_eq!(
                select_sock_by_hash(&live, h, 1, 1, only_l1),
                Some(ListenerId(1))
            );
            // "L0=1, L1=1": both match on CPU 1 → the scan's first, the hash
            // index itself; no match on CPU 0 → the hash pick.
            let both = |_| Some(1);
            assert_eq!(select_sock_by_hash(&live, h, 2, 1, both), hash_pick);
            assert_eq!(select_sock_by_hash(&live, h, 2, 0, both), hash_pick);
            // "no SO_INCOMING_CPU": the plain hash pick.
            assert_eq!(select_sock_by_hash(&live, h, 0, 1, |_| None), hash_pick);
        }
    }

    #[test]
    fn three_listeners_one_pinned_take_all_of_its_cpu_and_share_the_rest() {
        // Probe row "L0 unset, L1=0, L2 unset": CPU 0 → L1 40 of 40; CPU 1
        // → hash over all three (L0 14, L1 11, L2 15).
        let live = socks(3);
        let l1 = |l: ListenerId| (l.0 == 1).then_some(0);
        let mut on_cpu1 = [0; 3];
        for h in hashes() {
            assert_eq!(select_sock_by_hash(&live, h, 1, 0, l1), Some(ListenerId(1)));
            let pick = select_sock_by_hash(&live, h, 1, 1, l1).unwrap();
            assert_eq!(Some(pick), live[reciprocal_scale(h, 3) as usize]);
            on_cpu1[pick.0 as usize] += 1;
        }
        assert!(on_cpu1.iter().all(|&c| c > 0), "{on_cpu1:?}");
    }

    #[test]
    fn the_scan_is_cyclic_from_the_hash_index() {
        // Four listeners, L0 and L3 on CPU 0: a scan starting at index 1 or
        // 2 passes L3 first, one starting at 3 takes L3, one at 0 takes L0.
        let live = socks(4);
        let cpu0 = |l: ListenerId| (l.0 == 0 || l.0 == 3).then_some(0);
        for (start, want) in [(0u32, 0u32), (1, 3), (2, 3), (3, 3)] {
            let h = start << 30;
            assert_eq!(reciprocal_scale(h, 4), start);
            assert_eq!(
                select_sock_by_hash(&live, h, 2, 0, cpu0),
                Some(ListenerId(want))
            );
        }
    }

    #[test]
    fn a_count_held_only_by_closed_members_still_falls_back_to_the_hash() {
        // `reuse->incoming_cpu` also counts the closed section; with no live
        // member set, the scan finds no match and returns the hash pick.
        let live = socks(3);
        for h in hashes() {
            assert_eq!(
                select_sock_by_hash(&live, h, 1, 0, |_| None),
                live[reciprocal_scale(h, 3) as usize]
            );
        }
        assert_eq!(select_sock_by_hash(&[], 7, 1, 0, |_| Some(0)), None);
    }
}
