//! A kernel run's measurements in the simulator's [`RunResult`] shape.
//!
//! What maps one to one: client outcomes (classified from the sockets'
//! errnos), latencies, accept counts and peak accept queues per listener,
//! final listener states, the kernel's own `nstat` counters (deltas over
//! the run), the link emulator's packet counts. What the kernel cannot
//! give: RSTs and drops by cause (it does not label them), migrations per
//! path (only `TcpExtTCPMigrateReqSuccess` / `Failure` in total), the SYN
//! queue per listener (`INET_DIAG` dumps requests without their listener),
//! a digest. Policy decisions are the program's own counts (`policy.c`'s
//! `decisions` map, read at the end), per call path as the simulator
//! names them. Those fields stay empty or zero and
//! [`KernelDetails::notes`] says so.

use crate::backend::{RunResult, Sample};
use crate::report::{
    Connections, KernelDetails, Latency, LatenessUs, ListenerReport, Migrations, NetworkSummary,
    Percentiles, Report, ScenarioInfo, ToolInfo,
};
use crate::scenario::Plan;
use hdrhistogram::Histogram;
use sim_core::SimDuration;
use sim_kernel::{KernelRunResult, KernelSpec, Outcome};
use std::collections::BTreeMap;

/// What every kernel report says about itself.
pub const NOTES: [&str; 5] = [
    "RST and drop causes are simulator-only: the kernel does not label its RSTs; see the counters (TcpOutRsts, TcpExtListenOverflows, ...) and the clients' outcomes",
    "migrations per path are not counted by the kernel: migrations.* are 0, see counters TcpExtTCPMigrateReqSuccess / TcpExtTCPMigrateReqFailure",
    "peak_syn_queue per listener is 0: INET_DIAG does not say which listener a request belongs to; see peak_syn_recv per server",
    "time_wait is not sampled on the kernel (no TIME_WAIT peak): see counters_by_host TcpExtTW / TcpExtTCPTimeWaitOverflow",
    "not deterministic: real time, the kernel's own flow hash secret and CPU scheduling move outcomes between runs; events and digest are not measured",
];

