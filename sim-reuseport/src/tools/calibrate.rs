//! `reuseport-sim calibrate`: the same scenario on the real kernel
//! (`--repeats` runs) and on the simulator (`--seeds` seeds), each metric
//! side by side with a verdict.
//!
//! Seeds: simulator run *j* uses seed `base + j`; kernel run *i* uses seed
//! `base + (i mod seeds)`, so both sides draw the same arrival times and
//! `vary` values, and the kernel's spread adds to them what only the
//! kernel varies (its own flow-hash secret, timer and scheduling jitter).
//!
//! Verdict: a metric is **within** when the simulator's median lies in the
//! kernel's `[min, max]` widened by a tolerance of `max(2, 10 % of the
//! kernel median)` for counts and `max(0.5 ms, 10 % of the kernel median)`
//! for latencies ([`tolerance`]); else **outside**, and the command exits 1.

use crate::backend::{Backend, KernelBackend, RunOptions, RunResult, Simulator};
use crate::report::Report;
use crate::scenario::lower;
use crate::tools::kernel_cmd::{load_plan, require_environment, run_on_kernel, CmdError};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The arguments of `reuseport-sim calibrate`.
#[derive(Clone, Debug)]
pub struct CalibrateArgs {
    /// Scenario file.
    pub file: PathBuf,
    /// Kernel runs.
    pub repeats: u32,
    /// Simulator seeds.
    pub seeds: u32,
    /// `tcp_migrate_req` override for both sides.
    pub migrate: Option<bool>,
    /// JSON instead of text.
    pub json: bool,
    /// SVG of the first kernel run over the first simulator run.
    pub plot: Option<PathBuf>,
}

/// Min, median, max of a sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spread {
    /// Smallest.
    pub min: f64,
    /// Median (the lower middle value for an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
    /// Every value, in run order.
    pub values: Vec<f64>,
}

impl Spread {
    /// The spread of `values` (not empty).
    pub fn of(values: Vec<f64>) -> Self {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        Spread {
            min: sorted[0],
            median: sorted[(sorted.len() - 1) / 2],
            max: sorted[sorted.len() - 1],
            values,
        }
    }
}

/// What a metric counts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Connections or packets.
    Count,
    /// Milliseconds.
    Ms,
}

/// One metric's comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricRow {
    /// Name: a `connections` field, an `nstat` counter (summed over the
    /// server hosts' namespaces), or a latency percentile.
    pub name: String,
    /// Unit.
    pub unit: Unit,
    /// Kernel runs.
    pub kernel: Spread,
    /// Simulator seeds.
    pub sim: Spread,
    /// The kernel's range widened by the tolerance.
    pub band: [f64; 2],
    /// Whether the simulator's median is inside `band`.
    pub within: bool,
}

/// The whole comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    /// Scenario name.
    pub scenario: String,
    /// Scenario hash.
    pub hash: String,
    /// `uname -r`.
    pub kernel_release: String,
    /// Online CPUs of this machine.
    pub cpus: usize,
    /// `/proc/loadavg` before the first kernel run.
    pub loadavg: String,
    /// `tcp_migrate_req` override: "scenario", "on" or "off".
    pub migrate: String,
    /// Kernel run seeds, in run order.
    pub kernel_seeds: Vec<u64>,
    /// Simulator seeds.
    pub sim_seeds: Vec<u64>,
    /// How the verdict is made.
    pub rule: String,
    /// Metrics.
    pub metrics: Vec<MetricRow>,
    /// Names of the metrics outside.
    pub outside: Vec<String>,
}

/// The verdict rule, as printed.
pub const RULE: &str = "within = simulator median inside [kernel min - t, kernel max + t], t = max(2, 10% of kernel median) for counts, max(0.5 ms, 10% of kernel median) for latencies";

/// The tolerance added on both sides of the kernel's range.
pub fn tolerance(unit: Unit, kernel_median: f64) -> f64 {
    let floor: f64 = match unit {
        Unit::Count => 2.0,
        Unit::Ms => 0.5,
    };
    floor.max(0.10 * kernel_median.abs())
}

/// Counters compared (namespace totals of the server hosts).
const COUNTERS: [&str; 10] = [
    "TcpOutRsts",
    "TcpPassiveOpens",
    "TcpExtListenOverflows",
    "TcpExtListenDrops",
    "TcpExtTCPMigrateReqSuccess",
    "TcpExtTCPMigrateReqFailure",
    "TcpExtTCPReqQFullDrop",
    "TcpExtSyncookiesSent",
    "TcpExtTCPSynRetrans",
    "TcpExtEmbryonicRsts",
];

