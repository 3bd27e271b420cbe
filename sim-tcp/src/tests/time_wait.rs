//! TIME_WAIT (`tcp_time_wait`, `tcp_timewait_state_process`,
//! `tcp_twsk_unique`) and the two close orders. Measured on Linux 6.18:
//! `tools/kernel-probes/results/time_wait.txt` (parts A–D),
//! `docs/linux-semantics/time-wait.md`.

use super::harness::*;
use super::pair::Pair;
use crate::{
    ChildState, ClientOutcome, ClientState, Counters, ServerEvent, Sysctls, TimeWaitTable,
    TwVerdict, TCP_TIMEWAIT_LEN,
};
use sim_core::{FourTuple, Packet, SimDuration, SimTime, TimerModel};

const SND_NXT: u32 = 1_000;
const RCV_NXT: u32 = 5_000;
const TS_RECENT: u32 = 100;

fn tuple() -> FourTuple {
    FourTuple {
        local: server_addr(),
        remote: client_addr(42_001),
    }
}

/// A table with one TIME_WAIT socket entered at 0 with timestamps.
fn table(sysctls: &Sysctls, counters: &mut Counters) -> (TimeWaitTable, crate::TwKey) {
    let mut t = TimeWaitTable::default();
    let (k, arm) = t.enter(
        SimTime::ZERO,
        tuple(),
        SND_NXT,
        RCV_NXT,
        Some(TS_RECENT),
        &TimerModel::LINUX,
        sysctls,
        counters,
    );
    assert!(arm.is_some(), "the first socket asks for an expiry call");
    (t, k.expect("room in the table"))
}

/// A client SYN for the TIME_WAIT 4-tuple with sequence `seq` and TSval `ts` (0 = none).
fn syn_with(seq: u32, ts: u32) -> Packet {
    let mut p = seg_between(client_addr(42_001), server_addr(), SYN, seq, 0, 0);
    p.tsval = ts;
    p
}

fn verdict(t: &mut TimeWaitTable, k: crate::TwKey, pkt: &Packet, c: &mut Counters) -> TwVerdict {
    t.state_process(ms(10), k, pkt, &TimerModel::LINUX, c).0
}

#[test]
fn a_newer_syn_takes_over_with_isn_tw_snd_nxt_plus_65537_probe_b3_b5() {
    let sys = Sysctls::default();
    for (seq, ts, what) in [
        (RCV_NXT + 10, 0, "B3: seq after rcv_nxt, no timestamp"),
        (
            RCV_NXT - 10,
            TS_RECENT + 5,
            "B5: seq before, timestamp newer",
        ),
        (
            RCV_NXT + 10,
            TS_RECENT + 5,
            "B1: both newer (a real client)",
        ),
    ] {
        let mut c = Counters::default();
        let (mut t, k) = table(&sys, &mut c);
        assert_eq!(
            verdict(&mut t, k, &syn_with(seq, ts), &mut c),
            TwVerdict::Syn {
                isn: SND_NXT + 65_537
            },
            "{what}"
        );
    }
}

#[test]
fn an_older_syn_is_answered_with_an_ack_and_paws_counts_probe_b2_b4() {
    let sys = Sysctls::default();
    // B2: seq before rcv_nxt, no timestamp: an ACK of everything.
    let mut c = Counters::default();
    let (mut t, k) = table(&sys, &mut c);
    match verdict(&mut t, k, &syn_with(RCV_NXT - 10, 0), &mut c) {
        TwVerdict::Ack(a) => assert_eq!((a.flags, a.seq, a.ack), (ACK, SND_NXT, RCV_NXT)),
        v => panic!("B2: {v:?}"),
    }
    assert!(t.get(k).is_some(), "B2: the TIME_WAIT socket stays");
    assert_eq!(c.TcpExtPAWSTimewait, 0);
    // B4: seq after rcv_nxt but a timestamp older than ts_recent by more
    // than TCP_PAWS_WINDOW: PAWS rejects it, an ACK, PAWSTimewait.
    let mut c = Counters::default();
    let (mut t, k) = table(&sys, &mut c);
    assert!(matches!(
        verdict(&mut t, k, &syn_with(RCV_NXT + 10, TS_RECENT - 5), &mut c),
        TwVerdict::Ack(_)
    ));
    assert_eq!(c.TcpExtPAWSTimewait, 1);
    assert!(t.get(k).is_some());
}

