//! The server host's TCP stack: listeners, request sockets in ehash, children,
//! and every rule of §5 that decides whether a connection survives.

mod child;
mod conn_request;
mod request;
mod time_wait;

use crate::cause::{DropCause, MigrationPath, RstCause};
use crate::hooks::{MigrateFailure, MigrateOutcome, MigratingSock, ReuseportHooks, Selection};
use crate::listener::{Listener, ListenerOptions, ListenerState};
use crate::metrics::TcpMetrics;
use crate::rtt::{rtt_us, ts_now, ts_rtt_us, RttEstimator};
use crate::timewait::{TimeWaitTable, TwKey};
use crate::{ChildKey, Counters, FlowHasher, ListenerId, ReqKey, Sysctls};
use crate::{TFO_SERVER_COOKIE_NOT_REQD, TFO_SERVER_ENABLE};
pub use child::AppClose;
use child::Child;
use request::Request;
use sim_core::{
    FourTuple, Packet, SimDuration, SimTime, TcpFlags, Timer, TimerArm, TimerFire, TimerModel,
    TupleMap,
};
use slotmap::SlotMap;
use std::net::SocketAddr;

/// How far ahead a long timer's queue entry is placed (see
/// [`sim_core::Timer::arm_with_horizon`]): request, SYN and retransmission
/// timers are nearly always cancelled within a round trip, so their stale
/// entries should not sit in the event queue for a whole timeout. The
/// entry is a check at [`sim_core::horizon_check`] (about 64 ms ahead, on a
/// 1 ms grid, so a driver can batch the checks); changes no firing time.
pub const TIMER_HORIZON: SimDuration = SimDuration::from_millis(64);

/// `TCP_TIMEOUT_INIT` (§3).
pub const TCP_TIMEOUT_INIT: SimDuration = SimDuration::from_secs(1);
/// `TCP_RTO_MIN` (§3).
pub const TCP_RTO_MIN: SimDuration = SimDuration::from_millis(200);
/// `TCP_RTO_MAX` (§3): the cap of the request (SYN-ACK) timer and of the
/// Fast Open SYN-ACK timer, which do not read `tcp_rto_max_ms` (§2.1).
pub const TCP_RTO_MAX: SimDuration = SimDuration::from_secs(120);
/// `tcp_orphan_retries` at its default 0 on a live connection: an orphan
/// (a child whose application closed it after the response) gives up after
/// the time 8 retransmissions take (`tcp_orphan_retries`).
pub(crate) const TCP_ORPHAN_RETRIES: u32 = 8;
/// `TCP_SYNCOOKIE_VALID` (§3).
pub const TCP_SYNCOOKIE_VALID: SimDuration = SimDuration::from_secs(120);
/// `tcp_invalid_ratelimit`: SYN-ACK rate limit for duplicate SYNs (§3).
pub const TCP_INVALID_RATELIMIT: SimDuration = SimDuration::from_millis(500);

/// `__tcp_oow_rate_limited`: true if a reply to an out-of-window or
/// duplicate segment was sent less than `tcp_invalid_ratelimit` ago;
/// otherwise records `now` as the socket's `last_oow_ack_time`.
pub(crate) fn tcp_oow_rate_limited(last_oow_ack: &mut Option<SimTime>, now: SimTime) -> bool {
    if last_oow_ack.is_some_and(|t| now.saturating_sub(t) < TCP_INVALID_RATELIMIT) {
        return true;
    }
    *last_oow_ack = Some(now);
    false
}
/// Length of a TCP header without options, what a BPF program sees as the
/// minimum `len` of a real segment (§2.7).
const TCP_HEADER_LEN: u32 = 20;
const WINDOW: u16 = 65_535;

/// A timer of the server stack, carried by the driver's event queue.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ServerTimer {
    /// `reqsk_timer` of a request socket (§5.3).
    Req(ReqKey),
    /// Retransmission timer of a child (Fast Open SYN-ACK, or the response).
    Child(ChildKey),
    /// The TIME_WAIT sockets due at this instant (`tw_timer`).
    TimeWait,
}

