//! Helpers shared by the scenario-level tests.
#![allow(dead_code)]

use sim_reuseport::backend::{run, RunOptions};
use sim_reuseport::report::Report;
use sim_reuseport::scenario::{parse_str, Scenario};
use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Text of a bundled scenario.
pub fn scenario_text(name: &str) -> String {
    std::fs::read_to_string(root().join("scenarios").join(name)).unwrap()
}

/// Parses a bundled scenario, optionally moved to IPv6 loopback.
pub fn scenario(name: &str, ipv6: bool) -> Scenario {
    let mut text = scenario_text(name);
    if ipv6 {
        text = text.replace("\"address\": \"127.0.0.1\"", "\"address\": \"::1\"");
    }
    parse_str(&text).unwrap()
}

/// Runs with the given migrate override.
pub fn run_with(scn: &Scenario, migrate: Option<bool>) -> Report {
    run(
        scn,
        RunOptions {
            migrate,
            ..Default::default()
        },
    )
    .unwrap()
    .report
}

/// Listener report by worker name.
pub fn listener<'r>(r: &'r Report, worker: &str) -> &'r sim_reuseport::report::ListenerReport {
    r.listeners.iter().find(|l| l.worker == worker).unwrap()
}

/// Policy picks for a call site.
pub fn policy_picks(r: &Report, policy: &str, ctx: &str) -> u64 {
    r.policies
        .iter()
        .find(|p| p.name == policy)
        .and_then(|p| p.decisions.get(ctx))
        .and_then(|d| d.get("picks").copied())
        .unwrap_or(0)
}
