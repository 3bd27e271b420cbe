//! Request sockets (`NEW_SYN_RECV`, §2.4), made by `tcp_conn_request`
//! (§5.2, `conn_request.rs`): the SYN-ACK timer `reqsk_timer_handler`
//! (§5.3), and `tcp_check_req` for the segments that reach a request
//! (§5.4), with migration at the timer and at the final ACK.

use super::*;

/// A request socket (`struct request_sock`).
pub(super) struct Request {
    pub(super) tuple: FourTuple,
    pub(super) listener: ListenerId,
    pub(super) hash: u32,
    pub(super) snd_isn: u32,
    pub(super) rcv_isn: u32,
    pub(super) num_timeout: u8,
    pub(super) acked: bool,
    pub(super) timer: Timer,
    pub(super) last_oow_ack: Option<SimTime>,
    /// When the first SYN-ACK was sent (`snt_synack`).
    pub(super) snt_synack: SimTime,
    /// SYN-ACK retransmissions, by the timer or for a duplicate SYN
    /// (`num_retrans`).
    pub(super) num_retrans: u8,
    /// The SYN's timestamp, echoed in every SYN-ACK (`ts_recent`); 0 when
    /// the timestamp option is not in use on this connection.
    pub(super) ts_recent: u32,
    pub(super) migrated: bool,
}

impl<H: ReuseportHooks> ServerStack<H> {
    /// A SYN-ACK for request `req`, echoing the SYN's timestamp.
    pub(super) fn send_synack(&mut self, now: SimTime, req: ReqKey, out: &mut impl ServerOutput) {
        let r = &self.requests[req];
        let mut pkt = segment(
            &r.tuple,
            TcpFlags::SYN | TcpFlags::ACK,
            r.snd_isn,
            r.rcv_isn.wrapping_add(1),
            0,
        );
        if r.ts_recent != 0 {
            pkt.tsval = ts_now(now);
            pkt.tsecr = r.ts_recent;
        }
        out.transmit(pkt, None);
    }

    /// `inet_rtx_syn_ack`: a retransmitted SYN-ACK (timer or duplicate SYN).
    pub(super) fn rtx_synack(&mut self, now: SimTime, req: ReqKey, out: &mut impl ServerOutput) {
        self.counters.TcpExtTCPSynRetrans += 1;
        self.counters.TcpRetransSegs += 1;
        let r = &mut self.requests[req];
        r.num_retrans = r.num_retrans.saturating_add(1);
        self.send_synack(now, req, out);
    }