/// What happened inside the stack, for the application model and the report.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// A child was appended to `listener`'s accept queue (new or migrated).
    ChildQueued {
        /// The child.
        child: ChildKey,
        /// The listener whose queue it joined.
        listener: ListenerId,
    },
    /// The request bytes of a child arrived.
    RequestReceived {
        /// The child.
        child: ChildKey,
    },
    /// The client acknowledged the response and closed: the connection is done.
    ChildFinished {
        /// The child.
        child: ChildKey,
    },
    /// A child was destroyed with an RST to the client.
    ChildReset {
        /// The child.
        child: ChildKey,
        /// Why.
        cause: RstCause,
    },
    /// A child was destroyed without an RST (retransmissions exhausted, or the
    /// client reset it).
    ChildGone {
        /// The child.
        child: ChildKey,
    },
    /// One successful migration hop (`TCPMigrateReqSuccess`).
    Migrated {
        /// Which of the three paths.
        path: MigrationPath,
        /// The closed listener.
        from: ListenerId,
        /// The live target.
        to: ListenerId,
        /// True on the first migration of this connection.
        first: bool,
    },
    /// A failed migration (`TCPMigrateReqFailure`).
    MigrationFailed {
        /// Which path.
        path: MigrationPath,
        /// The closed listener.
        from: ListenerId,
        /// Why.
        reason: MigrateFailure,
    },
    /// A silent drop of a segment or of a request socket.
    Dropped {
        /// Why.
        cause: DropCause,
    },
}

/// Where the stack's effects go: the driver sends packets, sets timers and
/// records events. Packets are sent at the `now` of the call.
pub trait ServerOutput {
    /// Send `pkt` now; `rst` tags an RST with its cause.
    fn transmit(&mut self, pkt: Packet, rst: Option<RstCause>);
    /// Deliver `timer` back to [`ServerStack::on_timer`] at `at`.
    fn set_timer(&mut self, at: SimTime, timer: ServerTimer);
    /// Record an event.
    fn notify(&mut self, ev: ServerEvent);
}

/// `listen()` errors.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ListenError {
    /// The socket was closed.
    Closed,
}

/// `accept()` errors.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AcceptError {
    /// EINVAL: the socket is not listening (§5.6).
    NotListening,
}

/// State of a child socket (§2.5).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ChildState {
    /// Fast Open child before the final ACK.
    SynRecv,
    /// Handshake complete.
    Established,
    /// The client sent FIN before the response.
    CloseWait,
    /// The response and FIN were sent; waiting for the client's ACK|FIN
    /// (FIN_WAIT1, FIN_WAIT2).
    FinWait,
    /// The client closed first (CLOSE_WAIT), then the application: our FIN
    /// waits for its ACK.
    LastAck,
}

/// Read-only view of a child, for the driver.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ChildInfo {
    /// (server address, client address).
    pub tuple: FourTuple,
    /// State.
    pub state: ChildState,
    /// Request bytes received so far.
    pub request_bytes: u32,
    /// Whether the child migrated at least once.
    pub migrated: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Sock {
    Req(ReqKey),
    Child(ChildKey),
    TimeWait(TwKey),
}

/// The TCP stack of one server host (one network namespace).
pub struct ServerStack<H> {
    /// The namespace's sysctls; read at each point of use.
    pub sysctls: Sysctls,
    /// All listeners ever created, indexed by [`ListenerId`].
    pub listeners: Vec<Listener>,
    /// §8 counters of the server's sockets.
    pub counters: Counters,
    /// The host's timer granularity (§3.1).
    pub timers: TimerModel,
    /// The namespace's TCP metrics cache (§2.1 `tcp_no_metrics_save`).
    pub metrics: TcpMetrics,
    /// The reuseport layer.
    pub hooks: H,
    /// The namespace's TIME_WAIT sockets (of connections the server closed first).
    pub timewait: TimeWaitTable,
    requests: SlotMap<ReqKey, Request>,
    children: SlotMap<ChildKey, Child>,
    ehash: TupleMap<Sock>,
    flow: FlowHasher,
    /// **Test-only fault injection** (`--inject-bug`, hidden): when set, a
    /// migration on this path that found a live target silently fails
    /// instead, without counting `TCPMigrateReqFailure`, so the connection
    /// is lost as if no target existed. Used to show that sweeps catch a
    /// broken migration path. Never set it in a real run.
    pub inject_bug: Option<MigrationPath>,
}

