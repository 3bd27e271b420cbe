//! The `reuseport-sim` command line.

use clap::{Parser, Subcommand, ValueEnum};
use sim_reuseport::invariants;
use sim_reuseport::output::{write_atomic, AtomicFile};
use sim_reuseport::report::Comparison;
use sim_reuseport::runner::{run, RunError, RunOptions, RunResult};
use sim_reuseport::scenario::{self, Scenario};
use sim_reuseport::sweep::{self, SeedRange, Shard, SweepSpec};
use sim_reuseport::vary;
use sim_tcp::MigrationPath;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Wall-clock time for the `seeds/s` line on stderr only: it never reaches
/// a model, a result or a summary.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> Instant {
    Instant::now()
}

/// Deterministic simulator of Linux SO_REUSEPORT listener restarts and socket
/// migration (net.ipv4.tcp_migrate_req).
#[derive(Parser)]
#[command(name = "reuseport-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// How TCP timers fire (§3.1): on the kernel's timer wheel or exactly.
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Timers {
    Wheel,
    Exact,
}

/// Test-only: a migration path to break (`--inject-bug`, hidden).
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum BugPath {
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

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and print its report.
    Run {
        /// Scenario file (JSON).
        file: PathBuf,
        /// Seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Override net.ipv4.tcp_migrate_req on every host for the whole run.
        #[arg(long)]
        migrate: Option<OnOff>,
        /// Override every host's timer mode: the kernel's timer wheel
        /// (default) or exact deadlines, to see what the wheel's batching
        /// changes.
        #[arg(long, value_enum)]
        timers: Option<Timers>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Write a JSON-lines trace of every packet and event.
        #[arg(long, value_name = "FILE.jsonl")]
        trace: Option<PathBuf>,
        /// Write every simulated packet to a libpcap file.
        #[arg(long, value_name = "FILE.pcap")]
        pcap: Option<PathBuf>,
        /// Write an SVG of outcomes and queue lengths over time.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// Test-only: break one migration path.
        #[arg(long, value_enum, hide = true)]
        inject_bug: Option<BugPath>,
    },
    /// Run with migration off and on (same seed, same arrivals) and compare.
    Compare {
        /// Scenario file (JSON).
        file: PathBuf,
        /// Seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Write an SVG with both runs overlaid.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// Test-only: break one migration path.
        #[arg(long, value_enum, hide = true)]
        inject_bug: Option<BugPath>,
    },
    /// Run many seeds (each with migration off and on), check invariants on
    /// every run, and summarize the distributions.
    Sweep {
        /// Scenario file (JSON).
        file: PathBuf,
        /// Seeds: A..B (B excluded) or A..=B.
        #[arg(long, value_name = "A..B")]
        seeds: SeedRange,
        /// Worker threads (default: all cores). Results do not depend on it.
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<usize>,
        /// Run only shard I of N (0-based; seeds whose offset in the range is
        /// I mod N). Default: from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT
        /// or JOB_COMPLETION_INDEX (with --shards) when set.
        #[arg(long, value_name = "I/N")]
        shard: Option<Shard>,
        /// Number of shards when the index comes from the environment
        /// (required with Kubernetes' JOB_COMPLETION_INDEX).
        #[arg(long, value_name = "N")]
        shards: Option<u64>,
        /// Output format of the summary.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Write seeds.jsonl (one line per seed), summary.json, sweep.json and
        /// resets.svg into DIR (the input of `merge`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Test-only: break one migration path.
        #[arg(long, value_enum, hide = true)]
        inject_bug: Option<BugPath>,
    },
    /// Combine the --out directories of a sharded sweep into the summary an
    /// unsharded sweep gives.
    Merge {
        /// Shard output directories (or their seeds.jsonl files).
        #[arg(required = true, value_name = "SHARD-OUTPUT")]
        outputs: Vec<PathBuf>,
        /// Output format of the summary.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Write the merged seeds.jsonl, summary.json, sweep.json and resets.svg into DIR.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Check scenario files without running them.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the scenario format.
    Schema,
}

enum Failure {
    BadInput(String),
    Invariant(String),
}

fn load(file: &Path) -> Result<Scenario, Failure> {
    scenario::load(file).map_err(|e| Failure::BadInput(e.to_string()))
}

fn run_caught(scn: &Scenario, file: &Path, opts: RunOptions<'_>) -> Result<RunResult, Failure> {
    let name = file.display().to_string();
    let seed = opts.seed.unwrap_or(scn.seed);
    match sweep::catch_quietly(|| run(scn, opts)) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(RunError::Scenario(e))) => Err(Failure::BadInput(e.in_file(&name).to_string())),
        Ok(Err(RunError::Io(e))) => Err(Failure::BadInput(format!("{name}: {e}"))),
        Ok(Err(RunError::Limit(m))) => Err(Failure::BadInput(format!("{name}: {m}"))),
        Err(msg) => Err(Failure::Invariant(format!(
            "{name}: seed {seed}: invariant failed: [{}] panic: {msg}",
            invariants::classify_panic(&msg)
        ))),
    }
}

