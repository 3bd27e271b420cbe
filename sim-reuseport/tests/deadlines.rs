//! Client give-up deadlines end to end: `connect_timeout` and
//! `request_timeout` end connections as `abandoned`, the sockets close as
//! Linux's would in their state, and every invariant that adds outcomes up
//! accounts for them.

use serde_json::json;
use sim_reuseport::backend::{run, RunOptions};
use sim_reuseport::invariants::check_run;
use sim_reuseport::scenario::parse_str;

fn scenario(service: &str, timeouts: serde_json::Value, faults: serde_json::Value) -> String {
    let mut clients = json!({"name": "load", "host": "c", "server": "srv", "request_bytes": 100,
                             "arrival": {"kind": "burst", "count": 10, "spacing": "1ms"}});
    for (k, v) in timeouts.as_object().unwrap() {
        clients[k] = v.clone();
    }
    json!({
        "version": 1, "name": "deadlines", "duration": "10s",
        "hosts": [
            {"name": "c", "addresses": ["10.0.1.1"]},
            {"name": "s", "addresses": ["10.0.0.1"]}
        ],
        "links": [{"name": "l", "between": ["c", "s"], "latency": "5ms"}],
        "servers": [{"name": "srv", "host": "s", "address": "10.0.0.1", "port": 80}],
        "workers": [{"name": "w", "server": "srv", "service_time": service}],
        "clients": [clients],
        "faults": faults
    })
    .to_string()
}

#[test]
fn request_timeout_abandons_and_the_late_response_draws_client_rsts() {
    // The worker answers after 2 s; the clients give up after 1 s: FIN, and
    // the response that comes later gets an RST (TCPAbortOnData).
    let scn = parse_str(&scenario("2s", json!({"request_timeout": "1s"}), json!([]))).unwrap();
    let r = run(&scn, RunOptions::default()).unwrap().report;
    let c = &r.connections;
    assert_eq!((c.attempted, c.abandoned, c.completed), (10, 10, 0));
    assert_eq!(c.in_flight, 0);
    assert_eq!(r.client_rsts_by_cause.get("abort_on_data"), Some(&10));
    let clients = &r.counters_by_host["c"];
    assert_eq!(clients["TcpExtTCPAbortOnData"], 10);
    assert_eq!(clients["TcpOutRsts"], 10);
    assert_eq!(clients["TcpActiveOpens"], 10);
    // The server's own counters did not send those RSTs.
    assert_eq!(r.counter("TcpOutRsts"), 0);
    assert!(
        check_run(&scn, &r, None).is_empty(),
        "{:?}",
        check_run(&scn, &r, None)
    );
}

#[test]
fn connect_timeout_abandons_in_syn_sent_and_late_synacks_are_reset() {
    // Every SYN-ACK is lost until 2 s; the clients give up after 1.5 s with
    // nothing sent. The server's SYN-ACK retransmission at about 3 s then
    // reaches no socket: the client host resets it, and the request dies
    // (TcpExtEmbryonicRsts) instead of retransmitting until 63 s.
    let faults = json!([{"kind": "drop_packets", "from": "0s", "until": "2s",
                         "match": "syn_ack", "src_host": "s"}]);
    let scn = parse_str(&scenario(
        "1ms",
        json!({"connect_timeout": "1500ms"}),
        faults,
    ))
    .unwrap();
    let r = run(&scn, RunOptions::default()).unwrap().report;
    let c = &r.connections;
    assert_eq!((c.attempted, c.abandoned), (10, 10));
    assert_eq!(r.client_rsts_by_cause.get("no_socket"), Some(&10));
    assert_eq!(r.counter("TcpExtEmbryonicRsts"), 10);
    assert_eq!(r.drops("request_reset"), 10);
    assert!(check_run(&scn, &r, None).is_empty());
}
