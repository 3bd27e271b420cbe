//! Steady-state event-queue benchmark: a schedule / cancel / pop mix at
//! 10^3, 10^4 and 10^5 pending events, the way the model uses the queue
//! (one queue entry per entity, timers cancelled and re-armed lazily).
//!
//! Each step does three queue operations:
//! 1. pop the earliest event and run the entity's `Timer::on_event`;
//! 2. schedule one event (re-arm after Fire/Stale, or the Rearm time);
//! 3. on another random entity, either cancel its timer or move its deadline
//!    later (lazy: no queue entry is touched).
//!
//! The pending count stays exactly N. Throughput counts 3 operations per
//! step.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sim_core::{EventQueue, SimDuration, SimTime, Timer, TimerArm, TimerFire};

const STEPS: u64 = 10_000;
const OPS_PER_STEP: u64 = 3;

/// SplitMix64: a tiny deterministic generator so the benchmark measures the
/// queue, not ChaCha.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Offset in [1us, ~1ms], like RTO/delayed-ACK-scale timers.
    fn offset(&mut self) -> SimDuration {
        SimDuration(1_000 + self.next() % 1_000_000)
    }
}

struct World {
    queue: EventQueue<u32>,
    timers: Vec<Timer>,
    rng: SplitMix,
}

impl World {
    fn new(n: usize) -> Self {
        let mut world = World {
            queue: EventQueue::with_capacity(n + 1),
            timers: vec![Timer::new(); n],
            rng: SplitMix(42),
        };
        for id in 0..n {
            let at = SimTime::ZERO + world.rng.offset();
            match world.timers[id].arm(at) {
                TimerArm::Push(at) => world.queue.schedule(at, id as u32),
                TimerArm::AlreadyQueued => unreachable!(),
            }
        }
        // Reach a steady state before measuring.
        for _ in 0..4 * n {
            world.step();
        }
        world
    }

    #[inline]
    fn step(&mut self) {
        let (now, id) = self.queue.pop().expect("queue never empties");
        let timer = &mut self.timers[id as usize];
        let next = match timer.on_event(now) {
            TimerFire::Rearm(at) => at,
            TimerFire::Fire | TimerFire::Stale => {
                let at = now + self.rng.offset();
                match timer.arm(at) {
                    TimerArm::Push(at) => at,
                    TimerArm::AlreadyQueued => unreachable!("nothing queued after the pop"),
                }
            }
        };
        self.queue.schedule(next, id);

        // Cancel or postpone another entity's timer; never earlier than its
        // queued entry, so the queue size stays constant.
        let r = self.rng.next();
        let len = self.timers.len() as u64;
        let other = &mut self.timers[(r % len) as usize];
        if r & (1 << 40) == 0 {
            other.cancel();
        } else {
            let base = other.queued().expect("every entity has one queued entry");
            let later = base + SimDuration(r >> 44);
            let arm = black_box(other.arm(later));
            debug_assert_eq!(arm, TimerArm::AlreadyQueued);
        }
    }
}

fn bench_mix(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_queue_mix");
    group.throughput(Throughput::Elements(STEPS * OPS_PER_STEP));
    for n in [1_000usize, 10_000, 100_000] {
        group.bench_function(format!("pending_{n}"), |b| {
            b.iter_batched_ref(
                || World::new(n),
                |world| {
                    for _ in 0..STEPS {
                        world.step();
                    }
                    assert_eq!(world.queue.len(), n);
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench_mix);
criterion_main!(benches);