/// Builds the result of a kernel run of `plan` (translated to `spec`).
pub fn run_result(
    plan: &Plan,
    spec: &KernelSpec,
    seed: u64,
    migrate: Option<bool>,
    want_samples: bool,
    k: KernelRunResult,
) -> RunResult {
    let c = k.outcome_counts();
    let report = Report {
        tool: ToolInfo {
            name: "reuseport-sim".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        backend: "kernel".into(),
        scenario: ScenarioInfo {
            name: plan.name.clone(),
            hash: plan.hash.clone(),
            duration: plan.duration.to_string(),
        },
        seed,
        varied: BTreeMap::new(),
        migrate: match migrate {
            None => "scenario",
            Some(true) => "on",
            Some(false) => "off",
        }
        .into(),
        connections: Connections {
            attempted: c.attempted,
            completed: c.completed,
            refused: c.refused,
            reset: c.reset,
            timed_out: c.timed_out,
            abandoned: 0,
            eof: c.eof_before_response,
            no_port: c.no_port,
            in_flight: c.in_flight,
        },
        resets_by_cause: Vec::new(),
        drops_by_cause: Vec::new(),
        migrations: Migrations {
            failed: counter(&k, &server_hosts(plan), "TcpExtTCPMigrateReqFailure"),
            ..Migrations::default()
        },
        policies: policies(plan, &k),
        counters: server_counters(plan, &k),
        counters_by_host: counters_by_host(plan, &k),
        time_wait: Vec::new(),
        client_rsts_by_cause: BTreeMap::new(),
        listeners: listeners(plan, &k),
        latency: latency(&k),
        network: NetworkSummary {
            sent: k.forwarder.read,
            lost: k.forwarder.lost,
            link_down: k.forwarder.link_down,
            filtered: k.forwarder.filtered + k.lo_filters.iter().map(|f| f.dropped).sum::<u64>(),
        },
        events: 0,
        digest: "-".into(),
        kernel: Some(details(plan, &k, c.eof_before_response, c.other_error)),
    };
    RunResult {
        report,
        samples: if want_samples {
            samples(&k)
        } else {
            Vec::new()
        },
        worker_names: spec.workers.iter().map(|w| w.name.clone()).collect(),
        worker_generations: plan.workers.iter().map(|w| w.generation).collect(),
        markers: plan
            .timeline
            .iter()
            .map(|s| (s.at.as_secs_f64(), s.label.clone()))
            .collect(),
    }
}

/// Hosts with a server (whose counters the report's `counters` sum, as the
/// simulator sums its server stacks).
fn server_hosts(plan: &Plan) -> Vec<usize> {
    let mut v: Vec<usize> = plan.servers.iter().map(|s| s.host.index()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn counter(k: &KernelRunResult, hosts: &[usize], name: &str) -> u64 {
    hosts
        .iter()
        .filter_map(|&h| k.namespaces.get(h))
        .map(|n| n.delta(name).max(0) as u64)
        .sum()
}

/// The simulator's counter names, with the server hosts' kernel deltas.
/// A server host with same-host clients counts their sockets too (one
/// namespace), as `nstat` would.
fn server_counters(plan: &Plan, k: &KernelRunResult) -> BTreeMap<String, u64> {
    let hosts = server_hosts(plan);
    sim_tcp::Counters::default()
        .entries()
        .iter()
        .map(|&(name, _)| (name.to_string(), counter(k, &hosts, name)))
        .collect()
}

/// Every namespace's changed counters among the simulator's names.
fn counters_by_host(plan: &Plan, k: &KernelRunResult) -> BTreeMap<String, BTreeMap<String, u64>> {
    let names = sim_tcp::Counters::default().entries();
    let mut out = BTreeMap::new();
    for (h, ns) in k.namespaces.iter().enumerate() {
        let row: BTreeMap<String, u64> = names
            .iter()
            .map(|&(name, _)| (name.to_string(), ns.delta(name).max(0) as u64))
            .filter(|&(_, v)| v != 0)
            .collect();
        if !row.is_empty() {
            out.insert(plan.hosts[h].name.clone(), row);
        }
    }
    out
}

fn listeners(plan: &Plan, k: &KernelRunResult) -> Vec<ListenerReport> {
    plan.workers
        .iter()
        .zip(&k.workers)
        .enumerate()
        .map(|(i, (w, s))| ListenerReport {
            worker: w.name.clone(),
            server: plan.servers[w.server.index()].name.clone(),
            listener: i as u32,
            accepted: s.accepted,
            peak_syn_queue: 0,
            peak_accept_queue: s.peak_accept_queue,
            state: s.final_state.clone(),
        })
        .collect()
}

fn latency(k: &KernelRunResult) -> Latency {
    let hist = || Histogram::<u64>::new_with_bounds(1, 1 << 44, 3).expect("histogram bounds");
    let (mut hs, mut cp) = (hist(), hist());
    for r in &k.connections {
        if let Some(d) = r.handshake {
            let _ = hs.record(d.as_nanos().max(1));
        }
        if let Some(d) = r.completion {
            let _ = cp.record(d.as_nanos().max(1));
        }
    }
    Latency {
        handshake_ms: percentiles(&hs),
        completion_ms: percentiles(&cp),
    }
}

/// The simulator's rounding (nanoseconds to milliseconds, 3 decimals).
fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |v: u64| (v as f64 / 1e3).round() / 1e3;
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: h.len(),
        p50: ms(h.value_at_quantile(0.5)),
        p90: ms(h.value_at_quantile(0.9)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
    }
}

fn details(plan: &Plan, k: &KernelRunResult, eof: u64, other: u64) -> KernelDetails {
    let us = |d: SimDuration| d.as_nanos() / 1000;
    KernelDetails {
        kernel_release: k.kernel_release.clone(),
        notes: NOTES
            .iter()
            .copied()
            .chain(
                plan.policies
                    .iter()
                    .any(|p| p.bpf.is_some())
                    .then_some(super::bpf::NOTE),
            )
            .map(str::to_string)
            .collect(),
        eof_before_response: eof,
        other_error: other,
        peak_syn_recv: plan
            .servers
            .iter()
            .zip(&k.peak_syn_recv)
            .map(|(s, &p)| (s.name.clone(), p))
            .collect(),
        lateness_us: LatenessUs {
            p50: us(k.forwarder.lateness.p50),
            p99: us(k.forwarder.lateness.p99),
            max: us(k.forwarder.lateness.max),
        },
        action_errors: k
            .actions
            .iter()
            .filter_map(|a| a.error.as_ref().map(|e| format!("{}: {e}", a.label)))
            .collect(),
        warnings: k.warnings.clone(),
    }
}

/// The `INET_DIAG` samples as plot samples, with the clients' cumulative
/// outcomes (completed, reset, refused, timed out) at each sample time.
fn samples(k: &KernelRunResult) -> Vec<Sample> {
    let mut ends: Vec<(sim_core::SimTime, usize)> = k
        .connections
        .iter()
        .filter_map(|r| {
            let slot = match r.outcome {
                Outcome::Completed => 0,
                Outcome::Reset => 1,
                Outcome::Refused => 2,
                Outcome::TimedOut => 3,
                Outcome::EofBeforeResponse | Outcome::InFlight | Outcome::OtherError(_) => {
                    return None
                }
            };
            Some((r.ended, slot))
        })
        .collect();
    ends.sort_unstable();
    let mut next = 0;
    let mut outcomes = [0u64; 4];
    k.samples
        .iter()
        .map(|s| {
            while next < ends.len() && ends[next].0 <= s.t {
                outcomes[ends[next].1] += 1;
                next += 1;
            }
            Sample {
                t_s: s.t.as_secs_f64(),
                outcomes,
                migrations: None,
                accept_queues: s.accept_queue.iter().map(|q| q.unwrap_or(0)).collect(),
                syn_queues: vec![0; s.accept_queue.len()],
            }
        })
        .collect()
}

/// `enum call_path` of `policy.c`, by index: the simulator's context names.
const CALL_PATHS: [&str; 5] = [
    "syn",
    "close_established",
    "close_syn_recv",
    "synack_timer",
    "final_ack",
];

/// `enum decision` of `policy.c`, by index.
const DECISIONS: [&str; 3] = ["picks", "passes", "drops"];

/// Each policy's decision counts from its `decisions` map
/// (`decisions[path * 3 + decision]`, `u64`), paths with none left out as
/// the simulator does; a `bpf` policy's program has no such map: its
/// report has the maps read back instead ([`super::bpf::report`]), and the
/// failed map actions of the timeline.
fn policies(plan: &Plan, k: &KernelRunResult) -> Vec<crate::report::PolicyReport> {
    plan.policies
        .iter()
        .filter_map(|p| {
            let host = plan.hosts[p.host.index()].name.clone();
            if let Some(b) = &p.bpf {
                let data: Vec<_> = k
                    .policy_data
                    .iter()
                    .filter(|d| d.policy == p.name)
                    .collect();
                let mut bpf = super::bpf::report(b, &data);
                let prefix = format!("map_update {}:", p.name);
                let prefix_del = format!("map_delete {}:", p.name);
                bpf.map_errors.extend(k.actions.iter().filter_map(|a| {
                    let mine = a.label.starts_with(&prefix) || a.label.starts_with(&prefix_del);
                    a.error
                        .as_ref()
                        .filter(|_| mine)
                        .map(|e| format!("{} {}: {e}", a.planned, a.label))
                }));
                return Some(crate::report::PolicyReport {
                    name: p.name.clone(),
                    host,
                    decisions: BTreeMap::new(),
                    bpf: Some(bpf),
                });
            }
            let data = k
                .policy_data
                .iter()
                .find(|d| d.policy == p.name && d.section == "decisions")?;
            let count = |i: usize| {
                data.bytes
                    .get(i * 8..i * 8 + 8)
                    .map_or(0, |b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
            };
            let mut decisions = BTreeMap::new();
            for (path, name) in CALL_PATHS.iter().enumerate() {
                let row: BTreeMap<String, u64> = DECISIONS
                    .iter()
                    .enumerate()
                    .map(|(d, n)| (n.to_string(), count(path * DECISIONS.len() + d)))
                    .collect();
                if row.values().any(|&v| v > 0) {
                    decisions.insert(name.to_string(), row);
                }
            }
            Some(crate::report::PolicyReport {
                name: p.name.clone(),
                host,
                decisions,
                bpf: None,
            })
        })
        .collect()
}