#[test]
fn acks_of_a_timewait_socket_are_rate_limited_by_tcp_invalid_ratelimit() {
    let sys = Sysctls::default();
    let mut c = Counters::default();
    let (mut t, k) = table(&sys, &mut c);
    let old = syn_with(RCV_NXT - 10, 0);
    assert!(matches!(
        verdict(&mut t, k, &old, &mut c),
        TwVerdict::Ack(_)
    ));
    assert_eq!(verdict(&mut t, k, &old, &mut c), TwVerdict::Consumed);
    assert_eq!(c.TcpExtTCPACKSkippedTimeWait, 1);
    let later = t
        .state_process(ms(600), k, &old, &TimerModel::LINUX, &mut c)
        .0;
    assert!(
        matches!(later, TwVerdict::Ack(_)),
        "500 ms later: {later:?}"
    );
}

#[test]
fn an_rst_at_rcv_nxt_kills_the_socket_rfc1337_off() {
    let sys = Sysctls::default();
    let mut c = Counters::default();
    let (mut t, k) = table(&sys, &mut c);
    let mut rst = seg_between(client_addr(42_001), server_addr(), RST, RCV_NXT, 0, 0);
    rst.tsval = TS_RECENT;
    assert_eq!(verdict(&mut t, k, &rst, &mut c), TwVerdict::Killed);
    assert!(t.get(k).is_none());
    assert!(t.is_empty());
}

#[test]
fn a_retransmitted_fin_is_acked_and_restarts_the_60s_timer() {
    let sys = Sysctls::default();
    let mut c = Counters::default();
    let (mut t, k) = table(&sys, &mut c);
    let fin = seg_between(
        client_addr(42_001),
        server_addr(),
        ACK | FIN,
        RCV_NXT - 1,
        SND_NXT,
        0,
    );
    let (v, _) = t.state_process(secs(30), k, &fin, &TimerModel::EXACT, &mut c);
    assert!(matches!(v, TwVerdict::Ack(a) if a.ack == RCV_NXT));
    // Not freed at its first expiry (about 60 s), but 60 s after the FIN.
    let first = TimerModel::LINUX.fire_at(SimTime::ZERO, TCP_TIMEWAIT_LEN);
    assert!(t.expire(first, &mut c, |_| {}).is_some());
    assert!(t.get(k).is_some());
    assert_eq!(c.TcpExtTW, 0);
    t.expire(secs(90), &mut c, |_| {});
    assert!(t.is_empty());
    assert_eq!(c.TcpExtTW, 1);
}

#[test]
fn timewait_lasts_60s_rounded_up_to_its_wheel_bucket_and_expiries_batch_probe_a() {
    // Probe A: gone 61.05-61.15 s after the peer's FIN (the wheel's level 3
    // has 2.048 s buckets at HZ=250).
    let sys = Sysctls::default();
    let mut c = Counters::default();
    let mut t = TimeWaitTable::default();
    let mut enter = |t: &mut TimeWaitTable, at: SimTime, port: u16| {
        let tuple = FourTuple {
            local: server_addr(),
            remote: client_addr(port),
        };
        t.enter(at, tuple, 1, 1, None, &TimerModel::LINUX, &sys, &mut c)
    };
    let (_, arm) = enter(&mut t, ms(3), 1);
    let due = arm.unwrap();
    assert!(due >= ms(60_003) && due < ms(60_003 + 2_048), "{due:?}");
    // A second socket 1 ms later lands in the same bucket: no new call.
    assert_eq!(enter(&mut t, ms(4), 2).1, None);
    let mut freed = Vec::new();
    assert_eq!(
        t.expire(
            SimTime::ZERO + SimDuration::from_nanos(due.as_nanos() - 1),
            &mut c,
            |_| {}
        ),
        Some(due)
    );
    assert_eq!(
        t.expire(due, &mut c, |tu| freed.push(tu.remote.port())),
        None
    );
    assert_eq!(freed, vec![1, 2]);
    assert_eq!(c.TcpExtTW, 2);
    assert_eq!(t.peak(), 2);
}

