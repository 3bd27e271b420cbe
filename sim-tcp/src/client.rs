//! The minimal Linux client of §2.6: connect(), SYN retransmission with
//! linear timeouts and the `tcp_model_timeout` time bound, the final ACK,
//! the request with its tail loss probe and RTO, RST validation (RFC 5961),
//! the application's give-up deadline, and the terminal outcomes.

mod close;

use crate::metrics::TcpMetrics;
use crate::rtt::{
    rtt_us, tcp_model_timeout, timed_out, ts_now, ts_rtt_us, RttEstimator, DATA_RTO_BASE,
};
use crate::server::{tcp_oow_rate_limited, TCP_ORPHAN_RETRIES, TCP_TIMEOUT_INIT, TIMER_HORIZON};
use crate::timewait::{TimeWaitTable, TwKey};
use crate::{ClientRstCause, Counters, Sysctls, TFO_CLIENT_ENABLE, TFO_CLIENT_NO_COOKIE};
use serde::{Deserialize, Serialize};
use sim_core::{
    Jiffies, Packet, SimDuration, SimTime, TcpFlags, Timer, TimerArm, TimerFire, TimerModel,
};
use std::net::SocketAddr;

/// `TCP_TIMEOUT_FALLBACK` (§3): the first data RTO when the handshake gave
/// no RTT sample and the metrics cache has none (§2.1).
pub const TCP_TIMEOUT_FALLBACK: SimDuration = SimDuration::from_secs(3);
/// `TCP_TIMEOUT_MIN`: 2 jiffies, the SYN retransmission delay after a
/// SYN-ACK that acknowledged something never sent.
const TCP_TIMEOUT_MIN: Jiffies = Jiffies(2);
const WINDOW: u16 = 65_535;

/// What the client's application does on the connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientConfig {
    /// Bytes of the request, written right after connect() (0 = none).
    pub request_bytes: u32,
    /// Try Fast Open (`TCP_FASTOPEN_CONNECT` / `MSG_FASTOPEN`): the request
    /// rides in the SYN when the client holds a cookie or `tcp_fastopen` has
    /// `TFO_CLIENT_NO_COOKIE`.
    pub fast_open: bool,
    /// The client holds a Fast Open cookie for this server.
    pub has_cookie: bool,
    /// Give up when the handshake has not completed this long after
    /// connect() (a connect timeout, as load generators and HTTP clients
    /// set one). Measured by the application's own clock, not the timer
    /// wheel (an `epoll_wait`/`poll` timeout runs on a high-resolution timer).
    pub connect_timeout: Option<SimDuration>,
    /// Give up when the response has not arrived this long after connect()
    /// (a whole-request timeout).
    pub request_timeout: Option<SimDuration>,
}

/// Terminal outcome of a connection attempt (§2.6).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientOutcome {
    /// The response arrived.
    Completed,
    /// RST in `SynSent`: ECONNREFUSED.
    Refused,
    /// RST after establishment: ECONNRESET.
    Reset,
    /// SYN or data retransmissions exhausted: ETIMEDOUT.
    TimedOut,
    /// The application gave up at its deadline ([`ClientConfig`]) and
    /// closed the socket.
    Abandoned,
    /// The server closed the connection (FIN) without a response: read()
    /// returned 0 (EOF), e.g. its worker exited after reading the request
    /// (§5.10). An HTTP client reports an empty reply.
    Eof,
}

/// Client socket state (§2.6).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// SYN sent, waiting for the SYN-ACK.
    SynSent,
    /// Handshake done; request sent or being retransmitted; waiting for the response.
    Established,
    /// The application closed the established socket at its deadline (FIN
    /// sent, outcome already [`ClientOutcome::Abandoned`]); the orphan
    /// lingers in FIN-WAIT until the peer closes, data arrives (answered
    /// with an RST, `TCPAbortOnData`) or `tcp_fin_timeout` passes.
    Orphan,
    /// The response and the server's FIN arrived (outcome reported); the
    /// application closed: our FIN is out, waiting for its ACK (LAST_ACK,
    /// retransmitted on the loss probe and RTO like data).
    LastAck(ClientOutcome),
    /// The response arrived without a FIN (HTTP keep-alive; outcome
    /// reported) and the application closed first: our FIN is out
    /// (FIN_WAIT1, then FIN_WAIT2 once acknowledged); the server's FIN
    /// moves the socket to TIME_WAIT on the client's host.
    FinWait(ClientOutcome),
    /// Terminal: the socket can be freed.
    Done(ClientOutcome),
}

