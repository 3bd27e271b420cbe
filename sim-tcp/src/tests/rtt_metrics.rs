//! RTT samples, the TCP metrics cache, the first RTO and the tail loss
//! probe (§2.1 `tcp_timestamps`, `tcp_no_metrics_save`, `tcp_early_retrans`;
//! §2.6), for the client's request and the server's response, against
//! `docs/linux-semantics/first-rto-after-syn-retransmission.md` and
//! `tail-loss-probe.md` (probes `rto_after_synretrans.py`,
//! `tail_loss_probe.py`).

use super::harness::*;
use super::pair::{Loss, Pair};
use crate::{ClientOutcome, Sysctls, TCP_TIMEOUT_FALLBACK};
use sim_core::{SimDuration, TcpFlags, TimerModel};

fn lose_first(dir: &'static str, flags: TcpFlags) -> Loss {
    let mut done = false;
    Box::new(move |l| {
        let hit = !done && l.1 == dir && l.2 == flags;
        done |= hit;
        hit
    })
}

fn lose_data(dir: &'static str) -> Loss {
    Box::new(move |l| l.1 == dir && l.5 > 0)
}

fn pair(s: Sysctls, delay_ms: u64, lose: Option<Loss>) -> Pair {
    Pair::build(
        s,
        server_addr(),
        client_addr(7100),
        SimDuration::from_millis(delay_ms),
        plain(100),
        TimerModel::EXACT,
        lose,
    )
    .0
}

#[test]
fn timestamps_give_an_rtt_sample_after_a_retransmitted_syn_2_1() {
    // The first SYN is lost; the SYN-ACK answers the retransmitted one and
    // echoes its TSval: RTT 10 ms, RTO 10 + max(20, 200) = 210 ms.
    let mut p = pair(Sysctls::default(), 5, Some(lose_first("C>S", SYN)));
    p.run(ms(1_010));
    assert_eq!(p.cli.syn_retransmits(), 1);
    assert!(p.cli.timestamps());
    assert_eq!(p.cli.srtt(), Some(SimDuration::from_millis(10)));
    assert_eq!(p.cli.rto(), SimDuration::from_millis(210));
    // Without timestamps: Karn leaves no sample, the cache is empty: 3 s.
    let s = sysctls(&[("tcp_timestamps", 0)]);
    let mut p = pair(s, 5, Some(lose_first("C>S", SYN)));
    p.run(ms(1_010));
    assert_eq!((p.cli.srtt(), p.cli.rto()), (None, TCP_TIMEOUT_FALLBACK));
}

#[test]
fn a_synack_resent_for_a_retransmitted_syn_echoes_the_first_syn_5_4_step1() {
    // The first SYN-ACK is lost; the client's SYN retransmission at 1 s makes
    // the request resend it, but `req->ts_recent` is still the first SYN's
    // (tcp_check_req returns before updating it), so the echo measures
    // 1.010 s: RTO = 1010 + 2020 ms.
    let mut p = pair(Sysctls::default(), 5, Some(lose_first("S>C", SYNACK)));
    p.run(ms(1_010));
    assert_eq!(p.cli.srtt(), Some(SimDuration::from_millis(1_010)));
    assert_eq!(p.cli.rto(), SimDuration::from_millis(3_030));
}

#[test]
fn a_cached_rtt_seeds_the_rto_after_a_retransmitted_syn_2_1() {
    // §2.1, measured "warm (cache rtt 100 ms): 300 ms": a first connection
    // over a 100 ms RTT completes and leaves its RTT in the client's metrics;
    // a second one loses its first SYN with timestamps off (no sample):
    // RTO = crtt + max(2·crtt, 200 ms) = 300 ms.
    for (no_save, expect) in [
        (0, SimDuration::from_millis(300)),
        (1, TCP_TIMEOUT_FALLBACK),
    ] {
        let s = sysctls(&[("tcp_timestamps", 0), ("tcp_no_metrics_save", no_save)]);
        let mut lost_syn = false;
        let lose: Loss = Box::new(move |l| {
            // The second connection's first SYN (port 7101).
            let hit = !lost_syn && l.1 == "C>S" && l.2 == SYN && l.3 == cisn(7101);
            lost_syn |= hit;
            hit
        });
        let mut p = pair(s, 50, Some(lose));
        p.run(secs(5));
        assert_eq!(p.crec.outcomes[0].1, ClientOutcome::Completed);
        assert_eq!(p.cmetrics.len(), 1 - no_save as usize);
        p.connect_at(secs(10), client_addr(7101), cisn(7101), plain(100));
        p.run(secs(11) + SimDuration::from_millis(100));
        assert_eq!(p.cli.syn_retransmits(), 1);
        assert_eq!(p.cli.srtt(), None);
        assert_eq!(p.cli.rto(), expect, "tcp_no_metrics_save={no_save}");
    }
}

