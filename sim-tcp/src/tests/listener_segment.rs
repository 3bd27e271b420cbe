//! §5.5: segments that match no request or child; syncookie validation;
//! no listener (§7 D, E, F).

use super::harness::*;
use crate::{DropCause, RstCause, Selection, ServerEvent, Sysctls};

#[test]
fn ack_without_request_gets_rst_with_seq_from_its_ack_5_5() {
    let mut srv = Srv::new(Sysctls::default());
    srv.listener(16);
    srv.recv(ms(5), seg(5001, ACK, 42, 777, 0));
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].rst, Some(RstCause::NoRequest));
    let p = sent[0].pkt;
    assert_eq!(
        (p.flags, p.seq, p.ack, p.dst),
        (RST, 777, 0, client_addr(5001))
    );
    let c = &srv.stack.counters;
    assert_eq!((c.TcpOutRsts, c.TcpExtSyncookiesFailed), (1, 0));
}

#[test]
fn rst_is_never_answered_with_or_without_listener_5_5() {
    let mut srv = Srv::new(Sysctls::default());
    srv.recv(ms(0), seg(5001, RST, 1, 0, 0));
    srv.recv(ms(0), seg(5001, RSTACK, 1, 2, 0));
    srv.listener(16);
    srv.recv(ms(1), seg(5001, RSTACK, 1, 2, 0));
    assert_eq!(srv.drain(), vec![]);
    let n = srv
        .events()
        .iter()
        .filter(|e| {
            **e == ServerEvent::Dropped {
                cause: DropCause::RstNotAnswered,
            }
        })
        .count();
    assert_eq!(n, 3);
}

#[test]
fn segment_without_ack_or_syn_at_listener_is_dropped_5_5() {
    let mut srv = Srv::new(Sysctls::default());
    srv.listener(16);
    srv.recv(ms(0), seg(5001, FIN, 1, 0, 0));
    assert_eq!(srv.drain(), vec![]);
    assert_eq!(
        srv.events(),
        vec![ServerEvent::Dropped {
            cause: DropCause::ListenerIgnored
        }]
    );
}

/// backlog 0: port 5001 holds the only request slot, so port 5002 gets a cookie.
fn cookie_for_5002() -> (Srv, crate::ListenerId, u32, u32) {
    let mut srv = Srv::new(sysctls(&[("tcp_syncookies", 1)]));
    let l = srv.listener(0);
    srv.recv(ms(0), syn(5001));
    srv.recv(ms(1), syn(5002));
    assert_eq!(srv.stack.counters.TcpExtSyncookiesSent, 1);
    let isn1 = srv.server_isn(5001);
    let cookie = srv.server_isn(5002);
    srv.drain();
    (srv, l, isn1, cookie)
}

#[test]
fn syncookie_ack_after_recent_overflow_creates_child_directly_5_5() {
    let (mut srv, l, _, cookie) = cookie_for_5002();
    srv.recv(ms(2), final_ack(5002, cookie));
    assert_eq!(srv.drain(), vec![]);
    assert_eq!(srv.stack.counters.TcpExtSyncookiesRecv, 1);
    assert_eq!(
        srv.qs(l),
        (1, 1, 1),
        "child queued; 5001's request untouched"
    );
    assert_eq!(srv.child_port(srv.queue(l)[0]), 5002);
}

#[test]
fn invalid_cookie_after_recent_overflow_gets_rst_and_counts_failure_5_5() {
    let (mut srv, _, _, cookie) = cookie_for_5002();
    srv.recv(ms(2), final_ack(5002, cookie.wrapping_add(1)));
    assert_eq!(
        srv.drain(),
        vec![(ms(2), RST, 5002, Some(RstCause::InvalidCookie))]
    );
    let c = &srv.stack.counters;
    assert_eq!((c.TcpExtSyncookiesFailed, c.TcpExtSyncookiesRecv), (1, 0));
}

#[test]
fn valid_cookie_with_full_accept_queue_is_dropped_silently_5_5() {
    let (mut srv, l, isn1, cookie) = cookie_for_5002();
    srv.recv(ms(2), final_ack(5001, isn1));
    assert_eq!(srv.qs(l), (0, 0, 1), "backlog 0: full");
    srv.recv(ms(3), final_ack(5002, cookie));
    assert_eq!(srv.drain(), vec![]);
    let c = &srv.stack.counters;
    assert_eq!(
        (
            c.TcpExtSyncookiesRecv,
            c.TcpExtListenOverflows,
            c.TcpExtListenDrops
        ),
        (1, 1, 1)
    );
    assert!(srv.events().contains(&ServerEvent::Dropped {
        cause: DropCause::CookieAckAcceptQueueFull
    }));
}

#[test]
fn syn_without_listener_gets_rst_ack_acknowledging_syn_and_data_5_5_7e() {
    let mut srv = Srv::new(Sysctls::default());
    srv.recv(ms(0), syn(5001));
    srv.recv(ms(1), seg(5002, SYN, cisn(5002), 0, 100));
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|s| s.rst == Some(RstCause::NoListener)));
    let (a, b) = (sent[0].pkt, sent[1].pkt);
    assert_eq!((a.flags, a.seq, a.ack), (RSTACK, 0, cisn(5001) + 1));
    assert_eq!((b.flags, b.ack), (RSTACK, cisn(5002) + 101));
}

#[test]
fn selection_policy_drop_gets_rst_ack_5_5_7f() {
    let mut srv = Srv::new(Sysctls::default());
    srv.listener(16);
    srv.stack.hooks.select_override = Some(Selection::PolicyDrop);
    srv.recv(ms(0), syn(5001));
    assert_eq!(
        srv.drain(),
        vec![(ms(0), RSTACK, 5001, Some(RstCause::PolicyDrop))]
    );
    assert_eq!(srv.stack.request_count(), 0);
}
