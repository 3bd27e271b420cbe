//! The summary of a sweep: exact distributions, checks, flags, failing
//! seeds and their repro commands.

use super::*;
use crate::invariants::{self, CHECKS, DETERMINISM, FLAG_MORE_RESETS_WITH_MIGRATION};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

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
