//! A lazily cancelled timer, so that the event queue holds about one entry
//! per entity (socket) however often its timer is re-armed or cancelled.
//!
//! The entity stores a [`Timer`]; the queue stores plain events carrying the
//! entity id. Arming later than an already queued entry, and cancelling, do
//! not touch the queue at all: the entry is re-examined when it pops.
//!
//! # Invariant
//!
//! `queued` is the time of the earliest queue entry that the caller has
//! scheduled for this timer and that has not popped yet (other, later
//! entries may exist: they were superseded by an earlier [`TimerArm::Push`]
//! and are recognised as stale when they pop). Whenever the timer is armed,
//! `queued <= deadline`, so the queue will wake the entity no later than the
//! deadline:
//!
//! ```text
//! deadline = Some(d)  =>  queued = Some(q) with q <= d
//! ```
//!
//! The caller's contract: on [`TimerArm::Push`] and [`TimerFire::Rearm`]
//! schedule exactly one event at the returned time; call
//! [`Timer::on_event`] for every event of this timer that pops.

use crate::time::{SimDuration, SimTime};

/// The grid horizon checks are placed on (see [`horizon_check`]).
pub const HORIZON_GRID: SimDuration = SimDuration::from_millis(1);

/// The instant at which a timer armed at `now` with `horizon` is checked if
/// its deadline is later (see [`Timer::arm_with_horizon`]): `now` rounded
/// down to [`HORIZON_GRID`], plus `horizon`. All timers armed within one
/// grid step share it, so a driver can wake them with one queue event.
/// Never earlier than `now`; a horizon shorter than the grid is not rounded.
#[inline]
pub fn horizon_check(now: SimTime, horizon: SimDuration) -> SimTime {
    let grid = HORIZON_GRID.0;
    if horizon.0 < grid {
        return now.saturating_add(horizon);
    }
    SimTime(now.0 - now.0 % grid).saturating_add(horizon)
}

/// A one-shot timer with lazy cancellation. See the module docs for the
/// invariant.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Timer {
    /// When the timer should fire; `None` when disarmed.
    deadline: Option<SimTime>,
    /// Earliest pending queue entry for this timer.
    queued: Option<SimTime>,
}

/// What the caller must do after [`Timer::arm`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum TimerArm {
    /// Schedule an event for this entity at the given time.
    Push(SimTime),
    /// An entry already queued will wake the entity in time; do nothing.
    AlreadyQueued,
}

/// What the caller must do when an event of this timer pops.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum TimerFire {
    /// The deadline is reached: run the timer's action. The timer is now
    /// disarmed.
    Fire,
    /// The entry was cancelled or superseded: ignore it.
    Stale,
    /// The deadline moved later: schedule an event at the given time again.
    Rearm(SimTime),
}

impl Timer {
    /// A disarmed timer with nothing queued.
    pub const fn new() -> Self {
        Timer {
            deadline: None,
            queued: None,
        }
    }

    /// When the timer will fire, if armed.
    #[inline]
    pub fn deadline(&self) -> Option<SimTime> {
        self.deadline
    }

    /// True if a deadline is set.
    #[inline]
    pub fn is_armed(&self) -> bool {
        self.deadline.is_some()
    }

    /// The time of the earliest queue entry the timer is waiting for.
    #[inline]
    pub fn queued(&self) -> Option<SimTime> {
        self.queued
    }

    /// Arms (or re-arms) the timer to fire at `at`, replacing any previous
    /// deadline. If an entry is already queued at or before `at`, only the
    /// deadline changes ([`TimerArm::AlreadyQueued`]); otherwise the caller
    /// must schedule an event at `at` ([`TimerArm::Push`]).
    #[inline]
    pub fn arm(&mut self, at: SimTime) -> TimerArm {
        self.deadline = Some(at);
        match self.queued {
            Some(q) if q <= at => TimerArm::AlreadyQueued,
            _ => {
                self.queued = Some(at);
                TimerArm::Push(at)
            }
        }
    }

