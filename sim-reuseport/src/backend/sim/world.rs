//! The world: every part of a simulated run, the events between them
//! ([`Ev`]), the run loop, the dispatch of each event to the parts, the
//! run digest, and the report.
//!
//! Order is behaviour: events at the same time leave the queue in the order
//! they were scheduled, so the parts are called here in a fixed order, and
//! the events a stack call reports are handled right after that call
//! ([`World::with_stack`]), depth first.

mod bpf;
mod io;

use super::clients::{ClientKey, Clients, Outcome};
use super::hosts::Hosts;
use super::net::{host_ix, Net};
use super::sched::Sched;
use super::stats::Stats;
use super::tap::Tap;
use super::timeline::Timeline;
use super::workers::Workers;
use super::Stack;
use crate::backend::{RunError, RunOptions, RunResult};
use crate::report::{Report, ScenarioInfo, ToolInfo};
use crate::scenario::plan::{ClientIx, HostIx, Plan, Prim, WorkerIx};
use io::{ClientIo, HostIo, Wire};
use sim_core::{Digest, HostId, Packet, RngStreams, SimDuration, SimTime};
use sim_tcp::{ChildKey, ServerEvent, ServerTimer};
use std::collections::BTreeMap;

/// Maximum events one run may process (a bound on everything, asserted).
pub const MAX_EVENTS: u64 = 2_000_000_000;

/// An event of the run: each payload is a part's own (a packet slot of
/// `net`, a client of `clients`, a server timer of `sim-tcp`, a worker
/// timer of `workers`, a step of `timeline`).
#[derive(Copy, Clone, Debug)]
enum Ev {
    /// A packet (a slot of [`Net`]) reaches its host.
    Deliver(u32),
    /// A client socket's TCP timer.
    ClientTimer(ClientKey),
    /// A server stack's TCP timer.
    ServerTimer(HostIx, ServerTimer),
    /// A client population's next connection.
    Arrival(ClientIx),
    /// A host's client TIME_WAIT sockets are due (`tw_timer`).
    ClientTimeWait(HostIx),
    /// A worker may accept again.
    AcceptTick(WorkerIx),
    /// A worker's service of a child of a host is done.
    ServiceDone(HostIx, ChildKey),
    /// A timeline step.
    Action(u32),
    /// The oldest batch of TCP timer checks ([`Sched::take_batch`]) is due.
    HorizonBatch,
}

// Queue entries hold an `Ev` inline: keep it small.
const _: () = assert!(std::mem::size_of::<Ev>() <= 16);

/// A run in progress.
pub(super) struct World<'a> {
    name: String,
    hash: String,
    duration: SimDuration,
    seed: u64,
    migrate: Option<bool>,
    /// The next sampling instant and the interval, when sampling for plots.
    /// Sampling is no event: it observes the run between events and so
    /// cannot change it (digest, event count, report).
    sampler: Option<(SimTime, SimDuration)>,
    sched: Sched<Ev>,
    net: Net,
    hosts: Hosts,
    workers: Workers,
    clients: Clients,
    timeline: Timeline,
    stats: Stats,
    tap: Tap<'a>,
    progress: Option<&'a mut dyn FnMut(SimDuration)>,
    digest: Digest,
    events: u64,
    /// A spare buffer for the events of a stack call.
    pending: Vec<ServerEvent>,
    /// Some policy runs a real eBPF program.
    has_bpf: bool,
    /// A program's runtime fault: the run stops with it.
    fault: Option<String>,
}

/// A [`Wire`] over the world's schedule, network and taps (a macro, so
/// that the borrows stay disjoint from the other parts).
macro_rules! wire {
    ($w:ident, $now:expr) => {
        Wire {
            now: $now,
            sched: &mut $w.sched,
            net: &mut $w.net,
            tap: &mut $w.tap,
        }
    };
}

