//! The client socket after its application closed (§5.12, §2.6): LAST_ACK
//! after the server's FIN, FIN_WAIT after a keep-alive response, the
//! orphan of a give-up deadline, and how each leaves (TIME_WAIT, the
//! orphan timeouts, an RST).

use super::*;

impl ClientSocket {
    /// A socket whose outcome was already reported is gone (an orphan, or
    /// a socket closing after its response).
    pub(super) fn close_quietly(&mut self) {
        let outcome = match self.state {
            ClientState::LastAck(o) | ClientState::FinWait(o) | ClientState::Done(o) => o,
            _ => ClientOutcome::Abandoned,
        };
        self.state = ClientState::Done(outcome);
        self.pending = None;
        self.timer.cancel();
    }

    /// `tcp_update_metrics` as the connection closes (LAST_ACK, TIME_WAIT).
    pub(super) fn update_metrics(&self, now: SimTime, env: &mut ClientEnv<'_>) {
        env.metrics.update(
            now,
            self.local.ip(),
            self.remote.ip(),
            &self.est,
            self.backoff > 0,
            env.sysctls,
        );
    }

    /// An RST or SYN for a socket its application closed: an acceptable RST
    /// frees it, a SYN draws a challenge ACK (RFC 5961). Returns whether
    /// the segment was one of them.
    pub(super) fn closed_rst_or_syn(
        &mut self,
        now: SimTime,
        pkt: &Packet,
        env: &mut ClientEnv<'_>,
        out: &mut impl ClientOutput,
    ) -> bool {
        if pkt.flags.contains(TcpFlags::RST) {
            if self.rst_acceptable(now, pkt, env, out) {
                self.close_quietly();
            }
            return true;
        }
        if pkt.flags.contains(TcpFlags::SYN) {
            env.counters.TcpExtTCPSYNChallenge += 1;
            self.challenge_ack(now, env, out);
            return true;
        }
        false
    }

    /// After the application closed with its answer: LAST_ACK (the
    /// server's FIN came first) or FIN_WAIT1/2 (keep-alive, we closed
    /// first), `tcp_rcv_state_process`.
    pub(super) fn closing_segment(
        &mut self,
        now: SimTime,
        pkt: &Packet,
        env: &mut ClientEnv<'_>,
        out: &mut impl ClientOutput,
    ) {
        if self.closed_rst_or_syn(now, pkt, env, out) {
            return;
        }
        let flags = pkt.flags;
        if self.ts_ok && pkt.tsval != 0 {
            self.ts_recent = pkt.tsval;
        }
        if self.ack_all_sent(now, pkt, env) {
            // Our FIN is acknowledged.
            if let ClientState::LastAck(_) = self.state {
                self.update_metrics(now, env);
                self.close_quietly();
                return;
            }
            // FIN_WAIT2 of an orphan: `tcp_fin_timeout` for the server's FIN.
            let linger = SimDuration::from_secs(u64::from(env.sysctls.tcp_fin_timeout));
            self.pending = Some((env.timers.fire_at(now, linger), Pending::FinTimeout));
        }
        let new_fin = flags.contains(TcpFlags::FIN)
            && pkt.seq == self.rcv_nxt
            && pkt.payload_len == 0
            && matches!(self.state, ClientState::FinWait(_));
        if new_fin {
            // `tcp_fin` in FIN_WAIT2 (the model's server answers our FIN
            // with its own FIN|ACK, so CLOSING is not reached): ACK it and
            // enter TIME_WAIT (`tcp_time_wait` → `tcp_update_metrics`).
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            out.transmit(self.seg(now, TcpFlags::ACK, self.snd_nxt, 0), None);
            self.update_metrics(now, env);
            let (k, arm) = env.timewait.enter(
                now,
                self.tuple(),
                self.snd_nxt,
                self.rcv_nxt,
                self.ts_ok.then_some(self.ts_recent),
                &env.timers,
                env.sysctls,
                env.counters,
            );
            out.time_wait(k, arm);
            self.close_quietly();
        } else if pkt.payload_len > 0 || flags.contains(TcpFlags::FIN) {
            // A retransmission of what we already have: a duplicate ACK.
            out.transmit(self.seg(now, TcpFlags::ACK, self.snd_nxt, 0), None);
        }
    }

    /// The orphan in FIN-WAIT (closed by its application at the deadline).
    pub(super) fn orphan_segment(
        &mut self,
        now: SimTime,
        pkt: &Packet,
        env: &mut ClientEnv<'_>,
        out: &mut impl ClientOutput,
    ) {
        if self.closed_rst_or_syn(now, pkt, env, out) {
            return;
        }
        let flags = pkt.flags;
        if pkt.payload_len > 0 {
            // Data for a socket the application closed: `TCPAbortOnData`,
            // `tcp_reset`, and an RST in reply (tcp_rcv_state_process step 7).
            env.counters.TcpExtTCPAbortOnData += 1;
            env.counters.TcpOutRsts += 1;
            out.transmit(reset_for(pkt), Some(ClientRstCause::AbortOnData));
            self.close_quietly();
            return;
        }
        if flags.contains(TcpFlags::FIN) && pkt.seq == self.rcv_nxt {
            // The peer closes too: ACK it and go through TIME-WAIT
            // (`tcp_time_wait` -> `tcp_update_metrics`).
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            out.transmit(self.seg(now, TcpFlags::ACK, self.snd_nxt, 0), None);
            self.update_metrics(now, env);
            self.close_quietly();
        }
    }

    /// Resends the last segment sent: the request, or our FIN after the
    /// application closed.
    pub(super) fn send_last(&mut self, now: SimTime, out: &mut impl ClientOutput) {
        match self.state {
            ClientState::LastAck(_) | ClientState::FinWait(_) => {
                let seq = self.snd_nxt.wrapping_sub(1);
                out.transmit(self.seg(now, TcpFlags::ACK | TcpFlags::FIN, seq, 0), None);
            }
            _ => self.send_data(now, out),
        }
    }

    /// The application gives up at its deadline and closes the socket as
    /// Linux's `tcp_close` does in that state: in SYN-SENT nothing is sent;
    /// once established a FIN (the model's client never holds unread data,
    /// so never the RST of `TCPAbortOnClose`). The socket lingers as an
    /// orphan; data or FIN retransmissions of the orphan are not modelled.
    pub(super) fn abandon(
        &mut self,
        now: SimTime,
        out: &mut impl ClientOutput,
        env: &ClientEnv<'_>,
    ) {
        match self.state {
            ClientState::SynSent => self.finish(ClientOutcome::Abandoned, out),
            ClientState::Established => {
                out.transmit(
                    self.seg(now, TcpFlags::ACK | TcpFlags::FIN, self.snd_nxt, 0),
                    None,
                );
                self.snd_nxt = self.snd_nxt.wrapping_add(1);
                self.state = ClientState::Orphan;
                let linger = SimDuration::from_secs(u64::from(env.sysctls.tcp_fin_timeout));
                self.pending = Some((env.timers.fire_at(now, linger), Pending::FinTimeout));
                out.outcome(ClientOutcome::Abandoned);
            }
            ClientState::Orphan
            | ClientState::LastAck(_)
            | ClientState::FinWait(_)
            | ClientState::Done(_) => {}
        }
    }
}
