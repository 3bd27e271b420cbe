//! The client socket of §2.6.

use super::harness::*;
use crate::{
    ClientConfig, ClientOutcome, ClientState, Sysctls, TCP_TIMEOUT_FALLBACK, TFO_CLIENT_ENABLE,
    TFO_CLIENT_NO_COOKIE,
};
use sim_core::{SimDuration, SimTime};

/// A SYN-ACK from the server to the client of `port`, acknowledging `ack`.
fn synack(port: u16, ack: u32) -> sim_core::Packet {
    to_client(port, SYNACK, 9000, ack, 0)
}

#[test]
fn client_syn_retransmits_at_1_3_7_15_31_63s_then_etimedout_at_127s_2_6() {
    let t0 = SimTime(987_654_321);
    let mut cli = Cli::connect(t0, 6001, plain(100), Sysctls::default());
    cli.advance(secs(1000));
    let at = |s: u64| t0 + SimDuration::from_secs(s);
    let expect: Vec<_> = [0, 1, 3, 7, 15, 31, 63]
        .into_iter()
        .map(|s| (at(s), SYN, 0))
        .collect();
    assert_eq!(cli.drain(), expect);
    assert_eq!(cli.out.outcomes, vec![(at(127), ClientOutcome::TimedOut)]);
    assert_eq!(cli.sock.syn_retransmits(), 6);
}

#[test]
fn client_rst_in_syn_sent_is_econnrefused_2_6() {
    let mut cli = Cli::connect(ms(0), 6001, plain(0), Sysctls::default());
    // An RST that does not acknowledge the SYN is not acceptable.
    cli.recv(ms(5), to_client(6001, RSTACK, 0, cisn(6001) + 2, 0));
    assert_eq!(cli.sock.state(), ClientState::SynSent);
    cli.recv(ms(10), to_client(6001, RSTACK, 0, cisn(6001) + 1, 0));
    assert_eq!(cli.out.outcomes, vec![(ms(10), ClientOutcome::Refused)]);
    cli.advance(secs(200));
    assert_eq!(cli.drain().len(), 1, "no SYN retransmission after the RST");
}

#[test]
fn client_rst_when_established_is_econnreset_2_6() {
    let mut cli = Cli::connect(ms(0), 6001, plain(100), Sysctls::default());
    cli.recv(ms(10), synack(6001, cisn(6001) + 1));
    assert_eq!(cli.sock.state(), ClientState::Established);
    cli.recv(ms(20), to_client(6001, RSTACK, 9001, cisn(6001) + 101, 0));
    assert_eq!(cli.out.outcomes, vec![(ms(20), ClientOutcome::Reset)]);
}

#[test]
fn client_answers_retransmitted_synack_with_duplicate_ack_2_6() {
    let mut cli = Cli::connect(ms(0), 6001, plain(0), Sysctls::default());
    cli.recv(ms(10), synack(6001, cisn(6001) + 1));
    cli.recv(secs(1), synack(6001, cisn(6001) + 1));
    let (_, dup) = *cli.out.sent.last().unwrap();
    assert_eq!((dup.seq, dup.ack), (cisn(6001) + 1, 9001));
    assert_eq!(
        cli.drain(),
        vec![(ms(0), SYN, 0), (ms(10), ACK, 0), (secs(1), ACK, 0)]
    );
    assert_eq!(cli.sock.state(), ClientState::Established);
}

#[test]
fn client_data_rto_is_rtt_plus_max_2rtt_200ms_and_doubles_2_6() {
    // RTT 10 ms: RTO = 10 + max(20, 200) = 210 ms.
    let mut cli = Cli::connect(ms(0), 6001, plain(100), Sysctls::default());
    cli.recv(ms(10), synack(6001, cisn(6001) + 1));
    cli.advance(ms(1500));
    assert_eq!(
        cli.drain(),
        vec![
            (ms(0), SYN, 0),
            (ms(10), ACK, 0),
            (ms(10), ACK | PSH, 100),
            (ms(220), ACK | PSH, 100),
            (ms(640), ACK | PSH, 100),
            (ms(1480), ACK | PSH, 100),
        ]
    );
    // RTT 150 ms: RTO = 150 + 300 = 450 ms.
    let mut cli = Cli::connect(ms(0), 6002, plain(100), Sysctls::default());
    cli.recv(ms(150), synack(6002, cisn(6002) + 1));
    cli.advance(ms(1500));
    let data: Vec<_> = cli
        .drain()
        .into_iter()
        .filter(|x| x.2 > 0)
        .map(|x| x.0)
        .collect();
    assert_eq!(data, vec![ms(150), ms(600), ms(1500)]);
}

