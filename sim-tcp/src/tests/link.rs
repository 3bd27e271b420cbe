//! Client and server driven together over a link with a fixed one-way delay:
//! every segment's send time is asserted (§2.6, §5.2, §5.4, §5.7), over IPv4
//! and IPv6.

use super::harness::*;
use crate::{
    ClientOutcome, ClientSocket, FlowHasher, ListenerId, RstCause, ServerEvent, ServerStack,
    ServerTimer, Sysctls,
};
use sim_core::{EventQueue, Packet, SimDuration, SimTime, TcpFlags};
use std::net::SocketAddr;

enum Ev {
    ToServer(Packet),
    ToClient(Packet),
    Srv(ServerTimer),
    Cli,
}

/// `(send time, direction, flags, seq, ack, payload length)`.
type LogLine = (SimTime, &'static str, TcpFlags, u32, u32, u32);

struct Pair {
    q: EventQueue<Ev>,
    srv: ServerStack<MockHooks>,
    srec: ServerRec,
    cli: ClientSocket,
    crec: ClientRec,
    sysctls: Sysctls,
    delay: SimDuration,
    log: Vec<LogLine>,
    server_events: Vec<(SimTime, ServerEvent)>,
    /// Accept each queued child and answer its request with this many bytes.
    auto_respond: Option<u32>,
}

impl Pair {
    /// A server with one listener on `server` and a client connecting at 0.
    fn new(
        sysctls: Sysctls,
        server: SocketAddr,
        client: SocketAddr,
        delay_ms: u64,
    ) -> (Self, ListenerId) {
        let mut srv = ServerStack::new(sysctls.clone(), MockHooks::default(), FlowHasher::new(3));
        let l = srv.bind(server, Default::default());
        srv.listen(l, 16).unwrap();
        let mut crec = ClientRec::default();
        let cli = ClientSocket::connect(
            SimTime::ZERO,
            client,
            server,
            cisn(client.port()),
            &plain(100),
            &sysctls,
            &mut crec,
        );
        let mut p = Pair {
            q: EventQueue::new(),
            srv,
            srec: ServerRec::default(),
            cli,
            crec,
            sysctls,
            delay: SimDuration::from_millis(delay_ms),
            log: Vec::new(),
            server_events: Vec::new(),
            auto_respond: Some(1000),
        };
        p.flush();
        (p, l)
    }

    /// Moves everything the endpoints produced into the queue and runs the
    /// server application (accept + respond).
    fn flush(&mut self) {
        loop {
            let now = self.q.now();
            let mut progress = false;
            for s in std::mem::take(&mut self.srec.sent) {
                let p = s.pkt;
                self.log
                    .push((s.at, "S>C", p.flags, p.seq, p.ack, p.payload_len));
                self.q.schedule(s.at + self.delay, Ev::ToClient(p));
            }
            for (at, _, t) in std::mem::take(&mut self.srec.timers) {
                self.q.schedule(at, Ev::Srv(t));
            }
            for (at, p) in std::mem::take(&mut self.crec.sent) {
                self.log
                    .push((at, "C>S", p.flags, p.seq, p.ack, p.payload_len));
                self.q.schedule(at + self.delay, Ev::ToServer(p));
            }
            for at in std::mem::take(&mut self.crec.timers) {
                self.q.schedule(at, Ev::Cli);
            }
            for (at, ev) in std::mem::take(&mut self.srec.events) {
                self.server_events.push((at, ev));
                let Some(len) = self.auto_respond else {
                    continue;
                };
                match ev {
                    ServerEvent::ChildQueued { listener, .. } => {
                        self.srv.accept(listener).unwrap();
                        progress = true;
                    }
                    ServerEvent::RequestReceived { child } => {
                        self.srec.now = now;
                        self.srv.respond(now, child, len, &mut self.srec);
                        progress = true;
                    }
                    _ => {}
                }
            }
            if !progress {
                return;
            }
        }
    }

    /// Runs events up to and including `until` (bounded).
    fn run(&mut self, until: SimTime) {
        for _ in 0..10_000 {
            match self.q.peek_time() {
                Some(t) if t <= until => {}
                _ => return,
            }
            let (now, ev) = self.q.pop().unwrap();
            self.srec.now = now;
            self.crec.now = now;
            match ev {
                Ev::ToServer(p) => self.srv.on_segment(now, &p, &mut self.srec),
                Ev::Srv(t) => self.srv.on_timer(now, t, &mut self.srec),
                Ev::ToClient(p) => self.cli.on_segment(now, &p, &self.sysctls, &mut self.crec),
                Ev::Cli => self.cli.on_timer(now, &self.sysctls, &mut self.crec),
            }
            self.flush();
        }
        panic!("the pair never settles");
    }

    /// Calls into the server at the current queue time, then flushes.
    fn server(&mut self, f: impl FnOnce(SimTime, &mut ServerStack<MockHooks>, &mut ServerRec)) {
        let now = self.q.now();
        self.srec.now = now;
        f(now, &mut self.srv, &mut self.srec);
        self.flush();
    }
}

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
        srv.respond(now, c, 1000, out);
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
