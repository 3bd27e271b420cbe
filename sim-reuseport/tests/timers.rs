//! Timers fire at their deadlines through the engine's batched horizon
//! checks (`sim_core::horizon_check`): a timer armed 1 s ahead is first
//! checked on a 1 ms grid 64 ms ahead, together with every timer armed in
//! the same millisecond, and re-armed from there to its deadline. The
//! SYN-ACK retransmissions of `reqsk_timer` (§5.3: 1 s, then doubling) and
//! the client's data retransmissions (§2.1, §2.6: the loss probe, then the
//! RTO from the handshake's RTT sample, doubling) are checked to the
//! nanosecond, for connections started off the grid: at their exact
//! nominal deadlines with `"timer_mode": "exact"`, and at their timer-wheel
//! buckets (§3.1) by default.

use serde_json::{json, Value};
use sim_reuseport::backend::{run, RunOptions};
use sim_reuseport::scenario::parse_str;

const MS: u64 = 1_000_000;
/// One-way latency, off the 1 ms grid.
const LATENCY: u64 = 1_234_567;
/// Connection spacing, off the grid too.
const SPACING: u64 = 1_337_000;
const CONNS: u64 = 5;

/// Segments sent, from the trace (a `net_drop` was sent, then lost):
/// `(time, src port, dst port, flags, payload length)`.
fn sends(trace: &[u8]) -> Vec<(u64, u16, u16, String, u64)> {
    let port = |v: &Value| -> u16 {
        v.as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    std::str::from_utf8(trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == "send" || v["event"] == "net_drop")
        .map(|v| {
            (
                v["t_ns"].as_u64().unwrap(),
                port(&v["src"]),
                port(&v["dst"]),
                v["flags"].as_str().unwrap().to_string(),
                v["len"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The client's ACKs never reach the server: every request stays in the
/// SYN queue and the server retransmits its SYN-ACK; the client, whose data
/// is lost too, retransmits its request. Returns the trace's sends.
fn lost_acks_run(timer_mode: &str) -> Vec<(u64, u16, u16, String, u64)> {
    let scn = parse_str(
        &json!({
            "version": 1, "name": "timers", "duration": "8s",
            "hosts": [
                {"name": "c", "addresses": ["10.0.1.1"], "timer_mode": timer_mode},
                {"name": "s", "addresses": ["10.0.0.1"], "timer_mode": timer_mode}
            ],
            "links": [{"name": "l", "between": ["c", "s"], "latency": format!("{LATENCY}ns")}],
            "servers": [{"name": "srv", "host": "s", "address": "10.0.0.1", "port": 80}],
            "workers": [{"name": "w", "server": "srv"}],
            "clients": [{"name": "load", "host": "c", "server": "srv", "request_bytes": 100,
                         "arrival": {"kind": "burst", "count": CONNS, "spacing": format!("{SPACING}ns")}}],
            "faults": [{"kind": "drop_packets", "from": "0s", "until": "8s",
                        "match": "ack_no_syn", "dst_port": 80}]
        })
        .to_string(),
    )
    .unwrap();
    let mut trace = Vec::new();
    run(
        &scn,
        RunOptions {
            trace: Some(&mut trace),
            ..Default::default()
        },
    )
    .unwrap();
    sends(&trace)
}

#[test]
fn retransmission_timers_fire_at_their_exact_deadlines_5_3_2_6() {
    let sends = lost_acks_run("exact");
    let client_ports: Vec<u16> = sends.iter().filter(|s| s.3 == "SYN").map(|s| s.1).collect();
    assert_eq!(client_ports.len() as u64, CONNS);
    for (i, &port) in client_ports.iter().enumerate() {
        let syn_at = i as u64 * SPACING;
        let syn_arrives = syn_at + LATENCY;
        // §5.3: SYN-ACK at the SYN's arrival, then after 1, 2 and 4 s.
        let synacks: Vec<u64> = sends
            .iter()
            .filter(|s| s.2 == port && s.3 == "SYN|ACK")
            .map(|s| s.0)
            .collect();
        let want: Vec<u64> = [0, 1000, 3000, 7000]
            .iter()
            .map(|&d| syn_arrives + d * MS)
            .collect();
        assert_eq!(synacks, want, "conn {i}: SYN-ACKs");
        // §2.1, §2.6: the request right after the handshake, the loss probe
        // at min(2 rtt + 200 ms, rto), then the RTO from the probe, doubling:
        // rto = rtt + max(2 rtt, 200 ms), the RTT in whole µs as the kernel
        // measures it.
        let established = syn_at + 2 * LATENCY;
        let rtt_us = 2 * LATENCY / 1_000;
        let rto = (rtt_us + (2 * rtt_us).max(200_000)) * 1_000;
        let data: Vec<u64> = sends
            .iter()
            .filter(|s| s.1 == port && s.4 > 0)
            .map(|s| s.0)
            .collect();
        let want: Vec<u64> = [0, 1, 2, 4, 8, 16, 32]
            .iter()
            .map(|&k| established + k * rto)
            .collect();
        assert_eq!(data, want, "conn {i}: data sends");
    }
}

#[test]
fn retransmission_timers_fire_at_their_wheel_buckets_by_default_3_1() {
    // The same run with the default timer model (HZ=250 wheel): every
    // SYN-ACK retransmission is the bucket `calc_wheel_index` gives for a
    // timer armed at the previous one (re-armed from its callback), and the
    // five requests, whose SYNs arrived within 5.4 ms, retransmit together.
    use sim_core::{SimDuration, SimTime, TimerModel};
    let m = TimerModel::LINUX;
    let sends = lost_acks_run("wheel");
    let client_ports: Vec<u16> = sends.iter().filter(|s| s.3 == "SYN").map(|s| s.1).collect();
    let mut first_retrans = std::collections::BTreeSet::new();
    for (i, &port) in client_ports.iter().enumerate() {
        let syn_arrives = SimTime(i as u64 * SPACING + LATENCY);
        let t1 = m.fire_at(syn_arrives, SimDuration::from_secs(1));
        let t2 = m.rearm_at(t1, SimDuration::from_secs(2));
        let t3 = m.rearm_at(t2, SimDuration::from_secs(4));
        let synacks: Vec<u64> = sends
            .iter()
            .filter(|s| s.2 == port && s.3 == "SYN|ACK")
            .map(|s| s.0)
            .collect();
        assert_eq!(synacks, vec![syn_arrives.0, t1.0, t2.0, t3.0], "conn {i}");
        assert!(m.is_tick(t1) && m.is_tick(t2) && m.is_tick(t3));
        first_retrans.insert(t1);
    }
    assert_eq!(first_retrans.len(), 1, "one bucket: {first_retrans:?}");
}

/// §3.1, the scenario `syn-retry-burst.json`: SYNs dropped over 100 ms are
/// retransmitted at only 4 instants 32 ms apart on the wheel (HZ=250), one
/// per millisecond with exact timers; the bursts overflow the accept queue,
/// the spread retries do not.
#[test]
fn syns_dropped_over_100ms_come_back_in_4_bursts_and_overflow_the_accept_queue_3_1() {
    use sim_core::TimerMode;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/syn-retry-burst.json");
    let scn = sim_reuseport::scenario::load(&path).unwrap();
    let retries = |mode: TimerMode| {
        let mut trace = Vec::new();
        let report = run(
            &scn,
            RunOptions {
                trace: Some(&mut trace),
                timer_mode: Some(mode),
                ..Default::default()
            },
        )
        .unwrap()
        .report;
        // The retransmissions of the SYNs sent while the filter dropped them.
        let syns: Vec<(u64, String)> = std::str::from_utf8(&trace)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| (v["event"] == "send" || v["event"] == "net_drop") && v["flags"] == "SYN")
            .map(|v| {
                (
                    v["t_ns"].as_u64().unwrap(),
                    v["src"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let dropped: std::collections::BTreeSet<&String> = syns
            .iter()
            .filter(|(t, _)| (1_000 * MS..1_100 * MS).contains(t))
            .map(|(_, src)| src)
            .collect();
        assert_eq!(dropped.len(), 100);
        let at: Vec<u64> = syns
            .iter()
            .filter(|(t, src)| *t >= 1_100 * MS && dropped.contains(src))
            .map(|(t, _)| *t)
            .collect();
        (at, report)
    };
    let (wheel, wr) = retries(TimerMode::Wheel);
    let (exact, er) = retries(TimerMode::Exact);
    let distinct = |v: &[u64]| v.iter().collect::<std::collections::BTreeSet<_>>().len();
    assert_eq!(wheel.len(), 100);
    assert_eq!(exact.len(), 100);
    let mut bursts: Vec<u64> = wheel.clone();
    bursts.dedup();
    assert_eq!(
        bursts,
        vec![2_016 * MS, 2_048 * MS, 2_080 * MS, 2_112 * MS],
        "4 instants, 32 ms apart"
    );
    assert_eq!(distinct(&exact), 100, "exact: spread out");
    assert_eq!(er.counter("TcpExtListenOverflows"), 0);
    assert_eq!(er.counter("TcpExtSyncookiesSent"), 0);
    assert!(wr.counter("TcpExtSyncookiesSent") > 0);
    assert!(
        wr.counter("TcpExtListenOverflows") >= 50,
        "{}",
        wr.counter("TcpExtListenOverflows")
    );
    assert!(wr.listeners[0].peak_accept_queue > er.listeners[0].peak_accept_queue);
}
