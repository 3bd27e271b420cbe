//! What a run counts for its report: client outcomes and their latencies,
//! RSTs and drops by cause, migrations, and the samples for plots. A sink:
//! it records what it is given and calls nobody.

use crate::backend::Sample;
use crate::report::{Connections, DropCount, Latency, Migrations, Percentiles, RstCount};
use hdrhistogram::Histogram;
use sim_core::SimTime;
use sim_tcp::{ClientOutcome, ClientRstCause, DropCause, MigrateFailure, MigrationPath, RstCause};
use std::collections::BTreeMap;

/// The counters, histograms and samples of a run.
pub(super) struct Stats {
    conns: Connections,
    rsts_sent: BTreeMap<RstCause, u64>,
    /// RSTs sent by client hosts, by cause.
    client_rsts: BTreeMap<ClientRstCause, u64>,
    conn_reset_by: BTreeMap<RstCause, u64>,
    conn_refused_by: BTreeMap<RstCause, u64>,
    drops: BTreeMap<DropCause, u64>,
    /// Hops by path: accept queue, SYN-ACK timer, final ACK.
    migrations: [u64; 3],
    failed: u64,
    failures: BTreeMap<String, u64>,
    connections_migrated: u64,
    handshake: Histogram<u64>,
    completion: Histogram<u64>,
    samples: Vec<Sample>,
}

impl Stats {
    /// Nothing counted yet.
    pub(super) fn new() -> Self {
        let hist = || Histogram::<u64>::new_with_bounds(1, 1 << 44, 3).expect("histogram bounds");
        Stats {
            conns: Connections::default(),
            rsts_sent: BTreeMap::new(),
            client_rsts: BTreeMap::new(),
            conn_reset_by: BTreeMap::new(),
            conn_refused_by: BTreeMap::new(),
            drops: BTreeMap::new(),
            migrations: [0; 3],
            failed: 0,
            failures: BTreeMap::new(),
            connections_migrated: 0,
            handshake: hist(),
            completion: hist(),
            samples: Vec::new(),
        }
    }

    /// A server host sent an RST for `cause`.
    #[inline]
    pub(super) fn rst_sent(&mut self, cause: RstCause) {
        *self.rsts_sent.entry(cause).or_default() += 1;
    }

    /// A client host sent an RST for `cause`.
    #[inline]
    pub(super) fn client_rst(&mut self, cause: ClientRstCause) {
        *self.client_rsts.entry(cause).or_default() += 1;
    }

    /// The report's `client_rsts_by_cause`.
    pub(super) fn client_rsts(&self) -> BTreeMap<String, u64> {
        self.client_rsts
            .iter()
            .map(|(c, n)| (c.name().to_string(), *n))
            .collect()
    }

    /// A client called `connect()`; `opened` is false when no 4-tuple was
    /// free (`EADDRNOTAVAIL`: outcome `no_port` at once).
    #[inline]
    pub(super) fn connect(&mut self, opened: bool) {
        self.conns.attempted += 1;
        if !opened {
            self.conns.no_port += 1;
        }
    }

    /// A client connection ended at `now` with `outcome`, blamed on the RST
    /// of `cause` if any; `started_at` is its `connect()`, `established_at`
    /// the end of its handshake.
    pub(super) fn client_done(
        &mut self,
        now: SimTime,
        outcome: ClientOutcome,
        cause: Option<RstCause>,
        started_at: SimTime,
        established_at: Option<SimTime>,
    ) {
        let c = &mut self.conns;
        match outcome {
            ClientOutcome::Completed => {
                c.completed += 1;
                let _ = self
                    .completion
                    .record(now.saturating_sub(started_at).as_nanos().max(1));
            }
            ClientOutcome::Refused => {
                c.refused += 1;
                if let Some(cause) = cause {
                    *self.conn_refused_by.entry(cause).or_default() += 1;
                }
            }
            ClientOutcome::Reset => {
                c.reset += 1;
                if let Some(cause) = cause {
                    *self.conn_reset_by.entry(cause).or_default() += 1;
                }
            }
            ClientOutcome::TimedOut => c.timed_out += 1,
            ClientOutcome::Abandoned => c.abandoned += 1,
            ClientOutcome::Eof => c.eof += 1,
        }
        if let Some(t) = established_at {
            let _ = self
                .handshake
                .record(t.saturating_sub(started_at).as_nanos().max(1));
        }
    }