    /// §5.3 `reqsk_timer_handler`.
    pub(super) fn reqsk_timer_handler(
        &mut self,
        now: SimTime,
        r: ReqKey,
        out: &mut impl ServerOutput,
    ) {
        let (l, hash, num_timeout, tuple) = {
            let req = &self.requests[r];
            (req.listener, req.hash, req.num_timeout, req.tuple)
        };
        let mut owner = l;
        let mut migrated_to = None;
        if !self.listeners[l.index()].is_listening() {
            let migrate_req = self.sysctls.tcp_migrate_req == 1;
            let m = MigratingSock::Request {
                hash,
                len: 0,
                tuple,
            };
            match self
                .hooks
                .migrate_target(&self.listeners, l, m, migrate_req)
            {
                // `reqsk_timer_handler` does not look at the target's state; a
                // target that is not listening is caught by the hashdance later.
                MigrateOutcome::Target(t)
                    if self.inject_bug != Some(MigrationPath::SynackTimer) =>
                {
                    // The clone is counted on the target, with no fullness check.
                    let target = &mut self.listeners[t.index()];
                    target.syn_qlen += 1;
                    if num_timeout == 0 {
                        target.syn_young += 1;
                    }
                    target.note_queues();
                    owner = t;
                    migrated_to = Some(t);
                }
                other => {
                    let reason = match other {
                        MigrateOutcome::Fail(reason) => Some(reason),
                        // Injected bug (test-only): a found target is dropped uncounted.
                        MigrateOutcome::Target(_)
                            if self.inject_bug == Some(MigrationPath::SynackTimer) =>
                        {
                            None
                        }
                        MigrateOutcome::Target(_) | MigrateOutcome::Detached => None,
                    };
                    if let Some(reason) = reason {
                        self.migration_failed(MigrationPath::SynackTimer, l, reason, out);
                    }
                    out.notify(ServerEvent::Dropped {
                        cause: DropCause::RequestTimerNoTarget,
                    });
                    self.drop_request(r);
                    return;
                }
            }
        }
        let max_retries = self.synack_max_retries(owner);
        let o = &self.listeners[owner.index()];
        self.counters.TcpExtTCPTimeouts += 1;
        // `syn_ack_recalc`: with TCP_DEFER_ACCEPT an `acked` request lives
        // until the defer period is over and gets no SYN-ACK before its
        // last timeout (defer_accept.txt: one SYN-ACK at 7.1 s for 5 s).
        let defer = o.options.defer_accept;
        let acked = self.requests[r].acked;
        let (expire, resend) = if defer == 0 {
            (num_timeout >= max_retries, true)
        } else {
            (
                num_timeout >= max_retries && (!acked || num_timeout >= defer),
                !acked || num_timeout + 1 >= defer,
            )
        };
        if expire {
            if let Some(t) = migrated_to {
                self.migration_failed(
                    MigrationPath::SynackTimer,
                    l,
                    MigrateFailure::RequestExpired,
                    out,
                );
                let target = &mut self.listeners[t.index()];
                target.syn_qlen -= 1;
                if num_timeout == 0 {
                    target.syn_young -= 1;
                }
            }
            out.notify(ServerEvent::Dropped {
                cause: DropCause::RequestExpired,
            });
            // `drop:` unlinks the old request with `sk_listener`, which is the
            // target after a migration (6.13+, §5.3): the target is
            // decremented for it too and the old listener never is.
            self.drop_request_counted_on(r, owner);
            return;
        }
        // Retransmit the SYN-ACK from the owner and re-arm: the interval is
        // capped at TCP_RTO_MAX, not tcp_rto_max_ms (§2.1, §3), and goes
        // through the timer wheel (§3.1).
        if resend {
            self.rtx_synack(now, r, out);
        }
        if num_timeout == 0 {
            self.listeners[owner.index()].syn_young -= 1;
        }
        let req = &mut self.requests[r];
        req.num_timeout += 1;
        let timeout = rto_for(TCP_TIMEOUT_INIT, req.num_timeout);
        rearm_timer(
            &mut req.timer,
            &self.timers,
            now,
            timeout,
            ServerTimer::Req(r),
            out,
        );
        if let Some(t) = migrated_to {
            // The clone replaces the old request in ehash; the old listener's
            // counters drop the old request (`reqsk_queue_removed`).
            let first = !req.migrated;
            req.migrated = true;
            req.listener = t;
            let old = &mut self.listeners[l.index()];
            old.syn_qlen -= 1;
            if num_timeout == 0 {
                old.syn_young -= 1;
            }
            old.req_refs -= 1;
            self.listeners[t.index()].req_refs += 1;
            self.counters.TcpExtTCPMigrateReqSuccess += 1;
            out.notify(ServerEvent::Migrated {
                path: MigrationPath::SynackTimer,
                from: l,
                to: t,
                first,
            });
            self.maybe_destroy_listener(l);
        }
    }

