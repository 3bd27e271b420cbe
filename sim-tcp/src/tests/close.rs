//! §5.6 accept(), §5.7 listener close/shutdown and accept-queue migration,
//! §5.9 re-listen after shutdown, §6.1 listener lifetime.

use super::harness::*;
use crate::{
    AcceptError, ListenError, ListenerState, MigratingSock, MigrationPath, RstCause, ServerEvent,
    Sysctls,
};

#[test]
fn accept_pops_accept_queue_head_first_5_6() {
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    srv.handshake(ms(0), 5001);
    srv.handshake(ms(1), 5002);
    let c1 = srv.stack.accept(l).unwrap().unwrap();
    assert_eq!(srv.child_port(c1), 5001);
    assert_eq!(srv.qs(l).2, 1);
    let c2 = srv.stack.accept(l).unwrap().unwrap();
    assert_eq!(srv.child_port(c2), 5002);
    assert_eq!(srv.stack.accept(l), Ok(None), "EAGAIN");
    assert_eq!(srv.l(l).accepted_total, 2);
}

#[test]
fn accept_fails_on_a_listener_that_is_not_listening_5_6() {
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    srv.handshake(ms(0), 5001);
    srv.shutdown(ms(1), l);
    assert_eq!(srv.stack.accept(l), Err(AcceptError::NotListening));
    let bound = srv.stack.bind(server_addr(), Default::default());
    assert_eq!(srv.stack.accept(bound), Err(AcceptError::NotListening));
}

#[test]
fn close_without_migration_resets_each_child_with_rst_ack_at_snd_nxt_5_7_step4() {
    let mut srv = Srv::new(Sysctls::default());
    let a = srv.listener(16);
    let isns: Vec<u32> = (5001..=5003).map(|p| srv.handshake(ms(0), p)).collect();
    srv.drain();
    srv.close(ms(5), a);
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 3);
    for (s, (port, isn)) in sent.iter().zip((5001u16..).zip(isns)) {
        assert_eq!(s.rst, Some(RstCause::ListenerCloseChild));
        assert_eq!(s.at, ms(5));
        let p = s.pkt;
        assert_eq!(
            (p.flags, p.dst.port(), p.seq, p.ack),
            (RSTACK, port, isn + 1, cisn(port) + 1),
            "head first; seq = snd_nxt, ack = rcv_nxt"
        );
    }
    assert_eq!(srv.stack.child_count(), 0);
    assert_eq!(srv.l(a).state, ListenerState::Closed);
    let c = &srv.stack.counters;
    assert_eq!((c.TcpOutRsts, c.TcpExtTCPMigrateReqFailure), (3, 0));
    let resets = srv
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                ServerEvent::ChildReset {
                    cause: RstCause::ListenerCloseChild,
                    ..
                }
            )
        })
        .count();
    assert_eq!(resets, 3);
    assert_eq!(
        srv.stack.hooks.destroyed,
        vec![a],
        "no request: destroyed at close"
    );
}

#[test]
fn close_leaves_syn_queue_untouched_and_listener_object_lives_until_its_last_request_5_7_6_1() {
    let mut srv = Srv::new(Sysctls::default());
    let a = srv.listener(16);
    srv.handshake(ms(0), 5001);
    srv.recv(ms(0), syn(5002));
    srv.drain();
    srv.close(ms(5), a);
    assert_eq!(
        srv.drain(),
        vec![(ms(5), RSTACK, 5001, Some(RstCause::ListenerCloseChild))],
        "only the child is reset"
    );
    assert_eq!(srv.qs(a), (1, 1, 0));
    assert_eq!(srv.stack.request_count(), 1);
    assert!(srv.stack.hooks.destroyed.is_empty());
    // Resolved lazily by the timer (detached: silent drop).
    srv.advance(secs(1));
    assert_eq!(srv.drain(), vec![]);
    assert_eq!(srv.stack.request_count(), 0);
    assert_eq!(srv.stack.hooks.destroyed, vec![a]);
}

