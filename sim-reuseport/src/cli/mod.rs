//! The command line: its definition (clap), the failures it reports and
//! the helpers its commands share. One file per group of commands.

mod kernel;
mod run;
mod sweep;
mod validate;

pub(crate) use kernel::{calibrate_cmd, kernel_cmd};
pub(crate) use run::{compare_cmd, run_cmd};
pub(crate) use sweep::{merge_cmd, sweep_cmd};
pub(crate) use validate::validate_cmd;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sim_reuseport::backend::{run, RunError, RunOptions, RunResult};
use sim_reuseport::invariants;
use sim_reuseport::output;
use sim_reuseport::scenario::{self, Scenario};
use sim_reuseport::sweep::{self as sweeps, SeedRange, Shard};
use sim_reuseport::vary;
use sim_tcp::MigrationPath;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Wall-clock time for the `seeds/s` line on stderr only: it never reaches
/// a model, a result or a summary.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock() -> Instant {
    Instant::now()
}

/// Deterministic simulator of Linux SO_REUSEPORT listener restarts and socket
/// migration (net.ipv4.tcp_migrate_req).
#[derive(Parser)]
#[command(name = "reuseport-sim", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

/// How TCP timers fire (§3.1): on the kernel's timer wheel or exactly.
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub(crate) enum Timers {
    Wheel,
    Exact,
}

/// Test-only: a migration path to break (`--inject-bug`, hidden).
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub(crate) enum BugPath {
    AcceptQueue,
    SynackTimer,
    FinalAck,
}

impl BugPath {
    fn path(self) -> MigrationPath {
        match self {
            BugPath::AcceptQueue => MigrationPath::AcceptQueue,
            BugPath::SynackTimer => MigrationPath::SynackTimer,
            BugPath::FinalAck => MigrationPath::FinalAck,
        }
    }
}

/// The subcommands.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run a scenario and print its report.
    Run(RunArgs),
    /// Run with migration off and on (same seed, same arrivals) and compare.
    Compare(CompareArgs),
    /// Run many seeds (each with migration off and on), check invariants on
    /// every run, and summarize the distributions.
    Sweep(SweepArgs),
    /// Combine the --out directories of a sharded sweep into the summary an
    /// unsharded sweep gives.
    Merge(MergeArgs),
    /// Check scenario files without running them.
    Validate(ValidateArgs),
    /// Print the JSON Schema of the scenario format.
    Schema,
    /// Run a scenario on this host's real Linux kernel (root, /dev/net/tun,
    /// Linux 5.14+): private network namespaces, emulated links, real
    /// SO_REUSEPORT sockets, in real time. Not deterministic.
    Kernel(KernelArgs),
    /// Run a scenario N times on the real kernel and over N seeds on the
    /// simulator, and compare every metric (exit 1 if one is outside the
    /// kernel's spread widened by the stated tolerance).
    Calibrate(CalibrateArgs),
}

/// The `kernel` command's arguments.
#[derive(Args)]
pub(crate) struct KernelArgs {
    /// Scenario file (JSON).
    pub(crate) file: PathBuf,
    /// Seed of the arrivals and link draws (default: the scenario's).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Override net.ipv4.tcp_migrate_req on every host for the whole run.
    #[arg(long)]
    pub(crate) migrate: Option<OnOff>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// Write every emulated packet to a libpcap file (real time).
    #[arg(long, value_name = "FILE.pcap")]
    pub(crate) pcap: Option<PathBuf>,
}

/// The `calibrate` command's arguments.
#[derive(Args)]
pub(crate) struct CalibrateArgs {
    /// Scenario file (JSON).
    pub(crate) file: PathBuf,
    /// Kernel runs.
    #[arg(long, default_value_t = 5)]
    pub(crate) repeats: u32,
    /// Simulator seeds (from the scenario's).
    #[arg(long, default_value_t = 5)]
    pub(crate) seeds: u32,
    /// Override net.ipv4.tcp_migrate_req on both sides.
    #[arg(long)]
    pub(crate) migrate: Option<OnOff>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// Write an SVG of the first kernel run over the first simulator run.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
}