    /// The SYN-ACK retries a request of listener `owner` gets
    /// (`TCP_SYNCNT`, else `tcp_synack_retries`), fewer under SYN-queue
    /// pressure: `reqsk_timer_handler`'s pruning of old requests.
    fn synack_max_retries(&self, owner: ListenerId) -> u8 {
        let o = &self.listeners[owner.index()];
        let mut max_retries = if o.options.syn_retries != 0 {
            o.options.syn_retries
        } else {
            self.sysctls.tcp_synack_retries
        };
        // `(qlen << 1) > max(8U, backlog)` compares as unsigned in C.
        let qlen = o.syn_qlen;
        if (qlen.wrapping_shl(1) as u32) > o.backlog.max(8) {
            let mut young = o.syn_young.wrapping_shl(1);
            while max_retries > 2 {
                if qlen < young {
                    break;
                }
                max_retries -= 1;
                young = young.wrapping_shl(1);
            }
        }
        max_retries
    }

    /// §5.4: a segment for request `r`.
    pub(super) fn request_segment(
        &mut self,
        now: SimTime,
        r: ReqKey,
        pkt: &Packet,
        out: &mut impl ServerOutput,
    ) {
        let (l, hash, tuple) = {
            let req = &self.requests[r];
            (req.listener, req.hash, req.tuple)
        };
        let mut s = l;
        if !self.listeners[l.index()].is_listening() {
            let migrate_req = self.sysctls.tcp_migrate_req == 1;
            let m = MigratingSock::Request {
                hash,
                len: TCP_HEADER_LEN + pkt.payload_len,
                tuple,
            };
            match self
                .hooks
                .migrate_target(&self.listeners, l, m, migrate_req)
            {
                // Injected bug (test-only): a found target falls through to the
                // no-target branch below, uncounted.
                MigrateOutcome::Target(t) if self.inject_bug != Some(MigrationPath::FinalAck) => {
                    s = t
                }
                other => {
                    if let MigrateOutcome::Fail(reason) = other {
                        self.migration_failed(MigrationPath::FinalAck, l, reason, out);
                    }
                    // Drop the request and look the segment up again from scratch.
                    self.drop_request(r);
                    self.listener_segment(now, tuple, pkt, RstCause::ClosedListenerRequest, out);
                    return;
                }
            }
        }
        self.check_req(now, r, s, pkt, out);
    }

    /// `tcp_check_req` (§5.4 steps 1–7) with `s` the listener that handles it.
    fn check_req(
        &mut self,
        now: SimTime,
        r: ReqKey,
        s: ListenerId,
        pkt: &Packet,
        out: &mut impl ServerOutput,
    ) {
        let flags = pkt.flags;
        let q = &self.requests[r];
        let (l, snd_isn, rcv_isn, num_timeout) = (q.listener, q.snd_isn, q.rcv_isn, q.num_timeout);
        let has_ack = flags.contains(TcpFlags::ACK);
        // Step 1: a retransmitted SYN with the original ISN.
        if flags.contains(TcpFlags::SYN)
            && !has_ack
            && !flags.contains(TcpFlags::RST)
            && pkt.seq == rcv_isn
        {
            self.req_duplicate_syn(now, r, num_timeout, out);
            return;
        }
        // Step 2: an ACK of the wrong sequence is a listener segment: RST,
        // except that an RST is never answered (`tcp_v4_send_reset` returns
        // early for `th->rst`, §5.5).
        if has_ack && pkt.ack != snd_isn.wrapping_add(1) {
            if flags.contains(TcpFlags::RST) {
                out.notify(ServerEvent::Dropped {
                    cause: DropCause::RstNotAnswered,
                });
                return;
            }
            self.send_rst(rst_for(pkt), RstCause::BadAck, out);
            return;
        }
        // Step 3: out of window (`tcp_in_window`; PAWS is not modelled): an
        // ACK in reply, rate-limited, unless the segment is an RST; then drop.
        // E.g. a late RST of an earlier connection on this 4-tuple.
        let rcv_nxt = rcv_isn.wrapping_add(1);
        if !in_window(
            pkt.seq,
            end_seq(pkt),
            rcv_nxt,
            rcv_nxt.wrapping_add(u32::from(WINDOW)),
        ) {
            self.req_out_of_window(now, r, pkt, out);
            return;
        }
        // Step 4: RST, or a SYN in the window.
        if flags.contains(TcpFlags::RST) || flags.contains(TcpFlags::SYN) {
            if !flags.contains(TcpFlags::RST) {
                self.send_rst(rst_for(pkt), RstCause::SynInWindow, out);
            } else {
                out.notify(ServerEvent::Dropped {
                    cause: DropCause::RequestReset,
                });
            }
            self.counters.TcpExtEmbryonicRsts += 1;
            // `embryonic_reset:` drops the request through S, the listener
            // that handled the segment (the target after a migration).
            self.drop_request_counted_on(r, s);
            return;
        }
        // Step 5.
        if !has_ack {
            out.notify(ServerEvent::Dropped {
                cause: DropCause::NoAckFlag,
            });
            return;
        }
        // TCP_DEFER_ACCEPT of S: a bare ACK (`end_seq == rcv_isn + 1`)
        // within the defer period only marks the request `acked` (§5.3;
        // defer_accept.txt: TCPDeferAcceptDrop 1 for the first bare ACK).
        let defer = self.listeners[s.index()].options.defer_accept;
        if self.requests[r].num_timeout < defer
            && pkt.payload_len == 0
            && !pkt.flags.contains(TcpFlags::FIN)
        {
            self.requests[r].acked = true;
            self.counters.TcpExtTCPDeferAcceptDrop += 1;
            out.notify(ServerEvent::Dropped {
                cause: DropCause::DeferAcceptBareAck,
            });
            return;
        }
        // Step 6: the accept queue of S is full.
        if self.listeners[s.index()].accept_queue_is_full() {
            self.final_ack_queue_full(r, s, l, pkt, out);
            return;
        }
        self.complete_hashdance(now, r, s, pkt, out);
    }