impl<'a> World<'a> {
    /// Builds the run of `plan`: every check was made by lowering, so this
    /// cannot fail. The first events are scheduled in a fixed order: the
    /// timeline, the first arrival of each client population, sampling.
    pub(super) fn new(plan: &Plan, opts: RunOptions<'a>) -> Self {
        let seed = opts.seed.unwrap_or(plan.seed);
        let rng = RngStreams::new(seed);
        let net = Net::new(plan, &rng);
        let mut hosts = Hosts::new(plan, &rng, opts.migrate, opts.timer_mode, opts.inject_bug);
        let listeners = hosts.bind_workers(plan);
        let cpus: Vec<u16> = plan.hosts.iter().map(|h| h.cpus).collect();
        let workers = Workers::new(&plan.workers, &listeners, &cpus);
        hosts.load_policies(plan, &listeners, &rng);
        let clients = Clients::new(&plan.clients, &rng);
        let timeline = Timeline::new(&plan.timeline);
        let mut sched = Sched::new(plan.hosts.len(), Ev::HorizonBatch);
        for (i, at) in timeline.due() {
            sched.schedule_timeline(at, Ev::Action(i));
        }
        for (g, at) in clients.first_arrivals() {
            sched.schedule(at, Ev::Arrival(g));
        }
        if let Some(iv) = opts.sample_interval {
            assert!(iv > SimDuration::ZERO, "a sampling interval is positive");
        }
        let mut w = World {
            name: plan.name.clone(),
            hash: plan.hash.clone(),
            duration: plan.duration,
            seed,
            migrate: opts.migrate,
            sampler: opts.sample_interval.map(|iv| (SimTime::ZERO, iv)),
            sched,
            net,
            hosts,
            workers,
            clients,
            timeline,
            stats: Stats::new(),
            tap: Tap::new(opts.trace, opts.tap),
            progress: opts.progress,
            digest: Digest::new(),
            events: 0,
            pending: Vec::new(),
            has_bpf: false,
            fault: None,
        };
        w.init_bpf(plan);
        w
    }

    /// Runs to the plan's duration and reports.
    pub(super) fn run(mut self) -> Result<RunResult, RunError> {
        let end = SimTime::ZERO + self.duration;
        let mut pops = 0u64;
        while let Some(t) = self.sched.peek_time() {
            if t > end {
                break;
            }
            self.sample_before(t);
            let (now, ev) = self.sched.pop().expect("peeked");
            // A horizon batch adds its other checks to `events` itself.
            self.events += 1;
            self.digest_event(now, &ev);
            self.dispatch(now, ev);
            if let Some(fault) = self.fault.take() {
                let _ = self.tap.finish();
                return Err(RunError::Program(format!(
                    "at simulated time {now}: {fault}"
                )));
            }
            if self.events > MAX_EVENTS {
                return Err(RunError::Limit(format!(
                    "the run exceeded {MAX_EVENTS} events at simulated time {now}; shorten the duration or lower the load"
                )));
            }
            pops += 1;
            if pops % (1 << 14) == 0 {
                self.compact();
                if let Some(p) = self.progress.as_deref_mut() {
                    p(SimDuration::from_nanos(now.as_nanos()));
                }
            }
        }
        self.sample_before(end + SimDuration::from_nanos(1));
        self.tap.finish().map_err(RunError::Io)?;
        Ok(self.finish())
    }

    /// Shrinks lookup tables left sparse by a peak (e.g. a reload drain):
    /// a large sparse hash table costs cache misses on every lookup.
    fn compact(&mut self) {
        self.clients.compact();
        self.hosts.compact();
    }

    /// Folds `ev` into the run digest. The mix of each variant is fixed:
    /// changing it changes every digest.
    #[inline(always)]
    fn digest_event(&mut self, now: SimTime, ev: &Ev) {
        let key = |k: slotmap::KeyData| k.as_ffi();
        let mix = match ev {
            Ev::Deliver(slot) => {
                let p = self.net.packet(*slot);
                let ports = (u64::from(p.src.port()) << 16) | u64::from(p.dst.port());
                1 ^ (ports << 8)
                    ^ (u64::from(p.flags.0) << 40)
                    ^ (u64::from(p.seq) << 1)
                    ^ (u64::from(p.ack) << 31)
                    ^ (u64::from(p.payload_len) << 48)
            }
            Ev::ClientTimer(k) => 2 ^ (key(slotmap::Key::data(k)) << 4),
            Ev::ServerTimer(h, ServerTimer::Req(r)) => {
                3 ^ (u64::from(h.0) << 4) ^ (key(slotmap::Key::data(r)) << 8)
            }
            Ev::ServerTimer(h, ServerTimer::Child(c)) => {
                4 ^ (u64::from(h.0) << 4) ^ (key(slotmap::Key::data(c)) << 8)
            }
            Ev::ServerTimer(h, ServerTimer::TimeWait) => 11 ^ (u64::from(h.0) << 4),
            Ev::ClientTimeWait(h) => 12 ^ (u64::from(h.0) << 4),
            Ev::Arrival(g) => 5 ^ (u64::from(g.0) << 4),
            Ev::AcceptTick(w) => 6 ^ (u64::from(w.0) << 4),
            Ev::ServiceDone(h, c) => 7 ^ (u64::from(h.0) << 4) ^ (key(slotmap::Key::data(c)) << 8),
            Ev::Action(i) => 8 ^ (u64::from(*i) << 4),
            Ev::HorizonBatch => 10,
        };
        self.digest.update_u64(now.as_nanos());
        self.digest.update_u64(mix);
    }

