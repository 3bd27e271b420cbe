//! The scenario runner: builds hosts, links, server stacks, workers and client
//! populations from a [`Scenario`], drives them with the `sim-core` event
//! queue, and produces a [`Report`].

use crate::group::ReuseportTable;
use crate::policy::{Policy, Rule};
use crate::report::*;
use crate::scenario::plan::{AcceptModel, ArrivalPlan, FaultPlan, Plan, Prim, RulePlan, WorkerIx};
use crate::scenario::{lower, Scenario, ScenarioError};
pub use crate::scenario::{scenario_hash, MAX_BURST, MAX_DELAY, MAX_WORKERS};
use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;
use serde::Serialize;
use sim_core::{
    exponential_ns, uniform_below, Delivery, Digest, DropReason, EventQueue, Fault, FilterId,
    FourTuple, HostId, LinkId, Network, Packet, PacketFilter, RngStreams, SimDuration, SimRng,
    SimTime, TopologyBuilder, TupleMap,
};
use sim_tcp::{
    time_wait_reply, ChildKey, ClientConfig, ClientOutcome, ClientOutput, ClientSocket, DropCause,
    FlowHasher, ListenerId, ListenerOptions, ListenerState, MigrationPath, RstCause, ServerEvent,
    ServerOutput, ServerStack, ServerTimer, Sysctls,
};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

slotmap::new_key_type! {
    /// A client connection of the run.
    pub struct ClientKey;
}

/// Receives every packet the moment it is sent (for pcap capture).
pub trait PacketTap {
    /// `pkt` leaves its host at `t`.
    fn packet(&mut self, t: SimTime, pkt: &Packet);
}

impl<W: Write> PacketTap for sim_core::PcapWriter<W> {
    fn packet(&mut self, t: SimTime, pkt: &Packet) {
        // A write error surfaces when the writer is finished (`into_inner`).
        let _ = self.write_packet(t, pkt);
    }
}

/// How to run a scenario.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Seed override (default: the scenario's).
    pub seed: Option<u64>,
    /// Override `tcp_migrate_req` on every host for the whole run.
    pub migrate: Option<bool>,
    /// JSON-lines trace sink.
    pub trace: Option<&'a mut dyn Write>,
    /// Packet capture.
    pub tap: Option<&'a mut dyn PacketTap>,
    /// Sample queue lengths and outcomes at this interval (for plots).
    pub sample_interval: Option<SimDuration>,
    /// **Test-only**: break this migration path on every server host
    /// (see `ServerStack::inject_bug`). `None` in every real run.
    pub inject_bug: Option<MigrationPath>,
}

/// A time series sample for plots.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Time in seconds.
    pub t_s: f64,
    /// Cumulative completed, reset, refused, timed out.
    pub outcomes: [u64; 4],
    /// Accept-queue length per worker listener (report order).
    pub accept_queues: Vec<u32>,
    /// SYN-queue length per worker listener.
    pub syn_queues: Vec<u32>,
}

/// Everything a run produces.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The report.
    pub report: Report,
    /// Samples (when requested).
    pub samples: Vec<Sample>,
    /// Worker names in listener order (labels for samples).
    pub worker_names: Vec<String>,
    /// Timeline actions as (time in s, label), for plot markers.
    pub markers: Vec<(f64, String)>,
}

#[derive(Copy, Clone, Debug)]
enum Ev {
    /// A packet (index into the in-flight packet slab) reaches its host.
    Deliver(u32),
    ClientTimer(ClientKey),
    ServerTimer(u16, ServerTimer),
    Arrival(u16),
    AcceptTick(u16),
    ServiceDone(u16, ChildKey),
    Action(u32),
    Sample,
    /// The oldest batch of [`HorizonBatches`] is due.
    HorizonBatch,
}

struct Worker {
    name: String,
    server: usize,
    host: usize,
    own_listener: ListenerId,
    listener: Option<ListenerId>,
    accepting: bool,
    accept: AcceptModel,
    service_time: SimDuration,
    response_bytes: u32,
    backlog: u32,
    tick_pending: bool,
    next_accept_at: SimTime,
}

struct ServerHost {
    stack: ServerStack<ReuseportTable>,
    /// listener → the worker that accepts from it.
    owner: Vec<Option<usize>>,
    /// Accepted children → (worker, service started).
    /// Policy index in the table → scenario policy index.
    policy_names: Vec<String>,
}

struct Gen {
    host: usize,
    server_host: usize,
    server_addr: SocketAddr,
    arrival: ArrivalPlan,
    start: SimTime,
    stop: SimTime,
    rng: SimRng,
    cfg: ClientConfig,
    sources: Vec<IpAddr>,
    next_source: usize,
    next_port: Vec<u16>,
    issued: u64,
}

/// The tag a worker puts on a child it accepted: the worker's index and
/// whether its service has started.
#[derive(Copy, Clone)]
struct AppTag(u64);

impl AppTag {
    fn accepted_by(w: usize) -> Self {
        AppTag(((w as u64) + 1) << 1)
    }
    fn with_service(self) -> Self {
        AppTag(self.0 | 1)
    }
    fn serving(self) -> bool {
        self.0 & 1 == 1
    }
    fn worker(self) -> usize {
        ((self.0 >> 1) - 1) as usize
    }
}

struct Conn {
    sock: ClientSocket,
    host: usize,
}

#[derive(Default)]
struct Stats {
    conns: Connections,
    rsts_sent: BTreeMap<RstCause, u64>,
    conn_reset_by: BTreeMap<RstCause, u64>,
    conn_refused_by: BTreeMap<RstCause, u64>,
    drops: BTreeMap<DropCause, u64>,
    migrations: [u64; 3],
    failed: u64,
    failures: BTreeMap<String, u64>,
    connections_migrated: u64,
    net: NetworkSummary,
}

struct Tap<'a> {
    trace: Option<&'a mut dyn Write>,
    pcap: Option<&'a mut dyn PacketTap>,
    io_error: Option<std::io::Error>,
}

#[derive(Serialize)]
struct TraceRec<'a> {
    t_ns: u64,
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ack: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    len: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl TraceRec<'_> {
    fn new(t: SimTime, event: &str) -> TraceRec<'_> {
        TraceRec {
            t_ns: t.as_nanos(),
            event,
            src: None,
            dst: None,
            flags: None,
            seq: None,
            ack: None,
            len: None,
            detail: None,
        }
    }
}

