//! The [`Plan`]: a scenario after lowering ([`crate::scenario::lower`]).
//!
//! Every name is resolved to a typed index, every time to a [`SimTime`],
//! every address to the one a socket binds or connects to, and the
//! timeline (macros expanded) is one list of primitive [`Step`]s sorted by
//! time. Every check a user's input can fail has been made: a backend builds
//! and runs a `Plan` without an error path of its own for the input.
//!
//! The plan is backend-neutral: it says what a real run on Linux network
//! namespaces would have to set up too (hosts and their addresses and
//! sysctls, links, which worker binds which address and listens when, which
//! client population connects where), and nothing that only the simulator
//! needs (event lanes, owner maps, port tables: those are built by the
//! simulator's constructors).

use crate::reuseport::policy::PolicyKind;
use sim_core::{FilterMatch, LinkParams, Probability, SimDuration, SimTime};
use sim_tcp::Sysctls;
use std::net::{IpAddr, SocketAddr};

macro_rules! index_type {
    ($(#[$m:meta])* $name:ident($int:ty)) => {
        $(#[$m])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $int);

        impl $name {
            /// The index as a `usize`, for indexing the plan's lists.
            #[inline]
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

index_type!(
    /// A host of the plan: an index into [`Plan::hosts`].
    HostIx(u16)
);
index_type!(
    /// A link of the plan: an index into [`Plan::links`].
    LinkIx(u32)
);
index_type!(
    /// A server (service address) of the plan: an index into [`Plan::servers`].
    ServerIx(u32)
);
index_type!(
    /// A worker (one listening socket's owner) of the plan: an index into
    /// [`Plan::workers`].
    WorkerIx(u16)
);
index_type!(
    /// A client population of the plan: an index into [`Plan::clients`].
    ClientIx(u16)
);
index_type!(
    /// A policy (the stand-in for an eBPF program) of the plan: an index
    /// into [`Plan::policies`].
    PolicyIx(u32)
);

/// A scenario, lowered: what every backend runs.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The scenario's name.
    pub name: String,
    /// The scenario's canonical hash ([`crate::scenario::scenario_hash`]).
    pub hash: String,
    /// The scenario's default seed (`RunOptions::seed` overrides it).
    pub seed: u64,
    /// Simulated time to run: events after `SimTime::ZERO + duration` are not processed.
    pub duration: SimDuration,
    /// Hosts (network namespaces), by [`HostIx`].
    pub hosts: Vec<HostPlan>,
    /// Links, by [`LinkIx`].
    pub links: Vec<LinkPlan>,
    /// Faults in scenario order (a packet filter's id is its index here).
    pub faults: Vec<FaultPlan>,
    /// Servers (service addresses), by [`ServerIx`].
    pub servers: Vec<ServerPlan>,
    /// Workers, by [`WorkerIx`]; each binds one listener, in this order.
    pub workers: Vec<WorkerPlan>,
    /// Policies, by [`PolicyIx`].
    pub policies: Vec<PolicyPlan>,
    /// Client populations, by [`ClientIx`].
    pub clients: Vec<ClientPlan>,
    /// Every timeline primitive (the workers' `listen_at`, the policies'
    /// `attach_at`, then the timeline with its macros expanded), sorted by
    /// time; steps at the same time keep that order.
    pub timeline: Vec<Step>,
}

/// A host: one network namespace.
#[derive(Clone, Debug)]
pub struct HostPlan {
    /// Unique name.
    pub name: String,
    /// Its addresses, unique across hosts and never unspecified.
    pub addresses: Vec<IpAddr>,
    /// Its sysctls: the kernel's defaults with the scenario's settings applied.
    pub sysctls: Sysctls,
    /// Its kernel's timer granularity (`CONFIG_HZ`, wheel or exact, §3.1).
    pub timers: sim_core::TimerModel,
    /// Its CPU count (>= 1), over which RSS spreads flows.
    pub cpus: u16,
}

/// A bidirectional link between two different hosts (at most one per pair).
#[derive(Clone, Debug)]
pub struct LinkPlan {
    /// Unique name (faults refer to it).
    pub name: String,
    /// One end.
    pub a: HostIx,
    /// The other end.
    pub b: HostIx,
    /// Latency, jitter, loss, bandwidth: checked and bounded.
    pub params: LinkParams,
}

/// A fault with its time window.
#[derive(Clone, Debug)]
pub enum FaultPlan {
    /// The link drops everything in `[from, until)`.
    LinkDown {
        /// The link.
        link: LinkIx,
        /// Window start.
        from: SimTime,
        /// Window end (`from <= until`).
        until: SimTime,
    },
    /// From `at`, the link's parameters change; `None` keeps the value in
    /// force at `at` (earlier changes included).
    SetLink {
        /// The link.
        link: LinkIx,
        /// When.
        at: SimTime,
        /// New latency.
        latency: Option<SimDuration>,
        /// New jitter.
        jitter: Option<SimDuration>,
        /// New loss probability.
        loss: Option<Probability>,
    },
    /// Matching packets leaving their source host in `[from, until)` are dropped.
    DropPackets {
        /// Window start.
        from: SimTime,
        /// Window end (`from <= until`).
        until: SimTime,
        /// Which segments.
        match_kind: FilterMatch,
        /// Only from this host.
        src_host: Option<HostIx>,
        /// Only to this host.
        dst_host: Option<HostIx>,
        /// Only to this port.
        dst_port: Option<u16>,
        /// Only from this port.
        src_port: Option<u16>,
    },
}

impl FaultPlan {
    /// Fault `i` of the plan as a `sim_core` fault (a filter's id is its
    /// index), for either backend. A parameter change keeps, for what it
    /// leaves out, the values `params_at` says are in force on its link at
    /// its time (the link's own, or an earlier change's).
    pub fn to_fault(
        &self,
        i: usize,
        params_at: impl FnOnce(LinkIx, SimTime) -> LinkParams,
    ) -> sim_core::Fault {
        use sim_core::{Fault, FilterId, HostId, LinkId, PacketFilter};
        let host = |h: HostIx| HostId(u32::from(h.0));
        match *self {
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
                let mut params = params_at(link, at);
                if let Some(l) = latency {
                    params.latency = l;
                }
                if let Some(j) = jitter {
                    params.jitter = j;
                }
                if let Some(p) = loss {
                    params.loss = p;
                }
                Fault::SetLinkParams {
                    link: LinkId(link.0),
                    at,
                    params,
                }
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
                    src_host: src_host.map(host),
                    dst_host: dst_host.map(host),
                    dst_port,
                    src_port,
                    match_kind,
                },
                from,
                until,
            },
        }
    }
}

/// A service address: what the workers of a server bind.
#[derive(Clone, Debug)]
pub struct ServerPlan {
    /// Unique name.
    pub name: String,
    /// Its host.
    pub host: HostIx,
    /// The bound address and port: an address of the host, or a wildcard.
    pub local: SocketAddr,
}

/// How a worker calls `accept()`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AcceptModel {
    /// As soon as a child is queued.
    Immediate,
    /// At most one accept every `interval` (`1 s / per_second`, at least 1 ns).
    Rate {
        /// Accepts per second (> 0).
        per_second: u64,
    },
    /// Every `interval` (an event-loop tick), up to `max` accepts.
    Batch {
        /// Tick interval (> 0, bounded).
        interval: SimDuration,
        /// Accepts per tick (> 0).
        max: u32,
    },
}

/// A worker process: binds one listener to its server's address at the
/// start, and listens when the timeline says so.
#[derive(Clone, Debug)]
pub struct WorkerPlan {
    /// Unique name.
    pub name: String,
    /// The server whose address it binds.
    pub server: ServerIx,
    /// The server's host.
    pub host: HostIx,
    /// `listen()` backlog (> 0; the kernel caps it by `somaxconn`).
    pub backlog: u32,
    /// Accept model.
    pub accept: AcceptModel,
    /// Time from having the request to sending the response (bounded).
    pub service_time: SimDuration,
    /// Response size in bytes.
    pub response_bytes: u32,
    /// Answer without closing; close at the client's FIN (HTTP keep-alive).
    pub keep_alive: bool,
    /// Worker generation (for `newest_generation` policies).
    pub generation: u32,
    /// `TCP_SYNCNT` on the listener (0 = `tcp_synack_retries`).
    pub syn_retries: u8,
    /// `TCP_FASTOPEN` queue length (0 = off).
    pub fast_open_qlen: u32,
    /// `TCP_DEFER_ACCEPT` as SYN-ACK timeouts (`secs_to_retrans`; 0 = off).
    pub defer_accept: u8,
    /// `IPV6_V6ONLY`.
    pub v6only: bool,
    /// `SO_INCOMING_CPU` (< its host's `cpus`), if set.
    pub incoming_cpu: Option<u16>,
    /// CPU time of each `accept()` (bounded; zero = none).
    pub cpu_per_accept: SimDuration,
    /// CPU time of each request (bounded; zero = none). Both zero: the
    /// fixed-delay model.
    pub cpu_per_request: SimDuration,
}

/// What a policy does for one kind of call, with workers resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RulePlan {
    /// `SK_PASS` without a selection.
    Pass,
    /// `SK_DROP`.
    Drop,
    /// Hash among the live workers of the newest generation.
    NewestGeneration,
    /// The live worker with the shortest accept queue.
    LeastLoaded,
    /// Select this worker's listener.
    Pick(WorkerIx),
    /// The kernel selftest's map: closing worker → target worker.
    Map {
        /// (closing worker, target worker), in the scenario's key order.
        targets: Vec<(WorkerIx, WorkerIx)>,
        /// Drop (true) or pass when the closing worker is not a key.
        missing_drop: bool,
    },
}

