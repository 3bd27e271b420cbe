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
//! Lanes: a caller that knows a stream of events is scheduled in
//! non-decreasing time order (packets on one path, timers armed with one
//! fixed delay) can put it in a lane with [`EventQueue::schedule_in_lane`].
//! A lane is a FIFO; only its head sits in the heap. The pop order is
//! exactly the same `(time, seq)` order as without lanes — a lane's head is
//! its minimum because times and sequence numbers both grow along it — but
//! the heap stays small and cache-resident however many events are pending.
//! An event that would break a lane's order goes to the heap instead, so a
//! lane is a hint and never changes behaviour.
//!
//! A lane is a [`ChunkedFifo`]: a ring buffer would cycle through its whole
//! high-water capacity (after a load peak, megabytes), and every push would
//! land on a cold cache line.
//!
//! Cancellation is not a queue operation: entities keep a [`crate::Timer`]
//! and stale entries are dropped when they pop (lazy cancellation), so the
//! queue holds about one entry per entity.

use crate::fifo::{ChunkPool, ChunkedFifo};
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

/// The 4-ary min-heap under [`EventQueue`], keyed by `(time, seq)`.
#[derive(Debug, Clone)]
struct Heap<E> {
    heap: Vec<Entry<E>>,
    now: SimTime,
}

impl<E> Heap<E> {
    fn with_capacity(capacity: usize) -> Self {
        Heap {
            heap: Vec::with_capacity(capacity),
            now: SimTime::ZERO,
        }
    }

    /// The time of the earliest pending event.
    #[inline]
    fn peek_time(&self) -> Option<SimTime> {
        self.heap.first().map(|e| e.time)
    }

    /// Pushes `event` with the key `(at, seq)`.
    #[inline]
    fn push_keyed(&mut self, at: SimTime, seq: u64, event: E) {
        self.heap.push(Entry {
            time: at,
            seq,
            event,
        });
        self.sift_up(self.heap.len() - 1);
    }

    /// Replaces the root by `(at, seq, event)` and restores the heap order.
    #[inline]
    fn replace_top(&mut self, at: SimTime, seq: u64, event: E) {
        // Top-down: the heap under lanes is small (one head per lane plus a
        // few direct events), and the new key is often still near the top.
        let key = (u128::from(at.0) << 64) | u128::from(seq);
        self.heap[0] = Entry {
            time: at,
            seq,
            event,
        };
        let len = self.heap.len();
        let mut pos = 0;
        loop {
            let first = ARITY * pos + 1;
            if first >= len {
                break;
            }
            let end = (first + ARITY).min(len);
            let mut best = first;
            let mut best_key = self.heap[first].key();
            for child in first + 1..end {
                let k = self.heap[child].key();
                if k < best_key {
                    best = child;
                    best_key = k;
                }
            }
            if best_key >= key {
                break;
            }
            self.heap.swap(pos, best);
            pos = best;
        }
    }

    /// Removes and returns the earliest entry.
    #[inline]
    fn pop(&mut self) -> Option<(SimTime, E)> {
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

enum Item<E> {
    Direct(E),
    Lane(u32),
}

/// The event queue: pops the earliest event first; ties in insertion order.
///
/// Invariants (asserted): time never goes backwards — an event cannot be
/// scheduled before [`EventQueue::now`], and popped times are non-decreasing.
pub struct EventQueue<E> {
    heap: Heap<Item<E>>,
    lanes: Vec<ChunkedFifo<Entry<E>>>,
    /// Emptied lane chunks (see the module docs).
    spare_chunks: ChunkPool<Entry<E>>,
    now: SimTime,
    seq: u64,
    len: usize,
    len_max: usize,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> std::fmt::Debug for EventQueue<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventQueue")
            .field("now", &self.now)
            .field("len", &self.len)
            .field("lanes", &self.lanes.len())
            .finish()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty queue with room for `capacity` heap entries before it allocates.
    pub fn with_capacity(capacity: usize) -> Self {
        EventQueue {
            heap: Heap::with_capacity(capacity),
            lanes: Vec::new(),
            spare_chunks: ChunkPool::default(),
            now: SimTime::ZERO,
            seq: 0,
            len: 0,
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
        self.len
    }

    /// True if no event is pending.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of events scheduled so far.
    #[inline]
    pub fn scheduled_total(&self) -> u64 {
        self.seq
    }

    /// The largest number of pending events seen so far (high-water mark).
    #[inline]
    pub fn len_max(&self) -> usize {
        self.len_max
    }

    /// The time of the earliest pending event.
    #[inline]
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek_time()
    }

    /// Entries in the heap proper (direct events plus one head per
    /// non-empty lane); the rest wait in lanes.
    #[inline]
    pub fn heap_len(&self) -> usize {
        self.heap.heap.len()
    }

    #[inline]
    fn next_seq(&mut self, at: SimTime) -> u64 {
        assert!(
            at >= self.now,
            "event scheduled in the past: at {at}, now {}",
            self.now
        );
        let seq = self.seq;
        self.seq += 1;
        self.len += 1;
        self.len_max = self.len_max.max(self.len);
        seq
    }

    /// Schedules `event` at `at`. Events at the same time pop in the order
    /// they were scheduled.
    ///
    /// # Panics
    /// If `at < self.now()`: time never goes backwards.
    #[inline]
    pub fn schedule(&mut self, at: SimTime, event: E) {
        let seq = self.next_seq(at);
        self.heap.push_keyed(at, seq, Item::Direct(event));
    }

    /// Schedules `event` at `at` through lane `lane` (see the module docs).
    /// The pop order is the same as with [`EventQueue::schedule`].
    ///
    /// # Panics
    /// If `at < self.now()`.
    #[inline(always)]
    pub fn schedule_in_lane(&mut self, at: SimTime, lane: u32, event: E) {
        let seq = self.next_seq(at);
        let i = lane as usize;
        if i >= self.lanes.len() {
            self.lanes.resize_with(i + 1, ChunkedFifo::default);
        }
        let q = &mut self.lanes[i];
        match q.back().map(|e| e.time) {
            Some(last) if last > at => {
                self.heap.push_keyed(at, seq, Item::Direct(event));
            }
            _ => {
                if q.is_empty() {
                    self.heap.push_keyed(at, seq, Item::Lane(lane));
                }
                q.push_back(
                    Entry {
                        time: at,
                        seq,
                        event,
                    },
                    &mut self.spare_chunks,
                );
            }
        }
    }

    /// Removes and returns the earliest event, advancing [`EventQueue::now`]
    /// to its time.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let lane = match self.heap.heap.first()?.event {
            Item::Lane(lane) => lane,
            Item::Direct(_) => {
                let (time, item) = self.heap.pop().expect("non-empty heap");
                let Item::Direct(event) = item else {
                    unreachable!("the root was a direct event")
                };
                return Some(self.advance(time, event));
            }
        };
        let q = &mut self.lanes[lane as usize];
        let head = q
            .pop_front(&mut self.spare_chunks)
            .expect("a lane in the heap is not empty");
        match q.front() {
            // The lane's next event replaces its head in place: one sift
            // instead of a pop and a push.
            Some(next) => {
                let (t, s) = (next.time, next.seq);
                self.heap.replace_top(t, s, Item::Lane(lane));
            }
            None => {
                self.heap.pop();
            }
        }
        Some(self.advance(head.time, head.event))
    }

