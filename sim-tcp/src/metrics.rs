//! The TCP metrics cache of a network namespace (`net/ipv4/tcp_metrics.c`,
//! spec §2.1 `tcp_no_metrics_save`): what a closing connection leaves for
//! the next connection between the same two addresses. Only the RTT is
//! modelled: it is what seeds a new connection's first RTO when the
//! handshake gave no RTT sample.

use crate::rtt::RttEstimator;
use crate::{Sysctls, TCP_RTO_MIN, TCP_TIMEOUT_FALLBACK};
use rustc_hash::FxHashMap;
use sim_core::{SimDuration, SimTime, TimerModel};
use std::net::IpAddr;

/// `TCP_METRICS_TIMEOUT`: an entry older than an hour is reset when read
/// (`tcpm_check_stamp` → `tcpm_suck_dst`).
pub const TCP_METRICS_TIMEOUT: SimDuration = SimDuration::from_secs(3600);

#[derive(Copy, Clone, Debug)]
struct Entry {
    /// `TCP_METRIC_RTT`: a smoothed RTT in µs scaled by 8, as `srtt_us`.
    rtt_us8: u32,
    /// `tcpm_stamp`.
    stamp: SimTime,
}

/// One namespace's `tcp_metrics` table, keyed like the kernel's by
/// (local address, remote address) (`tm_saddr`, `tm_daddr`). Lookups only:
/// nothing iterates it. The kernel's table is bounded (a hash of
/// `tcp_metrics` buckets, 5 entries deep); the model's is not.
///
/// IPv4 pairs are kept under one word, `(local << 32) | remote` (one
/// multiply to hash: two to four lookups per connection are on the hot
/// path), other pairs under the addresses.
#[derive(Clone, Debug, Default)]
pub struct TcpMetrics {
    v4: FxHashMap<u64, Entry>,
    other: FxHashMap<(IpAddr, IpAddr), Entry>,
}

impl TcpMetrics {
    #[inline]
    fn get_mut(&mut self, local: IpAddr, remote: IpAddr) -> Option<&mut Entry> {
        match (local, remote) {
            (IpAddr::V4(l), IpAddr::V4(r)) => self.v4.get_mut(&v4_key(l, r)),
            _ => self.other.get_mut(&(local, remote)),
        }
    }

    #[inline]
    fn entry(&mut self, local: IpAddr, remote: IpAddr, now: SimTime) -> &mut Entry {
        let fresh = Entry {
            rtt_us8: 0,
            stamp: now,
        };
        match (local, remote) {
            (IpAddr::V4(l), IpAddr::V4(r)) => self.v4.entry(v4_key(l, r)).or_insert(fresh),
            _ => self.other.entry((local, remote)).or_insert(fresh),
        }
    }
}

#[inline]
fn v4_key(l: std::net::Ipv4Addr, r: std::net::Ipv4Addr) -> u64 {
    (u64::from(l.to_bits()) << 32) | u64::from(r.to_bits())
}

