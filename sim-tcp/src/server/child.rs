//! The server's child (full) sockets after the handshake (§2.5): data and
//! FIN, the response and its retransmission (tail loss probe, then RTO,
//! §2.1), RST validation (RFC 5961, `tcp_validate_incoming`), the Fast Open
//! SYN-ACK timer, and the RTT the connection leaves in the metrics cache.

use super::{
    arm_timer, end_seq, in_window, rearm_timer, rto_for, segment, ChildState, ServerEvent,
    ServerOutput, ServerStack, ServerTimer, Sock, TCP_ORPHAN_RETRIES, WINDOW,
};
use crate::cause::{DropCause, RstCause};
use crate::hooks::ReuseportHooks;
use crate::rtt::{
    rtt_us, tcp_model_timeout, timed_out, ts_now, ts_rtt_us, RttEstimator, DATA_RTO_BASE,
};
use crate::server::tcp_oow_rate_limited;
use crate::{ChildKey, ListenerId, TCP_TIMEOUT_INIT};
use sim_core::{FourTuple, Packet, SimDuration, SimTime, TcpFlags, Timer, TimerModel};

/// A child socket.
pub(super) struct Child {
    pub(super) tuple: FourTuple,
    pub(super) hash: u32,
    pub(super) state: ChildState,
    /// Owner while in an accept queue; None once accepted.
    pub(super) queued_on: Option<ListenerId>,
    pub(super) snd_isn: u32,
    pub(super) snd_nxt: u32,
    pub(super) rcv_nxt: u32,
    pub(super) request_bytes: u32,
    /// Request bytes the application has read (`copied_seq`): what
    /// `__tcp_close` finds unread decides FIN or RST (§5.10).
    pub(super) read_bytes: u32,
    pub(super) response_len: u32,
    pub(super) timer: Timer,
    /// `icsk_rto`.
    pub(super) rto: SimDuration,
    /// Retransmissions of the Fast Open SYN-ACK or of the response by the
    /// RTO (loss probes not included).
    pub(super) retransmits: u8,
    /// `icsk_backoff`.
    pub(super) backoff: u8,
    /// What the pending timer does (`icsk_pending`): probe or RTO.
    pub(super) probe_pending: bool,
    /// A loss probe was sent for the response (`tlp_high_seq`).
    pub(super) probe_sent: bool,
    /// The response was retransmitted: no RTT sample from its ACK (Karn)
    /// except through the timestamp echo.
    pub(super) data_rexmitted: bool,
    /// The client's FIN was received (for `tcp_reset_check`).
    pub(super) peer_fin: bool,
    /// Timestamps in use, and the client's timestamp to echo.
    pub(super) ts_ok: bool,
    pub(super) ts_recent: u32,
    pub(super) est: RttEstimator,
    /// When the response was first sent.
    pub(super) data_sent_at: SimTime,
    /// `last_oow_ack_time`: the challenge-ACK rate limit.
    pub(super) last_oow_ack: Option<SimTime>,
    /// `icsk_syn_retries` inherited from the listener (TCP_SYNCNT), 0 = sysctl.
    pub(super) syn_retries: u8,
    pub(super) migrated: bool,
    /// The listener whose Fast Open queue this child counts in while its
    /// handshake is pending (`tcp_rsk(req)->tfo_listener`, `rsk_listener`).
    pub(super) tfo_listener: Option<ListenerId>,
    /// Opaque application tag (0 = none), set by the driver after accept().
    pub(super) app: u64,
    /// The application answered without closing (HTTP keep-alive) and
    /// closes when it reads the client's FIN.
    pub(super) keep_alive: bool,
}

impl Child {
    /// Adds the timestamp option to an outgoing segment when in use.
    pub(super) fn stamp(&self, now: SimTime, pkt: &mut Packet) {
        if self.ts_ok {
            pkt.tsval = ts_now(now);
            pkt.tsecr = self.ts_recent;
        }
    }

    /// An ACK of everything received so far.
    fn ack(&self, now: SimTime) -> Packet {
        let mut p = segment(&self.tuple, TcpFlags::ACK, self.snd_nxt, self.rcv_nxt, 0);
        self.stamp(now, &mut p);
        p
    }

