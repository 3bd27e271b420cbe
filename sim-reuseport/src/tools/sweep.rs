//! Seed sweeps: every seed of a range runs the scenario twice (migration off
//! and on, same seed, same arrivals, like `compare`), after drawing its
//! `vary` values; every run goes through the named invariants
//! ([`crate::invariants`]); a sample of seeds is re-run in another thread
//! count to check determinism; the per-seed results are summarized with
//! exact integer distributions.
//!
//! Results never depend on scheduling: each seed's result is a pure function
//! of (scenario, seed), results are kept in seed order, and the summary is a
//! pure function of the sorted results. So `--jobs 1` and `--jobs 8` give the
//! same bytes, and so does merging the outputs of `--shard 0/N` … `N-1/N`.
//!
//! Sharding is by position in the range: shard `I/N` runs the seeds whose
//! offset from the range start is `I (mod N)` (round-robin, so every shard
//! gets an even spread and sizes differ by at most one).

use crate::backend::{run, RunError, RunOptions};
use crate::invariants::{self, Violation, CHECKS, DETERMINISM, FLAG_MORE_RESETS_WITH_MIGRATION};
use crate::report::{Report, ToolInfo};
use crate::scenario::scenario_hash;
use crate::scenario::{Scenario, ScenarioError};
use crate::vary;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sim_tcp::MigrationPath;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::str::FromStr;

/// Most seeds one process (one shard) runs: their results are held in
/// memory (a few hundred bytes each) until the summary. Shard beyond it.
pub const MAX_SEEDS_PER_PROCESS: u64 = 10_000_000;

/// A re-checked seed is one in this many (chosen by a hash of the seed, so
/// the sample does not depend on sharding), plus the first seed of the range.
pub const RECHECK_ONE_IN: u64 = 64;
const _: () = assert!(RECHECK_ONE_IN.is_power_of_two());

/// Failing seeds listed in the text summary (the JSON lists all).
pub const TEXT_FAILURES_MAX: usize = 20;

/// Seeds listed per flag in the summary.
pub const FLAG_SEEDS_MAX: usize = 20;

/// A half-open range of seeds `start..end`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRange {
    /// First seed.
    pub start: u64,
    /// One past the last seed.
    pub end: u64,
}

impl SeedRange {
    /// Number of seeds.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range is empty (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

impl fmt::Display for SeedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl FromStr for SeedRange {
    type Err = String;

    /// `A..B` (B excluded) or `A..=B` (B included).
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| {
            t.trim().parse::<u64>().map_err(|_| {
                format!("`{t}` is not a seed (an unsigned 64-bit integer); expected A..B or A..=B")
            })
        };
        let (a, b, inclusive) = if let Some((a, b)) = s.split_once("..=") {
            (a, b, true)
        } else if let Some((a, b)) = s.split_once("..") {
            (a, b, false)
        } else {
            return Err(format!(
                "`{s}` is not a seed range; expected A..B (B excluded) or A..=B, e.g. 0..10000"
            ));
        };
        let (start, last) = (num(a)?, num(b)?);
        let end = if inclusive {
            last.checked_add(1)
                .ok_or_else(|| format!("`{s}`: the range end overflows u64"))?
        } else {
            last
        };
        if end <= start {
            return Err(format!(
                "`{s}` is an empty range: the end must be greater than the start (A..B excludes B)"
            ));
        }
        Ok(SeedRange { start, end })
    }
}

