//! The seed is the only source of variation (issue: determinism).

mod common;
use common::*;
use sim_reuseport::backend::{run, RunOptions};

#[test]
fn a_different_seed_changes_the_digest_when_the_scenario_has_randomness() {
    let scn = scenario("nginx-reload.json", false);
    let digest = |seed| {
        run(
            &scn,
            RunOptions {
                seed: Some(seed),
                ..Default::default()
            },
        )
        .unwrap()
        .report
        .digest
    };
    let d1 = digest(1);
    assert_eq!(d1, digest(1));
    assert_ne!(d1, digest(2));
    assert_ne!(digest(2), digest(3));
}

#[test]
fn migration_on_and_off_see_the_same_arrivals() {
    // Common random numbers: the arrival stream does not depend on what the
    // server does with the connections.
    let scn = scenario("nginx-reload.json", false);
    let off = run_with(&scn, Some(false));
    let on = run_with(&scn, Some(true));
    assert_eq!(off.connections.attempted, on.connections.attempted);
    assert_ne!(off.digest, on.digest);
}

#[test]
fn tracing_and_capture_do_not_change_the_run() {
    let scn = scenario("nginx-reload.json", false);
    let plain = run(&scn, RunOptions::default()).unwrap().report;
    let mut trace = Vec::new();
    let traced = run(
        &scn,
        RunOptions {
            trace: Some(&mut trace),
            ..Default::default()
        },
    )
    .unwrap()
    .report;
    assert_eq!(plain, traced);
    assert!(trace.len() > 1000);
    let first: serde_json::Value =
        serde_json::from_slice(trace.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert!(first.get("t_ns").is_some() && first.get("event").is_some());
}
