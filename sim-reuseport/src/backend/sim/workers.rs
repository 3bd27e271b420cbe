//! Workers: the application processes that call `accept()` on a listener
//! (immediately, at a rate, or in event-loop batches), serve each accepted
//! connection's request after a service time, and respond.
//!
//! With CPU costs (`cpu_per_accept`, `cpu_per_request`) a worker's accepts
//! and requests run on its host's CPUs ([`super::cpu`]): one at a time per
//! worker, queued behind other workers' work when the CPUs are busy; the
//! response leaves `service_time` after the request's CPU work ended.
//!
//! A worker tags every child it accepts (`ServerStack::set_app_tag`) with
//! its index and whether its service has started, so that the stack's
//! events about a child reach the right worker.

use super::cpu::HostCpus;
use super::Stack;
use crate::scenario::plan::{AcceptModel, HostIx, ServerIx, WorkerIx, WorkerPlan};
use sim_core::{SimDuration, SimTime};
use sim_tcp::{ChildKey, ListenerId, ServerOutput};

/// A worker's timer.
#[derive(Copy, Clone, Debug)]
pub(super) enum Timer {
    /// The worker may accept again (rate and batch models).
    AcceptTick(WorkerIx),
    /// The service of a child of host `HostIx` is done: respond.
    ServiceDone(HostIx, ChildKey),
}

/// Where the workers' timers go (their packets go through the stack's
/// [`ServerOutput`]).
pub(super) trait WorkerOut {
    /// `t` is due at `at`, a fixed delay (a service time or an accept
    /// interval) from now.
    fn arm(&mut self, at: SimTime, t: Timer);
    /// `t` is due at `at`, a time the CPU queue decided (not a fixed delay).
    fn arm_at(&mut self, at: SimTime, t: Timer);
    /// Worker `w` may accept at `at`, any time from now on.
    fn wake(&mut self, at: SimTime, w: WorkerIx);
}

/// The tag a worker puts on a child it accepted: the worker's index and
/// whether its service has started.
#[derive(Copy, Clone)]
struct AppTag(u64);

impl AppTag {
    fn accepted_by(w: WorkerIx) -> Self {
        AppTag((u64::from(w.0) + 1) << 1)
    }
    fn with_service(self) -> Self {
        AppTag(self.0 | 1)
    }
    fn serving(self) -> bool {
        self.0 & 1 == 1
    }
    fn worker(self) -> WorkerIx {
        WorkerIx(((self.0 >> 1) - 1) as u16)
    }
}

struct Worker {
    name: String,
    server: ServerIx,
    host: HostIx,
    /// The listener it bound.
    own_listener: ListenerId,
    /// The listener it accepts from (its own, an inherited one, or none
    /// after handing it over).
    listener: Option<ListenerId>,
    accepting: bool,
    accept: AcceptModel,
    service_time: SimDuration,
    response_bytes: u32,
    keep_alive: bool,
    backlog: u32,
    tick_pending: bool,
    next_accept_at: SimTime,
    /// CPU time of one `accept()` (zero with `cpu_per_request` zero too:
    /// the fixed-delay model).
    cpu_per_accept: SimDuration,
    /// CPU time of handling one request.
    cpu_per_request: SimDuration,
    /// When its last queued CPU job ends (its event loop is busy until then).
    busy_until: SimTime,
}

impl Worker {
    fn uses_cpu(&self) -> bool {
        self.cpu_per_accept != SimDuration::ZERO || self.cpu_per_request != SimDuration::ZERO
    }
}

/// The workers of a run.
pub(super) struct Workers {
    list: Vec<Worker>,
    /// Each host's CPUs (used only by workers with CPU costs).
    cpus: Vec<HostCpus>,
}

impl Workers {
    /// The plan's workers; worker `i` bound `listeners[i]`; `cpus` is each
    /// host's CPU count.
    pub(super) fn new(plan: &[WorkerPlan], listeners: &[ListenerId], cpus: &[u16]) -> Self {
        let list = plan
            .iter()
            .zip(listeners)
            .map(|(w, &l)| Worker {
                name: w.name.clone(),
                server: w.server,
                host: w.host,
                own_listener: l,
                listener: Some(l),
                accepting: true,
                accept: w.accept,
                service_time: w.service_time,
                response_bytes: w.response_bytes,
                keep_alive: w.keep_alive,
                backlog: w.backlog,
                tick_pending: false,
                next_accept_at: SimTime::ZERO,
                cpu_per_accept: w.cpu_per_accept,
                cpu_per_request: w.cpu_per_request,
                busy_until: SimTime::ZERO,
            })
            .collect();
        let cpus = cpus.iter().map(|&n| HostCpus::new(n)).collect();
        Workers { list, cpus }
    }