/// One shard of a sweep: `index` of `count`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based index.
    pub index: u64,
    /// Number of shards.
    pub count: u64,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    fn new(index: u64, count: u64, what: &str) -> Result<Shard, String> {
        if count == 0 {
            return Err(format!("{what}: the number of shards must be at least 1"));
        }
        if index >= count {
            return Err(format!(
                "{what}: shard index {index} is out of range for {count} shard(s) (0..={})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether the seed at `offset` from the range start belongs to this shard.
    pub fn owns(&self, offset: u64) -> bool {
        offset % self.count == self.index
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`, 0-based: `0/4` … `3/4`.
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((i, n)) = s.split_once('/') else {
            return Err(format!(
                "`{s}` is not a shard; expected I/N with 0 <= I < N, e.g. 0/4"
            ));
        };
        let parse = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("`{s}` is not a shard; expected I/N with 0 <= I < N"))
        };
        Shard::new(parse(i)?, parse(n)?, &format!("`{s}`"))
    }
}

/// The shard from the environment of an array job, if any:
/// `SLURM_ARRAY_TASK_ID` (minus `SLURM_ARRAY_TASK_MIN`, divided by
/// `SLURM_ARRAY_TASK_STEP`) of `SLURM_ARRAY_TASK_COUNT`, or Kubernetes'
/// `JOB_COMPLETION_INDEX` of `shards` (the Job's `completions`, which
/// Kubernetes does not put in the environment). `shards` also overrides
/// Slurm's count. Returns the shard and a description of where it came from.
pub fn shard_from_env(
    get: impl Fn(&str) -> Option<String>,
    shards: Option<u64>,
) -> Result<Option<(Shard, String)>, String> {
    let num = |name: &str| -> Result<Option<u64>, String> {
        match get(name) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{name}={v:?} is not an unsigned integer")),
        }
    };
    if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let count = match shards {
            Some(n) => n,
            None => num("SLURM_ARRAY_TASK_COUNT")?.ok_or(
                "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: pass --shards N",
            )?,
        };
        if id < min || (id - min) % step != 0 {
            return Err(format!(
                "SLURM_ARRAY_TASK_ID={id} is not in the array (min {min}, step {step})"
            ));
        }
        let index = (id - min) / step;
        let what = format!("SLURM_ARRAY_TASK_ID={id} (min {min}, step {step}, count {count})");
        return Shard::new(index, count, &what).map(|s| Some((s, what)));
    }
    if let Some(index) = num("JOB_COMPLETION_INDEX")? {
        let Some(count) = shards else {
            return Err(format!(
                "JOB_COMPLETION_INDEX={index} is set (a Kubernetes Indexed Job) but the number \
                 of shards is not known: pass --shards N with N the Job's `completions`"
            ));
        };
        let what = format!("JOB_COMPLETION_INDEX={index} of {count}");
        return Shard::new(index, count, &what).map(|s| Some((s, what)));
    }
    Ok(None)
}

/// The outcome numbers of one run, as kept per seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Outcomes (flattened: the same keys as a report's `connections`).
    #[serde(flatten)]
    pub connections: crate::report::Connections,
    /// RSTs sent by the server hosts.
    pub rsts_sent: u64,
    /// Migration hops (`TCPMigrateReqSuccess`).
    pub migrations: u64,
    /// Connections that migrated at least once.
    pub connections_migrated: u64,
    /// `TCPMigrateReqFailure`.
    pub migration_failures: u64,
    /// RSTs sent, by cause (non-zero only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rsts_by_cause: BTreeMap<String, u64>,
    /// Events processed.
    pub events: u64,
    /// Run digest.
    pub digest: String,
}

impl RunSummary {
    fn of(r: &Report) -> Self {
        let m = &r.migrations;
        RunSummary {
            connections: r.connections.clone(),
            rsts_sent: r.counter("TcpOutRsts"),
            migrations: r.migration_hops(),
            connections_migrated: m.connections_migrated,
            migration_failures: m.failed,
            rsts_by_cause: r
                .resets_by_cause
                .iter()
                .filter(|x| x.rsts_sent > 0)
                .map(|x| (x.cause.clone(), x.rsts_sent))
                .collect(),
            events: r.events,
            digest: r.digest.clone(),
        }
    }
}

/// A failed check of one seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedFailure {
    /// Check name.
    pub check: String,
    /// Which run: `off`, `on`, or `pair` (both, e.g. determinism).
    pub run: String,
    /// What was wrong.
    pub message: String,
}

/// Everything a sweep keeps of one seed (one line of `seeds.jsonl`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Values drawn from the scenario's `vary` block.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub varied: BTreeMap<String, Value>,
    /// Migration off (absent if the run panicked).
    pub off: Option<RunSummary>,
    /// Migration on (absent if the run panicked).
    pub on: Option<RunSummary>,
    /// Whether the "no loss to a listener close" check applied to the on run.
    pub live_listener: bool,
    /// Failed checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<SeedFailure>,
    /// Flags raised (not failures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Re-run for the determinism check.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rechecked: bool,
    /// The scenario was invalid for this seed (a bad `vary` draw): a bad
    /// input, not a failure of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_error: Option<String>,
}

/// What a sweep runs.
#[derive(Clone, Debug)]
pub struct SweepSpec {
    /// The scenario file as given on the command line (used in repro commands).
    pub file: String,
    /// The scenario as read (with its `vary` block).
    pub scenario: Scenario,
    /// The seeds.
    pub range: SeedRange,
    /// This process's shard, if sharded.
    pub shard: Option<Shard>,
    /// Test-only fault injection, passed to every run.
    pub inject_bug: Option<MigrationPath>,
}

impl SweepSpec {
    /// The seeds of this shard, in order.
    pub fn seeds(&self) -> Vec<u64> {
        shard_seeds(self.range, self.shard)
    }

    /// Whether `seed` is in the determinism sample.
    pub fn rechecks(&self, seed: u64) -> bool {
        seed == self.range.start || mix64(seed) & (RECHECK_ONE_IN - 1) == 0
    }

    /// The metadata written next to the per-seed lines (`sweep.json`).
    pub fn meta(&self) -> SweepMeta {
        SweepMeta {
            format: 1,
            tool: tool(),
            file: self.file.clone(),
            scenario_name: self.scenario.name.clone(),
            scenario_hash: scenario_hash(&self.scenario),
            range: self.range,
            shard: self.shard,
            inject_bug: self.inject_bug.map(bug_name),
        }
    }
}

/// `sweep.json`: what a shard output holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepMeta {
    /// Output format version (1).
    pub format: u32,
    /// Tool and version.
    pub tool: ToolInfo,
    /// Scenario file as given.
    pub file: String,
    /// Scenario name.
    pub scenario_name: String,
    /// Hash of the scenario as read (with its `vary` block).
    pub scenario_hash: String,
    /// The whole range of the sweep.
    pub range: SeedRange,
    /// The shard, if sharded.
    pub shard: Option<Shard>,
    /// Test-only fault injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_bug: Option<String>,
}

fn tool() -> ToolInfo {
    ToolInfo {
        name: "reuseport-sim".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// The CLI name of a migration path (`final-ack`).
pub fn bug_name(p: MigrationPath) -> String {
    p.name().replace('_', "-")
}

/// The path named `final-ack` (or `final_ack`).
pub fn bug_from_name(s: &str) -> Option<MigrationPath> {
    [
        MigrationPath::AcceptQueue,
        MigrationPath::SynackTimer,
        MigrationPath::FinalAck,
    ]
    .into_iter()
    .find(|p| p.name() == s.replace('-', "_"))
}

/// How many seeds `shard` of `range` holds.
pub fn shard_len(range: SeedRange, shard: Option<Shard>) -> u64 {
    let shard = shard.unwrap_or(Shard { index: 0, count: 1 });
    // Without overflow for any range: offsets index, index+count, ...
    let len = range.len();
    len / shard.count + u64::from(shard.index < len % shard.count)
}

/// The seeds of `shard` of `range` (all of them for `None`), in order.
///
/// Callers bound the count first ([`shard_len`], [`MAX_SEEDS_PER_PROCESS`]).
pub fn shard_seeds(range: SeedRange, shard: Option<Shard>) -> Vec<u64> {
    let shard = shard.unwrap_or(Shard { index: 0, count: 1 });
    let step = usize::try_from(shard.count).unwrap_or(usize::MAX);
    (shard.index..range.len())
        .step_by(step)
        .map(|off| range.start + off)
        .collect()
}

/// SplitMix64's finalizer: a fixed, well-mixed hash of a seed.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

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

// ---------------------------------------------------------------------------
// Summary.

/// An exact distribution over seeds (nearest-rank percentiles).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dist {
    /// Seeds counted.
    pub count: u64,
    /// Sum over seeds.
    pub sum: u64,
    /// Minimum.
    pub min: u64,
    /// Median (nearest rank).
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

impl Dist {
    /// The distribution of `values` (any order).
    pub fn of(mut values: Vec<u64>) -> Dist {
        if values.is_empty() {
            return Dist::default();
        }
        values.sort_unstable();
        let n = values.len() as u64;
        // Nearest rank: the smallest value with at least p% of values <= it.
        let rank = |p: u64| values[((p * n).div_ceil(100)).max(1) as usize - 1];
        Dist {
            count: n,
            sum: values.iter().sum(),
            min: values[0],
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: values[values.len() - 1],
        }
    }

    /// The mean with three decimals, in integer arithmetic.
    pub fn mean(&self) -> String {
        if self.count == 0 {
            return "-".into();
        }
        let milli =
            (u128::from(self.sum) * 1000 + u128::from(self.count) / 2) / u128::from(self.count);
        format!("{}.{:03}", milli / 1000, milli % 1000)
    }
}

/// Distributions of one side (migration off or on).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideDists {
    /// Connections reset (ECONNRESET).
    pub resets: Dist,
    /// Connections refused (ECONNREFUSED).
    pub refused: Dist,
    /// Connections timed out.
    pub timeouts: Dist,
    /// Migration hops.
    pub migrations: Dist,
    /// Connection attempts.
    pub attempted: Dist,
}

impl SideDists {
    fn of<'a>(runs: impl Iterator<Item = &'a RunSummary> + Clone) -> Self {
        let d = |f: fn(&RunSummary) -> u64| Dist::of(runs.clone().map(f).collect());
        SideDists {
            resets: d(|r| r.connections.reset),
            refused: d(|r| r.connections.refused),
            timeouts: d(|r| r.connections.timed_out),
            migrations: d(|r| r.migrations),
            attempted: d(|r| r.connections.attempted),
        }
    }
}

/// Off and on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distributions {
    /// Migration off.
    pub off: SideDists,
    /// Migration on.
    pub on: SideDists,
}

/// How often a check ran and failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCount {
    /// Check name.
    pub name: String,
    /// What it verifies.
    pub description: String,
    /// Runs (or seeds, for determinism) it was applied to.
    pub checked: u64,
    /// Failures.
    pub failed: u64,
}

/// A flag and the seeds that raised it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagCount {
    /// Flag name.
    pub name: String,
    /// What it means.
    pub description: String,
    /// Seeds that raised it.
    pub count: u64,
    /// The first of those seeds.
    pub seeds: Vec<u64>,
    /// Command to look at the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// One failing seed, ready to paste into a bug report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingSeed {
    /// The seed.
    pub seed: u64,
    /// Values drawn for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub varied: BTreeMap<String, Value>,
    /// Its failed checks.
    pub failures: Vec<SeedFailure>,
    /// The command that reproduces the first failure on its own.
    pub repro: String,
}

/// Scenario identity in a summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryScenario {
    /// Name.
    pub name: String,
    /// File as given.
    pub file: String,
    /// Hash of the scenario as read.
    pub hash: String,
}

/// The seeds a summary covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummarySeeds {
    /// The sweep's range.
    pub range: String,
    /// Seeds summarized.
    pub count: u64,
    /// The shard, when this summary covers one shard only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
}

/// The summary of a sweep: a pure function of the sorted per-seed results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Tool.
    pub tool: ToolInfo,
    /// Scenario.
    pub scenario: SummaryScenario,
    /// Seeds.
    pub seeds: SummarySeeds,
    /// Test-only fault injection in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_bug: Option<String>,
    /// Outcome distributions, migration off vs on (a run that panicked is
    /// left out of its side).
    pub distributions: Distributions,
    /// Each check: how many runs it was applied to and how many failed.
    pub invariants: Vec<CheckCount>,
    /// Flags.
    pub flags: Vec<FlagCount>,
    /// Seeds with at least one failed check.
    pub failing_seed_count: u64,
    /// Every failing seed, in seed order.
    pub failing_seeds: Vec<FailingSeed>,
    /// `pass` or `fail`.
    pub result: String,
}

/// `s` quoted for a POSIX shell when it needs quoting.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:+,@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command that reproduces seed `seed`'s failure `f` alone.
pub fn repro_command(meta: &SweepMeta, seed: u64, f: &SeedFailure) -> String {
    let bug = meta
        .inject_bug
        .as_ref()
        .map(|b| format!(" --inject-bug {b}"))
        .unwrap_or_default();
    let file = shell_quote(&meta.file);
    match f.run.as_str() {
        "off" | "on" => format!(
            "reuseport-sim run {file} --seed {seed} --migrate {}{bug}",
            f.run
        ),
        _ => format!("reuseport-sim compare {file} --seed {seed}{bug}"),
    }
}

/// Summarizes `results` (sorted by seed) of the sweep described by `meta`.
/// `meta.shard` is shown when the summary covers one shard only.
pub fn summarize(meta: &SweepMeta, results: &[SeedResult]) -> Summary {
    let offs = results.iter().filter_map(|r| r.off.as_ref());
    let ons = results.iter().filter_map(|r| r.on.as_ref());
    let distributions = Distributions {
        off: SideDists::of(offs),
        on: SideDists::of(ons),
    };
    let runs = results.len() as u64 * 2;
    let completed_runs = results
        .iter()
        .map(|r| u64::from(r.off.is_some()) + u64::from(r.on.is_some()))
        .sum::<u64>();
    let mut invariants_out = Vec::new();
    for (name, description) in CHECKS {
        let checked = match name {
            invariants::NO_PANIC | invariants::TIME_MONOTONIC => runs,
            invariants::MIGRATION_OFF_IS_OFF => {
                results.iter().filter(|r| r.off.is_some()).count() as u64
            }
            invariants::NO_CLOSE_LOSS_WITH_LIVE_LISTENER => results
                .iter()
                .filter(|r| r.live_listener && r.on.is_some())
                .count() as u64,
            DETERMINISM => results.iter().filter(|r| r.rechecked).count() as u64,
            _ => completed_runs,
        };
        let failed = results
            .iter()
            .flat_map(|r| &r.failures)
            .filter(|f| f.check == name)
            .count() as u64;
        invariants_out.push(CheckCount {
            name: name.into(),
            description: description.into(),
            checked,
            failed,
        });
    }
    let flagged: Vec<u64> = results
        .iter()
        .filter(|r| r.flags.iter().any(|f| f == FLAG_MORE_RESETS_WITH_MIGRATION))
        .map(|r| r.seed)
        .collect();
    let bug = meta
        .inject_bug
        .as_ref()
        .map(|b| format!(" --inject-bug {b}"))
        .unwrap_or_default();
    let flags = vec![FlagCount {
        name: FLAG_MORE_RESETS_WITH_MIGRATION.into(),
        description: "migration on reset more connections than migration off (same seed); \
                      reported, not a failure"
            .into(),
        count: flagged.len() as u64,
        seeds: flagged.iter().take(FLAG_SEEDS_MAX).copied().collect(),
        example: flagged.first().map(|s| {
            format!(
                "reuseport-sim compare {} --seed {s}{bug}",
                shell_quote(&meta.file)
            )
        }),
    }];
    let failing_seeds: Vec<FailingSeed> = results
        .iter()
        .filter(|r| !r.failures.is_empty())
        .map(|r| FailingSeed {
            seed: r.seed,
            varied: r.varied.clone(),
            failures: r.failures.clone(),
            repro: repro_command(meta, r.seed, &r.failures[0]),
        })
        .collect();
    Summary {
        tool: tool(),
        scenario: SummaryScenario {
            name: meta.scenario_name.clone(),
            file: meta.file.clone(),
            hash: meta.scenario_hash.clone(),
        },
        seeds: SummarySeeds {
            range: meta.range.to_string(),
            count: results.len() as u64,
            shard: meta.shard.map(|s| s.to_string()),
        },
        inject_bug: meta.inject_bug.clone(),
        distributions,
        invariants: invariants_out,
        flags,
        failing_seed_count: failing_seeds.len() as u64,
        result: if failing_seeds.is_empty() {
            "pass"
        } else {
            "fail"
        }
        .into(),
        failing_seeds,
    }
}

impl Summary {
    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("summary serializes") + "\n"
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failing_seed_count == 0
    }

    /// The text report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sweep     {}  ({}, hash {})",
            self.scenario.name, self.scenario.file, self.scenario.hash
        );
        let shard = self
            .seeds
            .shard
            .as_ref()
            .map(|x| format!("   shard {x} (merge the shard outputs for the whole range)"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "seeds     {} ({} seeds, each run with migration off and on){shard}",
            self.seeds.range, self.seeds.count
        );
        if let Some(b) = &self.inject_bug {
            let _ = writeln!(
                s,
                "INJECTED  test-only bug in the {b} migration path (--inject-bug)"
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "per seed        {:>7} {:>7} {:>7} {:>7} {:>7} {:>10}",
            "min", "p50", "p90", "p99", "max", "mean"
        );
        for (side, d) in [
            ("off", &self.distributions.off),
            ("on", &self.distributions.on),
        ] {
            let _ = writeln!(s, "migration {side} ({} runs)", d.resets.count);
            for (name, x) in [
                ("resets", &d.resets),
                ("refused", &d.refused),
                ("timeouts", &d.timeouts),
                ("migrations", &d.migrations),
            ] {
                let _ = writeln!(
                    s,
                    "  {:<13} {:>7} {:>7} {:>7} {:>7} {:>7} {:>10}",
                    name,
                    x.min,
                    x.p50,
                    x.p90,
                    x.p99,
                    x.max,
                    x.mean()
                );
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "invariants                          checked   failed");
        for c in &self.invariants {
            let _ = writeln!(
                s,
                "  {:<32} {:>8} {:>8}{}",
                c.name,
                c.checked,
                c.failed,
                if c.failed > 0 { "   FAIL" } else { "" }
            );
        }
        let _ = writeln!(s);
        for f in &self.flags {
            let _ = write!(s, "flag      {}: {} seed(s)", f.name, f.count);
            if !f.seeds.is_empty() {
                let list: Vec<String> = f.seeds.iter().map(|x| x.to_string()).collect();
                let more = if f.count as usize > f.seeds.len() {
                    ", ..."
                } else {
                    ""
                };
                let _ = write!(s, " [{}{more}]", list.join(", "));
            }
            let _ = writeln!(s);
            if let Some(e) = &f.example {
                let _ = writeln!(s, "          e.g. {e}");
            }
        }
        let _ = writeln!(s);
        if self.failing_seeds.is_empty() {
            let _ = writeln!(s, "result    PASS: no invariant failed");
            return s;
        }
        let _ = writeln!(
            s,
            "result    FAIL: {} failing seed(s)",
            self.failing_seed_count
        );
        for f in self.failing_seeds.iter().take(TEXT_FAILURES_MAX) {
            let _ = writeln!(s);
            let _ = writeln!(s, "seed {}", f.seed);
            for x in &f.failures {
                let _ = writeln!(s, "  [{}] migration {}: {}", x.check, x.run, x.message);
            }
            if !f.varied.is_empty() {
                let _ = writeln!(s, "  drawn:  {}", vary::describe(&f.varied));
            }
            let _ = writeln!(s, "  repro:  {}", f.repro);
        }
        if self.failing_seeds.len() > TEXT_FAILURES_MAX {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "... and {} more failing seed(s) (all are in --format json and --out)",
                self.failing_seeds.len() - TEXT_FAILURES_MAX
            );
        }
        s
    }
}

// ---------------------------------------------------------------------------
// Shard outputs.

/// Per-seed results as JSON lines.
pub fn to_jsonl(results: &[SeedResult]) -> String {
    let mut s = String::new();
    for r in results {
        s.push_str(&serde_json::to_string(r).expect("seed result serializes"));
        s.push('\n');
    }
    s
}

/// Reads JSON lines of per-seed results; errors name the line.
pub fn from_jsonl(text: &str, name: &str) -> Result<Vec<SeedResult>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("{name}:{}: {e}", i + 1)))
        .collect()
}

/// Reads the results file of an interrupted sweep: lines in completion
/// order, of which the last may be cut short by the interruption (it is
/// dropped: that seed runs again). Every seed must belong to `spec`'s shard
/// and appear once.
pub fn read_partial(text: &str, name: &str, spec: &SweepSpec) -> Result<Vec<SeedResult>, String> {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut results = from_jsonl(complete, name)?;
    results.sort_by_key(|r| r.seed);
    let range = spec.range;
    for w in results.windows(2) {
        if w[0].seed == w[1].seed {
            return Err(format!("{name}: seed {} appears twice", w[0].seed));
        }
    }
    for r in &results {
        let ours = r.seed >= range.start
            && r.seed < range.end
            && spec.shard.map_or(true, |s| s.owns(r.seed - range.start));
        if !ours {
            return Err(format!(
                "{name}: seed {} is not in seeds {range}{}",
                r.seed,
                spec.shard.map_or(String::new(), |s| format!(" shard {s}"))
            ));
        }
    }
    Ok(results)
}

/// Whether two shard outputs come from the same scenario and options, so
/// that their results can be combined.
fn same_scenario(a: &SweepMeta, b: &SweepMeta) -> bool {
    a.scenario_hash == b.scenario_hash && a.inject_bug == b.inject_bug
}

/// Seed ranges missing from the sorted, distinct `seeds` within
/// `start..end`, as text (at most a few).
fn gaps(seeds: &[u64], start: u64, end: u64) -> String {
    let mut out = Vec::new();
    let mut next = start;
    for &s in seeds.iter().chain(std::iter::once(&end)) {
        if s > next {
            out.push(if s - next == 1 {
                next.to_string()
            } else {
                format!("{next}..{s}")
            });
        }
        next = s.saturating_add(1);
        if out.len() == 5 {
            out.push("...".into());
            break;
        }
    }
    out.join(", ")
}

/// Merges sweep outputs: shards of one sweep, or sweeps of sub-ranges of
/// one scenario (e.g. `0..5000` and `5000..10000`), or both. Each output
/// must be complete for its own seeds (an interrupted one is continued with
/// `sweep --resume` first), the outputs must come from the same scenario,
/// and together they must hold every seed of one contiguous range exactly
/// once. Returns the metadata of the whole (no shard, the union range) and
/// the results in seed order. Shards of one range merge into exactly the
/// summary of the unsharded sweep; sub-range sweeps also re-checked their
/// own first seed for determinism (see [`SweepSpec::rechecks`]).
pub fn merge(
    parts: Vec<(String, SweepMeta, Vec<SeedResult>)>,
) -> Result<(SweepMeta, Vec<SeedResult>), String> {
    let Some((first_name, first, _)) = parts.first() else {
        return Err("merge needs at least one shard output".into());
    };
    let (first_name, mut meta) = (first_name.clone(), first.clone());
    let mut all: Vec<(SeedResult, usize)> = Vec::new();
    let mut names = Vec::new();
    for (k, (name, m, results)) in parts.into_iter().enumerate() {
        if !same_scenario(&m, &meta) {
            return Err(format!(
                "{name} is not from the same scenario as {first_name}: scenario {} ({}, hash {}) \
                 vs scenario {} ({}, hash {})",
                m.scenario_name,
                m.file,
                m.scenario_hash,
                meta.scenario_name,
                meta.file,
                meta.scenario_hash,
            ));
        }
        let spec_seeds = shard_seeds(m.range, m.shard);
        let got: Vec<u64> = results.iter().map(|r| r.seed).collect();
        if got != spec_seeds {
            return Err(format!(
                "{name} holds {} seed result(s), but seeds {}{} are {}: the output is \
                 incomplete (an interrupted sweep: continue it with `sweep --resume --out {name}`) \
                 or was edited",
                got.len(),
                m.range,
                m.shard.map_or(String::new(), |s| format!(" shard {s}")),
                spec_seeds.len()
            ));
        }
        all.extend(results.into_iter().map(|r| (r, k)));
        names.push(name);
    }
    all.sort_by_key(|(r, _)| r.seed);
    for w in all.windows(2) {
        if w[0].0.seed == w[1].0.seed {
            return Err(format!(
                "seed {} is in both {} and {}: each seed must be merged once",
                w[0].0.seed, names[w[0].1], names[w[1].1]
            ));
        }
    }
    let seeds: Vec<u64> = all.iter().map(|(r, _)| r.seed).collect();
    let (lo, hi) = (seeds[0], seeds[seeds.len() - 1]);
    if (hi - lo) as usize + 1 != seeds.len() {
        let missing = gaps(&seeds, lo, hi + 1);
        let shard_hint = match meta.shard {
            Some(s) if s.count > 1 => format!(
                " (the outputs are shards of {} shard(s): is one missing?)",
                s.count
            ),
            _ => String::new(),
        };
        return Err(format!(
            "missing seeds {missing} between {lo} and {hi}: the outputs must cover one \
             contiguous range{shard_hint}"
        ));
    }
    meta.range = SeedRange {
        start: lo,
        end: hi + 1,
    };
    meta.shard = None;
    Ok((meta, all.into_iter().map(|(r, _)| r).collect()))
}

// ---------------------------------------------------------------------------
// Histogram.

/// An SVG histogram of resets per seed, migration off vs on.
pub fn resets_histogram(summary_title: &str, results: &[SeedResult]) -> Result<String, String> {
    use plotters::prelude::*;
    let off: Vec<u64> = results
        .iter()
        .filter_map(|r| r.off.as_ref().map(|x| x.connections.reset))
        .collect();
    let on: Vec<u64> = results
        .iter()
        .filter_map(|r| r.on.as_ref().map(|x| x.connections.reset))
        .collect();
    let max = off.iter().chain(&on).copied().max().unwrap_or(0);
    const BINS_MAX: u64 = 60;
    let width = (max + 1).div_ceil(BINS_MAX).max(1);
    let bins = (max / width + 1) as usize;
    let count = |v: &[u64]| {
        let mut c = vec![0u64; bins];
        for &x in v {
            c[(x / width) as usize] += 1;
        }
        c
    };
    let (c_off, c_on) = (count(&off), count(&on));
    let y_max = c_off.iter().chain(&c_on).copied().max().unwrap_or(0).max(1);
    let err = |e: &dyn fmt::Display| format!("histogram: {e}");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{summary_title}: connections reset per seed"),
                ("sans-serif", 20),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..bins as f64, 0f64..(y_max as f64 * 1.1))
            .map_err(|e| err(&e))?;
        let x_desc = if width == 1 {
            "connections reset in the run".to_string()
        } else {
            format!("connections reset in the run (bins of {width})")
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_desc)
            .y_desc("seeds")
            .x_labels(bins.min(20))
            .x_label_formatter(&|v| format!("{}", (*v as u64) * width))
            .y_label_formatter(&|v| format!("{}", *v as u64))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| err(&e))?;
        let off_color = RGBColor(214, 39, 40);
        let on_color = RGBColor(31, 119, 180);
        chart
            .draw_series(
                c_off
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(|(i, &n)| {
                        Rectangle::new(
                            [(i as f64 + 0.08, 0.0), (i as f64 + 0.5, n as f64)],
                            off_color.mix(0.8).filled(),
                        )
                    }),
            )
            .map_err(|e| err(&e))?
            .label(format!("migration off ({} runs)", off.len()))
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], off_color.filled())
            });
        chart
            .draw_series(
                c_on.iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(|(i, &n)| {
                        Rectangle::new(
                            [(i as f64 + 0.5, 0.0), (i as f64 + 0.92, n as f64)],
                            on_color.mix(0.8).filled(),
                        )
                    }),
            )
            .map_err(|e| err(&e))?
            .label(format!("migration on ({} runs)", on.len()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], on_color.filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(
            "0..10000".parse::<SeedRange>().unwrap(),
            SeedRange {
                start: 0,
                end: 10000
            }
        );
        assert_eq!("5..=5".parse::<SeedRange>().unwrap().len(), 1);
        for bad in [
            "1..-1",
            "10..5",
            "5..5",
            "a..5",
            "5",
            "..5",
            "0..=18446744073709551615",
        ] {
            assert!(bad.parse::<SeedRange>().is_err(), "{bad}");
        }
        assert!("10..5"
            .parse::<SeedRange>()
            .unwrap_err()
            .contains("empty range"));
    }

    #[test]
    fn shards_parse_and_partition() {
        assert!("2/2".parse::<Shard>().unwrap_err().contains("out of range"));
        assert!("0/0".parse::<Shard>().is_err());
        let range: SeedRange = "10..21".parse().unwrap();
        let mut all: Vec<u64> = (0..3)
            .flat_map(|i| shard_seeds(range, Some(Shard { index: i, count: 3 })))
            .collect();
        all.sort();
        assert_eq!(all, shard_seeds(range, None));
        for i in 0..3 {
            let sh = Some(Shard { index: i, count: 3 });
            assert_eq!(shard_len(range, sh), shard_seeds(range, sh).len() as u64);
        }
        let sh = Some(Shard { index: 4, count: 5 });
        assert_eq!(shard_len("0..4".parse().unwrap(), sh), 0);
        assert_eq!(
            shard_seeds(range, Some("1/3".parse().unwrap())),
            vec![11, 14, 17, 20]
        );
    }

    #[test]
    fn shard_from_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(shard_from_env(env(&[]), None).unwrap(), None);
        let (s, _) = shard_from_env(
            env(&[
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ]),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s, Shard { index: 3, count: 4 });
        let (s, _) = shard_from_env(
            env(&[
                ("SLURM_ARRAY_TASK_ID", "5"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_STEP", "2"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ]),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s, Shard { index: 2, count: 3 });
        let (s, _) = shard_from_env(env(&[("JOB_COMPLETION_INDEX", "1")]), Some(2))
            .unwrap()
            .unwrap();
        assert_eq!(s, Shard { index: 1, count: 2 });
        assert!(shard_from_env(env(&[("JOB_COMPLETION_INDEX", "1")]), None)
            .unwrap_err()
            .contains("--shards"));
        assert!(
            shard_from_env(env(&[("JOB_COMPLETION_INDEX", "2")]), Some(2))
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let d = Dist::of((1..=100).rev().collect());
        assert_eq!((d.min, d.p50, d.p90, d.p99, d.max), (1, 50, 90, 99, 100));
        assert_eq!(d.mean(), "50.500");
        let d = Dist::of(vec![7]);
        assert_eq!((d.min, d.p50, d.p99, d.max), (7, 7, 7, 7));
        let d = Dist::of(vec![0, 0, 0, 10]);
        assert_eq!((d.p50, d.p90, d.p99), (0, 10, 10));
        assert_eq!(Dist::of(vec![]), Dist::default());
    }

    #[test]
    fn quiet_panics_are_caught_with_location() {
        let e = catch_quietly(|| panic!("invariant queue_limits: boom")).unwrap_err();
        assert!(e.starts_with("invariant queue_limits: boom (at "), "{e}");
        assert_eq!(catch_quietly(|| 5).unwrap(), 5);
    }

    #[test]
    fn bug_names_round_trip() {
        for p in [
            MigrationPath::AcceptQueue,
            MigrationPath::SynackTimer,
            MigrationPath::FinalAck,
        ] {
            assert_eq!(bug_from_name(&bug_name(p)), Some(p));
        }
        assert_eq!(bug_from_name("nope"), None);
    }
}
