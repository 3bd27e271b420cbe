//! §5.2 `tcp_conn_request`: a SYN that a listener takes, through its
//! admission steps (SYN queue, accept queue, syncookies, the proven-peer
//! rule), to a Fast Open child or a request socket.

use super::request::Request;
use super::*;

/// What §5.2 steps 1–3 decided for a SYN.
enum Admission {
    /// Handled: dropped, or answered with a syncookie SYN-ACK.
    Done,
    /// Goes on to Fast Open or step 4.
    Admitted,
}

impl<H: ReuseportHooks> ServerStack<H> {
    /// §5.2 `tcp_conn_request`. `tw_isn` is set for a SYN that took over a
    /// TIME_WAIT socket (§5.12): it skips steps 1 and 3 and uses that ISN.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conn_request(
        &mut self,
        now: SimTime,
        l: ListenerId,
        tuple: FourTuple,
        hash: u32,
        pkt: &Packet,
        tw_isn: Option<u32>,
        out: &mut impl ServerOutput,
    ) {
        if let Admission::Done = self.syn_admission(now, l, &tuple, pkt, tw_isn, out) {
            return;
        }
        let snd_isn = tw_isn.unwrap_or_else(|| self.flow.keyed(&tuple, u64::from(pkt.seq)));
        // Fast Open (`tcp_try_fastopen`): a child in SYN_RECV straight into
        // the accept queue, data queued (§5.7 note).
        let tfo = self.sysctls.tcp_fastopen;
        let listener = &self.listeners[l.index()];
        let fastopen = pkt.payload_len > 0
            && tfo & TFO_SERVER_ENABLE != 0
            && listener.options.fastopen_qlen > 0
            && (pkt.fast_open || tfo & TFO_SERVER_COOKIE_NOT_REQD != 0);
        // `tcp_fastopen_queue_check`: past the listener's TCP_FASTOPEN qlen
        // the SYN's data is ignored and it becomes a normal request (§5.7
        // note; fastopen_queue.txt E0).
        let fastopen = fastopen && {
            let ok = self.listeners[l.index()].fastopen_queue_check(now);
            if !ok {
                self.counters.TcpExtTCPFastOpenListenOverflow += 1;
            }
            ok
        };
        if fastopen {
            self.fastopen_child(now, l, tuple, hash, snd_isn, pkt, out);
        } else {
            self.make_request(now, l, tuple, hash, snd_isn, pkt, tw_isn.is_some(), out);
        }
    }

    /// §5.2 steps 1–3: the SYN queue (or syncookies), the accept queue,
    /// and the quarter of `tcp_max_syn_backlog` kept for proven peers.
    fn syn_admission(
        &mut self,
        now: SimTime,
        l: ListenerId,
        tuple: &FourTuple,
        pkt: &Packet,
        tw_isn: Option<u32>,
        out: &mut impl ServerOutput,
    ) -> Admission {
        let sys = &self.sysctls;
        let listener = &self.listeners[l.index()];
        // Step 1 (skipped for a SYN that replaced a TIME_WAIT socket:
        // `tcp_conn_request` with `isn` set).
        let mut want_cookie = false;
        if tw_isn.is_none() && (sys.tcp_syncookies == 2 || listener.syn_queue_is_full()) {
            if sys.tcp_syncookies != 0 {
                want_cookie = true;
                self.counters.TcpExtTCPReqQFullDoCookies += 1;
            } else {
                self.counters.TcpExtTCPReqQFullDrop += 1;
                self.counters.TcpExtListenDrops += 1;
                out.notify(ServerEvent::Dropped {
                    cause: DropCause::SynQueueFull,
                });
                return Admission::Done;
            }
        }
        // Step 2: applies even with cookies.
        if listener.accept_queue_is_full() {
            self.counters.TcpExtListenOverflows += 1;
            self.counters.TcpExtListenDrops += 1;
            out.notify(ServerEvent::Dropped {
                cause: DropCause::SynAcceptQueueFull,
            });
            return Admission::Done;
        }
        if want_cookie {
            self.send_cookie(now, l, tuple, pkt, out);
            return Admission::Done;
        }
        // Step 3: syncookies off, less than a quarter of tcp_max_syn_backlog
        // free, and the peer is not "proven": no RTT in the metrics cache
        // (`tcp_peer_is_proven`).
        if sys.tcp_syncookies == 0 && tw_isn.is_none() {
            let max = i64::from(sys.tcp_max_syn_backlog);
            if max - i64::from(listener.syn_qlen) < (max >> 2)
                && self
                    .metrics
                    .cached_rtt(now, tuple.local.ip(), tuple.remote.ip())
                    .is_none()
            {
                self.counters.TcpExtListenDrops += 1;
                out.notify(ServerEvent::Dropped {
                    cause: DropCause::SynBacklogQuarter,
                });
                return Admission::Done;
            }
        }
        Admission::Admitted
    }

    /// A syncookie SYN-ACK (`cookie_v4_init_sequence` → `tcp_synq_overflow`:
    /// only a cookie actually sent marks the overflow, not a SYN dropped at
    /// step 2).
    fn send_cookie(
        &mut self,
        now: SimTime,
        l: ListenerId,
        tuple: &FourTuple,
        pkt: &Packet,
        out: &mut impl ServerOutput,
    ) {
        self.hooks.note_synq_overflow(l, now);
        let isn = self.cookie_isn(tuple);
        self.counters.TcpExtSyncookiesSent += 1;
        let mut synack = segment(
            tuple,
            TcpFlags::SYN | TcpFlags::ACK,
            isn,
            pkt.seq.wrapping_add(1),
            0,
        );
        if pkt.tsval != 0 && self.sysctls.timestamps() {
            // `cookie_init_timestamp`: the options ride in the TSval.
            synack.tsval = ts_now(now);
            synack.tsecr = pkt.tsval;
        }
        out.transmit(synack, None);
    }

    /// `tcp_fastopen_create_child`: a child in SYN_RECV with the SYN's data,
    /// straight into the accept queue, with the Fast Open SYN-ACK timer.
    #[allow(clippy::too_many_arguments)]
    fn fastopen_child(
        &mut self,
        now: SimTime,
        l: ListenerId,
        tuple: FourTuple,
        hash: u32,
        snd_isn: u32,
        pkt: &Packet,
        out: &mut impl ServerOutput,
    ) {
        self.counters.TcpExtTCPFastOpenPassive += 1;
        let syn_retries = self.listeners[l.index()].options.syn_retries;
        let c = self.new_child(
            tuple,
            hash,
            ChildState::SynRecv,
            snd_isn,
            pkt.seq.wrapping_add(1),
            false,
        );
        let ts_ok = pkt.tsval != 0 && self.sysctls.timestamps();
        // tcp_fastopen_create_child -> tcp_init_transfer: no RTT sample
        // yet, so the metrics cache or the 3 s fallback (§2.1).
        let rto = self.metrics.init_rto(
            now,
            tuple.local.ip(),
            tuple.remote.ip(),
            &RttEstimator::default(),
            TCP_TIMEOUT_INIT,
            &self.timers,
        );
        self.listeners[l.index()].fastopen_pending += 1;
        let child = &mut self.children[c];
        child.tfo_listener = Some(l);
        child.syn_retries = syn_retries;
        child.rcv_nxt = child.rcv_nxt.wrapping_add(pkt.payload_len);
        child.request_bytes = pkt.payload_len;
        child.ts_ok = ts_ok;
        child.ts_recent = if ts_ok { pkt.tsval } else { 0 };
        child.rto = rto;
        // `snt_synack`, for the RTT sample at the final ACK.
        child.data_sent_at = now;
        let mut synack = segment(
            &tuple,
            TcpFlags::SYN | TcpFlags::ACK,
            snd_isn,
            child.rcv_nxt,
            0,
        );
        child.stamp(now, &mut synack);
        // The Fast Open SYN-ACK timer: `TCP_TIMEOUT_INIT`, capped at
        // `TCP_RTO_MAX` on each re-arm (§2.1, §3).
        arm_timer(
            &mut child.timer,
            &self.timers,
            now,
            TCP_TIMEOUT_INIT,
            ServerTimer::Child(c),
            out,
        );
        out.transmit(synack, None);
        self.enqueue_child(c, l, out);
        out.notify(ServerEvent::RequestReceived { child: c });
    }

    /// Step 4: a request socket in ehash, SYN-ACK, timer at now + 1 s.
    /// `from_tw`: the SYN took over a TIME_WAIT socket and skipped step 1.
    #[allow(clippy::too_many_arguments)]
    fn make_request(
        &mut self,
        now: SimTime,
        l: ListenerId,
        tuple: FourTuple,
        hash: u32,
        snd_isn: u32,
        pkt: &Packet,
        from_tw: bool,
        out: &mut impl ServerOutput,
    ) {
        let listener = &mut self.listeners[l.index()];
        // Step 1 checked the SYN queue: only timer migration (§5.3) may go
        // past backlog+1.
        assert!(
            from_tw || !listener.syn_queue_is_full(),
            "invariant queue_limits: listener {} SYN queue would grow to {} > backlog+1 = {} \
             through a SYN (§5.2 step 1)",
            l.0,
            listener.syn_qlen + 1,
            listener.backlog + 1
        );
        listener.syn_qlen += 1;
        listener.syn_young += 1;
        listener.req_refs += 1;
        listener.note_queues();
        let ts_recent = if pkt.tsval != 0 && self.sysctls.timestamps() {
            pkt.tsval
        } else {
            0
        };
        let r = self.requests.insert(Request {
            tuple,
            listener: l,
            hash,
            snd_isn,
            rcv_isn: pkt.seq,
            num_timeout: 0,
            acked: false,
            timer: Timer::new(),
            last_oow_ack: None,
            snt_synack: now,
            num_retrans: 0,
            ts_recent,
            migrated: false,
        });
        self.ehash.insert(tuple, Sock::Req(r));
        arm_timer(
            &mut self.requests[r].timer,
            &self.timers,
            now,
            TCP_TIMEOUT_INIT,
            ServerTimer::Req(r),
            out,
        );
        self.send_synack(now, r, out);
    }
}
