//! §5.10: the application closes an accepted child (process exit, `kill`):
//! FIN if the request was read, RST (`TCPAbortOnClose`) only with unread
//! data, and an RST (`TCPAbortOnData`) for data that arrives after the FIN.
//! Measured on Linux 6.18: `tools/kernel-probes/close_fin_vs_rst.py`
//! (`tools/kernel-probes/results/close_fin_vs_rst.txt`), cases a, a2, b.

use super::harness::*;
use super::pair::Pair;
use crate::{AppClose, ClientOutcome, RstCause, ServerEvent, Sysctls};
use sim_core::SimDuration;

/// The client's 100-byte request on the flow of `port`.
fn request(port: u16, server_isn: u32) -> sim_core::Packet {
    seg(
        port,
        ACK | PSH,
        cisn(port).wrapping_add(1),
        server_isn.wrapping_add(1),
        100,
    )
}

#[test]
fn close_after_the_request_was_read_sends_a_fin_not_an_rst_5_10() {
    // Probe case a: the worker read the request and exited: `[FA]`, no
    // RST, no TCPAbortOnClose.
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    let isn = srv.handshake(ms(0), 5001);
    srv.recv(ms(1), request(5001, isn));
    let c = srv.stack.accept(l).unwrap().unwrap();
    srv.stack.read_request(c);
    srv.drain();
    srv.advance(ms(2));
    assert_eq!(srv.stack.close_child(ms(2), c, &mut srv.out), AppClose::Fin);
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    let p = sent[0].pkt;
    assert_eq!(sent[0].rst, None);
    assert_eq!(p.flags, ACK | FIN, "a bare FIN, no PSH");
    assert_eq!(
        (p.seq, p.ack, p.payload_len),
        (isn + 1, cisn(5001) + 101, 0)
    );
    let cnt = &srv.stack.counters;
    assert_eq!((cnt.TcpOutRsts, cnt.TcpExtTCPAbortOnClose), (0, 0));
    // A second close (the fd of an exited process) does nothing.
    assert_eq!(
        srv.stack.close_child(ms(2), c, &mut srv.out),
        AppClose::AlreadyClosed
    );
    // The client answers EOF with its own FIN: the connection is done.
    srv.recv(ms(3), seg(5001, ACK | FIN, cisn(5001) + 101, isn + 2, 0));
    assert_eq!(srv.stack.child(c), None);
    assert!(srv
        .events()
        .contains(&ServerEvent::ChildFinished { child: c }));
}

#[test]
fn close_with_the_request_unread_sends_an_rst_and_counts_abort_on_close_5_10() {
    // Probe case b: `[RA]` at once, TCPAbortOnClose 1, OutRsts 1.
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    let isn = srv.handshake(ms(0), 5001);
    srv.recv(ms(1), request(5001, isn));
    let c = srv.stack.accept(l).unwrap().unwrap();
    srv.drain();
    srv.advance(ms(2));
    assert_eq!(srv.stack.close_child(ms(2), c, &mut srv.out), AppClose::Rst);
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].rst, Some(RstCause::ApplicationAbort));
    assert_eq!(
        (sent[0].pkt.flags, sent[0].pkt.seq, sent[0].pkt.ack),
        (RSTACK, isn + 1, cisn(5001) + 101)
    );
    let cnt = &srv.stack.counters;
    assert_eq!((cnt.TcpOutRsts, cnt.TcpExtTCPAbortOnClose), (1, 1));
    assert_eq!(srv.stack.child(c), None);
}

#[test]
fn data_after_the_close_gets_an_rst_counted_as_abort_on_data_5_10() {
    // Accepted before its request arrived, closed (nothing unread: FIN),
    // then the request arrives: the orphan resets (probe case a2:
    // TCPAbortOnData 1, OutRsts 1). A retransmitted old segment would only
    // be acknowledged; new data is what resets.
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    let isn = srv.handshake(ms(0), 5001);
    let c = srv.stack.accept(l).unwrap().unwrap();
    srv.advance(ms(1));
    assert_eq!(srv.stack.close_child(ms(1), c, &mut srv.out), AppClose::Fin);
    srv.drain();
    srv.recv(ms(2), request(5001, isn));
    assert_eq!(
        srv.drain(),
        vec![(ms(2), RSTACK, 5001, Some(RstCause::AbortOnData))]
    );
    let cnt = &srv.stack.counters;
    assert_eq!(
        (cnt.TcpExtTCPAbortOnData, cnt.TcpExtTCPAbortOnClose),
        (1, 0)
    );
    assert_eq!(srv.stack.child(c), None);
}

#[test]
fn the_client_reads_eof_when_the_server_closes_without_a_response_5_10() {
    // End to end over a 5 ms link (the request arrives at 15 ms, the
    // FIN at the client at 20 ms): the server reads the request and its
    // worker exits; the client sees EOF (not ECONNRESET) and closes; the
    // server's orphan is done at the client's FIN.
    let (mut p, _l) = Pair::new(
        Sysctls::default(),
        "10.0.0.1:80".parse().unwrap(),
        "10.0.1.1:5001".parse().unwrap(),
        5,
    );
    p.auto_respond = None;
    p.run(ms(16));
    let child = p
        .server_events
        .iter()
        .find_map(|(_, e)| match e {
            ServerEvent::RequestReceived { child } => Some(*child),
            _ => None,
        })
        .expect("the request arrived at 15 ms");
    p.server(|now, s, out| {
        s.accept(_l).unwrap();
        s.read_request(child);
        assert_eq!(s.close_child(now, child, out), AppClose::Fin);
    });
    p.run(ms(16) + SimDuration::from_millis(100));
    assert_eq!(p.crec.outcomes, vec![(ms(20), ClientOutcome::Eof)]);
    assert_eq!(p.srv.child_count(), 0, "the client's FIN ended the orphan");
    assert_eq!(p.srv.counters.TcpOutRsts + p.ccounters.TcpOutRsts, 0);
}
