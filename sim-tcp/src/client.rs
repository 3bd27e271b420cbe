//! The minimal Linux client of §2.6: connect(), SYN retransmission, the final
//! ACK, the request, data retransmission, and the four terminal outcomes.

use crate::server::{TCP_RTO_MIN, TCP_TIMEOUT_INIT, TIMER_HORIZON};
use crate::{Sysctls, TFO_CLIENT_ENABLE, TFO_CLIENT_NO_COOKIE};
use serde::{Deserialize, Serialize};
use sim_core::{Packet, SimDuration, SimTime, TcpFlags, Timer, TimerArm, TimerFire};
use std::net::SocketAddr;

/// `TCP_TIMEOUT_FALLBACK` (§3): the data RTO when the handshake gave no RTT sample.
pub const TCP_TIMEOUT_FALLBACK: SimDuration = SimDuration::from_secs(3);
const WINDOW: u16 = 65_535;

/// What the client's application does on the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Bytes of the request, written right after connect() (0 = none).
    pub request_bytes: u32,
    /// Try Fast Open (`TCP_FASTOPEN_CONNECT` / `MSG_FASTOPEN`): the request
    /// rides in the SYN when the client holds a cookie or `tcp_fastopen` has
    /// `TFO_CLIENT_NO_COOKIE`.
    pub fast_open: bool,
    /// The client holds a Fast Open cookie for this server.
    pub has_cookie: bool,
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
}

/// Client socket state (§2.6).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// SYN sent, waiting for the SYN-ACK.
    SynSent,
    /// Handshake done; request sent or being retransmitted; waiting for the response.
    Established,
    /// Terminal.
    Done(ClientOutcome),
}

/// Where a client's effects go.
pub trait ClientOutput {
    /// Send `pkt` now.
    fn transmit(&mut self, pkt: Packet);
    /// Call [`ClientSocket::on_timer`] at `at`.
    fn set_timer(&mut self, at: SimTime);
    /// The connection reached a terminal outcome at `now`.
    fn outcome(&mut self, outcome: ClientOutcome);
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
    data_in_syn: bool,
    syn_fast_open: bool,
    syn_retransmits: u8,
    data_retransmits: u8,
    rto: SimDuration,
    timer: Timer,
    started_at: SimTime,
    syn_sent_at: SimTime,
    established_at: Option<SimTime>,
}

impl ClientSocket {
    /// connect(): sends the SYN (carrying the request with Fast Open) and
    /// starts the SYN timer at `now + 1 s`.
    pub fn connect(
        now: SimTime,
        local: SocketAddr,
        remote: SocketAddr,
        isn: u32,
        cfg: &ClientConfig,
        sysctls: &Sysctls,
        out: &mut impl ClientOutput,
    ) -> Self {
        let tfo = sysctls.tcp_fastopen;
        let data_in_syn = cfg.fast_open
            && cfg.request_bytes > 0
            && tfo & TFO_CLIENT_ENABLE != 0
            && (cfg.has_cookie || tfo & TFO_CLIENT_NO_COOKIE != 0);
        let mut s = ClientSocket {
            local,
            remote,
            state: ClientState::SynSent,
            isn,
            snd_una: isn,
            snd_nxt: isn.wrapping_add(1),
            rcv_nxt: 0,
            request_bytes: cfg.request_bytes,
            data_in_syn,
            syn_fast_open: data_in_syn && cfg.has_cookie,
            syn_retransmits: 0,
            data_retransmits: 0,
            rto: TCP_TIMEOUT_INIT,
            timer: Timer::new(),
            started_at: now,
            syn_sent_at: now,
            established_at: None,
        };
        let payload = if data_in_syn { cfg.request_bytes } else { 0 };
        s.send_syn(payload, out);
        s.arm(now, now + s.rto, out);
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

    /// When connect() was called.
    pub fn started_at(&self) -> SimTime {
        self.started_at
    }

    /// When the handshake completed at the client.
    pub fn established_at(&self) -> Option<SimTime> {
        self.established_at
    }

    /// Number of SYN retransmissions so far.
    pub fn syn_retransmits(&self) -> u8 {
        self.syn_retransmits
    }

    /// Number of data retransmissions so far.
    pub fn data_retransmits(&self) -> u8 {
        self.data_retransmits
    }

    fn seg(&self, flags: TcpFlags, seq: u32, payload_len: u32) -> Packet {
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
            tsval: 0,
            tsecr: 0,
            tag: 0,
        }
    }

