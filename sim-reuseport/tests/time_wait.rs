//! TIME_WAIT end to end (model §5.12): which side holds it, a client
//! reusing its ports against a server's TIME_WAIT, a client running out of
//! ports to its own TIME_WAIT and `tcp_tw_reuse`, and `tcp_max_tw_buckets`.
//! Kernel measurements: `tools/kernel-probes/results/time_wait.txt`.

use serde_json::{json, Value};
use sim_reuseport::backend::{run, RunOptions};
use sim_reuseport::invariants::check_run;
use sim_reuseport::report::{Report, TimeWaitReport};
use sim_reuseport::scenario::parse_str;

/// One client address at `rate` connections/s for `secs` seconds against
/// one worker; `keep_alive` decides who closes first.
fn scenario(rate: u64, secs: u64, keep_alive: bool, client: Value, server: Value) -> String {
    json!({
        "version": 1, "name": "time-wait", "duration": format!("{}ms", secs * 1000 + 500),
        "hosts": [
            {"name": "c", "addresses": ["10.0.1.1"], "sysctls": client},
            {"name": "s", "addresses": ["10.0.0.1"], "sysctls": server}
        ],
        "links": [{"name": "l", "between": ["c", "s"], "latency": "1ms"}],
        "servers": [{"name": "srv", "host": "s", "address": "10.0.0.1", "port": 80}],
        "workers": [{"name": "w", "server": "srv", "backlog": 4096, "keep_alive": keep_alive,
                     "response_bytes": 100}],
        "clients": [{"name": "load", "host": "c", "server": "srv", "request_bytes": 100,
                     "arrival": {"kind": "constant", "rate": rate}, "stop": format!("{secs}s")}]
    })
    .to_string()
}

fn run_text(text: &str) -> Report {
    let scn = parse_str(text).unwrap();
    let r = run(&scn, RunOptions::default()).unwrap().report;
    assert_eq!(check_run(&scn, &r, None), vec![], "invariants");
    r
}

fn side<'r>(r: &'r Report, side: &str) -> Option<&'r TimeWaitReport> {
    r.time_wait.iter().find(|t| t.side == side)
}

#[test]
fn reconnects_from_the_same_ports_take_over_the_servers_timewait_sockets() {
    // 36,000 connections from one address: its 28,232 ephemeral ports come
    // round again while the server still holds their TIME_WAIT; each new
    // SYN (newer timestamp) replaces it (probe B1), none is refused.
    let r = run_text(&scenario(3_000, 12, false, json!({}), json!({})));
    let c = &r.connections;
    assert!(c.attempted > 36_000, "{}", c.attempted);
    assert_eq!(c.completed, c.attempted);
    assert_eq!(r.counter("TcpOutRsts"), 0);
    let s = side(&r, "server").expect("server TIME_WAIT");
    assert_eq!(s.taken_over, c.attempted - 28_232);
    assert_eq!(s.peak, 28_232, "one per client port");
    assert!(
        side(&r, "clients").is_none(),
        "the clients never close first"
    );
}

#[test]
fn a_client_closing_first_runs_out_of_ports_to_its_timewait_unless_tcp_tw_reuse() {
    // Keep-alive: the client holds TIME_WAIT 60 s, so at 600/s from one
    // address its 28,232 ports are all held after 47 s and connect() fails
    // (EADDRNOTAVAIL, probe D: outcome no_port).
    let r = run_text(&scenario(600, 55, true, json!({}), json!({})));
    let c = &r.connections;
    let n = c.attempted;
    assert!(n > 33_000, "{n}");
    assert_eq!(c.completed, 28_232, "one connection per port");
    assert_eq!(c.no_port, n - 28_232);
    assert_eq!(c.timed_out, 0);
    let cl = side(&r, "clients").unwrap();
    assert_eq!((cl.peak, cl.taken_over), (28_232, 0));
    assert!(side(&r, "server").is_none());
    // tcp_tw_reuse=1: a tuple older than 1 s is taken over (TWRecycled).
    let r = run_text(&scenario(
        600,
        55,
        true,
        json!({"tcp_tw_reuse": 1}),
        json!({}),
    ));
    assert_eq!(r.connections.completed, n);
    let cl = side(&r, "clients").unwrap();
    assert_eq!(cl.taken_over, n - 28_232);
    assert_eq!(r.counters_by_host["c"]["TcpExtTWRecycled"], cl.taken_over);
}

#[test]
fn past_tcp_max_tw_buckets_the_server_frees_closing_connections() {
    let r = run_text(&scenario(
        1_000,
        2,
        false,
        json!({}),
        json!({"tcp_max_tw_buckets": 100}),
    ));
    assert_eq!(r.connections.completed, 2_000);
    let s = side(&r, "server").unwrap();
    assert_eq!((s.peak, s.at_end), (100, 100));
    assert_eq!(r.counter("TcpExtTCPTimeWaitOverflow"), 2_000 - 100);
    assert_eq!(
        r.counter("TcpOutRsts"),
        0,
        "the model's client FIN came with its ACK"
    );
}

#[test]
fn timewait_sockets_expire_after_60s_on_the_wheel() {
    // A TIME_WAIT socket is freed 60-62.05 s after its close (60 s rounded
    // up to a 2.048 s wheel bucket): in a 63.5 s run, those that closed in
    // the first 1.45 s certainly are (145), none that closed after 3.5 s
    // (350).
    let r = run_text(&scenario(100, 63, false, json!({}), json!({})));
    let s = side(&r, "server").unwrap();
    let tw = r.counter("TcpExtTW");
    assert!(
        (145..=351).contains(&tw),
        "TcpExtTW {tw}, at_end {}",
        s.at_end
    );
    assert_eq!(
        r.counter("TcpExtTW") + s.at_end,
        r.connections.completed,
        "every TIME_WAIT socket expired or is still there"
    );
    assert!(s.peak < r.connections.completed && s.peak <= 100 * 62 + 1);
}
