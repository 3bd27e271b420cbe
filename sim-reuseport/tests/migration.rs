//! Scenario-level tests of migration rules: the sysctl toggles of §5.8, the
//! old-first restart of §6.3, and the property that with migration on and a
//! live accepting listener left, no connection is reset because a listener
//! closed (§6.2).

mod common;
use common::*;
use proptest::prelude::*;
use serde_json::json;
use sim_reuseport::scenario::{parse_str, Scenario};

fn scn(v: serde_json::Value) -> Scenario {
    parse_str(&v.to_string()).unwrap()
}

/// Two listeners on loopback; 20 clients; client ACKs and data dropped until
/// 300 ms so requests wait in the SYN queue; listener `a` closes at 100 ms
/// and `tcp_migrate_req` becomes `after` at 150 ms. The client's second data
/// retransmission (~600 ms) reaches the request: the final-ACK path.
fn toggle(at_close: u64, after: u64) -> Scenario {
    scn(json!({
        "version": 1, "name": "toggle", "duration": "3s",
        "hosts": [{"name": "lo", "addresses": ["127.0.0.1"], "sysctls": {"tcp_migrate_req": at_close}}],
        "servers": [{"name": "srv", "host": "lo", "address": "127.0.0.1", "port": 8080}],
        "workers": [{"name": "a", "server": "srv"}, {"name": "b", "server": "srv"}],
        "clients": [{"name": "c", "host": "lo", "server": "srv", "arrival": {"kind": "burst", "count": 20, "spacing": "1ms"}}],
        "faults": [{"kind": "drop_packets", "from": "0s", "until": "300ms", "match": "ack_no_syn", "dst_port": 8080}],
        "timeline": [
            {"at": "100ms", "do": "close", "worker": "a"},
            {"at": "150ms", "do": "set_sysctl", "host": "lo", "name": "tcp_migrate_req", "value": after}
        ]
    }))
}

#[test]
fn sysctl_on_at_close_off_at_migration_fails_then_rst_5_8() {
    let r = run_with(&toggle(1, 0), None);
    let n = listener(&r, "a").peak_syn_queue as u64;
    assert!(n > 0 && n < 20, "some requests wait on a: {n}");
    assert_eq!(r.counter("TcpExtTCPMigrateReqFailure"), n);
    assert_eq!(r.migrations.failures.get("final_ack/sysctl_off"), Some(&n));
    assert_eq!(r.rsts_sent("closed_listener_request"), n);
    assert_eq!(r.connections.reset, n);
    assert_eq!(r.connections.completed, 20 - n);
}

#[test]
fn sysctl_off_at_close_on_at_migration_is_no_migration_and_no_failure_5_8() {
    let r = run_with(&toggle(0, 1), None);
    let n = listener(&r, "a").peak_syn_queue as u64;
    assert!(n > 0);
    assert_eq!(r.counter("TcpExtTCPMigrateReqFailure"), 0);
    assert_eq!(r.counter("TcpExtTCPMigrateReqSuccess"), 0);
    assert_eq!(r.rsts_sent("closed_listener_request"), n);
    assert_eq!(r.connections.reset, n);
}

#[test]
fn sysctl_on_at_close_and_at_migration_moves_requests_at_final_ack_5_4() {
    let r = run_with(&toggle(1, 1), None);
    let n = listener(&r, "a").peak_syn_queue as u64;
    assert!(n > 0);
    assert_eq!(r.migrations.final_ack, n);
    assert_eq!(r.connections.completed, 20);
    assert_eq!(r.counter("TcpOutRsts"), 0);
}