/// The `run` command's arguments.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// Scenario file (JSON).
    pub(crate) file: PathBuf,
    /// Seed (default: the scenario's).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Override net.ipv4.tcp_migrate_req on every host for the whole run.
    #[arg(long)]
    pub(crate) migrate: Option<OnOff>,
    /// Override every host's timer mode: the kernel's timer wheel
    /// (default) or exact deadlines, to see what the wheel's batching
    /// changes.
    #[arg(long, value_enum)]
    pub(crate) timers: Option<Timers>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// Write a JSON-lines trace of every packet and event.
    #[arg(long, value_name = "FILE.jsonl")]
    pub(crate) trace: Option<PathBuf>,
    /// Write every simulated packet to a pcapng file (the ones the network
    /// lost on their own interface, with a comment saying why).
    #[arg(long, value_name = "FILE.pcap")]
    pub(crate) pcap: Option<PathBuf>,
    /// The plot and its time window.
    #[command(flatten)]
    pub(crate) plot: PlotArgs,
    /// Test-only: break one migration path.
    #[arg(long, value_enum, hide = true)]
    pub(crate) inject_bug: Option<BugPath>,
}

/// `--plot` and its window (`run` and `compare`).
#[derive(Args)]
pub(crate) struct PlotArgs {
    /// Write an SVG of outcomes and queue lengths over time (`compare`:
    /// both runs overlaid).
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
    /// Start the plot's time axis here (a time within the run, e.g. `2s`).
    #[arg(long, value_name = "TIME", requires = "plot")]
    pub(crate) from: Option<String>,
    /// End the plot's time axis here (after `--from`, within the run).
    #[arg(long, value_name = "TIME", requires = "plot")]
    pub(crate) until: Option<String>,
}

/// The `compare` command's arguments.
#[derive(Args)]
pub(crate) struct CompareArgs {
    /// Scenario file (JSON).
    pub(crate) file: PathBuf,
    /// Seed (default: the scenario's).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// The plot and its time window.
    #[command(flatten)]
    pub(crate) plot: PlotArgs,
    /// Test-only: break one migration path.
    #[arg(long, value_enum, hide = true)]
    pub(crate) inject_bug: Option<BugPath>,
}

/// The `sweep` command's arguments.
#[derive(Args)]
pub(crate) struct SweepArgs {
    /// Scenario file (JSON).
    pub(crate) file: PathBuf,
    /// Seeds: A..B (B excluded) or A..=B.
    #[arg(long, value_name = "A..B")]
    pub(crate) seeds: SeedRange,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, short = 'j', value_name = "N")]
    pub(crate) jobs: Option<usize>,
    /// Run only shard I of N (0-based; seeds whose offset in the range is
    /// I mod N). Default: from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT
    /// or JOB_COMPLETION_INDEX (with --shards) when set.
    #[arg(long, value_name = "I/N")]
    pub(crate) shard: Option<Shard>,
    /// Number of shards when the index comes from the environment
    /// (required with Kubernetes' JOB_COMPLETION_INDEX).
    #[arg(long, value_name = "N")]
    pub(crate) shards: Option<u64>,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// Write seeds.jsonl (one line per seed), summary.json, sweep.json and
    /// resets.svg into DIR (the input of `merge`). seeds.jsonl is written
    /// as seeds complete, so an interrupted sweep keeps its work.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Continue the interrupted sweep kept in --out DIR (same scenario,
    /// seeds and shard): only the seeds not done yet run.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Test-only: break one migration path.
    #[arg(long, value_enum, hide = true)]
    pub(crate) inject_bug: Option<BugPath>,
}

/// The `merge` command's arguments.
#[derive(Args)]
pub(crate) struct MergeArgs {
    /// Shard output directories (or their seeds.jsonl files).
    #[arg(required = true, value_name = "SHARD-OUTPUT")]
    pub(crate) outputs: Vec<PathBuf>,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// Write the merged seeds.jsonl, summary.json, sweep.json and resets.svg into DIR.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
}

