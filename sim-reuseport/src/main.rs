//! The `reuseport-sim` command line.

use clap::{Parser, Subcommand, ValueEnum};
use sim_reuseport::backend::{run, RunError, RunOptions, RunResult};
use sim_reuseport::interrupt;
use sim_reuseport::invariants;
use sim_reuseport::output::{self, write_atomic, write_output, OutputFile};
use sim_reuseport::report::Comparison;
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
        /// resets.svg into DIR (the input of `merge`). seeds.jsonl is written
        /// as seeds complete, so an interrupted sweep keeps its work.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Continue the interrupted sweep kept in --out DIR (same scenario,
        /// seeds and shard): only the seeds not done yet run.
        #[arg(long)]
        resume: bool,
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
        Ok(Err(RunError::Program(m))) => Err(Failure::BadInput(format!("{name}: {m}"))),
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

/// The `sweep` command's arguments.
struct SweepArgs {
    file: PathBuf,
    seeds: SeedRange,
    jobs: Option<usize>,
    shard: Option<Shard>,
    shards: Option<u64>,
    format: Format,
    out: Option<PathBuf>,
    resume: bool,
    inject_bug: Option<BugPath>,
}

/// The shard to run: `--shard`, else from an array job's environment.
fn pick_shard(shard: Option<Shard>, shards: Option<u64>) -> Result<Option<Shard>, Failure> {
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
    Ok(shard.filter(|s| s.count > 1))
}

/// Most worker threads per core: results never depend on `--jobs`, and
/// more threads than this only cost memory.
const JOBS_PER_CORE_MAX: usize = 4;

fn pick_jobs(jobs: Option<usize>) -> Result<usize, Failure> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max = cores * JOBS_PER_CORE_MAX;
    match jobs {
        Some(0) => Err(Failure::BadInput("--jobs must be at least 1".into())),
        Some(j) if j > max => Err(Failure::BadInput(format!(
            "--jobs {j} is more than {JOBS_PER_CORE_MAX} per core ({max} on this machine's \
             {cores} core(s)); results do not depend on --jobs"
        ))),
        Some(j) => Ok(j),
        None => Ok(cores),
    }
}

/// The command line, shell-quoted, with `--resume` added: what continues
/// this sweep after an interruption.
fn resume_command() -> String {
    let mut args: Vec<String> = std::env::args().map(|a| sweep::shell_quote(&a)).collect();
    if !args.iter().any(|a| a == "--resume") {
        args.push("--resume".into());
    }
    args.join(" ")
}

/// The results file being written while a sweep runs: one line per seed,
/// appended as each completes, so an interrupted sweep keeps its work.
struct Journal {
    path: PathBuf,
    file: std::sync::Mutex<Option<std::fs::File>>,
    error: std::sync::Mutex<Option<String>>,
}

impl Journal {
    fn open(path: PathBuf) -> Result<Self, Failure> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(Journal {
            path,
            file: std::sync::Mutex::new(Some(f)),
            error: std::sync::Mutex::new(None),
        })
    }

    /// Appends one line; on the first write error (a full disk), stops
    /// writing and keeps the error for the end of the sweep.
    fn append(&self, r: &sweep::SeedResult) {
        let line = serde_json::to_string(r).expect("seed result serializes") + "\n";
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let Some(file) = f.as_mut() else { return };
        // A whole line or nothing, even when interrupted.
        let r = interrupt::critical(|| std::io::Write::write_all(file, line.as_bytes()));
        if let Err(e) = r {
            *f = None;
            *self.error.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("{}: {e}", self.path.display()));
        }
    }

    fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Prepares `--out DIR` for a sweep: refuses a directory that already
/// holds a sweep unless resuming it, writes `sweep.json`, and returns the
/// results kept by an interrupted run (`--resume`).
fn prepare_out(
    dir: &Path,
    spec: &SweepSpec,
    resume: bool,
) -> Result<Vec<sweep::SeedResult>, Failure> {
    let seeds_path = dir.join("seeds.jsonl");
    let meta_path = dir.join("sweep.json");
    let has_results = std::fs::metadata(&seeds_path).is_ok_and(|m| m.len() > 0);
    let mut done = Vec::new();
    if has_results && !resume {
        return Err(Failure::BadInput(format!(
            "{} already holds sweep results: continue that sweep with --resume, or choose \
             another --out directory (nothing was overwritten)",
            dir.display()
        )));
    }
    if has_results {
        let text = output::read_limited(&meta_path, 1 << 20).map_err(io_err(&meta_path))?;
        let meta: sweep::SweepMeta = serde_json::from_str(&text)
            .map_err(|e| Failure::BadInput(format!("{}: {e}", meta_path.display())))?;
        let want = spec.meta();
        if meta.scenario_hash != want.scenario_hash
            || meta.range != want.range
            || meta.shard != want.shard
            || meta.inject_bug != want.inject_bug
        {
            return Err(Failure::BadInput(format!(
                "{}: --resume continues the same sweep, but this one is seeds {}{} of a \
                 scenario with hash {} (this command: seeds {}{}, hash {})",
                dir.display(),
                meta.range,
                meta.shard.map_or(String::new(), |s| format!(" shard {s}")),
                meta.scenario_hash,
                want.range,
                want.shard.map_or(String::new(), |s| format!(" shard {s}")),
                want.scenario_hash
            )));
        }
        let text = read_regular(&seeds_path)?;
        done = sweep::read_partial(&text, &seeds_path.display().to_string(), spec)
            .map_err(Failure::BadInput)?;
        eprintln!(
            "resuming: {} of {} seeds already done",
            done.len(),
            sweep::shard_len(spec.range, spec.shard)
        );
        // Rewrite the kept lines whole (a cut last line is dropped).
        write_atomic(&seeds_path, sweep::to_jsonl(&done).as_bytes())
            .map_err(io_err(&seeds_path))?;
    }
    let meta_json = serde_json::to_string_pretty(&spec.meta()).expect("meta serializes") + "\n";
    write_atomic(&meta_path, meta_json.as_bytes()).map_err(io_err(&meta_path))?;
    Ok(done)
}