impl Tap<'_> {
    /// Records a packet event; `detail` is only computed when tracing.
    #[inline]
    fn trace_packet(
        &mut self,
        t: SimTime,
        event: &str,
        pkt: &Packet,
        detail: impl FnOnce() -> Option<String>,
    ) {
        if let Some(w) = self.trace.as_deref_mut() {
            let detail = detail();
            let rec = TraceRec {
                src: Some(pkt.src),
                dst: Some(pkt.dst),
                flags: Some(pkt.flags.to_string()),
                seq: Some(pkt.seq),
                ack: Some(pkt.ack),
                len: Some(pkt.payload_len),
                detail,
                ..TraceRec::new(t, event)
            };
            write_trace(w, &rec, &mut self.io_error);
        }
    }

    fn trace_event(&mut self, t: SimTime, event: &str, detail: String) {
        if let Some(w) = self.trace.as_deref_mut() {
            let rec = TraceRec {
                detail: Some(detail),
                ..TraceRec::new(t, event)
            };
            write_trace(w, &rec, &mut self.io_error);
        }
    }
}

fn write_trace(w: &mut dyn Write, rec: &TraceRec, err: &mut Option<std::io::Error>) {
    let r = serde_json::to_writer(&mut *w, rec)
        .map_err(std::io::Error::from)
        .and_then(|_| w.write_all(b"\n"));
    if let Err(e) = r {
        err.get_or_insert(e);
    }
}

/// A [`Wire`] over the engine fields of a `Sim` (a macro, so that the
/// borrows stay disjoint from the other fields).
macro_rules! wire {
    ($sim:ident, $now:expr, $src:expr) => {
        Wire {
            now: $now,
            src: $src,
            queue: &mut $sim.queue,
            net: &mut $sim.net,
            tap: &mut $sim.tap,
            stats: &mut $sim.stats,
            lanes: &mut $sim.lanes,
        }
    };
}

/// Sends a packet through the network and schedules its arrival.
struct Wire<'s, 'a> {
    now: SimTime,
    /// The host whose stack sends through this wire.
    src: HostId,
    queue: &'s mut EventQueue<Ev>,
    net: &'s mut Network,
    tap: &'s mut Tap<'a>,
    stats: &'s mut Stats,
    lanes: &'s mut Lanes,
}

/// TCP timers' horizon checks (`sim_core::horizon_check`), batched: every
/// timer armed within one grid step is checked at the same instant, so one
/// queue event wakes them all instead of one event each. Nearly all of
/// them belong to sockets that are gone or timers already cancelled by
/// then, and the check is cheap.
#[derive(Default)]
struct HorizonBatches {
    /// The check instant of the newest batch.
    newest: Option<SimTime>,
    /// Timer events by batch, oldest first.
    batches: VecDeque<Vec<Ev>>,
    /// Emptied batches for reuse.
    spare: Vec<Vec<Ev>>,
}

/// Event-queue lanes (see `sim_core::queue`): one per (source, destination)
/// host pair for packets, one per distinct timer delay for timers. Both
/// streams are scheduled in time order, so the heap holds only lane heads.
///
/// Also the slab of packets in flight, so that queue entries stay small.
struct Lanes {
    hosts: u32,
    horizon: HorizonBatches,
    delays: FxHashMap<u64, u32>,
    /// The first few delays seen (delay ns, lane), scanned before `delays`:
    /// most runs use a handful (arrival interval, service time, timers).
    hot_delays: Vec<(u64, u32)>,
    packets: Vec<(Packet, HostId)>,
    /// Free slots of `packets`, reused last in first out: the slot freed
    /// last was just read and is still in cache.
    free: Vec<u32>,
}

impl Lanes {
    fn park(&mut self, pkt: Packet, dst: HostId) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.packets[i as usize] = (pkt, dst);
                i
            }
            None => {
                self.packets.push((pkt, dst));
                (self.packets.len() - 1) as u32
            }
        }
    }

    fn unpark(&mut self, i: u32) -> (Packet, HostId) {
        self.free.push(i);
        self.packets[i as usize]
    }

    const MAX_DELAY_LANES: usize = 1024;

    /// The lane of the scenario's timeline actions, right after the path
    /// lanes (the horizon lane, then the delay lanes follow it).
    fn timeline(hosts: u32) -> u32 {
        hosts * hosts
    }

    /// The lane of [`Ev::HorizonBatch`] events.
    fn horizon(hosts: u32) -> u32 {
        hosts * hosts + 1
    }

    fn path(&self, src: HostId, dst: HostId) -> u32 {
        src.0 * self.hosts + dst.0
    }

    fn delay(&mut self, d: SimDuration) -> Option<u32> {
        const HOT: usize = 8;
        let ns = d.as_nanos();
        if let Some(&(_, l)) = self.hot_delays.iter().find(|&&(x, _)| x == ns) {
            return Some(l);
        }
        if let Some(&l) = self.delays.get(&ns) {
            return Some(l);
        }
        let known = self.hot_delays.len() + self.delays.len();
        if known >= Self::MAX_DELAY_LANES {
            return None;
        }
        let l = Self::horizon(self.hosts) + 1 + known as u32;
        if self.hot_delays.len() < HOT {
            self.hot_delays.push((ns, l));
        } else {
            self.delays.insert(ns, l);
        }
        Some(l)
    }
}

impl Wire<'_, '_> {
    fn schedule_timer(&mut self, at: SimTime, ev: Ev) {
        if matches!(ev, Ev::ClientTimer(_) | Ev::ServerTimer(..))
            && at == sim_core::horizon_check(self.now, sim_tcp::TIMER_HORIZON)
        {
            let batches = &mut self.lanes.horizon;
            if batches.newest == Some(at) {
                batches.batches.back_mut().expect("newest batch").push(ev);
            } else {
                // Check instants grow with `now`: the batches stay in order.
                batches.newest = Some(at);
                let mut batch = batches.spare.pop().unwrap_or_default();
                batch.push(ev);
                batches.batches.push_back(batch);
                let lane = Lanes::horizon(self.lanes.hosts);
                self.queue.schedule_in_lane(at, lane, Ev::HorizonBatch);
            }
            return;
        }
        match self.lanes.delay(at - self.now) {
            Some(lane) => self.queue.schedule_in_lane(at, lane, ev),
            None => self.queue.schedule(at, ev),
        }
    }

    fn send(&mut self, pkt: Packet) {
        self.stats.net.sent += 1;
        if let Some(p) = self.tap.pcap.as_deref_mut() {
            p.packet(self.now, &pkt);
        }
        match self.net.transmit_from(self.now, self.src, &pkt) {
            Delivery::Arrive {
                at,
                src_host,
                dst_host,
            } => {
                self.tap.trace_packet(self.now, "send", &pkt, || None);
                let lane = self.lanes.path(src_host, dst_host);
                let slot = self.lanes.park(pkt, dst_host);
                self.queue.schedule_in_lane(at, lane, Ev::Deliver(slot));
            }
            Delivery::Dropped { reason, .. } => {
                let why = match reason {
                    DropReason::Loss => {
                        self.stats.net.lost += 1;
                        "loss"
                    }
                    DropReason::LinkDown => {
                        self.stats.net.link_down += 1;
                        "link_down"
                    }
                    DropReason::Filter(_) => {
                        self.stats.net.filtered += 1;
                        "filter"
                    }
                    DropReason::NoRoute => "no_route",
                };
                self.tap
                    .trace_packet(self.now, "net_drop", &pkt, || Some(why.to_string()));
            }
        }
    }
}

