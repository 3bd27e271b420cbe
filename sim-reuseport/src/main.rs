//! The `reuseport-sim` command line.

use clap::{Parser, Subcommand, ValueEnum};
use sim_reuseport::output::{write_atomic, AtomicFile};
use sim_reuseport::report::Comparison;
use sim_reuseport::runner::{run, RunError, RunOptions, RunResult};
use sim_reuseport::scenario::{self, Scenario};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(scn, opts))) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(RunError::Scenario(e))) => Err(Failure::BadInput(e.in_file(&name).to_string())),
        Ok(Err(RunError::Io(e))) => Err(Failure::BadInput(format!("{name}: {e}"))),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(Failure::Invariant(format!(
                "{name}: invariant failed: {msg}"
            )))
        }
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
            format,
            trace,
            pcap,
            plot,
        } => {
            let scn = load(&file)?;
            let mut trace_file = trace
                .as_deref()
                .map(AtomicFile::create)
                .transpose()
                .map_err(io_err(&file))?;
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
            };
            let result = run_caught(&scn, &file, opts)?;
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
        }
        Command::Compare {
            file,
            seed,
            format,
            plot,
        } => {
            let scn = load(&file)?;
            let interval = plot
                .as_ref()
                .map(|_| sim_reuseport::plots::sample_interval(&scn));
            let off = run_caught(
                &scn,
                &file,
                RunOptions {
                    seed,
                    migrate: Some(false),
                    sample_interval: interval,
                    ..Default::default()
                },
            )?;
            let on = run_caught(
                &scn,
                &file,
                RunOptions {
                    seed,
                    migrate: Some(true),
                    sample_interval: interval,
                    ..Default::default()
                },
            )?;
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
        }
        Command::Validate { files } => {
            let mut bad = Vec::new();
            for f in &files {
                let r = load(f).and_then(|scn| {
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