impl TcpMetrics {
    /// Number of cached destinations.
    pub fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached smoothed RTT for (`local`, `remote`), if any (`tcp_get_metrics`
    /// without creating; an entry older than [`TCP_METRICS_TIMEOUT`] is reset).
    pub fn cached_rtt(
        &mut self,
        now: SimTime,
        local: IpAddr,
        remote: IpAddr,
    ) -> Option<SimDuration> {
        let e = self.get_mut(local, remote)?;
        if now.saturating_sub(e.stamp) > TCP_METRICS_TIMEOUT {
            e.rtt_us8 = 0;
            e.stamp = now;
        }
        (e.rtt_us8 != 0).then(|| SimDuration::from_micros(u64::from(e.rtt_us8 >> 3)))
    }

    /// `tcp_init_metrics`: the first RTO of a connection that just reached
    /// ESTABLISHED, given its handshake estimate (`est`, possibly without
    /// a sample) and the RTO that estimate already set (`rto`).
    ///
    /// * A cached RTT larger than the sample seeds the RTO the way
    ///   `tcp_rtt_estimator` would (crtt + max(2·crtt, `TCP_RTO_MIN`), crtt
    ///   truncated to jiffies under the wheel model); the estimator itself
    ///   keeps the handshake's sample.
    /// * With neither a sample nor a cached entry: `TCP_TIMEOUT_FALLBACK`
    ///   (3 s, RFC 6298 5.7).
    /// * Otherwise the sample's RTO stands.
    pub fn init_rto(
        &mut self,
        now: SimTime,
        local: IpAddr,
        remote: IpAddr,
        est: &RttEstimator,
        rto: SimDuration,
        timers: &TimerModel,
    ) -> SimDuration {
        let crtt8 = self
            .get_mut(local, remote)
            .filter(|e| now.saturating_sub(e.stamp) <= TCP_METRICS_TIMEOUT)
            .map_or(0, |e| e.rtt_us8);
        if crtt8 > est.srtt_us8() {
            // `crtt /= 8 * USEC_PER_SEC / HZ`: whole jiffies, truncated.
            let crtt = SimDuration::from_micros(u64::from(crtt8 >> 3));
            let crtt = match timers.mode {
                sim_core::TimerMode::Exact => crtt,
                sim_core::TimerMode::Wheel => {
                    let j = timers.to_jiffies(crtt);
                    let j = if timers.jiffies_to_duration(j) > crtt {
                        sim_core::Jiffies(j.0 - 1)
                    } else {
                        j
                    };
                    timers.jiffies_to_duration(j)
                }
            };
            return crtt + crtt.saturating_mul(2).max(TCP_RTO_MIN);
        }
        if est.srtt_us8() == 0 {
            return TCP_TIMEOUT_FALLBACK;
        }
        rto
    }

    /// `tcp_update_metrics`, called when a connection closes through
    /// TIME-WAIT or LAST-ACK. Does nothing with `tcp_no_metrics_save`. A
    /// connection that backed off (`icsk_backoff`) or never measured an RTT
    /// clears the cached RTT of an existing entry ("this session failed to
    /// estimate rtt"); otherwise the entry (created if needed) takes the
    /// connection's srtt if larger, else moves an eighth of the way down.
    pub fn update(
        &mut self,
        now: SimTime,
        local: IpAddr,
        remote: IpAddr,
        est: &RttEstimator,
        backed_off: bool,
        sysctls: &Sysctls,
    ) {
        if sysctls.tcp_no_metrics_save != 0 {
            return;
        }
        let srtt = est.srtt_us8();
        if backed_off || srtt == 0 {
            if let Some(e) = self.get_mut(local, remote) {
                e.rtt_us8 = 0;
            }
            return;
        }
        let e = self.entry(local, remote, now);
        if now.saturating_sub(e.stamp) > TCP_METRICS_TIMEOUT {
            e.rtt_us8 = 0;
        }
        let m = i64::from(e.rtt_us8) - i64::from(srtt);
        e.rtt_us8 = if m <= 0 {
            srtt
        } else {
            (i64::from(e.rtt_us8) - (m >> 3)) as u32
        };
        e.stamp = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sample(us: u32) -> RttEstimator {
        let mut e = RttEstimator::default();
        e.sample(us, 1, 1);
        e
    }

    #[test]
    fn fallback_only_without_sample_and_without_cache_2_1() {
        // §2.1: fresh namespace, SYN retransmitted, no timestamps: 3000 ms;
        // same namespace after earlier connections: 200 ms (loopback RTT
        // truncates to 0 jiffies: 0 + max(0, 200 ms)).
        let (a, b) = (ip("10.0.0.2"), ip("10.0.0.1"));
        let now = SimTime(1_000_000_000);
        let mut m = TcpMetrics::default();
        let none = RttEstimator::default();
        let rto = SimDuration::from_secs(1);
        let linux = TimerModel::LINUX;
        assert_eq!(
            m.init_rto(now, a, b, &none, rto, &linux),
            TCP_TIMEOUT_FALLBACK
        );
        m.update(now, a, b, &sample(50), false, &Sysctls::default());
        assert_eq!(m.len(), 1);
        assert_eq!(
            m.init_rto(now, a, b, &none, rto, &linux),
            SimDuration::from_millis(200)
        );
        // Another destination is not cached.
        assert_eq!(
            m.init_rto(now, a, ip("10.0.0.9"), &none, rto, &linux),
            TCP_TIMEOUT_FALLBACK
        );
        // A cached 100 ms RTT: 100 + max(200, 200) = 300 ms.
        m.update(now, a, b, &sample(100_000), false, &Sysctls::default());
        assert_eq!(
            m.init_rto(now, a, b, &none, rto, &linux),
            SimDuration::from_millis(300)
        );
        // A handshake sample larger than the cache keeps its own RTO.
        let own = SimDuration::from_millis(700);
        assert_eq!(m.init_rto(now, a, b, &sample(200_000), own, &linux), own);
    }

    #[test]
    fn no_metrics_save_and_failed_sessions_2_1() {
        let (a, b) = (ip("10.0.0.2"), ip("10.0.0.1"));
        let now = SimTime(0);
        let mut m = TcpMetrics::default();
        let off = Sysctls {
            tcp_no_metrics_save: 1,
            ..Sysctls::default()
        };
        m.update(now, a, b, &sample(5_000), false, &off);
        assert!(m.is_empty());
        m.update(now, a, b, &sample(5_000), false, &Sysctls::default());
        assert_eq!(m.cached_rtt(now, a, b), Some(SimDuration::from_millis(5)));
        // A session that backed off clears the RTT, keeps the entry.
        m.update(now, a, b, &sample(5_000), true, &Sysctls::default());
        assert_eq!(m.cached_rtt(now, a, b), None);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn many_destinations_stay_distinct() {
        let mut m = TcpMetrics::default();
        let s = Sysctls::default();
        let local = ip("10.0.0.1");
        for i in 0..40u32 {
            let remote = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0100 + i));
            m.update(
                SimTime(0),
                local,
                remote,
                &sample(1_000 * (i + 1)),
                false,
                &s,
            );
        }
        m.update(SimTime(0), ip("::1"), ip("::2"), &sample(7_000), false, &s);
        assert_eq!(m.len(), 41);
        for i in 0..40u32 {
            let remote = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0100 + i));
            let want = SimDuration::from_millis(u64::from(i) + 1);
            assert_eq!(m.cached_rtt(SimTime(0), local, remote), Some(want));
        }
        assert_eq!(
            m.cached_rtt(SimTime(0), ip("::1"), ip("::2")),
            Some(SimDuration::from_millis(7))
        );
        assert_eq!(m.cached_rtt(SimTime(0), ip("::2"), ip("::1")), None);
    }

    #[test]
    fn smaller_rtts_move_an_eighth_and_old_entries_expire() {
        let (a, b) = (ip("10.0.0.2"), ip("10.0.0.1"));
        let mut m = TcpMetrics::default();
        let s = Sysctls::default();
        m.update(SimTime(0), a, b, &sample(80_000), false, &s);
        m.update(SimTime(0), a, b, &sample(160_000), false, &s);
        assert_eq!(
            m.cached_rtt(SimTime(0), a, b),
            Some(SimDuration::from_millis(160))
        );
        m.update(SimTime(0), a, b, &sample(80_000), false, &s);
        assert_eq!(
            m.cached_rtt(SimTime(0), a, b),
            Some(SimDuration::from_millis(150))
        );
        let later = SimTime(0) + TCP_METRICS_TIMEOUT + SimDuration::from_secs(1);
        assert_eq!(m.cached_rtt(later, a, b), None);
    }
}