struct HostIo<'s, 'a> {
    wire: Wire<'s, 'a>,
    host: u16,
    rst_causes: &'s mut FxHashMap<FourTuple, RstCause>,
    events: &'s mut Vec<ServerEvent>,
}

impl ServerOutput for HostIo<'_, '_> {
    fn transmit(&mut self, pkt: Packet, rst: Option<RstCause>) {
        if let Some(cause) = rst {
            *self.wire.stats.rsts_sent.entry(cause).or_default() += 1;
            // Keep the first RST's cause: when several RSTs are sent for one
            // connection (e.g. §7 B for the final ACK, then §7 D for the data
            // right behind it), the first to arrive is the one that resets it.
            self.rst_causes
                .entry(FourTuple {
                    local: pkt.dst,
                    remote: pkt.src,
                })
                .or_insert(cause);
            self.wire.tap.trace_packet(self.wire.now, "rst", &pkt, || {
                Some(format!(
                    "{} (§7 {}, {})",
                    cause.name(),
                    cause.spec_id(),
                    cause.spec_rule()
                ))
            });
        }
        self.wire.send(pkt);
    }
    fn set_timer(&mut self, at: SimTime, timer: ServerTimer) {
        self.wire
            .schedule_timer(at, Ev::ServerTimer(self.host, timer));
    }
    fn notify(&mut self, ev: ServerEvent) {
        self.events.push(ev);
    }
}

struct ClientIo<'s, 'a> {
    wire: Wire<'s, 'a>,
    key: ClientKey,
    outcome: Option<ClientOutcome>,
}

impl ClientOutput for ClientIo<'_, '_> {
    fn transmit(&mut self, pkt: Packet) {
        self.wire.send(pkt);
    }
    fn set_timer(&mut self, at: SimTime) {
        self.wire.schedule_timer(at, Ev::ClientTimer(self.key));
    }
    fn outcome(&mut self, outcome: ClientOutcome) {
        self.outcome = Some(outcome);
    }
}

/// A built simulation, ready to run.
pub struct Sim<'a> {
    scenario_name: String,
    scenario_hash: String,
    duration: SimDuration,
    seed: u64,
    migrate: Option<bool>,
    queue: EventQueue<Ev>,
    net: Network,
    host_names: Vec<String>,
    sysctls: Vec<Sysctls>,
    servers: Vec<Option<ServerHost>>,
    server_specs: Vec<(String, usize)>,
    /// Sorted server ports per host: segments to them go to the server stack.
    server_ports: Vec<Vec<u16>>,
    /// Scenario policy index → (host, slot in that host's table).
    policy_slots: Vec<(usize, usize)>,
    workers: Vec<Worker>,
    gens: Vec<Gen>,
    /// Dense: the live sockets stay contiguous after a reload's peak, where
    /// a plain slot map would keep reusing slots scattered over the peak.
    clients: slotmap::DenseSlotMap<ClientKey, Conn>,
    client_by_tuple: TupleMap<ClientKey>,
    rst_causes: FxHashMap<FourTuple, RstCause>,
    actions: Vec<(SimTime, Prim, String)>,
    stats: Stats,
    handshake: Histogram<u64>,
    completion: Histogram<u64>,
    digest: Digest,
    events: u64,
    tap: Tap<'a>,
    lanes: Lanes,
    pending: Vec<ServerEvent>,
    sample_interval: Option<SimDuration>,
    samples: Vec<Sample>,
}

/// Removes the RST cause recorded for `tuple`, without hashing the tuple
/// when nothing is recorded (the common case: most runs reset nothing).
fn take_cause(causes: &mut FxHashMap<FourTuple, RstCause>, tuple: &FourTuple) -> Option<RstCause> {
    if causes.is_empty() {
        None
    } else {
        causes.remove(tuple)
    }
}

/// Maximum events one run may process (a bound on everything, asserted).
pub const MAX_EVENTS: u64 = 2_000_000_000;

impl<'a> Sim<'a> {
    /// Lowers `scn` and builds the simulation. Every error names the JSON
    /// path of the offending field.
    pub fn build(scn: &Scenario, opts: RunOptions<'a>) -> Result<Self, ScenarioError> {
        let plan = lower(scn)?;
        Ok(Sim::new(&plan, opts))
    }

