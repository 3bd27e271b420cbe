//! Plots (`--plot`): the rates panel, queues grouped per generation when
//! there are many listeners (with a complete legend), and `--from`/`--until`
//! zoom with its checks.

mod common;

use sim_core::SimDuration;
use sim_reuseport::backend::{run, RunOptions, RunResult};
use sim_reuseport::plots::{render_run, sample_interval, window, Window};
use std::process::Command;

fn sampled(name: &str, migrate: bool) -> RunResult {
    let scn = common::scenario(name, false);
    run(
        &scn,
        RunOptions {
            migrate: Some(migrate),
            sample_interval: Some(sample_interval(&scn)),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn sixteen_listeners_plot_one_queue_line_per_generation() {
    // rolling-restart: 8 workers of generation 0 replaced by 8 of generation 1.
    let on = sampled("rolling-restart.json", true);
    let off = sampled("rolling-restart.json", false);
    assert_eq!(on.worker_names.len(), 16);
    assert_eq!(on.worker_generations.iter().filter(|&&g| g == 1).count(), 8);
    let svg = render_run(&on, Some(&off), None).unwrap();
    assert!(svg.contains("SYN queue length per generation (sum over its listeners)"));
    assert!(svg.contains("generation 0 (8 listeners)"));
    assert!(svg.contains("generation 1 (8 listeners)"));
    assert!(
        !svg.contains(" more<") && !svg.contains("more\n"),
        "complete legend"
    );
    // nginx-reload: 4 old and 4 new listeners are two lines, old and new.
    let reload = sampled("nginx-reload.json", true);
    let svg = render_run(&reload, None, None).unwrap();
    assert!(svg.contains("SYN queue length per generation (sum over its listeners)"));
    assert!(svg.contains("generation 0 (4 listeners)"));
    assert!(svg.contains("generation 1 (4 listeners)"));
    // At the threshold (4 listeners of two generations), one line per
    // listener as before.
    let few = sampled("syn-flood-syncookies.json", true);
    assert_eq!(few.worker_names.len(), sim_reuseport::plots::GROUP_ABOVE);
    assert!(few
        .worker_generations
        .iter()
        .any(|&g| g != few.worker_generations[0]));
    let svg = render_run(&few, None, None).unwrap();
    assert!(svg.contains("SYN queue length per listener"));
    for name in &few.worker_names {
        assert!(svg.contains(&format!("\n{name}\n")), "legend has {name}");
    }
}

#[test]
fn rates_add_up_to_the_report() {
    let r = sampled("rolling-restart.json", true);
    let first = &r.samples[0];
    let last = r.samples.last().unwrap();
    // The rate over each interval times its length is the count in it, so
    // the rates add up to the cumulative counts.
    let mut completed = 0.0;
    let mut migrated = 0.0;
    for w in r.samples.windows(2) {
        let dt = w[1].t_s - w[0].t_s;
        completed += (w[1].outcomes[0] - w[0].outcomes[0]) as f64 / dt * dt;
        migrated += (w[1].migrations.unwrap() - w[0].migrations.unwrap()) as f64 / dt * dt;
    }
    assert_eq!(
        completed.round() as u64,
        last.outcomes[0] - first.outcomes[0]
    );
    let m = &r.report.migrations;
    let total = m.accept_queue + m.synack_timer + m.final_ack;
    assert!(total > 0, "the restart migrates requests");
    assert_eq!(last.migrations, Some(total));
    assert!(migrated.round() as u64 <= total);
    let svg = render_run(&r, None, None).unwrap();
    assert!(svg.contains("Rates (per second"));
    for label in ["completed/s", "reset/s", "migrated/s"] {
        assert!(svg.contains(&format!("\n{label}\n")), "legend has {label}");
    }
}

#[test]
fn window_is_checked() {
    let d = SimDuration::parse("6s").unwrap();
    assert_eq!(window(None, None, d), Ok(None));
    assert_eq!(
        window(Some("1.5s"), Some("3000ms"), d),
        Ok(Some(Window {
            from_s: 1.5,
            until_s: 3.0
        }))
    );
    assert_eq!(
        window(Some("2s"), None, d),
        Ok(Some(Window {
            from_s: 2.0,
            until_s: 6.0
        }))
    );
    let e = window(Some("3s"), Some("2s"), d).unwrap_err();
    assert!(e.contains("--from 3s must be before --until 2s"), "{e}");
    let e = window(Some("2s"), Some("2s"), d).unwrap_err();
    assert!(e.contains("must be before"), "{e}");
    let e = window(None, Some("7s"), d).unwrap_err();
    assert!(
        e.contains("--until 7s") && e.contains("after the end of the run (6s)"),
        "{e}"
    );
    let e = window(Some("soon"), None, d).unwrap_err();
    assert!(e.starts_with("--from \"soon\""), "{e}");
    let e = window(Some("-1s"), None, d).unwrap_err();
    assert!(e.starts_with("--from \"-1s\""), "{e}");
}

#[test]
fn zoom_keeps_only_the_window() {
    let r = sampled("rolling-restart.json", true);
    let full = render_run(&r, None, None).unwrap();
    let w = Window {
        from_s: 2.0,
        until_s: 3.0,
    };
    let zoomed = render_run(&r, None, Some(w)).unwrap();
    assert_ne!(full, zoomed);
    // Markers outside the window are gone.
    let outside: Vec<&String> = r
        .markers
        .iter()
        .filter(|(t, _)| *t > 3.1)
        .map(|(_, l)| l)
        .collect();
    assert!(!outside.is_empty());
    for label in outside {
        assert!(
            !zoomed.contains(&format!("\n{label}\n")),
            "{label} out of the window"
        );
    }
}

#[test]
fn cli_zoom_errors_are_clear() {
    let bin = env!("CARGO_BIN_EXE_reuseport-sim");
    let scn = common::root().join("scenarios/rolling-restart.json");
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("p.svg");
    let out = Command::new(bin)
        .arg("run")
        .arg(&scn)
        .args(["--from", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--plot"));
    let out = Command::new(bin)
        .arg("compare")
        .arg(&scn)
        .arg("--plot")
        .arg(&svg)
        .args(["--from", "4s", "--until", "3s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--from 4s must be before --until 3s"), "{err}");
    assert!(!svg.exists(), "nothing written");
    let out = Command::new(bin)
        .arg("run")
        .arg(&scn)
        .arg("--plot")
        .arg(&svg)
        .args(["--from", "2s", "--until", "3s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}
