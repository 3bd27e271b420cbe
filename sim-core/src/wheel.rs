//! The kernel timer wheel's granularity (`kernel/time/timer.c`, spec §3.1):
//! when a `timer_list` timer armed with `mod_timer(timer, jiffies + delta)`
//! really fires.
//!
//! TCP's timers (the request/SYN-ACK timer, the retransmission timer of a
//! full socket: SYN, data, loss probe) count in jiffies (`CONFIG_HZ` ticks
//! per second) and live on the hierarchical timer wheel. A timer goes to the
//! level whose granularity (`8^level` jiffies) keeps it at most about 12.5 %
//! late, and fires at the start of the tick of its bucket's expiry
//! ([`calc_wheel_index`], [`calc_index`]): never early, often late, and
//! every timer of one bucket at the same instant.
//!
//! This module only computes *when*; it holds no timers. [`TimerModel`]
//! maps a nominal timeout to its firing instant, either through the wheel
//! ([`TimerMode::Wheel`], what Linux does, the default) or at the exact
//! nominal deadline ([`TimerMode::Exact`], to see what the batching changes).
//!
//! # Jiffies origin
//!
//! Jiffy 0 starts at simulated time 0 on every host, and jiffy `j` starts at
//! the first nanosecond `t` with `floor(t * HZ / 1e9) >= j`. The kernel's
//! jiffies count from boot (`INITIAL_JIFFIES`), so their phase relative to a
//! connection is arbitrary; in a run, connections start at arrival instants
//! drawn from the seed, so their phase relative to the wheel's buckets is
//! already spread. A fixed origin keeps the model deterministic without
//! another seed-dependent draw and makes the buckets easy to read in a trace
//! (at HZ=250, level-1 buckets end on multiples of 32 ms, level-2 buckets on
//! multiples of 256 ms).
//!
//! # Where, within a jiffy, timers fire
//!
//! A timer fires at the first nanosecond of the jiffy of its bucket's expiry
//! (the tick; the timer softirq runs right behind it and the model gives
//! that no duration). All timers of one bucket therefore share one instant;
//! among them, the driver's event queue keeps its first-in first-out order
//! of their queue entries. (The kernel runs a bucket's list newest first,
//! per CPU; which CPU holds which timer is not modelled, so no order among
//! same-bucket timers is more faithful than another.)
//!
//! The arming clock is `jiffies` at the arming instant (`forward_timer_base`
//! brings an idle base's `clk` up to `jiffies`), except for a timer re-armed
//! from a timer callback ([`TimerModel::rearm_at`]): while the kernel runs
//! expired timers, `base->clk` is one ahead of `jiffies`, which moves a
//! re-armed timer to the next level down when its delta is exactly at a
//! level boundary. Measured on 6.18 (`tools/kernel-probes`,
//! `docs/linux-semantics/timer-wheel-granularity.md`): every SYN, SYN-ACK
//! and expiry instant falls in the bucket this model gives.

use crate::time::{SimDuration, SimTime};
use core::fmt;

/// A count of timer ticks: `jiffies`, or a span of them.
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Jiffies(pub u64);

/// `LVL_CLK_SHIFT`: each level is 8 times coarser than the one below.
const LVL_CLK_SHIFT: u32 = 3;
/// `LVL_BITS`: 64 buckets per level.
const LVL_BITS: u32 = 6;
const LVL_SIZE: u64 = 1 << LVL_BITS;
const LVL_MASK: u64 = LVL_SIZE - 1;

/// `LVL_SHIFT(n)`.
const fn lvl_shift(n: u32) -> u32 {
    n * LVL_CLK_SHIFT
}

/// `LVL_GRAN(n)`: the granularity of level `n`, in jiffies.
pub const fn lvl_gran(n: u32) -> u64 {
    1 << lvl_shift(n)
}

/// `LVL_START(n)`: the smallest delta that goes to level `n` (n >= 1):
/// 63, 504, 4032, 32256, ... jiffies.
pub const fn lvl_start(n: u32) -> u64 {
    (LVL_SIZE - 1) << ((n - 1) * LVL_CLK_SHIFT)
}