    /// One migration hop on `path`; `first` if the connection never moved before.
    pub(super) fn migrated(&mut self, path: MigrationPath, first: bool) {
        let i = match path {
            MigrationPath::AcceptQueue => 0,
            MigrationPath::SynackTimer => 1,
            MigrationPath::FinalAck => 2,
        };
        self.migrations[i] += 1;
        if first {
            self.connections_migrated += 1;
        }
    }

    /// A failed migration.
    pub(super) fn migration_failed(&mut self, path: MigrationPath, reason: MigrateFailure) {
        self.failed += 1;
        *self
            .failures
            .entry(format!("{}/{}", path.name(), reason.name()))
            .or_default() += 1;
    }

    /// A silent drop.
    pub(super) fn dropped(&mut self, cause: DropCause) {
        *self.drops.entry(cause).or_default() += 1;
    }

    /// A sample at `now` of the outcomes so far and of the queue lengths given.
    pub(super) fn sample(&mut self, now: SimTime, accept_queues: Vec<u32>, syn_queues: Vec<u32>) {
        let c = &self.conns;
        self.samples.push(Sample {
            t_s: now.as_secs_f64(),
            outcomes: [c.completed, c.reset, c.refused, c.timed_out],
            migrations: Some(self.migrations.iter().sum()),
            accept_queues,
            syn_queues,
        });
    }

    /// The report's `connections`, with `in_flight` connections still open.
    pub(super) fn connections(&self, in_flight: u64) -> Connections {
        Connections {
            in_flight,
            ..self.conns.clone()
        }
    }

    /// The report's `resets_by_cause` (causes with anything to report, in cause order).
    pub(super) fn resets(&self) -> Vec<RstCount> {
        let get = |m: &BTreeMap<RstCause, u64>, c| m.get(&c).copied().unwrap_or(0);
        RstCause::ALL
            .into_iter()
            .filter_map(|cause| {
                let sent = get(&self.rsts_sent, cause);
                let reset = get(&self.conn_reset_by, cause);
                let refused = get(&self.conn_refused_by, cause);
                (sent + reset + refused > 0).then(|| RstCount {
                    cause: cause.name().to_string(),
                    spec_id: cause.spec_id().to_string(),
                    rule: cause.spec_rule().to_string(),
                    rsts_sent: sent,
                    connections_reset: reset,
                    connections_refused: refused,
                })
            })
            .collect()
    }

    /// The report's `drops_by_cause`.
    pub(super) fn drops(&self) -> Vec<DropCount> {
        self.drops
            .iter()
            .map(|(c, n)| DropCount {
                cause: c.name().to_string(),
                rule: c.spec_rule().to_string(),
                count: *n,
            })
            .collect()
    }

    /// The report's `migrations`.
    pub(super) fn migrations(&self) -> Migrations {
        Migrations {
            accept_queue: self.migrations[0],
            synack_timer: self.migrations[1],
            final_ack: self.migrations[2],
            failed: self.failed,
            connections_migrated: self.connections_migrated,
            failures: self.failures.clone(),
        }
    }

    /// The report's `latency`.
    pub(super) fn latency(&self) -> Latency {
        Latency {
            handshake_ms: percentiles(&self.handshake),
            completion_ms: percentiles(&self.completion),
        }
    }

    /// The samples taken.
    pub(super) fn take_samples(&mut self) -> Vec<Sample> {
        std::mem::take(&mut self.samples)
    }
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |v: u64| (v as f64 / 1e3).round() / 1e3;
    if h.is_empty() {
        Percentiles::default()
    } else {
        Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}
