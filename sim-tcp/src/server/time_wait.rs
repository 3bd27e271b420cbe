//! The server's side of TIME_WAIT: the child that closed first enters it
//! when the client's FIN arrives (`tcp_fin` in FIN_WAIT2 → `tcp_time_wait`),
//! a segment for its 4-tuple meets it in ehash (`tcp_v4_rcv` →
//! `tcp_timewait_state_process`), and its timer frees it 60 s later.
//! Measured: `tools/kernel-probes/results/time_wait.txt` (A, B1–B5, C).

use super::child::Child;
use super::{ServerEvent, ServerOutput, ServerStack, ServerTimer, Sock};
use crate::hooks::{ReuseportHooks, Selection};
use crate::timewait::{TwKey, TwVerdict};
use crate::{ChildKey, RstCause};
use sim_core::{Packet, SimTime, TcpFlags};

impl<H: ReuseportHooks> ServerStack<H> {
    /// The client's FIN reached child `c` after the server's FIN was
    /// acknowledged: ACK it (`tcp_send_ack`), save the connection's RTT in
    /// the metrics cache (`tcp_update_metrics`) and enter TIME_WAIT
    /// (`tcp_time_wait`), or, past `tcp_max_tw_buckets`, just free the
    /// socket (`TCPTimeWaitOverflow`).
    pub(super) fn tcp_time_wait(&mut self, now: SimTime, c: ChildKey, out: &mut impl ServerOutput) {
        let child = self.detach_child(c);
        let mut ack = super::segment(&child.tuple, TcpFlags::ACK, child.snd_nxt, child.rcv_nxt, 0);
        child.stamp(now, &mut ack);
        out.transmit(ack, None);
        self.update_metrics(now, &child);
        let (k, arm) = self.timewait.enter(
            now,
            child.tuple,
            child.snd_nxt,
            child.rcv_nxt,
            child.ts_ok.then_some(child.ts_recent),
            &self.timers,
            &self.sysctls,
            &mut self.counters,
        );
        // The TIME_WAIT socket takes over the child's ehash entry
        // (`inet_twsk_hashdance_schedule`).
        match k {
            Some(k) => self.ehash.insert(child.tuple, Sock::TimeWait(k)),
            None => self.ehash.remove(&child.tuple),
        };
        if let Some(at) = arm {
            out.set_timer(at, ServerTimer::TimeWait);
        }
        out.notify(ServerEvent::ChildFinished { child: c });
    }

    /// `tcp_update_metrics` as a closed connection's child goes.
    pub(super) fn update_metrics(&mut self, now: SimTime, child: &Child) {
        self.metrics.update(
            now,
            child.tuple.local.ip(),
            child.tuple.remote.ip(),
            &child.est,
            child.backoff > 0,
            &self.sysctls,
        );
    }

    /// A segment for TIME_WAIT socket `k` (`tcp_v4_rcv`, `TCP_TW_*`). A new
    /// SYN that a listener takes replaces it (its request uses the ISN
    /// `tw_snd_nxt + 65537` and skips §5.2 steps 1 and 3); with no
    /// listener it is answered with an ACK instead.
    pub(super) fn timewait_segment(
        &mut self,
        now: SimTime,
        k: TwKey,
        pkt: &Packet,
        out: &mut impl ServerOutput,
    ) {
        let tuple = pkt.tuple_at_receiver();
        let (verdict, arm) =
            self.timewait
                .state_process(now, k, pkt, &self.timers, &mut self.counters);
        if let Some(at) = arm {
            out.set_timer(at, ServerTimer::TimeWait);
        }
        match verdict {
            TwVerdict::Syn { isn } => {
                let hash = self.flow.hash(&tuple);
                let sel = self
                    .hooks
                    .select(&self.listeners, &tuple, hash, pkt.payload_len > 0);
                if let Selection::Listener(_) = sel {
                    self.timewait.take_over(k);
                    self.ehash.remove(&tuple);
                    let ctx = RstCause::NoRequest;
                    self.selected_segment(now, tuple, hash, sel, pkt, ctx, Some(isn), out);
                } else {
                    out.transmit(self.timewait.ack(now, k), None);
                }
            }
            TwVerdict::Ack(ack) => out.transmit(ack, None),
            TwVerdict::Killed => {
                self.ehash.remove(&tuple);
            }
            TwVerdict::Consumed => {}
        }
    }

    /// `tw_timer_handler` for the TIME_WAIT sockets due now.
    pub(super) fn timewait_expire(&mut self, now: SimTime, out: &mut impl ServerOutput) {
        let ehash = &mut self.ehash;
        let next = self.timewait.expire(now, &mut self.counters, |tuple| {
            ehash.remove(tuple);
        });
        if let Some(at) = next {
            out.set_timer(at, ServerTimer::TimeWait);
        }
    }
}