#[test]
fn past_tcp_max_tw_buckets_a_close_skips_timewait_probe_c() {
    let sys = Sysctls {
        tcp_max_tw_buckets: 4,
        ..Sysctls::default()
    };
    let mut c = Counters::default();
    let mut t = TimeWaitTable::default();
    let entered: Vec<bool> = (0..8u16)
        .map(|i| {
            let tuple = FourTuple {
                local: server_addr(),
                remote: client_addr(43_001 + i),
            };
            let timers = TimerModel::LINUX;
            t.enter(ms(1), tuple, 1, 1, None, &timers, &sys, &mut c)
                .0
                .is_some()
        })
        .collect();
    assert_eq!(
        entered,
        [true, true, true, true, false, false, false, false]
    );
    assert_eq!(c.TcpExtTCPTimeWaitOverflow, 4);
    assert_eq!(t.len(), 4);
}

#[test]
fn tcp_tw_reuse_lets_connect_take_a_timewait_tuple_only_when_1_and_after_1s_probe_d() {
    let mut c = Counters::default();
    let default = Sysctls::default();
    let (mut t, k) = table(&default, &mut c);
    assert!(
        !t.try_reuse(secs(5), k, &default, &mut c),
        "2: loopback only"
    );
    let reuse = Sysctls {
        tcp_tw_reuse: 1,
        ..Sysctls::default()
    };
    assert!(
        !t.try_reuse(ms(90), k, &reuse, &mut c),
        "+0.09 s: too young"
    );
    assert!(t.try_reuse(ms(1_310), k, &reuse, &mut c), "+1.31 s");
    assert_eq!(c.TcpExtTWRecycled, 1);
    assert!(t.get(k).is_none());
}

#[test]
fn server_closes_first_then_a_reconnect_from_the_same_port_replaces_its_timewait() {
    let (mut pair, _) = Pair::new(Sysctls::default(), server_addr(), client_addr(42_010), 5);
    pair.run(ms(100));
    assert_eq!(pair.srv.timewait.len(), 1, "the server closed first");
    let old_snd_nxt = pair.log.iter().rev().find(|l| l.1 == "S>C").unwrap().3;
    // A real client's ISN is far after the old rcv_nxt, its TSval newer.
    pair.connect_at(
        secs(2),
        client_addr(42_010),
        cisn(42_010) + 1_000_000,
        plain(100),
    );
    pair.run(secs(3));
    let synack = pair
        .log
        .iter()
        .filter(|l| l.1 == "S>C" && l.2 == SYNACK)
        .nth(1)
        .expect("the new SYN got a SYN-ACK");
    assert_eq!(synack.3, old_snd_nxt.wrapping_add(65_537));
    assert_eq!(
        pair.crec.outcomes.last().map(|o| o.1),
        Some(ClientOutcome::Completed)
    );
    assert_eq!(pair.srv.counters.TcpPassiveOpens, 2);
    assert_eq!(pair.srv.timewait.len(), 1, "the new connection's own");
    assert_eq!(
        pair.srv.counters.TcpExtTW, 0,
        "the first was replaced, not expired"
    );
}

