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

mod exec;
mod histogram;
mod outputs;
mod shard;
mod summary;

pub use exec::{catch_quietly, run_seed, run_sweep, scenario_for};
pub use histogram::resets_histogram;
pub use outputs::{from_jsonl, merge, read_partial, to_jsonl};
pub use shard::{shard_from_env, shard_len, shard_seeds, SeedRange, Shard};
pub use summary::*;

use crate::report::{Report, ToolInfo};
use crate::scenario::scenario_hash;
use crate::scenario::Scenario;
use crate::vary;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sim_tcp::MigrationPath;
use std::collections::BTreeMap;
use std::fmt;

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

/// SplitMix64's finalizer: a fixed, well-mixed hash of a seed.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
