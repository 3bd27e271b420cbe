//! Observation does not change the run: the same scenario and seed give the
//! same digest, event count and report with or without sampling for plots
//! (`--plot`), a trace (`--trace`) or a capture (`--pcap`); and the plot's
//! queue samples hold every peak the report states.

mod common;

use sim_core::PcapWriter;
use sim_reuseport::backend::{run, RunOptions, RunResult};
use sim_reuseport::plots::sample_interval;

/// Scenarios with restarts, migrations, overflows and many listeners.
const SCENARIOS: [&str; 5] = [
    "nginx-reload.json",
    "accept-queue-overflow.json",
    "selftest-synack-timer.json",
    "syn-flood-syncookies.json",
    "worker-reduction.json",
];

fn observed(name: &str, migrate: Option<bool>, plot: bool, trace: bool, pcap: bool) -> RunResult {
    let scn = common::scenario(name, false);
    let mut trace_buf = Vec::new();
    let mut pcap_w = PcapWriter::new(Vec::new()).unwrap();
    run(
        &scn,
        RunOptions {
            migrate,
            sample_interval: plot.then(|| sample_interval(&scn)),
            trace: trace.then_some(&mut trace_buf as &mut dyn std::io::Write),
            tap: pcap.then_some(&mut pcap_w as &mut dyn sim_reuseport::backend::PacketTap),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn plot_trace_and_pcap_do_not_change_the_run() {
    for name in SCENARIOS {
        for migrate in [Some(false), Some(true)] {
            let bare = observed(name, migrate, false, false, false);
            let bare_json = serde_json::to_string(&bare.report).unwrap();
            for (plot, trace, pcap) in [
                (true, false, false),
                (false, true, false),
                (false, false, true),
                (true, true, true),
            ] {
                let seen = observed(name, migrate, plot, trace, pcap);
                let what =
                    format!("{name} migrate {migrate:?} plot {plot} trace {trace} pcap {pcap}");
                assert_eq!(seen.report.digest, bare.report.digest, "{what}: digest");
                assert_eq!(seen.report.events, bare.report.events, "{what}: events");
                assert_eq!(
                    serde_json::to_string(&seen.report).unwrap(),
                    bare_json,
                    "{what}: report"
                );
                assert_eq!(seen.samples.is_empty(), !plot, "{what}: samples");
            }
        }
    }
}

#[test]
fn samples_hold_every_peak_the_report_states() {
    for name in SCENARIOS {
        for migrate in [Some(false), Some(true)] {
            let r = observed(name, migrate, true, false, false);
            let scn = common::scenario(name, false);
            let iv = sample_interval(&scn).as_secs_f64();
            // One sample per interval, from 0 to the end of the run.
            let expected = (scn.duration.0.as_secs_f64() / iv).floor() as usize + 1;
            assert_eq!(r.samples.len(), expected, "{name}: sample count");
            for (i, l) in r.report.listeners.iter().enumerate() {
                assert_eq!(r.worker_names[i], l.worker);
                let syn = r.samples.iter().map(|s| s.syn_queues[i]).max().unwrap();
                let acc = r.samples.iter().map(|s| s.accept_queues[i]).max().unwrap();
                assert_eq!(
                    syn, l.peak_syn_queue,
                    "{name} {migrate:?} {}: SYN peak",
                    l.worker
                );
                assert_eq!(
                    acc, l.peak_accept_queue,
                    "{name} {migrate:?} {}: accept peak",
                    l.worker
                );
            }
        }
    }
}

/// A progress callback observes only: same report, and it sees simulated
/// time grow up to the duration.
#[test]
fn progress_does_not_change_the_run() {
    let scn = common::scenario("nginx-reload.json", false);
    let bare = observed("nginx-reload.json", Some(false), false, false, false);
    let mut seen = Vec::new();
    let mut tick = |t: sim_core::SimDuration| seen.push(t);
    let r = run(
        &scn,
        RunOptions {
            migrate: Some(false),
            progress: Some(&mut tick),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&r.report).unwrap(),
        serde_json::to_string(&bare.report).unwrap()
    );
    assert!(!seen.is_empty());
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    assert!(*seen.last().unwrap() <= scn.duration.0);
}

/// No progress bar when stderr is not a terminal (here a pipe), in text
/// or JSON mode: stderr stays empty for a small run.
#[test]
fn no_progress_bar_off_a_terminal() {
    let file = common::root().join("scenarios/nginx-reload.json");
    for format in ["text", "json"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_reuseport-sim"))
            .args(["run", file.to_str().unwrap(), "--format", format])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{format}");
    }
}
