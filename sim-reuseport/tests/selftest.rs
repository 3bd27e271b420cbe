//! The kernel selftest `tools/testing/selftests/bpf/prog_tests/migrate_reuseport.c`
//! reproduced as scenarios (§5.3, §5.4, §5.7, §5.9, §2.7), each in IPv4 and
//! IPv6, with the policy, with `tcp_migrate_req=1` instead, and with
//! migration off.

mod common;
use common::*;

const NR_CLIENTS: u64 = 25;

struct Case {
    file: &'static str,
    /// The BPF program's counter for this path (its own count of successful picks).
    policy_ctx: &'static str,
    /// Report migration path counted in hops.
    path: fn(&sim_reuseport::report::Migrations) -> u64,
    /// Hops per connection through the selftest's sequence with the policy.
    hops: u64,
    /// The RST cause with migration off (§7).
    off_cause: &'static str,
}

const CASES: [Case; 4] = [
    Case {
        file: "selftest-established.json",
        policy_ctx: "close_established",
        path: |m| m.accept_queue,
        hops: 3,
        off_cause: "listener_close_child",
    },
    Case {
        file: "selftest-fastopen.json",
        policy_ctx: "close_syn_recv",
        path: |m| m.accept_queue,
        hops: 3,
        off_cause: "listener_close_child",
    },
    Case {
        file: "selftest-synack-timer.json",
        policy_ctx: "synack_timer",
        path: |m| m.synack_timer,
        hops: 1,
        off_cause: "no_request",
    },
    Case {
        file: "selftest-final-ack.json",
        policy_ctx: "final_ack",
        path: |m| m.final_ack,
        hops: 1,
        off_cause: "closed_listener_request",
    },
];

fn check_policy(case: &Case, ipv6: bool) {
    let scn = scenario(case.file, ipv6);
    assert_eq!(scn.servers[0].address.is_ipv6(), ipv6);
    let r = run_with(&scn, None);
    let tag = format!("{} ipv6={ipv6}", case.file);
    // What the selftest asserts: 25 accepted and read by the final target...
    assert_eq!(listener(&r, "s4").accepted, NR_CLIENTS, "{tag}");
    assert_eq!(r.connections.completed, NR_CLIENTS, "{tag}");
    assert_eq!(
        r.connections.reset + r.connections.refused + r.connections.timed_out,
        0,
        "{tag}"
    );
    // ...and the program's counter for this path equals 25.
    assert_eq!(
        policy_picks(&r, "migrate_reuseport", case.policy_ctx),
        NR_CLIENTS,
        "{tag}"
    );
    // The kernel counts hops: the dance moves established children twice
    // more through the hash fallback, which the program does not count.
    assert_eq!((case.path)(&r.migrations), NR_CLIENTS * case.hops, "{tag}");
    assert_eq!(
        r.counter("TcpExtTCPMigrateReqSuccess"),
        NR_CLIENTS * case.hops,
        "{tag}"
    );
    assert_eq!(r.counter("TcpExtTCPMigrateReqFailure"), 0, "{tag}");
    assert_eq!(r.migrations.connections_migrated, NR_CLIENTS, "{tag}");
    assert_eq!(r.counter("TcpOutRsts"), 0, "{tag}");
}

fn without_policy(case: &Case, ipv6: bool) -> sim_reuseport::scenario::Scenario {
    let mut scn = scenario(case.file, ipv6);
    scn.policies.clear();
    scn
}

#[test]
fn selftest_established_ipv4_and_ipv6_5_7() {
    check_policy(&CASES[0], false);
    check_policy(&CASES[0], true);
}

#[test]
fn selftest_fastopen_syn_recv_ipv4_and_ipv6_5_7_note() {
    check_policy(&CASES[1], false);
    check_policy(&CASES[1], true);
}

#[test]
fn selftest_synack_timer_ipv4_and_ipv6_5_3() {
    check_policy(&CASES[2], false);
    check_policy(&CASES[2], true);
}

#[test]
fn selftest_final_ack_ipv4_and_ipv6_5_4() {
    check_policy(&CASES[3], false);
    check_policy(&CASES[3], true);
}

#[test]
fn selftests_with_sysctl_instead_of_policy_all_reach_the_last_listener_4_3() {
    for case in &CASES {
        for ipv6 in [false, true] {
            let scn = without_policy(case, ipv6);
            let r = run_with(&scn, Some(true));
            let tag = format!("{} ipv6={ipv6}", case.file);
            assert_eq!(listener(&r, "s4").accepted, NR_CLIENTS, "{tag}");
            assert_eq!(r.connections.completed, NR_CLIENTS, "{tag}");
            assert_eq!(r.connections.reset, 0, "{tag}");
            assert!((case.path)(&r.migrations) >= NR_CLIENTS, "{tag}");
            assert_eq!(r.migrations.connections_migrated, NR_CLIENTS, "{tag}");
            assert!(r.policies.is_empty());
        }
    }
}

#[test]
fn selftests_with_migration_off_reset_all_25_7() {
    for case in &CASES {
        for ipv6 in [false, true] {
            let scn = without_policy(case, ipv6);
            let r = run_with(&scn, Some(false));
            let tag = format!("{} ipv6={ipv6}", case.file);
            assert_eq!(r.connections.reset, NR_CLIENTS, "{tag}");
            assert_eq!(r.connections.completed, 0, "{tag}");
            assert_eq!(listener(&r, "s4").accepted, 0, "{tag}");
            assert_eq!(
                r.rsts_sent(case.off_cause),
                NR_CLIENTS,
                "{tag}: {:?}",
                r.resets_by_cause
            );
            assert_eq!(r.counter("TcpExtTCPMigrateReqSuccess"), 0, "{tag}");
            // Detached at close: no failure is counted (§4.3, §5.8).
            assert_eq!(r.counter("TcpExtTCPMigrateReqFailure"), 0, "{tag}");
        }
    }
}

#[test]
fn selftest_policy_drop_for_unmapped_listener_fails_migration_2_7() {
    // Remove s0 from the program's map: its children are dropped (SK_DROP →
    // TCPMigrateReqFailure) and reset, the others still migrate.
    let mut scn = scenario("selftest-established.json", false);
    if let sim_reuseport::scenario::RuleSpec::Map { targets, .. } = &mut scn.policies[0].on_migrate
    {
        targets.remove("s0");
    } else {
        panic!("selftest policy is a map");
    }
    let r = run_with(&scn, None);
    let s0_children = listener(&r, "s0").peak_accept_queue as u64;
    assert!(s0_children > 0);
    assert_eq!(r.connections.reset, s0_children);
    assert_eq!(r.rsts_sent("listener_close_child"), s0_children);
    assert_eq!(r.counter("TcpExtTCPMigrateReqFailure"), s0_children);
    assert_eq!(
        r.migrations.failures.get("accept_queue/policy_drop"),
        Some(&s0_children)
    );
    assert_eq!(r.connections.completed, NR_CLIENTS - s0_children);
}
