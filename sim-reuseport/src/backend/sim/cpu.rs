//! Application CPU (optional, per worker): a host's CPUs as a
//! deterministic run queue for its workers' `accept()` calls and request
//! handling.
//!
//! Scheduling rule: work is placed in the order it becomes runnable (FIFO,
//! by simulated time and then event order), each job on the CPU where it
//! can start earliest (the lowest-numbered on a tie), never before its
//! worker's previous job ended (a worker is one single-threaded event
//! loop, not pinned to a CPU) and never preempted. A CPU, once given a
//! job, is busy until it ends; a job placed later never fills an idle gap
//! before an earlier one (no backfilling). Workers without CPU costs do
//! not use this at all (the fixed-delay model).

use sim_core::{SimDuration, SimTime};

/// The CPUs of one host: when each becomes free.
#[derive(Clone, Debug)]
pub(super) struct HostCpus {
    free_at: Vec<SimTime>,
}

impl HostCpus {
    /// `cpus` idle CPUs (at least one).
    pub(super) fn new(cpus: u16) -> Self {
        HostCpus {
            free_at: vec![SimTime::ZERO; usize::from(cpus.max(1))],
        }
    }

    /// The CPU where a job runnable at `ready` starts earliest, and when.
    pub(super) fn earliest(&self, ready: SimTime) -> (usize, SimTime) {
        let mut best = (0, self.free_at[0].max(ready));
        for (c, &free) in self.free_at.iter().enumerate().skip(1) {
            let start = free.max(ready);
            if start < best.1 {
                best = (c, start);
            }
        }
        best
    }

    /// Runs a job of `cost` runnable at `ready`; returns when it ends.
    pub(super) fn run(&mut self, ready: SimTime, cost: SimDuration) -> SimTime {
        let (c, start) = self.earliest(ready);
        let end = start + cost;
        self.free_at[c] = end;
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> SimDuration {
        SimDuration::from_millis(n)
    }

    #[test]
    fn jobs_go_fifo_to_the_cpu_free_first_lowest_index_on_ties() {
        let mut cpus = HostCpus::new(2);
        let t0 = SimTime::ZERO;
        // Two CPUs: the first two jobs run side by side, the third waits
        // for the first CPU to free up.
        assert_eq!(cpus.run(t0, ms(3)), t0 + ms(3));
        assert_eq!(cpus.earliest(t0), (1, t0));
        assert_eq!(cpus.run(t0, ms(5)), t0 + ms(5));
        assert_eq!(cpus.earliest(t0), (0, t0 + ms(3)));
        assert_eq!(cpus.run(t0, ms(1)), t0 + ms(4));
        // A job runnable later than every CPU frees starts when runnable.
        assert_eq!(cpus.run(t0 + ms(10), ms(1)), t0 + ms(11));
    }

    #[test]
    fn an_overloaded_host_queues_work_instead_of_serving_it_in_fixed_time() {
        // 2 CPUs, 10 jobs of 2 ms all runnable at 0: they end in pairs at
        // 2, 4, ..., 10 ms; the last waits 8 ms for a CPU.
        let mut cpus = HostCpus::new(2);
        let ends: Vec<u64> = (0..10)
            .map(|_| cpus.run(SimTime::ZERO, ms(2)).as_nanos() / 1_000_000)
            .collect();
        assert_eq!(ends, [2, 2, 4, 4, 6, 6, 8, 8, 10, 10]);
    }
}