/// Where a client's effects go.
pub trait ClientOutput {
    /// Send `pkt` now; `rst` tags an RST with its cause.
    fn transmit(&mut self, pkt: Packet, rst: Option<ClientRstCause>);
    /// Call [`ClientSocket::on_timer`] at `at`.
    fn set_timer(&mut self, at: SimTime);
    /// The connection reached a terminal outcome at `now`.
    fn outcome(&mut self, outcome: ClientOutcome);
    /// The socket entered TIME_WAIT as `k` of its host's table (None: past
    /// `tcp_max_tw_buckets`); `arm` is when the host's table must expire
    /// sockets, if it had no call pending.
    fn time_wait(&mut self, k: Option<TwKey>, arm: Option<SimTime>);
}

/// The client host's namespace state a client socket reads and updates:
/// sysctls, timer granularity, the TCP metrics cache and the counters of
/// the host's client sockets.
pub struct ClientEnv<'a> {
    /// The namespace's sysctls.
    pub sysctls: &'a Sysctls,
    /// The host's timer granularity.
    pub timers: TimerModel,
    /// The namespace's `tcp_metrics` (shared with a server stack on the same host).
    pub metrics: &'a mut TcpMetrics,
    /// Counters of the host's client sockets.
    pub counters: &'a mut Counters,
    /// The namespace's TIME_WAIT sockets (of connections the client closed first).
    pub timewait: &'a mut TimeWaitTable,
}

/// What the pending retransmission timer (`icsk_pending`) will do.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Pending {
    /// `ICSK_TIME_RETRANS`: SYN or data RTO.
    Retransmit,
    /// `ICSK_TIME_LOSS_PROBE`: the tail loss probe.
    LossProbe,
    /// The orphan's `tcp_fin_timeout`.
    FinTimeout,
}

/// A client socket (§2.6).
#[derive(Clone, Debug)]
pub struct ClientSocket {
    local: SocketAddr,
    remote: SocketAddr,
    state: ClientState,
    isn: u32,
    /// First unacknowledged sequence number.
    snd_una: u32,
    snd_nxt: u32,
    rcv_nxt: u32,
    request_bytes: u32,
    /// The timestamp to echo (`ts_recent`).
    ts_recent: u32,
    data_in_syn: bool,
    syn_fast_open: bool,
    /// Timestamps offered in the SYN, then agreed by the SYN-ACK.
    ts_ok: bool,
    /// The request was retransmitted (by a probe or an RTO): Karn.
    data_rexmitted: bool,
    /// A loss probe is outstanding (`tlp_high_seq`).
    probe_sent: bool,
    /// SYN retransmissions (`icsk_retransmits` and `total_rto` in SYN-SENT).
    syn_retransmits: u8,
    /// Data RTO retransmissions.
    data_retransmits: u8,
    /// `icsk_backoff`.
    backoff: u8,
    /// `icsk_rto`.
    rto: SimDuration,
    est: RttEstimator,
    timer: Timer,
    pending: Option<(SimTime, Pending)>,
    /// The application's deadlines (absolute; `SimTime::MAX` = none).
    connect_deadline: SimTime,
    request_deadline: SimTime,
    /// `last_oow_ack_time`: the challenge-ACK rate limit.
    last_oow_ack: Option<SimTime>,
    started_at: SimTime,
    /// When the last SYN was sent (in SYN-SENT), then when the request was
    /// first sent: the send time of the segment whose ACK samples the RTT.
    sent_at: SimTime,
    /// When the handshake completed (`SimTime::MAX` = not yet).
    established_at: SimTime,
}