/// A policy standing in for an `SK_REUSEPORT` eBPF program (§2.7).
#[derive(Clone, Debug)]
pub struct PolicyPlan {
    /// Unique name.
    pub name: String,
    /// Attach type.
    pub kind: PolicyKind,
    /// Rule for listener selection.
    pub on_syn: RulePlan,
    /// Rule for migration.
    pub on_migrate: RulePlan,
    /// Migrations away from these workers' listeners are dropped.
    pub cancel_for: Vec<WorkerIx>,
    /// The worker whose socket it is attached through by default.
    pub via: WorkerIx,
    /// That worker's host: the policy lives in this host's kernel.
    pub host: HostIx,
    /// A real eBPF program instead of the rules (`on_syn` and `on_migrate`
    /// are then `Pass` and `cancel_for` empty).
    pub bpf: Option<BpfPlan>,
}

/// A loaded `SK_REUSEPORT` program (§2.7) and its maps' first contents.
#[derive(Clone, Debug)]
pub struct BpfPlan {
    /// The object path as the scenario wrote it.
    pub object: String,
    /// The object file's bytes, as read (the kernel backend loads these).
    pub elf: std::sync::Arc<[u8]>,
    /// The object, loaded and checked (each run starts from a copy).
    pub loaded: std::sync::Arc<sim_bpf::BpfObject>,
    /// The program in it.
    pub prog: sim_bpf::ProgId,
    /// The program's function name.
    pub program: String,
    /// Map elements written at load, in order.
    pub init: Vec<MapWrite>,
}