#[test]
fn attaching_a_policy_through_a_closed_fd_is_refused_5_9() {
    // A closed fd takes no setsockopt (EBADF): the call cannot be made, so
    // the closed listener can never be revived into a fresh group (where
    // its requests would "migrate" to itself). Refused when loaded.
    let mut v: serde_json::Value = serde_json::to_value(toggle(1, 1)).unwrap();
    v["policies"] =
        json!([{"name": "p", "kind": "select_or_migrate", "via": "a", "attach_at": null}]);
    v["timeline"] = json!([
        {"at": "100ms", "do": "close", "worker": "a"},
        {"at": "200ms", "do": "attach_policy", "policy": "p"}
    ]);
    let e = sim_reuseport::scenario::lower(&scn(v.clone())).unwrap_err();
    assert_eq!(e.kind, sim_reuseport::scenario::LowerErrorKind::ClosedFd);
    assert_eq!(e.path, "timeline[1].policy", "{e}");
    assert!(e.message.contains("EBADF"), "{e}");
    // Without the attach, a's requests migrate to b, one hop each.
    v["timeline"].as_array_mut().unwrap().pop();
    let r = run_with(&scn(v), None);
    let n = listener(&r, "a").peak_syn_queue as u64;
    assert!(n > 0);
    assert_eq!(r.connections.completed, 20);
    assert_eq!(r.migrations.final_ack, n, "one hop each, to b");
    assert_eq!(r.counter("TcpOutRsts"), 0);
}

/// Four old listeners with full accept queues (they stopped accepting),
/// restarted old-first with a gap: the new listeners form a new group.
fn old_first() -> Scenario {
    scn(json!({
        "version": 1, "name": "old-first", "duration": "3s",
        "hosts": [{"name": "s", "addresses": ["10.0.0.1"]}, {"name": "c", "addresses": ["10.0.1.1"]}],
        "links": [{"between": ["c", "s"], "latency": "5ms"}],
        "servers": [{"name": "srv", "host": "s", "address": "10.0.0.1", "port": 80}],
        "workers": [
            {"name": "o0", "server": "srv"}, {"name": "o1", "server": "srv"},
            {"name": "n0", "server": "srv", "listen_at": null}, {"name": "n1", "server": "srv", "listen_at": null}
        ],
        "clients": [{"name": "c", "host": "c", "server": "srv", "arrival": {"kind": "constant", "rate": 400}, "stop": "2s"}],
        "timeline": [
            {"at": "900ms", "do": "stop_accepting", "worker": "o0"},
            {"at": "900ms", "do": "stop_accepting", "worker": "o1"},
            {"at": "1s", "do": "restart_old_first", "old": ["o0", "o1"], "new": ["n0", "n1"], "gap": "100ms"}
        ]
    }))
}

#[test]
fn old_first_restart_resets_every_queued_connection_even_with_migration_6_3() {
    let off = run_with(&old_first(), Some(false));
    let on = run_with(&old_first(), Some(true));
    let queued = off.rsts_sent("listener_close_child");
    assert!(
        queued > 20,
        "accept queues held connections at close: {queued}"
    );
    // Migration cannot help: the old group has no live member (§6.2, §6.3).
    assert_eq!(on.rsts_sent("listener_close_child"), queued);
    assert_eq!(
        on.migrations.failures.get("accept_queue/no_live_member"),
        Some(&queued)
    );
    assert_eq!(on.connections.reset, off.connections.reset);
    // SYNs in the gap find no listener: RST|ACK, ECONNREFUSED (§7 E).
    assert!(on.connections.refused > 0);
    assert_eq!(on.connections.refused, off.connections.refused);
    assert_eq!(on.rsts_sent("no_listener"), on.connections.refused);
}