#[test]
fn client_data_rto_is_3s_after_retransmitted_syn_2_6() {
    let mut cli = Cli::connect(ms(0), 6001, plain(100), Sysctls::default());
    cli.advance(ms(1000)); // SYN retransmitted at 1 s
    cli.recv(ms(1010), synack(6001, cisn(6001) + 1));
    cli.advance(secs(11));
    let data: Vec<_> = cli
        .drain()
        .into_iter()
        .filter(|x| x.2 > 0)
        .map(|x| x.0)
        .collect();
    let rto = TCP_TIMEOUT_FALLBACK;
    assert_eq!(
        data,
        vec![
            ms(1010),
            ms(1010) + rto,
            ms(1010) + rto + rto.saturating_mul(2)
        ]
    );
}

#[test]
fn client_stops_data_timer_when_request_is_acked_2_6() {
    let mut cli = Cli::connect(ms(0), 6001, plain(100), Sysctls::default());
    cli.recv(ms(10), synack(6001, cisn(6001) + 1));
    cli.recv(ms(20), to_client(6001, ACK, 9001, cisn(6001) + 101, 0));
    cli.advance(secs(10));
    assert_eq!(cli.drain().len(), 3, "SYN, ACK, data: no retransmission");
    assert_eq!(cli.sock.data_retransmits(), 0);
}

fn tfo_client(port: u16, tfo: u32, has_cookie: bool) -> Cli {
    let s = Sysctls {
        tcp_fastopen: tfo,
        ..Sysctls::default()
    };
    let cfg = ClientConfig {
        request_bytes: 100,
        fast_open: true,
        has_cookie,
    };
    Cli::connect(ms(0), port, cfg, s)
}

#[test]
fn fast_open_syn_carries_data_only_with_cookie_or_tfo_client_no_cookie_2_6() {
    let mut cli = tfo_client(6001, TFO_CLIENT_ENABLE | TFO_CLIENT_NO_COOKIE, false);
    assert_eq!(cli.drain(), vec![(ms(0), SYN, 100)]);
    let cli = tfo_client(6002, TFO_CLIENT_ENABLE, true);
    let (_, p) = cli.out.sent[0];
    assert_eq!((p.payload_len, p.fast_open), (100, true));
    let mut plain_syn = tfo_client(6003, TFO_CLIENT_ENABLE, false);
    assert_eq!(plain_syn.drain(), vec![(ms(0), SYN, 0)]);
}

#[test]
fn fast_open_synack_acking_data_completes_send_without_data_segment_2_6() {
    let mut cli = tfo_client(6001, TFO_CLIENT_ENABLE | TFO_CLIENT_NO_COOKIE, false);
    cli.recv(ms(10), synack(6001, cisn(6001) + 101));
    cli.advance(secs(10));
    let (_, ack) = *cli.out.sent.last().unwrap();
    assert_eq!((ack.seq, ack.ack), (cisn(6001) + 101, 9001));
    assert_eq!(cli.drain(), vec![(ms(0), SYN, 100), (ms(10), ACK, 0)]);
}

#[test]
fn fast_open_rst_acking_syn_data_is_econnrefused_2_6() {
    // The server's RST|ACK to a SYN with 100 bytes acknowledges seq + 101
    // (tcp_v4_send_reset); it is within (snd_una, snd_nxt].
    let mut cli = tfo_client(6001, TFO_CLIENT_ENABLE | TFO_CLIENT_NO_COOKIE, false);
    cli.recv(ms(10), to_client(6001, RSTACK, 0, cisn(6001) + 101, 0));
    assert_eq!(cli.out.outcomes, vec![(ms(10), ClientOutcome::Refused)]);
}

#[test]
fn fast_open_synack_acking_data_after_syn_retransmission_is_accepted_2_6() {
    // The SYN with data reached the server (a SynRecv child) but its SYN-ACK
    // was lost; the retransmitted SYN draws a SYN-ACK that still
    // acknowledges the data (ack = isn + 101 <= snd_nxt).
    let mut cli = tfo_client(6001, TFO_CLIENT_ENABLE | TFO_CLIENT_NO_COOKIE, false);
    cli.advance(secs(1));
    cli.recv(ms(1010), synack(6001, cisn(6001) + 101));
    assert_eq!(cli.sock.state(), ClientState::Established);
    cli.advance(secs(100));
    assert_eq!(
        cli.drain(),
        vec![(ms(0), SYN, 100), (secs(1), SYN, 0), (ms(1010), ACK, 0)],
        "the data was acknowledged: nothing to retransmit"
    );
}
