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
fn client_syn_retransmits_at_1_2_3_4_5_7_11_19_35_67s_then_etimedout_at_131s_2_6() {
    // §2.6, defaults (tcp_syn_retries 6, tcp_syn_linear_timeouts 4), nominal
    // times (exact timers): five 1 s intervals, then doubling; the retry
    // budget of 10 retransmissions ends it at 131 s.
    let t0 = SimTime(987_654_321);
    let mut cli = Cli::connect(t0, 6001, plain(100), Sysctls::default());
    cli.advance(secs(1000));
    let at = |s: u64| t0 + SimDuration::from_secs(s);
    let expect: Vec<_> = [0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67]
        .into_iter()
        .map(|s| (at(s), SYN, 0))
        .collect();
    assert_eq!(cli.drain(), expect);
    assert_eq!(cli.out.outcomes, vec![(at(131), ClientOutcome::TimedOut)]);
    assert_eq!(cli.sock.syn_retransmits(), 10);
    // Each timer expiry counts TCPTimeouts (the final one too), each
    // retransmitted SYN TCPSynRetrans and TcpRetransSegs.
    assert_eq!(cli.counters.TcpExtTCPTimeouts, 11);
    assert_eq!(cli.counters.TcpExtTCPSynRetrans, 10);
    assert_eq!(cli.counters.TcpRetransSegs, 10);
    assert_eq!(cli.counters.TcpActiveOpens, 1);
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

/// Times of the data segments sent since the last drain.
fn data_times(cli: &mut Cli) -> Vec<SimTime> {
    cli.drain()
        .into_iter()
        .filter(|x| x.2 > 0)
        .map(|x| x.0)
        .collect()
}

#[test]
fn client_data_loss_probe_then_rto_rtt_plus_max_2rtt_200ms_doubling_2_1_2_6() {
    // RTT 10 ms: RTO = 10 + max(20, 200) = 210 ms; the probe at
    // min(2·10 + 200, 210) = 210 ms after the data, then the RTO from the
    // probe: nominal PTO + RTO·(2^k − 1) (§2.1 tcp_early_retrans;
    // docs/linux-semantics/tail-loss-probe.md measures 0.228, 0.456, 0.928
    // at RTT 20 ms).
    let mut cli = Cli::connect(ms(0), 6001, plain(100), Sysctls::default());
    cli.recv(ms(10), synack(6001, cisn(6001) + 1));
    cli.advance(ms(1800));
    assert_eq!(
        cli.drain(),
        vec![
            (ms(0), SYN, 0),
            (ms(10), ACK, 0),
            (ms(10), ACK | PSH, 100),
            (ms(220), ACK | PSH, 100),
            (ms(430), ACK | PSH, 100),
            (ms(850), ACK | PSH, 100),
            (ms(1690), ACK | PSH, 100),
        ]
    );
    assert_eq!(cli.counters.TcpExtTCPLossProbes, 1);
    assert_eq!(cli.counters.TcpExtTCPTimeouts, 3);
    assert_eq!(cli.sock.data_retransmits(), 3);
    // Without the probe (tcp_early_retrans=0): RTO·(2^k − 1).
    let s = sysctls(&[("tcp_early_retrans", 0)]);
    let mut cli = Cli::connect(ms(0), 6001, plain(100), s);
    cli.recv(ms(10), synack(6001, cisn(6001) + 1));
    cli.advance(ms(1500));
    assert_eq!(
        data_times(&mut cli),
        vec![ms(10), ms(220), ms(640), ms(1480)]
    );
    assert_eq!(cli.counters.TcpExtTCPLossProbes, 0);
    // RTT 150 ms: RTO = 150 + 300 = 450 ms; the probe (2·150 + 200 = 500)
    // is capped at the RTO.
    let mut cli = Cli::connect(ms(0), 6002, plain(100), Sysctls::default());
    cli.recv(ms(150), synack(6002, cisn(6002) + 1));
    cli.advance(ms(1500));
    assert_eq!(data_times(&mut cli), vec![ms(150), ms(600), ms(1050)]);
}

#[test]
fn client_data_rto_is_3s_after_retransmitted_syn_without_timestamps_2_1() {
    // §2.1: no sample (Karn, timestamps off) and no cached RTT: the 3 s
    // fallback; the probe without srtt comes at TCP_TIMEOUT_INIT (1 s)
    // and the RTO is re-armed from it: 0, ~1.0, ~4.1, ~10.3 s measured
    // (docs/linux-semantics/first-rto-after-syn-retransmission.md).
    let s = sysctls(&[("tcp_timestamps", 0)]);
    let mut cli = Cli::connect(ms(0), 6001, plain(100), s);
    cli.advance(ms(1000)); // SYN retransmitted at 1 s
    cli.recv(ms(1010), synack(6001, cisn(6001) + 1));
    assert_eq!(cli.sock.rto(), TCP_TIMEOUT_FALLBACK);
    assert_eq!(cli.sock.srtt(), None);
    cli.advance(secs(11));
    assert_eq!(data_times(&mut cli), vec![ms(1010), ms(2010), ms(5010)]);
    // Without the probe: the RTO at 3 s, then 6 s.
    let s = sysctls(&[("tcp_timestamps", 0), ("tcp_early_retrans", 0)]);
    let mut cli = Cli::connect(ms(0), 6001, plain(100), s);
    cli.advance(ms(1000));
    cli.recv(ms(1010), synack(6001, cisn(6001) + 1));
    cli.advance(secs(11));
    assert_eq!(data_times(&mut cli), vec![ms(1010), ms(4010), ms(10010)]);
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
        ..ClientConfig::default()
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
