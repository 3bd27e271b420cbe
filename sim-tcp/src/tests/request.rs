//! §5.4: segments for a request socket (`tcp_check_req`), including the
//! final ACK of a request whose listener closed (§7 B, G).

use super::harness::*;
use crate::{
    ChildState, DropCause, MigratingSock, MigrationPath, RstCause, Selection, ServerEvent, Sysctls,
};

#[test]
fn duplicate_syn_resends_synack_at_most_every_500ms_and_pushes_timer_5_4_step1() {
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    srv.recv(ms(100), syn(5001));
    srv.recv(ms(400), syn(5001)); // 300 ms after the last resend: limited
    srv.recv(ms(600), syn(5001)); // 500 ms after: resent
    assert_eq!(
        srv.drain(),
        vec![
            (ms(0), SYNACK, 5001, None),
            (ms(100), SYNACK, 5001, None),
            (ms(600), SYNACK, 5001, None),
        ]
    );
    assert!(srv.events().contains(&ServerEvent::Dropped {
        cause: DropCause::DuplicateSynRateLimited
    }));
    assert_eq!(srv.stack.counters.TcpExtTCPSynRetrans, 2);
    assert_eq!(srv.qs(l), (1, 1, 0), "no other change");
    assert_eq!(srv.stack.request_count(), 1);

    // The timer was pushed to 600 ms + 1 s: nothing fires at 1 s.
    srv.advance(ms(1599));
    assert_eq!(srv.drain(), vec![]);
    srv.advance(ms(1600));
    assert_eq!(srv.drain(), vec![(ms(1600), SYNACK, 5001, None)]);
    assert_eq!(srv.qs(l), (1, 0, 0));
}

#[test]
fn ack_of_wrong_sequence_gets_rst_from_its_ack_and_request_survives_5_4_step2() {
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let isn = srv.server_isn(5001);
    srv.drain();
    srv.recv(ms(1), seg(5001, ACK, cisn(5001) + 1, isn + 7, 0));
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].rst, Some(RstCause::BadAck));
    assert_eq!((sent[0].pkt.flags, sent[0].pkt.seq), (RST, isn + 7));
    assert_eq!(srv.stack.counters.TcpOutRsts, 1);
    assert_eq!(srv.stack.request_count(), 1);

    srv.recv(ms(2), final_ack(5001, isn));
    assert_eq!(srv.qs(l), (0, 0, 1), "the request still completes");
}

#[test]
fn rst_ack_of_wrong_sequence_is_never_answered_5_4_step2_5_5() {
    let mut srv = Srv::new(Sysctls::default());
    srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let isn = srv.server_isn(5001);
    srv.drain();
    srv.recv(ms(1), seg(5001, RSTACK, cisn(5001) + 1, isn + 7, 0));
    assert_eq!(srv.drain(), vec![], "never an RST in reply to an RST");
    assert_eq!(srv.stack.counters.TcpOutRsts, 0);
}

#[test]
fn client_rst_drops_request_without_reply_and_counts_embryonic_rst_5_4_step4() {
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    srv.drain();
    srv.recv(ms(1), seg(5001, RST, cisn(5001) + 1, 0, 0));
    assert_eq!(srv.drain(), vec![]);
    assert_eq!(srv.stack.request_count(), 0);
    assert_eq!(srv.qs(l), (0, 0, 0));
    assert_eq!(srv.stack.counters.TcpExtEmbryonicRsts, 1);
    assert!(srv.events().contains(&ServerEvent::Dropped {
        cause: DropCause::RequestReset
    }));
    srv.run_timers();
    assert_eq!(
        srv.drain(),
        vec![],
        "no retransmission of a dropped request"
    );
}

#[test]
fn syn_with_new_isn_in_window_gets_rst_ack_and_drops_request_5_4_step4() {
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    srv.drain();
    srv.recv(ms(1), seg(5001, SYN, cisn(5001) + 5, 0, 0));
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].rst, Some(RstCause::SynInWindow));
    assert_eq!(sent[0].pkt.flags, RSTACK);
    assert_eq!(sent[0].pkt.ack, cisn(5001) + 6);
    assert_eq!(srv.qs(l), (0, 0, 0));
    assert_eq!(srv.stack.counters.TcpExtEmbryonicRsts, 1);
}