    /// The unacknowledged segment, for a probe or an RTO: the response
    /// with FIN, as first sent (a bare FIN when the application closed
    /// without writing, §5.10); under keep-alive, the response alone, then
    /// the FIN of LAST_ACK alone.
    fn response(&self, now: SimTime) -> Packet {
        let (flags, len, fin) = match self.state {
            ChildState::LastAck => (TcpFlags::ACK | TcpFlags::FIN, 0, 1),
            ChildState::FinWait => (fin_flags(self.response_len), self.response_len, 1),
            _ => (TcpFlags::ACK | TcpFlags::PSH, self.response_len, 0),
        };
        let seq = self.snd_nxt.wrapping_sub(len + fin);
        let mut p = segment(&self.tuple, flags, seq, self.rcv_nxt, len);
        self.stamp(now, &mut p);
        p
    }

    /// An ACK of everything sent (`pkt.ack == snd_nxt`) while the timer
    /// runs: the RTT sample (`tcp_ack_update_rtt`; after a retransmission
    /// only through the timestamp echo), and the timer stops.
    fn ack_sent(&mut self, now: SimTime, pkt: &Packet, timers: &TimerModel, rto_max: SimDuration) {
        if !pkt.flags.contains(TcpFlags::ACK) || pkt.ack != self.snd_nxt {
            return;
        }
        if self.timer.is_armed() {
            if !self.data_rexmitted {
                let m = rtt_us(now, self.data_sent_at);
                self.rtt_sample(m, timers, rto_max);
            } else if self.ts_ok && pkt.tsecr != 0 {
                self.rtt_sample(ts_rtt_us(now, pkt.tsecr), timers, rto_max);
            }
        }
        self.timer.cancel();
    }

    /// One RTT sample (`tcp_ack_update_rtt`): the RTO follows, backoff clears.
    fn rtt_sample(&mut self, m_us: u32, timers: &sim_core::TimerModel, rto_max: SimDuration) {
        self.est.sample(m_us, self.snd_nxt, self.snd_nxt);
        self.rto = self.est.rto(timers, rto_max);
        self.backoff = 0;
    }
}

/// How long an accepted pending Fast Open child that was reset keeps its
/// Fast Open queue slot (`reqsk_fastopen_remove`: `jiffies + 60*HZ`).
const TCP_FASTOPEN_RST_HOLD: SimDuration = SimDuration::from_secs(60);

/// The flags of the segment that carries the application's close: PSH
/// only when it carries data too.
fn fin_flags(len: u32) -> TcpFlags {
    if len > 0 {
        TcpFlags::ACK | TcpFlags::PSH | TcpFlags::FIN
    } else {
        TcpFlags::ACK | TcpFlags::FIN
    }
}

/// What the application's `close()` of an accepted child did (§5.10).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AppClose {
    /// A FIN: the receive queue was empty (`tcp_close_state` + `tcp_send_fin`).
    Fin,
    /// An RST: request bytes were unread (`TCPAbortOnClose`).
    Rst,
    /// Nothing: the application had already closed it (the response and
    /// its FIN are out), or the child is gone.
    AlreadyClosed,
}

impl<H: ReuseportHooks> ServerStack<H> {
    /// The application reads the request bytes received so far
    /// (`tcp_recvmsg`): they are no longer unread at close (§5.10).
    pub fn read_request(&mut self, c: ChildKey) {
        if let Some(child) = self.children.get_mut(c) {
            child.read_bytes = child.request_bytes;
        }
    }

    /// The application closes an accepted child without answering
    /// (`close()`, or the exit of its process; `__tcp_close`, §5.10): an
    /// RST counted as `TCPAbortOnClose` if request bytes are unread, else a
    /// FIN, after which the orphan waits for the client's FIN as after a
    /// response, and answers new data with an RST (`TCPAbortOnData`).
    /// Measured: `tools/kernel-probes/results/close_fin_vs_rst.txt`.
    pub fn close_child(
        &mut self,
        now: SimTime,
        c: ChildKey,
        out: &mut impl ServerOutput,
    ) -> AppClose {
        let Some(child) = self.children.get(c) else {
            return AppClose::AlreadyClosed;
        };
        if matches!(child.state, ChildState::FinWait | ChildState::LastAck) {
            return AppClose::AlreadyClosed;
        }
        if child.request_bytes > child.read_bytes {
            self.counters.TcpExtTCPAbortOnClose += 1;
            self.forget_child(now, c, RstCause::ApplicationAbort, out);
            return AppClose::Rst;
        }
        self.respond(now, c, 0, false, out);
        AppClose::Fin
    }

