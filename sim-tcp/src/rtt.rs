//! RTT estimation and the retransmission timeout of a full socket
//! (`tcp_rtt_estimator`, `__tcp_set_rto`, `tcp_bound_rto`), and the time
//! bound on retransmissions (`tcp_model_timeout`), in the kernel's units:
//! microseconds, `srtt` scaled by 8.

use crate::server::TCP_RTO_MIN;
use sim_core::{SimDuration, SimTime, TimerModel};

/// `TCP_RTO_MIN` in microseconds (`tcp_rto_min_us`).
const RTO_MIN_US: u32 = 200_000;

/// A socket's smoothed RTT and variance (`tcp_sock.srtt_us`, `mdev_us`,
/// `mdev_max_us`, `rttvar_us`, `rtt_seq`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RttEstimator {
    /// Smoothed RTT in µs, scaled by 8; 0 = no sample yet.
    srtt_us: u32,
    mdev_us: u32,
    mdev_max_us: u32,
    rttvar_us: u32,
    rtt_seq: u32,
}

impl RttEstimator {
    /// `tcp_rtt_estimator(sk, mrtt_us)`: one RTT sample of `m_us` µs;
    /// `snd_una`/`snd_nxt` drive the once-per-RTT variance decay.
    pub fn sample(&mut self, m_us: u32, snd_una: u32, snd_nxt: u32) {
        let mut m = i64::from(m_us);
        let mut srtt = i64::from(self.srtt_us);
        if srtt != 0 {
            m -= srtt >> 3; // m is now error in rtt est
            srtt += m; // rtt = 7/8 rtt + 1/8 new
            let mut mdev = i64::from(self.mdev_us);
            if m < 0 {
                m = -m;
                m -= mdev >> 2;
                if m > 0 {
                    m >>= 3;
                }
            } else {
                m -= mdev >> 2;
            }
            mdev += m; // mdev = 3/4 mdev + 1/4 new
            self.mdev_us = mdev.max(0) as u32;
            if self.mdev_us > self.mdev_max_us {
                self.mdev_max_us = self.mdev_us;
                if self.mdev_max_us > self.rttvar_us {
                    self.rttvar_us = self.mdev_max_us;
                }
            }
            if seq_after(snd_una, self.rtt_seq) {
                if self.mdev_max_us < self.rttvar_us {
                    self.rttvar_us -= (self.rttvar_us - self.mdev_max_us) >> 2;
                }
                self.rtt_seq = snd_nxt;
                self.mdev_max_us = RTO_MIN_US;
            }
        } else {
            // No previous measure: rto = 3 * rtt at least.
            srtt = m << 3;
            self.mdev_us = (m << 1) as u32;
            self.rttvar_us = self.mdev_us.max(RTO_MIN_US);
            self.mdev_max_us = self.rttvar_us;
            self.rtt_seq = snd_nxt;
        }
        self.srtt_us = srtt.clamp(1, i64::from(u32::MAX)) as u32;
    }

    /// `srtt_us` (scaled by 8), 0 without a sample.
    pub fn srtt_us8(&self) -> u32 {
        self.srtt_us
    }

    /// The smoothed RTT, if there was a sample.
    pub fn srtt(&self) -> Option<SimDuration> {
        (self.srtt_us != 0).then(|| SimDuration::from_micros(u64::from(self.srtt_us >> 3)))
    }

    /// The RTO after a sample: `__tcp_set_rto` (srtt + rttvar, in jiffies
    /// rounded up under the wheel model) bounded by `rto_max`
    /// (`tcp_bound_rto`).
    pub fn rto(&self, timers: &TimerModel, rto_max: SimDuration) -> SimDuration {
        let us = u64::from(self.srtt_us >> 3) + u64::from(self.rttvar_us);
        timers.quantize_us(us).min(rto_max)
    }

    /// The tail loss probe timeout (`tcp_schedule_loss_probe`) with one
    /// segment in flight: 2·srtt + `TCP_RTO_MIN` (room for a delayed ACK),
    /// or `TCP_TIMEOUT_INIT` without a sample.
    pub fn probe_timeout(&self, timers: &TimerModel) -> SimDuration {
        if self.srtt_us == 0 {
            return crate::TCP_TIMEOUT_INIT;
        }
        let us = u64::from(self.srtt_us >> 2) + u64::from(RTO_MIN_US);
        timers.quantize_us(us)
    }
}

/// `after(a, b)` in sequence space.
fn seq_after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

/// An RTT sample in µs from a send time (`tcp_stamp_us_delta`).
pub(crate) fn rtt_us(now: SimTime, sent: SimTime) -> u32 {
    let ns = now.saturating_sub(sent).as_nanos();
    u32::try_from(ns / 1_000).unwrap_or(u32::MAX)
}

/// The model's timestamp clock (`tcp_time_stamp_ts`, milliseconds): 1 at
/// time 0, so that a TSval is never 0 (0 marks "no option" in a packet).
pub(crate) fn ts_now(now: SimTime) -> u32 {
    ((now.as_nanos() / 1_000_000) as u32).wrapping_add(1)
}

/// An RTT sample from a timestamp echo (`tcp_rtt_tsopt_us(tp, 1)`):
/// millisecond granularity, at least 1 ms.
pub(crate) fn ts_rtt_us(now: SimTime, tsecr: u32) -> u32 {
    let delta = ts_now(now).wrapping_sub(tsecr);
    if delta >= i32::MAX as u32 / 1_000 {
        return u32::MAX;
    }
    delta.max(1) * 1_000
}