/// The metric values of one report; `servers`: names of the hosts with a
/// server, whose namespace counters are summed.
pub fn metric_values(r: &Report, servers: &[String]) -> Vec<(String, Unit, f64)> {
    let c = &r.connections;
    let mut v: Vec<(String, Unit, f64)> = [
        ("attempted", c.attempted),
        ("completed", c.completed),
        ("reset", c.reset),
        ("refused", c.refused),
        ("timed_out", c.timed_out),
        ("in_flight", c.in_flight),
    ]
    .into_iter()
    .map(|(n, x)| (n.to_string(), Unit::Count, x as f64))
    .collect();
    for name in COUNTERS {
        let total: u64 = servers
            .iter()
            .filter_map(|h| r.counters_by_host.get(h))
            .filter_map(|m| m.get(name))
            .sum();
        v.push((name.to_string(), Unit::Count, total as f64));
    }
    let l = &r.latency;
    for (n, x) in [
        ("handshake_p50_ms", l.handshake_ms.p50),
        ("handshake_p99_ms", l.handshake_ms.p99),
        ("completion_p50_ms", l.completion_ms.p50),
        ("completion_p99_ms", l.completion_ms.p99),
    ] {
        v.push((n.to_string(), Unit::Ms, x));
    }
    v
}

/// Runs the comparison; `Err` for input, environment or a failed run.
pub fn calibrate(a: &CalibrateArgs) -> Result<(Calibration, Option<String>), CmdError> {
    if a.repeats == 0 || a.seeds == 0 {
        return Err(CmdError::input("--repeats and --seeds must be at least 1"));
    }
    let (scn0, plan0, base, _) = load_plan(&a.file, None)?;
    crate::backend::kernel::spec::kernel_spec(&plan0, base, a.migrate)
        .map_err(|e| CmdError::input(format!("{}: {e}", a.file.display())))?;
    let env = require_environment()?;
    let servers: Vec<String> = {
        let mut h: Vec<String> = plan0
            .servers
            .iter()
            .map(|s| plan0.hosts[s.host.index()].name.clone())
            .collect();
        h.sort();
        h.dedup();
        h
    };
    let interval = a
        .plot
        .as_ref()
        .map(|_| crate::plots::sample_interval(&scn0));
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string();
    let sim_seeds: Vec<u64> = (0..u64::from(a.seeds)).map(|j| base + j).collect();
    let kernel_seeds: Vec<u64> = (0..u64::from(a.repeats))
        .map(|i| base + i % u64::from(a.seeds))
        .collect();
    let mut kernel_runs = Vec::new();
    for (i, &seed) in kernel_seeds.iter().enumerate() {
        eprintln!("kernel run {}/{} (seed {seed})", i + 1, a.repeats);
        let (_, plan, _, _) = load_plan(&a.file, Some(seed))?;
        let opts = RunOptions {
            seed: Some(seed),
            migrate: a.migrate,
            sample_interval: interval,
            ..Default::default()
        };
        let r = run_on_kernel(&KernelBackend::default(), &plan, opts).map_err(|e| CmdError {
            code: u8::try_from(e.exit_code()).unwrap_or(1),
            message: format!("{}: kernel run {}: {e}", a.file.display(), i + 1),
        })?;
        kernel_runs.push(r);
    }
    let mut sim_runs = Vec::new();
    for &seed in &sim_seeds {
        let (scn, _) =
            crate::vary::apply(&scn0, seed).map_err(|e| CmdError::input(e.to_string()))?;
        let plan = lower(&scn).map_err(|e| CmdError::input(format!("{e:?}")))?;
        let opts = RunOptions {
            seed: Some(seed),
            migrate: a.migrate,
            sample_interval: interval,
            ..Default::default()
        };
        let r = Simulator
            .run(&plan, opts)
            .map_err(|e| CmdError::input(format!("{}: seed {seed}: {e}", a.file.display())))?;
        sim_runs.push(r);
    }
    let metrics = compare(&kernel_runs, &sim_runs, &servers);
    let outside = metrics
        .iter()
        .filter(|m| !m.within)
        .map(|m| m.name.clone())
        .collect();
    let plot = match &a.plot {
        Some(_) => Some(
            crate::plots::render_labelled(&kernel_runs[0], "kernel", &sim_runs[0], "sim")
                .map_err(CmdError::input)?,
        ),
        None => None,
    };
    Ok((
        Calibration {
            scenario: plan0.name.clone(),
            hash: plan0.hash.clone(),
            kernel_release: env.kernel_release,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            loadavg,
            migrate: match a.migrate {
                None => "scenario",
                Some(true) => "on",
                Some(false) => "off",
            }
            .into(),
            kernel_seeds,
            sim_seeds,
            rule: RULE.into(),
            metrics,
            outside,
        },
        plot,
    ))
}

/// Side by side, metric by metric (in [`metric_values`] order).
pub fn compare(kernel: &[RunResult], sim: &[RunResult], servers: &[String]) -> Vec<MetricRow> {
    let k: Vec<_> = kernel
        .iter()
        .map(|r| metric_values(&r.report, servers))
        .collect();
    let s: Vec<_> = sim
        .iter()
        .map(|r| metric_values(&r.report, servers))
        .collect();
    (0..k[0].len())
        .map(|m| {
            let (name, unit, _) = k[0][m].clone();
            let kernel = Spread::of(k.iter().map(|v| v[m].2).collect());
            let sim = Spread::of(s.iter().map(|v| v[m].2).collect());
            let t = tolerance(unit, kernel.median);
            let band = [kernel.min - t, kernel.max + t];
            let within = band[0] <= sim.median && sim.median <= band[1];
            MetricRow {
                name,
                unit,
                kernel,
                sim,
                band,
                within,
            }
        })
        .collect()
}