    /// [`Timer::arm`] with a horizon: the queue entry is placed at
    /// `min(at, horizon_check(now, horizon))` (about `now + horizon`, see
    /// [`horizon_check`]); if the timer is still armed when that entry
    /// pops, it re-arms to `at` ([`TimerFire::Rearm`]). The timer fires at
    /// the same time either way. For timers that are almost always cancelled
    /// long before they expire (a SYN timer, an RTO) this keeps their stale
    /// entries in the queue for `horizon` instead of the whole timeout, which
    /// keeps the pending set small.
    #[inline]
    pub fn arm_with_horizon(
        &mut self,
        at: SimTime,
        now: SimTime,
        horizon: SimDuration,
    ) -> TimerArm {
        self.deadline = Some(at);
        let check = at.min(horizon_check(now, horizon));
        match self.queued {
            Some(q) if q <= at => TimerArm::AlreadyQueued,
            _ => {
                self.queued = Some(check);
                TimerArm::Push(check)
            }
        }
    }

    /// Disarms the timer in O(1). The queued entry stays in the queue and
    /// is reported [`TimerFire::Stale`] when it pops, unless the timer was
    /// re-armed in the meantime.
    #[inline]
    pub fn cancel(&mut self) {
        self.deadline = None;
    }

    /// Call when an event scheduled for this timer pops at `now`.
    ///
    /// # Panics
    /// If `now` is later than the earliest queued entry: that entry should
    /// have popped first, so the caller lost an event.
    #[inline]
    pub fn on_event(&mut self, now: SimTime) -> TimerFire {
        match self.queued {
            Some(q) if q == now => {}
            Some(q) => {
                assert!(q > now, "timer entry at {q} was lost (now {now})");
                // An older entry superseded by an earlier Push that has
                // already popped.
                return TimerFire::Stale;
            }
            None => return TimerFire::Stale,
        }
        self.queued = None;
        match self.deadline {
            None => TimerFire::Stale,
            Some(d) if d <= now => {
                self.deadline = None;
                TimerFire::Fire
            }
            Some(d) => {
                self.queued = Some(d);
                TimerFire::Rearm(d)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::EventQueue;

    const fn t(ns: u64) -> SimTime {
        SimTime(ns)
    }

    #[test]
    fn arm_fire() {
        let mut timer = Timer::new();
        assert!(!timer.is_armed());
        assert_eq!(timer.arm(t(10)), TimerArm::Push(t(10)));
        assert!(timer.is_armed());
        assert_eq!(timer.deadline(), Some(t(10)));
        assert_eq!(timer.on_event(t(10)), TimerFire::Fire);
        assert!(!timer.is_armed());
        assert_eq!(timer, Timer::new());
    }

    #[test]
    fn arm_earlier_than_queued_pushes() {
        let mut timer = Timer::new();
        assert_eq!(timer.arm(t(10)), TimerArm::Push(t(10)));
        assert_eq!(timer.arm(t(5)), TimerArm::Push(t(5)));
        assert_eq!(timer.on_event(t(5)), TimerFire::Fire);
        // The superseded entry at 10 is stale.
        assert_eq!(timer.on_event(t(10)), TimerFire::Stale);
    }

    #[test]
    fn arm_later_is_already_queued_then_rearms() {
        let mut timer = Timer::new();
        assert_eq!(timer.arm(t(10)), TimerArm::Push(t(10)));
        assert_eq!(timer.arm(t(30)), TimerArm::AlreadyQueued);
        assert_eq!(
            timer.arm(t(10)),
            TimerArm::AlreadyQueued,
            "same time as queued"
        );
        assert_eq!(timer.arm(t(20)), TimerArm::AlreadyQueued);
        assert_eq!(timer.on_event(t(10)), TimerFire::Rearm(t(20)));
        assert_eq!(timer.deadline(), Some(t(20)));
        assert_eq!(timer.on_event(t(20)), TimerFire::Fire);
    }

    #[test]
    fn cancel_makes_entry_stale() {
        let mut timer = Timer::new();
        assert_eq!(timer.arm(t(10)), TimerArm::Push(t(10)));
        timer.cancel();
        assert!(!timer.is_armed());
        assert_eq!(timer.on_event(t(10)), TimerFire::Stale);
        assert_eq!(timer, Timer::new());
    }

    #[test]
    fn rearm_after_cancel_reuses_entry() {
        let mut timer = Timer::new();
        assert_eq!(timer.arm(t(10)), TimerArm::Push(t(10)));
        timer.cancel();
        assert_eq!(timer.arm(t(15)), TimerArm::AlreadyQueued);
        assert_eq!(timer.on_event(t(10)), TimerFire::Rearm(t(15)));
        assert_eq!(timer.on_event(t(15)), TimerFire::Fire);

        // Re-arm after cancel at an earlier time needs a new entry.
        assert_eq!(timer.arm(t(40)), TimerArm::Push(t(40)));
        timer.cancel();
        assert_eq!(timer.arm(t(30)), TimerArm::Push(t(30)));
        assert_eq!(timer.on_event(t(30)), TimerFire::Fire);
        assert_eq!(timer.on_event(t(40)), TimerFire::Stale);
    }

    #[test]
    fn two_queued_entries_older_one_stale() {
        let mut timer = Timer::new();
        assert_eq!(timer.arm(t(50)), TimerArm::Push(t(50)));
        assert_eq!(timer.arm(t(20)), TimerArm::Push(t(20)));
        assert_eq!(timer.on_event(t(20)), TimerFire::Fire);
        // Re-armed while the old entry at 50 is still in the queue.
        assert_eq!(timer.arm(t(70)), TimerArm::Push(t(70)));
        assert_eq!(
            timer.on_event(t(50)),
            TimerFire::Stale,
            "old entry must not fire early"
        );
        assert_eq!(timer.deadline(), Some(t(70)));
        assert_eq!(timer.on_event(t(70)), TimerFire::Fire);
    }

    #[test]
    fn duplicate_entries_at_same_time_fire_once() {
        let mut timer = Timer::new();
        assert_eq!(timer.arm(t(50)), TimerArm::Push(t(50)));
        assert_eq!(timer.arm(t(20)), TimerArm::Push(t(20)));
        assert_eq!(timer.on_event(t(20)), TimerFire::Fire);
        assert_eq!(timer.arm(t(50)), TimerArm::Push(t(50)));
        assert_eq!(timer.on_event(t(50)), TimerFire::Fire);
        assert_eq!(timer.on_event(t(50)), TimerFire::Stale);
    }

    #[test]
    #[should_panic(expected = "was lost")]
    fn missed_entry_panics() {
        let mut timer = Timer::new();
        assert_eq!(timer.arm(t(10)), TimerArm::Push(t(10)));
        let _ = timer.on_event(t(11));
    }

    /// Drive timers through a real queue with random arm/cancel and check
    /// that each fires exactly at its final deadline, and that the queue
    /// holds at most a few entries per timer.
    #[test]
    fn randomized_against_queue() {
        use rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        const N: usize = 16;
        let mut timers = [Timer::new(); N];
        let mut q: EventQueue<usize> = EventQueue::new();
        let mut fired = 0;
        for _ in 0..20_000 {
            let now = q.now();
            let id = (rng.next_u32() as usize) % N;
            match rng.next_u32() % 4 {
                0 => timers[id].cancel(),
                _ => {
                    let at = now + crate::SimDuration(u64::from(rng.next_u32() % 100));
                    if let TimerArm::Push(at) = timers[id].arm(at) {
                        q.schedule(at, id);
                    }
                }
            }
            if rng.next_u32() % 2 == 0 {
                if let Some((now, id)) = q.pop() {
                    let deadline = timers[id].deadline();
                    match timers[id].on_event(now) {
                        TimerFire::Fire => {
                            assert_eq!(deadline, Some(now));
                            fired += 1;
                        }
                        TimerFire::Rearm(at) => {
                            assert!(at > now);
                            q.schedule(at, id);
                        }
                        TimerFire::Stale => {
                            assert!(deadline.map_or(true, |d| d > now));
                        }
                    }
                }
            }
            // No armed timer may have its deadline in the past.
            for timer in &timers {
                if let Some(d) = timer.deadline() {
                    assert!(d >= q.now());
                    assert!(timer.queued().is_some_and(|qt| qt <= d));
                }
            }
        }
        assert!(fired > 1000, "fired {fired}");
    }

    #[test]
    fn horizon_puts_the_entry_early_and_rearms_to_the_deadline() {
        let h = SimDuration(64);
        let mut tm = Timer::new();
        // Entry at now + horizon, deadline unchanged.
        assert_eq!(tm.arm_with_horizon(t(1000), t(0), h), TimerArm::Push(t(64)));
        assert_eq!(tm.deadline(), Some(t(1000)));
        // An earlier re-arm that is still after the entry: nothing new queued.
        assert_eq!(
            tm.arm_with_horizon(t(200), t(10), h),
            TimerArm::AlreadyQueued
        );
        // The entry pops early: re-arm to the deadline, then fire on time.
        assert_eq!(tm.on_event(t(64)), TimerFire::Rearm(t(200)));
        assert_eq!(tm.on_event(t(200)), TimerFire::Fire);
        // Cancelled before the horizon: the early entry is simply stale.
        assert_eq!(
            tm.arm_with_horizon(t(2000), t(300), h),
            TimerArm::Push(t(364))
        );
        tm.cancel();
        assert_eq!(tm.on_event(t(364)), TimerFire::Stale);
        // A deadline inside the horizon is queued at the deadline itself.
        assert_eq!(
            tm.arm_with_horizon(t(420), t(400), h),
            TimerArm::Push(t(420))
        );
        assert_eq!(tm.on_event(t(420)), TimerFire::Fire);
    }

    /// Horizon checks land on the grid: timers armed anywhere within one
    /// millisecond share one check instant, never before they were armed
    /// and never after their deadline; a deadline before the check is
    /// queued exactly.
    #[test]
    fn horizon_checks_share_a_grid_instant() {
        let ms = |n: u64| SimTime(n * 1_000_000);
        let h = SimDuration::from_millis(64);
        assert_eq!(horizon_check(ms(5), h), ms(69));
        assert_eq!(horizon_check(SimTime(5_999_999), h), ms(69));
        assert_eq!(horizon_check(ms(6), h), ms(70));
        let mut a = Timer::new();
        let mut b = Timer::new();
        assert_eq!(
            a.arm_with_horizon(ms(1005), ms(5), h),
            TimerArm::Push(ms(69))
        );
        assert_eq!(
            b.arm_with_horizon(SimTime(1_005_900_000), SimTime(5_900_000), h),
            TimerArm::Push(ms(69))
        );
        assert_eq!(a.on_event(ms(69)), TimerFire::Rearm(ms(1005)));
        // Deadline inside the horizon but after the grid-rounded check: the
        // check comes first and re-arms to the exact deadline.
        let mut c = Timer::new();
        let now = SimTime(7_500_000);
        assert_eq!(
            c.arm_with_horizon(SimTime(71_200_000), now, h),
            TimerArm::Push(ms(71))
        );
        assert_eq!(c.on_event(ms(71)), TimerFire::Rearm(SimTime(71_200_000)));
        // Deadline before the check: queued at the deadline itself.
        let mut d = Timer::new();
        assert_eq!(
            d.arm_with_horizon(SimTime(70_500_000), now, h),
            TimerArm::Push(SimTime(70_500_000))
        );
    }
}
