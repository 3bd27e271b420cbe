//! Whole-model throughput: `scenarios/bench-100k.json` (1 million connections)
//! and the same load shape at 10x smaller and 10x larger rates, to show that
//! the cost grows linearly with the work. Criterion reports events per second
//! (its "elem/s"); connections per second = events/s ÷ events per connection,
//! printed once per benchmark.
//!
//! Run: `cargo bench -p sim-reuseport --bench scenarios`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim_core::SimDuration;
use sim_reuseport::backend::{run, RunOptions};
use sim_reuseport::scenario::{self, Arrival, Dur, Scenario};
use std::path::PathBuf;
use std::time::Duration;

fn bench_scenario() -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/bench-100k.json");
    scenario::load(&path).expect("bench-100k.json")
}

/// The bench-100k shape with `rate` connections per second for the first
/// simulated second only (so the connection count is `rate`).
fn one_second_at(rate: u64) -> Scenario {
    let mut s = bench_scenario();
    s.clients[0].arrival = Arrival::Constant { rate };
    s.clients[0].stop = Some(Dur(SimDuration::from_secs(1)));
    s
}

fn measure(c: &mut Criterion, group: &str, cases: Vec<(String, Scenario)>) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for (name, scn) in cases {
        let probe = run(&scn, RunOptions::default()).expect("runs").report;
        eprintln!(
            "{group}/{name}: {} connections, {} events ({:.2} events per connection)",
            probe.connections.attempted,
            probe.events,
            probe.events as f64 / probe.connections.attempted as f64
        );
        g.throughput(Throughput::Elements(probe.events));
        g.bench_with_input(BenchmarkId::from_parameter(&name), &scn, |b, scn| {
            b.iter(|| run(scn, RunOptions::default()).expect("runs").report.events)
        });
    }
    g.finish();
}

fn bench_100k(c: &mut Criterion) {
    measure(
        c,
        "bench-100k",
        vec![("1M-connections".into(), bench_scenario())],
    );
}

fn linearity(c: &mut Criterion) {
    let cases = [10_000u64, 100_000, 1_000_000]
        .into_iter()
        .map(|r| (format!("{r}-per-s-for-1s"), one_second_at(r)))
        .collect();
    measure(c, "rate-scaling", cases);
}

/// bench-100k with a policy attached to the group from the start, the
/// declarative `pass`/`pass` one or its C twin (`policy.o`'s
/// `migrate_policy` with `config` all zero), so a program runs on every SYN
/// and every migration. Both runs have the same outcome.
fn with_policy(bpf: bool) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/bench-100k.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("bench-100k.json"))
            .expect("JSON");
    let via = v["workers"][0]["name"].clone();
    v["policies"] = if bpf {
        serde_json::json!([{"name": "p", "kind": "select_or_migrate", "via": via,
            "bpf": {"object": "../sim-bpf/fixtures/policy.o", "program": "migrate_policy",
                    "maps": [{"map": "config", "key": 0, "value": {"u32": [0, 0, 0, 0, 0, 0, 0]}}]}}])
    } else {
        serde_json::json!([{"name": "p", "kind": "select_or_migrate", "via": via}])
    };
    let mut s = scenario::parse_str(&v.to_string()).expect("parses");
    s.base_dir = path.parent().map(PathBuf::from);
    s
}

fn bpf_policy(c: &mut Criterion) {
    measure(
        c,
        "bpf-policy",
        vec![
            ("declarative-pass".into(), with_policy(false)),
            ("policy.o-pass".into(), with_policy(true)),
        ],
    );
}

criterion_group!(benches, bench_100k, linearity, bpf_policy);
criterion_main!(benches);