    /// `reqsk_fastopen_remove`: a pending Fast Open child stops counting in
    /// its listener's Fast Open queue (handshake done, or the child dies).
    /// An accepted child reset by the client on a listening listener holds
    /// its slot 60 s more (`rskq_rst_head`). Measured:
    /// `tools/kernel-probes/results/fastopen_queue.txt` (E2, E3a, E3b).
    pub(super) fn fastopen_remove(&mut self, now: SimTime, c: ChildKey, reset: bool) {
        let child = &mut self.children[c];
        let Some(l) = child.tfo_listener.take() else {
            return;
        };
        let accepted = child.queued_on.is_none();
        let listener = &mut self.listeners[l.index()];
        listener.fastopen_pending = listener.fastopen_pending.saturating_sub(1);
        if reset && accepted && listener.is_listening() {
            listener
                .fastopen_rst
                .push_back(now.saturating_add(TCP_FASTOPEN_RST_HOLD));
            listener.fastopen_pending += 1;
        }
    }

    /// A child's current RTO (`icsk_rto`), if it still exists.
    pub fn child_rto(&self, c: ChildKey) -> Option<SimDuration> {
        self.children.get(c).map(|ch| ch.rto)
    }

    pub(super) fn new_child(
        &mut self,
        tuple: FourTuple,
        hash: u32,
        state: ChildState,
        snd_isn: u32,
        rcv_nxt: u32,
        migrated: bool,
    ) -> ChildKey {
        let c = self.children.insert(Child {
            tuple,
            hash,
            state,
            queued_on: None,
            snd_isn,
            snd_nxt: snd_isn.wrapping_add(1),
            rcv_nxt,
            request_bytes: 0,
            read_bytes: 0,
            response_len: 0,
            timer: Timer::new(),
            rto: self.timers.quantize(TCP_TIMEOUT_INIT),
            retransmits: 0,
            backoff: 0,
            probe_pending: false,
            probe_sent: false,
            data_rexmitted: false,
            peer_fin: false,
            ts_ok: false,
            ts_recent: 0,
            est: RttEstimator::default(),
            data_sent_at: SimTime::ZERO,
            last_oow_ack: None,
            syn_retries: 0,
            migrated,
            tfo_listener: None,
            app: 0,
            keep_alive: false,
        });
        self.ehash.insert(tuple, Sock::Child(c));
        self.counters.TcpPassiveOpens += 1;
        c
    }

    /// The application writes a response of `len` bytes and closes: data with
    /// FIN (FIN_WAIT1, or LAST_ACK if the client closed first), retransmitted
    /// until the client acknowledges it. With `keep_alive` it does not
    /// close: the data goes alone and the application closes when it reads
    /// the client's FIN.
    pub fn respond(
        &mut self,
        now: SimTime,
        c: ChildKey,
        len: u32,
        keep_alive: bool,
        out: &mut impl ServerOutput,
    ) {
        let Some(child) = self.children.get_mut(c) else {
            return;
        };
        if matches!(child.state, ChildState::FinWait | ChildState::LastAck) {
            return;
        }
        child.response_len = len;
        // The application read the request before answering it.
        child.read_bytes = child.request_bytes;
        let keep_alive = keep_alive && child.state == ChildState::Established;
        let flags = if keep_alive {
            child.keep_alive = true;
            TcpFlags::ACK | TcpFlags::PSH
        } else {
            child.state = match child.state {
                ChildState::CloseWait => ChildState::LastAck,
                _ => ChildState::FinWait,
            };
            fin_flags(len)
        };
        let mut pkt = segment(&child.tuple, flags, child.snd_nxt, child.rcv_nxt, len);
        child.stamp(now, &mut pkt);
        child.snd_nxt = child.snd_nxt.wrapping_add(len + u32::from(!keep_alive));
        out.transmit(pkt, None);
        self.arm_data_timer(now, c, out);
    }

