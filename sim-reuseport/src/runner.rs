//! The scenario runner: builds hosts, links, server stacks, workers and client
//! populations from a [`Scenario`], drives them with the `sim-core` event
//! queue, and produces a [`Report`].

use crate::group::ReuseportTable;
use crate::policy::{Policy, Rule};
use crate::report::*;
use crate::scenario::{
    AcceptSpec, Action, Arrival, FaultSpec, MatchSpec, RuleSpec, Scenario, ScenarioError,
};
use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;
use serde::Serialize;
use sim_core::{
    exponential_ns, uniform_below, Delivery, Digest, DropReason, EventQueue, Fault, FilterId,
    FilterMatch, FourTuple, HostId, LinkId, LinkParams, Network, Packet, PacketFilter, RngStreams,
    SimDuration, SimRng, SimTime, TimerModel, TopologyBuilder, TupleMap,
};
use sim_tcp::{
    closed_port_reply, ChildKey, ClientConfig, ClientEnv, ClientOutcome, ClientOutput,
    ClientRstCause, ClientSocket, Counters, DropCause, FlowHasher, ListenerId, ListenerOptions,
    ListenerState, MigrationPath, RstCause, ServerEvent, ServerOutput, ServerStack, ServerTimer,
    Sysctls, TcpMetrics,
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
    /// Override every host's timer mode (wheel or exact, §3.1).
    pub timer_mode: Option<sim_core::TimerMode>,
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

#[derive(Clone, Debug)]
enum Prim {
    Listen(usize),
    Shutdown(usize),
    Close(usize),
    StopAccepting(usize),
    ResumeAccepting(usize),
    Kill(usize),
    SetSysctl(usize, String, u64),
    AttachPolicy(usize, usize),
    DetachPolicy(usize),
    Handover(usize, usize),
}

struct Worker {
    name: String,
    server: usize,
    host: usize,
    own_listener: ListenerId,
    listener: Option<ListenerId>,
    accepting: bool,
    accept: AcceptSpec,
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
    arrival: Arrival,
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
    /// Its outcome was counted (it may linger as an orphan).
    reported: bool,
}

#[derive(Default)]
struct Stats {
    conns: Connections,
    rsts_sent: BTreeMap<RstCause, u64>,
    /// RSTs sent by client hosts, by cause.
    client_rsts: BTreeMap<ClientRstCause, u64>,
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

/// The [`ClientEnv`] of host `$h`: its sysctls and timer model, the TCP
/// metrics cache of its namespace (the server stack's when the host has
/// one), and the counters of its client sockets. Borrows only those fields.
macro_rules! client_env {
    ($sim:ident, $h:expr) => {
        ClientEnv {
            sysctls: &$sim.sysctls[$h],
            timers: $sim.timers[$h],
            metrics: match $sim.servers[$h].as_mut() {
                Some(s) => &mut s.stack.metrics,
                None => &mut $sim.client_metrics[$h],
            },
            counters: &mut $sim.client_counters[$h],
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
    events: &'s mut Vec<ServerEvent>,
}

impl ServerOutput for HostIo<'_, '_> {
    fn transmit(&mut self, pkt: Packet, rst: Option<RstCause>) {
        if let Some(cause) = rst {
            // The RST carries its cause (`Packet::tag`, set by the stack), so
            // the connection it resets, if any, is attributed to it.
            *self.wire.stats.rsts_sent.entry(cause).or_default() += 1;
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
    fn transmit(&mut self, pkt: Packet, rst: Option<ClientRstCause>) {
        if let Some(cause) = rst {
            client_rst(self.wire.stats, self.wire.tap, self.wire.now, &pkt, cause);
        }
        self.wire.send(pkt);
    }
    fn set_timer(&mut self, at: SimTime) {
        self.wire.schedule_timer(at, Ev::ClientTimer(self.key));
    }
    fn outcome(&mut self, outcome: ClientOutcome) {
        self.outcome = Some(outcome);
    }
}

/// Records an RST sent by a client host, with its cause.
fn client_rst(
    stats: &mut Stats,
    tap: &mut Tap<'_>,
    now: SimTime,
    pkt: &Packet,
    cause: ClientRstCause,
) {
    *stats.client_rsts.entry(cause).or_default() += 1;
    tap.trace_packet(now, "rst", pkt, || {
        Some(format!("{} (client host, {})", cause.name(), cause.rule()))
    });
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
    /// Each host's timer granularity (§3.1).
    timers: Vec<TimerModel>,
    /// The TCP metrics cache of hosts without a server stack (a server
    /// host's clients share the stack's: one namespace).
    client_metrics: Vec<TcpMetrics>,
    /// Counters of each host's client sockets (its nstat = these + its
    /// server stack's).
    client_counters: Vec<Counters>,
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

fn err(path: impl Into<String>, msg: impl Into<String>) -> ScenarioError {
    ScenarioError::at(path, msg)
}

fn index_of<'n>(
    names: impl Iterator<Item = &'n str>,
    name: &str,
    path: &str,
    what: &str,
) -> Result<usize, ScenarioError> {
    let names: Vec<&str> = names.collect();
    names.iter().position(|&n| n == name).ok_or_else(|| {
        err(
            path,
            format!("unknown {what} `{name}` (known: {})", names.join(", ")),
        )
    })
}

fn unique<'n>(
    names: impl Iterator<Item = &'n str>,
    what: &str,
    list: &str,
) -> Result<(), ScenarioError> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, n) in names.enumerate() {
        if n.is_empty() {
            return Err(err(
                format!("{list}[{i}].name"),
                format!("{what} name must not be empty"),
            ));
        }
        if !seen.insert(n) {
            return Err(err(
                format!("{list}[{i}].name"),
                format!("duplicate {what} name `{n}`"),
            ));
        }
    }
    Ok(())
}

/// Canonical hash of a scenario (independent of whitespace and key order in the file).
pub fn scenario_hash(scn: &Scenario) -> String {
    let canon = serde_json::to_string(scn).expect("scenario serializes");
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(canon.as_bytes()))
}

/// Longest delay a scenario may give (latency, jitter, service time, accept
/// interval, burst spacing), like the longest duration.
pub const MAX_DELAY: SimDuration = SimDuration::from_secs(100_000);

/// Most workers (listeners) a scenario may declare: well below the 65535
/// sockets a reuseport group holds.
pub const MAX_WORKERS: usize = 4096;

/// Largest burst of connections a client population may declare.
pub const MAX_BURST: u64 = 10_000_000;

/// Maximum events one run may process (a bound on everything, asserted).
pub const MAX_EVENTS: u64 = 2_000_000_000;

impl<'a> Sim<'a> {
    /// Validates `scn` and builds the simulation. Every error names the JSON
    /// path of the offending field.
    pub fn build(scn: &Scenario, opts: RunOptions<'a>) -> Result<Self, ScenarioError> {
        let seed = opts.seed.unwrap_or(scn.seed);
        let rng = RngStreams::new(seed);
        let duration = scn.duration.0;
        if duration == SimDuration::ZERO {
            return Err(err("duration", "must be greater than 0"));
        }
        if duration > SimDuration::from_secs(100_000) {
            return Err(err("duration", "must be at most 100000s"));
        }
        let within = |t: SimDuration, path: String| -> Result<SimTime, ScenarioError> {
            if t > duration {
                Err(err(
                    path,
                    format!("time {t} is after the scenario's duration {duration}"),
                ))
            } else {
                Ok(SimTime::ZERO + t)
            }
        };
        // Delays added to the current time (latency, jitter, service time,
        // accept interval, burst spacing): bounded like the duration, so that
        // no deadline can overflow.
        let bounded = |d: SimDuration, path: String| -> Result<(), ScenarioError> {
            if d > MAX_DELAY {
                Err(err(path, format!("{d} is too long (at most {MAX_DELAY})")))
            } else {
                Ok(())
            }
        };
        // Hosts.
        if scn.hosts.is_empty() {
            return Err(err("hosts", "at least one host is required"));
        }
        unique(scn.hosts.iter().map(|h| h.name.as_str()), "host", "hosts")?;
        let mut topo = TopologyBuilder::new();
        let mut seen_addrs = std::collections::BTreeSet::new();
        let mut sysctls = Vec::new();
        let mut timers = Vec::new();
        for (i, h) in scn.hosts.iter().enumerate() {
            if h.addresses.is_empty() {
                return Err(err(
                    format!("hosts[{i}].addresses"),
                    "at least one address is required",
                ));
            }
            for (j, a) in h.addresses.iter().enumerate() {
                if a.is_unspecified() || !seen_addrs.insert(*a) {
                    return Err(err(
                        format!("hosts[{i}].addresses[{j}]"),
                        format!("address {a} is unspecified or used twice"),
                    ));
                }
            }
            let mut s = Sysctls::default();
            for (name, v) in &h.sysctls {
                s.set(name, *v)
                    .map_err(|m| err(format!("hosts[{i}].sysctls.{name}"), m))?;
            }
            if let Some(m) = opts.migrate {
                s.tcp_migrate_req = u8::from(m);
            }
            sysctls.push(s);
            let hz = match h.hz {
                None => sim_core::Hz::DEFAULT,
                Some(hz) => sim_core::Hz::new(hz).ok_or_else(|| {
                    err(
                        format!("hosts[{i}].hz"),
                        format!("CONFIG_HZ is one of 100, 250, 300, 1000; got {hz}"),
                    )
                })?,
            };
            let mode = opts
                .timer_mode
                .or(h.timer_mode.map(Into::into))
                .unwrap_or_default();
            timers.push(TimerModel { hz, mode });
            topo.add_host(&h.name, &h.addresses);
        }
        let host_idx = |name: &str, path: &str| {
            index_of(
                scn.hosts.iter().map(|h| h.name.as_str()),
                name,
                path,
                "host",
            )
        };
        // Links.
        let mut link_names = Vec::new();
        let mut pairs = std::collections::BTreeSet::new();
        for (i, l) in scn.links.iter().enumerate() {
            let a = host_idx(&l.between[0], &format!("links[{i}].between[0]"))?;
            let b = host_idx(&l.between[1], &format!("links[{i}].between[1]"))?;
            if a == b {
                return Err(err(
                    format!("links[{i}].between"),
                    "a link joins two different hosts",
                ));
            }
            if !pairs.insert((a.min(b), a.max(b))) {
                return Err(err(
                    format!("links[{i}].between"),
                    "two links join the same pair of hosts",
                ));
            }
            if l.bandwidth_bps == Some(0) {
                return Err(err(
                    format!("links[{i}].bandwidth_bps"),
                    "must be greater than 0 (omit it for unlimited)",
                ));
            }
            bounded(l.latency.0, format!("links[{i}].latency"))?;
            bounded(l.jitter.0, format!("links[{i}].jitter"))?;
            let params = LinkParams {
                latency: l.latency.0,
                jitter: l.jitter.0,
                loss: l.loss.0,
                bandwidth_bps: l.bandwidth_bps,
                allow_reorder: l.allow_reorder,
            };
            params
                .validate()
                .map_err(|m| err(format!("links[{i}]"), m))?;
            topo.add_link(HostId(a as u32), HostId(b as u32), params);
            link_names.push(
                l.name
                    .clone()
                    .unwrap_or_else(|| format!("{}-{}", l.between[0], l.between[1])),
            );
        }
        unique(link_names.iter().map(|s| s.as_str()), "link", "links")?;
        let mut net = topo.build(&rng);
        // Faults.
        for (i, f) in scn.faults.iter().enumerate() {
            let link_idx = |name: &str| {
                index_of(
                    link_names.iter().map(|s| s.as_str()),
                    name,
                    &format!("faults[{i}].link"),
                    "link",
                )
            };
            let fault = match f {
                FaultSpec::LinkDown { link, from, until } => {
                    let link = LinkId(link_idx(link)? as u32);
                    let from_t = within(from.0, format!("faults[{i}].from"))?;
                    let until_t = within(until.0, format!("faults[{i}].until"))?;
                    if from_t > until_t {
                        return Err(err(
                            format!("faults[{i}].until"),
                            "window ends before it starts",
                        ));
                    }
                    Fault::LinkDown {
                        link,
                        from: from_t,
                        until: until_t,
                    }
                }
                FaultSpec::SetLink {
                    link,
                    at,
                    latency,
                    jitter,
                    loss,
                } => {
                    let link = LinkId(link_idx(link)? as u32);
                    let at_t = within(at.0, format!("faults[{i}].at"))?;
                    for (d, field) in [(latency, "latency"), (jitter, "jitter")] {
                        if let Some(d) = d {
                            bounded(d.0, format!("faults[{i}].{field}"))?;
                        }
                    }
                    let mut params = net.link_params_at(link, at_t);
                    if let Some(l) = latency {
                        params.latency = l.0;
                    }
                    if let Some(j) = jitter {
                        params.jitter = j.0;
                    }
                    if let Some(p) = loss {
                        params.loss = p.0;
                    }
                    Fault::SetLinkParams {
                        link,
                        at: at_t,
                        params,
                    }
                }
                FaultSpec::DropPackets {
                    from,
                    until,
                    match_kind,
                    src_host,
                    dst_host,
                    dst_port,
                    src_port,
                } => {
                    let from_t = within(from.0, format!("faults[{i}].from"))?;
                    let until_t = within(until.0, format!("faults[{i}].until"))?;
                    if from_t > until_t {
                        return Err(err(
                            format!("faults[{i}].until"),
                            "window ends before it starts",
                        ));
                    }
                    let src = src_host
                        .as_deref()
                        .map(|h| host_idx(h, &format!("faults[{i}].src_host")))
                        .transpose()?;
                    let dst = dst_host
                        .as_deref()
                        .map(|h| host_idx(h, &format!("faults[{i}].dst_host")))
                        .transpose()?;
                    Fault::Filter {
                        id: FilterId(i as u32),
                        rule: PacketFilter {
                            src_host: src.map(|h| HostId(h as u32)),
                            dst_host: dst.map(|h| HostId(h as u32)),
                            dst_port: *dst_port,
                            src_port: *src_port,
                            match_kind: match match_kind {
                                MatchSpec::Any => FilterMatch::Any,
                                MatchSpec::PureAck => FilterMatch::PureAck,
                                MatchSpec::AckNoSyn => FilterMatch::AckNoSyn,
                                MatchSpec::Syn => FilterMatch::Syn,
                                MatchSpec::SynAck => FilterMatch::SynAck,
                                MatchSpec::Rst => FilterMatch::Rst,
                                MatchSpec::Data => FilterMatch::Data,
                            },
                        },
                        from: from_t,
                        until: until_t,
                    }
                }
            };
            net.add_fault(fault);
        }
        // Servers: one stack per host that has a server.
        if scn.servers.is_empty() {
            return Err(err("servers", "at least one server is required"));
        }
        unique(
            scn.servers.iter().map(|s| s.name.as_str()),
            "server",
            "servers",
        )?;
        let mut servers: Vec<Option<ServerHost>> = (0..scn.hosts.len()).map(|_| None).collect();
        let mut server_specs = Vec::new();
        for (i, s) in scn.servers.iter().enumerate() {
            let h = host_idx(&s.host, &format!("servers[{i}].host"))?;
            if !s.address.is_unspecified() && !scn.hosts[h].addresses.contains(&s.address) {
                return Err(err(
                    format!("servers[{i}].address"),
                    format!("{} is not an address of host `{}`", s.address, s.host),
                ));
            }
            if s.port == 0 {
                return Err(err(format!("servers[{i}].port"), "port must be 1..65535"));
            }
            if servers[h].is_none() {
                let flow = FlowHasher::new(sim_core::uniform_below(
                    &mut rng.stream("flow-hash-secret", h as u64),
                    u64::MAX,
                ));
                let mut stack = ServerStack::new(sysctls[h].clone(), ReuseportTable::new(), flow);
                stack.inject_bug = opts.inject_bug;
                stack.timers = timers[h];
                servers[h] = Some(ServerHost {
                    stack,
                    owner: Vec::new(),
                    policy_names: Vec::new(),
                });
            }
            server_specs.push((s.name.clone(), h));
        }
        let server_idx = |name: &str, path: &str| {
            index_of(
                scn.servers.iter().map(|s| s.name.as_str()),
                name,
                path,
                "server",
            )
        };
        // Workers.
        if scn.workers.is_empty() {
            return Err(err("workers", "at least one worker is required"));
        }
        unique(
            scn.workers.iter().map(|w| w.name.as_str()),
            "worker",
            "workers",
        )?;
        let mut workers = Vec::new();
        let mut actions: Vec<(SimTime, Prim, String)> = Vec::new();
        for (i, w) in scn.workers.iter().enumerate() {
            let s = server_idx(&w.server, &format!("workers[{i}].server"))?;
            let spec = &scn.servers[s];
            let h = server_specs[s].1;
            match &w.accept {
                AcceptSpec::Rate { per_second: 0 } => {
                    return Err(err(
                        format!("workers[{i}].accept.per_second"),
                        "must be greater than 0",
                    ))
                }
                AcceptSpec::Batch { interval, max }
                    if interval.0 == SimDuration::ZERO || *max == 0 =>
                {
                    return Err(err(
                        format!("workers[{i}].accept"),
                        "interval and max must be greater than 0",
                    ))
                }
                _ => {}
            }
            bounded(w.service_time.0, format!("workers[{i}].service_time"))?;
            if let AcceptSpec::Batch { interval, .. } = &w.accept {
                bounded(interval.0, format!("workers[{i}].accept.interval"))?;
            }
            if w.backlog == 0 {
                return Err(err(format!("workers[{i}].backlog"), "must be at least 1"));
            }
            let host = servers[h].as_mut().expect("server host");
            let local = SocketAddr::new(spec.address, spec.port);
            let l = host.stack.bind(
                local,
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
                server: s,
                host: h,
                own_listener: l,
                listener: Some(l),
                accepting: true,
                accept: w.accept.clone(),
                service_time: w.service_time.0,
                response_bytes: w.response_bytes,
                backlog: w.backlog,
                tick_pending: false,
                next_accept_at: SimTime::ZERO,
            });
            if let Some(t) = w.listen_at {
                actions.push((
                    within(t.0, format!("workers[{i}].listen_at"))?,
                    Prim::Listen(i),
                    format!("listen {}", w.name),
                ));
            }
        }
        let worker_idx = |name: &str, path: &str| {
            index_of(
                scn.workers.iter().map(|w| w.name.as_str()),
                name,
                path,
                "worker",
            )
        };
        // Policies.
        unique(
            scn.policies.iter().map(|p| p.name.as_str()),
            "policy",
            "policies",
        )?;
        let mut policy_slots = Vec::new();
        for (i, p) in scn.policies.iter().enumerate() {
            let via = worker_idx(&p.via, &format!("policies[{i}].via"))?;
            let h = workers[via].host;
            let rule = |r: &RuleSpec, path: String| -> Result<Rule, ScenarioError> {
                Ok(match r {
                    RuleSpec::Pass => Rule::Pass,
                    RuleSpec::Drop => Rule::Drop,
                    RuleSpec::NewestGeneration => Rule::NewestGeneration,
                    RuleSpec::LeastLoaded => Rule::LeastLoaded,
                    RuleSpec::Pick(w) => Rule::Pick(workers[worker_idx(w, &path)?].own_listener),
                    RuleSpec::Map { targets, missing } => {
                        let mut m = BTreeMap::new();
                        for (from, to) in targets {
                            let f = workers[worker_idx(from, &format!("{path}.map.targets"))?]
                                .own_listener;
                            let t = workers[worker_idx(to, &format!("{path}.map.targets.{from}"))?]
                                .own_listener;
                            m.insert(f, t);
                        }
                        let missing_drop = match missing.as_str() {
                            "drop" => true,
                            "pass" => false,
                            other => {
                                return Err(err(
                                    format!("{path}.map.missing"),
                                    format!("expected \"drop\" or \"pass\", got \"{other}\""),
                                ))
                            }
                        };
                        Rule::MapByClosingListener {
                            targets: m,
                            missing_drop,
                        }
                    }
                })
            };
            let on_syn = rule(&p.on_syn, format!("policies[{i}].on_syn"))?;
            let on_migrate = rule(&p.on_migrate, format!("policies[{i}].on_migrate"))?;
            let mut cancel = Vec::new();
            for (j, w) in p.cancel_for.iter().enumerate() {
                cancel.push(
                    workers[worker_idx(w, &format!("policies[{i}].cancel_for[{j}]"))?].own_listener,
                );
            }
            let host = servers[h].as_mut().expect("server host");
            let slot = host
                .stack
                .hooks
                .add_policy(Policy::new(&p.name, p.kind, on_syn, on_migrate, cancel));
            host.policy_names.push(p.name.clone());
            policy_slots.push((h, slot));
            if let Some(t) = p.attach_at {
                actions.push((
                    within(t.0, format!("policies[{i}].attach_at"))?,
                    Prim::AttachPolicy(i, via),
                    format!("attach {}", p.name),
                ));
            }
        }
        // Timeline.
        for (i, a) in scn.timeline.iter().enumerate() {
            let base = format!("timeline[{i}]");
            let list_len_check =
                |old: &Vec<String>, new: &Vec<String>| -> Result<(), ScenarioError> {
                    if old.len() != new.len() {
                        Err(err(
                            format!("{base}.new"),
                            format!(
                                "needs as many new workers as old ({} vs {})",
                                new.len(),
                                old.len()
                            ),
                        ))
                    } else {
                        Ok(())
                    }
                };
            match a {
                Action::RollingRestart { old, new, .. } | Action::FdPassing { old, new, .. } => {
                    list_len_check(old, new)?
                }
                _ => {}
            }
            for p in a.expand() {
                let t = within(p.at(), format!("{base}.at"))?;
                let w = |name: &str, field: &str| worker_idx(name, &format!("{base}.{field}"));
                let (prim, label) = match &p {
                    Action::Listen { worker, .. } => (
                        Prim::Listen(w(worker, "worker")?),
                        format!("listen {worker}"),
                    ),
                    Action::Shutdown { worker, .. } => (
                        Prim::Shutdown(w(worker, "worker")?),
                        format!("shutdown {worker}"),
                    ),
                    Action::Close { worker, .. } => {
                        (Prim::Close(w(worker, "worker")?), format!("close {worker}"))
                    }
                    Action::StopAccepting { worker, .. } => (
                        Prim::StopAccepting(w(worker, "worker")?),
                        format!("stop_accepting {worker}"),
                    ),
                    Action::ResumeAccepting { worker, .. } => (
                        Prim::ResumeAccepting(w(worker, "worker")?),
                        format!("resume_accepting {worker}"),
                    ),
                    Action::Kill { worker, .. } => {
                        (Prim::Kill(w(worker, "worker")?), format!("kill {worker}"))
                    }
                    Action::SetSysctl {
                        host, name, value, ..
                    } => {
                        let h = host_idx(host, &format!("{base}.host"))?;
                        Sysctls::default()
                            .set(name, *value)
                            .map_err(|m| err(format!("{base}.name"), m))?;
                        (
                            Prim::SetSysctl(h, name.clone(), *value),
                            format!("{host}: {name}={value}"),
                        )
                    }
                    Action::AttachPolicy { policy, via, .. } => {
                        let pi = index_of(
                            scn.policies.iter().map(|p| p.name.as_str()),
                            policy,
                            &format!("{base}.policy"),
                            "policy",
                        )?;
                        let v = match via {
                            Some(v) => w(v, "via")?,
                            None => worker_idx(&scn.policies[pi].via, &format!("{base}.via"))?,
                        };
                        (Prim::AttachPolicy(pi, v), format!("attach {policy}"))
                    }
                    Action::DetachPolicy { via, .. } => (
                        Prim::DetachPolicy(w(via, "via")?),
                        format!("detach policy via {via}"),
                    ),
                    Action::Handover { from, to, .. } => {
                        let (f, t2) = (w(from, "from")?, w(to, "to")?);
                        if workers[f].host != workers[t2].host {
                            return Err(err(
                                format!("{base}.to"),
                                "fd passing needs both workers on one host",
                            ));
                        }
                        // The new worker uses the inherited listener only: a
                        // listener of its own would stay in the group with
                        // nobody accepting from it.
                        if f == t2 || scn.workers[t2].listen_at.is_some() {
                            return Err(err(
                                format!("{base}.to"),
                                format!("worker `{to}` inherits a listener: it must be another worker with \"listen_at\": null"),
                            ));
                        }
                        (Prim::Handover(f, t2), format!("handover {from}->{to}"))
                    }
                    _ => unreachable!("macros expand to primitives"),
                };
                actions.push((t, prim, label));
            }
        }
        // Stable: by time, then declaration order (worker listens first, then policies, then timeline).
        actions.sort_by_key(|(t, _, _)| *t);
        // A worker inherits at most one listener and never listens on its own.
        let mut heirs = std::collections::BTreeSet::new();
        for (_, prim, label) in &actions {
            if let Prim::Handover(_, to) = prim {
                if !heirs.insert(*to) {
                    return Err(err(
                        "timeline",
                        format!(
                            "`{label}`: worker `{}` already inherits a listener",
                            workers[*to].name
                        ),
                    ));
                }
            }
        }
        for (_, prim, label) in &actions {
            if let Prim::Listen(w) = prim {
                if heirs.contains(w) {
                    return Err(err(
                        "timeline",
                        format!("`{label}`: worker `{}` inherits a listener by fd passing and cannot listen on its own", workers[*w].name),
                    ));
                }
            }
        }
        if workers.len() > MAX_WORKERS {
            return Err(err("workers", format!("at most {MAX_WORKERS} workers")));
        }
        // Clients.
        unique(
            scn.clients.iter().map(|c| c.name.as_str()),
            "client",
            "clients",
        )?;
        let mut gens = Vec::new();
        for (i, c) in scn.clients.iter().enumerate() {
            let h = host_idx(&c.host, &format!("clients[{i}].host"))?;
            let s = server_idx(&c.server, &format!("clients[{i}].server"))?;
            let spec = &scn.servers[s];
            let sh = server_specs[s].1;
            let server_ip = if spec.address.is_unspecified() {
                *scn.hosts[sh]
                    .addresses
                    .iter()
                    .find(|a| a.is_ipv4() == spec.address.is_ipv4())
                    .ok_or_else(|| {
                        err(
                            format!("servers[{s}].address"),
                            "the host has no address of this family for clients to connect to",
                        )
                    })?
            } else {
                spec.address
            };
            let sources: Vec<IpAddr> = scn.hosts[h]
                .addresses
                .iter()
                .copied()
                .filter(|a| a.is_ipv4() == server_ip.is_ipv4())
                .collect();
            if sources.is_empty() {
                return Err(err(
                    format!("clients[{i}].host"),
                    format!("host `{}` has no address of the server's family", c.host),
                ));
            }
            if h != sh && net.route(HostId(h as u32), HostId(sh as u32)).is_empty() {
                return Err(err(
                    format!("clients[{i}].host"),
                    format!(
                        "no route from `{}` to `{}`: add a link",
                        c.host, scn.servers[s].host
                    ),
                ));
            }
            for (field, t) in [
                ("connect_timeout", c.connect_timeout),
                ("request_timeout", c.request_timeout),
            ] {
                if let Some(t) = t {
                    if t.0 == SimDuration::ZERO {
                        return Err(err(
                            format!("clients[{i}].{field}"),
                            "must be greater than 0 (omit it for no deadline)",
                        ));
                    }
                    bounded(t.0, format!("clients[{i}].{field}"))?;
                }
            }
            if let Arrival::Burst { spacing, count } = &c.arrival {
                bounded(spacing.0, format!("clients[{i}].arrival.spacing"))?;
                if *count > MAX_BURST {
                    return Err(err(
                        format!("clients[{i}].arrival.count"),
                        format!("a burst is at most {MAX_BURST} connections"),
                    ));
                }
            }
            if c.request_bytes == 0 {
                return Err(err(
                    format!("clients[{i}].request_bytes"),
                    "must be at least 1",
                ));
            }
            match &c.arrival {
                Arrival::Constant { rate: 0 } | Arrival::Poisson { rate: 0 } => {
                    return Err(err(
                        format!("clients[{i}].arrival.rate"),
                        "must be greater than 0",
                    ))
                }
                Arrival::Ramp { from_rate, to_rate } if *from_rate == 0 && *to_rate == 0 => {
                    return Err(err(
                        format!("clients[{i}].arrival"),
                        "a ramp needs a non-zero rate",
                    ))
                }
                Arrival::Ramp { from_rate, to_rate }
                    if (*from_rate).max(*to_rate) > 100_000_000 =>
                {
                    return Err(err(
                        format!("clients[{i}].arrival"),
                        "ramp rates are at most 100000000 per second",
                    ))
                }
                Arrival::Constant { rate } | Arrival::Poisson { rate } if *rate > 100_000_000 => {
                    return Err(err(
                        format!("clients[{i}].arrival.rate"),
                        "at most 100000000 per second",
                    ))
                }
                _ => {}
            }
            let start = within(c.start.0, format!("clients[{i}].start"))?;
            let stop = within(
                c.stop.map_or(duration, |s| s.0),
                format!("clients[{i}].stop"),
            )?;
            if stop < start {
                return Err(err(format!("clients[{i}].stop"), "stop is before start"));
            }
            gens.push(Gen {
                host: h,
                server_host: sh,
                server_addr: SocketAddr::new(server_ip, spec.port),
                arrival: c.arrival.clone(),
                start,
                stop,
                rng: rng.stream("arrivals", i as u64),
                cfg: ClientConfig {
                    request_bytes: c.request_bytes,
                    fast_open: c.fast_open,
                    has_cookie: c.has_cookie,
                    connect_timeout: c.connect_timeout.map(|d| d.0),
                    request_timeout: c.request_timeout.map(|d| d.0),
                },
                next_port: vec![32768; sources.len()],
                sources,
                next_source: 0,
                issued: 0,
            });
        }
        let mut server_ports = vec![Vec::new(); scn.hosts.len()];
        for (s, (_, h)) in scn.servers.iter().zip(&server_specs) {
            server_ports[*h].push(s.port);
        }
        for p in &mut server_ports {
            p.sort_unstable();
            p.dedup();
        }
        let mut queue = EventQueue::with_capacity(1024);
        // The timeline is in time order: a lane keeps its hundreds of
        // actions (a reload of 16 workers is ~50) out of the heap.
        let timeline = Lanes::timeline(scn.hosts.len() as u32);
        for (i, (t, _, _)) in actions.iter().enumerate() {
            queue.schedule_in_lane(*t, timeline, Ev::Action(i as u32));
        }
        for (i, g) in gens.iter().enumerate() {
            if g.start < g.stop || matches!(g.arrival, Arrival::Burst { .. }) {
                queue.schedule(g.start, Ev::Arrival(i as u16));
            }
        }
        if let Some(iv) = opts.sample_interval {
            queue.schedule(SimTime::ZERO, Ev::Sample);
            assert!(iv > SimDuration::ZERO);
        }
        let hist = || Histogram::<u64>::new_with_bounds(1, 1 << 44, 3).expect("histogram bounds");
        Ok(Sim {
            scenario_name: scn.name.clone(),
            scenario_hash: scenario_hash(scn),
            duration,
            seed,
            migrate: opts.migrate,
            queue,
            net,
            host_names: scn.hosts.iter().map(|h| h.name.clone()).collect(),
            sysctls,
            timers,
            client_metrics: vec![TcpMetrics::default(); scn.hosts.len()],
            client_counters: vec![Counters::default(); scn.hosts.len()],
            servers,
            server_specs,
            server_ports,
            policy_slots,
            workers,
            gens,
            clients: slotmap::DenseSlotMap::with_key(),
            client_by_tuple: TupleMap::default(),
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
                hosts: scn.hosts.len() as u32,
                horizon: HorizonBatches::default(),
                delays: FxHashMap::default(),
                hot_delays: Vec::new(),
                packets: Vec::new(),
                free: Vec::new(),
            },
            pending: Vec::new(),
            sample_interval: opts.sample_interval,
            samples: Vec::new(),
        })
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
                let h = conn.host;
                let mut io = ClientIo {
                    wire: wire!(self, now, HostId(h as u32)),
                    key: k,
                    outcome: None,
                };
                conn.sock.on_timer(now, &mut client_env!(self, h), &mut io);
                let closed = conn.sock.is_closed();
                if let Some(o) = io.outcome {
                    self.client_outcome(now, k, o, None);
                }
                if closed {
                    self.client_closed(k);
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
            AcceptSpec::Immediate => while self.accept_one(now, w) {},
            AcceptSpec::Rate { .. } | AcceptSpec::Batch { .. } => {
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
            AcceptSpec::Immediate => return,
            AcceptSpec::Rate { per_second } => (
                1,
                SimDuration::from_nanos((1_000_000_000 / per_second).max(1)),
            ),
            AcceptSpec::Batch { interval, max } => (max, interval.0),
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
            let mut io = ClientIo {
                wire: wire!(self, now, HostId(conn.host as u32)),
                key: k,
                outcome: None,
            };
            conn.sock
                .on_segment(now, &pkt, &mut client_env!(self, h), &mut io);
            let closed = conn.sock.is_closed();
            if let Some(o) = io.outcome {
                // An RST names its cause in its tag (set by the server stack).
                let cause = match o {
                    ClientOutcome::Reset | ClientOutcome::Refused => RstCause::from_tag(pkt.tag),
                    _ => None,
                };
                self.client_outcome(now, k, o, cause);
            }
            if closed {
                self.client_closed(k);
            }
            return;
        }
        // No socket: a retransmitted response after the client finished is
        // answered as from LAST-ACK, anything else but an RST gets an RST.
        if let Some((reply, cause)) = closed_port_reply(&pkt, &mut self.client_counters[h]) {
            if let Some(cause) = cause {
                client_rst(&mut self.stats, &mut self.tap, now, &reply, cause);
            }
            self.wire(now, host).send(reply);
        }
    }

    /// A client connection reached its outcome (the socket may live on as an
    /// orphan: see [`Sim::client_closed`]).
    fn client_outcome(
        &mut self,
        now: SimTime,
        k: ClientKey,
        o: ClientOutcome,
        cause: Option<RstCause>,
    ) {
        let conn = &mut self.clients[k];
        conn.reported = true;
        let tuple = conn.sock.tuple();
        let started = conn.sock.started_at();
        let established = conn.sock.established_at();
        let c = &mut self.stats.conns;
        match o {
            ClientOutcome::Completed => {
                c.completed += 1;
                let _ = self
                    .completion
                    .record(now.saturating_sub(started).as_nanos().max(1));
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
            ClientOutcome::Abandoned => c.abandoned += 1,
        }
        if let Some(t) = established {
            let _ = self
                .handshake
                .record(t.saturating_sub(started).as_nanos().max(1));
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

    /// A client socket is gone (after its outcome, or later for an orphan).
    fn client_closed(&mut self, k: ClientKey) {
        let conn = self.clients.remove(k).expect("live client");
        debug_assert!(conn.reported, "a socket closes after its outcome");
        self.client_by_tuple.remove(&conn.sock.tuple());
    }

    fn arrival(&mut self, now: SimTime, g: usize) {
        let gen = &mut self.gens[g];
        // Next arrival first, so the draws of this generator do not depend on the connection.
        let next = match &gen.arrival {
            Arrival::Constant { rate } => {
                Some(now + SimDuration::from_nanos((1_000_000_000 / rate).max(1)))
            }
            Arrival::Poisson { rate } => Some(
                now + SimDuration::from_nanos(
                    exponential_ns(&mut gen.rng, (1_000_000_000 / rate).max(1)).max(1),
                ),
            ),
            Arrival::Burst { count, spacing } => (gen.issued + 1 < *count).then(|| now + spacing.0),
            Arrival::Ramp { from_rate, to_rate } => {
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
        let burst = matches!(gen.arrival, Arrival::Burst { .. });
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
                &mut client_env!(self, host),
                &mut io,
            );
            Conn {
                sock,
                host,
                reported: false,
            }
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
            Prim::StopAccepting(w) => self.workers[w].accepting = false,
            Prim::ResumeAccepting(w) => {
                self.workers[w].accepting = true;
                self.try_accept(now, w);
            }
            Prim::SetSysctl(h, name, value) => {
                if self.migrate.is_some() && name == "tcp_migrate_req" {
                    // --migrate overrides the sysctl for the whole run.
                } else {
                    self.sysctls[h].set(&name, value).expect("validated");
                    if let Some(s) = self.servers[h].as_mut() {
                        s.stack.sysctls.set(&name, value).expect("validated");
                    }
                }
            }
            Prim::AttachPolicy(p, via) => {
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
            Prim::DetachPolicy(via) => {
                let worker = &self.workers[via];
                let (h, l) = (worker.host, worker.own_listener);
                let server = self.servers[h].as_mut().expect("server host");
                let listening = server.stack.listeners[l.index()].is_listening();
                server.stack.hooks.detach_policy(l, listening);
            }
            Prim::Handover(from, to) => {
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

    /// Each host's namespace counters: its server stack's plus its
    /// clients', non-zero ones only; hosts with nothing counted are left out.
    fn host_counters(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for (h, name) in self.host_names.iter().enumerate() {
            let mut c = self.client_counters[h].clone();
            if let Some(s) = &self.servers[h] {
                c.add(&s.stack.counters);
            }
            let row: BTreeMap<String, u64> = c
                .entries()
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            if !row.is_empty() {
                out.insert(name.clone(), row);
            }
        }
        out
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
        self.stats.conns.in_flight = self.clients.values().filter(|c| !c.reported).count() as u64;
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
            counters_by_host: self.host_counters(),
            client_rsts_by_cause: self
                .stats
                .client_rsts
                .iter()
                .map(|(c, n)| (c.name().to_string(), *n))
                .collect(),
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
