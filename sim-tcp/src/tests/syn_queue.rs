//! §5.2 `tcp_conn_request`: SYN queue, accept queue, syncookies, the
//! quarter rule, and `somaxconn` (§5.1).

use super::harness::*;
use crate::{DropCause, ServerEvent, ServerTimer, Sysctls};

#[test]
fn syn_creates_request_sends_synack_and_counts_young_5_2() {
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    srv.recv(ms(3), syn(5001));

    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    let p = sent[0].pkt;
    assert_eq!(
        (sent[0].at, p.flags, p.dst),
        (ms(3), SYNACK, client_addr(5001))
    );
    assert_eq!(p.ack, cisn(5001) + 1, "SYN-ACK acknowledges the SYN");
    assert_eq!(srv.qs(l), (1, 1, 0), "syn_qlen and young incremented");
    assert_eq!(srv.l(l).req_refs, 1);
    assert_eq!(srv.stack.request_count(), 1);
    // The SYN-ACK timer is armed at now + TCP_TIMEOUT_INIT (§5.2 step 4); its
    // queue entry sits at the horizon and re-arms from there (the firing
    // times are asserted to the nanosecond in synack_timer.rs).
    assert!(
        matches!(srv.out.timers[..], [(t, _, ServerTimer::Req(_))] if t == ms(3) + crate::server::TIMER_HORIZON)
    );
}

#[test]
fn syn_queue_holds_backlog_plus_one_then_drops_with_syncookies_0_5_2_step1() {
    let mut srv = Srv::new(sysctls(&[("tcp_syncookies", 0)]));
    let l = srv.listener(2);
    for port in 5001..=5003 {
        srv.recv(ms(0), syn(port));
    }
    assert_eq!(
        srv.drain().len(),
        3,
        "backlog + 1 = 3 requests fit (qlen > backlog)"
    );
    assert_eq!(srv.qs(l), (3, 3, 0));

    srv.recv(ms(1), syn(5004));
    assert_eq!(srv.drain(), vec![], "dropped silently");
    assert_eq!(srv.stack.request_count(), 3);
    let c = &srv.stack.counters;
    assert_eq!((c.TcpExtTCPReqQFullDrop, c.TcpExtListenDrops), (1, 1));
    assert_eq!(c.TcpExtSyncookiesSent, 0);
    assert_eq!(
        srv.events().last(),
        Some(&ServerEvent::Dropped {
            cause: DropCause::SynQueueFull
        })
    );
}

#[test]
fn syn_queue_full_with_syncookies_1_sends_stateless_cookie_synack_5_2_step1() {
    let mut srv = Srv::new(sysctls(&[("tcp_syncookies", 1)]));
    let l = srv.listener(2);
    for port in 5001..=5003 {
        srv.recv(ms(0), syn(port));
    }
    srv.drain();
    let timers = srv.out.timers.len();
    assert_eq!(srv.stack.hooks.overflow_at, None);

    srv.recv(ms(7), syn(5004));
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].pkt.flags, SYNACK);
    assert_eq!(sent[0].pkt.ack, cisn(5004) + 1);
    assert_eq!(srv.stack.request_count(), 3, "no state for the cookie");
    assert_eq!(srv.qs(l), (3, 3, 0));
    assert_eq!(srv.out.timers.len(), timers, "no timer for a cookie");
    let c = &srv.stack.counters;
    assert_eq!(c.TcpExtSyncookiesSent, 1);
    assert_eq!(c.TcpExtTCPReqQFullDoCookies, 1);
    assert_eq!((c.TcpExtTCPReqQFullDrop, c.TcpExtListenDrops), (0, 0));
    assert_eq!(
        srv.stack.hooks.overflow_at,
        Some(ms(7)),
        "synq_overflow_ts set"
    );
}