fn rst_for(pkt: &Packet) -> Packet {
    // RFC 793 / tcp_v4_send_reset: with ACK, seq = the segment's ack; else RST|ACK.
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

fn segment(tuple: &FourTuple, flags: TcpFlags, seq: u32, ack: u32, payload_len: u32) -> Packet {
    Packet {
        src: tuple.local,
        dst: tuple.remote,
        flags,
        seq,
        ack,
        payload_len,
        fast_open: false,
        window: WINDOW,
        tsval: 0,
        tsecr: 0,
        tag: 0,
    }
}

/// `min(timeout << shift, TCP_RTO_MAX)`: the request timer's interval (§3).
fn rto_for(timeout: SimDuration, shift: u8) -> SimDuration {
    timeout
        .checked_shl(u32::from(shift))
        .unwrap_or(TCP_RTO_MAX)
        .min(TCP_RTO_MAX)
}

/// Arms `timer` to fire `timeout` after `now` through the host's timer
/// model, and asks the driver for a queue entry if needed.
#[inline]
fn arm_timer(
    timer: &mut Timer,
    timers: &TimerModel,
    now: SimTime,
    timeout: SimDuration,
    which: ServerTimer,
    out: &mut impl ServerOutput,
) {
    push_timer(timer, now, timers.fire_at(now, timeout), which, out);
}

/// [`arm_timer`] from the timer's own callback (`TimerModel::rearm_at`).
fn rearm_timer(
    timer: &mut Timer,
    timers: &TimerModel,
    now: SimTime,
    timeout: SimDuration,
    which: ServerTimer,
    out: &mut impl ServerOutput,
) {
    push_timer(timer, now, timers.rearm_at(now, timeout), which, out);
}

fn push_timer(
    timer: &mut Timer,
    now: SimTime,
    at: SimTime,
    which: ServerTimer,
    out: &mut impl ServerOutput,
) {
    if let TimerArm::Push(at) = timer.arm_with_horizon(at, now, TIMER_HORIZON) {
        out.set_timer(at, which);
    }
}

/// `tcp_in_window(seq, end_seq, s_win, e_win)`.
fn in_window(seq: u32, end_seq: u32, s_win: u32, e_win: u32) -> bool {
    if seq == s_win {
        return true;
    }
    let after = |a: u32, b: u32| (b.wrapping_sub(a) as i32) < 0;
    if after(end_seq, s_win) && after(e_win, seq) {
        return true;
    }
    seq == e_win && seq == end_seq
}

/// A segment's `end_seq`: seq + payload + SYN + FIN.
fn end_seq(pkt: &Packet) -> u32 {
    let mut len = pkt.payload_len;
    if pkt.flags.contains(TcpFlags::SYN) {
        len += 1;
    }
    if pkt.flags.contains(TcpFlags::FIN) {
        len += 1;
    }
    pkt.seq.wrapping_add(len)
}

impl<H: ReuseportHooks> ServerStack<H> {
    /// An empty stack. `flow` is the namespace's seeded flow hash (§4.1).
    pub fn new(sysctls: Sysctls, hooks: H, flow: FlowHasher) -> Self {
        ServerStack {
            sysctls,
            listeners: Vec::new(),
            counters: Counters::default(),
            timers: TimerModel::LINUX,
            metrics: TcpMetrics::default(),
            hooks,
            requests: SlotMap::with_key(),
            children: SlotMap::with_key(),
            ehash: TupleMap::default(),
            timewait: TimeWaitTable::default(),
            flow,
            inject_bug: None,
        }
    }

    /// `socket()` + `bind()`: a new bound listener socket.
    pub fn bind(&mut self, local: SocketAddr, options: ListenerOptions) -> ListenerId {
        let id = ListenerId(self.listeners.len() as u32);
        self.listeners.push(Listener::new(id, local, options));
        id
    }

    /// The flow hash of `tuple` (server's view).
    pub fn flow_hash(&self, tuple: &FourTuple) -> u32 {
        self.flow.hash(tuple)
    }

    /// Gives back the memory of a peak: the 4-tuple table keeps the capacity
    /// of its largest size, and a sparse table costs cache misses on every
    /// lookup. The model does not depend on it.
    pub fn compact(&mut self) {
        self.ehash.shrink_after_peak();
    }

    /// Tags a child for the application (e.g. the worker that accepted it);
    /// 0 means untagged.
    pub fn set_app_tag(&mut self, c: ChildKey, tag: u64) {
        if let Some(child) = self.children.get_mut(c) {
            child.app = tag;
        }
    }

    /// The application tag of a live child (0 if untagged).
    pub fn app_tag(&self, c: ChildKey) -> Option<u64> {
        self.children.get(c).map(|ch| ch.app)
    }

    /// Live children whose tag satisfies `pred`, in key order.
    pub fn children_tagged(&self, pred: impl Fn(u64) -> bool) -> Vec<ChildKey> {
        let mut v: Vec<ChildKey> = self
            .children
            .iter()
            .filter(|(_, ch)| pred(ch.app))
            .map(|(k, _)| k)
            .collect();
        v.sort();
        v
    }

    /// Whether the socket a timer belongs to still exists: a timer of a
    /// socket that is gone is ignored by [`ServerStack::on_timer`], and a
    /// driver may skip the call.
    #[inline]
    pub fn timer_owner_exists(&self, timer: ServerTimer) -> bool {
        match timer {
            ServerTimer::Req(r) => self.requests.contains_key(r),
            ServerTimer::Child(c) => self.children.contains_key(c),
            ServerTimer::TimeWait => true,
        }
    }

    /// Whether ehash holds a request or child for `tuple` (server's view;
    /// a TIME_WAIT socket does not count: a new SYN may replace it).
    pub fn holds(&self, tuple: &FourTuple) -> bool {
        matches!(self.ehash.get(tuple), Some(Sock::Req(_) | Sock::Child(_)))
    }

    /// Number of live request sockets.
    pub fn request_count(&self) -> usize {
        self.requests.len()
    }

    /// Number of live child sockets (queued or accepted).
    pub fn child_count(&self) -> usize {
        self.children.len()
    }

    /// A child's state, if it still exists.
    pub fn child(&self, c: ChildKey) -> Option<ChildInfo> {
        self.children.get(c).map(|ch| ChildInfo {
            tuple: ch.tuple,
            state: ch.state,
            request_bytes: ch.request_bytes,
            migrated: ch.migrated,
        })
    }

    /// `listen(fd, backlog)` (§5.1, §5.9).
    pub fn listen(&mut self, id: ListenerId, backlog: u32) -> Result<(), ListenError> {
        let somaxconn = self.sysctls.somaxconn;
        let l = &mut self.listeners[id.index()];
        l.backlog = backlog.min(somaxconn);
        match l.state {
            ListenerState::Listen => Ok(()),
            ListenerState::Closed => Err(ListenError::Closed),
            ListenerState::Bound | ListenerState::Shutdown => {
                let resurrect = l.state == ListenerState::Shutdown;
                l.state = ListenerState::Listen;
                self.hooks.on_listen(&self.listeners, id, resurrect);
                Ok(())
            }
        }
    }

    /// `accept()` (§5.6): pops the accept-queue head.
    pub fn accept(&mut self, id: ListenerId) -> Result<Option<ChildKey>, AcceptError> {
        let l = &mut self.listeners[id.index()];
        if l.state != ListenerState::Listen {
            return Err(AcceptError::NotListening);
        }
        let Some(c) = l.accept_queue.pop_front() else {
            return Ok(None);
        };
        l.accepted_total += 1;
        self.children[c].queued_on = None;
        Ok(Some(c))
    }

    /// `shutdown(SHUT_RDWR)` (`shutdown = true`) or the last `close()` of a
    /// listener (§5.7).
    pub fn close_listener(
        &mut self,
        now: SimTime,
        id: ListenerId,
        shutdown: bool,
        out: &mut impl ServerOutput,
    ) {
        let state = self.listeners[id.index()].state;
        match state {
            ListenerState::Closed => return,
            ListenerState::Shutdown | ListenerState::Bound => {
                if !shutdown {
                    self.listeners[id.index()].state = ListenerState::Closed;
                    self.maybe_destroy_listener(id);
                }
                return;
            }
            ListenerState::Listen => {}
        }
        // Steps 1-2: leave the listener table; group bookkeeping (§6.1).
        let migrate_req = self.sysctls.tcp_migrate_req == 1;
        self.hooks.on_stop_listen(&self.listeners, id, migrate_req);
        // Step 3.
        self.listeners[id.index()].state = if shutdown {
            ListenerState::Shutdown
        } else {
            ListenerState::Closed
        };
        // Step 4: drain the accept queue, head first.
        while let Some(c) = self.listeners[id.index()].accept_queue.pop_front() {
            // Already out of the queue: forgetting it must not scan the queue.
            self.children[c].queued_on = None;
            let child = &self.children[c];
            let m = match child.state {
                ChildState::SynRecv => MigratingSock::SynRecv {
                    hash: child.hash,
                    tuple: child.tuple,
                },
                _ => MigratingSock::Established {
                    hash: child.hash,
                    tuple: child.tuple,
                },
            };
            let migrate_req = self.sysctls.tcp_migrate_req == 1;
            match self
                .hooks
                .migrate_target(&self.listeners, id, m, migrate_req)
            {
                MigrateOutcome::Target(_)
                    if self.inject_bug == Some(MigrationPath::AcceptQueue) =>
                {
                    // Injected bug (test-only): lose the child, count nothing.
                    self.forget_child(now, c, RstCause::ListenerCloseChild, out);
                }
                MigrateOutcome::Target(t) if self.listeners[t.index()].is_listening() => {
                    // No backlog check on the target (§5.7 step 4).
                    let target = &mut self.listeners[t.index()];
                    target.accept_queue.push_back(c);
                    target.note_queues();
                    let child = &mut self.children[c];
                    child.queued_on = Some(t);
                    let first = !child.migrated;
                    child.migrated = true;
                    self.counters.TcpExtTCPMigrateReqSuccess += 1;
                    out.notify(ServerEvent::Migrated {
                        path: MigrationPath::AcceptQueue,
                        from: id,
                        to: t,
                        first,
                    });
                    out.notify(ServerEvent::ChildQueued {
                        child: c,
                        listener: t,
                    });
                }
                MigrateOutcome::Target(_) => {
                    self.migration_failed(
                        MigrationPath::AcceptQueue,
                        id,
                        MigrateFailure::TargetNotListening,
                        out,
                    );
                    self.forget_child(now, c, RstCause::ListenerCloseChild, out);
                }
                MigrateOutcome::Fail(reason) => {
                    self.migration_failed(MigrationPath::AcceptQueue, id, reason, out);
                    self.forget_child(now, c, RstCause::ListenerCloseChild, out);
                }
                MigrateOutcome::Detached => {
                    self.forget_child(now, c, RstCause::ListenerCloseChild, out);
                }
            }
        }
        // Step 5: requests are untouched. Step 6: the object may die now.
        self.maybe_destroy_listener(id);
    }

    /// A segment arrives at the server host.
    pub fn on_segment(&mut self, now: SimTime, pkt: &Packet, out: &mut impl ServerOutput) {
        let tuple = pkt.tuple_at_receiver();
        match self.ehash.get(&tuple).copied() {
            Some(Sock::Req(r)) => self.request_segment(now, r, pkt, out),
            Some(Sock::Child(c)) => self.child_segment(now, c, pkt, out),
            Some(Sock::TimeWait(k)) => self.timewait_segment(now, k, pkt, out),
            None => self.listener_segment(now, tuple, pkt, RstCause::NoRequest, out),
        }
    }

    /// A timer set through [`ServerOutput::set_timer`] fires.
    pub fn on_timer(&mut self, now: SimTime, timer: ServerTimer, out: &mut impl ServerOutput) {
        match timer {
            ServerTimer::Req(r) => {
                let Some(req) = self.requests.get_mut(r) else {
                    return;
                };
                match req.timer.on_event(now) {
                    TimerFire::Stale => {}
                    TimerFire::Rearm(at) => out.set_timer(at, timer),
                    TimerFire::Fire => self.reqsk_timer_handler(now, r, out),
                }
            }
            ServerTimer::Child(c) => {
                let Some(child) = self.children.get_mut(c) else {
                    return;
                };
                match child.timer.on_event(now) {
                    TimerFire::Stale => {}
                    TimerFire::Rearm(at) => out.set_timer(at, timer),
                    TimerFire::Fire => self.child_timer(now, c, out),
                }
            }
            ServerTimer::TimeWait => self.timewait_expire(now, out),
        }
    }

    fn migration_failed(
        &mut self,
        path: MigrationPath,
        from: ListenerId,
        reason: MigrateFailure,
        out: &mut impl ServerOutput,
    ) {
        self.counters.TcpExtTCPMigrateReqFailure += 1;
        out.notify(ServerEvent::MigrationFailed { path, from, reason });
    }

    fn send_rst(&mut self, mut pkt: Packet, cause: RstCause, out: &mut impl ServerOutput) {
        self.counters.TcpOutRsts += 1;
        pkt.tag = cause.tag();
        out.transmit(pkt, Some(cause));
    }

    /// `inet_child_forget` / `tcp_disconnect`: RST to the client and destroy.
    fn forget_child(
        &mut self,
        _now: SimTime,
        c: ChildKey,
        cause: RstCause,
        out: &mut impl ServerOutput,
    ) {
        let child = self.unlink_child(c);
        let rst = segment(
            &child.tuple,
            TcpFlags::RST | TcpFlags::ACK,
            child.snd_nxt,
            child.rcv_nxt,
            0,
        );
        self.send_rst(rst, cause, out);
        out.notify(ServerEvent::ChildReset { child: c, cause });
    }

    fn destroy_child_silently(&mut self, c: ChildKey, out: &mut impl ServerOutput) {
        self.unlink_child(c);
        out.notify(ServerEvent::ChildGone { child: c });
    }

    /// Removes a child from the stack: ehash and, if still queued, its
    /// listener's accept queue.
    fn unlink_child(&mut self, c: ChildKey) -> Child {
        let child = self.detach_child(c);
        self.ehash.remove(&child.tuple);
        child
    }

    /// [`Self::unlink_child`] but for its ehash entry, which the caller
    /// overwrites or removes.
    fn detach_child(&mut self, c: ChildKey) -> Child {
        // A pending Fast Open child that dies stops counting (`tcp_done`).
        let child = &mut self.children[c];
        if let Some(l) = child.tfo_listener.take() {
            let listener = &mut self.listeners[l.index()];
            listener.fastopen_pending = listener.fastopen_pending.saturating_sub(1);
        }
        let child = self.children.remove(c).expect("live child");
        if let Some(l) = child.queued_on {
            let q = &mut self.listeners[l.index()].accept_queue;
            if let Some(pos) = q.iter().position(|&x| x == c) {
                q.remove(pos);
            }
        }
        child
    }

    /// §6.1: a closed listener's object dies once no request references it.
    fn maybe_destroy_listener(&mut self, id: ListenerId) {
        let l = &self.listeners[id.index()];
        if l.state == ListenerState::Closed && l.req_refs == 0 {
            self.hooks.on_destroy(id);
        }
    }

    /// `inet_csk_reqsk_queue_drop`: unlink a request and decrement its
    /// listener's SYN-queue counters.
    fn drop_request(&mut self, r: ReqKey) {
        let owner = self.requests[r].listener;
        self.drop_request_counted_on(r, owner);
    }

    /// `__inet_csk_reqsk_queue_drop(counted_on, req)`: unlinks the request,
    /// decrements `counted_on`'s SYN-queue counters and releases the
    /// request's reference on its own listener.
    fn drop_request_counted_on(&mut self, r: ReqKey, counted_on: ListenerId) {
        self.release_request(r, counted_on, true);
    }

    /// [`ServerStack::drop_request_counted_on`]; `unhash` false leaves the
    /// request's ehash entry for the caller to overwrite (the child that
    /// replaces it, §5.4 step 7).
    fn release_request(&mut self, r: ReqKey, counted_on: ListenerId, unhash: bool) {
        let req = self.requests.remove(r).expect("live request");
        if unhash {
            self.ehash.remove_if(&req.tuple, |&s| s == Sock::Req(r));
        }
        let c = &mut self.listeners[counted_on.index()];
        c.syn_qlen -= 1;
        if req.num_timeout == 0 {
            c.syn_young -= 1;
        }
        self.listeners[req.listener.index()].req_refs -= 1;
        self.maybe_destroy_listener(req.listener);
    }

    /// §4.2 selection, then §5.2 (SYN) or §5.5 (anything else). `ctx` is the
    /// cause an RST to a non-SYN segment carries.
    fn listener_segment(
        &mut self,
        now: SimTime,
        tuple: FourTuple,
        pkt: &Packet,
        ctx: RstCause,
        out: &mut impl ServerOutput,
    ) {
        let hash = self.flow.hash(&tuple);
        let sel = self
            .hooks
            .select(&self.listeners, &tuple, hash, pkt.payload_len > 0);
        self.selected_segment(now, tuple, hash, sel, pkt, ctx, None, out);
    }

    /// [`Self::listener_segment`] after the selection `sel`; `tw_isn` is
    /// the ISN of a SYN that replaces a TIME_WAIT socket.
    #[allow(clippy::too_many_arguments)]
    fn selected_segment(
        &mut self,
        now: SimTime,
        tuple: FourTuple,
        hash: u32,
        sel: Selection,
        pkt: &Packet,
        ctx: RstCause,
        tw_isn: Option<u32>,
        out: &mut impl ServerOutput,
    ) {
        let flags = pkt.flags;
        let is_syn = flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK);
        let l = match sel {
            Selection::Listener(l) => l,
            Selection::NoListener | Selection::PolicyDrop => {
                if flags.contains(TcpFlags::RST) {
                    out.notify(ServerEvent::Dropped {
                        cause: DropCause::RstNotAnswered,
                    });
                    return;
                }
                let cause = match (sel, is_syn) {
                    (Selection::PolicyDrop, _) => RstCause::PolicyDrop,
                    (_, true) => RstCause::NoListener,
                    _ => ctx,
                };
                self.send_rst(rst_for(pkt), cause, out);
                return;
            }
        };
        if flags.contains(TcpFlags::RST) {
            out.notify(ServerEvent::Dropped {
                cause: DropCause::RstNotAnswered,
            });
            return;
        }
        if is_syn {
            self.conn_request(now, l, tuple, hash, pkt, tw_isn, out);
            return;
        }
        if !flags.contains(TcpFlags::ACK) {
            out.notify(ServerEvent::Dropped {
                cause: DropCause::ListenerIgnored,
            });
            return;
        }
        // §5.5: syncookie validation when the group overflowed recently.
        if self.sysctls.tcp_syncookies != 0
            && !flags.contains(TcpFlags::SYN)
            && self.hooks.synq_overflow_recent(l, now)
        {
            if pkt.ack.wrapping_sub(1) == self.cookie_isn(&tuple) {
                self.counters.TcpExtSyncookiesRecv += 1;
                if self.listeners[l.index()].accept_queue_is_full() {
                    self.counters.TcpExtListenOverflows += 1;
                    self.counters.TcpExtListenDrops += 1;
                    out.notify(ServerEvent::Dropped {
                        cause: DropCause::CookieAckAcceptQueueFull,
                    });
                    return;
                }
                let c = self.new_child(
                    tuple,
                    hash,
                    ChildState::Established,
                    pkt.ack.wrapping_sub(1),
                    pkt.seq,
                    false,
                );
                // A cookie request has no `snt_synack`: only the timestamp
                // echo can measure the RTT.
                let ts_recent = if self.sysctls.timestamps() {
                    pkt.tsval
                } else {
                    0
                };
                self.child_established(now, c, None, ts_recent, pkt);
                self.enqueue_child(c, l, out);
                self.child_data(now, c, pkt, out);
                return;
            }
            self.counters.TcpExtSyncookiesFailed += 1;
            // A stray ACK meeting a recent overflow is tagged as a failed
            // cookie; an ACK for a dropped request keeps its §7 B cause.
            let cause = if ctx == RstCause::NoRequest {
                RstCause::InvalidCookie
            } else {
                ctx
            };
            self.send_rst(rst_for(pkt), cause, out);
            return;
        }
        self.send_rst(rst_for(pkt), ctx, out);
    }

    /// A child reaches ESTABLISHED from a request or a cookie: timestamps
    /// (in use when the SYN carried one, `ts_recent` != 0), the handshake's
    /// RTT sample (`tcp_synack_rtt_meas`: from `seq_rtt`, the first SYN-ACK's
    /// send time, or else from the echo of `pkt`), then
    /// `tcp_init_transfer` → `tcp_init_metrics` for the first RTO (§2.1).
    fn child_established(
        &mut self,
        now: SimTime,
        c: ChildKey,
        seq_rtt: Option<SimTime>,
        ts_recent: u32,
        pkt: &Packet,
    ) {
        let timers = self.timers;
        let rto_max = self.sysctls.rto_max();
        let child = &mut self.children[c];
        child.ts_ok = ts_recent != 0 && pkt.tsval != 0;
        child.ts_recent = if child.ts_ok { pkt.tsval } else { 0 };
        let m = match seq_rtt {
            Some(sent) => Some(rtt_us(now, sent)),
            None if child.ts_ok && pkt.tsecr != 0 => Some(ts_rtt_us(now, pkt.tsecr)),
            None => None,
        };
        if let Some(m) = m {
            child.est.sample(m, child.snd_nxt, child.snd_nxt);
            child.rto = child.est.rto(&timers, rto_max);
        }
        let (local, remote) = (child.tuple.local.ip(), child.tuple.remote.ip());
        let (est, rto) = (child.est, child.rto);
        self.children[c].rto = self
            .metrics
            .init_rto(now, local, remote, &est, rto, &timers);
    }

    fn cookie_isn(&self, tuple: &FourTuple) -> u32 {
        self.flow.keyed(tuple, 0xc00c1e)
    }

    /// Appends a child by the normal path (final ACK, syncookie, Fast Open),
    /// which checks the accept queue first (§5.2 step 2, §5.4 step 6, §5.5):
    /// only migration at close (§5.7 step 4) may go past backlog+1.
    fn enqueue_child(&mut self, c: ChildKey, l: ListenerId, out: &mut impl ServerOutput) {
        let listener = &mut self.listeners[l.index()];
        assert!(
            !listener.accept_queue_is_full(),
            "invariant queue_limits: listener {} accept queue would grow to {} > backlog+1 = {} \
             on the normal path (§5.2 step 2, §5.4 step 6)",
            l.0,
            listener.ack_backlog() + 1,
            listener.backlog + 1
        );
        listener.accept_queue.push_back(c);
        listener.note_queues();
        self.children[c].queued_on = Some(l);
        out.notify(ServerEvent::ChildQueued {
            child: c,
            listener: l,
        });
    }
}
