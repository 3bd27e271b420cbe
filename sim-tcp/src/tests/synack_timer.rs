//! §5.3 `reqsk_timer_handler`: SYN-ACK retransmission schedule, expiry,
//! pruning, and migration at the timer (§4.3, §5.8, §7 C).

use super::harness::*;
use crate::{
    DropCause, ListenerOptions, MigrateFailure, MigratingSock, MigrationPath, ServerEvent, Sysctls,
};
use sim_core::{SimDuration, SimTime};

/// Times of the SYN-ACKs sent to `port`, and the time of the `RequestExpired` drop.
fn schedule(srv: &mut Srv, port: u16) -> (Vec<SimTime>, Option<SimTime>) {
    let synacks = srv
        .drain()
        .into_iter()
        .filter(|l| l.1 == SYNACK && l.2 == port)
        .map(|l| l.0)
        .collect();
    let expired = srv.out.events.iter().find_map(|(t, e)| {
        (*e == ServerEvent::Dropped {
            cause: DropCause::RequestExpired,
        })
        .then_some(*t)
    });
    (synacks, expired)
}

#[test]
fn synack_timer_retransmits_at_1_3_7_15_31s_then_drops_at_63s() {
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    let t0 = SimTime(123_456_789);
    srv.recv(t0, syn(5001));
    srv.run_timers();

    let at = |s: u64| t0 + SimDuration::from_secs(s);
    let (synacks, expired) = schedule(&mut srv, 5001);
    assert_eq!(synacks, vec![t0, at(1), at(3), at(7), at(15), at(31)]);
    assert_eq!(expired, Some(at(63)));
    assert_eq!(srv.stack.request_count(), 0);
    assert_eq!(srv.qs(l), (0, 0, 0));
    let c = &srv.stack.counters;
    assert_eq!(
        c.TcpExtTCPTimeouts, 6,
        "every expiry, the last one included"
    );
    assert_eq!(c.TcpExtTCPSynRetrans, 5);
    assert_eq!(c.TcpOutRsts, 0, "expiry sends no RST");
}

#[test]
fn synack_retries_2_retransmits_at_1_and_3s_then_drops_at_7s_5_3() {
    let mut srv = Srv::new(sysctls(&[("tcp_synack_retries", 2)]));
    srv.listener(16);
    srv.recv(ms(0), syn(5001));
    srv.run_timers();
    let (synacks, expired) = schedule(&mut srv, 5001);
    assert_eq!(synacks, vec![secs(0), secs(1), secs(3)]);
    assert_eq!(expired, Some(secs(7)));
}

#[test]
fn tcp_syncnt_overrides_tcp_synack_retries_5_3() {
    let mut srv = Srv::new(sysctls(&[("tcp_synack_retries", 5)]));
    srv.listener_opts(
        16,
        ListenerOptions {
            syn_retries: 3,
            ..Default::default()
        },
    );
    srv.recv(ms(0), syn(5001));
    srv.run_timers();
    let (synacks, expired) = schedule(&mut srv, 5001);
    assert_eq!(synacks, vec![secs(0), secs(1), secs(3), secs(7)]);
    assert_eq!(expired, Some(secs(15)));
}

#[test]
fn pruning_under_syn_queue_pressure_expires_old_requests_early_5_3() {
    // backlog 4: 5 requests fit and 2 * 5 > max(8, 4). Once every request
    // is old (young = 0) the retry budget falls to 2.
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(4);
    for port in 5001..=5005 {
        srv.recv(ms(0), syn(port));
    }
    srv.drain();
    srv.advance(secs(3));
    assert_eq!(srv.drain().len(), 10, "all retransmit at 1 and 3 s");
    assert_eq!(srv.qs(l), (5, 0, 0));

    // At 7 s the first request expires (num_timeout 2 >= 2). Then qlen = 4
    // and 2 * 4 > 8 is false: no more pruning, the other four retransmit.
    srv.advance(secs(7));
    let sent = srv.drain();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|l| l.0 == secs(7) && l.2 != 5001));
    assert_eq!(srv.qs(l).0, 4);
    assert_eq!(srv.stack.counters.TcpExtTCPTimeouts, 5 + 5 + 5);

    // Without pressure (backlog 16: 10 > 16 is false) nobody expires at 7 s.
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    for port in 5001..=5005 {
        srv.recv(ms(0), syn(port));
    }
    srv.advance(secs(8));
    assert_eq!(srv.qs(l).0, 5);
}