    /// After new data or a FIN is sent: the same rules as the client's
    /// request (§2.1), the tail loss probe first, then the RTO.
    fn arm_data_timer(&mut self, now: SimTime, c: ChildKey, out: &mut impl ServerOutput) {
        let child = &mut self.children[c];
        child.retransmits = 0;
        child.data_rexmitted = false;
        child.probe_sent = false;
        child.data_sent_at = now;
        let timeout = if self.sysctls.loss_probes() && !child.probe_sent {
            child.probe_pending = true;
            child.est.probe_timeout(&self.timers).min(child.rto)
        } else {
            child.probe_pending = false;
            child.rto
        };
        arm_timer(
            &mut child.timer,
            &self.timers,
            now,
            timeout,
            ServerTimer::Child(c),
            out,
        );
    }

    /// The keep-alive application closes after the client's FIN: a bare
    /// FIN|ACK, LAST_ACK.
    fn respond_fin(&mut self, now: SimTime, c: ChildKey, out: &mut impl ServerOutput) {
        let child = &mut self.children[c];
        child.state = ChildState::LastAck;
        let mut pkt = segment(
            &child.tuple,
            TcpFlags::ACK | TcpFlags::FIN,
            child.snd_nxt,
            child.rcv_nxt,
            0,
        );
        child.stamp(now, &mut pkt);
        child.snd_nxt = child.snd_nxt.wrapping_add(1);
        out.transmit(pkt, None);
        self.arm_data_timer(now, c, out);
    }

    /// Data and FIN processing of a child.
    pub(super) fn child_data(
        &mut self,
        now: SimTime,
        c: ChildKey,
        pkt: &Packet,
        out: &mut impl ServerOutput,
    ) {
        let child = &mut self.children[c];
        let mut ack_needed = false;
        let mut received = false;
        if pkt.payload_len > 0 {
            if pkt.seq == child.rcv_nxt {
                child.rcv_nxt = child.rcv_nxt.wrapping_add(pkt.payload_len);
                child.request_bytes += pkt.payload_len;
                received = true;
            }
            // New or duplicate data is acknowledged at once (quickack mode at
            // the start of a connection).
            ack_needed = true;
        }
        if pkt.flags.contains(TcpFlags::FIN)
            && child.state == ChildState::Established
            && pkt.seq.wrapping_add(pkt.payload_len) == child.rcv_nxt
        {
            child.rcv_nxt = child.rcv_nxt.wrapping_add(1);
            child.state = ChildState::CloseWait;
            child.peer_fin = true;
            if child.keep_alive {
                // The application waits in read() after its answer: it
                // reads EOF and closes at once. CLOSE_WAIT delays the ACK
                // (`tcp_fin` → `inet_csk_enter_pingpong_mode`), so it rides
                // on our FIN: LAST_ACK.
                self.respond_fin(now, c, out);
                return;
            }
            ack_needed = true;
        }
        if ack_needed {
            out.transmit(child.ack(now), None);
        }
        if received {
            out.notify(ServerEvent::RequestReceived { child: c });
        }
    }

