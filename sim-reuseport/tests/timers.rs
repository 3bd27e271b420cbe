//! Timers fire at their exact deadlines through the engine's batched
//! horizon checks (`sim_core::horizon_check`): a timer armed 1 s ahead is
//! first checked on a 1 ms grid 64 ms ahead, together with every timer armed
//! in the same millisecond, and re-armed from there to its deadline. The
//! SYN-ACK retransmissions of `reqsk_timer` (§5.3: 1 s, then doubling) and
//! the client's data retransmissions (§2.6: the RTO from the handshake's RTT
//! sample, doubling) are checked to the nanosecond, for connections started
//! off the grid.

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

#[test]
fn retransmission_timers_fire_at_their_exact_deadlines_5_3_2_6() {
    // The client's ACKs never reach the server: every request stays in the
    // SYN queue and the server retransmits its SYN-ACK; the client, whose
    // data is lost too, retransmits its request.
    let scn = parse_str(
        &json!({
            "version": 1, "name": "timers", "duration": "8s",
            "hosts": [
                {"name": "c", "addresses": ["10.0.1.1"]},
                {"name": "s", "addresses": ["10.0.0.1"]}
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
    let sends = sends(&trace);
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
        // §2.6: the request right after the handshake, then retransmitted
        // after rto, 2 rto, 4 rto, where rto = rtt + max(2 rtt, 200 ms).
        let established = syn_at + 2 * LATENCY;
        let rtt = 2 * LATENCY;
        let rto = rtt + (2 * rtt).max(200 * MS);
        let data: Vec<u64> = sends
            .iter()
            .filter(|s| s.1 == port && s.4 > 0)
            .map(|s| s.0)
            .collect();
        let want: Vec<u64> = [0, 1, 3, 7, 15, 31]
            .iter()
            .map(|&k| established + k * rto)
            .collect();
        assert_eq!(data, want, "conn {i}: data sends");
    }
}
