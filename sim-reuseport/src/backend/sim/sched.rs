//! The schedule: the `sim-core` event queue with the lanes that keep its
//! heap small, and the batched horizon checks of TCP timers.
//!
//! Lanes (see `sim_core::queue`) are a hint and never change the order:
//! events pop by (time, order of scheduling) whichever lane holds them. One
//! lane per (source, destination) host pair carries packets, one carries the
//! timeline, one the horizon batches, and one per distinct delay carries
//! timers armed with that delay; anything else goes to the heap.

use rustc_hash::FxHashMap;
use sim_core::{EventQueue, HostId, SimDuration, SimTime};
use std::collections::VecDeque;

/// The event queue of a run over events `E`; it knows nothing of what an
/// event means. `batch` is the event that stands for a horizon batch in the
/// queue: when it pops, the caller takes the batch with [`Sched::take_batch`].
pub(super) struct Sched<E> {
    queue: EventQueue<E>,
    hosts: u32,
    horizon: HorizonBatches<E>,
    batch: E,
    delays: FxHashMap<u64, u32>,
    /// The first few delays seen (delay ns, lane), scanned before `delays`:
    /// most runs use a handful (arrival interval, service time, timers).
    hot_delays: Vec<(u64, u32)>,
}

/// TCP timers' horizon checks (`sim_core::horizon_check`), batched: every
/// timer armed within one grid step is checked at the same instant, so one
/// queue event wakes them all instead of one event each. Nearly all of
/// them belong to sockets that are gone or timers already cancelled by
/// then, and the check is cheap.
struct HorizonBatches<E> {
    /// The check instant of the newest batch.
    newest: Option<SimTime>,
    /// Timer events by batch, oldest first.
    batches: VecDeque<Vec<E>>,
    /// Emptied batches for reuse.
    spare: Vec<Vec<E>>,
}

/// Most delay lanes; timers with other delays go to the heap.
const MAX_DELAY_LANES: usize = 1024;

impl<E: Copy> Sched<E> {
    /// An empty schedule for a network of `hosts` hosts.
    pub(super) fn new(hosts: usize, batch: E) -> Self {
        Sched {
            queue: EventQueue::with_capacity(1024),
            hosts: hosts as u32,
            horizon: HorizonBatches {
                newest: None,
                batches: VecDeque::new(),
                spare: Vec::new(),
            },
            batch,
            delays: FxHashMap::default(),
            hot_delays: Vec::new(),
        }
    }

    /// The time of the earliest pending event.
    #[inline]
    pub(super) fn peek_time(&self) -> Option<SimTime> {
        self.queue.peek_time()
    }

    /// Removes the earliest event.
    #[inline]
    pub(super) fn pop(&mut self) -> Option<(SimTime, E)> {
        self.queue.pop()
    }

    /// Schedules `ev` at `at` in the heap (a one-off time).
    #[inline]
    pub(super) fn schedule(&mut self, at: SimTime, ev: E) {
        self.queue.schedule(at, ev);
    }

    /// Schedules a timeline event; the timeline is scheduled in time order.
    pub(super) fn schedule_timeline(&mut self, at: SimTime, ev: E) {
        let lane = self.timeline_lane();
        self.queue.schedule_in_lane(at, lane, ev);
    }

    /// Schedules the arrival of a packet sent from `src` to `dst`.
    #[inline]
    pub(super) fn schedule_path(&mut self, at: SimTime, src: HostId, dst: HostId, ev: E) {
        let lane = src.0 * self.hosts + dst.0;
        self.queue.schedule_in_lane(at, lane, ev);
    }

    /// Schedules `ev` at `at`, armed at `now` with the delay `at - now`.
    #[inline]
    pub(super) fn schedule_timer(&mut self, now: SimTime, at: SimTime, ev: E) {
        match self.delay_lane(at - now) {
            Some(lane) => self.queue.schedule_in_lane(at, lane, ev),
            None => self.queue.schedule(at, ev),
        }
    }

    /// Schedules a TCP timer's event: at its horizon check
    /// (`sim_core::horizon_check` with `sim_tcp::TIMER_HORIZON`), it joins
    /// the batch of that instant; otherwise like [`Sched::schedule_timer`].
    #[inline]
    pub(super) fn schedule_tcp_timer(&mut self, now: SimTime, at: SimTime, ev: E) {
        if at != sim_core::horizon_check(now, sim_tcp::TIMER_HORIZON) {
            return self.schedule_timer(now, at, ev);
        }
        let batches = &mut self.horizon;
        if batches.newest == Some(at) {
            batches.batches.back_mut().expect("newest batch").push(ev);
        } else {
            // Check instants grow with `now`: the batches stay in order.
            batches.newest = Some(at);
            let mut batch = batches.spare.pop().unwrap_or_default();
            batch.push(ev);
            batches.batches.push_back(batch);
            let lane = self.horizon_lane();
            self.queue.schedule_in_lane(at, lane, self.batch);
        }
    }

    /// The oldest horizon batch, due now (its `batch` event popped), in the
    /// order its timers were armed. Give it back with [`Sched::recycle_batch`].
    pub(super) fn take_batch(&mut self) -> Vec<E> {
        self.horizon
            .batches
            .pop_front()
            .expect("a batch per batch event")
    }

    /// Returns an emptied batch for reuse.
    pub(super) fn recycle_batch(&mut self, mut batch: Vec<E>) {
        batch.clear();
        self.horizon.spare.push(batch);
    }

    /// The lane of the timeline, right after the path lanes.
    fn timeline_lane(&self) -> u32 {
        self.hosts * self.hosts
    }

    /// The lane of the horizon batches (the delay lanes follow it).
    fn horizon_lane(&self) -> u32 {
        self.hosts * self.hosts + 1
    }

    fn delay_lane(&mut self, d: SimDuration) -> Option<u32> {
        const HOT: usize = 8;
        let ns = d.as_nanos();
        if let Some(&(_, l)) = self.hot_delays.iter().find(|&&(x, _)| x == ns) {
            return Some(l);
        }
        if let Some(&l) = self.delays.get(&ns) {
            return Some(l);
        }
        let known = self.hot_delays.len() + self.delays.len();
        if known >= MAX_DELAY_LANES {
            return None;
        }
        let l = self.horizon_lane() + 1 + known as u32;
        if self.hot_delays.len() < HOT {
            self.hot_delays.push((ns, l));
        } else {
            self.delays.insert(ns, l);
        }
        Some(l)
    }
}