    #[inline]
    fn advance(&mut self, time: SimTime, event: E) -> (SimTime, E) {
        assert!(
            time >= self.now,
            "event queue time went backwards: {time} < {}",
            self.now
        );
        self.now = time;
        self.len -= 1;
        (time, event)
    }

    /// Removes every pending event; `now` and the counters are kept.
    pub fn clear(&mut self) {
        self.heap = Heap::with_capacity(0);
        self.lanes.clear();
        self.spare_chunks.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod lane_tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    /// Replays one random script of schedules and pops, with or without lanes.
    fn script(round: u64, use_lanes: bool) -> Vec<(u64, u64)> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(round);
        let mut q = EventQueue::new();
        let mut popped = Vec::new();
        for seq in 0..3000u64 {
            let r = rng.next_u32();
            let lane = rng.next_u32() % 4;
            let delay = u64::from(rng.next_u32() % 50);
            if r % 3 == 0 && !q.is_empty() {
                let (t, e) = q.pop().unwrap();
                popped.push((t.0, e));
                continue;
            }
            let at = SimTime(q.now().0 + delay);
            if use_lanes && r % 3 == 1 {
                q.schedule_in_lane(at, lane, seq);
            } else {
                q.schedule(at, seq);
            }
        }
        while let Some((t, e)) = q.pop() {
            popped.push((t.0, e));
        }
        popped
    }

    /// Lanes never change the pop order: a random mix of direct and lane
    /// scheduling (many lane pushes are out of order and must fall back to
    /// the heap) pops exactly as the heap alone does.
    #[test]
    fn lanes_pop_in_the_same_order_as_the_heap_alone() {
        for round in 0..50 {
            let with = script(round, true);
            assert!(with.len() > 1000);
            assert_eq!(with, script(round, false), "round {round}");
        }
    }

    #[test]
    fn a_monotone_lane_keeps_fifo_ties_with_direct_events() {
        let mut q = EventQueue::new();
        q.schedule_in_lane(SimTime(5), 0, 'a');
        q.schedule(SimTime(5), 'b');
        q.schedule_in_lane(SimTime(5), 0, 'c');
        q.schedule_in_lane(SimTime(3), 0, 'd'); // out of lane order: heap
        let order: Vec<char> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, vec!['d', 'a', 'b', 'c']);
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

#[cfg(test)]
mod lane_size_tests {
    use super::*;

    #[test]
    fn a_monotone_lane_keeps_one_heap_entry() {
        let mut q = EventQueue::new();
        for i in 0..1000u64 {
            q.schedule_in_lane(SimTime(i), 7, i);
        }
        assert_eq!(q.heap_len(), 1);
        assert_eq!(q.len(), 1000);
        for i in 0..500u64 {
            assert_eq!(q.pop(), Some((SimTime(i), i)));
            q.schedule_in_lane(SimTime(1000 + i), 7, 1000 + i);
        }
        assert_eq!(q.heap_len(), 1);
    }
}
