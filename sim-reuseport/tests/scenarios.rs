//! The bundled scenario library (`scenarios/*.json`):
//!
//! * the committed JSON Schema (`schema/scenario.schema.json`) is what
//!   `reuseport-sim schema` prints, and every bundled file conforms to it;
//! * every bundled file parses and lowers (`scenario::lower`);
//! * the `compare` report (migration off and on, same seed) of every file
//!   except `bench-100k.json` matches its insta snapshot in `snapshots/`,
//!   and shows the property the scenario exists to show (asserted here too,
//!   so that a snapshot accepted blindly cannot hide a regression);
//! * runs are deterministic: the same scenario twice gives byte-identical
//!   reports and traces.

mod common;
use common::root;
use sim_reuseport::backend::{run, RunOptions};
use sim_reuseport::report::{Comparison, Report};
use sim_reuseport::scenario::{self, parse_str};
use std::path::PathBuf;

/// Scenarios too slow for a snapshot in the test profile.
const NOT_SNAPSHOTTED: &[&str] = &["bench-100k.json"];

/// Every bundled scenario file, sorted by name.
fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 16, "scenario library: {files:?}");
    files
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn schema_path() -> PathBuf {
    root().join("schema").join("scenario.schema.json")
}

#[test]
fn committed_schema_is_the_generated_schema() {
    let committed = std::fs::read_to_string(schema_path())
        .expect("schema/scenario.schema.json (regenerate: cargo run --release -- schema > schema/scenario.schema.json)");
    // `reuseport-sim schema` prints the schema and a newline.
    let generated = scenario::json_schema() + "\n";
    assert!(
        committed == generated,
        "schema/scenario.schema.json is stale: regenerate it with \
         `cargo run --release -- schema > schema/scenario.schema.json`"
    );
}

#[test]
fn every_bundled_scenario_conforms_to_the_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    for f in scenario_files() {
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
    }
}

#[test]
fn the_schema_rejects_what_the_parser_rejects() {
    // A sample of structural errors: the schema is useful to editors only if
    // it flags them too.
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let good: serde_json::Value =
        serde_json::from_str(&common::scenario_text("nginx-reload.json")).unwrap();
    assert!(validator.is_valid(&good));
    type Mutation = (&'static str, fn(&mut serde_json::Value));
    let mutations: [Mutation; 5] = [
        ("unknown field", |v| v["colour"] = "blue".into()),
        ("missing duration", |v| {
            v.as_object_mut().unwrap().remove("duration");
        }),
        ("bad duration unit", |v| v["duration"] = "10 parsecs".into()),
        ("negative port", |v| v["servers"][0]["port"] = (-1).into()),
        ("unknown action", |v| {
            v["timeline"][0]["do"] = "reload_sideways".into()
        }),
    ];
    for (what, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(!validator.is_valid(&bad), "schema accepts: {what}");
        assert!(
            parse_str(&bad.to_string()).is_err(),
            "parser accepts: {what}"
        );
    }
}

#[test]
fn every_bundled_scenario_parses_and_validates() {
    for f in scenario_files() {
        let scn = scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !scn.description.trim().is_empty(),
            "{}: a bundled scenario says what it shows",
            f.display()
        );
        if let Err(e) = sim_reuseport::vary::check(&scn, &sim_reuseport::scenario::validate) {
            panic!("{}", e.in_file(&f.display().to_string()));
        }
        if let Err(e) = scenario::lower(&scn) {
            panic!("{}", e.in_file(&f.display().to_string()));
        }
    }
}

fn run_report(scn: &scenario::Scenario, migrate: bool) -> Report {
    run(
        scn,
        RunOptions {
            migrate: Some(migrate),
            ..Default::default()
        },
    )
    .unwrap()
    .report
}

/// What `reuseport-sim compare FILE` computes: the scenario's `vary` block
/// drawn for its own seed, then the same seed with migration off and on.
fn compare(file: &str) -> Comparison {
    let scn = scenario::load(&root().join("scenarios").join(file)).unwrap();
    let (scn, drawn) = sim_reuseport::vary::apply(&scn, scn.seed).unwrap();
    let (mut off, mut on) = (run_report(&scn, false), run_report(&scn, true));
    off.varied = drawn.clone();
    on.varied = drawn;
    Comparison::new(off, on)
}