    /// Inline into the run loop: saves a call and a full prologue per event.
    #[inline(always)]
    fn dispatch(&mut self, now: SimTime, ev: Ev) {
        match ev {
            Ev::Deliver(slot) => {
                let (pkt, dst) = self.net.take(slot);
                self.deliver(now, pkt, dst)
            }
            Ev::ClientTimer(_) | Ev::ServerTimer(..) => self.timer(now, ev),
            Ev::HorizonBatch => self.horizon_batch(now),
            Ev::Arrival(g) => self.arrival(now, g),
            Ev::ClientTimeWait(h) => {
                let mut io = ClientIo {
                    wire: wire!(self, now),
                    stats: &mut self.stats,
                };
                self.clients
                    .expire_time_wait(now, h, &mut self.hosts, &mut io);
            }
            Ev::AcceptTick(w) => {
                let h = self.workers.host(w);
                self.with_stack(now, h, |stack, workers, io| {
                    workers.accept_tick(now, w, stack, io)
                });
            }
            Ev::ServiceDone(h, c) => {
                self.with_stack(now, h, |stack, workers, io| {
                    workers.service_done(now, c, stack, io)
                });
            }
            Ev::Action(i) => self.action(now, i),
        }
    }

    /// A TCP timer's queue entry pops (inline: most are checks of gone
    /// sockets, cheaper than a call).
    #[inline(always)]
    fn timer(&mut self, now: SimTime, ev: Ev) {
        match ev {
            Ev::ClientTimer(k) => {
                let mut io = ClientIo {
                    wire: wire!(self, now),
                    stats: &mut self.stats,
                };
                if let Some(o) = self.clients.on_timer(now, k, &mut self.hosts, &mut io) {
                    self.client_done(now, o);
                }
            }
            Ev::ServerTimer(h, timer) => {
                // Most horizon checks are of sockets long gone: skip the
                // stack's I/O setup for them.
                let exists = self
                    .hosts
                    .stack(h)
                    .is_some_and(|s| s.timer_owner_exists(timer));
                if exists {
                    self.with_stack(now, h, |stack, _, io| stack.on_timer(now, timer, io));
                }
            }
            _ => unreachable!("not a timer event"),
        }
    }

    /// The oldest horizon batch is due: check each timer in it, in the
    /// order they were armed. Each check counts as one event (the batch's
    /// own queue entry does not).
    fn horizon_batch(&mut self, now: SimTime) {
        let batch = self.sched.take_batch();
        self.events += batch.len() as u64 - 1;
        for &ev in &batch {
            self.digest_event(now, &ev);
            self.timer(now, ev);
        }
        self.sched.recycle_batch(batch);
    }

    /// Runs `f` on host `h`'s stack (with the workers, which call into the
    /// stack too), then handles the events the stack reported, in order.
    #[inline]
    fn with_stack(
        &mut self,
        now: SimTime,
        h: HostIx,
        f: impl FnOnce(&mut Stack, &mut Workers, &mut HostIo<'_, 'a>),
    ) {
        let Some(stack) = self.hosts.stack_mut(h) else {
            return;
        };
        stack.hooks.set_now(now);
        let mut events = std::mem::take(&mut self.pending);
        {
            let mut io = HostIo {
                wire: wire!(self, now),
                host: h,
                stats: &mut self.stats,
                events: &mut events,
            };
            f(stack, &mut self.workers, &mut io);
        }
        if self.has_bpf {
            self.after_bpf(now, h);
        }
        for ev in events.drain(..) {
            self.server_event(now, h, ev);
        }
        self.pending = events;
    }