#[test]
fn syncookies_2_always_answers_with_cookies_5_2_step1() {
    let mut srv = Srv::new(sysctls(&[("tcp_syncookies", 2)]));
    let l = srv.listener(128);
    srv.recv(ms(0), syn(5001));
    assert_eq!(srv.drain(), vec![(ms(0), SYNACK, 5001, None)]);
    assert_eq!(srv.qs(l), (0, 0, 0));
    assert_eq!(srv.stack.request_count(), 0);
    let c = &srv.stack.counters;
    assert_eq!(
        (c.TcpExtSyncookiesSent, c.TcpExtTCPReqQFullDoCookies),
        (1, 1)
    );
}

#[test]
fn accept_queue_holds_backlog_plus_one_children_then_syn_dropped_silently_5_2_step2() {
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(1);
    srv.handshake(ms(0), 5001);
    srv.handshake(ms(1), 5002);
    assert_eq!(srv.qs(l), (0, 0, 2), "backlog + 1 = 2 children fit");
    srv.drain();

    srv.recv(ms(2), syn(5003));
    assert_eq!(srv.drain(), vec![], "no SYN-ACK: the client retries (§7 I)");
    assert_eq!(srv.stack.request_count(), 0);
    let c = &srv.stack.counters;
    assert_eq!((c.TcpExtListenOverflows, c.TcpExtListenDrops), (1, 1));
    assert_eq!(
        srv.events().last(),
        Some(&ServerEvent::Dropped {
            cause: DropCause::SynAcceptQueueFull
        })
    );
}

#[test]
fn accept_queue_full_drops_syn_even_when_a_cookie_would_be_sent_5_2_step2() {
    let mut srv = Srv::new(sysctls(&[("tcp_syncookies", 2)]));
    let l = srv.listener(0);
    // A cookie handshake fills the accept queue (backlog 0: one child fits).
    srv.recv(ms(0), syn(5001));
    let isn = srv.server_isn(5001);
    srv.recv(ms(1), final_ack(5001, isn));
    assert_eq!(srv.qs(l), (0, 0, 1));
    srv.drain();

    srv.recv(ms(2), syn(5002));
    assert_eq!(srv.drain(), vec![]);
    let c = &srv.stack.counters;
    assert_eq!(c.TcpExtTCPReqQFullDoCookies, 2);
    assert_eq!(
        c.TcpExtSyncookiesSent, 1,
        "the second cookie was never sent"
    );
    assert_eq!((c.TcpExtListenOverflows, c.TcpExtListenDrops), (1, 1));
}

#[test]
fn quarter_rule_drops_syn_when_less_than_a_quarter_of_max_syn_backlog_is_free_5_2_step3() {
    // max 8: drop when 8 - qlen < 2, i.e. at qlen 7.
    let mut srv = Srv::new(sysctls(&[
        ("tcp_syncookies", 0),
        ("tcp_max_syn_backlog", 8),
    ]));
    let l = srv.listener(100);
    for port in 5001..=5007 {
        srv.recv(ms(0), syn(port));
    }
    assert_eq!(srv.drain().len(), 7);
    srv.recv(ms(1), syn(5008));
    assert_eq!(srv.drain(), vec![]);
    assert_eq!(srv.qs(l).0, 7);
    let c = &srv.stack.counters;
    assert_eq!((c.TcpExtListenDrops, c.TcpExtTCPReqQFullDrop), (1, 0));
    assert_eq!(
        srv.events().last(),
        Some(&ServerEvent::Dropped {
            cause: DropCause::SynBacklogQuarter
        })
    );

    // With syncookies on, the rule does not apply.
    let mut srv = Srv::new(sysctls(&[
        ("tcp_syncookies", 1),
        ("tcp_max_syn_backlog", 8),
    ]));
    let l = srv.listener(100);
    for port in 5001..=5008 {
        srv.recv(ms(0), syn(port));
    }
    assert_eq!(srv.qs(l).0, 8);
    assert_eq!(srv.stack.counters.TcpExtListenDrops, 0);
}