/// A map element user space writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapWrite {
    /// The map.
    pub map: sim_bpf::MapId,
    /// Its name (for traces and reports).
    pub map_name: String,
    /// Key.
    pub key: MapBytes,
    /// Value.
    pub value: MapBytes,
}

/// Map key or value bytes, with the parts only known at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapBytes {
    /// Exactly these bytes.
    Bytes(Vec<u8>),
    /// The socket "fd" of a worker's listener, as an integer of this many
    /// bytes (4 or 8).
    Worker(WorkerIx, u8),
    /// The socket cookie of a worker's listener (8 bytes).
    Cookie(WorkerIx),
}

/// A client population's arrival process.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ArrivalPlan {
    /// Evenly spaced, `rate` per second (0 < rate <= 10^8).
    Constant {
        /// Connections per second.
        rate: u64,
    },
    /// Poisson, mean `rate` per second (0 < rate <= 10^8).
    Poisson {
        /// Connections per second.
        rate: u64,
    },
    /// `count` connections from `start`, `spacing` apart.
    Burst {
        /// Number of connections (bounded).
        count: u64,
        /// Time between two connections (bounded).
        spacing: SimDuration,
    },
    /// Rate ramping linearly over `[start, stop)` (not both 0, at most 10^8).
    Ramp {
        /// Initial rate per second.
        from_rate: u64,
        /// Final rate per second.
        to_rate: u64,
    },
}