    /// A segment for child `c` (`tcp_rcv_state_process` after the
    /// handshake, and `tcp_check_req` for a Fast Open child).
    pub(super) fn child_segment(
        &mut self,
        now: SimTime,
        c: ChildKey,
        pkt: &Packet,
        out: &mut impl ServerOutput,
    ) {
        let flags = pkt.flags;
        if flags.contains(TcpFlags::RST) {
            self.child_rst(now, c, pkt, out);
            return;
        }
        if flags.contains(TcpFlags::ACK)
            && !flags.contains(TcpFlags::SYN)
            && pkt
                .ack
                .wrapping_sub(self.children[c].snd_isn.wrapping_add(1)) as i32
                >= 0
        {
            // An ACK of the SYN-ACK ends the Fast Open handshake, also
            // after the application closed (`reqsk_fastopen_remove`).
            self.fastopen_remove(now, c, false);
        }
        let timers = self.timers;
        let rto_max = self.sysctls.rto_max();
        let child = &mut self.children[c];
        if child.ts_ok && pkt.tsval != 0 {
            child.ts_recent = pkt.tsval;
        }
        match child.state {
            ChildState::SynRecv => {
                if flags.contains(TcpFlags::SYN) {
                    // A retransmitted Fast Open SYN: resend the SYN-ACK.
                    let mut synack = segment(
                        &child.tuple,
                        TcpFlags::SYN | TcpFlags::ACK,
                        child.snd_isn,
                        child.rcv_nxt,
                        0,
                    );
                    child.stamp(now, &mut synack);
                    out.transmit(synack, None);
                    return;
                }
                if flags.contains(TcpFlags::ACK) && pkt.ack == child.snd_isn.wrapping_add(1) {
                    child.state = ChildState::Established;
                    child.timer.cancel();
                    // `tcp_synack_rtt_meas(sk, fastopen_rsk)`: the SYN-ACK's
                    // timing unless it was retransmitted, else the echo.
                    if child.retransmits == 0 {
                        let m = rtt_us(now, child.data_sent_at);
                        child.rtt_sample(m, &timers, rto_max);
                    } else if child.ts_ok && pkt.tsecr != 0 {
                        child.rtt_sample(ts_rtt_us(now, pkt.tsecr), &timers, rto_max);
                    }
                    child.retransmits = 0;
                    self.child_data(now, c, pkt, out);
                }
            }
            ChildState::Established
            | ChildState::CloseWait
            | ChildState::FinWait
            | ChildState::LastAck
                if flags.contains(TcpFlags::SYN) =>
            {
                // A SYN in a synchronized state: RFC 5961 4.2 challenge ACK.
                self.counters.TcpExtTCPSYNChallenge += 1;
                self.child_challenge_ack(now, c, out);
            }
            ChildState::Established | ChildState::CloseWait => {
                if child.keep_alive {
                    child.ack_sent(now, pkt, &timers, rto_max);
                }
                self.child_data(now, c, pkt, out)
            }
            ChildState::LastAck => {
                if flags.contains(TcpFlags::ACK) && pkt.ack == child.snd_nxt {
                    // `tcp_rcv_state_process` in LAST_ACK: `tcp_update_metrics`, `tcp_done`.
                    child.ack_sent(now, pkt, &timers, rto_max);
                    let child = self.unlink_child(c);
                    self.update_metrics(now, &child);
                    out.notify(ServerEvent::ChildFinished { child: c });
                } else if pkt.payload_len > 0 || flags.contains(TcpFlags::FIN) {
                    // A retransmitted FIN: a duplicate ACK.
                    out.transmit(child.ack(now), None);
                }
            }
            ChildState::FinWait => {
                if flags.contains(TcpFlags::ACK) && pkt.ack == child.snd_nxt {
                    child.ack_sent(now, pkt, &timers, rto_max);
                    if flags.contains(TcpFlags::FIN) && pkt.seq == child.rcv_nxt {
                        child.rcv_nxt = child.rcv_nxt.wrapping_add(pkt.payload_len + 1);
                        self.tcp_time_wait(now, c, out);
                    }
                } else if pkt.payload_len > 0 && pkt.seq == child.rcv_nxt {
                    // New data after the application closed (RCV_SHUTDOWN):
                    // `tcp_rcv_state_process` resets the orphan
                    // (`TCPAbortOnData`) and the segment gets an RST (§5.10).
                    self.counters.TcpExtTCPAbortOnData += 1;
                    self.forget_child(now, c, RstCause::AbortOnData, out);
                } else if pkt.payload_len > 0 {
                    out.transmit(child.ack(now), None);
                }
            }
        }
    }

    /// RST validation of a child (`tcp_validate_incoming`, RFC 5961 3.2):
    /// accepted only at exactly `rcv_nxt` (or `rcv_nxt - 1` after the
    /// client's FIN, `tcp_reset_check`); elsewhere in the window it draws a
    /// challenge ACK; outside it is dropped. A Fast Open child still in
    /// SYN-RECV takes any in-window RST (`tcp_check_req`).
    fn child_rst(&mut self, now: SimTime, c: ChildKey, pkt: &Packet, out: &mut impl ServerOutput) {
        let child = &self.children[c];
        let rcv_nxt = child.rcv_nxt;
        let exact = pkt.seq == rcv_nxt || (child.peer_fin && pkt.seq == rcv_nxt.wrapping_sub(1));
        let in_win = pkt.seq.wrapping_sub(rcv_nxt) <= u32::from(WINDOW);
        let accepted = match child.state {
            ChildState::SynRecv => in_window(
                pkt.seq,
                end_seq(pkt),
                rcv_nxt,
                rcv_nxt.wrapping_add(u32::from(WINDOW)),
            ),
            _ => exact,
        };
        if accepted {
            self.fastopen_remove(now, c, true);
            self.destroy_child_silently(c, out);
            return;
        }
        let cause = if in_win && child.state != ChildState::SynRecv {
            self.child_challenge_ack(now, c, out);
            DropCause::RstChallenged
        } else {
            DropCause::RstOutOfWindow
        };
        out.notify(ServerEvent::Dropped { cause });
    }