/// Reads a regular file whole (results files can be large, but a device or
/// FIFO given by mistake must not be read forever).
fn read_regular(p: &Path) -> Result<String, Failure> {
    let m = std::fs::metadata(p).map_err(io_err(p))?;
    if !m.is_file() {
        return Err(Failure::BadInput(format!(
            "{}: not a regular file",
            p.display()
        )));
    }
    std::fs::read_to_string(p).map_err(io_err(p))
}

fn progress_bar(n: u64, done: u64, format: Format) -> Option<indicatif::ProgressBar> {
    (format == Format::Text && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(n);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} seeds ({per_sec}, eta {eta})",
            )
            .expect("progress template"),
        );
        b.set_position(done);
        b
    })
}

fn sweep_cmd(a: SweepArgs) -> Result<(), Failure> {
    let scn = load(&a.file)?;
    let name = a.file.display().to_string();
    // Every `vary` bound must give a valid scenario before any seed runs.
    vary::check(&scn, &sim_reuseport::scenario::validate)
        .map_err(|e| Failure::BadInput(e.in_file(&name).to_string()))?;
    let shard = pick_shard(a.shard, a.shards)?;
    if shard.is_some() && a.out.is_none() {
        eprintln!("note: a shard without --out leaves nothing for `merge`");
    }
    if a.resume && a.out.is_none() {
        return Err(Failure::BadInput(
            "--resume continues the sweep kept in --out DIR: give --out".into(),
        ));
    }
    let jobs = pick_jobs(a.jobs)?;
    let count = sweep::shard_len(a.seeds, shard);
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
        range: a.seeds,
        shard,
        inject_bug: a.inject_bug.map(BugPath::path),
    };
    // Fail fast on a scenario that does not build (first seed).
    let (first, _) = varied(&spec.scenario, &a.file, a.seeds.start)?;
    scenario::lower(&first).map_err(|e| Failure::BadInput(e.in_file(&name).to_string()))?;
    if let Some(dir) = a.out.as_deref() {
        if dir.exists() && !dir.is_dir() {
            return Err(Failure::BadInput(format!(
                "--out {}: not a directory",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let done = match a.out.as_deref() {
        Some(dir) => prepare_out(dir, &spec, a.resume)?,
        None => Vec::new(),
    };
    let journal = match a.out.as_deref() {
        Some(dir) => Some(Journal::open(dir.join("seeds.jsonl"))?),
        None => None,
    };
    interrupt::set_note(Some(match a.out.as_deref() {
        Some(dir) => format!(
            "the results of completed seeds are in {}; continue with:\n  {}",
            dir.join("seeds.jsonl").display(),
            resume_command()
        ),
        None => "no results were kept: give --out DIR to keep completed seeds".into(),
    }));
    let bar = progress_bar(count, done.len() as u64, a.format);
    let started = wall_clock();
    let ran = count - done.len() as u64;
    let on_result = |r: &sweep::SeedResult| {
        if let Some(j) = &journal {
            j.append(r);
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    };
    let results = sweep::run_sweep(&spec, jobs, done, &on_result).map_err(Failure::BadInput)?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    let bad: Vec<&sweep::SeedResult> = results.iter().filter(|r| r.input_error.is_some()).collect();
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
    let written = match a.out.as_deref() {
        Some(dir) => {
            let journal_error = journal.as_ref().and_then(Journal::error);
            drop(journal);
            write_outputs(dir, &meta, &summary, &results).map_err(|e| (e, journal_error))
        }
        None => Ok(()),
    };
    interrupt::set_note(None);
    eprintln!(
        "swept {ran} seeds ({} runs) in {secs:.1} s: {:.1} seeds/s on {jobs} thread(s)",
        2 * ran,
        ran as f64 / secs.max(1e-9)
    );
    // The summary is printed even when the outputs could not be written
    // (a full disk): the work is not lost twice.
    let printed = print_summary(&summary, a.format);
    if let Err((Failure::BadInput(m) | Failure::Invariant(m), journal_error)) = written {
        let first = journal_error.map_or(String::new(), |j| format!(" (first failure: {j})"));
        return Err(Failure::BadInput(format!(
            "the sweep finished but its outputs could not be written: {m}{first}; the summary \
             above is complete"
        )));
    }
    printed
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
    let text = output::read_limited(&meta_path, 1 << 20).map_err(|e| {
        Failure::BadInput(format!(
            "{}: {e} (expected the --out directory of a sweep)",
            meta_path.display()
        ))
    })?;
    let meta: sweep::SweepMeta = serde_json::from_str(&text)
        .map_err(|e| Failure::BadInput(format!("{}: {e}", meta_path.display())))?;
    let seeds_path = dir.join("seeds.jsonl");
    let text = read_regular(&seeds_path)?;
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

/// Refuses outputs that are the scenario file or each other (see
/// [`output::check_distinct`]) and paths that cannot be written (a
/// directory, a missing directory), before anything runs. Returns whether
/// one of them is standard output: the report then goes to standard error,
/// so that the output stream stays clean.
fn check_outputs(file: &Path, outputs: &[(&str, &Path)]) -> Result<bool, Failure> {
    output::check_distinct(&[("scenario file", file)], outputs).map_err(Failure::BadInput)?;
    let mut stdout = false;
    for (what, p) in outputs {
        let sink = output::resolve(p).map_err(|e| Failure::BadInput(format!("{what} {e}")))?;
        stdout |= sink == output::Sink::Stdout;
    }
    Ok(stdout)
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
            let outputs: Vec<(&str, &Path)> = [
                ("--trace", trace.as_deref()),
                ("--pcap", pcap.as_deref()),
                ("--plot", plot.as_deref()),
            ]
            .into_iter()
            .filter_map(|(w, p)| p.map(|p| (w, p)))
            .collect();
            let report_to_stderr = check_outputs(&file, &outputs)?;
            let (scn, seed_used, drawn) = load_for_seed(&file, seed)?;
            let mut trace_file = match trace.as_deref() {
                Some(p) => Some(OutputFile::open(p).map_err(Failure::BadInput)?),
                None => None,
            };
            let mut pcap_file = match pcap.as_deref() {
                Some(p) => {
                    let f = OutputFile::open(p).map_err(Failure::BadInput)?;
                    Some(sim_core::PcapWriter::new(f).map_err(io_err(p))?)
                }
                None => None,
            };
            let opts = RunOptions {
                seed,
                migrate: migrate.map(|m| m == OnOff::On),
                trace: trace_file.as_mut().map(|f| f as &mut dyn std::io::Write),
                tap: pcap_file
                    .as_mut()
                    .map(|p| p as &mut dyn sim_reuseport::backend::PacketTap),
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
                write_output(p, svg.as_bytes()).map_err(Failure::BadInput)?;
            }
            let text = match format {
                Format::Text => result.report.to_text(),
                Format::Json => result.report.to_json(),
            };
            if report_to_stderr {
                eprint!("{text}");
            } else {
                print!("{text}");
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
            let outputs: Vec<(&str, &Path)> =
                plot.as_deref().map(|p| ("--plot", p)).into_iter().collect();
            let report_to_stderr = check_outputs(&file, &outputs)?;
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
                write_output(p, svg.as_bytes()).map_err(Failure::BadInput)?;
            }
            let cmp = Comparison::new(off.report, on.report);
            let text = match format {
                Format::Text => cmp.to_text(),
                Format::Json => cmp.to_json(),
            };
            if report_to_stderr {
                eprint!("{text}");
            } else {
                print!("{text}");
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
            resume,
            inject_bug,
        } => sweep_cmd(SweepArgs {
            file,
            seeds,
            jobs,
            shard,
            shards,
            format,
            out,
            resume,
            inject_bug,
        })?,
        Command::Merge {
            outputs,
            format,
            out,
        } => {
            if let Some(dir) = out.as_deref() {
                let ins: Vec<(&str, &Path)> = outputs
                    .iter()
                    .map(|p| ("merged output", p.as_path()))
                    .collect();
                output::check_distinct(&ins, &[("--out", dir)]).map_err(Failure::BadInput)?;
            }
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
                    vary::check(&scn, &sim_reuseport::scenario::validate).map_err(|e| {
                        Failure::BadInput(e.in_file(&f.display().to_string()).to_string())
                    })?;
                    scenario::lower(&scn).map(|_| ()).map_err(|e| {
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
    if let Err(e) = interrupt::install() {
        eprintln!("error: cannot install the Ctrl-C handler: {e}");
        return ExitCode::from(2);
    }
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