/// The comparison as snapshotted: the JSON of `reuseport-sim compare
/// --format json`, except that `events` and `digest`, fingerprints of the
/// engine's event sequence (the determinism test below covers them), are
/// masked to keep the snapshots about behaviour.
fn snapshot_text(cmp: &Comparison) -> String {
    cmp.to_json()
        .lines()
        .map(|line| {
            let key = line.trim_start();
            let indent = &line[..line.len() - key.len()];
            if key.starts_with("\"events\": ") {
                format!("{indent}\"events\": \"[engine]\",")
            } else if key.starts_with("\"digest\": ") {
                format!("{indent}\"digest\": \"[engine]\"")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Consistency rules that hold for every report.
fn check_consistency(file: &str, side: &str, r: &Report) {
    let tag = format!("{file} ({side})");
    let c = &r.connections;
    assert_eq!(
        c.attempted,
        c.outcomes(),
        "{tag}: every connection has one outcome"
    );
    assert_eq!(
        r.counter("TcpExtTCPMigrateReqSuccess"),
        r.migration_hops(),
        "{tag}: TCPMigrateReqSuccess counts every hop"
    );
    assert_eq!(r.counter("TcpExtTCPMigrateReqFailure"), r.migrations.failed);
    assert_eq!(
        r.migrations.failures.values().sum::<u64>(),
        r.migrations.failed,
        "{tag}: failures by path/reason add up"
    );
    assert!(
        r.migrations.connections_migrated <= r.migration_hops(),
        "{tag}"
    );
    let sent: u64 = r.resets_by_cause.iter().map(|c| c.rsts_sent).sum();
    assert_eq!(
        r.counter("TcpOutRsts"),
        sent,
        "{tag}: every RST has a cause"
    );
    let reset: u64 = r.resets_by_cause.iter().map(|c| c.connections_reset).sum();
    let refused: u64 = r
        .resets_by_cause
        .iter()
        .map(|c| c.connections_refused)
        .sum();
    assert_eq!(c.reset, reset, "{tag}: every reset is attributed");
    assert_eq!(c.refused, refused, "{tag}: every refusal is attributed");
    for rc in &r.resets_by_cause {
        assert!(
            rc.connections_reset + rc.connections_refused <= rc.rsts_sent,
            "{tag}: {rc:?}"
        );
    }
}

/// What each scenario is there to show (besides its snapshot).
fn check_property(file: &str, cmp: &Comparison) {
    let (off, on) = (&cmp.off, &cmp.on);
    let same_outcomes = || {
        assert_eq!(off.connections, on.connections, "{file}: off == on");
        assert_eq!(off.resets_by_cause, on.resets_by_cause, "{file}: off == on");
    };
    match file {
        "nginx-reload.json" => {
            assert!(off.connections.reset > 0, "{file}");
            assert_eq!(
                off.connections_reset_by("listener_close_child"),
                off.connections.reset
            );
            assert_eq!(on.connections.reset, 0, "{file}");
            assert!(on.migrations.accept_queue > 0, "{file}");
        }
        "nginx-deferred-reload.json" => {
            // TCP_DEFER_ACCEPT (§5.3) keeps requests whose data was lost in
            // the SYN queue: more migrate at their data (final_ack, §5.4)
            // than in the same scenario without it. A few per seed (5 %
            // loss), so summed over seeds 1..=10 (one seed alone can go
            // either way).
            let text = common::scenario_text(file);
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            for w in v["workers"].as_array_mut().unwrap() {
                w["defer_accept"] = 0.into();
            }
            let plain = sim_reuseport::scenario::parse_str(&v.to_string()).unwrap();
            let deferred = sim_reuseport::scenario::parse_str(&text).unwrap();
            let final_acks = |scn: &scenario::Scenario| -> u64 {
                (1..=10)
                    .map(|seed| {
                        let opts = RunOptions {
                            migrate: Some(true),
                            seed: Some(seed),
                            ..Default::default()
                        };
                        run(scn, opts).unwrap().report.migrations.final_ack
                    })
                    .sum()
            };
            let plain_on = common::run_with(&plain, Some(true));
            assert!(on.counter("TcpExtTCPDeferAcceptDrop") > 0, "{file}");
            assert_eq!(plain_on.counter("TcpExtTCPDeferAcceptDrop"), 0);
            let (with, without) = (final_acks(&deferred), final_acks(&plain));
            assert!(
                with > without,
                "{file}: final_ack over seeds 1..=10: {with} with defer, {without} without"
            );
            assert_eq!(on.connections.reset, 0, "{file}");
            assert!(off.connections.reset > 0, "{file}");
        }
        "reload-high-rtt.json" => {
            // §7 B dominates: requests in the SYN queue during one 200 ms RTT.
            assert!(
                off.connections_reset_by("closed_listener_request")
                    > off.connections_reset_by("listener_close_child")
            );
            assert!(off.drops("request_timer_no_target") > 0, "{file}: §7 C");
            assert_eq!(on.connections.reset, 0, "{file}");
            assert!(on.migrations.final_ack > 0 && on.migrations.synack_timer > 0);
        }
        "restart-old-first.json" => {
            // §6.3: the same resets with migration off and on.
            assert!(off.connections.reset > 0, "{file}");
            assert_eq!(on.connections.reset, off.connections.reset, "{file}");
            assert_eq!(
                on.rsts_sent("listener_close_child"),
                off.rsts_sent("listener_close_child")
            );
            assert!(off.connections.refused > 0, "{file}: §7 E in the gap");
            assert_eq!(off.connections_reset_by("no_listener"), 0);
            assert!(on.migrations.failed > 0 && on.migrations.accept_queue > 0);
        }
        "worker-reduction.json" | "rolling-restart.json" => {
            assert!(off.connections.reset > 0, "{file}");
            assert!(off.rsts_sent("listener_close_child") > 0, "{file}");
            assert_eq!(on.connections.reset, 0, "{file}");
            assert_eq!(on.migrations.failed, 0, "{file}");
            assert_eq!(on.migrations.connections_migrated, off.connections.reset);
        }
        "cert-rotation-immediate-stop.json" => {
            // No drain: the exposure is the SYN queue (§7 B) and children
            // not yet accepted (§7 A).
            assert!(
                off.connections_reset_by("closed_listener_request") > 0,
                "{file}"
            );
            assert!(
                off.connections_reset_by("listener_close_child") > 0,
                "{file}"
            );
            assert_eq!(on.connections.reset, 0, "{file}");
            assert!(on.migrations.final_ack > 0, "{file}");
        }
        "fd-passing.json" => {
            for r in [off, on] {
                assert_eq!(r.connections.reset, 0, "{file}");
                assert_eq!(r.connections.completed, r.connections.attempted, "{file}");
                assert_eq!(r.migration_hops() + r.migrations.failed, 0, "{file}");
                // The new workers use the inherited listeners; their own never listen.
                assert!(r.listeners.iter().all(|l| l.state != "closed"), "{file}");
            }
            same_outcomes();
        }
        "accept-queue-overflow.json" => {
            for r in [off, on] {
                assert!(r.drops("syn_accept_queue_full") > 0, "{file}: §7 I");
                assert!(r.drops("final_ack_accept_queue_full") > 0, "{file}: aoo=0");
                assert!(
                    r.connections_reset_by("accept_queue_overflow") > 0,
                    "{file}: §7 G, aoo=1"
                );
                assert_eq!(
                    r.counter("TcpExtListenOverflows"),
                    r.drops("syn_accept_queue_full")
                        + r.drops("final_ack_accept_queue_full")
                        + r.rsts_sent("accept_queue_overflow"),
                    "{file}: every overflow is a SYN drop, an ACK drop or a G RST"
                );
            }
            assert!(
                off.connections_reset_by("listener_close_child") > 0,
                "{file}"
            );
            assert_eq!(on.connections_reset_by("listener_close_child"), 0, "{file}");
            // Migrated children overfill one new listener per host.
            assert!(
                on.connections_reset_by("accept_queue_overflow")
                    > off.connections_reset_by("accept_queue_overflow")
            );
            assert!(
                on.listeners.iter().any(|l| l.peak_accept_queue > 65),
                "{file}"
            );
        }
        "syn-flood-syncookies.json" => {
            for r in [off, on] {
                let sent = r.counter("TcpExtSyncookiesSent");
                assert!(sent > 0, "{file}");
                assert_eq!(r.counter("TcpExtTCPReqQFullDoCookies"), sent, "{file}");
                // Every cookie ACK is validated, even after the old listeners closed.
                assert_eq!(r.counter("TcpExtSyncookiesRecv"), sent, "{file}");
                assert_eq!(r.counter("TcpExtTCPReqQFullDrop"), 0, "{file}");
            }
            assert!(off.connections.reset > 0, "{file}");
            assert_eq!(off.counter("TcpExtSyncookiesFailed"), off.connections.reset);
            assert_eq!(on.connections.reset, 0, "{file}");
            assert_eq!(on.connections.completed, on.connections.attempted, "{file}");
        }
        "bpf-steer-new-generation.json" => {
            same_outcomes();
            assert_eq!(on.connections.reset, 0, "{file}");
            assert_eq!(on.connections.completed, on.connections.attempted, "{file}");
            let p = &on.policies[0];
            assert!(
                p.decisions["syn"]["picks"] >= on.connections.attempted,
                "{file}"
            );
            assert!(p.decisions["close_established"]["picks"] > 0, "{file}");
            assert_eq!(
                on.migration_hops(),
                p.decisions["close_established"]["picks"],
                "{file}"
            );
        }
        "bpf-cancel-migration.json" => {
            same_outcomes();
            assert!(
                on.connections.reset > 0,
                "{file}: resets even with migration"
            );
            assert!(on.migration_hops() > 0, "{file}: the others migrate");
            assert_eq!(
                on.migrations.failures.get("accept_queue/policy_drop"),
                Some(&on.rsts_sent("listener_close_child")),
                "{file}"
            );
        }
        f if f.starts_with("selftest-") => {
            // The policy decides, not the sysctl: all 25 reach s4 both ways.
            for r in [off, on] {
                assert_eq!(r.connections.completed, 25, "{file}");
                assert_eq!(
                    r.listeners
                        .iter()
                        .find(|l| l.worker == "s4")
                        .unwrap()
                        .accepted,
                    25
                );
            }
            // With the real program, its own counter for the path (in
            // .bss) is 25 too: every migration it chose succeeded.
            if let Some(stem) = f.strip_suffix("-bpf.json") {
                let counter = match stem {
                    "selftest-established" => "migrated_at_close",
                    "selftest-fastopen" => "migrated_at_close_fastopen",
                    "selftest-synack-timer" => "migrated_at_send_synack",
                    "selftest-final-ack" => "migrated_at_recv_ack",
                    other => panic!("{other}: which counter?"),
                };
                for r in [off, on] {
                    let bpf = r.policies[0].bpf.as_ref().expect("a bpf policy");
                    let mut maps = bpf.maps.as_array().unwrap().iter();
                    let bss = maps.find(|m| m["name"] == ".bss").unwrap();
                    let mut globals = bss["globals"].as_array().unwrap().iter();
                    let c = globals.find(|g| g["name"] == counter).unwrap();
                    assert_eq!(c["value"], 25, "{file}: {counter}");
                }
            }
        }
        // The kernel's own numbers (spec §7, Linux 6.18, loopback): within 5 %.
        "spec-reference-new-first.json" => {
            let within = |got: u64, kernel: u64| got.abs_diff(kernel) * 20 <= kernel;
            assert!(
                within(off.connections.reset, 124),
                "{file}: off {}",
                off.connections.reset
            );
            assert_eq!(off.rsts_sent("listener_close_child"), off.connections.reset);
            assert_eq!(
                on.connections.reset, 0,
                "{file}: kernel measured 0 with migration"
            );
        }
        "spec-reference-old-first.json" => {
            let within = |got: u64, kernel: u64| got.abs_diff(kernel) * 20 <= kernel;
            for r in [off, on] {
                assert!(
                    within(r.connections.reset, 248),
                    "{file}: {}",
                    r.connections.reset
                );
            }
            assert_eq!(on.connections.reset, off.connections.reset, "{file}: §6.3");
        }
        "syn-retry-burst.json" => {
            // §3.1: the retried SYNs of the 100 ms gap come back in 4
            // bursts that overflow the accept queue (the exact-timer
            // comparison is in tests/timers.rs).
            same_outcomes();
            assert!(on.counter("TcpExtListenOverflows") > 0, "{file}");
            assert!(on.drops("cookie_ack_accept_queue_full") > 0, "{file}");
            assert!(on.counter("TcpExtSyncookiesSent") > 0, "{file}");
            assert_eq!(on.listeners[0].peak_accept_queue, 17, "{file}");
            assert_eq!(on.connections.completed, on.connections.attempted, "{file}");
            // The client hosts count the retransmitted SYNs: the 100 of the
            // gap and one per SYN dropped at a full accept queue (§7 I).
            assert_eq!(
                on.counters_by_host["clients"]["TcpExtTCPSynRetrans"],
                100 + on.drops("syn_accept_queue_full")
            );
        }
        "nginx-reload-sweep.json" => {
            // The drawn values are part of the result, and the reload story
            // holds for the file's seed.
            assert_eq!(on.varied.len(), 8, "{file}");
            assert_eq!(on.varied, off.varied);
            assert!(off.connections.reset > 0, "{file}");
            assert_eq!(on.connections.reset, 0, "{file}");
        }
        "incoming-cpu-pinned.json" => {
            // §4.2 exact form with SO_INCOMING_CPU (tests/incoming_cpu.rs
            // runs the same host without the close: spare gets nothing).
            let accepted =
                |r: &Report, w: &str| r.listeners.iter().find(|l| l.worker == w).unwrap().accepted;
            for r in [off, on] {
                // spare is only chosen by the hash fallback after w1 closed.
                assert!(accepted(r, "spare") > 0, "{file}");
                assert!(accepted(r, "spare") < accepted(r, "w1"), "{file}");
                assert!(accepted(r, "w0") > accepted(r, "w1"), "{file}");
            }
            assert!(off.connections_reset_by("listener_close_child") > 0);
            assert_eq!(on.connections.reset, 0, "{file}");
            assert!(on.migrations.accept_queue > 0, "{file}");
            assert_eq!(on.migrations.failed, 0, "{file}");
        }
        "worker-cpu-saturation.json" => {
            // Application CPU on a saturated 2-CPU host (tests/app_cpu.rs
            // compares with the fixed service time): old workers' queues
            // hold children at close.
            assert!(off.connections.reset > 0, "{file}");
            assert_eq!(
                off.connections_reset_by("listener_close_child") + 1,
                off.connections.reset,
                "{file}: §7 A, and one request in flight (§7 B)"
            );
            assert_eq!(on.connections.reset, 0, "{file}");
            assert_eq!(on.connections.completed, on.connections.attempted);
            assert!(on.migrations.accept_queue > 0, "{file}");
            // Queues built up on every old listener before the close.
            for r in [off, on] {
                assert!(
                    r.listeners.iter().take(4).all(|l| l.peak_accept_queue > 50),
                    "{file}"
                );
            }
        }
        "keepalive-client-close.json" => {
            // The client closes first: TIME_WAIT on the client host, one per
            // connection that completed its close, none on the server; the
            // same run with the server closing first is the mirror image.
            let tw = |r: &Report, side: &str| {
                r.time_wait
                    .iter()
                    .find(|t| t.side == side)
                    .map_or(0, |t| t.peak)
            };
            for r in [off, on] {
                assert_eq!(tw(r, "clients"), r.connections.completed, "{file}");
                assert_eq!(tw(r, "server"), 0, "{file}");
                assert_eq!(r.counter("TcpExtTW"), 0, "{file}: 60 s > the run");
            }
            let text = common::scenario_text(file);
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            for w in v["workers"].as_array_mut().unwrap() {
                w["keep_alive"] = false.into();
            }
            let closing = sim_reuseport::scenario::parse_str(&v.to_string()).unwrap();
            let server_first = common::run_with(&closing, Some(true));
            assert_eq!(tw(&server_first, "server"), on.connections.completed);
            assert_eq!(tw(&server_first, "clients"), 0);
            assert!(off.connections_reset_by("listener_close_child") > 0);
            assert_eq!(on.connections.reset, 0, "{file}");
        }
        other => panic!("{other}: add the property this scenario shows to check_property"),
    }
}

#[test]
fn compare_reports_match_snapshots_and_show_their_property() {
    for f in scenario_files() {
        let file = file_name(&f);
        if NOT_SNAPSHOTTED.contains(&file.as_str()) {
            continue;
        }
        let cmp = compare(&file);
        check_consistency(&file, "off", &cmp.off);
        check_consistency(&file, "on", &cmp.on);
        check_property(&file, &cmp);
        let name = file.trim_end_matches(".json").to_string();
        insta::with_settings!({
            snapshot_path => "../../snapshots",
            prepend_module_to_snapshot => false,
            description => format!("reuseport-sim compare scenarios/{file}"),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, snapshot_text(&cmp));
        });
    }
}

#[test]
fn runs_are_deterministic_reports_and_traces() {
    for file in ["reload-high-rtt.json", "accept-queue-overflow.json"] {
        let scn = scenario::load(&root().join("scenarios").join(file)).unwrap();
        let once = || {
            let mut trace = Vec::new();
            let r = run(
                &scn,
                RunOptions {
                    migrate: Some(true),
                    trace: Some(&mut trace),
                    ..Default::default()
                },
            )
            .unwrap();
            (r.report.to_json(), trace)
        };
        let (a_json, a_trace) = once();
        let (b_json, b_trace) = once();
        assert!(!a_trace.is_empty());
        assert!(a_json == b_json, "{file}: reports differ");
        assert!(a_trace == b_trace, "{file}: traces differ");
        // A trace does not change the run.
        let plain = run_report(&scn, true);
        assert_eq!(plain.to_json(), a_json, "{file}: tracing changed the run");
    }
}