    /// `tcp_send_challenge_ack`, rate-limited per socket by
    /// `tcp_invalid_ratelimit` (the per-namespace `tcp_challenge_ack_limit`
    /// is off by default since Linux 6.0 and not modelled).
    fn child_challenge_ack(&mut self, now: SimTime, c: ChildKey, out: &mut impl ServerOutput) {
        let child = &mut self.children[c];
        if tcp_oow_rate_limited(&mut child.last_oow_ack, now) {
            self.counters.TcpExtTCPACKSkippedChallenge += 1;
            return;
        }
        self.counters.TcpExtTCPChallengeACK += 1;
        out.transmit(child.ack(now), None);
    }

    /// The child's timer: the Fast Open SYN-ACK timer
    /// (`tcp_fastopen_synack_timer`), or the response's loss probe and RTO.
    pub(super) fn child_timer(&mut self, now: SimTime, c: ChildKey, out: &mut impl ServerOutput) {
        let rto_max = self.sysctls.rto_max();
        let timers = self.timers;
        let child = &mut self.children[c];
        match child.state {
            ChildState::SynRecv => {
                // "Add one more retry for fastopen"; each expiry counts
                // TCPTimeouts (tcp_syn_ack_timeout).
                self.counters.TcpExtTCPTimeouts += 1;
                let limit = if child.syn_retries != 0 {
                    child.syn_retries
                } else {
                    self.sysctls.tcp_synack_retries.saturating_add(1)
                };
                if child.retransmits >= limit {
                    self.destroy_child_silently(c, out);
                    return;
                }
                child.retransmits += 1;
                self.counters.TcpExtTCPSynRetrans += 1;
                self.counters.TcpRetransSegs += 1;
                let mut synack = segment(
                    &child.tuple,
                    TcpFlags::SYN | TcpFlags::ACK,
                    child.snd_isn,
                    child.rcv_nxt,
                    0,
                );
                child.stamp(now, &mut synack);
                out.transmit(synack, None);
                // `req->timeout << req->num_timeout`, capped at TCP_RTO_MAX
                // (not tcp_rto_max_ms, §2.1).
                let timeout = rto_for(TCP_TIMEOUT_INIT, child.retransmits);
                rearm_timer(
                    &mut child.timer,
                    &timers,
                    now,
                    timeout,
                    ServerTimer::Child(c),
                    out,
                );
            }
            ChildState::Established | ChildState::CloseWait if !child.keep_alive => {}
            _ if child.probe_pending => {
                // `tcp_send_loss_probe`: resend the last segment, then the RTO
                // from now (§2.1 tcp_early_retrans).
                child.probe_pending = false;
                child.probe_sent = true;
                child.data_rexmitted = true;
                self.counters.TcpExtTCPLossProbes += 1;
                self.counters.TcpRetransSegs += 1;
                out.transmit(child.response(now), None);
                let rto = child.rto;
                rearm_timer(
                    &mut child.timer,
                    &timers,
                    now,
                    rto,
                    ServerTimer::Child(c),
                    out,
                );
            }
            ChildState::Established
            | ChildState::CloseWait
            | ChildState::FinWait
            | ChildState::LastAck => {
                self.counters.TcpExtTCPTimeouts += 1;
                // The application closed the child after the response: an
                // orphan gives up after `tcp_orphan_retries` worth of time.
                let bound = tcp_model_timeout(TCP_ORPHAN_RETRIES, DATA_RTO_BASE, rto_max);
                if child.retransmits > 0 && timed_out(now, child.data_sent_at, bound) {
                    // tcp_write_err: the connection dies without an RST.
                    self.destroy_child_silently(c, out);
                    return;
                }
                child.retransmits = child.retransmits.saturating_add(1);
                child.backoff = child.backoff.saturating_add(1);
                child.data_rexmitted = true;
                self.counters.TcpRetransSegs += 1;
                out.transmit(child.response(now), None);
                child.rto = child.rto.saturating_mul(2).min(rto_max);
                let rto = child.rto;
                rearm_timer(
                    &mut child.timer,
                    &timers,
                    now,
                    rto,
                    ServerTimer::Child(c),
                    out,
                );
            }
        }
    }
}