/// `LVL_OFFS(n)`: the index of level `n`'s first bucket.
const fn lvl_offs(n: u32) -> u64 {
    n as u64 * LVL_SIZE
}

/// `LVL_DEPTH`: 9 levels when `HZ > 100`, else 8.
pub const fn lvl_depth(hz: u32) -> u32 {
    if hz > 100 {
        9
    } else {
        8
    }
}

/// `calc_index`: the bucket of a timer expiring at `expires` on level
/// `lvl`, and that bucket's expiry. The expiry is rounded **up** to the
/// level's granularity, plus one granule at level 0 too ("the timer wheel
/// has to guarantee that a timer does not fire early").
pub const fn calc_index(expires: Jiffies, lvl: u32) -> (u64, Jiffies) {
    let e = (expires.0 >> lvl_shift(lvl)) + 1;
    (lvl_offs(lvl) + (e & LVL_MASK), Jiffies(e << lvl_shift(lvl)))
}

/// `calc_wheel_index`: the bucket (index, expiry) of a timer armed when the
/// base's clock is `clk` to expire at `expires`, on a wheel of `depth`
/// levels ([`lvl_depth`]). The level is the smallest whose range holds
/// `expires - clk`; an expiry in the past goes to the current bucket;
/// deltas beyond the wheel's capacity are clamped to it
/// (`WHEEL_TIMEOUT_CUTOFF`, `WHEEL_TIMEOUT_MAX`).
pub const fn calc_wheel_index(expires: Jiffies, clk: Jiffies, depth: u32) -> (u64, Jiffies) {
    let delta = expires.0.wrapping_sub(clk.0);
    let mut lvl = 0;
    while lvl + 1 < depth {
        if delta < lvl_start(lvl + 1) {
            return calc_index(expires, lvl);
        }
        lvl += 1;
    }
    if (delta as i64) < 0 {
        return (clk.0 & LVL_MASK, clk);
    }
    let cutoff = lvl_start(depth);
    let expires = if delta >= cutoff {
        Jiffies(clk.0 + cutoff - lvl_gran(depth - 1))
    } else {
        expires
    };
    calc_index(expires, depth - 1)
}

/// The expiry of [`calc_wheel_index`]'s bucket, with the levels TCP's
/// timers use (0 to 2: deltas below 4032 jiffies, 16 s at HZ=250) picked by
/// two comparisons and fixed shifts; other deltas (and an expiry in the
/// past) take [`calc_wheel_index`] itself. `depth` is at least 4.
#[inline(always)]
fn bucket_expiry(expires: Jiffies, clk: Jiffies, depth: u32) -> Jiffies {
    let delta = expires.0.wrapping_sub(clk.0);
    if delta < lvl_start(1) {
        Jiffies(expires.0 + 1)
    } else if delta < lvl_start(2) {
        Jiffies(((expires.0 >> lvl_shift(1)) + 1) << lvl_shift(1))
    } else if delta < lvl_start(3) {
        Jiffies(((expires.0 >> lvl_shift(2)) + 1) << lvl_shift(2))
    } else {
        calc_wheel_index(expires, clk, depth).1
    }
}

/// [`TimerModel::fire_at`] (`ahead` 0) and [`TimerModel::rearm_at`]
/// (`ahead` 1) in the wheel mode for a tick of `TICK` nanoseconds on a
/// wheel of `DEPTH` levels: the same arithmetic as
/// [`TimerModel::jiffies`], [`TimerModel::to_jiffies`] and
/// [`TimerModel::jiffy_start`], with the divisor a constant. Levels 0-2
/// (what TCP's timers use) take a leaf path without branches on the
/// level; anything else goes out of line.
#[inline(always)]
fn wheel_fire_whole<const TICK: u64, const DEPTH: u32>(
    now: SimTime,
    timeout: SimDuration,
    ahead: u64,
) -> SimTime {
    let j = now.0 / TICK;
    let n = timeout.0.div_ceil(TICK);
    // delta = expires - clk; below lvl_start(3), j + n cannot overflow.
    let delta = n.wrapping_sub(ahead);
    if delta >= lvl_start(3) {
        return wheel_fire_far::<TICK, DEPTH>(j, n, ahead);
    }
    let shift = if delta < lvl_start(1) {
        0
    } else if delta < lvl_start(2) {
        lvl_shift(1)
    } else {
        lvl_shift(2)
    };
    let bucket = (((j + n) >> shift) + 1) << shift;
    SimTime(bucket.saturating_mul(TICK))
}