    fn server_event(&mut self, now: SimTime, h: HostIx, ev: ServerEvent) {
        match ev {
            ServerEvent::ChildQueued { listener, .. } => {
                if let Some(w) = self.hosts.owner(h, listener) {
                    self.try_accept(now, w);
                }
            }
            ServerEvent::RequestReceived { child } => {
                self.with_stack(now, h, |stack, workers, io| {
                    workers.on_request(now, child, stack, io)
                });
            }
            // The child (and its tag) is gone with it.
            ServerEvent::ChildFinished { .. }
            | ServerEvent::ChildGone { .. }
            | ServerEvent::ChildReset { .. } => {}
            ServerEvent::Migrated {
                path,
                from,
                to,
                first,
            } => {
                self.stats.migrated(path, first);
                if self.tap.tracing() {
                    let detail = format!("{} listener {} -> {}", path.name(), from.0, to.0);
                    self.tap.trace_event(now, "migrate", detail);
                }
            }
            ServerEvent::MigrationFailed { path, from, reason } => {
                self.stats.migration_failed(path, reason);
                if self.tap.tracing() {
                    let detail = format!("{} listener {}: {}", path.name(), from.0, reason.name());
                    self.tap.trace_event(now, "migrate_fail", detail);
                }
            }
            ServerEvent::Dropped { cause } => {
                self.stats.dropped(cause);
                if self.tap.tracing() {
                    let detail = format!("{} ({})", cause.name(), cause.spec_rule());
                    self.tap.trace_event(now, "drop", detail);
                }
            }
        }
    }

    /// Worker `w` accepts what its accept model allows now.
    fn try_accept(&mut self, now: SimTime, w: WorkerIx) {
        let h = self.workers.host(w);
        self.with_stack(now, h, |stack, workers, io| {
            workers.try_accept(now, w, stack, io)
        });
    }

    /// A packet reaches `host`: its server stack, or a client socket.
    fn deliver(&mut self, now: SimTime, pkt: Packet, host: HostId) {
        let h = host_ix(host);
        if self.hosts.is_server_port(h, pkt.dst.port()) {
            self.with_stack(now, h, |stack, _, io| stack.on_segment(now, &pkt, io));
            return;
        }
        let mut io = ClientIo {
            wire: wire!(self, now),
            stats: &mut self.stats,
        };
        if let Some(o) = self
            .clients
            .on_segment(now, h, &pkt, &mut self.hosts, &mut io)
        {
            self.client_done(now, o);
        }
    }

    fn arrival(&mut self, now: SimTime, g: ClientIx) {
        let mut io = ClientIo {
            wire: wire!(self, now),
            stats: &mut self.stats,
        };
        let opened = self.clients.arrival(now, g, &mut self.hosts, &mut io);
        self.stats.connect(opened);
    }

    fn client_done(&mut self, now: SimTime, o: Outcome) {
        self.stats
            .client_done(now, o.kind, o.cause, o.started_at, o.established_at);
        if self.tap.tracing() {
            let detail = match o.cause {
                Some(c) => format!(
                    "{:?} {} <- {} (§7 {})",
                    o.kind,
                    o.local,
                    c.name(),
                    c.spec_id()
                ),
                None => format!("{:?} {}", o.kind, o.local),
            };
            self.tap.trace_event(now, "outcome", detail);
        }
    }

