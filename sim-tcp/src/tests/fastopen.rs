//! Fast Open (§5.7 note, `tcp_try_fastopen`, `tcp_fastopen_synack_timer`).

use super::harness::*;
use crate::{
    ChildState, ListenerOptions, MigratingSock, RstCause, ServerEvent, Sysctls,
    TFO_SERVER_COOKIE_NOT_REQD, TFO_SERVER_ENABLE,
};

fn tfo_server(migrate_req: u64) -> Srv {
    Srv::new(sysctls(&[
        (
            "tcp_fastopen",
            u64::from(TFO_SERVER_ENABLE | TFO_SERVER_COOKIE_NOT_REQD),
        ),
        ("tcp_migrate_req", migrate_req),
    ]))
}

fn tfo_opts() -> ListenerOptions {
    ListenerOptions {
        fastopen_qlen: 16,
        ..Default::default()
    }
}

fn syn_data(port: u16, len: u32) -> sim_core::Packet {
    seg(port, SYN, cisn(port), 0, len)
}

#[test]
fn fastopen_syn_with_data_creates_synrecv_child_in_accept_queue() {
    let mut srv = tfo_server(0);
    let l = srv.listener_opts(16, tfo_opts());
    srv.recv(ms(0), syn_data(5001, 100));
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].pkt.flags, sent[0].pkt.ack),
        (SYNACK, cisn(5001) + 101),
        "the SYN-ACK acknowledges the data"
    );
    assert_eq!(srv.qs(l), (0, 0, 1), "no request: a child");
    assert_eq!(srv.stack.request_count(), 0);
    let c = srv.queue(l)[0];
    let info = srv.stack.child(c).unwrap();
    assert_eq!((info.state, info.request_bytes), (ChildState::SynRecv, 100));
    assert_eq!(srv.stack.counters.TcpExtTCPFastOpenPassive, 1);
    assert_eq!(
        srv.events(),
        vec![
            ServerEvent::ChildQueued {
                child: c,
                listener: l
            },
            ServerEvent::RequestReceived { child: c },
        ]
    );
}

#[test]
fn fastopen_needs_server_bits_and_listener_queue() {
    // Listener without TCP_FASTOPEN: an ordinary request; the data is not acked.
    let mut srv = tfo_server(0);
    let l = srv.listener(16);
    srv.recv(ms(0), syn_data(5001, 100));
    assert_eq!(srv.drain_pkts()[0].pkt.ack, cisn(5001) + 1);
    assert_eq!(srv.qs(l), (1, 1, 0));
    // Server bits off (default tcp_fastopen = 1, client only).
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener_opts(16, tfo_opts());
    srv.recv(ms(0), syn_data(5001, 100));
    assert_eq!(srv.qs(l), (1, 1, 0));
    assert_eq!(srv.stack.counters.TcpExtTCPFastOpenPassive, 0);
}

#[test]
fn fastopen_synack_retransmits_from_child_timer_with_one_extra_retry() {
    // tcp_fastopen_synack_timer: max = tcp_synack_retries + 1 = 6.
    let mut srv = tfo_server(0);
    let l = srv.listener_opts(16, tfo_opts());
    srv.recv(ms(0), syn_data(5001, 100));
    let c = srv.queue(l)[0];
    srv.run_timers();
    let times: Vec<_> = srv.drain().into_iter().map(|x| (x.0, x.1)).collect();
    let expect: Vec<_> = [0, 1, 3, 7, 15, 31, 63]
        .into_iter()
        .map(|s| (secs(s), SYNACK))
        .collect();
    assert_eq!(times, expect);
    assert_eq!(srv.stack.child(c), None, "tcp_write_err at 127 s");
    assert_eq!(srv.out.events.last().map(|e| e.0), Some(secs(127)));
    let cn = &srv.stack.counters;
    assert_eq!((cn.TcpExtTCPSynRetrans, cn.TcpExtTCPTimeouts), (6, 7));
    assert_eq!(cn.TcpOutRsts, 0);
}

#[test]
fn fastopen_final_ack_establishes_child_and_stops_synack_timer() {
    let mut srv = tfo_server(0);
    let l = srv.listener_opts(16, tfo_opts());
    srv.recv(ms(0), syn_data(5001, 100));
    let isn = srv.server_isn(5001);
    srv.drain();
    srv.recv(ms(10), seg(5001, ACK, cisn(5001) + 101, isn + 1, 0));
    let c = srv.queue(l)[0];
    assert_eq!(srv.stack.child(c).unwrap().state, ChildState::Established);
    srv.advance(secs(200));
    assert_eq!(srv.drain(), vec![]);
    assert!(srv.stack.child(c).is_some());
}

#[test]
fn fastopen_child_migrates_at_close_as_synrecv_and_keeps_retransmitting() {
    let mut srv = tfo_server(1);
    let a = srv.listener_opts(16, tfo_opts());
    srv.recv(ms(0), syn_data(5001, 100));
    let c = srv.queue(a)[0];
    let b = srv.listener_opts(16, tfo_opts());
    srv.drain();
    srv.close(ms(500), a);
    assert_eq!(srv.drain(), vec![]);
    assert_eq!(srv.queue(b), vec![c]);
    let tuple = syn(5001).tuple_at_receiver();
    let hash = srv.stack.flow_hash(&tuple);
    assert_eq!(
        srv.stack.hooks.migrations,
        vec![(a, MigratingSock::SynRecv { hash, tuple }, true)]
    );
    assert_eq!(srv.stack.counters.TcpExtTCPMigrateReqSuccess, 1);
    srv.advance(secs(1));
    assert_eq!(srv.drain(), vec![(secs(1), SYNACK, 5001, None)]);
}

#[test]
fn fastopen_child_without_migration_is_reset_at_close() {
    let mut srv = tfo_server(0);
    let a = srv.listener_opts(16, tfo_opts());
    srv.recv(ms(0), syn_data(5001, 100));
    let isn = srv.server_isn(5001);
    srv.drain();
    srv.close(ms(500), a);
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].rst, Some(RstCause::ListenerCloseChild));
    let p = sent[0].pkt;
    assert_eq!((p.flags, p.seq, p.ack), (RSTACK, isn + 1, cisn(5001) + 101));
    srv.run_timers();
    assert_eq!(srv.drain(), vec![], "the child timer died with the child");
}

#[test]
fn fastopen_synack_timer_caps_at_tcp_rto_max_not_tcp_rto_max_ms_2_1() {
    // tcp_fastopen_synack_timer re-arms with `req->timeout << num_timeout`
    // capped at TCP_RTO_MAX: `tcp_rto_max_ms=1000` changes nothing.
    let mut srv = Srv::new(sysctls(&[
        (
            "tcp_fastopen",
            u64::from(TFO_SERVER_ENABLE | TFO_SERVER_COOKIE_NOT_REQD),
        ),
        ("tcp_rto_max_ms", 1000),
    ]));
    srv.listener_opts(16, tfo_opts());
    srv.recv(ms(0), syn_data(5001, 100));
    srv.run_timers();
    let times: Vec<_> = srv.drain().into_iter().map(|x| x.0).collect();
    let expect: Vec<_> = [0, 1, 3, 7, 15, 31, 63].into_iter().map(secs).collect();
    assert_eq!(times, expect);
}