#[test]
fn somaxconn_caps_listen_backlog_5_1() {
    let mut srv = Srv::new(sysctls(&[("somaxconn", 1)]));
    let l = srv.listener(1000);
    assert_eq!(srv.l(l).backlog, 1);
    srv.handshake(ms(0), 5001);
    srv.handshake(ms(0), 5002);
    srv.drain();
    srv.recv(ms(1), syn(5003));
    assert_eq!(srv.drain(), vec![], "somaxconn 1: only 2 children fit");
    assert_eq!(srv.qs(l).2, 2);

    // listen() on a listening socket only changes the backlog.
    srv.stack.listen(l, 0).unwrap();
    assert_eq!(srv.l(l).backlog, 0);
    assert_eq!(srv.stack.hooks.listens.len(), 1, "no second join");
}

#[test]
fn proven_peer_is_exempt_from_the_quarter_rule_5_2_step3() {
    // `tcp_peer_is_proven`: a peer with an RTT in the namespace's metrics
    // cache (written by `tcp_update_metrics` when a connection with it
    // closed) still gets a request when less than a quarter of
    // tcp_max_syn_backlog is free; an unproven one is dropped. Measured on
    // 6.18 (tools/kernel-probes/results/proven_peer.txt): after one closed
    // connection from 10.0.0.1, its connect() got a SYN-ACK while the
    // spoofed SYNs filled the queue; without it, the SYN was dropped.
    let mut srv = Srv::new(sysctls(&[
        ("tcp_syncookies", 0),
        ("tcp_max_syn_backlog", 8),
    ]));
    let l = srv.listener(100);
    // One whole connection from 10.0.1.1 with a 1 ms handshake RTT.
    srv.recv(ms(0), syn(5001));
    let isn = srv.server_isn(5001);
    srv.recv(ms(1), final_ack(5001, isn));
    srv.recv(ms(1), seg(5001, ACK | PSH, cisn(5001) + 1, isn + 1, 100));
    let c = srv.stack.accept(l).unwrap().unwrap();
    srv.stack.respond(ms(1), c, 1000, false, &mut srv.out);
    srv.recv(ms(2), seg(5001, ACK | FIN, cisn(5001) + 101, isn + 1002, 0));
    assert_eq!(srv.stack.child(c), None, "closed: the metrics are written");
    let server_ip = server_addr().ip();
    let rtt = srv
        .stack
        .metrics
        .cached_rtt(ms(2), server_ip, client_addr(5001).ip());
    assert!(rtt.is_some(), "the server cached the peer's RTT");
    // Spoofed SYNs fill the SYN queue to 7 of 8 (their SYN-ACKs vanish).
    for i in 1..=7u8 {
        let src = std::net::SocketAddr::new([10, 0, 3, i].into(), 7000);
        srv.recv(ms(3), seg_between(src, server_addr(), SYN, 1, 0, 0));
    }
    assert_eq!(srv.qs(l).0, 7);
    srv.drain();
    // Proven 10.0.1.1: a request despite 8 - 7 < 8 / 4.
    srv.recv(ms(4), syn(5002));
    assert_eq!(srv.drain(), vec![(ms(4), SYNACK, 5002, None)]);
    assert_eq!(srv.qs(l).0, 8);
    // Unproven 10.0.2.1: dropped (ListenDrops only, no TCPReqQFullDrop).
    let other = std::net::SocketAddr::new([10, 0, 2, 1].into(), 5003);
    srv.recv(ms(5), seg_between(other, server_addr(), SYN, 1, 0, 0));
    assert_eq!(srv.drain(), vec![]);
    assert_eq!(
        srv.events().last(),
        Some(&ServerEvent::Dropped {
            cause: DropCause::SynBacklogQuarter
        })
    );
    let cnt = &srv.stack.counters;
    assert_eq!((cnt.TcpExtListenDrops, cnt.TcpExtTCPReqQFullDrop), (1, 0));
}