/// [`wheel_fire_whole`] beyond level 2 or with an expiry in the past.
#[cold]
#[inline(never)]
fn wheel_fire_far<const TICK: u64, const DEPTH: u32>(j: u64, n: u64, ahead: u64) -> SimTime {
    let expires = Jiffies(j.saturating_add(n));
    let bucket = bucket_expiry(expires, Jiffies(j + ahead), DEPTH);
    SimTime(bucket.0.saturating_mul(TICK))
}

/// `CONFIG_HZ`: timer ticks per second. The kernel offers 100, 250, 300 and
/// 1000; Debian's kernels (and the machine the spec was measured on) use 250.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Hz(u32);

impl Hz {
    /// The values `CONFIG_HZ` can take.
    pub const ALLOWED: [u32; 4] = [100, 250, 300, 1000];
    /// 250, the default of Debian's kernels.
    pub const DEFAULT: Hz = Hz(250);

    /// `hz` if the kernel offers it.
    pub const fn new(hz: u32) -> Option<Hz> {
        match hz {
            100 | 250 | 300 | 1000 => Some(Hz(hz)),
            _ => None,
        }
    }

    /// Ticks per second.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl Default for Hz {
    fn default() -> Self {
        Hz::DEFAULT
    }
}

impl fmt::Display for Hz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How TCP timers fire.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TimerMode {
    /// At the expiry of their timer-wheel bucket, as Linux does (§3.1);
    /// timeouts count in whole jiffies.
    #[default]
    Wheel,
    /// At their exact nominal deadline, to the nanosecond; timeouts are not
    /// rounded to jiffies. Shows what the wheel's batching changes.
    Exact,
}

/// A host's timer granularity: its `HZ` and whether its timers go through
/// the wheel. `Copy`; handed to every TCP call that arms a timer.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct TimerModel {
    /// `CONFIG_HZ`.
    pub hz: Hz,
    /// Wheel or exact.
    pub mode: TimerMode,
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

impl TimerModel {
    /// Linux's behaviour at `HZ=250`: the default.
    pub const LINUX: TimerModel = TimerModel {
        hz: Hz::DEFAULT,
        mode: TimerMode::Wheel,
    };
    /// Exact deadlines (the simulator's behaviour before the wheel).
    pub const EXACT: TimerModel = TimerModel {
        hz: Hz::DEFAULT,
        mode: TimerMode::Exact,
    };

    /// A wheel model at `hz`.
    pub const fn wheel(hz: Hz) -> Self {
        TimerModel {
            hz,
            mode: TimerMode::Wheel,
        }
    }

    /// `jiffies` at `t` (jiffy 0 starts at time 0).
    #[inline]
    pub fn jiffies(&self, t: SimTime) -> Jiffies {
        // A tick of a whole number of nanoseconds divides by a constant (a
        // multiply and a shift); HZ=300 takes the exact general path.
        Jiffies(match self.hz.0 {
            250 => t.0 / 4_000_000,
            1000 => t.0 / 1_000_000,
            100 => t.0 / 10_000_000,
            hz => (u128::from(t.0) * u128::from(hz) / NANOS_PER_SEC) as u64,
        })
    }

