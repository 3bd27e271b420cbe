//! RST validation (RFC 5961; `tcp_validate_incoming`,
//! `tcp_rcv_synsent_state_process`, `tcp_check_req`): an RST resets a
//! synchronized connection only at exactly `rcv_nxt`; one elsewhere in the
//! window draws a challenge ACK (rate-limited, `TCPChallengeACK`); others
//! are dropped. So a late RST of an earlier connection on a reused 4-tuple
//! cannot reset the new one (issue 16).

use super::harness::*;
use super::pair::{Ev, Pair};
use crate::{ClientOutcome, ClientRstCause, ClientState, DropCause, ServerEvent, Sysctls};
use sim_core::{SimDuration, SimTime, TimerModel};

/// The SYN-ACK of server ISN 9000 to the client of `port`.
fn synack(port: u16) -> sim_core::Packet {
    to_client(port, SYNACK, 9000, cisn(port) + 1, 0)
}

fn established(port: u16) -> Cli {
    // No request: nothing outstanding, so no retransmission gets in the way.
    let mut cli = Cli::connect(ms(0), port, plain(0), Sysctls::default());
    cli.recv(ms(10), synack(port));
    cli.drain();
    cli
}

#[test]
fn established_client_takes_an_rst_only_at_rcv_nxt_rfc5961() {
    let mut cli = established(6101);
    // In the window but not at rcv_nxt (9001): a challenge ACK, no reset.
    cli.recv(ms(20), to_client(6101, RST, 9001 + 5, 0, 0));
    assert_eq!(cli.sock.state(), ClientState::Established);
    let sent = std::mem::take(&mut cli.out.sent);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].1.flags, sent[0].1.seq, sent[0].1.ack),
        (ACK, cisn(6101) + 1, 9001)
    );
    assert_eq!(cli.counters.TcpExtTCPChallengeACK, 1);
    // Another within tcp_invalid_ratelimit (500 ms): suppressed.
    cli.recv(ms(300), to_client(6101, RST, 9001 + 7, 0, 0));
    assert!(cli.out.sent.is_empty());
    assert_eq!(cli.counters.TcpExtTCPACKSkippedChallenge, 1);
    // Before rcv_nxt, or beyond the window: dropped silently.
    cli.recv(ms(900), to_client(6101, RST, 9001 - 10, 0, 0));
    cli.recv(ms(950), to_client(6101, RST, 9001 + 200_000, 0, 0));
    assert!(cli.out.sent.is_empty());
    assert_eq!(cli.sock.state(), ClientState::Established);
    // Exactly rcv_nxt: ECONNRESET.
    cli.recv(ms(960), to_client(6101, RST, 9001, 0, 0));
    assert_eq!(cli.out.outcomes, vec![(ms(960), ClientOutcome::Reset)]);
}

#[test]
fn retransmitted_synacks_draw_a_rate_limited_challenge_ack_2_6() {
    let mut cli = established(6102);
    cli.recv(ms(500), synack(6102));
    cli.recv(ms(700), synack(6102));
    cli.recv(ms(1_100), synack(6102));
    // tcp_validate_incoming step 4: TCPSYNChallenge for each, one ACK per
    // 500 ms (the "duplicate ACK" of §2.6).
    assert_eq!(cli.counters.TcpExtTCPSYNChallenge, 3);
    assert_eq!(cli.counters.TcpExtTCPChallengeACK, 2);
    assert_eq!(cli.counters.TcpExtTCPACKSkippedChallenge, 1);
    let acks: Vec<SimTime> = cli.drain().iter().map(|x| x.0).collect();
    assert_eq!(acks, vec![ms(500), ms(1_100)]);
}

#[test]
fn syn_sent_resets_a_synack_of_the_wrong_ack_and_retries_soon_2_6() {
    // tcp_rcv_synsent_state_process: an ACK outside (snd_una, snd_nxt] is
    // answered with an RST (seq = its ack) and, before any retransmission,
    // the SYN timer is cut to TCP_TIMEOUT_MIN (2 jiffies).
    let mut cli = Cli::connect(ms(0), 6103, plain(100), Sysctls::default());
    cli.recv(ms(10), to_client(6103, SYNACK, 5555, cisn(6103) + 77, 0));
    assert_eq!(cli.sock.state(), ClientState::SynSent);
    let rst = cli.out.sent.last().unwrap().1;
    assert_eq!((rst.flags, rst.seq), (RST, cisn(6103) + 77));
    assert_eq!(cli.out.rsts, vec![ClientRstCause::SynSentBadAck]);
    assert_eq!(cli.counters.TcpOutRsts, 1);
    // An RST with a bad ack is dropped, never answered.
    cli.recv(ms(12), to_client(6103, RSTACK, 0, cisn(6103) + 77, 0));
    assert_eq!(cli.counters.TcpOutRsts, 1);
    cli.advance(ms(100));
    assert_eq!(
        cli.syn_times(),
        vec![ms(0), ms(18)],
        "SYN retried 2 jiffies (8 ms at HZ=250) after the bad SYN-ACK"
    );
}