    /// Worker `w`'s host.
    #[inline]
    pub(super) fn host(&self, w: WorkerIx) -> HostIx {
        self.list[w.index()].host
    }

    /// Worker `w`'s host and its own listener.
    pub(super) fn own_listener(&self, w: WorkerIx) -> (HostIx, ListenerId) {
        let worker = &self.list[w.index()];
        (worker.host, worker.own_listener)
    }

    /// The listener worker `w` holds now.
    pub(super) fn listener(&self, w: WorkerIx) -> Option<ListenerId> {
        self.list[w.index()].listener
    }

    /// Worker `w`'s `listen()` backlog.
    pub(super) fn backlog(&self, w: WorkerIx) -> u32 {
        self.list[w.index()].backlog
    }

    /// A `relisten` set worker `w`'s backlog (a later `listen` after a
    /// shutdown uses it).
    pub(super) fn set_backlog(&mut self, w: WorkerIx, backlog: u32) {
        self.list[w.index()].backlog = backlog;
    }

    /// Each worker's name, server, host and own listener, in worker order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, ServerIx, HostIx, ListenerId)> + '_ {
        self.list
            .iter()
            .map(|w| (w.name.as_str(), w.server, w.host, w.own_listener))
    }

    /// Worker `w` stops calling `accept()`.
    pub(super) fn stop_accepting(&mut self, w: WorkerIx) {
        self.list[w.index()].accepting = false;
    }

    /// Worker `w` calls `accept()` again (the caller then lets it accept).
    pub(super) fn resume_accepting(&mut self, w: WorkerIx) {
        self.list[w.index()].accepting = true;
    }

    /// fd passing: `to` takes `from`'s listener and accepts from it;
    /// `from` stops. Returns the listener, if `from` still held one.
    pub(super) fn hand_over(&mut self, from: WorkerIx, to: WorkerIx) -> Option<ListenerId> {
        let l = self.list[from.index()].listener.take()?;
        self.list[from.index()].accepting = false;
        let heir = &mut self.list[to.index()];
        heir.listener = Some(l);
        heir.accepting = true;
        Some(l)
    }

    /// Worker `w` dies: it stops accepting; returns the children it
    /// accepted, which the caller closes (§5.10).
    pub(super) fn kill(&mut self, w: WorkerIx, stack: &Stack) -> Vec<ChildKey> {
        self.list[w.index()].accepting = false;
        stack.children_tagged(|t| t != 0 && AppTag(t).worker() == w)
    }

    /// Worker `w` accepts whatever its accept model allows now: everything
    /// queued (immediate), or at its next tick.
    pub(super) fn try_accept(
        &mut self,
        now: SimTime,
        w: WorkerIx,
        stack: &mut Stack,
        io: &mut (impl ServerOutput + WorkerOut),
    ) {
        let worker = &mut self.list[w.index()];
        if !worker.accepting || worker.listener.is_none() {
            return;
        }
        match worker.accept {
            AcceptModel::Immediate => while self.accept_one(now, w, stack, io) {},
            AcceptModel::Rate { .. } | AcceptModel::Batch { .. } => {
                if !worker.tick_pending {
                    worker.tick_pending = true;
                    io.wake(worker.next_accept_at.max(now), w);
                }
            }
        }
    }

    /// Worker `w`'s accept tick: accepts up to its budget, and comes back
    /// after its interval if more are waiting.
    pub(super) fn accept_tick(
        &mut self,
        now: SimTime,
        w: WorkerIx,
        stack: &mut Stack,
        io: &mut (impl ServerOutput + WorkerOut),
    ) {
        let worker = &mut self.list[w.index()];
        worker.tick_pending = false;
        if !worker.accepting || worker.listener.is_none() {
            return;
        }
        let (budget, interval) = match worker.accept {
            // Woken when its CPU work allowed the next accept().
            AcceptModel::Immediate => {
                while self.accept_one(now, w, stack, io) {}
                return;
            }
            AcceptModel::Rate { per_second } => (
                1,
                SimDuration::from_nanos((1_000_000_000 / per_second).max(1)),
            ),
            AcceptModel::Batch { interval, max } => (max, interval),
        };
        let mut got = 0;
        while got < budget && self.accept_one(now, w, stack, io) {
            got += 1;
        }
        let worker = &mut self.list[w.index()];
        worker.next_accept_at = now + interval;
        let l = worker.listener.expect("listener");
        let waiting = !stack.listeners[l.index()].accept_queue.is_empty();
        if waiting && !worker.tick_pending {
            worker.tick_pending = true;
            io.arm(now + interval, Timer::AcceptTick(w));
        }
    }

    /// One `accept()`; the child's service starts if its request is in.
    fn accept_one(
        &mut self,
        now: SimTime,
        w: WorkerIx,
        stack: &mut Stack,
        io: &mut (impl ServerOutput + WorkerOut),
    ) -> bool {
        let l = self.list[w.index()].listener.expect("listener");
        if self.list[w.index()].uses_cpu() && !self.cpu_free_for_accept(now, w, l, stack, io) {
            return false;
        }
        let Ok(Some(child)) = stack.accept(l) else {
            return false;
        };
        let worker = &mut self.list[w.index()];
        if worker.uses_cpu() && worker.cpu_per_accept != SimDuration::ZERO {
            let h = worker.host.index();
            worker.busy_until = self.cpus[h].run(now, worker.cpu_per_accept);
        }
        let has_request = stack.child(child).is_some_and(|c| c.request_bytes > 0);
        let tag = AppTag::accepted_by(w);
        let tag = if has_request { tag.with_service() } else { tag };
        stack.set_app_tag(child, tag.0);
        if has_request {
            self.start_service(now, w, child, stack, io);
        }
        true
    }

    /// Whether worker `w` (with CPU costs) can call `accept()` on `l` now:
    /// its event loop is idle and a CPU is free. If not, and a child is
    /// waiting, it is woken when it could.
    fn cpu_free_for_accept(
        &mut self,
        now: SimTime,
        w: WorkerIx,
        l: ListenerId,
        stack: &Stack,
        io: &mut impl WorkerOut,
    ) -> bool {
        let worker = &mut self.list[w.index()];
        let ready = worker.busy_until.max(now);
        let start = if worker.cpu_per_accept == SimDuration::ZERO {
            ready
        } else {
            self.cpus[worker.host.index()].earliest(ready).1
        };
        if start == now {
            return true;
        }
        if !worker.tick_pending && !stack.listeners[l.index()].accept_queue.is_empty() {
            worker.tick_pending = true;
            io.wake(start, w);
        }
        false
    }

    /// The request of `child` arrived: its worker, if one accepted it,
    /// starts serving it.
    pub(super) fn on_request(
        &mut self,
        now: SimTime,
        child: ChildKey,
        stack: &mut Stack,
        io: &mut (impl ServerOutput + WorkerOut),
    ) {
        let tag = AppTag(stack.app_tag(child).unwrap_or(0));
        if tag.0 != 0 && !tag.serving() {
            stack.set_app_tag(child, tag.with_service().0);
            self.start_service(now, tag.worker(), child, stack, io);
        }
    }

    /// Worker `w` serves `child`: it responds now, or when its service
    /// time is over.
    fn start_service(
        &mut self,
        now: SimTime,
        w: WorkerIx,
        child: ChildKey,
        stack: &mut Stack,
        io: &mut (impl ServerOutput + WorkerOut),
    ) {
        let worker = &mut self.list[w.index()];
        // The worker reads the request, then works on it (§5.10: a close
        // from now on sends a FIN, not an RST).
        stack.read_request(child);
        if worker.uses_cpu() {
            // Queued behind the worker's own work, then on a CPU.
            let ready = worker.busy_until.max(now);
            let end = if worker.cpu_per_request == SimDuration::ZERO {
                ready
            } else {
                self.cpus[worker.host.index()].run(ready, worker.cpu_per_request)
            };
            worker.busy_until = end;
            let at = end + worker.service_time;
            if at > now {
                io.arm_at(at, Timer::ServiceDone(worker.host, child));
                return;
            }
        }
        if worker.service_time == SimDuration::ZERO {
            // `respond` reports no `ServerEvent`: answering inside the
            // caller's stack call has the same effects, in the same order,
            // as a stack call of its own.
            stack.respond(now, child, worker.response_bytes, worker.keep_alive, io);
        } else {
            io.arm(
                now + worker.service_time,
                Timer::ServiceDone(worker.host, child),
            );
        }
    }

    /// The service of `child` is over: its worker responds.
    pub(super) fn service_done(
        &self,
        now: SimTime,
        child: ChildKey,
        stack: &mut Stack,
        io: &mut impl ServerOutput,
    ) {
        let w = match stack.app_tag(child) {
            Some(tag) if tag != 0 => AppTag(tag).worker(),
            _ => return,
        };
        let worker = &self.list[w.index()];
        stack.respond(now, child, worker.response_bytes, worker.keep_alive, io);
    }
}
