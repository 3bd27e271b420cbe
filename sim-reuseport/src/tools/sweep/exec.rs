//! Running seeds: the `vary` draw, the paired runs, the checks, panics
//! caught per run, and the determinism re-checks.

use super::{RunSummary, SeedFailure, SeedResult, SweepSpec};
use crate::backend::{run, RunError, RunOptions};
use crate::invariants::{self, Violation, DETERMINISM, FLAG_MORE_RESETS_WITH_MIGRATION};
use crate::report::Report;
use crate::scenario::{Scenario, ScenarioError};
use crate::vary;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------
// Panics: caught per run, with a quiet hook while a sweep runs.

thread_local! {
    static QUIET: RefCell<Option<String>> = const { RefCell::new(None) };
    static QUIET_ON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET_ON.with(|q| q.get()) {
                let loc = info
                    .location()
                    .map(|l| format!(" (at {}:{})", l.file(), l.line()))
                    .unwrap_or_default();
                QUIET.with(|q| *q.borrow_mut() = Some(loc));
            } else {
                previous(info);
            }
        }));
    });
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic with a non-text payload".into())
}

/// Runs `f`, turning a panic into `Err(message with location)` without
/// printing anything.
pub fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_quiet_hook();
    let was = QUIET_ON.with(|q| q.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET_ON.with(|q| q.set(was));
    r.map_err(|p| {
        let loc = QUIET.with(|q| q.borrow_mut().take()).unwrap_or_default();
        format!("{}{loc}", panic_text(&*p))
    })
}

// ---------------------------------------------------------------------------
// One seed.

enum RunOutcome {
    Done(Box<Report>),
    Panicked(String),
}

/// The scenario as run for `seed` and its drawn values.
pub fn scenario_for(
    scn: &Scenario,
    seed: u64,
) -> Result<(Scenario, BTreeMap<String, Value>), ScenarioError> {
    vary::apply(scn, seed)
}

/// Runs seed `seed` of `spec`: the `vary` draw, the paired runs, the checks.
pub fn run_seed(spec: &SweepSpec, seed: u64) -> SeedResult {
    let mut res = SeedResult {
        seed,
        varied: BTreeMap::new(),
        off: None,
        on: None,
        live_listener: false,
        failures: Vec::new(),
        flags: Vec::new(),
        rechecked: false,
        input_error: None,
    };
    let (scn, varied) = match scenario_for(&spec.scenario, seed) {
        Ok(x) => x,
        Err(e) => {
            res.input_error = Some(e.to_string());
            return res;
        }
    };
    res.varied = varied;
    res.live_listener = invariants::live_listener_throughout(&scn);
    let mut reports: [Option<Report>; 2] = [None, None];
    for (i, migrate) in [false, true].into_iter().enumerate() {
        let label = if migrate { "on" } else { "off" };
        let opts = RunOptions {
            seed: Some(seed),
            migrate: Some(migrate),
            inject_bug: spec.inject_bug,
            ..Default::default()
        };
        let outcome = match catch_quietly(|| run(&scn, opts)) {
            Ok(Ok(r)) => RunOutcome::Done(Box::new(r.report)),
            Ok(Err(RunError::Scenario(e))) => {
                res.input_error = Some(e.to_string());
                return res;
            }
            Ok(Err(RunError::Io(e))) => RunOutcome::Panicked(format!("I/O error: {e}")),
            Ok(Err(RunError::Limit(m))) | Ok(Err(RunError::Program(m))) => {
                res.input_error = Some(m);
                return res;
            }
            // The simulator raises neither.
            Ok(Err(e @ (RunError::Unsupported(_) | RunError::Kernel(_)))) => {
                res.input_error = Some(e.to_string());
                return res;
            }
            Err(msg) => RunOutcome::Panicked(msg),
        };
        match outcome {
            RunOutcome::Done(report) => {
                for Violation { check, message } in
                    invariants::check_run(&scn, &report, Some(migrate))
                {
                    res.failures.push(SeedFailure {
                        check,
                        run: label.into(),
                        message,
                    });
                }
                reports[i] = Some(*report);
            }
            RunOutcome::Panicked(msg) => res.failures.push(SeedFailure {
                check: invariants::classify_panic(&msg).into(),
                run: label.into(),
                message: format!("panic: {msg}"),
            }),
        }
    }
    if let [Some(off), Some(on)] = &reports {
        if invariants::more_resets_with_migration(off, on) {
            res.flags.push(FLAG_MORE_RESETS_WITH_MIGRATION.into());
        }
    }
    let [off, on] = reports;
    res.off = off.as_ref().map(RunSummary::of);
    res.on = on.as_ref().map(RunSummary::of);
    res
}

