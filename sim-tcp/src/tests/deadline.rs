//! The client application's give-up deadline (a connect timeout, a whole
//! request timeout): at the deadline the socket is closed as Linux's
//! `tcp_close` does in its state (§5.10's rule, seen from the client):
//! nothing in SYN-SENT, a FIN once established; the orphan then answers
//! data with an RST (`TCPAbortOnData`).

use super::harness::*;
use super::pair::Pair;
use crate::{
    closed_port_reply, ClientConfig, ClientOutcome, ClientRstCause, ClientState, Counters,
    ServerEvent, Sysctls, TcpMetrics,
};
use sim_core::{SimDuration, TimerModel};

fn with_deadlines(connect: Option<u64>, request: Option<u64>) -> ClientConfig {
    ClientConfig {
        request_bytes: 100,
        connect_timeout: connect.map(SimDuration::from_millis),
        request_timeout: request.map(SimDuration::from_millis),
        ..ClientConfig::default()
    }
}

#[test]
fn connect_timeout_in_syn_sent_closes_without_sending_anything() {
    // Under the wheel too: an application timeout runs on a high-resolution
    // timer, so it fires at its exact instant, between the SYN buckets.
    let cfg = with_deadlines(Some(2_500), None);
    let mut cli = Cli::connect_with(
        ms(3),
        6201,
        cfg,
        Sysctls::default(),
        TimerModel::LINUX,
        TcpMetrics::default(),
    );
    cli.advance(secs(10));
    assert_eq!(
        cli.out.outcomes,
        vec![(ms(2_503), ClientOutcome::Abandoned)]
    );
    assert!(cli.sock.is_closed());
    // SYNs at 3 ms and the 1.024 s, 2.048 s buckets; nothing at the deadline.
    assert_eq!(cli.syn_times(), vec![ms(3), ms(1_024), ms(2_048)]);
    // A SYN-ACK that arrives later finds no socket: the client host resets it.
    let mut host = Counters::default();
    let late = to_client(6201, SYNACK, 9000, cisn(6201) + 1, 0);
    let (rst, cause) = closed_port_reply(&late, &mut host).unwrap();
    assert_eq!((rst.flags, rst.seq), (RST, cisn(6201) + 1));
    assert_eq!(cause, Some(ClientRstCause::NoSocket));
    assert_eq!(host.TcpOutRsts, 1);
    // An RST is never answered; a response with FIN for a socket that is
    // gone (LAST_ACK is a socket of its own now) is reset like anything else.
    assert!(closed_port_reply(&to_client(6201, RST, 1, 0, 0), &mut host).is_none());
    let fin = to_client(6201, ACK | PSH | FIN, 9001, cisn(6201) + 101, 10);
    let (rst, _) = closed_port_reply(&fin, &mut host).unwrap();
    assert_eq!((rst.flags, rst.seq), (RST, cisn(6201) + 101));
    assert_eq!(host.TcpOutRsts, 2);
}

#[test]
fn connect_timeout_is_moot_once_established() {
    let mut cli = Cli::connect(
        ms(0),
        6202,
        with_deadlines(Some(500), None),
        Sysctls::default(),
    );
    cli.recv(ms(10), to_client(6202, SYNACK, 9000, cisn(6202) + 1, 0));
    cli.recv(ms(20), to_client(6202, ACK, 9001, cisn(6202) + 101, 0));
    cli.advance(secs(5));
    assert!(cli.out.outcomes.is_empty());
    assert_eq!(cli.sock.state(), ClientState::Established);
}

#[test]
fn request_timeout_sends_fin_and_the_late_response_draws_an_rst() {
    // The server accepts but answers only at 2 s; the client gives up at 1 s.
    let (mut p, _) = Pair::build(
        Sysctls::default(),
        server_addr(),
        client_addr(6203),
        SimDuration::from_millis(5),
        with_deadlines(None, Some(1_000)),
        TimerModel::EXACT,
        None,
    );
    p.auto_respond = None;
    p.run(secs(1));
    assert_eq!(p.crec.outcomes, vec![(secs(1), ClientOutcome::Abandoned)]);
    assert_eq!(p.cli.state(), ClientState::Orphan);
    let fin = p
        .log
        .iter()
        .find(|l| l.1 == "C>S" && l.2.contains(FIN))
        .unwrap();
    assert_eq!((fin.0, fin.2), (secs(1), ACK | FIN));
    p.run(secs(2));
    let c = p.srv.children_tagged(|_| true)[0];
    p.server(|now, srv, out| srv.respond(now, c, 500, false, out));
    p.run(secs(3));
    // The orphan resets the response (TCPAbortOnData); the RST's seq is the
    // server's rcv_nxt after the FIN, so the child takes it.
    assert_eq!(p.ccounters.TcpExtTCPAbortOnData, 1);
    assert_eq!(p.ccounters.TcpOutRsts, 1);
    assert_eq!(p.crec.rsts, vec![ClientRstCause::AbortOnData]);
    assert!(p.cli.is_closed());
    assert_eq!(p.srv.child_count(), 0);
    assert!(p
        .server_events
        .iter()
        .any(|e| matches!(e.1, ServerEvent::ChildGone { .. })));
    assert_eq!(p.crec.outcomes.len(), 1, "one outcome per connection");
}

#[test]
fn an_orphan_lingers_until_tcp_fin_timeout() {
    let (mut p, _) = Pair::build(
        Sysctls::default(),
        server_addr(),
        client_addr(6204),
        SimDuration::from_millis(5),
        with_deadlines(None, Some(1_000)),
        TimerModel::EXACT,
        None,
    );
    p.auto_respond = None;
    p.run(secs(60));
    assert_eq!(p.cli.state(), ClientState::Orphan);
    p.run(secs(62));
    assert!(p.cli.is_closed());
    assert_eq!(p.crec.outcomes, vec![(secs(1), ClientOutcome::Abandoned)]);
}