/// A client population.
#[derive(Clone, Debug)]
pub struct ClientPlan {
    /// Unique name.
    pub name: String,
    /// The host the clients run on.
    pub host: HostIx,
    /// The server they connect to.
    pub server: ServerIx,
    /// The server's host (reachable from `host`, or `host` itself).
    pub server_host: HostIx,
    /// The address and port they connect to (a wildcard server's first
    /// host address of the family).
    pub server_addr: SocketAddr,
    /// Source addresses: the host's addresses of the server's family (not empty).
    pub sources: Vec<IpAddr>,
    /// Arrival process.
    pub arrival: ArrivalPlan,
    /// First arrival.
    pub start: SimTime,
    /// No arrivals at or after this time (a burst ignores it); `start <= stop`.
    pub stop: SimTime,
    /// Request bytes written after `connect()` (> 0).
    pub request_bytes: u32,
    /// `TCP_FASTOPEN_CONNECT`.
    pub fast_open: bool,
    /// The clients hold a Fast Open cookie.
    pub has_cookie: bool,
    /// The application gives up a connection not established after this
    /// long (`connect` timeout).
    pub connect_timeout: Option<SimDuration>,
    /// The application gives up a connection without its response after
    /// this long since `connect()`.
    pub request_timeout: Option<SimDuration>,
}

/// A timeline primitive: one system call or event of the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prim {
    /// `listen()` on the worker's own listener (also a re-listen, §5.9).
    Listen(WorkerIx),
    /// `shutdown(SHUT_RDWR)` of the listener the worker holds.
    Shutdown(WorkerIx),
    /// The last `close()` of the listener the worker holds.
    Close(WorkerIx),
    /// The worker stops calling `accept()`.
    StopAccepting(WorkerIx),
    /// The worker calls `accept()` again.
    ResumeAccepting(WorkerIx),
    /// `listen(fd, backlog)` on the listening socket the worker holds:
    /// only the backlog changes (§5.1).
    Relisten(WorkerIx, u32),
    /// The worker's process exits: its listener closes, its accepted
    /// connections are closed (§5.10).
    Kill(WorkerIx),
    /// Sets a sysctl (a name [`Sysctls::set`] accepts, with a valid value).
    SetSysctl {
        /// Where.
        host: HostIx,
        /// Kernel name.
        name: String,
        /// Value.
        value: u64,
    },
    /// Attaches `policy` through `via`'s own listener.
    AttachPolicy {
        /// The policy.
        policy: PolicyIx,
        /// The worker whose socket carries the `setsockopt`.
        via: WorkerIx,
    },
    /// Detaches the policy of `via`'s group.
    DetachPolicy {
        /// The worker whose socket carries the `setsockopt`.
        via: WorkerIx,
    },
    /// `BPF_MAP_UPDATE_ELEM` on a map of a `bpf` policy.
    MapUpdate {
        /// The policy.
        policy: PolicyIx,
        /// The element.
        write: MapWrite,
        /// `BPF_ANY`, `BPF_NOEXIST` or `BPF_EXIST`.
        flags: u64,
    },
    /// `BPF_MAP_DELETE_ELEM` on a map of a `bpf` policy.
    MapDelete {
        /// The policy.
        policy: PolicyIx,
        /// The map.
        map: sim_bpf::MapId,
        /// Its name.
        map_name: String,
        /// Key.
        key: MapBytes,
    },
    /// fd passing: `to` (same host, never listening on its own) inherits
    /// `from`'s listener; `from` stops accepting.
    Handover {
        /// Old worker.
        from: WorkerIx,
        /// New worker.
        to: WorkerIx,
    },
}

/// One timeline step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// When (within the duration).
    pub at: SimTime,
    /// What.
    pub prim: Prim,
    /// A label for traces and plot markers, e.g. `"listen new-0"`.
    pub label: String,
}