    /// §5.4 step 1: a retransmitted SYN with the original ISN: the SYN-ACK
    /// again (rate-limited by `tcp_invalid_ratelimit`) and the timer
    /// pushed back (`mod_timer_pending`).
    fn req_duplicate_syn(
        &mut self,
        now: SimTime,
        r: ReqKey,
        num_timeout: u8,
        out: &mut impl ServerOutput,
    ) {
        let req = &mut self.requests[r];
        if tcp_oow_rate_limited(&mut req.last_oow_ack, now) {
            out.notify(ServerEvent::Dropped {
                cause: DropCause::DuplicateSynRateLimited,
            });
            return;
        }
        // `mod_timer_pending(jiffies + min(TCP_TIMEOUT_INIT << num_timeout,
        // TCP_RTO_MAX))`.
        let timeout = rto_for(TCP_TIMEOUT_INIT, num_timeout);
        arm_timer(
            &mut req.timer,
            &self.timers,
            now,
            timeout,
            ServerTimer::Req(r),
            out,
        );
        self.rtx_synack(now, r, out);
    }

    /// §5.4 step 3: a segment out of the request's window: an ACK in reply,
    /// rate-limited, unless it is an RST; then drop.
    fn req_out_of_window(
        &mut self,
        now: SimTime,
        r: ReqKey,
        pkt: &Packet,
        out: &mut impl ServerOutput,
    ) {
        let cause = if pkt.flags.contains(TcpFlags::RST) {
            DropCause::RstOutOfWindow
        } else {
            let req = &mut self.requests[r];
            if !tcp_oow_rate_limited(&mut req.last_oow_ack, now) {
                let rcv_nxt = req.rcv_isn.wrapping_add(1);
                let snd_nxt = req.snd_isn.wrapping_add(1);
                let mut ack = segment(&req.tuple, TcpFlags::ACK, snd_nxt, rcv_nxt, 0);
                if req.ts_recent != 0 {
                    ack.tsval = ts_now(now);
                    ack.tsecr = req.ts_recent;
                }
                out.transmit(ack, None);
            }
            DropCause::OutOfWindow
        };
        out.notify(ServerEvent::Dropped { cause });
    }