impl ClientSocket {
    /// connect(): sends the SYN (carrying the request with Fast Open) and
    /// starts the SYN timer at `now + 1 s` (through the host's timer model).
    pub fn connect(
        now: SimTime,
        local: SocketAddr,
        remote: SocketAddr,
        isn: u32,
        cfg: &ClientConfig,
        env: &mut ClientEnv<'_>,
        out: &mut impl ClientOutput,
    ) -> Self {
        let tfo = env.sysctls.tcp_fastopen;
        let data_in_syn = cfg.fast_open
            && cfg.request_bytes > 0
            && tfo & TFO_CLIENT_ENABLE != 0
            && (cfg.has_cookie || tfo & TFO_CLIENT_NO_COOKIE != 0);
        let rto = env.timers.quantize(TCP_TIMEOUT_INIT);
        let mut s = ClientSocket {
            local,
            remote,
            state: ClientState::SynSent,
            isn,
            snd_una: isn,
            snd_nxt: isn.wrapping_add(1),
            rcv_nxt: 0,
            request_bytes: cfg.request_bytes,
            ts_recent: 0,
            data_in_syn,
            syn_fast_open: data_in_syn && cfg.has_cookie,
            ts_ok: env.sysctls.timestamps(),
            data_rexmitted: false,
            probe_sent: false,
            syn_retransmits: 0,
            data_retransmits: 0,
            backoff: 0,
            rto,
            est: RttEstimator::default(),
            timer: Timer::new(),
            pending: Some((env.timers.fire_at(now, rto), Pending::Retransmit)),
            connect_deadline: cfg
                .connect_timeout
                .map_or(SimTime::MAX, |d| now.saturating_add(d)),
            request_deadline: cfg
                .request_timeout
                .map_or(SimTime::MAX, |d| now.saturating_add(d)),
            last_oow_ack: None,
            started_at: now,
            sent_at: now,
            established_at: SimTime::MAX,
        };
        env.counters.TcpActiveOpens += 1;
        let payload = if data_in_syn { cfg.request_bytes } else { 0 };
        s.send_syn(now, payload, out);
        s.reschedule(now, out);
        s
    }

    /// The connection's 4-tuple, from the client's side.
    pub fn tuple(&self) -> sim_core::FourTuple {
        sim_core::FourTuple {
            local: self.local,
            remote: self.remote,
        }
    }