/// The scenario for `seed` after its `vary` draws.
fn varied(
    scn: &Scenario,
    file: &Path,
    seed: u64,
) -> Result<(Scenario, BTreeMap<String, serde_json::Value>), Failure> {
    vary::apply(scn, seed)
        .map_err(|e| Failure::BadInput(e.in_file(&file.display().to_string()).to_string()))
}

/// A scenario file with its `vary` block drawn for `seed` (default: the
/// file's seed), as `run` and `compare` use it: (scenario, seed, drawn values).
fn load_for_seed(
    file: &Path,
    seed: Option<u64>,
) -> Result<(Scenario, u64, BTreeMap<String, serde_json::Value>), Failure> {
    let scn = load(file)?;
    let seed = seed.unwrap_or(scn.seed);
    let (scn, drawn) = varied(&scn, file, seed)?;
    Ok((scn, seed, drawn))
}

/// Invariant failures of one run, as one message (None if all passed).
fn violations(
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

fn read_shard_output(
    p: &Path,
) -> Result<(String, sweep::SweepMeta, Vec<sweep::SeedResult>), Failure> {
    if !p.exists() {
        return Err(Failure::BadInput(format!(
            "{}: not found (expected the --out directory of a sweep, holding sweep.json and seeds.jsonl)",
            p.display()
        )));
    }
    let dir = if p.is_dir() {
        p.to_path_buf()
    } else {
        p.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let name = dir.display().to_string();
    let meta_path = dir.join("sweep.json");
    let text = std::fs::read_to_string(&meta_path).map_err(|e| {
        Failure::BadInput(format!(
            "{}: {e} (expected the --out directory of a sweep)",
            meta_path.display()
        ))
    })?;
    let meta: sweep::SweepMeta = serde_json::from_str(&text)
        .map_err(|e| Failure::BadInput(format!("{}: {e}", meta_path.display())))?;
    let seeds_path = dir.join("seeds.jsonl");
    let text = std::fs::read_to_string(&seeds_path)
        .map_err(|e| Failure::BadInput(format!("{}: {e}", seeds_path.display())))?;
    let results =
        sweep::from_jsonl(&text, &seeds_path.display().to_string()).map_err(Failure::BadInput)?;
    Ok((name, meta, results))
}

fn write_outputs(
    dir: &Path,
    meta: &sweep::SweepMeta,
    summary: &sweep::Summary,
    results: &[sweep::SeedResult],
) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let meta_json = serde_json::to_string_pretty(meta).expect("meta serializes") + "\n";
    let title = match &meta.shard {
        Some(s) => format!("{} seeds {} shard {s}", meta.scenario_name, meta.range),
        None => format!("{} seeds {}", meta.scenario_name, meta.range),
    };
    let svg = sweep::resets_histogram(&title, results).map_err(Failure::BadInput)?;
    for (name, bytes) in [
        ("seeds.jsonl", sweep::to_jsonl(results).into_bytes()),
        ("summary.json", summary.to_json().into_bytes()),
        ("resets.svg", svg.into_bytes()),
        ("sweep.json", meta_json.into_bytes()),
    ] {
        let p = dir.join(name);
        write_atomic(&p, &bytes).map_err(io_err(&p))?;
    }
    Ok(())
}

fn print_summary(summary: &sweep::Summary, format: Format) -> Result<(), Failure> {
    match format {
        Format::Text => print!("{}", summary.to_text()),
        Format::Json => print!("{}", summary.to_json()),
    }
    if summary.passed() {
        Ok(())
    } else {
        Err(Failure::Invariant(format!(
            "{} failing seed(s); each is listed above with a command that reproduces it",
            summary.failing_seed_count
        )))
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::BadInput(format!("{}: {e}", path.display()))
}

fn main_inner(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Run {
            file,
            seed,
            migrate,
            timers,
            format,
            trace,
            pcap,
            plot,
            inject_bug,
        } => {
            let (scn, seed_used, drawn) = load_for_seed(&file, seed)?;
            let mut trace_file = match trace.as_deref() {
                Some(p) => Some(AtomicFile::create(p).map_err(io_err(p))?),
                None => None,
            };
            let mut pcap_file = match pcap.as_deref() {
                Some(p) => {
                    let f = AtomicFile::create(p).map_err(io_err(p))?;
                    Some(sim_core::PcapWriter::new(f).map_err(io_err(p))?)
                }
                None => None,
            };
            let opts = RunOptions {
                seed,
                migrate: migrate.map(|m| m == OnOff::On),
                trace: trace_file
                    .as_mut()
                    .map(|f| f.writer() as &mut dyn std::io::Write),
                tap: pcap_file
                    .as_mut()
                    .map(|p| p as &mut dyn sim_reuseport::runner::PacketTap),
                sample_interval: plot
                    .as_ref()
                    .map(|_| sim_reuseport::plots::sample_interval(&scn)),
                inject_bug: inject_bug.map(BugPath::path),
                timer_mode: timers.map(|t| match t {
                    Timers::Wheel => sim_core::TimerMode::Wheel,
                    Timers::Exact => sim_core::TimerMode::Exact,
                }),
            };
            let mut result = run_caught(&scn, &file, opts)?;
            result.report.varied = drawn;
            if let (Some(f), Some(p)) = (trace_file, trace.as_deref()) {
                f.commit().map_err(io_err(p))?;
            }
            if let (Some(w), Some(p)) = (pcap_file, pcap.as_deref()) {
                w.into_inner().and_then(|f| f.commit()).map_err(io_err(p))?;
            }
            if let Some(p) = plot.as_deref() {
                let svg =
                    sim_reuseport::plots::render_run(&result, None).map_err(Failure::BadInput)?;
                write_atomic(p, svg.as_bytes()).map_err(io_err(p))?;
            }
            match format {
                Format::Text => print!("{}", result.report.to_text()),
                Format::Json => print!("{}", result.report.to_json()),
            }
            let migrate = migrate.map(|m| m == OnOff::On);
            if let Some(m) = violations(&scn, &file, seed_used, &result, migrate) {
                return Err(Failure::Invariant(m));
            }
        }
        Command::Compare {
            file,
            seed,
            format,
            plot,
            inject_bug,
        } => {
            let (scn, seed_used, drawn) = load_for_seed(&file, seed)?;
            let inject_bug = inject_bug.map(BugPath::path);
            let interval = plot
                .as_ref()
                .map(|_| sim_reuseport::plots::sample_interval(&scn));
            let mut off = run_caught(
                &scn,
                &file,
                RunOptions {
                    seed,
                    migrate: Some(false),
                    sample_interval: interval,
                    inject_bug,
                    ..Default::default()
                },
            )?;
            let mut on = run_caught(
                &scn,
                &file,
                RunOptions {
                    seed,
                    migrate: Some(true),
                    sample_interval: interval,
                    inject_bug,
                    ..Default::default()
                },
            )?;
            off.report.varied = drawn.clone();
            on.report.varied = drawn;
            let failed: Vec<String> = [(&off, false), (&on, true)]
                .into_iter()
                .filter_map(|(r, m)| violations(&scn, &file, seed_used, r, Some(m)))
                .collect();
            if invariants::more_resets_with_migration(&off.report, &on.report) {
                eprintln!(
                    "note: flag {}: migration on reset {} connection(s), off {}",
                    invariants::FLAG_MORE_RESETS_WITH_MIGRATION,
                    on.report.connections.reset,
                    off.report.connections.reset
                );
            }
            if let Some(p) = plot.as_deref() {
                let svg =
                    sim_reuseport::plots::render_run(&on, Some(&off)).map_err(Failure::BadInput)?;
                write_atomic(p, svg.as_bytes()).map_err(io_err(p))?;
            }
            let cmp = Comparison::new(off.report, on.report);
            match format {
                Format::Text => print!("{}", cmp.to_text()),
                Format::Json => print!("{}", cmp.to_json()),
            }
            if !failed.is_empty() {
                return Err(Failure::Invariant(failed.join("\n")));
            }
        }
        Command::Sweep {
            file,
            seeds,
            jobs,
            shard,
            shards,
            format,
            out,
            inject_bug,
        } => {
            let scn = load(&file)?;
            let name = file.display().to_string();
            vary::check(&scn).map_err(|e| Failure::BadInput(e.in_file(&name).to_string()))?;
            let shard = match shard {
                Some(s) => Some(s),
                None => {
                    let env = sweep::shard_from_env(|k| std::env::var(k).ok(), shards)
                        .map_err(Failure::BadInput)?;
                    match env {
                        Some((s, from)) => {
                            eprintln!("shard {s} (from {from})");
                            Some(s)
                        }
                        None if shards.is_some() => {
                            return Err(Failure::BadInput(
                                "--shards N needs the shard index from the environment \
                                 (JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID); use --shard I/N \
                                 to give both"
                                    .into(),
                            ))
                        }
                        None => None,
                    }
                }
            };
            let shard = shard.filter(|s| s.count > 1);
            if shard.is_some() && out.is_none() {
                eprintln!("note: a shard without --out leaves nothing for `merge`");
            }
            let jobs = match jobs {
                Some(0) => return Err(Failure::BadInput("--jobs must be at least 1".into())),
                Some(j) => j,
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            };
            let count = sweep::shard_len(seeds, shard);
            if count > sweep::MAX_SEEDS_PER_PROCESS {
                return Err(Failure::BadInput(format!(
                    "{count} seeds in one process is more than {} (results are kept in memory \
                     until the summary): shard the range with --shard I/N",
                    sweep::MAX_SEEDS_PER_PROCESS
                )));
            }
            let spec = SweepSpec {
                file: name.clone(),
                scenario: scn,
                range: seeds,
                shard,
                inject_bug: inject_bug.map(BugPath::path),
            };
            // Fail fast on a scenario that does not build (first seed).
            let (first, _) = varied(&spec.scenario, &file, seeds.start)?;
            sim_reuseport::runner::Sim::build(&first, RunOptions::default())
                .map_err(|e| Failure::BadInput(e.in_file(&name).to_string()))?;
            let n = spec.seeds().len() as u64;
            let bar = (format == Format::Text && std::io::stderr().is_terminal()).then(|| {
                let b = indicatif::ProgressBar::new(n);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} seeds ({per_sec}, eta {eta})",
                    )
                    .expect("progress template"),
                );
                b
            });
            let started = wall_clock();
            let tick = || {
                if let Some(b) = &bar {
                    b.inc(1);
                }
            };
            let results = sweep::run_sweep(&spec, jobs, &tick).map_err(Failure::BadInput)?;
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            let secs = started.elapsed().as_secs_f64();
            let bad: Vec<&sweep::SeedResult> =
                results.iter().filter(|r| r.input_error.is_some()).collect();
            if let Some(r) = bad.first() {
                return Err(Failure::BadInput(format!(
                    "{name}: seed {}: {}{}",
                    r.seed,
                    r.input_error.as_deref().unwrap_or(""),
                    if bad.len() > 1 {
                        format!(" (and {} more seeds with invalid draws)", bad.len() - 1)
                    } else {
                        String::new()
                    }
                )));
            }
            let meta = spec.meta();
            let summary = sweep::summarize(&meta, &results);
            if let Some(dir) = out.as_deref() {
                write_outputs(dir, &meta, &summary, &results)?;
            }
            eprintln!(
                "swept {n} seeds ({} runs) in {secs:.1} s: {:.1} seeds/s on {jobs} thread(s)",
                2 * n,
                n as f64 / secs.max(1e-9)
            );
            print_summary(&summary, format)?;
        }
        Command::Merge {
            outputs,
            format,
            out,
        } => {
            let parts = outputs
                .iter()
                .map(|p| read_shard_output(p))
                .collect::<Result<Vec<_>, _>>()?;
            let (meta, results) = sweep::merge(parts).map_err(Failure::BadInput)?;
            let summary = sweep::summarize(&meta, &results);
            if let Some(dir) = out.as_deref() {
                write_outputs(dir, &meta, &summary, &results)?;
            }
            print_summary(&summary, format)?;
        }
        Command::Validate { files } => {
            let mut bad = Vec::new();
            for f in &files {
                let r = load(f).and_then(|scn| {
                    vary::check(&scn).map_err(|e| {
                        Failure::BadInput(e.in_file(&f.display().to_string()).to_string())
                    })?;
                    sim_reuseport::runner::Sim::build(&scn, RunOptions::default())
                        .map(|_| ())
                        .map_err(|e| {
                            Failure::BadInput(e.in_file(&f.display().to_string()).to_string())
                        })
                });
                match r {
                    Ok(()) => println!("{}: ok", f.display()),
                    Err(Failure::BadInput(m)) | Err(Failure::Invariant(m)) => bad.push(m),
                }
            }
            if !bad.is_empty() {
                return Err(Failure::BadInput(bad.join("\n")));
            }
        }
        Command::Schema => println!("{}", scenario::json_schema()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match main_inner(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Invariant(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}
