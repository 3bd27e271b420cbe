//! `run` and `compare`: one scenario, one seed.

use super::{
    check_outputs, io_err, load_for_seed, run_caught, violations, BugPath, CompareArgs, Failure,
    Format, OnOff, PlotArgs, RunArgs, Timers,
};
use sim_reuseport::backend::RunOptions;
use sim_reuseport::invariants;
use sim_reuseport::output::{write_output, OutputFile};
use sim_reuseport::report::Comparison;
use sim_reuseport::scenario::Scenario;
use std::io::IsTerminal;
use std::path::Path;

/// Before a run or compare of `scn`: a warning on stderr if it is large
/// (`tools::estimate`), and a progress bar of simulated time on a terminal
/// (never in JSON mode, never when stderr is not a terminal). `runs` is how
/// many runs the bar covers (2 for compare).
fn run_feedback(
    scn: &Scenario,
    format: Format,
    trace: bool,
    pcap: bool,
    runs: u64,
) -> Option<indicatif::ProgressBar> {
    use sim_reuseport::tools::estimate;
    if let Some(w) = estimate::warning(estimate::estimate(scn), trace, pcap) {
        eprintln!("{w}");
    }
    let ms = scn.duration.0.as_nanos() / 1_000_000;
    (format == Format::Text && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(ms.saturating_mul(runs))
            .with_finish(indicatif::ProgressFinish::AndClear);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ms simulated (eta {eta})",
            )
            .expect("progress template"),
        );
        b
    })
}

/// The progress callback of run number `i` (from 0) for `bar`.
fn progress_of(
    bar: &Option<indicatif::ProgressBar>,
    scn: &Scenario,
    i: u64,
) -> Option<impl FnMut(sim_core::SimDuration)> {
    let base = i * (scn.duration.0.as_nanos() / 1_000_000);
    bar.clone().map(move |b| {
        move |t: sim_core::SimDuration| b.set_position(base + t.as_nanos() / 1_000_000)
    })
}

/// `run`: one run, its report, its optional trace, pcap and plot.
pub(crate) fn run_cmd(a: RunArgs) -> Result<(), Failure> {
    let RunArgs {
        file,
        seed,
        migrate,
        timers,
        format,
        trace,
        pcap,
        plot: PlotArgs { plot, from, until },
        inject_bug,
    } = a;
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
    let zoom = sim_reuseport::plots::window(from.as_deref(), until.as_deref(), scn.duration.0)
        .map_err(Failure::BadInput)?;
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
    let bar = run_feedback(&scn, format, trace.is_some(), pcap.is_some(), 1);
    let mut tick = progress_of(&bar, &scn, 0);
    let opts = RunOptions {
        progress: tick
            .as_mut()
            .map(|f| f as &mut dyn FnMut(sim_core::SimDuration)),
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
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    result.report.varied = drawn;
    if let (Some(f), Some(p)) = (trace_file, trace.as_deref()) {
        f.commit().map_err(io_err(p))?;
    }
    if let (Some(w), Some(p)) = (pcap_file, pcap.as_deref()) {
        w.into_inner().and_then(|f| f.commit()).map_err(io_err(p))?;
    }
    if let Some(p) = plot.as_deref() {
        let svg =
            sim_reuseport::plots::render_run(&result, None, zoom).map_err(Failure::BadInput)?;
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
    Ok(())
}

/// `compare`: the same seed with migration off and on, side by side.
pub(crate) fn compare_cmd(a: CompareArgs) -> Result<(), Failure> {
    let CompareArgs {
        file,
        seed,
        format,
        plot: PlotArgs { plot, from, until },
        inject_bug,
    } = a;
    let outputs: Vec<(&str, &Path)> = plot.as_deref().map(|p| ("--plot", p)).into_iter().collect();
    let report_to_stderr = check_outputs(&file, &outputs)?;
    let (scn, seed_used, drawn) = load_for_seed(&file, seed)?;
    let zoom = sim_reuseport::plots::window(from.as_deref(), until.as_deref(), scn.duration.0)
        .map_err(Failure::BadInput)?;
    let inject_bug = inject_bug.map(BugPath::path);
    let interval = plot
        .as_ref()
        .map(|_| sim_reuseport::plots::sample_interval(&scn));
    let bar = run_feedback(&scn, format, false, false, 2);
    let (mut tick_off, mut tick_on) = (progress_of(&bar, &scn, 0), progress_of(&bar, &scn, 1));
    let mut off = run_caught(
        &scn,
        &file,
        RunOptions {
            progress: tick_off
                .as_mut()
                .map(|f| f as &mut dyn FnMut(sim_core::SimDuration)),
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
            progress: tick_on
                .as_mut()
                .map(|f| f as &mut dyn FnMut(sim_core::SimDuration)),
            seed,
            migrate: Some(true),
            sample_interval: interval,
            inject_bug,
            ..Default::default()
        },
    )?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
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
            sim_reuseport::plots::render_run(&on, Some(&off), zoom).map_err(Failure::BadInput)?;
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
    Ok(())
}