#[test]
fn segment_without_ack_flag_is_dropped_and_request_kept_5_4_step5() {
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    srv.drain();
    srv.recv(ms(1), seg(5001, FIN, cisn(5001) + 1, 0, 0));
    srv.recv(ms(2), seg(5001, PSH, cisn(5001) + 1, 0, 10));
    assert_eq!(srv.drain(), vec![]);
    assert_eq!(srv.qs(l), (1, 1, 0));
    let drops = srv
        .events()
        .iter()
        .filter(|e| {
            **e == ServerEvent::Dropped {
                cause: DropCause::NoAckFlag,
            }
        })
        .count();
    assert_eq!(drops, 2);
}

#[test]
fn final_ack_with_data_creates_child_and_decrements_syn_queue_5_4_step7() {
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let isn = srv.server_isn(5001);
    srv.advance(secs(1)); // one timeout: the request is no longer young
    assert_eq!(srv.qs(l), (1, 0, 0));
    srv.drain();
    srv.events();

    srv.recv(ms(1010), seg(5001, ACK | PSH, cisn(5001) + 1, isn + 1, 100));
    assert_eq!(srv.qs(l), (0, 0, 1));
    assert_eq!(srv.stack.request_count(), 0);
    assert_eq!(srv.l(l).req_refs, 0);
    assert_eq!(srv.stack.counters.TcpPassiveOpens, 1);
    let c = srv.queue(l)[0];
    let info = srv.stack.child(c).unwrap();
    assert_eq!(
        (info.state, info.request_bytes, info.migrated),
        (ChildState::Established, 100, false)
    );
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
    // The data is acknowledged by the child.
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].pkt.flags, sent[0].pkt.seq, sent[0].pkt.ack),
        (ACK, isn + 1, cisn(5001) + 101)
    );
    srv.run_timers();
    assert_eq!(srv.drain(), vec![], "the request timer is dead");
}

/// backlog 1: children of 5001 and 5003 fill the accept queue (backlog + 1 = 2)
/// while the request of 5002 is pending.
fn full_queue_with_pending_request(aoo: u64) -> (Srv, crate::ListenerId, u32) {
    let mut srv = Srv::new(sysctls(&[("tcp_abort_on_overflow", aoo)]));
    let l = srv.listener(1);
    srv.handshake(ms(0), 5001);
    srv.recv(ms(0), syn(5002));
    let isn2 = srv.server_isn(5002);
    srv.handshake(ms(10), 5003);
    assert_eq!(srv.qs(l), (1, 1, 2));
    srv.drain();
    srv.events();
    (srv, l, isn2)
}

#[test]
fn accept_queue_full_at_final_ack_aoo0_drops_ack_keeps_request_and_retries_5_4_step6() {
    let (mut srv, l, isn2) = full_queue_with_pending_request(0);
    srv.recv(ms(20), final_ack(5002, isn2));
    assert_eq!(srv.drain(), vec![], "dropped silently");
    assert_eq!(srv.qs(l), (1, 1, 2), "the request stays with L");
    let c = &srv.stack.counters;
    assert_eq!((c.TcpExtListenOverflows, c.TcpExtListenDrops), (1, 1));
    assert_eq!(c.TcpExtEmbryonicRsts, 0);
    assert!(srv.events().contains(&ServerEvent::Dropped {
        cause: DropCause::FinalAckAcceptQueueFull
    }));

    // The timer keeps resending SYN-ACKs; the client's duplicate ACK retries.
    srv.advance(secs(1));
    assert_eq!(
        srv.drain(),
        vec![(secs(1), SYNACK, 5002, None)],
        "only the pending request retransmits"
    );
    srv.stack.accept(l).unwrap().unwrap();
    srv.recv(ms(1010), final_ack(5002, isn2));
    assert_eq!(srv.qs(l), (0, 0, 2));
    assert_eq!(srv.child_port(srv.queue(l)[1]), 5002);
}

#[test]
fn accept_queue_full_at_final_ack_aoo1_sends_rst_and_drops_request_5_4_step6() {
    let (mut srv, l, isn2) = full_queue_with_pending_request(1);
    srv.recv(ms(20), final_ack(5002, isn2));
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].rst, Some(RstCause::AcceptQueueOverflow));
    assert_eq!((sent[0].pkt.flags, sent[0].pkt.seq), (RST, isn2 + 1));
    assert_eq!(srv.qs(l), (0, 0, 2));
    let c = &srv.stack.counters;
    assert_eq!(
        (c.TcpExtListenOverflows, c.TcpExtEmbryonicRsts, c.TcpOutRsts),
        (1, 1, 1)
    );
    assert_eq!(
        c.TcpExtTCPMigrateReqFailure, 0,
        "S = L: no migration involved"
    );
}