    /// Current state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Whether the socket is gone and can be freed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, ClientState::Done(_))
    }

    /// When connect() was called.
    pub fn started_at(&self) -> SimTime {
        self.started_at
    }

    /// When the handshake completed at the client.
    pub fn established_at(&self) -> Option<SimTime> {
        (self.established_at != SimTime::MAX).then_some(self.established_at)
    }

    /// Number of SYN retransmissions so far.
    pub fn syn_retransmits(&self) -> u8 {
        self.syn_retransmits
    }

    /// Number of data RTO retransmissions so far (loss probes not included).
    pub fn data_retransmits(&self) -> u8 {
        self.data_retransmits
    }

    /// The current retransmission timeout (`icsk_rto`).
    pub fn rto(&self) -> SimDuration {
        self.rto
    }

    /// The smoothed RTT, if the connection has measured one.
    pub fn srtt(&self) -> Option<SimDuration> {
        self.est.srtt()
    }

    /// Whether both ends agreed on the timestamp option.
    pub fn timestamps(&self) -> bool {
        self.ts_ok && self.state != ClientState::SynSent
    }

    fn seg(&self, now: SimTime, flags: TcpFlags, seq: u32, payload_len: u32) -> Packet {
        let (tsval, tsecr) = if self.ts_ok {
            (ts_now(now), self.ts_recent)
        } else {
            (0, 0)
        };
        Packet {
            src: self.local,
            dst: self.remote,
            flags,
            seq,
            ack: if flags.contains(TcpFlags::ACK) {
                self.rcv_nxt
            } else {
                0
            },
            payload_len,
            fast_open: false,
            window: WINDOW,
            tsval,
            tsecr,
            tag: 0,
        }
    }

    fn send_syn(&mut self, now: SimTime, payload: u32, out: &mut impl ClientOutput) {
        let mut p = self.seg(now, TcpFlags::SYN, self.isn, payload);
        p.fast_open = payload > 0 && self.syn_fast_open;
        self.sent_at = now;
        out.transmit(p, None);
    }

    fn send_data(&mut self, now: SimTime, out: &mut impl ClientOutput) {
        let p = self.seg(
            now,
            TcpFlags::ACK | TcpFlags::PSH,
            self.snd_una,
            self.request_bytes,
        );
        out.transmit(p, None);
    }

    /// The application's deadline in the current state.
    fn app_deadline(&self) -> Option<SimTime> {
        match self.state {
            ClientState::SynSent => {
                let d = self.connect_deadline.min(self.request_deadline);
                (d != SimTime::MAX).then_some(d)
            }
            ClientState::Established => {
                (self.request_deadline != SimTime::MAX).then_some(self.request_deadline)
            }
            ClientState::Orphan
            | ClientState::LastAck(_)
            | ClientState::FinWait(_)
            | ClientState::Done(_) => None,
        }
    }

    /// Arms the socket's one queue timer at the earlier of the kernel's
    /// pending timer and the application's deadline.
    fn reschedule(&mut self, now: SimTime, out: &mut impl ClientOutput) {
        let kernel = self.pending.map(|(at, _)| at);
        let next = match (kernel, self.app_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match next {
            Some(at) => {
                if let TimerArm::Push(at) = self.timer.arm_with_horizon(at, now, TIMER_HORIZON) {
                    out.set_timer(at);
                }
            }
            None => self.timer.cancel(),
        }
    }

    fn finish(&mut self, outcome: ClientOutcome, out: &mut impl ClientOutput) {
        self.state = ClientState::Done(outcome);
        self.pending = None;
        self.timer.cancel();
        out.outcome(outcome);
    }

    /// One RTT sample (`tcp_ack_update_rtt`): the RTO follows it and the
    /// backoff is cleared.
    fn rtt_sample(&mut self, m_us: u32, env: &ClientEnv<'_>) {
        self.est.sample(m_us, self.snd_una, self.snd_nxt);
        self.rto = self.est.rto(&env.timers, env.sysctls.rto_max());
        self.backoff = 0;
    }

    /// `tcp_send_challenge_ack` (RFC 5961), rate-limited per socket by
    /// `tcp_invalid_ratelimit`. The per-namespace limit
    /// (`tcp_challenge_ack_limit`) is off by default since Linux 6.0 and
    /// not modelled.
    fn challenge_ack(
        &mut self,
        now: SimTime,
        env: &mut ClientEnv<'_>,
        out: &mut impl ClientOutput,
    ) {
        if tcp_oow_rate_limited(&mut self.last_oow_ack, now) {
            env.counters.TcpExtTCPACKSkippedChallenge += 1;
            return;
        }
        env.counters.TcpExtTCPChallengeACK += 1;
        out.transmit(self.seg(now, TcpFlags::ACK, self.snd_nxt, 0), None);
    }

    /// RST validation in a synchronized state (`tcp_validate_incoming`,
    /// RFC 5961 3.2): an RST is accepted only at exactly `rcv_nxt`; one
    /// elsewhere in the window draws a challenge ACK; others are dropped.
    /// Returns whether the RST resets the connection.
    fn rst_acceptable(
        &mut self,
        now: SimTime,
        pkt: &Packet,
        env: &mut ClientEnv<'_>,
        out: &mut impl ClientOutput,
    ) -> bool {
        if pkt.seq == self.rcv_nxt {
            return true;
        }
        let offset = pkt.seq.wrapping_sub(self.rcv_nxt);
        if offset <= u32::from(WINDOW) {
            self.challenge_ack(now, env, out);
        }
        false
    }

    /// A segment from the server arrives.
    pub fn on_segment(
        &mut self,
        now: SimTime,
        pkt: &Packet,
        env: &mut ClientEnv<'_>,
        out: &mut impl ClientOutput,
    ) {
        match self.state {
            ClientState::SynSent => self.syn_sent_segment(now, pkt, env, out),
            ClientState::Established => self.established_segment(now, pkt, env, out),
            ClientState::Orphan => self.orphan_segment(now, pkt, env, out),
            ClientState::LastAck(_) | ClientState::FinWait(_) => {
                self.closing_segment(now, pkt, env, out)
            }
            ClientState::Done(_) => {}
        }
        if !self.is_closed() {
            self.reschedule(now, out);
        }
    }

    /// `tcp_rcv_synsent_state_process`.
    fn syn_sent_segment(
        &mut self,
        now: SimTime,
        pkt: &Packet,
        env: &mut ClientEnv<'_>,
        out: &mut impl ClientOutput,
    ) {
        let flags = pkt.flags;
        if !flags.contains(TcpFlags::ACK) {
            // An RST without ACK is dropped; a SYN without ACK would be a
            // simultaneous open (not modelled).
            return;
        }
        // The ACK must acknowledge our SYN: ack in (snd_una, snd_nxt], where
        // snd_nxt covers Fast Open data sent in the first SYN. The server's
        // RST|ACK to a SYN with data acknowledges the data too.
        let syn_end = self.isn.wrapping_add(1).wrapping_add(if self.data_in_syn {
            self.request_bytes
        } else {
            0
        });
        let acceptable =
            seq_after_eq(pkt.ack, self.isn.wrapping_add(1)) && seq_after_eq(syn_end, pkt.ack);
        if !acceptable {
            if flags.contains(TcpFlags::RST) {
                return;
            }
            // "Previous FIN/ACK or RST/ACK might be ignored": retry the SYN
            // soon, then reset the segment (`reset_and_undo`).
            if self.syn_retransmits == 0 {
                let at = env
                    .timers
                    .fire_at(now, env.timers.jiffies_to_duration(TCP_TIMEOUT_MIN));
                self.pending = Some((at, Pending::Retransmit));
            }
            env.counters.TcpOutRsts += 1;
            out.transmit(reset_for(pkt), Some(ClientRstCause::SynSentBadAck));
            return;
        }
        if flags.contains(TcpFlags::RST) {
            self.finish(ClientOutcome::Refused, out);
            return;
        }
        if !flags.contains(TcpFlags::SYN) {
            return;
        }
        let syn_data_acked = self.data_in_syn
            && pkt.ack == self.isn.wrapping_add(1).wrapping_add(self.request_bytes);
        self.state = ClientState::Established;
        self.established_at = now;
        self.rcv_nxt = pkt.seq.wrapping_add(1);
        self.snd_una = pkt.ack;
        self.snd_nxt = pkt.ack;
        self.ts_ok = self.ts_ok && pkt.tsval != 0;
        if self.ts_ok {
            self.ts_recent = pkt.tsval;
        }
        // RTT from the handshake: the SYN's own timing when it was not
        // retransmitted (Karn), else the timestamp echo (§2.1 tcp_timestamps).
        if self.syn_retransmits == 0 {
            self.rtt_sample(rtt_us(now, self.sent_at), env);
        } else if self.ts_ok && pkt.tsecr != 0 {
            self.rtt_sample(ts_rtt_us(now, pkt.tsecr), env);
        }
        // tcp_init_transfer -> tcp_init_metrics: the cached RTT, or the 3 s
        // fallback with neither a sample nor a cache entry (§2.1).
        self.rto = env.metrics.init_rto(
            now,
            self.local.ip(),
            self.remote.ip(),
            &self.est,
            self.rto,
            &env.timers,
        );
        self.backoff = 0;
        self.pending = None;
        if syn_data_acked || self.request_bytes == 0 {
            out.transmit(self.seg(now, TcpFlags::ACK, self.snd_nxt, 0), None);
            return;
        }
        // The final ACK, then the request (the application writes it as
        // soon as connect() returns).
        out.transmit(self.seg(now, TcpFlags::ACK, self.snd_una, 0), None);
        self.snd_nxt = self.snd_una.wrapping_add(self.request_bytes);
        self.sent_at = now;
        self.send_data(now, out);
        self.schedule_data_timer(now, env);
    }

    /// After new data is sent: the tail loss probe
    /// (`tcp_schedule_loss_probe`: 2·srtt + 200 ms, no later than the RTO),
    /// or the RTO when probes are off or the connection is in loss recovery.
    fn schedule_data_timer(&mut self, now: SimTime, env: &ClientEnv<'_>) {
        if env.sysctls.loss_probes() && self.data_retransmits == 0 && !self.probe_sent {
            let pto = self.est.probe_timeout(&env.timers).min(self.rto);
            self.pending = Some((env.timers.fire_at(now, pto), Pending::LossProbe));
        } else {
            self.pending = Some((env.timers.fire_at(now, self.rto), Pending::Retransmit));
        }
    }

    fn established_segment(
        &mut self,
        now: SimTime,
        pkt: &Packet,
        env: &mut ClientEnv<'_>,
        out: &mut impl ClientOutput,
    ) {
        let flags = pkt.flags;
        if flags.contains(TcpFlags::RST) {
            if self.rst_acceptable(now, pkt, env, out) {
                self.finish(ClientOutcome::Reset, out);
            }
            return;
        }
        if flags.contains(TcpFlags::SYN) {
            // A retransmitted SYN-ACK in a synchronized state: RFC 5961 4.2
            // challenge ACK (`syn_challenge`), which is the duplicate ACK
            // §2.6 and §5.4 step 6 rely on.
            env.counters.TcpExtTCPSYNChallenge += 1;
            self.challenge_ack(now, env, out);
            return;
        }
        // The request is acknowledged.
        self.ack_all_sent(now, pkt, env);
        if self.ts_ok && pkt.tsval != 0 {
            self.ts_recent = pkt.tsval;
        }
        if (pkt.payload_len > 0 || flags.contains(TcpFlags::FIN)) && pkt.seq == self.rcv_nxt {
            // The response (with the server's FIN, or alone under HTTP
            // keep-alive), or the server's bare FIN.
            self.rcv_nxt = self.rcv_nxt.wrapping_add(pkt.payload_len);
            if flags.contains(TcpFlags::FIN) {
                self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            }
            let outcome = if pkt.payload_len > 0 {
                ClientOutcome::Completed
            } else {
                // A bare FIN (EOF: the server's application closed without
                // answering, §5.10).
                ClientOutcome::Eof
            };
            // The application has its answer and closes: our FIN carries
            // the ACK; LAST_ACK after the server's FIN, else FIN_WAIT1.
            self.snd_una = self.snd_nxt;
            out.transmit(
                self.seg(now, TcpFlags::ACK | TcpFlags::FIN, self.snd_nxt, 0),
                None,
            );
            self.snd_nxt = self.snd_nxt.wrapping_add(1);
            self.sent_at = now;
            self.data_rexmitted = false;
            self.probe_sent = false;
            self.data_retransmits = 0;
            self.state = if flags.contains(TcpFlags::FIN) {
                ClientState::LastAck(outcome)
            } else {
                ClientState::FinWait(outcome)
            };
            self.schedule_data_timer(now, env);
            out.outcome(outcome);
        }
    }

    /// An ACK of everything sent (the request, or our FIN): an RTT sample
    /// unless it was retransmitted (then only through the timestamp echo),
    /// and the retransmission timer stops. Returns whether it acked anything.
    fn ack_all_sent(&mut self, now: SimTime, pkt: &Packet, env: &ClientEnv<'_>) -> bool {
        if !pkt.flags.contains(TcpFlags::ACK)
            || !seq_after_eq(pkt.ack, self.snd_nxt)
            || self.snd_una == self.snd_nxt
        {
            return false;
        }
        if !self.data_rexmitted {
            self.rtt_sample(rtt_us(now, self.sent_at), env);
        } else if self.ts_ok && pkt.tsecr != 0 {
            self.rtt_sample(ts_rtt_us(now, pkt.tsecr), env);
        }
        self.snd_una = self.snd_nxt;
        self.pending = None;
        true
    }

    /// The client's timer fires: the kernel's retransmission timer (SYN,
    /// loss probe, data RTO, orphan timeout) and the application's deadline.
    pub fn on_timer(&mut self, now: SimTime, env: &mut ClientEnv<'_>, out: &mut impl ClientOutput) {
        match self.timer.on_event(now) {
            TimerFire::Stale => return,
            TimerFire::Rearm(at) => {
                out.set_timer(at);
                return;
            }
            TimerFire::Fire => {}
        }
        if let Some((at, what)) = self.pending {
            if at <= now {
                self.pending = None;
                match what {
                    Pending::Retransmit => self.retransmit_timer(now, env, out),
                    Pending::LossProbe => self.loss_probe(now, env, out),
                    Pending::FinTimeout => self.close_quietly(),
                }
            }
        }
        if self.app_deadline().is_some_and(|d| d <= now) {
            self.abandon(now, out, env);
        }
        if !self.is_closed() {
            self.reschedule(now, out);
        }
    }

    /// `tcp_retransmit_timer`: SYN retransmission (§2.6) or data RTO.
    fn retransmit_timer(
        &mut self,
        now: SimTime,
        env: &mut ClientEnv<'_>,
        out: &mut impl ClientOutput,
    ) {
        let sys = env.sysctls;
        match self.state {
            ClientState::SynSent => {
                env.counters.TcpExtTCPTimeouts += 1;
                // tcp_write_timeout: the retry budget R + L, or the time
                // bound of R alone, whichever comes first.
                let r = u32::from(sys.tcp_syn_retries);
                let budget = r + u32::from(sys.tcp_syn_linear_timeouts);
                let bound = tcp_model_timeout(r, TCP_TIMEOUT_INIT, sys.rto_max());
                if u32::from(self.syn_retransmits) >= budget
                    || (self.syn_retransmits > 0 && timed_out(now, self.started_at, bound))
                {
                    self.finish(ClientOutcome::TimedOut, out);
                    return;
                }
                self.syn_retransmits += 1;
                env.counters.TcpExtTCPSynRetrans += 1;
                env.counters.TcpRetransSegs += 1;
                // A retransmitted SYN carries no data (Fast Open falls back),
                // but the data sent in the first SYN stays below snd_nxt: a
                // SYN-ACK (or RST) that acknowledges it is still acceptable,
                // so `data_in_syn` is kept.
                self.send_syn(now, 0, out);
                // Linear timeouts: the interval doubles only once
                // `total_rto` exceeds tcp_syn_linear_timeouts.
                if self.syn_retransmits > sys.tcp_syn_linear_timeouts {
                    self.backoff = self.backoff.saturating_add(1);
                    self.rto = self.rto.saturating_mul(2).min(sys.rto_max());
                }
                self.pending = Some((env.timers.rearm_at(now, self.rto), Pending::Retransmit));
            }
            ClientState::Established => {
                if self.snd_una == self.snd_nxt {
                    return;
                }
                env.counters.TcpExtTCPTimeouts += 1;
                let bound =
                    tcp_model_timeout(u32::from(sys.tcp_retries2), DATA_RTO_BASE, sys.rto_max());
                if self.data_retransmits > 0 && timed_out(now, self.sent_at, bound) {
                    // tcp_write_err: ETIMEDOUT, no RST.
                    self.finish(ClientOutcome::TimedOut, out);
                    return;
                }
                self.data_retransmits = self.data_retransmits.saturating_add(1);
                self.data_rexmitted = true;
                env.counters.TcpRetransSegs += 1;
                self.send_data(now, out);
                self.backoff = self.backoff.saturating_add(1);
                self.rto = self.rto.saturating_mul(2).min(sys.rto_max());
                self.pending = Some((env.timers.rearm_at(now, self.rto), Pending::Retransmit));
            }
            ClientState::LastAck(_) | ClientState::FinWait(_) => {
                if self.snd_una == self.snd_nxt {
                    return;
                }
                env.counters.TcpExtTCPTimeouts += 1;
                // An orphan gives up after `tcp_orphan_retries` worth of
                // time (`tcp_write_err`, no RST).
                let bound = tcp_model_timeout(TCP_ORPHAN_RETRIES, DATA_RTO_BASE, sys.rto_max());
                if self.data_retransmits > 0 && timed_out(now, self.sent_at, bound) {
                    self.close_quietly();
                    return;
                }
                self.data_retransmits = self.data_retransmits.saturating_add(1);
                self.data_rexmitted = true;
                env.counters.TcpRetransSegs += 1;
                self.send_last(now, out);
                self.backoff = self.backoff.saturating_add(1);
                self.rto = self.rto.saturating_mul(2).min(sys.rto_max());
                self.pending = Some((env.timers.rearm_at(now, self.rto), Pending::Retransmit));
            }
            ClientState::Orphan | ClientState::Done(_) => {}
        }
    }

    /// `tcp_send_loss_probe`: retransmit the last segment (the request) and
    /// re-arm the RTO from now (§2.1 tcp_early_retrans).
    fn loss_probe(&mut self, now: SimTime, env: &mut ClientEnv<'_>, out: &mut impl ClientOutput) {
        let closing = matches!(
            self.state,
            ClientState::LastAck(_) | ClientState::FinWait(_)
        );
        if !(closing || self.state == ClientState::Established) || self.snd_una == self.snd_nxt {
            return;
        }
        env.counters.TcpExtTCPLossProbes += 1;
        env.counters.TcpRetransSegs += 1;
        self.probe_sent = true;
        self.data_rexmitted = true;
        self.send_last(now, out);
        self.pending = Some((env.timers.rearm_at(now, self.rto), Pending::Retransmit));
    }
}