/// Compares a re-run with the first run of a seed; records a mismatch.
fn recheck_into(first: &mut SeedResult, again: SeedResult, threads: usize) {
    first.rechecked = true;
    let same = first.off == again.off
        && first.on == again.on
        && first.failures == again.failures
        && first.varied == again.varied
        && first.input_error == again.input_error;
    if !same {
        let d = |r: &Option<RunSummary>| r.as_ref().map_or("-".to_string(), |s| s.digest.clone());
        first.failures.push(SeedFailure {
            check: DETERMINISM.into(),
            run: "pair".into(),
            message: format!(
                "re-run in {threads} thread(s) differs: digests off {} / on {} first, off {} / on {} \
                 again; failures {} first, {} again",
                d(&first.off),
                d(&first.on),
                d(&again.off),
                d(&again.on),
                first.failures.len(),
                again.failures.len()
            ),
        });
    }
}

/// Runs every seed of `spec` that `done` does not hold yet on `jobs`
/// threads, calling `on_result` with each first-pass result as it completes
/// (in completion order, from the worker threads: for a progress bar and
/// for the results file that `sweep --resume` continues); then re-runs the
/// determinism sample on a different number of threads, in reverse order
/// (seeds already re-checked in `done` are not re-run). The result is in
/// seed order and does not depend on `jobs` nor on how the work was split
/// between interrupted and resumed runs.
pub fn run_sweep(
    spec: &SweepSpec,
    jobs: usize,
    done: Vec<SeedResult>,
    on_result: &(dyn Fn(&SeedResult) + Sync),
) -> Result<Vec<SeedResult>, String> {
    use rayon::prelude::*;
    let jobs = jobs.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("sweep-{i}"))
        .build()
        .map_err(|e| format!("cannot start {jobs} worker threads: {e}"))?;
    let have: std::collections::BTreeSet<u64> = done.iter().map(|r| r.seed).collect();
    let todo: Vec<u64> = spec
        .seeds()
        .into_iter()
        .filter(|s| !have.contains(s))
        .collect();
    let fresh: Vec<SeedResult> = pool.install(|| {
        todo.par_iter()
            .map(|&s| {
                let r = run_seed(spec, s);
                on_result(&r);
                r
            })
            .collect()
    });
    let mut results = done;
    results.extend(fresh);
    results.sort_by_key(|r| r.seed);
    let other = if jobs == 1 { 2 } else { 1 };
    let sample: Vec<usize> = (0..results.len())
        .filter(|&i| spec.rechecks(results[i].seed) && !results[i].rechecked)
        .rev()
        .collect();
    let again: Vec<SeedResult> = if other == 1 {
        sample
            .iter()
            .map(|&i| run_seed(spec, results[i].seed))
            .collect()
    } else {
        let pool2 = rayon::ThreadPoolBuilder::new()
            .num_threads(other)
            .build()
            .map_err(|e| format!("cannot start {other} worker threads: {e}"))?;
        let seeds: Vec<u64> = sample.iter().map(|&i| results[i].seed).collect();
        pool2.install(|| seeds.par_iter().map(|&s| run_seed(spec, s)).collect())
    };
    for (&i, a) in sample.iter().zip(again) {
        recheck_into(&mut results[i], a, other);
    }
    Ok(results)
}