#[test]
fn lost_request_gets_a_loss_probe_then_rto_doubling_2_1() {
    // RTT 20 ms: RTO 20 + 200 = 220 ms; probe at min(2·20 + 200, 220).
    let mut p = pair(Sysctls::default(), 10, Some(lose_data("C>S")));
    p.run(secs(2));
    let sent = p.times("C>S", |l| l.5 > 0);
    let rel: Vec<u64> = sent
        .iter()
        .map(|t| (*t - ms(20)).as_nanos() / 1_000_000)
        .collect();
    assert_eq!(rel, vec![0, 220, 440, 880, 1_760]);
    assert_eq!(p.ccounters.TcpExtTCPLossProbes, 1);
}

#[test]
fn the_server_response_follows_the_same_rules_2_1() {
    // RTT 20 ms, measured from the SYN-ACK to the final ACK: the response
    // (sent at 25 ms, after the request) is probed at 220 ms and then
    // retransmitted by an RTO doubling from 220 ms (tail-loss-probe.md:
    // "server, 20 ms (224 ms): 0.230, 0.456, 0.912, 1.840").
    let mut p = pair(Sysctls::default(), 10, Some(lose_data("S>C")));
    p.run(secs(2));
    let sent = p.times("S>C", |l| l.5 > 0);
    let rel: Vec<u64> = sent
        .iter()
        .map(|t| (*t - ms(30)).as_nanos() / 1_000_000)
        .collect();
    assert_eq!(rel, vec![0, 220, 440, 880, 1_760]);
    assert_eq!(p.srv.counters.TcpExtTCPLossProbes, 1);
    assert_eq!(p.srv.counters.TcpExtTCPTimeouts, 3);
}

#[test]
fn server_rto_after_a_retransmitted_synack_uses_the_echo_or_the_fallback_2_1() {
    // The first SYN-ACK is lost and the client's SYN retransmission makes the
    // request resend it: `num_retrans` > 0, no timing sample for the child.
    // With timestamps the final ACK echoes the resent SYN-ACK: 10 ms RTT.
    let mut p = pair(Sysctls::default(), 5, Some(lose_first("S>C", SYNACK)));
    p.auto_respond = None;
    p.run(ms(1_020));
    let c = p.srv.children_tagged(|_| true)[0];
    let rto_ts = p.srv.child_rto(c).unwrap();
    assert_eq!(rto_ts, SimDuration::from_millis(210));
    // Without timestamps: the 3 s fallback.
    let s = sysctls(&[("tcp_timestamps", 0)]);
    let mut p = pair(s, 5, Some(lose_first("S>C", SYNACK)));
    p.auto_respond = None;
    p.run(ms(1_020));
    let c = p.srv.children_tagged(|_| true)[0];
    assert_eq!(p.srv.child_rto(c), Some(TCP_TIMEOUT_FALLBACK));
}

#[test]
fn loss_probe_and_rto_on_the_wheel_match_the_probe_3_1() {
    // tail-loss-probe.md, client, RTT ~0 (tcpi_rto 204 ms): transmissions at
    // 0.206, 0.418, 0.854, 1.686, 3.347 / 0.205, 0.413, 0.838, 1.669, 3.334 s
    // after the first one. RTT 50 µs here.
    let mut lose_all = lose_data("C>S");
    let mut first = None;
    let lose: Loss = Box::new(move |l| {
        let hit = lose_all(l);
        if hit && first.is_none() {
            first = Some(l.0);
        }
        hit
    });
    let (mut p, _) = Pair::build(
        Sysctls::default(),
        server_addr(),
        client_addr(7102),
        SimDuration::from_micros(25),
        plain(100),
        TimerModel::LINUX,
        Some(lose),
    );
    p.run(ms(1));
    assert_eq!(p.cli.rto(), SimDuration::from_millis(204));
    p.run(secs(4));
    let sent = p.times("C>S", |l| l.5 > 0);
    let t0 = sent[0];
    let rel: Vec<u64> = sent[1..]
        .iter()
        .map(|t| (*t - t0).as_nanos() / 1_000_000)
        .collect();
    let measured_lo = [205, 413, 838, 1_669, 3_334];
    let measured_hi = [206, 418, 854, 1_686, 3_347];
    for (k, &r) in rel.iter().enumerate() {
        // Within the spread of the two runs, give or take the jiffy phase
        // (4 ms per level-0 timer, 32 ms per level-1 timer before the last).
        assert!(
            r + 40 >= measured_lo[k] && r <= measured_hi[k] + 40,
            "transmission {k}: model {r} ms, measured {}..{} ms",
            measured_lo[k],
            measured_hi[k]
        );
    }
    assert_eq!(rel.len(), 5, "{rel:?}");
}