#[test]
fn final_ack_for_request_of_closed_listener_migrates_to_target_5_4() {
    let mut srv = Srv::new(sysctls(&[("tcp_migrate_req", 1)]));
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let isn = srv.server_isn(5001);
    let b = srv.listener(16);
    srv.close(ms(10), a);
    assert_eq!(
        srv.qs(a),
        (1, 1, 0),
        "§5.7 step 5: requests untouched at close"
    );
    srv.drain();
    srv.events();

    srv.recv(ms(20), final_ack(5001, isn));
    assert_eq!(srv.drain(), vec![]);
    assert_eq!(srv.qs(a), (0, 0, 0));
    assert_eq!(srv.qs(b), (0, 0, 1));
    assert_eq!(srv.stack.counters.TcpExtTCPMigrateReqSuccess, 1);
    assert_eq!(srv.stack.hooks.destroyed, vec![a]);
    let tuple = syn(5001).tuple_at_receiver();
    let hash = srv.stack.flow_hash(&tuple);
    assert_eq!(
        srv.stack.hooks.migrations,
        vec![(
            a,
            MigratingSock::Request {
                hash,
                len: 20,
                tuple
            },
            true
        )],
        "len > 0 with a real packet"
    );
    let c = srv.queue(b)[0];
    assert!(srv.stack.child(c).unwrap().migrated);
    assert!(srv.events().contains(&ServerEvent::Migrated {
        path: MigrationPath::FinalAck,
        from: a,
        to: b,
        first: true
    }));
}

#[test]
fn final_ack_for_request_of_detached_listener_gets_rst_after_relookup_5_4_7b() {
    let mut srv = Srv::new(Sysctls::default());
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let isn = srv.server_isn(5001);
    let b = srv.listener(16);
    srv.close(ms(10), a);
    srv.drain();
    srv.recv(ms(20), final_ack(5001, isn));
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].rst, Some(RstCause::ClosedListenerRequest));
    assert_eq!((sent[0].pkt.flags, sent[0].pkt.seq), (RST, isn + 1));
    assert_eq!(srv.stack.request_count(), 0);
    assert_eq!((srv.qs(a), srv.qs(b)), ((0, 0, 0), (0, 0, 0)));
    assert_eq!(
        srv.stack.counters.TcpExtTCPMigrateReqFailure, 0,
        "detached: no failure"
    );
    assert_eq!(srv.stack.hooks.destroyed, vec![a]);
}

#[test]
fn final_ack_for_request_of_closed_listener_without_live_member_fails_and_gets_rst_5_4() {
    let mut srv = Srv::new(sysctls(&[("tcp_migrate_req", 1)]));
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let isn = srv.server_isn(5001);
    srv.close(ms(10), a);
    srv.drain();
    srv.recv(ms(20), final_ack(5001, isn));
    assert_eq!(
        srv.drain(),
        vec![(ms(20), RST, 5001, Some(RstCause::ClosedListenerRequest))]
    );
    assert_eq!(srv.stack.counters.TcpExtTCPMigrateReqFailure, 1);
    assert_eq!(srv.stack.request_count(), 0);
}

/// B (backlog 0) holds one child; A holds the request of port 5001 and closes
/// with migration on.
fn migrating_request_with_full_target(
    aoo: u64,
) -> (Srv, crate::ListenerId, crate::ListenerId, u32) {
    let mut srv = Srv::new(sysctls(&[
        ("tcp_migrate_req", 1),
        ("tcp_abort_on_overflow", aoo),
    ]));
    let b = srv.listener(0);
    srv.handshake(ms(0), 5002);
    let a = srv.listener(16);
    srv.stack.hooks.select_override = Some(Selection::Listener(a));
    srv.recv(ms(1), syn(5001));
    srv.stack.hooks.select_override = None;
    let isn = srv.server_isn(5001);
    assert_eq!((srv.qs(a), srv.qs(b)), ((1, 1, 0), (0, 0, 1)));
    srv.close(ms(10), a);
    srv.drain();
    srv.events();
    (srv, a, b, isn)
}

#[test]
fn migrated_final_ack_to_full_target_aoo0_drops_and_keeps_request_on_old_listener_5_4_step6() {
    let (mut srv, a, b, isn) = migrating_request_with_full_target(0);
    srv.recv(ms(20), final_ack(5001, isn));
    assert_eq!(srv.drain(), vec![]);
    assert_eq!((srv.qs(a), srv.qs(b)), ((1, 1, 0), (0, 0, 1)));
    let c = &srv.stack.counters;
    assert_eq!(
        (c.TcpExtListenOverflows, c.TcpExtTCPMigrateReqFailure),
        (1, 1)
    );
    assert_eq!(c.TcpExtTCPMigrateReqSuccess, 0);
    assert!(srv.stack.hooks.destroyed.is_empty());
}