    /// The first nanosecond of jiffy `j`: the tick at which timers expiring
    /// at `j` run.
    #[inline]
    pub fn jiffy_start(&self, j: Jiffies) -> SimTime {
        let whole = |tick: u64| SimTime(j.0.saturating_mul(tick));
        match self.hz.0 {
            250 => whole(4_000_000),
            1000 => whole(1_000_000),
            100 => whole(10_000_000),
            hz => {
                let ns = (u128::from(j.0) * NANOS_PER_SEC).div_ceil(u128::from(hz));
                SimTime(u64::try_from(ns).unwrap_or(u64::MAX))
            }
        }
    }

    /// A span in jiffies, rounded up (`usecs_to_jiffies`,
    /// `msecs_to_jiffies`): never shorter than asked.
    #[inline]
    pub fn to_jiffies(&self, d: SimDuration) -> Jiffies {
        Jiffies(match self.hz.0 {
            250 => d.0.div_ceil(4_000_000),
            1000 => d.0.div_ceil(1_000_000),
            100 => d.0.div_ceil(10_000_000),
            hz => {
                let ticks = (u128::from(d.0) * u128::from(hz)).div_ceil(NANOS_PER_SEC);
                u64::try_from(ticks).unwrap_or(u64::MAX)
            }
        })
    }

    /// `n` jiffies as a span (truncated to the nanosecond, so that
    /// [`TimerModel::to_jiffies`] gives `n` back).
    #[inline]
    pub fn jiffies_to_duration(&self, n: Jiffies) -> SimDuration {
        SimDuration(self.jiffy_start_floor(n))
    }

