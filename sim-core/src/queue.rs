//! The event queue: a priority queue of `(SimTime, seq, E)` that pops the
//! earliest event first and breaks ties in insertion order (FIFO).
//!
//! Implementation: an implicit 4-ary min-heap over one `Vec` of entries, each
//! holding a compact key (`time`, `seq`, compared as one `u128`) and the event
//! inline. A 4-ary heap is half as deep as a binary one and its four children
//! sit next to each other in memory; `pop` uses the "bottom-up" variant (walk
//! the hole down to a leaf along the smaller children, then sift the last
//! element up), which needs about one comparison per level instead of two.
//! No operation allocates once the `Vec` has grown to the high-water mark.
//!
//! Cancellation is not a queue operation: entities keep a [`crate::Timer`]
//! and stale entries are dropped when they pop (lazy cancellation), so the
//! queue holds about one entry per entity.

use crate::time::SimTime;

const ARITY: usize = 4;

#[derive(Debug, Clone)]
struct Entry<E> {
    time: SimTime,
    seq: u64,
    event: E,
}

impl<E> Entry<E> {
    /// The total order: time first, then insertion sequence. Packed into one
    /// `u128` so that the comparison compiles to a branch-free pair of
    /// word compares.
    #[inline(always)]
    fn key(&self) -> u128 {
        (u128::from(self.time.0) << 64) | u128::from(self.seq)
    }
}

/// A min-heap of events keyed by `(time, insertion sequence)`.
///
/// Invariants (asserted): time never goes backwards — an event cannot be
/// scheduled before [`EventQueue::now`], and popped times are non-decreasing.
#[derive(Debug, Clone)]
pub struct EventQueue<E> {
    heap: Vec<Entry<E>>,
    now: SimTime,
    scheduled_total: u64,
    len_max: usize,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty queue with room for `capacity` pending events before it
    /// allocates.
    pub fn with_capacity(capacity: usize) -> Self {
        EventQueue {
            heap: Vec::with_capacity(capacity),
            now: SimTime::ZERO,
            scheduled_total: 0,
            len_max: 0,
        }
    }

    /// The time of the last popped event ([`SimTime::ZERO`] initially).
    #[inline]
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Number of pending events.
    #[inline]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True if no event is pending.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Number of [`EventQueue::schedule`] calls so far.
    #[inline]
    pub fn scheduled_total(&self) -> u64 {
        self.scheduled_total
    }

    /// The largest number of pending events seen so far (high-water mark).
    #[inline]
    pub fn len_max(&self) -> usize {
        self.len_max
    }