/// The `validate` command's arguments.
#[derive(Args)]
pub(crate) struct ValidateArgs {
    /// Scenario files.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
}

pub(crate) enum Failure {
    BadInput(String),
    Invariant(String),
}

pub(crate) fn load(file: &Path) -> Result<Scenario, Failure> {
    scenario::load(file).map_err(|e| Failure::BadInput(e.to_string()))
}

pub(crate) fn run_caught(
    scn: &Scenario,
    file: &Path,
    opts: RunOptions<'_>,
) -> Result<RunResult, Failure> {
    let name = file.display().to_string();
    let seed = opts.seed.unwrap_or(scn.seed);
    match sweeps::catch_quietly(|| run(scn, opts)) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(RunError::Scenario(e))) => Err(Failure::BadInput(e.in_file(&name).to_string())),
        Ok(Err(RunError::Io(e))) => Err(Failure::BadInput(format!("{name}: {e}"))),
        Ok(Err(RunError::Limit(m))) => Err(Failure::BadInput(format!("{name}: {m}"))),
        Ok(Err(RunError::Program(m))) => Err(Failure::BadInput(format!("{name}: {m}"))),
        // The simulator raises neither.
        Ok(Err(e @ (RunError::Unsupported(_) | RunError::Kernel(_)))) => {
            Err(Failure::BadInput(format!("{name}: {e}")))
        }
        Err(msg) => Err(Failure::Invariant(format!(
            "{name}: seed {seed}: invariant failed: [{}] panic: {msg}",
            invariants::classify_panic(&msg)
        ))),
    }
}

/// The scenario for `seed` after its `vary` draws.
pub(crate) fn varied(
    scn: &Scenario,
    file: &Path,
    seed: u64,
) -> Result<(Scenario, BTreeMap<String, serde_json::Value>), Failure> {
    vary::apply(scn, seed)
        .map_err(|e| Failure::BadInput(e.in_file(&file.display().to_string()).to_string()))
}

/// A scenario file with its `vary` block drawn for `seed` (default: the
/// file's seed), as `run` and `compare` use it: (scenario, seed, drawn values).
pub(crate) fn load_for_seed(
    file: &Path,
    seed: Option<u64>,
) -> Result<(Scenario, u64, BTreeMap<String, serde_json::Value>), Failure> {
    let scn = load(file)?;
    let seed = seed.unwrap_or(scn.seed);
    let (scn, drawn) = varied(&scn, file, seed)?;
    Ok((scn, seed, drawn))
}

/// Invariant failures of one run, as one message (None if all passed).
pub(crate) fn violations(
    scn: &Scenario,
    file: &Path,
    seed: u64,
    result: &RunResult,
    migrate: Option<bool>,
) -> Option<String> {
    let v = invariants::check_run(scn, &result.report, migrate);
    if v.is_empty() {
        return None;
    }
    let label = match migrate {
        Some(true) => " (migration on)",
        Some(false) => " (migration off)",
        None => "",
    };
    Some(
        v.iter()
            .map(|x| {
                format!(
                    "{}: seed {seed}{label}: invariant failed: [{}] {}",
                    file.display(),
                    x.check,
                    x.message
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Refuses outputs that are the scenario file or each other (see
/// [`output::check_distinct`]) and paths that cannot be written (a
/// directory, a missing directory), before anything runs. Returns whether
/// one of them is standard output: the report then goes to standard error,
/// so that the output stream stays clean.
pub(crate) fn check_outputs(file: &Path, outputs: &[(&str, &Path)]) -> Result<bool, Failure> {
    output::check_distinct(&[("scenario file", file)], outputs).map_err(Failure::BadInput)?;
    let mut stdout = false;
    for (what, p) in outputs {
        let sink = output::resolve(p).map_err(|e| Failure::BadInput(format!("{what} {e}")))?;
        stdout |= sink == output::Sink::Stdout;
    }
    Ok(stdout)
}

pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::BadInput(format!("{}: {e}", path.display()))
}