    fn send_syn(&mut self, payload: u32, out: &mut impl ClientOutput) {
        let mut p = self.seg(TcpFlags::SYN, self.isn, payload);
        p.fast_open = payload > 0 && self.syn_fast_open;
        out.transmit(p);
    }

    fn send_data(&mut self, out: &mut impl ClientOutput) {
        let p = self.seg(
            TcpFlags::ACK | TcpFlags::PSH,
            self.snd_una,
            self.request_bytes,
        );
        out.transmit(p);
    }

    fn arm(&mut self, now: SimTime, at: SimTime, out: &mut impl ClientOutput) {
        if let TimerArm::Push(at) = self.timer.arm_with_horizon(at, now, TIMER_HORIZON) {
            out.set_timer(at);
        }
    }

    fn finish(&mut self, outcome: ClientOutcome, out: &mut impl ClientOutput) {
        self.state = ClientState::Done(outcome);
        self.timer.cancel();
        out.outcome(outcome);
    }

    /// A segment from the server arrives.
    pub fn on_segment(
        &mut self,
        now: SimTime,
        pkt: &Packet,
        sysctls: &Sysctls,
        out: &mut impl ClientOutput,
    ) {
        let flags = pkt.flags;
        match self.state {
            ClientState::SynSent => {
                if flags.contains(TcpFlags::RST) {
                    // Only an RST that acknowledges our SYN is acceptable in
                    // SYN-SENT: ack in (snd_una, snd_nxt], where snd_nxt
                    // covers Fast Open data sent in the first SYN
                    // (tcp_rcv_synsent_state_process). The server's RST|ACK
                    // to a SYN with data acknowledges the data too.
                    let syn_end = self.isn.wrapping_add(1).wrapping_add(if self.data_in_syn {
                        self.request_bytes
                    } else {
                        0
                    });
                    if flags.contains(TcpFlags::ACK)
                        && seq_after_eq(pkt.ack, self.isn.wrapping_add(1))
                        && seq_after_eq(syn_end, pkt.ack)
                    {
                        self.finish(ClientOutcome::Refused, out);
                    }
                    return;
                }
                if !(flags.contains(TcpFlags::SYN) && flags.contains(TcpFlags::ACK)) {
                    return;
                }
                let syn_data_acked = self.data_in_syn
                    && pkt.ack == self.isn.wrapping_add(1).wrapping_add(self.request_bytes);
                if pkt.ack != self.isn.wrapping_add(1) && !syn_data_acked {
                    return;
                }
                self.state = ClientState::Established;
                self.established_at = Some(now);
                self.rcv_nxt = pkt.seq.wrapping_add(1);
                self.snd_una = self.isn.wrapping_add(1);
                // RTO from the handshake's RTT sample (Karn: none after a
                // retransmitted SYN): srtt + max(2 * rtt, TCP_RTO_MIN), as the
                // first sample of tcp_rtt_estimator gives.
                self.rto = if self.syn_retransmits == 0 {
                    let rtt = now - self.syn_sent_at;
                    (rtt + rtt.saturating_mul(2).max(TCP_RTO_MIN)).min(sysctls.rto_max())
                } else {
                    TCP_TIMEOUT_FALLBACK
                };
                self.timer.cancel();
                if syn_data_acked {
                    self.snd_una = self.snd_una.wrapping_add(self.request_bytes);
                    self.snd_nxt = self.snd_una;
                    out.transmit(self.seg(TcpFlags::ACK, self.snd_nxt, 0));
                    return;
                }
                // The final ACK, then the request (the application writes it
                // as soon as connect() returns).
                out.transmit(self.seg(TcpFlags::ACK, self.snd_una, 0));
                if self.request_bytes > 0 {
                    self.snd_nxt = self.snd_una.wrapping_add(self.request_bytes);
                    self.send_data(out);
                    self.arm(now, now + self.rto, out);
                }
            }
            ClientState::Established => {
                if flags.contains(TcpFlags::RST) {
                    self.finish(ClientOutcome::Reset, out);
                    return;
                }
                if flags.contains(TcpFlags::SYN) {
                    // A retransmitted SYN-ACK: duplicate ACK.
                    out.transmit(self.seg(TcpFlags::ACK, self.snd_nxt, 0));
                    return;
                }
                if flags.contains(TcpFlags::ACK)
                    && seq_after_eq(pkt.ack, self.snd_nxt)
                    && self.snd_una != self.snd_nxt
                {
                    self.snd_una = self.snd_nxt;
                    self.timer.cancel();
                }
                if (pkt.payload_len > 0 || flags.contains(TcpFlags::FIN)) && pkt.seq == self.rcv_nxt
                {
                    // The response (with the server's FIN): done. Answer with
                    // ACK|FIN; our own close needs no further handshake here.
                    self.rcv_nxt = self.rcv_nxt.wrapping_add(pkt.payload_len);
                    if flags.contains(TcpFlags::FIN) {
                        self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
                    }
                    if pkt.payload_len > 0 {
                        self.snd_una = self.snd_nxt;
                        out.transmit(self.seg(TcpFlags::ACK | TcpFlags::FIN, self.snd_nxt, 0));
                        self.finish(ClientOutcome::Completed, out);
                    }
                }
            }
            ClientState::Done(_) => {}
        }
    }