    /// The time of the earliest pending event.
    #[inline]
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.first().map(|e| e.time)
    }

    /// Schedules `event` at `at`. Events at the same time pop in the order
    /// they were scheduled.
    ///
    /// # Panics
    /// If `at < self.now()`: time never goes backwards.
    #[inline]
    pub fn schedule(&mut self, at: SimTime, event: E) {
        assert!(
            at >= self.now,
            "event scheduled in the past: at {at}, now {}",
            self.now
        );
        let seq = self.scheduled_total;
        self.scheduled_total += 1;
        self.heap.push(Entry {
            time: at,
            seq,
            event,
        });
        self.len_max = self.len_max.max(self.heap.len());
        self.sift_up(self.heap.len() - 1);
    }

    /// Removes and returns the earliest event, advancing [`EventQueue::now`]
    /// to its time.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let last = self.heap.pop()?;
        let top = if self.heap.is_empty() {
            last
        } else {
            self.replace_root(last)
        };
        assert!(
            top.time >= self.now,
            "event queue time went backwards: {} < {}",
            top.time,
            self.now
        );
        self.now = top.time;
        Some((top.time, top.event))
    }

    /// Removes every pending event; `now` and the counters are kept.
    pub fn clear(&mut self) {
        self.heap.clear();
    }

    /// Moves the element at `pos` up until its parent is not larger.
    #[inline]
    fn sift_up(&mut self, pos: usize) {
        assert!(pos < self.heap.len());
        let base = self.heap.as_mut_ptr();
        // SAFETY: `pos < len`; the element at `pos` is read out, leaving a
        // hole that moves up through valid indices (parents of valid
        // indices) and is filled with the element at the end. No user code
        // runs in between (keys are plain integers), so nothing can panic
        // while the hole exists.
        unsafe {
            let elem = core::ptr::read(base.add(pos));
            let hole = Self::sift_up_hole(base, pos, elem.key());
            core::ptr::write(base.add(hole), elem);
        }
    }

    /// Moves the hole at `pos` up past every ancestor with a larger key
    /// and returns its final position.
    ///
    /// # Safety
    /// `base` points to a heap with at least `pos + 1` elements, of which
    /// `pos` is a hole (logically uninitialised).
    #[inline(always)]
    unsafe fn sift_up_hole(base: *mut Entry<E>, mut pos: usize, key: u128) -> usize {
        while pos > 0 {
            let parent = (pos - 1) / ARITY;
            // SAFETY: `parent < pos`, both in bounds; `parent` is not the hole.
            unsafe {
                if (*base.add(parent)).key() <= key {
                    break;
                }
                core::ptr::copy_nonoverlapping(base.add(parent), base.add(pos), 1);
            }
            pos = parent;
        }
        pos
    }

    /// Bottom-up deletion: returns the root and puts `last` (just removed
    /// from the end) in its place. The hole left by the root is carried down
    /// along the path of smallest children to a leaf, then `last` is sifted
    /// up from there. `last` usually belongs near the bottom, so this saves
    /// the per-level comparison against it.
    #[inline]
    fn replace_root(&mut self, last: Entry<E>) -> Entry<E> {
        let len = self.heap.len();
        assert!(len > 0);
        let base = self.heap.as_mut_ptr();
        // SAFETY: every index touched is `< len`. The root is read out,
        // leaving a hole that moves down to a leaf (each step copies a
        // child into the hole) and then up; `last` fills it. Only integer
        // comparisons run meanwhile, so nothing can panic with a hole.
        unsafe {
            let top = core::ptr::read(base);
            let mut pos = 0;
            loop {
                let first = ARITY * pos + 1;
                let best = if first + ARITY <= len {
                    // All four children present: a branch-light tournament.
                    let k0 = (*base.add(first)).key();
                    let k1 = (*base.add(first + 1)).key();
                    let k2 = (*base.add(first + 2)).key();
                    let k3 = (*base.add(first + 3)).key();
                    let (i01, k01) = if k1 < k0 {
                        (first + 1, k1)
                    } else {
                        (first, k0)
                    };
                    let (i23, k23) = if k3 < k2 {
                        (first + 3, k3)
                    } else {
                        (first + 2, k2)
                    };
                    if k23 < k01 {
                        i23
                    } else {
                        i01
                    }
                } else if first < len {
                    let mut best = first;
                    let mut best_key = (*base.add(first)).key();
                    for child in first + 1..len {
                        let k = (*base.add(child)).key();
                        if k < best_key {
                            best = child;
                            best_key = k;
                        }
                    }
                    best
                } else {
                    break;
                };
                core::ptr::copy_nonoverlapping(base.add(best), base.add(pos), 1);
                pos = best;
            }
            let hole = Self::sift_up_hole(base, pos, last.key());
            core::ptr::write(base.add(hole), last);
            top
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{RngCore, SeedableRng};

    #[test]
    fn earliest_first() {
        let mut q = EventQueue::new();
        for &t in &[50u64, 10, 40, 20, 30] {
            q.schedule(SimTime(t), t);
        }
        assert_eq!(q.peek_time(), Some(SimTime(10)));
        let order: Vec<u64> = core::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, vec![10, 20, 30, 40, 50]);
        assert_eq!(q.now(), SimTime(50));
        assert_eq!(q.scheduled_total(), 5);
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn ties_pop_in_insertion_order() {
        let mut q = EventQueue::new();
        // Many events at t=7 interleaved with events at other times; the
        // payload is (time, global insertion counter).
        let mut counter = 0u32;
        let mut push = |q: &mut EventQueue<(u64, u32)>, t: u64| {
            q.schedule(SimTime(t), (t, counter));
            counter += 1;
        };
        for i in 0..200u64 {
            push(&mut q, 7);
            push(&mut q, i % 13);
            push(&mut q, 100 - i % 5);
        }
        let mut last: Option<(u64, u32)> = None;
        let mut at_seven = 0;
        while let Some((t, (tag, n))) = q.pop() {
            assert_eq!(t.0, tag);
            if let Some(prev) = last {
                assert!(prev < (tag, n), "{prev:?} popped before ({tag},{n})");
            }
            last = Some((tag, n));
            at_seven += usize::from(tag == 7);
        }
        assert_eq!(at_seven, 200 + (0..200).filter(|i| i % 13 == 7).count());
    }

    #[test]
    fn schedule_at_now_is_allowed() {
        let mut q = EventQueue::new();
        q.schedule(SimTime(5), 'a');
        assert_eq!(q.pop(), Some((SimTime(5), 'a')));
        q.schedule(SimTime(5), 'b');
        assert_eq!(q.pop(), Some((SimTime(5), 'b')));
    }

    #[test]
    #[should_panic(expected = "scheduled in the past")]
    fn scheduling_in_the_past_panics() {
        let mut q = EventQueue::new();
        q.schedule(SimTime(10), ());
        q.pop();
        q.schedule(SimTime(9), ());
    }

    /// Events with destructors are moved, never duplicated or leaked, by
    /// the hole-based sifting.
    #[test]
    fn owned_events_are_neither_leaked_nor_double_dropped() {
        let token = std::rc::Rc::new(());
        let mut q = EventQueue::new();
        for i in 0..1_000u64 {
            q.schedule(SimTime((i * 7919) % 1_000), (i, std::rc::Rc::clone(&token)));
        }
        for _ in 0..500 {
            let (_, (_, rc)) = q.pop().unwrap();
            drop(rc);
        }
        assert_eq!(std::rc::Rc::strong_count(&token), 501);
        drop(q);
        assert_eq!(std::rc::Rc::strong_count(&token), 1);
    }

    /// Randomized comparison against a reference model: a Vec sorted by
    /// (time, seq).
    #[test]
    fn matches_reference_model() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        for round in 0..50 {
            let mut q = EventQueue::new();
            let mut model: Vec<(u64, u64, u32)> = Vec::new();
            let mut seq = 0u64;
            let mut now = 0u64;
            let steps = 2_000 + round * 37;
            for id in 0..steps as u32 {
                let op = rng.next_u32() % 10;
                if op < 6 || model.is_empty() {
                    // Small time range to force many ties.
                    let at = now + u64::from(rng.next_u32() % 16);
                    q.schedule(SimTime(at), id);
                    model.push((at, seq, id));
                    seq += 1;
                } else {
                    model.sort_unstable();
                    let (t, _, e) = model.remove(0);
                    assert_eq!(q.pop(), Some((SimTime(t), e)));
                    now = t;
                }
                assert_eq!(q.len(), model.len());
                assert_eq!(q.peek_time().map(|t| t.0), model.iter().map(|m| m.0).min());
            }
            model.sort_unstable();
            for (t, _, e) in model {
                assert_eq!(q.pop(), Some((SimTime(t), e)));
            }
            assert!(q.is_empty());
        }
    }
}
