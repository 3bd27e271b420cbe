//! Client and server driven together over a link with a fixed one-way delay:
//! every segment's send time is asserted (§2.6, §5.2, §5.4, §5.7), over IPv4
//! and IPv6.

use super::harness::*;
use super::pair::{Ev, LogLine, Pair};
use crate::{ClientOutcome, RstCause, ServerEvent, Sysctls};
use std::net::SocketAddr;

/// The full exchange of one connection over a 5 ms link, as the log must read.
fn expected_exchange(cisn: u32, sisn: u32) -> Vec<LogLine> {
    vec![
        (ms(0), "C>S", SYN, cisn, 0, 0),
        (ms(5), "S>C", SYNACK, sisn, cisn + 1, 0),
        (ms(10), "C>S", ACK, cisn + 1, sisn + 1, 0),
        (ms(10), "C>S", ACK | PSH, cisn + 1, sisn + 1, 100),
        (ms(15), "S>C", ACK, sisn + 1, cisn + 101, 0),
        (ms(15), "S>C", ACK | PSH | FIN, sisn + 1, cisn + 101, 1000),
        (ms(20), "C>S", ACK | FIN, cisn + 101, sisn + 1002, 0),
        // The server closed first: it ACKs the client's FIN and enters
        // TIME_WAIT; the client leaves LAST_ACK on this ACK.
        (ms(25), "S>C", ACK, sisn + 1002, cisn + 102, 0),
    ]
}

fn check_handshake(server: SocketAddr, client: SocketAddr) {
    let (mut pair, l) = Pair::new(Sysctls::default(), server, client, 5);
    pair.run(secs(300));
    let sisn = pair.log[1].3;
    assert_eq!(pair.log, expected_exchange(cisn(client.port()), sisn));
    assert_eq!(pair.crec.outcomes, vec![(ms(20), ClientOutcome::Completed)]);
    assert_eq!(pair.cli.established_at(), Some(ms(10)));
    let finished = pair
        .server_events
        .iter()
        .find(|e| matches!(e.1, ServerEvent::ChildFinished { .. }))
        .map(|e| e.0);
    assert_eq!(finished, Some(ms(25)));
    assert_eq!(pair.srv.child_count(), 0);
    assert_eq!(pair.srv.request_count(), 0);
    assert_eq!(pair.srv.listeners[l.index()].accepted_total, 1);
    assert_eq!(pair.srv.counters.TcpOutRsts, 0);
    assert!(pair.cli.is_closed(), "LAST_ACK ended by the server's ACK");
    // TIME_WAIT on the server, freed after 60 s (TcpExtTW).
    assert_eq!(pair.srv.timewait.peak(), 1);
    assert_eq!(pair.srv.timewait.len(), 0);
    assert_eq!(pair.srv.counters.TcpExtTW, 1);
}

#[test]
fn handshake_request_response_over_5ms_link_has_exact_segment_times_ipv4() {
    check_handshake(
        "10.0.0.1:80".parse().unwrap(),
        "10.0.1.1:7001".parse().unwrap(),
    );
}

#[test]
fn handshake_request_response_over_5ms_link_has_exact_segment_times_ipv6() {
    check_handshake(
        "[2001:db8::1]:443".parse().unwrap(),
        "[2001:db8::100]:7002".parse().unwrap(),
    );
}

#[test]
fn lost_synack_is_retransmitted_by_the_timer_and_handshake_completes_5_3() {
    // The first SYN-ACK is lost: the server's timer resends it at 1.005 s.
    let (mut pair, _) = Pair::new(Sysctls::default(), server_addr(), client_addr(7003), 5);
    pair.run(ms(5)); // the SYN arrives, the SYN-ACK is in flight
    let dropped = pair.q.pop().unwrap();
    assert!(matches!(dropped, (t, Ev::ToClient(p)) if t == ms(10) && p.flags == SYNACK));
    pair.run(secs(300));
    let times: Vec<_> = pair.log.iter().map(|l| (l.0, l.1, l.2)).collect();
    assert_eq!(
        &times[..4],
        &[
            (ms(0), "C>S", SYN),
            (ms(5), "S>C", SYNACK),
            (ms(1000), "C>S", SYN),    // the client's own SYN retransmission
            (ms(1005), "S>C", SYNACK), // the server's timer, first at 1.005 s
        ]
    );
    assert_eq!(pair.crec.outcomes[0].1, ClientOutcome::Completed);
}

fn close_with_migration(server: SocketAddr, client: SocketAddr) {
    let s = Sysctls {
        tcp_migrate_req: 1,
        ..Sysctls::default()
    };
    let (mut pair, a) = Pair::new(s, server, client, 5);
    pair.auto_respond = None;
    pair.run(ms(20)); // child queued on A at 15 ms, never accepted
    assert_eq!(pair.srv.listeners[a.index()].ack_backlog(), 1);
    let mut b = a;
    pair.server(|_, srv, _| {
        b = srv.bind(server, Default::default());
        srv.listen(b, 16).unwrap();
    });
    pair.server(|now, srv, out| srv.close_listener(now, a, false, out));
    assert_eq!(pair.srv.listeners[b.index()].ack_backlog(), 1);
    assert_eq!(pair.srv.counters.TcpExtTCPMigrateReqSuccess, 1);
    pair.server(|now, srv, out| {
        let c = srv.accept(b).unwrap().unwrap();
        srv.respond(now, c, 1000, false, out);
    });
    pair.run(secs(300));
    assert_eq!(pair.crec.outcomes, vec![(ms(25), ClientOutcome::Completed)]);
    assert!(pair.log.iter().all(|l| !l.2.contains(RST)));
}

#[test]
fn close_with_migration_moves_child_and_client_completes_ipv4_5_7() {
    close_with_migration(server_addr(), client_addr(7004));
}

#[test]
fn close_with_migration_moves_child_and_client_completes_ipv6_5_7() {
    close_with_migration(
        "[2001:db8::1]:443".parse().unwrap(),
        "[2001:db8::100]:7005".parse().unwrap(),
    );
}

#[test]
fn close_without_migration_resets_client_ipv6_5_7_7a() {
    let server: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
    let (mut pair, a) = Pair::new(
        Sysctls::default(),
        server,
        "[2001:db8::100]:7006".parse().unwrap(),
        5,
    );
    pair.auto_respond = None;
    pair.run(ms(20));
    pair.server(|now, srv, out| srv.close_listener(now, a, false, out));
    pair.run(secs(300));
    assert_eq!(pair.crec.outcomes, vec![(ms(25), ClientOutcome::Reset)]);
    let rst = pair.log.last().unwrap();
    assert_eq!((rst.0, rst.1, rst.2), (ms(20), "S>C", RSTACK));
    assert!(pair.server_events.iter().any(|e| matches!(
        e.1,
        ServerEvent::ChildReset {
            cause: RstCause::ListenerCloseChild,
            ..
        }
    )));
}