    /// Builds the simulation of `plan`.
    pub fn new(plan: &Plan, opts: RunOptions<'a>) -> Self {
        let seed = opts.seed.unwrap_or(plan.seed);
        let rng = RngStreams::new(seed);
        let duration = plan.duration;
        let sysctls: Vec<Sysctls> = plan
            .hosts
            .iter()
            .map(|h| {
                let mut s = h.sysctls.clone();
                if let Some(m) = opts.migrate {
                    s.tcp_migrate_req = u8::from(m);
                }
                s
            })
            .collect();
        let mut topo = TopologyBuilder::new();
        for h in &plan.hosts {
            topo.add_host(&h.name, &h.addresses);
        }
        for l in &plan.links {
            topo.add_link(HostId(u32::from(l.a.0)), HostId(u32::from(l.b.0)), l.params);
        }
        let mut net = topo.build(&rng);
        for (i, f) in plan.faults.iter().enumerate() {
            let fault = match *f {
                FaultPlan::LinkDown { link, from, until } => Fault::LinkDown {
                    link: LinkId(link.0),
                    from,
                    until,
                },
                FaultPlan::SetLink {
                    link,
                    at,
                    latency,
                    jitter,
                    loss,
                } => {
                    let link = LinkId(link.0);
                    let mut params = net.link_params_at(link, at);
                    if let Some(l) = latency {
                        params.latency = l;
                    }
                    if let Some(j) = jitter {
                        params.jitter = j;
                    }
                    if let Some(p) = loss {
                        params.loss = p;
                    }
                    Fault::SetLinkParams { link, at, params }
                }
                FaultPlan::DropPackets {
                    from,
                    until,
                    match_kind,
                    src_host,
                    dst_host,
                    dst_port,
                    src_port,
                } => Fault::Filter {
                    id: FilterId(i as u32),
                    rule: PacketFilter {
                        src_host: src_host.map(|h| HostId(u32::from(h.0))),
                        dst_host: dst_host.map(|h| HostId(u32::from(h.0))),
                        dst_port,
                        src_port,
                        match_kind,
                    },
                    from,
                    until,
                },
            };
            net.add_fault(fault);
        }
        let mut servers: Vec<Option<ServerHost>> = (0..plan.hosts.len()).map(|_| None).collect();
        for s in &plan.servers {
            let h = s.host.index();
            if servers[h].is_none() {
                let flow = FlowHasher::new(sim_core::uniform_below(
                    &mut rng.stream("flow-hash-secret", h as u64),
                    u64::MAX,
                ));
                let mut stack = ServerStack::new(sysctls[h].clone(), ReuseportTable::new(), flow);
                stack.inject_bug = opts.inject_bug;
                servers[h] = Some(ServerHost {
                    stack,
                    owner: Vec::new(),
                    policy_names: Vec::new(),
                });
            }
        }
        let server_specs: Vec<(String, usize)> = plan
            .servers
            .iter()
            .map(|s| (s.name.clone(), s.host.index()))
            .collect();
        let mut workers = Vec::new();
        for (i, w) in plan.workers.iter().enumerate() {
            let h = w.host.index();
            let host = servers[h].as_mut().expect("server host");
            let l = host.stack.bind(
                plan.servers[w.server.index()].local,
                ListenerOptions {
                    syn_retries: w.syn_retries,
                    fastopen_qlen: w.fast_open_qlen,
                    v6only: w.v6only,
                },
            );
            host.stack.hooks.set_generation(l, w.generation);
            host.owner.push(Some(i));
            workers.push(Worker {
                name: w.name.clone(),
                server: w.server.index(),
                host: h,
                own_listener: l,
                listener: Some(l),
                accepting: true,
                accept: w.accept,
                service_time: w.service_time,
                response_bytes: w.response_bytes,
                backlog: w.backlog,
                tick_pending: false,
                next_accept_at: SimTime::ZERO,
            });
        }
        let mut policy_slots = Vec::new();
        for p in &plan.policies {
            let own = |w: WorkerIx| workers[w.index()].own_listener;
            let rule = |r: &RulePlan| match r {
                RulePlan::Pass => Rule::Pass,
                RulePlan::Drop => Rule::Drop,
                RulePlan::NewestGeneration => Rule::NewestGeneration,
                RulePlan::LeastLoaded => Rule::LeastLoaded,
                RulePlan::Pick(w) => Rule::Pick(own(*w)),
                RulePlan::Map {
                    targets,
                    missing_drop,
                } => Rule::MapByClosingListener {
                    targets: targets.iter().map(|&(f, t)| (own(f), own(t))).collect(),
                    missing_drop: *missing_drop,
                },
            };
            let cancel = p.cancel_for.iter().map(|&w| own(w)).collect();
            let h = p.host.index();
            let host = servers[h].as_mut().expect("server host");
            let slot = host.stack.hooks.add_policy(Policy::new(
                &p.name,
                p.kind,
                rule(&p.on_syn),
                rule(&p.on_migrate),
                cancel,
            ));
            host.policy_names.push(p.name.clone());
            policy_slots.push((h, slot));
        }
        let actions: Vec<(SimTime, Prim, String)> = plan
            .timeline
            .iter()
            .map(|s| (s.at, s.prim.clone(), s.label.clone()))
            .collect();
        let gens: Vec<Gen> = plan
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| Gen {
                host: c.host.index(),
                server_host: c.server_host.index(),
                server_addr: c.server_addr,
                arrival: c.arrival,
                start: c.start,
                stop: c.stop,
                rng: rng.stream("arrivals", i as u64),
                cfg: ClientConfig {
                    request_bytes: c.request_bytes,
                    fast_open: c.fast_open,
                    has_cookie: c.has_cookie,
                },
                next_port: vec![32768; c.sources.len()],
                sources: c.sources.clone(),
                next_source: 0,
                issued: 0,
            })
            .collect();
        let mut server_ports = vec![Vec::new(); plan.hosts.len()];
        for s in &plan.servers {
            server_ports[s.host.index()].push(s.local.port());
        }
        for p in &mut server_ports {
            p.sort_unstable();
            p.dedup();
        }
        let mut queue = EventQueue::with_capacity(1024);
        // The timeline is in time order: a lane keeps its hundreds of
        // actions (a reload of 16 workers is ~50) out of the heap.
        let timeline = Lanes::timeline(plan.hosts.len() as u32);
        for (i, (t, _, _)) in actions.iter().enumerate() {
            queue.schedule_in_lane(*t, timeline, Ev::Action(i as u32));
        }
        for (i, g) in gens.iter().enumerate() {
            if g.start < g.stop || matches!(g.arrival, ArrivalPlan::Burst { .. }) {
                queue.schedule(g.start, Ev::Arrival(i as u16));
            }
        }
        if let Some(iv) = opts.sample_interval {
            queue.schedule(SimTime::ZERO, Ev::Sample);
            assert!(iv > SimDuration::ZERO);
        }
        let hist = || Histogram::<u64>::new_with_bounds(1, 1 << 44, 3).expect("histogram bounds");
        Sim {
            scenario_name: plan.name.clone(),
            scenario_hash: plan.hash.clone(),
            duration,
            seed,
            migrate: opts.migrate,
            queue,
            net,
            host_names: plan.hosts.iter().map(|h| h.name.clone()).collect(),
            sysctls,
            servers,
            server_specs,
            server_ports,
            policy_slots,
            workers,
            gens,
            clients: slotmap::DenseSlotMap::with_key(),
            client_by_tuple: TupleMap::default(),
            rst_causes: FxHashMap::default(),
            actions,
            stats: Stats::default(),
            handshake: hist(),
            completion: hist(),
            digest: Digest::new(),
            events: 0,
            tap: Tap {
                trace: opts.trace,
                pcap: opts.tap,
                io_error: None,
            },
            lanes: Lanes {
                hosts: plan.hosts.len() as u32,
                horizon: HorizonBatches::default(),
                delays: FxHashMap::default(),
                hot_delays: Vec::new(),
                packets: Vec::new(),
                free: Vec::new(),
            },
            pending: Vec::new(),
            sample_interval: opts.sample_interval,
            samples: Vec::new(),
        }
    }

    /// Runs to the scenario's duration and reports.
    pub fn run(mut self) -> Result<RunResult, RunError> {
        let end = SimTime::ZERO + self.duration;
        let mut pops = 0u64;
        while let Some(t) = self.queue.peek_time() {
            if t > end {
                break;
            }
            let (now, ev) = self.queue.pop().expect("peeked");
            // A horizon batch adds its other checks to `events` itself.
            self.events += 1;
            self.digest_event(now, &ev);
            self.dispatch(now, ev);
            if self.events > MAX_EVENTS {
                return Err(RunError::Limit(format!(
                    "the run exceeded {MAX_EVENTS} events at simulated time {now}; shorten the duration or lower the load"
                )));
            }
            pops += 1;
            if pops % (1 << 14) == 0 {
                self.compact();
            }
        }
        if let Some(e) = self.tap.io_error.take() {
            return Err(RunError::Io(e));
        }
        if let Some(w) = self.tap.trace.as_deref_mut() {
            w.flush().map_err(RunError::Io)?;
        }
        Ok(self.finish())
    }

    /// Shrinks lookup tables left sparse by a peak (e.g. a reload drain):
    /// a large sparse hash table costs cache misses on every lookup.
    fn compact(&mut self) {
        self.client_by_tuple.shrink_after_peak();
        sim_core::shrink_after_peak(&mut self.rst_causes);
        for s in self.servers.iter_mut().flatten() {
            s.stack.compact();
        }
    }

    #[inline(always)]
    fn digest_event(&mut self, now: SimTime, ev: &Ev) {
        let mix = match ev {
            Ev::Deliver(slot) => {
                let p = &self.lanes.packets[*slot as usize].0;
                let ports = (u64::from(p.src.port()) << 16) | u64::from(p.dst.port());
                1 ^ (ports << 8)
                    ^ (u64::from(p.flags.0) << 40)
                    ^ (u64::from(p.seq) << 1)
                    ^ (u64::from(p.ack) << 31)
                    ^ (u64::from(p.payload_len) << 48)
            }
            Ev::ClientTimer(k) => 2 ^ (slotmap::Key::data(k).as_ffi() << 4),
            Ev::ServerTimer(h, ServerTimer::Req(r)) => {
                3 ^ (u64::from(*h) << 4) ^ (slotmap::Key::data(r).as_ffi() << 8)
            }
            Ev::ServerTimer(h, ServerTimer::Child(c)) => {
                4 ^ (u64::from(*h) << 4) ^ (slotmap::Key::data(c).as_ffi() << 8)
            }
            Ev::Arrival(g) => 5 ^ (u64::from(*g) << 4),
            Ev::AcceptTick(w) => 6 ^ (u64::from(*w) << 4),
            Ev::ServiceDone(h, c) => {
                7 ^ (u64::from(*h) << 4) ^ (slotmap::Key::data(c).as_ffi() << 8)
            }
            Ev::Action(i) => 8 ^ (u64::from(*i) << 4),
            Ev::Sample => 9,
            Ev::HorizonBatch => 10,
        };
        self.digest.update_u64(now.as_nanos());
        self.digest.update_u64(mix);
    }

    fn wire(&mut self, now: SimTime, src: HostId) -> Wire<'_, 'a> {
        wire!(self, now, src)
    }

    fn dispatch(&mut self, now: SimTime, ev: Ev) {
        match ev {
            Ev::Deliver(slot) => {
                let (pkt, dst) = self.lanes.unpark(slot);
                self.deliver(now, pkt, dst)
            }
            Ev::ClientTimer(_) | Ev::ServerTimer(..) => self.timer(now, ev),
            Ev::HorizonBatch => self.horizon_batch(now),
            Ev::Arrival(g) => self.arrival(now, g as usize),
            Ev::AcceptTick(w) => {
                self.workers[w as usize].tick_pending = false;
                self.accept_tick(now, w as usize);
            }
            Ev::ServiceDone(h, c) => {
                let host = h as usize;
                let worker = match self.servers[host].as_ref().and_then(|s| s.stack.app_tag(c)) {
                    Some(tag) if tag != 0 => AppTag(tag).worker(),
                    _ => return,
                };
                let len = self.workers[worker].response_bytes;
                self.with_stack(now, host, |stack, io| stack.respond(now, c, len, io));
            }
            Ev::Action(i) => self.action(now, i as usize),
            Ev::Sample => {
                self.take_sample(now);
                if let Some(iv) = self.sample_interval {
                    self.queue.schedule(now + iv, Ev::Sample);
                }
            }
        }
    }

    /// A TCP timer's queue entry pops.
    fn timer(&mut self, now: SimTime, ev: Ev) {
        match ev {
            Ev::ClientTimer(k) => {
                let Some(conn) = self.clients.get_mut(k) else {
                    return;
                };
                let sys = &self.sysctls[conn.host];
                let mut io = ClientIo {
                    wire: wire!(self, now, HostId(conn.host as u32)),
                    key: k,
                    outcome: None,
                };
                conn.sock.on_timer(now, sys, &mut io);
                if let Some(o) = io.outcome {
                    self.client_done(now, k, o, None);
                }
            }
            Ev::ServerTimer(h, timer) => {
                // Most horizon checks are of sockets long gone: skip the
                // stack's I/O setup for them.
                let exists = self.servers[h as usize]
                    .as_ref()
                    .is_some_and(|s| s.stack.timer_owner_exists(timer));
                if exists {
                    self.with_stack(now, h as usize, |stack, io| stack.on_timer(now, timer, io));
                }
            }
            _ => unreachable!("not a timer event"),
        }
    }

    /// The oldest horizon batch is due: check each timer in it, in the
    /// order they were armed. Each check counts as one event (the batch's
    /// own queue entry does not).
    fn horizon_batch(&mut self, now: SimTime) {
        let mut batch = self
            .lanes
            .horizon
            .batches
            .pop_front()
            .expect("a batch per event");
        self.events += batch.len() as u64 - 1;
        for ev in batch.drain(..) {
            self.digest_event(now, &ev);
            self.timer(now, ev);
        }
        self.lanes.horizon.spare.push(batch);
    }

    /// Runs `f` on host `h`'s stack, then handles the events it reported.
    fn with_stack(
        &mut self,
        now: SimTime,
        h: usize,
        f: impl FnOnce(&mut ServerStack<ReuseportTable>, &mut HostIo<'_, 'a>),
    ) {
        let Some(server) = self.servers[h].as_mut() else {
            return;
        };
        let mut events = std::mem::take(&mut self.pending);
        {
            let mut io = HostIo {
                wire: wire!(self, now, HostId(h as u32)),
                host: h as u16,
                rst_causes: &mut self.rst_causes,
                events: &mut events,
            };
            f(&mut server.stack, &mut io);
        }
        for ev in events.drain(..) {
            self.server_event(now, h, ev);
        }
        self.pending = events;
    }

    fn server_event(&mut self, now: SimTime, h: usize, ev: ServerEvent) {
        match ev {
            ServerEvent::ChildQueued { listener, .. } => {
                let owner = self.servers[h]
                    .as_ref()
                    .and_then(|s| s.owner.get(listener.index()).copied().flatten());
                if let Some(w) = owner {
                    self.try_accept(now, w);
                }
            }
            ServerEvent::RequestReceived { child } => {
                let server = self.servers[h].as_mut().expect("server host");
                let tag = AppTag(server.stack.app_tag(child).unwrap_or(0));
                if tag.0 != 0 && !tag.serving() {
                    server.stack.set_app_tag(child, tag.with_service().0);
                    self.start_service(now, h, tag.worker(), child);
                }
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
                let i = match path {
                    MigrationPath::AcceptQueue => 0,
                    MigrationPath::SynackTimer => 1,
                    MigrationPath::FinalAck => 2,
                };
                self.stats.migrations[i] += 1;
                if first {
                    self.stats.connections_migrated += 1;
                }
                if self.tap.trace.is_some() {
                    self.tap.trace_event(
                        now,
                        "migrate",
                        format!("{} listener {} -> {}", path.name(), from.0, to.0),
                    );
                }
            }
            ServerEvent::MigrationFailed { path, from, reason } => {
                self.stats.failed += 1;
                *self
                    .stats
                    .failures
                    .entry(format!("{}/{}", path.name(), reason.name()))
                    .or_default() += 1;
                if self.tap.trace.is_some() {
                    self.tap.trace_event(
                        now,
                        "migrate_fail",
                        format!("{} listener {}: {}", path.name(), from.0, reason.name()),
                    );
                }
            }
            ServerEvent::Dropped { cause } => {
                *self.stats.drops.entry(cause).or_default() += 1;
                if self.tap.trace.is_some() {
                    self.tap.trace_event(
                        now,
                        "drop",
                        format!("{} ({})", cause.name(), cause.spec_rule()),
                    );
                }
            }
        }
    }

    fn start_service(&mut self, now: SimTime, h: usize, w: usize, child: ChildKey) {
        let st = self.workers[w].service_time;
        if st == SimDuration::ZERO {
            let len = self.workers[w].response_bytes;
            self.with_stack(now, h, |stack, io| stack.respond(now, child, len, io));
        } else {
            self.wire(now, HostId(h as u32))
                .schedule_timer(now + st, Ev::ServiceDone(h as u16, child));
        }
    }

    fn listener_of(&self, w: usize) -> Option<ListenerId> {
        self.workers[w].listener
    }

    /// Accept whatever the worker's accept model allows now.
    fn try_accept(&mut self, now: SimTime, w: usize) {
        let worker = &self.workers[w];
        if !worker.accepting || worker.listener.is_none() {
            return;
        }
        match worker.accept {
            AcceptModel::Immediate => while self.accept_one(now, w) {},
            AcceptModel::Rate { .. } | AcceptModel::Batch { .. } => {
                if !worker.tick_pending {
                    let at = worker.next_accept_at.max(now);
                    self.workers[w].tick_pending = true;
                    self.queue.schedule(at, Ev::AcceptTick(w as u16));
                }
            }
        }
    }

    fn accept_tick(&mut self, now: SimTime, w: usize) {
        let worker = &self.workers[w];
        if !worker.accepting || worker.listener.is_none() {
            return;
        }
        let (budget, interval) = match worker.accept {
            AcceptModel::Immediate => return,
            AcceptModel::Rate { per_second } => (
                1,
                SimDuration::from_nanos((1_000_000_000 / per_second).max(1)),
            ),
            AcceptModel::Batch { interval, max } => (max, interval),
        };
        let mut got = 0;
        while got < budget && self.accept_one(now, w) {
            got += 1;
        }
        self.workers[w].next_accept_at = now + interval;
        // More waiting: come back after the interval.
        let l = self.listener_of(w).expect("listener");
        let waiting = self.servers[self.workers[w].host]
            .as_ref()
            .is_some_and(|s| !s.stack.listeners[l.index()].accept_queue.is_empty());
        if waiting && !self.workers[w].tick_pending {
            self.workers[w].tick_pending = true;
            let h = HostId(self.workers[w].host as u32);
            self.wire(now, h)
                .schedule_timer(now + interval, Ev::AcceptTick(w as u16));
        }
    }

    fn accept_one(&mut self, now: SimTime, w: usize) -> bool {
        let h = self.workers[w].host;
        let l = self.listener_of(w).expect("listener");
        let server = self.servers[h].as_mut().expect("server host");
        let Ok(Some(child)) = server.stack.accept(l) else {
            return false;
        };
        let has_request = server
            .stack
            .child(child)
            .is_some_and(|c| c.request_bytes > 0);
        let tag = AppTag::accepted_by(w);
        let tag = if has_request { tag.with_service() } else { tag };
        server.stack.set_app_tag(child, tag.0);
        if has_request {
            self.start_service(now, h, w, child);
        }
        true
    }

    fn deliver(&mut self, now: SimTime, pkt: Packet, host: HostId) {
        let h = host.0 as usize;
        // Clients never use a server port of their host (see `connect`).
        if self.server_ports[h].binary_search(&pkt.dst.port()).is_ok() {
            self.with_stack(now, h, |stack, io| stack.on_segment(now, &pkt, io));
            return;
        }
        let tuple = FourTuple {
            local: pkt.dst,
            remote: pkt.src,
        };
        if let Some(&k) = self.client_by_tuple.get(&tuple) {
            let conn = &mut self.clients[k];
            let sys = &self.sysctls[conn.host];
            let mut io = ClientIo {
                wire: wire!(self, now, HostId(conn.host as u32)),
                key: k,
                outcome: None,
            };
            conn.sock.on_segment(now, &pkt, sys, &mut io);
            if let Some(o) = io.outcome {
                let cause = take_cause(&mut self.rst_causes, &tuple);
                let cause = match o {
                    ClientOutcome::Reset | ClientOutcome::Refused => cause,
                    _ => None,
                };
                self.client_done(now, k, o, cause);
            }
            return;
        }
        if pkt.flags.contains(sim_core::TcpFlags::RST) {
            // A later RST for a connection that is already gone.
            take_cause(&mut self.rst_causes, &tuple);
        }
        if let Some(reply) = time_wait_reply(&pkt) {
            self.wire(now, host).send(reply);
        }
    }

    fn client_done(
        &mut self,
        now: SimTime,
        k: ClientKey,
        o: ClientOutcome,
        cause: Option<RstCause>,
    ) {
        let conn = self.clients.remove(k).expect("live client");
        let tuple = conn.sock.tuple();
        self.client_by_tuple.remove(&tuple);
        // Whatever the outcome, a cause recorded for this tuple must not be
        // blamed on a later connection that reuses it.
        take_cause(&mut self.rst_causes, &tuple);
        let c = &mut self.stats.conns;
        match o {
            ClientOutcome::Completed => {
                c.completed += 1;
                let _ = self
                    .completion
                    .record(now.saturating_sub(conn.sock.started_at()).as_nanos().max(1));
            }
            ClientOutcome::Refused => {
                c.refused += 1;
                if let Some(cause) = cause {
                    *self.stats.conn_refused_by.entry(cause).or_default() += 1;
                }
            }
            ClientOutcome::Reset => {
                c.reset += 1;
                if let Some(cause) = cause {
                    *self.stats.conn_reset_by.entry(cause).or_default() += 1;
                }
            }
            ClientOutcome::TimedOut => c.timed_out += 1,
        }
        if let Some(t) = conn.sock.established_at() {
            let _ = self
                .handshake
                .record(t.saturating_sub(conn.sock.started_at()).as_nanos().max(1));
        }
        if self.tap.trace.is_some() {
            let detail = match cause {
                Some(c) => format!(
                    "{:?} {} <- {} (§7 {})",
                    o,
                    tuple.local,
                    c.name(),
                    c.spec_id()
                ),
                None => format!("{:?} {}", o, tuple.local),
            };
            self.tap.trace_event(now, "outcome", detail);
        }
    }

    fn arrival(&mut self, now: SimTime, g: usize) {
        let gen = &mut self.gens[g];
        // Next arrival first, so the draws of this generator do not depend on the connection.
        let next = match &gen.arrival {
            ArrivalPlan::Constant { rate } => {
                Some(now + SimDuration::from_nanos((1_000_000_000 / rate).max(1)))
            }
            ArrivalPlan::Poisson { rate } => Some(
                now + SimDuration::from_nanos(
                    exponential_ns(&mut gen.rng, (1_000_000_000 / rate).max(1)).max(1),
                ),
            ),
            ArrivalPlan::Burst { count, spacing } => {
                (gen.issued + 1 < *count).then(|| now + *spacing)
            }
            ArrivalPlan::Ramp { from_rate, to_rate } => {
                let span = gen.stop.saturating_sub(gen.start).as_nanos().max(1);
                let pos = now.saturating_sub(gen.start).as_nanos();
                let rate = if to_rate >= from_rate {
                    from_rate + ((to_rate - from_rate) as u128 * pos as u128 / span as u128) as u64
                } else {
                    from_rate - ((from_rate - to_rate) as u128 * pos as u128 / span as u128) as u64
                };
                Some(now + SimDuration::from_nanos(1_000_000_000 / rate.max(1)))
            }
        };
        let burst = matches!(gen.arrival, ArrivalPlan::Burst { .. });
        if let Some(t) = next {
            if burst || t < gen.stop {
                let h = HostId(self.gens[g].host as u32);
                self.wire(now, h).schedule_timer(t, Ev::Arrival(g as u16));
            }
        }
        self.connect(now, g);
    }

    fn connect(&mut self, now: SimTime, g: usize) {
        let gen = &mut self.gens[g];
        gen.issued += 1;
        // Ephemeral ports 32768..=60999 per source address, skipping 4-tuples in use.
        let mut tuple = None;
        for _ in 0..gen.sources.len() * 4 {
            let si = gen.next_source;
            gen.next_source = (gen.next_source + 1) % gen.sources.len();
            let port = gen.next_port[si];
            gen.next_port[si] = if port >= 60999 { 32768 } else { port + 1 };
            let t = FourTuple {
                local: SocketAddr::new(gen.sources[si], port),
                remote: gen.server_addr,
            };
            let reserved = self.server_ports[gen.host].binary_search(&port).is_ok();
            // Modelling choice: skip a 4-tuple the server still holds a
            // request or child for. The model has no window/PAWS check
            // (§5.4 step 3), so a reused tuple would meet its old request as
            // an in-window SYN and be reset, which a real kernel would not do.
            let server_holds = self.servers[gen.server_host]
                .as_ref()
                .is_some_and(|s| s.stack.holds(&t.reversed()));
            if !reserved && !server_holds && !self.client_by_tuple.contains_key(&t) {
                tuple = Some(t);
                break;
            }
        }
        self.stats.conns.attempted += 1;
        let Some(tuple) = tuple else {
            // EADDRNOTAVAIL: counted as attempted and timed out at once.
            self.stats.conns.timed_out += 1;
            return;
        };
        take_cause(&mut self.rst_causes, &tuple);
        let isn = uniform_below(&mut gen.rng, 1 << 32) as u32;
        let cfg = gen.cfg.clone();
        let host = gen.host;
        let key = self.clients.insert_with_key(|key| {
            let mut io = ClientIo {
                wire: wire!(self, now, HostId(host as u32)),
                key,
                outcome: None,
            };
            let sock = ClientSocket::connect(
                now,
                tuple.local,
                tuple.remote,
                isn,
                &cfg,
                &self.sysctls[host],
                &mut io,
            );
            Conn { sock, host }
        });
        self.client_by_tuple.insert(tuple, key);
    }

    fn action(&mut self, now: SimTime, i: usize) {
        let (_, prim, label) = self.actions[i].clone();
        if self.tap.trace.is_some() {
            self.tap.trace_event(now, "action", label);
        }
        match prim {
            Prim::Listen(w) => {
                let w = w.index();
                let worker = &self.workers[w];
                let (h, l) = (worker.host, worker.own_listener);
                let backlog = self.backlog_of(w);
                let server = self.servers[h].as_mut().expect("server host");
                let _ = server.stack.listen(l, backlog);
                if server.owner[l.index()].is_none() {
                    server.owner[l.index()] = Some(w);
                }
                self.try_accept(now, w);
            }
            Prim::Shutdown(w) | Prim::Close(w) | Prim::Kill(w) => {
                let w = w.index();
                let shutdown = matches!(prim, Prim::Shutdown(_));
                let h = self.workers[w].host;
                if let Some(l) = self.workers[w].listener {
                    self.with_stack(now, h, |stack, io| {
                        stack.close_listener(now, l, shutdown, io)
                    });
                }
                if let Prim::Kill(_) = prim {
                    self.workers[w].accepting = false;
                    let server = self.servers[h].as_mut().expect("server host");
                    let victims = server
                        .stack
                        .children_tagged(|t| t != 0 && AppTag(t).worker() == w);
                    for c in victims {
                        self.with_stack(now, h, |stack, io| stack.abort(now, c, io));
                    }
                }
            }
            Prim::StopAccepting(w) => self.workers[w.index()].accepting = false,
            Prim::ResumeAccepting(w) => {
                let w = w.index();
                self.workers[w].accepting = true;
                self.try_accept(now, w);
            }
            Prim::SetSysctl {
                host: h,
                name,
                value,
            } => {
                let h = h.index();
                if self.migrate.is_some() && name == "tcp_migrate_req" {
                    // --migrate overrides the sysctl for the whole run.
                } else {
                    self.sysctls[h].set(&name, value).expect("validated");
                    if let Some(s) = self.servers[h].as_mut() {
                        s.stack.sysctls.set(&name, value).expect("validated");
                    }
                }
            }
            Prim::AttachPolicy { policy: p, via } => {
                let (p, via) = (p.index(), via.index());
                let worker = &self.workers[via];
                let (h, l) = (worker.host, worker.own_listener);
                let server = self.servers[h].as_mut().expect("server host");
                let listener = &server.stack.listeners[l.index()];
                let local = listener.local;
                // A closed fd takes no setsockopt: nothing happens (traced).
                let closed = listener.state == ListenerState::Closed;
                let (ph, slot) = self.policy_slots[p];
                if ph == h && !closed {
                    server.stack.hooks.attach_policy(l, local, slot);
                } else if self.tap.trace.is_some() {
                    self.tap
                        .trace_event(now, "attach_refused", "the socket is closed".into());
                }
            }
            Prim::DetachPolicy { via } => {
                let via = via.index();
                let worker = &self.workers[via];
                let (h, l) = (worker.host, worker.own_listener);
                let server = self.servers[h].as_mut().expect("server host");
                let listening = server.stack.listeners[l.index()].is_listening();
                server.stack.hooks.detach_policy(l, listening);
            }
            Prim::Handover { from, to } => {
                let (from, to) = (from.index(), to.index());
                let Some(l) = self.workers[from].listener.take() else {
                    return;
                };
                let h = self.workers[from].host;
                self.workers[from].accepting = false;
                self.workers[to].listener = Some(l);
                self.workers[to].accepting = true;
                let server = self.servers[h].as_mut().expect("server host");
                server.owner[l.index()] = Some(to);
                self.try_accept(now, to);
            }
        }
    }

    fn backlog_of(&self, w: usize) -> u32 {
        self.workers[w].backlog
    }

    fn take_sample(&mut self, now: SimTime) {
        let c = &self.stats.conns;
        let mut s = Sample {
            t_s: now.as_secs_f64(),
            outcomes: [c.completed, c.reset, c.refused, c.timed_out],
            ..Default::default()
        };
        for w in &self.workers {
            let l = &self.servers[w.host]
                .as_ref()
                .expect("server host")
                .stack
                .listeners[w.own_listener.index()];
            s.accept_queues.push(l.ack_backlog());
            s.syn_queues.push(l.syn_qlen.max(0) as u32);
        }
        self.samples.push(s);
    }

    fn finish(mut self) -> RunResult {
        self.stats.conns.in_flight = self.clients.len() as u64;
        let mut counters: BTreeMap<String, u64> = BTreeMap::new();
        let mut listeners = Vec::new();
        let mut policies = Vec::new();
        for (h, server) in self.servers.iter().enumerate() {
            let Some(server) = server else { continue };
            for (name, v) in server.stack.counters.entries() {
                *counters.entry(name.to_string()).or_default() += v;
            }
            for (name, stats) in server.stack.hooks.policy_stats() {
                let mut decisions = BTreeMap::new();
                for (ctx, d) in stats.entries() {
                    if d.picks + d.passes + d.drops > 0 {
                        decisions.insert(
                            ctx.to_string(),
                            BTreeMap::from([
                                ("picks".to_string(), d.picks),
                                ("passes".to_string(), d.passes),
                                ("drops".to_string(), d.drops),
                            ]),
                        );
                    }
                }
                policies.push(PolicyReport {
                    name: name.to_string(),
                    host: self.host_names[h].clone(),
                    decisions,
                });
            }
        }
        for w in &self.workers {
            let l = &self.servers[w.host]
                .as_ref()
                .expect("server host")
                .stack
                .listeners[w.own_listener.index()];
            listeners.push(ListenerReport {
                worker: w.name.clone(),
                server: self.server_specs[w.server].0.clone(),
                listener: w.own_listener.0,
                accepted: l.accepted_total,
                peak_syn_queue: l.peak_syn_qlen,
                peak_accept_queue: l.peak_accept_qlen,
                state: match l.state {
                    ListenerState::Bound => "bound",
                    ListenerState::Listen => "listen",
                    ListenerState::Shutdown => "shutdown",
                    ListenerState::Closed => "closed",
                }
                .to_string(),
            });
        }
        let mut resets = Vec::new();
        for cause in RstCause::ALL {
            let sent = self.stats.rsts_sent.get(&cause).copied().unwrap_or(0);
            let reset = self.stats.conn_reset_by.get(&cause).copied().unwrap_or(0);
            let refused = self.stats.conn_refused_by.get(&cause).copied().unwrap_or(0);
            if sent + reset + refused > 0 {
                resets.push(RstCount {
                    cause: cause.name().to_string(),
                    spec_id: cause.spec_id().to_string(),
                    rule: cause.spec_rule().to_string(),
                    rsts_sent: sent,
                    connections_reset: reset,
                    connections_refused: refused,
                });
            }
        }
        let drops = self
            .stats
            .drops
            .iter()
            .map(|(c, n)| DropCount {
                cause: c.name().to_string(),
                rule: c.spec_rule().to_string(),
                count: *n,
            })
            .collect();
        let pct = |h: &Histogram<u64>| {
            let ms = |v: u64| (v as f64 / 1e3).round() / 1e3;
            if h.is_empty() {
                Percentiles::default()
            } else {
                Percentiles {
                    count: h.len(),
                    p50: ms(h.value_at_quantile(0.5)),
                    p90: ms(h.value_at_quantile(0.9)),
                    p99: ms(h.value_at_quantile(0.99)),
                    max: ms(h.max()),
                }
            }
        };
        let report = Report {
            tool: ToolInfo {
                name: "reuseport-sim".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            scenario: ScenarioInfo {
                name: self.scenario_name.clone(),
                hash: self.scenario_hash.clone(),
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
            connections: self.stats.conns.clone(),
            resets_by_cause: resets,
            drops_by_cause: drops,
            migrations: Migrations {
                accept_queue: self.stats.migrations[0],
                synack_timer: self.stats.migrations[1],
                final_ack: self.stats.migrations[2],
                failed: self.stats.failed,
                connections_migrated: self.stats.connections_migrated,
                failures: self.stats.failures.clone(),
            },
            policies,
            counters,
            listeners,
            latency: Latency {
                handshake_ms: pct(&self.handshake),
                completion_ms: pct(&self.completion),
            },
            network: self.stats.net.clone(),
            events: self.events,
            digest: self.digest.hex(),
        };
        RunResult {
            report,
            samples: std::mem::take(&mut self.samples),
            worker_names: self.workers.iter().map(|w| w.name.clone()).collect(),
            markers: self
                .actions
                .iter()
                .map(|(t, _, l)| (t.as_secs_f64(), l.clone()))
                .collect(),
        }
    }
}

/// Builds and runs `scn`.
pub fn run(scn: &Scenario, opts: RunOptions<'_>) -> Result<RunResult, RunError> {
    let sim = Sim::build(scn, opts).map_err(RunError::Scenario)?;
    sim.run()
}

/// Why a run failed.
#[derive(Debug)]
pub enum RunError {
    /// The scenario is invalid.
    Scenario(ScenarioError),
    /// Writing the trace or capture failed.
    Io(std::io::Error),
    /// The run hit a bound on its size (`MAX_EVENTS`).
    Limit(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Scenario(e) => write!(f, "{e}"),
            RunError::Io(e) => write!(f, "output error: {e}"),
            RunError::Limit(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for RunError {}