#[test]
fn server_child_takes_an_rst_only_at_rcv_nxt_rfc5961() {
    let mut srv = Srv::new(Sysctls::default());
    srv.listener(16);
    let isn = srv.handshake(ms(0), 6104);
    srv.recv(ms(1), seg(6104, ACK | PSH, cisn(6104) + 1, isn + 1, 100));
    srv.drain();
    srv.events();
    let rcv_nxt = cisn(6104) + 101;
    // A stale RST (the handshake's sequence, before rcv_nxt): dropped.
    srv.recv(ms(2), seg(6104, RST, cisn(6104) + 1, 0, 0));
    assert!(srv.drain().is_empty());
    assert_eq!(
        srv.events(),
        vec![ServerEvent::Dropped {
            cause: DropCause::RstOutOfWindow
        }]
    );
    // In the window: a challenge ACK.
    srv.recv(ms(3), seg(6104, RST, rcv_nxt + 40, 0, 0));
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].pkt.flags, sent[0].pkt.ack), (ACK, rcv_nxt));
    assert_eq!(srv.stack.counters.TcpExtTCPChallengeACK, 1);
    assert_eq!(
        srv.events(),
        vec![ServerEvent::Dropped {
            cause: DropCause::RstChallenged
        }]
    );
    assert_eq!(srv.stack.child_count(), 1);
    // At rcv_nxt: the child is gone, no RST back.
    srv.recv(ms(4), seg(6104, RST, rcv_nxt, 0, 0));
    assert_eq!(srv.stack.child_count(), 0);
    assert!(srv.drain().is_empty());
}

#[test]
fn after_the_client_fin_rcv_nxt_minus_one_is_accepted_tcp_reset_check() {
    let mut srv = Srv::new(Sysctls::default());
    srv.listener(16);
    let isn = srv.handshake(ms(0), 6105);
    srv.recv(ms(1), seg(6105, ACK | FIN, cisn(6105) + 1, isn + 1, 0));
    srv.drain();
    // rcv_nxt = cisn + 2 after the FIN; an RST at rcv_nxt - 1 resets
    // (CLOSE_WAIT, `tcp_reset_check`).
    srv.recv(ms(2), seg(6105, RST, cisn(6105) + 1, 0, 0));
    assert_eq!(srv.stack.child_count(), 0);
}

#[test]
fn request_drops_an_rst_outside_its_window_5_4_step3() {
    let mut srv = Srv::new(Sysctls::default());
    let l = srv.listener(16);
    srv.recv(ms(0), syn(6106));
    srv.drain();
    srv.events();
    srv.recv(ms(1), seg(6106, RST, cisn(6106) + 1 + 1_000_000, 0, 0));
    assert_eq!(srv.qs(l).0, 1, "the request stays");
    assert_eq!(srv.stack.counters.TcpExtEmbryonicRsts, 0);
    assert!(srv.drain().is_empty());
    assert!(srv.events().contains(&ServerEvent::Dropped {
        cause: DropCause::RstOutOfWindow
    }));
    // A SYN with another ISN far outside the window draws an ACK, not an
    // RST (the SynInWindow RST needs an in-window SYN).
    srv.recv(ms(2), seg(6106, SYN, cisn(6106) + 5_000_000, 0, 0));
    let sent = srv.drain_pkts();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].pkt.flags, sent[0].rst), (ACK, None));
    assert_eq!(srv.qs(l).0, 1);
}

/// Issue 16 in miniature: a connection on a 4-tuple ends, its server sends
/// an RST that arrives late, after the client has reused the 4-tuple for a
/// new connection (another ISN, another server ISN). The late RST is out of
/// the new connection's window: it cannot reset it.
#[test]
fn a_late_rst_of_an_earlier_connection_cannot_reset_the_reused_4_tuple() {
    let (mut p, _) = Pair::build(
        Sysctls::default(),
        server_addr(),
        client_addr(6107),
        SimDuration::from_millis(5),
        plain(100),
        TimerModel::EXACT,
        None,
    );
    p.run(secs(1));
    assert_eq!(p.crec.outcomes[0].1, ClientOutcome::Completed);
    let old_rcv_nxt = p
        .log
        .iter()
        .rev()
        .find(|l| l.1 == "C>S")
        .map(|l| l.4)
        .unwrap();
    // Same 4-tuple, new ISN; the old RST (seq = the old rcv_nxt, as the
    // server's `rst_for` would send it) arrives just after the handshake.
    p.connect_at(
        secs(2),
        client_addr(6107),
        cisn(6107) + 77_777_777,
        plain(100),
    );
    p.run(secs(2) + SimDuration::from_millis(10));
    assert_eq!(p.cli.state(), ClientState::Established);
    let late = to_client(6107, RST, old_rcv_nxt, 0, 0);
    p.q.schedule(secs(2) + SimDuration::from_millis(11), Ev::ToClient(late));
    p.run(secs(10));
    assert_eq!(p.crec.outcomes.len(), 2);
    assert_eq!(p.crec.outcomes[1].1, ClientOutcome::Completed);
}