    /// §5.4 step 6: the final ACK finds the accept queue of `s` full (`l`
    /// is the request's own listener): `acked` and dropped, or with
    /// `tcp_abort_on_overflow` an RST (§7 G).
    fn final_ack_queue_full(
        &mut self,
        r: ReqKey,
        s: ListenerId,
        l: ListenerId,
        pkt: &Packet,
        out: &mut impl ServerOutput,
    ) {
        {
            self.counters.TcpExtListenOverflows += 1;
            self.counters.TcpExtListenDrops += 1;
            if s != l {
                // The counter is bumped without a failure reason of §4.3: the
                // target was found, its queue was full.
                self.counters.TcpExtTCPMigrateReqFailure += 1;
                out.notify(ServerEvent::MigrationFailed {
                    path: MigrationPath::FinalAck,
                    from: l,
                    reason: MigrateFailure::TargetAcceptQueueFull,
                });
            }
            if self.sysctls.tcp_abort_on_overflow == 0 {
                self.requests[r].acked = true;
                out.notify(ServerEvent::Dropped {
                    cause: DropCause::FinalAckAcceptQueueFull,
                });
            } else {
                let cause = if s != l {
                    RstCause::MigratedAcceptQueueOverflow
                } else {
                    RstCause::AcceptQueueOverflow
                };
                self.send_rst(rst_for(pkt), cause, out);
                self.counters.TcpExtEmbryonicRsts += 1;
                // `embryonic_reset:` again: counted on S (see step 4).
                self.drop_request_counted_on(r, s);
            }
        }
    }

    /// §5.4 step 7: the child replaces the request
    /// (`inet_csk_complete_hashdance`: `new_child` overwrites the request's
    /// ehash entry in place) and joins the accept queue of `s`, migrating
    /// if `s` is not the request's own listener.
    fn complete_hashdance(
        &mut self,
        now: SimTime,
        r: ReqKey,
        s: ListenerId,
        pkt: &Packet,
        out: &mut impl ServerOutput,
    ) {
        let q = &self.requests[r];
        let (l, snd_isn, rcv_isn, tuple, hash, migrated) = (
            q.listener, q.snd_isn, q.rcv_isn, q.tuple, q.hash, q.migrated,
        );
        let (snt_synack, num_retrans, ts_recent) = (q.snt_synack, q.num_retrans, q.ts_recent);
        debug_assert_eq!(self.ehash.get(&tuple), Some(&Sock::Req(r)));
        self.release_request(r, l, false);
        let c = self.new_child(
            tuple,
            hash,
            ChildState::Established,
            snd_isn,
            rcv_isn.wrapping_add(1),
            migrated || s != l,
        );
        // `tcp_synack_rtt_meas`: the first SYN-ACK's timing unless a SYN-ACK
        // was retransmitted (Karn), else the timestamp echo.
        let seq_rtt = (num_retrans == 0).then_some(snt_synack);
        self.child_established(now, c, seq_rtt, ts_recent, pkt);
        if !self.listeners[s.index()].is_listening() {
            // `inet_csk_reqsk_queue_add` refuses a listener that is not
            // listening: `inet_child_forget` resets the new child (§5.4
            // step 7 → §5.7 forget rule).
            if s != l {
                self.migration_failed(
                    MigrationPath::FinalAck,
                    l,
                    MigrateFailure::TargetNotListening,
                    out,
                );
            }
            self.forget_child(now, c, RstCause::ForgottenChild, out);
            return;
        }
        if s != l {
            self.counters.TcpExtTCPMigrateReqSuccess += 1;
            out.notify(ServerEvent::Migrated {
                path: MigrationPath::FinalAck,
                from: l,
                to: s,
                first: !migrated,
            });
        }
        self.enqueue_child(c, s, out);
        self.child_data(now, c, pkt, out);
    }
}
