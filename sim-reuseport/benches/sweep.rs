//! Sweep throughput in seeds per second on `scenarios/nginx-reload.json`
//! (each seed = the `vary` draw, a migration-off and a migration-on run,
//! and every invariant check).
//!
//! * `sweep/paired_seed`: one seed at a time on one thread (the cost of a
//!   seed; throughput = seeds/s per core);
//! * `sweep/run_sweep_jobs_N`: `run_sweep` over 64 seeds on N threads (N = 1
//!   and 2), including the determinism re-run of its sample, as
//!   `reuseport-sim sweep --jobs N` does.
//!
//! Run with `cargo bench -p sim-reuseport --bench sweep`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sim_reuseport::scenario;
use sim_reuseport::sweep::{run_seed, run_sweep, SeedRange, SweepSpec};
use std::path::PathBuf;
use std::time::Duration;

fn spec(range: SeedRange) -> SweepSpec {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("scenarios/nginx-reload.json");
    let scenario = scenario::load(&file).expect("nginx-reload.json loads");
    SweepSpec {
        file: file.display().to_string(),
        scenario,
        range,
        shard: None,
        inject_bug: None,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sweep");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(20));
    g.warm_up_time(Duration::from_secs(3));

    let one = spec(SeedRange {
        start: 0,
        end: 1 << 20,
    });
    g.throughput(Throughput::Elements(1));
    let mut seed = 0u64;
    g.bench_function("paired_seed", |b| {
        b.iter(|| {
            seed = (seed + 1) % (1 << 20);
            let r = run_seed(&one, black_box(seed));
            assert!(r.failures.is_empty(), "seed {seed}: {:?}", r.failures);
            r
        })
    });

    const SEEDS: u64 = 64;
    let many = spec(SeedRange {
        start: 1000,
        end: 1000 + SEEDS,
    });
    g.throughput(Throughput::Elements(SEEDS));
    for jobs in [1usize, 2] {
        g.bench_function(format!("run_sweep_jobs_{jobs}"), |b| {
            b.iter(|| {
                let r = run_sweep(&many, jobs, Vec::new(), &|_| {}).expect("sweep");
                assert!(r.iter().all(|x| x.failures.is_empty()));
                r
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