#[test]
fn keep_alive_client_closes_first_server_goes_through_last_ack_client_holds_timewait() {
    let (mut pair, _) = Pair::new(Sysctls::default(), server_addr(), client_addr(42_020), 5);
    pair.keep_alive = true;
    pair.run(secs(1));
    let flags: Vec<_> = pair.log.iter().map(|l| (l.0, l.1, l.2, l.5)).collect();
    assert_eq!(
        &flags[4..],
        &[
            (ms(15), "S>C", ACK, 0),
            (ms(15), "S>C", ACK | PSH, 1000), // the response, no FIN
            (ms(20), "C>S", ACK | FIN, 0),    // the client closes first
            (ms(25), "S>C", ACK | FIN, 0),    // the worker reads EOF: LAST_ACK
            (ms(30), "C>S", ACK, 0),          // TIME_WAIT on the client
        ]
    );
    assert_eq!(pair.crec.outcomes, vec![(ms(20), ClientOutcome::Completed)]);
    assert_eq!(
        pair.cli.state(),
        ClientState::Done(ClientOutcome::Completed)
    );
    assert_eq!(pair.crec.time_waits.len(), 1);
    assert!(pair.crec.time_waits[0].1.is_some());
    assert_eq!(pair.ctimewait.len(), 1);
    assert!(pair.srv.timewait.is_empty(), "no TIME_WAIT on the server");
    let finished = pair
        .server_events
        .iter()
        .find(|e| matches!(e.1, ServerEvent::ChildFinished { .. }));
    assert_eq!(
        finished.map(|e| e.0),
        Some(ms(35)),
        "LAST_ACK ends at the ACK"
    );
    assert_eq!(pair.srv.child_count(), 0);
}

#[test]
fn a_lost_final_ack_makes_last_ack_retransmit_its_fin_and_the_timewait_acks_it() {
    // Server closes first; the server's ACK of the client's FIN is lost:
    // the client in LAST_ACK probes its FIN, the server's TIME_WAIT
    // answers with an ACK and re-arms.
    let (mut pair, _) = Pair::new(Sysctls::default(), server_addr(), client_addr(42_030), 5);
    let mut first = true;
    pair.lose = Some(Box::new(move |l| {
        let lose = l.1 == "S>C" && l.2 == ACK && l.0 == ms(25) && first;
        first &= !lose;
        lose
    }));
    pair.run(secs(5));
    assert!(matches!(
        pair.cli.state(),
        ClientState::Done(ClientOutcome::Completed)
    ));
    let fins = pair.times("C>S", |l| l.2 == ACK | FIN);
    assert_eq!(fins.len(), 2, "{:?}", pair.log);
    assert!(
        fins[1] > ms(20) && fins[1] < ms(1_000),
        "a loss probe, not a 1 s RTO"
    );
    assert_eq!(pair.ccounters.TcpExtTCPLossProbes, 1);
    let acks = pair.times("S>C", |l| l.2 == ACK && l.0 > ms(25));
    assert_eq!(acks.len(), 1, "the TIME_WAIT socket's ACK");
    assert_eq!(pair.srv.timewait.len(), 1);
}

#[test]
fn a_closed_child_state_is_last_ack_after_the_client_closed_first() {
    // §5.10 with the client's FIN first (CLOSE_WAIT): the application's
    // close sends the FIN from LAST_ACK, not FIN_WAIT1.
    let (mut pair, l) = Pair::new(Sysctls::default(), server_addr(), client_addr(42_040), 5);
    pair.auto_respond = None;
    pair.run(ms(20));
    let c = pair.srv.accept(l).unwrap().unwrap();
    let fin = seg_between(
        client_addr(42_040),
        server_addr(),
        ACK | FIN,
        cisn(42_040) + 101,
        pair.log[1].3 + 1,
        0,
    );
    pair.server(|now, srv, out| srv.on_segment(now, &fin, out));
    assert_eq!(pair.srv.child(c).unwrap().state, ChildState::CloseWait);
    pair.server(|now, srv, out| srv.respond(now, c, 10, false, out));
    assert_eq!(pair.srv.child(c).unwrap().state, ChildState::LastAck);
}