/// `after_eq(a, b)` in sequence space.
fn seq_after_eq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// `tcp_v4_send_reset` for a segment that has no socket or that reset its
/// socket: with ACK, seq = the segment's ack; else RST|ACK acknowledging it.
fn reset_for(pkt: &Packet) -> Packet {
    let (flags, seq, ack) = if pkt.flags.contains(TcpFlags::ACK) {
        (TcpFlags::RST, pkt.ack, 0)
    } else {
        let mut len = pkt.payload_len;
        if pkt.flags.contains(TcpFlags::SYN) {
            len += 1;
        }
        if pkt.flags.contains(TcpFlags::FIN) {
            len += 1;
        }
        (TcpFlags::RST | TcpFlags::ACK, 0, pkt.seq.wrapping_add(len))
    };
    Packet {
        src: pkt.dst,
        dst: pkt.src,
        flags,
        seq,
        ack,
        payload_len: 0,
        fast_open: false,
        window: 0,
        tsval: 0,
        tsecr: 0,
        tag: 0,
    }
}

/// The client host's answer to a server segment that matches no client
/// socket (nor a TIME_WAIT one): an RST is never answered; anything else
/// gets an RST (`tcp_v4_send_reset`: e.g. a SYN-ACK reaching a client that
/// gave up or timed out), counted in `counters` (`TcpOutRsts`).
pub fn closed_port_reply(
    pkt: &Packet,
    counters: &mut Counters,
) -> Option<(Packet, Option<ClientRstCause>)> {
    if pkt.flags.contains(TcpFlags::RST) {
        return None;
    }
    counters.TcpOutRsts += 1;
    Some((reset_for(pkt), Some(ClientRstCause::NoSocket)))
}