/// A random restart: `n` workers, some close (with or without a drain),
/// one "keeper" never closes and always accepts; random load and RTT.
fn random_restart(
    n: usize,
    closing: Vec<(u64, u64)>,
    rate: u64,
    latency_us: u64,
    seed: u64,
) -> Scenario {
    let mut workers = vec![json!({"name": "keeper", "server": "srv", "backlog": 4096})];
    let mut timeline = Vec::new();
    for i in 0..n {
        let name = format!("w{i}");
        workers.push(json!({"name": name, "server": "srv", "backlog": 4096}));
        if let Some(&(stop_ms, drain_ms)) = closing.get(i) {
            timeline.push(
                json!({"at": format!("{stop_ms}ms"), "do": "stop_accepting", "worker": name}),
            );
            timeline.push(
                json!({"at": format!("{}ms", stop_ms + drain_ms), "do": "close", "worker": name}),
            );
        }
    }
    scn(json!({
        "version": 1, "name": "prop", "duration": "2500ms", "seed": seed,
        "hosts": [{"name": "s", "addresses": ["10.0.0.1"], "sysctls": {"tcp_migrate_req": 1}},
                  {"name": "c", "addresses": ["10.0.1.1", "10.0.1.2"]}],
        "links": [{"between": ["c", "s"], "latency": format!("{latency_us}us"), "jitter": "100us"}],
        "servers": [{"name": "srv", "host": "s", "address": "10.0.0.1", "port": 443}],
        "workers": workers,
        "clients": [{"name": "c", "host": "c", "server": "srv", "arrival": {"kind": "poisson", "rate": rate}, "stop": "2s"}],
        "timeline": timeline
    }))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn with_migration_on_and_a_live_accepting_listener_no_reset_comes_from_a_close_6_2(
        n in 1usize..6,
        closing in proptest::collection::vec((100u64..1800, 0u64..500), 0..6),
        rate in 50u64..2000,
        latency_us in 10u64..20_000,
        seed in 0u64..1000,
    ) {
        let r = run_with(&random_restart(n, closing, rate, latency_us, seed), None);
        for cause in ["listener_close_child", "closed_listener_request", "migrated_accept_queue_overflow"] {
            prop_assert_eq!(r.rsts_sent(cause), 0, "{}: {:?}", cause, r.resets_by_cause);
        }
        prop_assert_eq!(r.connections.reset, 0);
        prop_assert_eq!(r.counter("TcpExtTCPMigrateReqFailure"), 0);
        prop_assert!(r.connections.completed + r.connections.in_flight == r.connections.attempted);
    }
}

#[test]
fn kill_closes_the_workers_accepted_connections_with_fin_and_closes_its_listener() {
    // Service takes 300 ms, so at the kill each worker holds accepted
    // connections whose request it has read and is still answering: the
    // process exit closes them with a FIN (§5.10, `__tcp_close`: nothing
    // unread; measured: tools/kernel-probes/results/close_fin_vs_rst.txt
    // case a), so their clients read EOF, and nothing is reset. Its
    // listener closes like any other (§5.7), so with migration on its queue
    // moves to the survivor.
    let v = json!({
        "version": 1, "name": "kill", "duration": "3s",
        "hosts": [{"name": "s", "addresses": ["10.0.0.1"], "sysctls": {"tcp_migrate_req": 1}},
                  {"name": "c", "addresses": ["10.0.1.1"]}],
        "links": [{"between": ["c", "s"], "latency": "1ms"}],
        "servers": [{"name": "srv", "host": "s", "address": "10.0.0.1", "port": 80}],
        "workers": [{"name": "a", "server": "srv", "service_time": "300ms"},
                    {"name": "b", "server": "srv", "service_time": "300ms"}],
        "clients": [{"name": "c", "host": "c", "server": "srv", "arrival": {"kind": "constant", "rate": 100}, "stop": "2s"}],
        "timeline": [{"at": "1s", "do": "kill", "worker": "a"}]
    });
    let r = run_with(&scn(v), None);
    let eof = r.connections.eof;
    assert!(eof >= 10, "about 15 in service on a at 1 s: {eof}");
    assert_eq!(
        r.rsts_sent("application_abort"),
        0,
        "every request was read"
    );
    assert_eq!(r.counter("TcpExtTCPAbortOnClose"), 0);
    assert_eq!(r.counter("TcpOutRsts"), 0);
    assert_eq!(r.connections.reset, 0, "nothing is reset");
    assert_eq!(listener(&r, "a").state, "closed");
    assert_eq!(
        r.connections.completed + r.connections.eof,
        r.connections.attempted
    );
}