    /// `n * 1e9 / HZ` truncated.
    #[inline]
    fn jiffy_start_floor(&self, n: Jiffies) -> u64 {
        match self.hz.0 {
            250 => n.0.saturating_mul(4_000_000),
            1000 => n.0.saturating_mul(1_000_000),
            100 => n.0.saturating_mul(10_000_000),
            hz => {
                let ns = u128::from(n.0) * NANOS_PER_SEC / u128::from(hz);
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
        }
    }

    /// A timeout as the kernel holds it: in the wheel mode, a whole number
    /// of jiffies (rounded up, as `usecs_to_jiffies` rounds an RTO); in the
    /// exact mode, unchanged.
    #[inline]
    pub fn quantize(&self, d: SimDuration) -> SimDuration {
        match self.mode {
            TimerMode::Exact => d,
            TimerMode::Wheel => self.jiffies_to_duration(self.to_jiffies(d)),
        }
    }

    /// [`TimerModel::quantize`] of `us` microseconds (`usecs_to_jiffies`
    /// of an RTO computed in µs).
    #[inline]
    pub fn quantize_us(&self, us: u64) -> SimDuration {
        if self.mode == TimerMode::Exact {
            return SimDuration(us.saturating_mul(1_000));
        }
        if self.hz.0 == 250 {
            return SimDuration(us.div_ceil(4_000).saturating_mul(4_000_000));
        }
        self.quantize_us_other(us)
    }

    /// [`TimerModel::quantize_us`] in the wheel mode at every `HZ` but 250.
    #[inline(never)]
    fn quantize_us_other(&self, us: u64) -> SimDuration {
        match self.hz.0 {
            1000 => SimDuration(us.div_ceil(1_000).saturating_mul(1_000_000)),
            100 => SimDuration(us.div_ceil(10_000).saturating_mul(10_000_000)),
            _ => self.quantize(SimDuration(us.saturating_mul(1_000))),
        }
    }

    /// When a timer armed at `now` with `timeout` fires: in the wheel mode
    /// `mod_timer(timer, jiffies + timeout)` (timeout in jiffies, rounded up)
    /// fires at the start of its bucket's expiry tick ([`calc_wheel_index`]);
    /// in the exact mode at `now + timeout`. Saturates at the end of time.
    #[inline]
    pub fn fire_at(&self, now: SimTime, timeout: SimDuration) -> SimTime {
        match self.mode {
            TimerMode::Exact => now.saturating_add(timeout),
            TimerMode::Wheel => self.wheel_fire(now, timeout, 0),
        }
    }

    /// [`TimerModel::fire_at`] for a timer re-armed inside a timer callback
    /// running at `now`: `expires` counts from `jiffies`, the level from
    /// `base->clk = jiffies + 1` ("while executing timers, base->clk is set
    /// 1 offset ahead of jiffies", `__run_timers`).
    #[inline]
    pub fn rearm_at(&self, now: SimTime, timeout: SimDuration) -> SimTime {
        match self.mode {
            TimerMode::Exact => now.saturating_add(timeout),
            TimerMode::Wheel => self.wheel_fire(now, timeout, 1),
        }
    }

    /// The wheel's firing instant of a timer armed at `now` for `timeout`
    /// when the base's clock is `ahead` ticks past `jiffies`. A tick of a
    /// whole number of nanoseconds (every `HZ` but 300) takes one
    /// monomorphic path.
    #[inline(always)]
    fn wheel_fire(&self, now: SimTime, timeout: SimDuration, ahead: u64) -> SimTime {
        if self.hz.0 == 250 {
            return wheel_fire_whole::<4_000_000, 9>(now, timeout, ahead);
        }
        self.wheel_fire_other(now, timeout, ahead)
    }

    /// [`TimerModel::wheel_fire`] at every `HZ` but the default.
    #[inline(never)]
    fn wheel_fire_other(&self, now: SimTime, timeout: SimDuration, ahead: u64) -> SimTime {
        match self.hz.0 {
            1000 => wheel_fire_whole::<1_000_000, 9>(now, timeout, ahead),
            100 => wheel_fire_whole::<10_000_000, 8>(now, timeout, ahead),
            hz => {
                let j = self.jiffies(now);
                let expires = Jiffies(j.0.saturating_add(self.to_jiffies(timeout).0));
                let clk = Jiffies(j.0 + ahead);
                self.jiffy_start(bucket_expiry(expires, clk, lvl_depth(hz)))
            }
        }
    }

    /// Whether `t` is the start of a jiffy (every wheel firing instant is).
    #[inline]
    pub fn is_tick(&self, t: SimTime) -> bool {
        self.jiffy_start(self.jiffies(t)) == t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> SimTime {
        SimTime(n * 1_000_000)
    }
    const fn secs(n: u64) -> SimDuration {
        SimDuration::from_secs(n)
    }

    #[test]
    fn level_starts_and_granularity_3_1() {
        // §3.1: LVL_START(m) = 63 << 3(m-1): 63, 504, 4032, 32256 jiffies;
        // level n has granularity 8^n.
        assert_eq!(
            [lvl_start(1), lvl_start(2), lvl_start(3), lvl_start(4)],
            [63, 504, 4032, 32256]
        );
        assert_eq!([lvl_gran(0), lvl_gran(1), lvl_gran(2)], [1, 8, 64]);
        assert_eq!((lvl_depth(100), lvl_depth(250), lvl_depth(1000)), (8, 9, 9));
    }

    #[test]
    fn calc_index_rounds_up_by_one_granule_3_1() {
        // bucket_expiry = (floor(expires / 8^n) + 1) * 8^n.
        assert_eq!(calc_index(Jiffies(100), 0).1, Jiffies(101));
        assert_eq!(calc_index(Jiffies(100), 1).1, Jiffies(104));
        assert_eq!(calc_index(Jiffies(96), 1).1, Jiffies(104));
        assert_eq!(calc_index(Jiffies(1000), 2).1, Jiffies(1024));
        // The bucket index wraps within the level's 64 buckets.
        assert_eq!(calc_index(Jiffies(100), 1).0, 64 + (13 & 63));
    }

    #[test]
    fn calc_wheel_index_picks_the_level_by_delta_3_1() {
        let d = lvl_depth(250);
        let clk = Jiffies(1000);
        // delta 62 -> level 0 (exact to one jiffy, +1).
        assert_eq!(calc_wheel_index(Jiffies(1062), clk, d).1, Jiffies(1063));
        // delta 63 -> level 1: rounded up to a multiple of 8.
        assert_eq!(calc_wheel_index(Jiffies(1063), clk, d).1, Jiffies(1064));
        assert_eq!(calc_wheel_index(Jiffies(1064), clk, d).1, Jiffies(1072));
        // delta 504 -> level 2 (64-jiffy granules).
        assert_eq!(calc_wheel_index(Jiffies(1504), clk, d).1, Jiffies(1536));
        // An expiry in the past fires at the current clock.
        assert_eq!(calc_wheel_index(Jiffies(990), clk, d).1, clk);
        // Beyond the wheel's capacity: clamped to WHEEL_TIMEOUT_MAX.
        let max = lvl_start(d) - lvl_gran(d - 1);
        let far = calc_wheel_index(Jiffies(u64::MAX / 4), clk, d).1;
        assert_eq!(far, calc_index(Jiffies(clk.0 + max), d - 1).1);
    }

    #[test]
    fn jiffies_round_trip_at_every_hz() {
        for hz in Hz::ALLOWED {
            let m = TimerModel::wheel(Hz::new(hz).unwrap());
            for j in [0u64, 1, 2, 3, 299, 300, 301, 12_345, 1 << 30] {
                let t = m.jiffy_start(Jiffies(j));
                assert_eq!(m.jiffies(t), Jiffies(j), "hz {hz} j {j}");
                if t.0 > 0 {
                    assert_eq!(m.jiffies(SimTime(t.0 - 1)).0 + 1, j, "hz {hz} j {j}");
                }
                let d = m.jiffies_to_duration(Jiffies(j));
                assert_eq!(m.to_jiffies(d), Jiffies(j), "hz {hz} j {j}");
                assert_eq!(m.quantize(d), d);
            }
        }
        let m = TimerModel::LINUX;
        // usecs_to_jiffies rounds up: 210 ms at HZ=250 is 52.5 -> 53 jiffies.
        assert_eq!(m.to_jiffies(SimDuration::from_millis(210)), Jiffies(53));
        assert_eq!(
            m.quantize(SimDuration::from_millis(210)),
            SimDuration::from_millis(212)
        );
        assert_eq!(
            TimerModel::EXACT.quantize(SimDuration::from_millis(210)),
            SimDuration::from_millis(210)
        );
        assert!(m.is_tick(ms(4)) && !m.is_tick(ms(5)) && m.is_tick(SimTime::ZERO));
        for hz in Hz::ALLOWED {
            for mode in [TimerMode::Wheel, TimerMode::Exact] {
                let m = TimerModel {
                    hz: Hz::new(hz).unwrap(),
                    mode,
                };
                for us in [0u64, 1, 999, 200_050, 3_333_334, 120_000_000] {
                    assert_eq!(
                        m.quantize_us(us),
                        m.quantize(SimDuration::from_micros(us)),
                        "hz {hz} {mode:?} {us}"
                    );
                }
            }
        }
    }

    /// §3.1 at HZ=250: below 252 ms exact to 4 ms (plus the one-jiffy round
    /// up); below 2.016 s, 32 ms buckets; below 16.1 s, 256 ms buckets;
    /// below 129 s, 2.048 s buckets. Never early, at most one granule late.
    #[test]
    fn bucket_sizes_at_hz_250_3_1() {
        let m = TimerModel::LINUX;
        for (timeout_ms, gran_ms) in [
            (200u64, 4u64),
            (248, 4),
            (1_000, 32),
            (2_000, 32),
            (4_000, 256),
            (16_000, 256),
            (32_000, 2_048),
            (120_000, 2_048),
        ] {
            for arm_at in [0u64, 1, 3, 5, 17, 1_234, 99_999] {
                let now = SimTime(arm_at * 1_000_000 + 123);
                let nominal = now + SimDuration::from_millis(timeout_ms);
                let at = m.fire_at(now, SimDuration::from_millis(timeout_ms));
                assert!(
                    at >= nominal,
                    "{timeout_ms} ms armed at {now}: fires early at {at}"
                );
                let late = at - nominal;
                assert!(
                    late <= SimDuration::from_millis(gran_ms + 4),
                    "{timeout_ms} ms armed at {now}: {late} late"
                );
                assert_eq!(at.0 % (gran_ms * 1_000_000), 0, "{timeout_ms} ms: {at}");
            }
        }
        // Exact mode: the nominal deadline itself.
        let now = SimTime(1_234_567);
        assert_eq!(TimerModel::EXACT.fire_at(now, secs(7)), now + secs(7));
    }

    /// A timer re-armed in a callback counts its level from `jiffies + 1`:
    /// 63 jiffies is level 1 from process context, level 0 from a callback.
    #[test]
    fn rearm_in_a_callback_counts_the_level_from_clk_plus_one_3_1() {
        let m = TimerModel::LINUX;
        let now = ms(4 * 100); // jiffy 100
        let d = SimDuration::from_millis(4 * 63);
        assert_eq!(m.fire_at(now, d), ms(4 * 168)); // level 1: (163/8+1)*8
        assert_eq!(m.rearm_at(now, d), ms(4 * 164)); // level 0: 163 + 1
                                                     // Away from a boundary both agree.
        assert_eq!(m.rearm_at(now, secs(1)), m.fire_at(now, secs(1)));
    }

    /// The unrolled levels and the per-HZ paths give exactly the bucket of
    /// the general computation, at every HZ, around every level boundary,
    /// in and out of a callback, and at the end of time.
    #[test]
    fn fast_paths_agree_with_calc_wheel_index_3_1() {
        let general = |m: &TimerModel, now: SimTime, d: SimDuration, ahead: u64| {
            let j = m.jiffies(now);
            let expires = Jiffies(j.0.saturating_add(m.to_jiffies(d).0));
            let (_, b) = calc_wheel_index(expires, Jiffies(j.0 + ahead), lvl_depth(m.hz.0));
            m.jiffy_start(b)
        };
        let mut deltas = vec![0u64, 1, 2, 7, 8, 9, 250, 1_000, 30_000];
        for n in 1..=9 {
            let s = lvl_start(n);
            deltas.extend([s - 2, s - 1, s, s + 1, s + 7]);
        }
        for hz in Hz::ALLOWED {
            let m = TimerModel::wheel(Hz::new(hz).unwrap());
            let tick = m.jiffies_to_duration(Jiffies(1)).0;
            for &dj in &deltas {
                for d in [dj * tick, (dj * tick).saturating_sub(1), dj * tick + 1] {
                    let d = SimDuration(d);
                    for now in [0u64, 1, 3_999_999, 4_000_000, 123_456_789, 1 << 50] {
                        let now = SimTime(now);
                        assert_eq!(m.fire_at(now, d), general(&m, now, d, 0), "{hz} {now} {d}");
                        assert_eq!(m.rearm_at(now, d), general(&m, now, d, 1), "{hz} {now} {d}");
                    }
                }
            }
            let end = SimTime(u64::MAX - 5);
            for d in [SimDuration(0), secs(1), SimDuration(u64::MAX)] {
                assert_eq!(m.fire_at(end, d), general(&m, end, d, 0), "{hz} end {d}");
                assert_eq!(m.rearm_at(end, d), general(&m, end, d, 1), "{hz} end {d}");
            }
        }
    }

    /// Timers armed at different instants for the same nominal timeout fire
    /// together when their expiries share a bucket: SYNs dropped over 100 ms
    /// and retried after 1 s go out at 4 instants 32 ms apart (§3.1).
    #[test]
    fn one_second_timers_armed_over_100ms_share_four_instants_3_1() {
        let m = TimerModel::LINUX;
        let mut instants: Vec<SimTime> = (0..100u64)
            .map(|i| m.fire_at(ms(2_000 + i), secs(1)))
            .collect();
        instants.dedup();
        assert_eq!(instants, vec![ms(3_008), ms(3_040), ms(3_072), ms(3_104)]);
    }
}