impl Calibration {
    /// The aligned text table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "scenario  {}  (hash {})", self.scenario, self.hash);
        let _ = writeln!(
            s,
            "kernel    Linux {}, {} CPU(s), loadavg {}, migrate {}",
            self.kernel_release, self.cpus, self.loadavg, self.migrate
        );
        let _ = writeln!(
            s,
            "runs      kernel {} (seeds {:?})  simulator {} (seeds {:?})",
            self.kernel_seeds.len(),
            self.kernel_seeds,
            self.sim_seeds.len(),
            self.sim_seeds
        );
        let _ = writeln!(s, "rule      {}", self.rule);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<28} {:>27}   {:>27}   {:>19}  verdict",
            "metric", "kernel min / median / max", "sim min / median / max", "band"
        );
        for m in &self.metrics {
            let f = |x: f64| match m.unit {
                Unit::Count => format!("{x:.0}"),
                Unit::Ms => format!("{x:.2}"),
            };
            let _ = writeln!(
                s,
                "{:<28} {:>27}   {:>27}   {:>19}  {}",
                m.name,
                format!(
                    "{} / {} / {}",
                    f(m.kernel.min),
                    f(m.kernel.median),
                    f(m.kernel.max)
                ),
                format!("{} / {} / {}", f(m.sim.min), f(m.sim.median), f(m.sim.max)),
                format!("[{}, {}]", f(m.band[0]), f(m.band[1])),
                if m.within { "within" } else { "OUTSIDE" }
            );
        }
        let _ = writeln!(s);
        if self.outside.is_empty() {
            let _ = writeln!(s, "all {} metrics within", self.metrics.len());
        } else {
            let _ = writeln!(s, "outside: {}", self.outside.join(", "));
        }
        s
    }
}

/// `reuseport-sim calibrate`: prints the table (or JSON), writes the plot,
/// and fails with exit status 1 when a metric is outside.
pub fn command(a: &CalibrateArgs) -> Result<(), CmdError> {
    let (cal, plot) = calibrate(a)?;
    if let (Some(p), Some(svg)) = (&a.plot, plot) {
        crate::tools::kernel_cmd::write_plot(p, &svg)?;
    }
    if a.json {
        print!(
            "{}",
            serde_json::to_string_pretty(&cal).expect("calibration serializes") + "\n"
        );
    } else {
        print!("{}", cal.to_text());
    }
    if cal.outside.is_empty() {
        Ok(())
    } else {
        Err(CmdError {
            code: 1,
            message: format!(
                "{}: outside the kernel's spread: {}",
                a.file.display(),
                cal.outside.join(", ")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_lower_middle_as_median() {
        let s = Spread::of(vec![5.0, 1.0, 3.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 5.0));
        assert_eq!(s.values, vec![5.0, 1.0, 3.0]);
        let s = Spread::of(vec![4.0, 2.0]);
        assert_eq!(s.median, 2.0);
    }

    #[test]
    fn tolerance_has_a_floor_and_grows_with_the_median() {
        assert_eq!(tolerance(Unit::Count, 0.0), 2.0);
        assert_eq!(tolerance(Unit::Count, 144.0), 14.4);
        assert_eq!(tolerance(Unit::Ms, 1.0), 0.5);
        assert_eq!(tolerance(Unit::Ms, 40.0), 4.0);
    }

    fn result(reset: u64, ms: f64) -> RunResult {
        let scn = crate::scenario::parse_str(include_str!(
            "../../../scenarios/spec-reference-new-first.json"
        ))
        .unwrap();
        let mut report = crate::backend::run(&scn, RunOptions::default())
            .unwrap()
            .report;
        report.connections.reset = reset;
        report.latency.completion_ms.p50 = ms;
        RunResult {
            report,
            samples: vec![],
            worker_names: vec![],
            worker_generations: vec![],
            markers: vec![],
        }
    }

    #[test]
    fn a_simulator_median_outside_the_widened_kernel_range_is_outside() {
        let kernel = [result(132, 20.0), result(144, 21.0), result(162, 22.0)];
        // Inside [132 - 14.4, 162 + 14.4].
        let rows = compare(&kernel, &[result(120, 21.0)], &[]);
        let reset = rows.iter().find(|r| r.name == "reset").unwrap();
        assert!(reset.within);
        assert_eq!(reset.band, [132.0 - 14.4, 162.0 + 14.4]);
        // Below it.
        let rows = compare(&kernel, &[result(100, 21.0)], &[]);
        assert!(!rows.iter().find(|r| r.name == "reset").unwrap().within);
        // Latency: 21 ms +- 2.1 ms around [20, 22].
        let rows = compare(&kernel, &[result(144, 25.0)], &[]);
        let c = rows.iter().find(|r| r.name == "completion_p50_ms").unwrap();
        assert!(!c.within);
        assert_eq!(c.unit, Unit::Ms);
    }
}
