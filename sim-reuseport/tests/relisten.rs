//! `relisten`: `listen()` again on a listening socket changes only its
//! backlog (§5.1, `__inet_listen_sk`); nothing queued is evicted, and the
//! accept-queue check (§5.2 step 2: backlog + 1 children fit) uses the new
//! value from the next SYN on. Mirrors the 6.18 measurement
//! `tools/kernel-probes/results/relisten_backlog.txt`
//! (`docs/linux-semantics/relisten-backlog.md`).

mod common;
use common::*;
use serde_json::json;
use sim_reuseport::invariants::check_run;
use sim_reuseport::scenario::parse_str;

fn scenario(timeline: serde_json::Value) -> sim_reuseport::scenario::Scenario {
    // One worker with backlog 4 that does not accept until 4 s; 8 clients
    // at 10 ms, 3 more at 2.5 s (from another host: each population picks
    // its ephemeral ports from 32768 on).
    let v = json!({
        "version": 1, "name": "relisten", "duration": "8s",
        "hosts": [{"name": "s", "addresses": ["10.0.0.1"]},
                  {"name": "c", "addresses": ["10.0.1.1"]},
                  {"name": "c2", "addresses": ["10.0.1.2"]}],
        "links": [{"between": ["c", "s"], "latency": "1ms"},
                  {"between": ["c2", "s"], "latency": "1ms"}],
        "servers": [{"name": "srv", "host": "s", "address": "10.0.0.1", "port": 80}],
        "workers": [{"name": "w", "server": "srv", "backlog": 4}],
        "clients": [
            {"name": "first", "host": "c", "server": "srv", "start": "10ms",
             "arrival": {"kind": "burst", "count": 8, "spacing": "1ms"}},
            {"name": "second", "host": "c2", "server": "srv", "start": "2500ms",
             "arrival": {"kind": "burst", "count": 3, "spacing": "1ms"}}
        ],
        "timeline": timeline
    });
    parse_str(&v.to_string()).unwrap()
}

#[test]
fn relisten_raises_then_lowers_the_backlog_without_evicting_5_1() {
    let base = json!([
        {"at": "0s", "do": "stop_accepting", "worker": "w"},
        {"at": "4s", "do": "resume_accepting", "worker": "w"}
    ]);
    let plain = run_with(&scenario(base.clone()), None);
    assert_eq!(
        listener(&plain, "w").peak_accept_queue,
        5,
        "backlog 4: backlog + 1 children fit (§5.2 step 2)"
    );

    let mut t = base.as_array().unwrap().clone();
    t.push(json!({"at": "500ms", "do": "relisten", "worker": "w", "backlog": 10}));
    t.push(json!({"at": "2s", "do": "relisten", "worker": "w", "backlog": 2}));
    let scn = scenario(json!(t));
    let r = run_with(&scn, None);
    // The sweep's queue_limits check allows the largest backlog the
    // listener had (8 > 4 + 1 with no migration is not a violation).
    assert_eq!(check_run(&scn, &r, None), vec![]);
    // listen(10): the 3 clients whose SYNs were dropped get in with their
    // retransmission at 1 s (probe: 5/4, then 8/10 after 2.5 s).
    assert_eq!(listener(&r, "w").peak_accept_queue, 8);
    // listen(2) with 8 queued evicts nothing (probe: 11/2), so the second
    // burst's SYNs are dropped until accept() drains the queue at 4 s.
    let overflows = r.counter("TcpExtListenOverflows");
    assert!(
        overflows >= 3 + 3,
        "the first burst's 3 extra SYNs and at least the second burst's first SYNs: {overflows}"
    );
    assert_eq!(r.connections.completed, 11, "{:?}", r.connections);
    assert_eq!(r.connections.reset + r.connections.refused, 0);
}

#[test]
fn relisten_of_a_socket_that_is_not_listening_does_nothing() {
    // After a shutdown, listen() would resurrect the socket (§5.9): that is
    // the `listen` action; `relisten` leaves it alone.
    let t = json!([
        {"at": "0s", "do": "stop_accepting", "worker": "w"},
        {"at": "1500ms", "do": "shutdown", "worker": "w"}
    ]);
    let without = run_with(&scenario(t.clone()), None);
    let mut t = t.as_array().unwrap().clone();
    t.push(json!({"at": "2s", "do": "relisten", "worker": "w", "backlog": 64}));
    let r = run_with(&scenario(json!(t)), None);
    assert_eq!(listener(&r, "w").state, "shutdown");
    assert!(
        r.connections.refused >= 3,
        "the second burst finds no listener"
    );
    assert_eq!(r.connections, without.connections);
}