#[test]
fn close_with_migration_appends_children_to_target_without_backlog_check_5_7_step4() {
    let mut srv = Srv::new(sysctls(&[("tcp_migrate_req", 1)]));
    let a = srv.listener(16);
    let moved: Vec<_> = (5001..=5003)
        .map(|p| {
            srv.handshake(ms(0), p);
            *srv.queue(a).last().unwrap()
        })
        .collect();
    let b = srv.listener(0);
    srv.stack.hooks.select_override = Some(crate::Selection::Listener(b));
    srv.handshake(ms(1), 5009);
    srv.stack.hooks.select_override = None;
    assert_eq!(srv.qs(b).2, 1, "B is full (backlog 0)");
    let own = srv.queue(b)[0];
    srv.drain();
    srv.events();

    srv.close(ms(5), a);
    assert_eq!(srv.drain(), vec![], "no RST");
    let mut expect = vec![own];
    expect.extend(&moved);
    assert_eq!(srv.queue(b), expect, "appended in A's head-first order");
    assert_eq!(srv.qs(b).2, 4, "exceeds backlog + 1");
    assert_eq!(srv.stack.counters.TcpExtTCPMigrateReqSuccess, 3);
    assert!(srv
        .stack
        .hooks
        .migrations
        .iter()
        .all(|m| m.0 == a && matches!(m.1, MigratingSock::Established { .. })));
    let migrated = srv
        .events()
        .iter()
        .filter(|e| {
            matches!(e, ServerEvent::Migrated { path: MigrationPath::AcceptQueue, from, to, first: true } if *from == a && *to == b)
        })
        .count();
    assert_eq!(migrated, 3);
    // The moved children belong to B now.
    assert_eq!(srv.stack.accept(b).unwrap(), Some(own));
    assert_eq!(srv.stack.accept(b).unwrap(), Some(moved[0]));
}

#[test]
fn close_with_migration_but_no_live_member_resets_children_and_counts_failures_5_7_6_2() {
    let mut srv = Srv::new(sysctls(&[("tcp_migrate_req", 1)]));
    let a = srv.listener(16);
    srv.handshake(ms(0), 5001);
    srv.handshake(ms(0), 5002);
    srv.drain();
    srv.close(ms(5), a);
    assert_eq!(
        srv.drain(),
        vec![
            (ms(5), RSTACK, 5001, Some(RstCause::ListenerCloseChild)),
            (ms(5), RSTACK, 5002, Some(RstCause::ListenerCloseChild)),
        ]
    );
    assert_eq!(srv.stack.counters.TcpExtTCPMigrateReqFailure, 2);
}

#[test]
fn shutdown_keeps_object_alive_and_close_after_shutdown_destroys_it_5_7() {
    let mut srv = Srv::new(Sysctls::default());
    let a = srv.listener(16);
    srv.handshake(ms(0), 5001);
    srv.drain();
    srv.shutdown(ms(5), a);
    assert_eq!(
        srv.drain(),
        vec![(ms(5), RSTACK, 5001, Some(RstCause::ListenerCloseChild))],
        "shutdown drains the accept queue like close"
    );
    assert_eq!(srv.l(a).state, ListenerState::Shutdown);
    assert!(srv.stack.hooks.live.is_empty(), "left the listener table");
    assert!(srv.stack.hooks.destroyed.is_empty(), "fd still open");
    srv.close(ms(6), a);
    assert_eq!(srv.l(a).state, ListenerState::Closed);
    assert_eq!(srv.stack.hooks.destroyed, vec![a]);
    assert_eq!(srv.stack.listen(a, 16), Err(ListenError::Closed));
}

#[test]
fn relisten_after_shutdown_resurrects_and_old_requests_complete_on_it_5_9() {
    let mut srv = Srv::new(sysctls(&[("tcp_migrate_req", 1)]));
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let isn = srv.server_isn(5001);
    srv.shutdown(ms(5), a);
    assert_eq!(srv.stack.hooks.closed, vec![a]);
    srv.stack.listen(a, 16).unwrap();
    assert_eq!(srv.stack.hooks.listens, vec![(a, false), (a, true)]);
    assert_eq!(srv.stack.hooks.live, vec![a]);
    assert_eq!(srv.l(a).state, ListenerState::Listen);
    assert_eq!(srv.qs(a), (1, 1, 0), "the old request still counts");

    srv.recv(ms(10), final_ack(5001, isn));
    assert_eq!(srv.qs(a), (0, 0, 1));
    assert!(
        srv.stack.hooks.migrations.is_empty(),
        "A listens again: no migration"
    );
}

#[test]
fn close_migration_to_a_target_that_is_not_listening_forgets_child_5_7_step4() {
    let mut srv = Srv::new(sysctls(&[("tcp_migrate_req", 1)]));
    let a = srv.listener(16);
    srv.handshake(ms(0), 5001);
    let b = srv.stack.bind(server_addr(), Default::default()); // bound, not listening
    srv.stack
        .hooks
        .scripted
        .push_back(crate::MigrateOutcome::Target(b));
    srv.drain();
    srv.close(ms(5), a);
    assert_eq!(
        srv.drain(),
        vec![(ms(5), RSTACK, 5001, Some(RstCause::ListenerCloseChild))]
    );
    assert_eq!(srv.stack.counters.TcpExtTCPMigrateReqFailure, 1);
    assert_eq!(srv.qs(b).2, 0);
}
