//! The repro scenarios of issue 16 (`tests/repro/`, with their README's
//! commands): valid scenarios on which an invariant used to fail, and
//! scenarios the loader used to accept.

mod common;

use sim_reuseport::backend::{run, RunOptions, RunResult};
use sim_reuseport::invariants::check_run;
use sim_reuseport::scenario::{lower, parse_str, Scenario};

fn repro(name: &str) -> String {
    std::fs::read_to_string(common::root().join("sim-reuseport/tests/repro").join(name)).unwrap()
}

fn traced(scn: &Scenario, seed: u64, migrate: bool) -> (RunResult, String) {
    let mut trace = Vec::new();
    let r = run(
        scn,
        RunOptions {
            seed: Some(seed),
            migrate: Some(migrate),
            trace: Some(&mut trace),
            ..Default::default()
        },
    )
    .unwrap();
    (r, String::from_utf8(trace).unwrap())
}

/// Every RST a host sent has its cause recorded: each RST packet in the
/// trace follows an `rst` line that names its cause, and the causes sum to
/// the hosts' `TcpOutRsts`.
fn every_rst_has_a_cause(r: &RunResult, trace: &str) {
    let (mut with_cause, mut packets) = (0u64, 0u64);
    for line in trace.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let event = v["event"].as_str().unwrap();
        let rst = v["flags"].as_str().is_some_and(|f| f.contains('R'));
        match event {
            "rst" => {
                let detail = v["detail"].as_str().unwrap_or("");
                assert!(!detail.is_empty(), "an rst without a cause: {line}");
                with_cause += 1;
            }
            "send" | "net_drop" if rst => packets += 1,
            _ => {}
        }
    }
    assert_eq!(with_cause, packets, "RST packets vs RSTs with a cause");
    let server: u64 = r.report.resets_by_cause.iter().map(|c| c.rsts_sent).sum();
    let client: u64 = r.report.client_rsts_by_cause.values().sum();
    let out: u64 = r
        .report
        .counters_by_host
        .values()
        .map(|c| c.get("TcpOutRsts").copied().unwrap_or(0))
        .sum();
    assert_eq!(server + client, out, "causes vs TcpOutRsts of every host");
    assert_eq!(server + client, packets);
}

/// `queue_limits` allows a request that migrated on its SYN-ACK timer and
/// then expired at once (§5.3: the clone is counted on the target with no
/// fullness check, and its expiry is a `request_expired` failure, not a hop).
#[test]
fn queue_limits_allows_a_timer_migration_that_expired() {
    let scn = parse_str(&repro("queue_limits_false_positive.json")).unwrap();
    let (r, trace) = traced(&scn, 257, true);
    let failed = r
        .report
        .migrations
        .failures
        .get("synack_timer/request_expired")
        .copied()
        .unwrap_or(0);
    assert!(
        failed > 0,
        "the repro exercises the path: {:?}",
        r.report.migrations
    );
    let over = r.report.listeners.iter().any(|l| {
        let w = scn.workers.iter().find(|w| w.name == l.worker).unwrap();
        l.peak_syn_queue > w.backlog + 1
    });
    assert!(
        over,
        "a target's SYN queue went past backlog+1: {:?}",
        r.report.listeners
    );
    assert_eq!(check_run(&scn, &r.report, Some(true)), vec![]);
    every_rst_has_a_cause(&r, &trace);
}

/// A client port reused about 1 s later and a late, reordered RST of the
/// old connection: RST validation (§5.11, RFC 5961) drops or challenges it,
/// so the new connection is not reset with no cause, and the counters agree.
#[test]
fn counters_agree_after_port_reuse_and_a_late_rst() {
    let scn = parse_str(&repro("counters_agree_port_reuse.json")).unwrap();
    for migrate in [false, true] {
        let (r, trace) = traced(&scn, 2, migrate);
        assert_eq!(
            check_run(&scn, &r.report, Some(migrate)),
            vec![],
            "migrate {migrate}"
        );
        every_rst_has_a_cause(&r, &trace);
        assert!(
            r.report.connections.reset > 0,
            "the repro resets connections"
        );
    }
}

/// Every RST cause is recorded on the bundled scenarios too.
#[test]
fn every_rst_of_the_bundled_scenarios_has_a_cause() {
    for name in [
        "nginx-reload.json",
        "restart-old-first.json",
        "accept-queue-overflow.json",
        "syn-flood-syncookies.json",
        "cert-rotation-immediate-stop.json",
    ] {
        let scn = common::scenario(name, false);
        for migrate in [false, true] {
            let (r, trace) = traced(&scn, scn.seed, migrate);
            every_rst_has_a_cause(&r, &trace);
        }
    }
}

/// The other repros are refused when loaded, at the field that is wrong.
#[test]
fn repros_of_bad_scenarios_are_refused() {
    let lowered = |name: &str| lower(&parse_str(&repro(name)).unwrap()).unwrap_err();
    let e = lowered("listen_after_close.json");
    assert!(e.message.contains("EBADF"), "{e}");
    let e = lowered("reload_old_in_new.json");
    assert!(e.path.contains(".new["), "{e}");
    let e = parse_str(&repro("asarray.json")).unwrap_err();
    assert!(e.message.contains("not an array"), "{e}");
}

/// Found by the invariant fuzz: with migration off, a failure for the
/// sysctl itself (a group revived by a policy attached through a shut-down
/// listener) is what "off" means, not a broken `migration_off_is_off`.
#[test]
fn migration_off_allows_failures_for_the_sysctl() {
    let text = std::fs::read_to_string(
        common::root().join("sim-reuseport/tests/fuzz-found/migrate-off-revived-group.json"),
    )
    .unwrap();
    let scn = parse_str(&text).unwrap();
    let (r, _) = traced(&scn, scn.seed, false);
    let m = &r.report.migrations;
    assert_eq!(r.report.migration_hops(), 0);
    assert!(
        m.failures.get("final_ack/sysctl_off").copied().unwrap_or(0) > 0,
        "{m:?}"
    );
    assert_eq!(check_run(&scn, &r.report, Some(false)), vec![]);
}