#[test]
fn synack_timer_migrates_request_of_closed_listener_to_target_5_3() {
    let mut srv = Srv::new(sysctls(&[("tcp_migrate_req", 1)]));
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let b = srv.listener(16);
    srv.advance(secs(1)); // first retransmission on A: num_timeout = 1
    srv.close(secs(2), a);
    srv.drain();
    srv.events();
    assert_eq!(srv.qs(a), (1, 0, 0));
    assert!(
        srv.stack.hooks.destroyed.is_empty(),
        "a request still references A"
    );

    srv.advance(secs(3));
    assert_eq!(srv.drain(), vec![(secs(3), SYNACK, 5001, None)]);
    assert_eq!(srv.qs(a), (0, 0, 0), "old listener's counters decremented");
    assert_eq!(srv.qs(b), (1, 0, 0), "clone counted on B; old: no young");
    assert_eq!((srv.l(a).req_refs, srv.l(b).req_refs), (0, 1));
    assert_eq!(srv.stack.hooks.destroyed, vec![a]);
    assert_eq!(srv.stack.counters.TcpExtTCPMigrateReqSuccess, 1);
    let tuple = syn(5001).tuple_at_receiver();
    let hash = srv.stack.flow_hash(&tuple);
    assert_eq!(
        srv.stack.hooks.migrations,
        vec![(
            a,
            MigratingSock::Request {
                hash,
                len: 0,
                tuple
            },
            true
        )]
    );
    assert!(srv.events().contains(&ServerEvent::Migrated {
        path: MigrationPath::SynackTimer,
        from: a,
        to: b,
        first: true
    }));

    // Same num_timeout: the schedule goes on at 7, 15, 31 and ends at 63 s.
    srv.run_timers();
    let (synacks, expired) = schedule(&mut srv, 5001);
    assert_eq!(synacks, vec![secs(7), secs(15), secs(31)]);
    assert_eq!(expired, Some(secs(63)));
    assert_eq!(srv.qs(b), (0, 0, 0));
    assert_eq!(srv.stack.counters.TcpExtTCPMigrateReqSuccess, 1);
}

#[test]
fn synack_timer_migration_then_final_ack_queues_child_on_target_5_3() {
    let mut srv = Srv::new(sysctls(&[("tcp_migrate_req", 1)]));
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let isn = srv.server_isn(5001);
    let b = srv.listener(16);
    srv.close(ms(500), a);
    srv.advance(secs(1)); // migrates with num_timeout 0: young moves to B, then ages
    assert_eq!(srv.qs(b), (1, 0, 0));
    srv.recv(ms(1500), final_ack(5001, isn));
    assert_eq!(srv.qs(b), (0, 0, 1));
    assert_eq!(
        srv.stack.counters.TcpExtTCPMigrateReqSuccess, 1,
        "no second hop: B owns the request"
    );
    let c = srv.queue(b)[0];
    assert!(srv.stack.child(c).unwrap().migrated);
}

#[test]
fn synack_timer_without_target_drops_request_silently_and_counts_failure_5_3() {
    let mut srv = Srv::new(sysctls(&[("tcp_migrate_req", 1)]));
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    srv.close(ms(500), a);
    srv.drain();
    srv.advance(secs(1));
    assert_eq!(srv.drain(), vec![], "no SYN-ACK, no RST (§7 C)");
    assert_eq!(srv.stack.request_count(), 0);
    assert_eq!(srv.stack.counters.TcpExtTCPMigrateReqFailure, 1);
    assert_eq!(
        srv.stack.hooks.destroyed,
        vec![a],
        "destroyed with its last request"
    );
    let ev = srv.events();
    assert!(ev.contains(&ServerEvent::MigrationFailed {
        path: MigrationPath::SynackTimer,
        from: a,
        reason: MigrateFailure::NoLiveMember
    }));
    assert!(ev.contains(&ServerEvent::Dropped {
        cause: DropCause::RequestTimerNoTarget
    }));
}

#[test]
fn synack_timer_for_detached_listener_drops_without_counting_failure_5_3() {
    let mut srv = Srv::new(Sysctls::default()); // tcp_migrate_req = 0 at close
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    srv.listener(16);
    srv.close(ms(500), a);
    srv.drain();
    srv.advance(secs(1));
    assert_eq!(srv.drain(), vec![]);
    assert_eq!(srv.stack.request_count(), 0);
    let c = &srv.stack.counters;
    assert_eq!(
        (c.TcpExtTCPMigrateReqFailure, c.TcpExtTCPMigrateReqSuccess),
        (0, 0)
    );
}

#[test]
fn migrate_req_read_at_migration_time_1_then_0_fails_5_8() {
    let mut srv = Srv::new(sysctls(&[("tcp_migrate_req", 1)]));
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    srv.listener(16);
    srv.close(ms(500), a);
    srv.stack.sysctls.tcp_migrate_req = 0;
    srv.drain();
    srv.advance(secs(1));
    assert_eq!(srv.drain(), vec![]);
    assert_eq!(srv.stack.counters.TcpExtTCPMigrateReqFailure, 1);
    assert!(!srv.stack.hooks.migrations[0].2, "read at migration");
}