    /// The client's single timer fires (SYN retransmission or data RTO).
    pub fn on_timer(&mut self, now: SimTime, sysctls: &Sysctls, out: &mut impl ClientOutput) {
        match self.timer.on_event(now) {
            TimerFire::Stale => return,
            TimerFire::Rearm(at) => {
                out.set_timer(at);
                return;
            }
            TimerFire::Fire => {}
        }
        match self.state {
            ClientState::SynSent => {
                if self.syn_retransmits >= sysctls.tcp_syn_retries {
                    self.finish(ClientOutcome::TimedOut, out);
                    return;
                }
                self.syn_retransmits += 1;
                // A retransmitted SYN carries no data (Fast Open falls back),
                // but the data sent in the first SYN stays below snd_nxt: a
                // SYN-ACK (or RST) that acknowledges it is still acceptable,
                // so `data_in_syn` is kept.
                self.syn_sent_at = now;
                self.send_syn(0, out);
                self.rto = self.rto.saturating_mul(2).min(sysctls.rto_max());
                self.arm(now, now + self.rto, out);
            }
            ClientState::Established => {
                if self.snd_una == self.snd_nxt {
                    return;
                }
                if self.data_retransmits >= sysctls.tcp_retries2 {
                    self.finish(ClientOutcome::TimedOut, out);
                    return;
                }
                self.data_retransmits += 1;
                self.send_data(out);
                self.rto = self.rto.saturating_mul(2).min(sysctls.rto_max());
                self.arm(now, now + self.rto, out);
            }
            ClientState::Done(_) => {}
        }
    }
}

/// `after_eq(a, b)` in sequence space.
fn seq_after_eq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// The client host's stateless answer to a server segment that matches no
/// client socket: the client closed after the response, so a retransmitted
/// response with FIN (its ACK|FIN was lost) is answered as from TIME_WAIT.
/// Anything else is ignored.
pub fn time_wait_reply(pkt: &Packet) -> Option<Packet> {
    if pkt.flags.contains(TcpFlags::FIN) && !pkt.flags.contains(TcpFlags::RST) {
        Some(Packet {
            src: pkt.dst,
            dst: pkt.src,
            flags: TcpFlags::ACK | TcpFlags::FIN,
            seq: pkt.ack,
            ack: pkt.seq.wrapping_add(pkt.payload_len).wrapping_add(1),
            payload_len: 0,
            fast_open: false,
            window: WINDOW,
            tsval: 0,
            tsecr: 0,
            tag: 0,
        })
    } else {
        None
    }
}