    /// Timeline step `i`.
    fn action(&mut self, now: SimTime, i: u32) {
        let (prim, label) = self.timeline.step(i);
        if self.tap.tracing() {
            self.tap.trace_event(now, "action", label);
        }
        match prim {
            Prim::Listen(w) => {
                let (h, l) = self.workers.own_listener(w);
                let backlog = self.workers.backlog(w);
                self.hosts.listen(h, l, backlog, w);
                self.try_accept(now, w);
            }
            Prim::Shutdown(w) | Prim::Close(w) | Prim::Kill(w) => {
                let shutdown = matches!(prim, Prim::Shutdown(_));
                let h = self.workers.host(w);
                if let Some(l) = self.workers.listener(w) {
                    self.with_stack(now, h, |stack, _, io| {
                        stack.close_listener(now, l, shutdown, io)
                    });
                }
                if let Prim::Kill(_) = prim {
                    // The process exits: each accepted child is closed, FIN
                    // or RST by whether its request is unread (§5.10).
                    let stack = self.hosts.stack(h).expect("a worker's host runs a server");
                    for c in self.workers.kill(w, stack) {
                        self.with_stack(now, h, |stack, _, io| {
                            stack.close_child(now, c, io);
                            stack.set_app_tag(c, 0);
                        });
                    }
                }
            }
            Prim::Relisten(w, backlog) => {
                // §5.1: `listen()` on a listening socket only sets its
                // backlog (nothing queued is evicted). On a socket that is
                // no longer listening it would resurrect or fail: nothing.
                let h = self.workers.host(w);
                match self.workers.listener(w) {
                    Some(l) if self.hosts.listener(h, l).is_listening() => {
                        self.hosts.listen(h, l, backlog, w);
                        if self.workers.own_listener(w).1 == l {
                            self.workers.set_backlog(w, backlog);
                        }
                    }
                    _ => {
                        if self.tap.tracing() {
                            self.tap.trace_event(
                                now,
                                "relisten_refused",
                                "the socket is not listening".into(),
                            );
                        }
                    }
                }
            }
            Prim::StopAccepting(w) => self.workers.stop_accepting(w),
            Prim::ResumeAccepting(w) => {
                self.workers.resume_accepting(w);
                self.try_accept(now, w);
            }
            Prim::SetSysctl { host, name, value } => {
                // --migrate overrides the sysctl for the whole run.
                if self.migrate.is_none() || name != "tcp_migrate_req" {
                    self.hosts.set_sysctl(host, &name, value);
                }
            }
            Prim::AttachPolicy { policy, via } => {
                let (h, l) = self.workers.own_listener(via);
                // A closed fd takes no setsockopt: nothing happens (traced).
                if !self.hosts.attach_policy(policy, h, l) && self.tap.tracing() {
                    self.tap
                        .trace_event(now, "attach_refused", "the socket is closed".into());
                }
            }
            Prim::DetachPolicy { via } => {
                let (h, l) = self.workers.own_listener(via);
                self.hosts.detach_policy(h, l);
            }
            Prim::MapUpdate {
                policy,
                write,
                flags,
            } => self.map_write(now, policy, &write, flags),
            Prim::MapDelete {
                policy,
                map,
                map_name,
                key,
            } => {
                let (h, _) = self.hosts.policy_host(policy);
                if let Some(stack) = self.hosts.stack_mut(h) {
                    stack.hooks.set_now(now);
                }
                let r = match self.map_bytes(policy, &key) {
                    Ok(k) => self.hosts.bpf_map_write(policy, map, &k, None, 0),
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    self.map_failed(now, &map_name, "delete", e);
                }
            }
            Prim::Handover { from, to } => {
                if let Some(l) = self.workers.hand_over(from, to) {
                    self.hosts.set_owner(self.workers.host(from), l, to);
                    self.try_accept(now, to);
                }
            }
        }
    }

    /// Takes the samples due before the next event at `next`: each
    /// sampling instant `s < next` sees the state after every event at or
    /// before `s`, and the queue lengths as the peaks since the previous
    /// sample, so a short peak is never missed. Inline: it runs before
    /// every event, and nearly always has nothing to do.
    #[inline(always)]
    fn sample_before(&mut self, next: SimTime) {
        if self.sampler.is_some_and(|(at, _)| at < next) {
            self.take_samples(next);
        }
    }

    /// [`World::sample_before`]'s samples, at least one due.
    #[inline(never)]
    fn take_samples(&mut self, next: SimTime) {
        while let Some((at, iv)) = self.sampler {
            if at >= next {
                return;
            }
            let (mut accept, mut syn) = (Vec::new(), Vec::new());
            for (_, _, h, l) in self.workers.iter() {
                let (s, a) = self.hosts.listener_mut(h, l).take_window_peaks();
                accept.push(a);
                syn.push(s);
            }
            self.stats.sample(at, accept, syn);
            self.sampler = Some((at + iv, iv));
        }
    }

    /// The report: each part gives its own sections.
    fn finish(mut self) -> RunResult {
        let listeners = self
            .workers
            .iter()
            .map(|(name, server, h, l)| self.hosts.listener_report(name, server, h, l))
            .collect();
        let report = Report {
            tool: ToolInfo {
                name: "reuseport-sim".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            backend: "sim".into(),
            scenario: ScenarioInfo {
                name: self.name.clone(),
                hash: self.hash.clone(),
                duration: self.duration.to_string(),
            },
            seed: self.seed,
            varied: BTreeMap::new(),
            migrate: match self.migrate {
                None => "scenario",
                Some(true) => "on",
                Some(false) => "off",
            }
            .into(),
            connections: self.stats.connections(self.clients.open() as u64),
            resets_by_cause: self.stats.resets(),
            drops_by_cause: self.stats.drops(),
            migrations: self.stats.migrations(),
            policies: self.hosts.policies(),
            counters: self.hosts.counters(),
            counters_by_host: self.hosts.counters_by_host(),
            time_wait: self.hosts.time_wait_report(),
            client_rsts_by_cause: self.stats.client_rsts(),
            listeners,
            latency: self.stats.latency(),
            network: self.net.summary(),
            events: self.events,
            digest: self.digest.hex(),
            kernel: None,
        };
        RunResult {
            report,
            samples: self.stats.take_samples(),
            worker_names: self.workers.iter().map(|w| w.0.to_string()).collect(),
            worker_generations: Vec::new(),
            markers: self.timeline.markers(),
        }
    }
}