/// `tcp_model_timeout(sk, boundary, rto_base)`: how long `boundary`
/// retransmissions take with exponential backoff from `rto_base`, capped
/// per interval at `rto_max`. `retransmits_timed_out` gives up once this
/// much time has passed since the first transmission (`retrans_stamp`).
pub fn tcp_model_timeout(
    boundary: u32,
    rto_base: SimDuration,
    rto_max: SimDuration,
) -> SimDuration {
    let ratio = (rto_max.as_nanos() / rto_base.as_nanos().max(1)).max(1);
    let linear_backoff_thresh = ratio.ilog2();
    if boundary <= linear_backoff_thresh {
        rto_base.saturating_mul((2u64 << boundary) - 1)
    } else {
        rto_base
            .saturating_mul((2u64 << linear_backoff_thresh) - 1)
            .saturating_add(rto_max.saturating_mul(u64::from(boundary - linear_backoff_thresh)))
    }
}

/// `retransmits_timed_out`: whether the time since `start` has reached
/// `bound`, on the millisecond timestamp clock as the kernel compares it.
pub(crate) fn timed_out(now: SimTime, start: SimTime, bound: SimDuration) -> bool {
    let elapsed_ms = ts_now(now).wrapping_sub(ts_now(start));
    u64::from(elapsed_ms) >= bound.as_nanos() / 1_000_000
}

/// `TCP_RTO_MIN` as the data time bound's base (`retransmits_timed_out`).
pub(crate) const DATA_RTO_BASE: SimDuration = TCP_RTO_MIN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_gives_rtt_plus_max_2rtt_200ms_2_1() {
        // §2.1: RTO = RTT + max(2·RTT, 200 ms); on loopback the kernel
        // reports tcpi_rto 204 ms: 200.05 ms rounded up to 51 jiffies at HZ=250.
        let mut e = RttEstimator::default();
        e.sample(50, 1, 1);
        let max = SimDuration::from_secs(120);
        assert_eq!(
            e.rto(&TimerModel::LINUX, max),
            SimDuration::from_millis(204)
        );
        assert_eq!(
            e.rto(&TimerModel::EXACT, max),
            SimDuration::from_micros(200_050)
        );
        let mut e = RttEstimator::default();
        e.sample(10_000, 1, 1);
        assert_eq!(
            e.rto(&TimerModel::EXACT, max),
            SimDuration::from_millis(210)
        );
        assert_eq!(
            e.rto(&TimerModel::LINUX, max),
            SimDuration::from_millis(212)
        );
        let mut e = RttEstimator::default();
        e.sample(150_000, 1, 1);
        assert_eq!(
            e.rto(&TimerModel::EXACT, max),
            SimDuration::from_millis(450)
        );
        // tcp_bound_rto.
        assert_eq!(
            e.rto(&TimerModel::EXACT, SimDuration::from_millis(300)),
            SimDuration::from_millis(300)
        );
    }

    #[test]
    fn later_samples_smooth_by_an_eighth() {
        let mut e = RttEstimator::default();
        e.sample(80_000, 1, 1);
        e.sample(160_000, 2, 2);
        // srtt = 80 + (160 - 80) / 8 = 90 ms.
        assert_eq!(e.srtt(), Some(SimDuration::from_millis(90)));
    }

    #[test]
    fn probe_timeout_is_2_srtt_plus_rto_min_2_1() {
        // §2.1 tcp_early_retrans: measured probe at about 0.2 s on loopback.
        let mut e = RttEstimator::default();
        assert_eq!(e.probe_timeout(&TimerModel::LINUX), crate::TCP_TIMEOUT_INIT);
        e.sample(50, 1, 1);
        assert_eq!(
            e.probe_timeout(&TimerModel::LINUX),
            SimDuration::from_millis(204)
        );
        assert_eq!(
            e.probe_timeout(&TimerModel::EXACT),
            SimDuration::from_micros(200_100)
        );
    }

    #[test]
    fn model_timeout_matches_the_kernel_2_6() {
        let s = SimDuration::from_secs;
        let max = s(120);
        // SYN (base 1 s): (2^(R+1) - 1) s for R <= 6.
        assert_eq!(tcp_model_timeout(6, s(1), max), s(127));
        assert_eq!(tcp_model_timeout(2, s(1), max), s(7));
        assert_eq!(tcp_model_timeout(1, s(1), max), s(3));
        // Beyond ilog2(120) = 6: the 120 s cap per interval.
        assert_eq!(tcp_model_timeout(7, s(1), max), s(247));
        // Data (base 200 ms), tcp_retries2 = 15: 1023 * 0.2 + 6 * 120 s.
        assert_eq!(
            tcp_model_timeout(15, DATA_RTO_BASE, max),
            SimDuration::from_millis(924_600)
        );
    }

    #[test]
    fn timestamp_rtt_has_millisecond_granularity() {
        let t = SimTime(5_000_700_000);
        assert_eq!(ts_now(t), 5_001);
        assert_eq!(ts_rtt_us(t, ts_now(SimTime(4_000_000_000))), 1_000_000);
        assert_eq!(ts_rtt_us(t, ts_now(t)), 1_000, "at least 1 ms");
    }
}