#[test]
/// 6.13+ (`drop:` uses `sk_listener`, which is the target after migration):
/// the target is decremented for the clone and again for the old request;
/// the old listener keeps its count (a kernel accounting quirk the spec
/// states for 6.18, §5.3; docs/linux-semantics/synack-timer-migration-expiry.md).
fn migrated_request_with_exhausted_retries_fails_and_counts_on_target_twice_5_3() {
    let mut srv = Srv::new(sysctls(&[
        ("tcp_migrate_req", 1),
        ("tcp_synack_retries", 1),
    ]));
    let a = srv.listener(16);
    srv.recv(ms(0), syn(5001));
    let b = srv.listener(16);
    srv.advance(secs(1)); // num_timeout = 1 = max
    srv.close(secs(2), a);
    srv.drain();
    srv.advance(secs(3));
    assert_eq!(srv.drain(), vec![]);
    assert_eq!((srv.qs(a), srv.qs(b)), ((1, 0, 0), (-1, 0, 0)));
    // A negative qlen compares as unsigned in `inet_csk_reqsk_queue_is_full`:
    // the target now treats its SYN queue as full.
    assert!(srv.stack.listeners[b.index()].syn_queue_is_full());
    let c = &srv.stack.counters;
    assert_eq!(
        (c.TcpExtTCPMigrateReqSuccess, c.TcpExtTCPMigrateReqFailure),
        (0, 1)
    );
    assert_eq!(srv.stack.hooks.destroyed, vec![a]);
}

/// §3, §3.1 at HZ=250: the SYN-ACK schedule to the jiffy bucket, request at
/// jiffy 0. The 4 s re-arm is a level-2 timer: the SYN-ACK due at 7 s goes
/// out at the 256 ms boundary 7.168 s (measured 7.103–7.178 s,
/// synack_schedule.txt); the request due to expire at 63 s goes at the
/// 2.048 s boundary 65.536 s (measured 64.96–65.02 s, other jiffy phases).
#[test]
fn synack_schedule_on_the_wheel_to_the_jiffy_3_1() {
    let mut srv = Srv::with_timers(Sysctls::default(), sim_core::TimerModel::LINUX);
    srv.listener(16);
    srv.recv(SimTime::ZERO, syn(5001));
    srv.run_timers();
    let (synacks, expired) = schedule(&mut srv, 5001);
    assert_eq!(
        synacks,
        vec![
            ms(0),
            ms(1_024),
            ms(3_040),
            ms(7_168),
            ms(15_360),
            ms(31_488)
        ]
    );
    assert_eq!(synacks[3].0 % 256_000_000, 0, "a 256 ms bucket boundary");
    assert_eq!(expired, Some(ms(65_536)));
    assert_eq!(srv.stack.counters.TcpRetransSegs, 5);
}

/// §2.1, §3: the request timer caps at TCP_RTO_MAX, not `tcp_rto_max_ms`:
/// with `tcp_rto_max_ms=1000` the SYN-ACKs still go out at 1, 3, 7, 15, 31 s
/// (measured on 6.18, synack_schedule.txt).
#[test]
fn tcp_rto_max_ms_does_not_cap_the_request_timer_2_1_3() {
    let mut srv = Srv::new(sysctls(&[("tcp_rto_max_ms", 1000)]));
    srv.listener(16);
    srv.recv(ms(0), syn(5001));
    srv.run_timers();
    let (synacks, expired) = schedule(&mut srv, 5001);
    let s: Vec<SimTime> = [0, 1, 3, 7, 15, 31].into_iter().map(secs).collect();
    assert_eq!(synacks, s);
    assert_eq!(expired, Some(secs(63)));
    // A duplicate SYN pushes the timer to now + min(1 s << num_timeout,
    // TCP_RTO_MAX) too (§5.4 step 1): num_timeout 6 after the 63 s expiry
    // (tcp_synack_retries 8), so a SYN at 64 s moves the next SYN-ACK to 128 s.
    let mut srv = Srv::new(sysctls(&[
        ("tcp_rto_max_ms", 1000),
        ("tcp_synack_retries", 8),
    ]));
    srv.listener(16);
    srv.recv(ms(0), syn(5001));
    srv.advance(secs(63));
    srv.drain();
    srv.recv(secs(64), syn(5001));
    srv.advance(secs(128));
    let (synacks, _) = schedule(&mut srv, 5001);
    assert_eq!(synacks, vec![secs(64), secs(128)]);
}
