//! TCP_DEFER_ACCEPT (§5.3 last rule, `tcp_check_req`, `syn_ack_recalc`):
//! a bare final ACK leaves the request in the SYN queue (`acked`), no
//! SYN-ACK is resent until the last timeout of the rounded period, whose
//! duplicate ACK creates the child without data. Measured on Linux 6.18:
//! `tools/kernel-probes/defer_accept.py`
//! (`tools/kernel-probes/results/defer_accept.txt`,
//! `docs/linux-semantics/defer-accept.md`).

use super::harness::*;
use crate::{secs_to_retrans, DropCause, ListenerOptions, ServerEvent, Sysctls};

fn deferred(srv: &mut Srv, secs: u32) -> crate::ListenerId {
    srv.listener_opts(
        16,
        ListenerOptions {
            defer_accept: secs_to_retrans(secs),
            ..Default::default()
        },
    )
}

#[test]
fn defer_seconds_round_up_to_synack_timeouts() {
    // 5 s -> 3 timeouts (1 + 2 + 4 = 7 s), 30 s -> 5 (31 s): getsockopt
    // returned 7 and 31 on 6.18.
    assert_eq!(secs_to_retrans(0), 0);
    assert_eq!(secs_to_retrans(1), 1);
    assert_eq!(secs_to_retrans(5), 3);
    assert_eq!(secs_to_retrans(7), 3);
    assert_eq!(secs_to_retrans(8), 4);
    assert_eq!(secs_to_retrans(30), 5);
}

#[test]
fn a_bare_ack_keeps_the_request_and_data_creates_the_child() {
    // Probe row 1: defer 5, data at 0.5 s: accept() at 0.506 s with the
    // data; TCPDeferAcceptDrop 1.
    let mut srv = Srv::new(Sysctls::default());
    let l = deferred(&mut srv, 5);
    let isn = srv.handshake(ms(0), 5001);
    assert_eq!(srv.qs(l), (1, 1, 0), "the request stays in the SYN queue");
    assert!(srv.events().contains(&ServerEvent::Dropped {
        cause: DropCause::DeferAcceptBareAck
    }));
    assert_eq!(srv.stack.counters.TcpExtTCPDeferAcceptDrop, 1);
    srv.recv(ms(500), seg(5001, ACK | PSH, cisn(5001) + 1, isn + 1, 10));
    assert_eq!(srv.qs(l), (0, 0, 1));
    let c = srv.queue(l)[0];
    assert_eq!(srv.stack.child(c).unwrap().request_bytes, 10);
    assert_eq!(srv.stack.counters.TcpExtTCPDeferAcceptDrop, 1);
}

#[test]
fn one_synack_at_the_end_of_the_period_and_its_ack_creates_an_empty_child() {
    // Probe row 2: defer 5 (-> 7 s), the client never sends: SYN-ACKs at
    // 0 and 7 s only; the duplicate ACK creates the child (no data);
    // TCPTimeouts 3, one retransmission.
    let mut srv = Srv::new(Sysctls::default());
    let l = deferred(&mut srv, 5);
    let isn = srv.handshake(ms(0), 5001);
    srv.drain();
    srv.advance(ms(7_001));
    assert_eq!(srv.drain(), vec![(secs(7), SYNACK, 5001, None)]);
    assert_eq!(srv.stack.counters.TcpExtTCPTimeouts, 3);
    assert_eq!(srv.stack.counters.TcpRetransSegs, 1);
    srv.recv(ms(7_002), final_ack(5001, isn));
    assert_eq!(
        srv.qs(l),
        (0, 0, 1),
        "the end-of-period ACK makes the child"
    );
    let c = srv.queue(l)[0];
    assert_eq!(srv.stack.child(c).unwrap().request_bytes, 0);
    assert_eq!(srv.stack.counters.TcpExtTCPDeferAcceptDrop, 1);
}

#[test]
fn if_that_ack_is_lost_the_request_expires_silently() {
    // Probe row 4: defer 5, tcp_synack_retries 3, the 2nd ACK dropped: the
    // request is gone at 15 s (num_timeout 3, TCPTimeouts 4), no RST; the
    // client's data at 17 s then gets an RST (§7 D).
    let mut srv = Srv::new(sysctls(&[("tcp_synack_retries", 3)]));
    let l = deferred(&mut srv, 5);
    let isn = srv.handshake(ms(0), 5001);
    srv.drain();
    srv.advance(secs(16));
    assert_eq!(srv.drain(), vec![(secs(7), SYNACK, 5001, None)]);
    assert_eq!(srv.qs(l), (0, 0, 0));
    assert_eq!(srv.stack.counters.TcpExtTCPTimeouts, 4);
    assert!(srv.events().contains(&ServerEvent::Dropped {
        cause: DropCause::RequestExpired
    }));
    srv.recv(secs(17), seg(5001, ACK | PSH, cisn(5001) + 1, isn + 1, 10));
    assert_eq!(srv.drain().len(), 1, "an RST");
    assert_eq!(srv.stack.counters.TcpOutRsts, 1);
}