#[test]
fn migrated_final_ack_to_full_target_aoo1_sends_rst_5_4_step6() {
    let (mut srv, a, b, isn) = migrating_request_with_full_target(1);
    srv.recv(ms(20), final_ack(5001, isn));
    assert_eq!(
        srv.drain(),
        vec![(
            ms(20),
            RST,
            5001,
            Some(RstCause::MigratedAcceptQueueOverflow)
        )]
    );
    // `embryonic_reset:` drops the request through S (`tcp_check_req` runs
    // on the target): the target is decremented, the old listener never is
    // (docs/linux-semantics/embryonic-reset-after-migration.md).
    assert_eq!((srv.qs(a), srv.qs(b)), ((1, 1, 0), (-1, -1, 1)));
    let c = &srv.stack.counters;
    assert_eq!(
        (c.TcpExtTCPMigrateReqFailure, c.TcpExtEmbryonicRsts),
        (1, 1)
    );
    assert_eq!(srv.stack.hooks.destroyed, vec![a]);
}

#[test]
fn client_syn_retransmission_for_request_of_closed_listener_with_target_resends_synack_7h() {
    let mut srv = Srv::new(sysctls(&[("tcp_migrate_req", 1)]));
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let b = srv.listener(16);
    srv.close(ms(10), a);
    srv.drain();
    srv.recv(ms(900), syn(5001));
    assert_eq!(srv.drain(), vec![(ms(900), SYNACK, 5001, None)]);
    assert_eq!(
        (srv.qs(a), srv.qs(b)),
        ((1, 1, 0), (0, 0, 0)),
        "r still belongs to L"
    );
    assert_eq!(srv.stack.counters.TcpExtTCPMigrateReqSuccess, 0);
    assert_eq!(srv.stack.hooks.migrations.len(), 1, "the target was chosen");
    // It migrates at the next timer (pushed to 0.9 s + 1 s).
    srv.advance(ms(1899));
    assert_eq!(srv.qs(a).0, 1);
    srv.advance(ms(1900));
    assert_eq!((srv.qs(a), srv.qs(b)), ((0, 0, 0), (1, 0, 0)));
    assert_eq!(srv.stack.counters.TcpExtTCPMigrateReqSuccess, 1);
}

#[test]
fn client_syn_retransmission_for_request_of_detached_listener_creates_new_request_7h() {
    let mut srv = Srv::new(Sysctls::default());
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let b = srv.listener(16);
    srv.close(ms(10), a);
    srv.drain();
    srv.recv(ms(1000), syn(5001));
    assert_eq!(
        srv.drain(),
        vec![(ms(1000), SYNACK, 5001, None)],
        "not an RST"
    );
    assert_eq!((srv.qs(a), srv.qs(b)), ((0, 0, 0), (1, 1, 0)));
    assert_eq!(srv.stack.hooks.destroyed, vec![a]);
    assert_eq!(srv.stack.counters.TcpOutRsts, 0);
}

#[test]
fn final_ack_migrated_to_a_target_that_is_not_listening_forgets_the_child_5_4_step7() {
    // `inet_csk_complete_hashdance` → `inet_csk_reqsk_queue_add` refuses a
    // listener that is not in LISTEN: `inet_child_forget` resets the child.
    let mut srv = Srv::new(sysctls(&[("tcp_migrate_req", 1)]));
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let isn = srv.server_isn(5001);
    let b = srv.stack.bind(server_addr(), Default::default()); // bound, not listening
    srv.close(ms(10), a);
    srv.drain();
    srv.stack
        .hooks
        .scripted
        .push_back(crate::MigrateOutcome::Target(b));
    srv.recv(ms(20), final_ack(5001, isn));
    assert_eq!(
        srv.drain(),
        vec![(ms(20), RSTACK, 5001, Some(RstCause::ForgottenChild))]
    );
    assert_eq!(srv.qs(b).2, 0, "nothing queued on a listener not listening");
    let c = &srv.stack.counters;
    assert_eq!(
        (c.TcpExtTCPMigrateReqSuccess, c.TcpExtTCPMigrateReqFailure),
        (0, 1)
    );
    assert_eq!(srv.stack.child_count(), 0);
}
