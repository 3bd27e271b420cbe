//! The input of a kernel run: plain structs, independent of the scenario
//! format, so that a scenario's `Plan` translates into them field by field.
//!
//! Indices: hosts, links, servers, workers, clients and policies are
//! referred to by their index in the corresponding `Vec` of [`KernelSpec`]
//! (hosts and links through `sim_core`'s [`HostId`] and [`LinkId`], so that
//! faults can be [`sim_core::Fault`] values unchanged). Instants are
//! [`SimTime`] offsets from the start of the run; durations are
//! [`SimDuration`].
//!
//! Same-instant order (as in the simulator): worker `listen_at`s, then policy
//! `attach_at`s, then `timeline` entries in the order given.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use sim_core::{Fault, HostId, LinkId, LinkParams, SimDuration, SimTime};

/// A whole run on the real kernel.
#[derive(Clone, Debug)]
pub struct KernelSpec {
    /// Scenario name (for messages).
    pub name: String,
    /// Seed of the random draws made here: arrival times of
    /// [`ArrivalProcess`] variants that draw, link loss and jitter.
    pub seed: u64,
    /// How long the run lasts in real time. Connections still open then are
    /// reported [`Outcome::InFlight`](crate::Outcome::InFlight).
    pub duration: SimDuration,
    /// One private network namespace each, by [`HostId`].
    pub hosts: Vec<HostSpec>,
    /// Emulated links (by [`LinkId`]): one TUN device per host that has one.
    pub links: Vec<LinkSpec>,
    /// Link faults and packet filters, with `sim_core`'s semantics. Filters
    /// whose host pair can be the same host are also applied to that host's
    /// loopback traffic, by an XDP program on `lo`.
    pub faults: Vec<Fault>,
    /// Listening services.
    pub servers: Vec<ServerSpec>,
    /// Worker threads, each owning one listening socket.
    pub workers: Vec<WorkerSpec>,
    /// Client populations.
    pub clients: Vec<ClientSpec>,
    /// `SK_REUSEPORT` programs.
    pub policies: Vec<PolicySpec>,
    /// Actions at their times (stable order among equal times).
    pub timeline: Vec<TimedAction>,
}

/// One host: a private network namespace.
#[derive(Clone, Debug)]
pub struct HostSpec {
    /// Name (a sanitized form of it is part of the namespace name).
    pub name: String,
    /// Its addresses. Loopback addresses (`127.0.0.0/8`, `::1`) are already
    /// on `lo`; the others go on the host's TUN device, or on `lo` if the
    /// host has no link.
    pub addresses: Vec<IpAddr>,
    /// Sysctls written inside the namespace before the run: a short name of
    /// the scenario format (`tcp_migrate_req`, `somaxconn`, ...) or a full
    /// dotted name under `net.` (`net.ipv4.tcp_fastopen`).
    pub sysctls: BTreeMap<String, i64>,
}

/// A bidirectional emulated link between two hosts.
#[derive(Clone, Debug)]
pub struct LinkSpec {
    /// Name (for messages).
    pub name: String,
    /// First endpoint.
    pub a: HostId,
    /// Second endpoint.
    pub b: HostId,
    /// Latency, jitter, loss, bandwidth, reordering.
    pub params: LinkParams,
}

/// A listening service: the address and port its workers bind.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// Name.
    pub name: String,
    /// The host whose namespace the listeners live in.
    pub host: HostId,
    /// Bind address (may be a wildcard) and port.
    pub addr: SocketAddr,
}

/// How a worker calls `accept()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptModel {
    /// As soon as the listener is readable.
    Immediate,
    /// At most `per_second` accepts per second, evenly spaced.
    Rate {
        /// Accepts per second (> 0).
        per_second: u64,
    },
    /// Up to `max` accepts, then wait `interval`.
    Batch {
        /// Time between batches.
        interval: SimDuration,
        /// Accepts per batch (> 0).
        max: u32,
    },
}

/// A worker thread and the listening socket it creates (bound at start).
#[derive(Clone, Debug)]
pub struct WorkerSpec {
    /// Name.
    pub name: String,
    /// Index into [`KernelSpec::servers`].
    pub server: usize,
    /// `listen()` backlog.
    pub backlog: u32,
    /// When it calls `listen()`; `None`: only through the timeline.
    pub listen_at: Option<SimTime>,
    /// Accept model.
    pub accept: AcceptModel,
    /// From reading the request to writing the response.
    pub service_time: SimDuration,
    /// Response size; the worker closes the connection after it.
    pub response_bytes: u32,
    /// `TCP_SYNCNT` on the listener (0: not set).
    pub syn_retries: u8,
    /// `TCP_FASTOPEN` queue length (0: not set).
    pub fast_open_qlen: u32,
    /// `TCP_DEFER_ACCEPT` in seconds, as given to `setsockopt` (the kernel
    /// stores it as SYN-ACK timeouts, `secs_to_retrans`; 0: not set).
    pub defer_accept_secs: u32,
    /// `IPV6_V6ONLY` (IPv6 listeners only).
    pub v6only: bool,
}

/// When a population's connections start.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrivalProcess {
    /// Evenly spaced, `rate` per second, in `[start, stop)`.
    Constant {
        /// Per second (> 0).
        rate: u64,
    },
    /// Poisson process of mean `rate` per second, in `[start, stop)`,
    /// drawn from the spec's seed.
    Poisson {
        /// Per second (> 0).
        rate: u64,
    },
    /// `count` connections from `start`, `spacing` apart (`stop` ignored).
    Burst {
        /// Connections.
        count: u32,
        /// Gap between two.
        spacing: SimDuration,
    },
    /// Rate changing linearly from `from_rate` to `to_rate` over
    /// `[start, stop)`.
    Ramp {
        /// Rate at `start`.
        from_rate: u64,
        /// Rate at `stop`.
        to_rate: u64,
    },
    /// Exactly these instants (e.g. the simulator's own draws, for common
    /// random numbers). Must be sorted; `start`/`stop` are ignored.
    Schedule(Vec<SimTime>),
}

/// A client population: one connection per arrival.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    /// Name.
    pub name: String,
    /// The host whose namespace its sockets live in.
    pub host: HostId,
    /// The address and port to connect to (not a wildcard).
    pub target: SocketAddr,
    /// Source addresses, used round robin (ephemeral ports). Must belong to
    /// `host` and be of the target's family.
    pub sources: Vec<IpAddr>,
    /// Arrival process.
    pub arrival: ArrivalProcess,
    /// First arrival.
    pub start: SimTime,
    /// No arrival at or after this time.
    pub stop: SimTime,
    /// Request size, written once connected (or in the SYN with Fast Open).
    pub request_bytes: u32,
    /// Use `TCP_FASTOPEN_CONNECT`.
    pub fast_open: bool,
}

/// Where a BPF object's bytes come from.
#[derive(Clone, Debug)]
pub enum BpfObject {
    /// An ELF file (e.g. a fixture of `sim-bpf` or the scenario's own
    /// `.bpf.o`).
    Path(PathBuf),
    /// ELF bytes already in memory.
    Bytes(std::sync::Arc<[u8]>),
}

/// `expected_attach_type` of an `SK_REUSEPORT` program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReuseportAttach {
    /// `BPF_SK_REUSEPORT_SELECT`: selection only.
    Select,
    /// `BPF_SK_REUSEPORT_SELECT_OR_MIGRATE`: also called on migration.
    SelectOrMigrate,
}

/// A key or value of a map entry, resolved when the action runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapDatum {
    /// Raw bytes (must have the map's key or value size).
    Bytes(Vec<u8>),
    /// A native-endian `u32`.
    U32(u32),
    /// A native-endian `u64`.
    U64(u64),
    /// The file descriptor of this worker's own listening socket, as a
    /// `u64` (`REUSEPORT_SOCKARRAY` values; the kernel requires the socket
    /// to be listening).
    ListenerFd(usize),
    /// The socket cookie (`SO_COOKIE`) of this worker's own listening
    /// socket, as a native-endian `u64`.
    ListenerCookie(usize),
}

/// One map entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEntry {
    /// Map name in the object.
    pub map: String,
    /// Key.
    pub key: MapDatum,
    /// Value.
    pub value: MapDatum,
}

/// An `SK_REUSEPORT` program from an ELF object, attached to a group with
/// `SO_ATTACH_REUSEPORT_EBPF`.
#[derive(Clone, Debug)]
pub struct PolicySpec {
    /// Name.
    pub name: String,
    /// The object.
    pub object: BpfObject,
    /// The program's function name in the object.
    pub program: String,
    /// Attach type given at load.
    pub attach: ReuseportAttach,
    /// Entries written right after loading (before the run starts): plain
    /// values only, since no listener listens yet. Socket-array entries
    /// go in the timeline as [`Action::MapUpdate`] after the `listen`.
    pub initial_entries: Vec<MapEntry>,
    /// When it is attached through `via`; `None`: only by the timeline.
    pub attach_at: Option<SimTime>,
    /// The worker whose listening socket carries the attach call.
    pub via: usize,
}

/// A primitive action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `listen(backlog)` on the worker's own socket (also re-listen after
    /// shutdown).
    Listen(usize),
    /// `shutdown(SHUT_RDWR)` of the listener the worker holds.
    Shutdown(usize),
    /// The last `close()` of the listener the worker holds.
    Close(usize),
    /// `listen(fd, backlog)` again on the listening socket the worker
    /// holds: the kernel only changes the backlog (`sk_max_ack_backlog`).
    Relisten {
        /// Worker.
        worker: usize,
        /// New backlog.
        backlog: u32,
    },
    /// The worker stops calling `accept()`.
    StopAccepting(usize),
    /// It accepts again.
    ResumeAccepting(usize),
    /// The worker exits: its listener is closed, then every connection it
    /// accepted is closed with a plain `close()` (FIN, or RST if unread
    /// data remains: spec §5.10).
    Kill(usize),
    /// fd passing: `to` takes over the listener `from` holds; `from` stops
    /// accepting. Nothing closes.
    Handover {
        /// Giving worker.
        from: usize,
        /// Receiving worker.
        to: usize,
    },
    /// Write a sysctl inside a host's namespace (names as in
    /// [`HostSpec::sysctls`]).
    SetSysctl {
        /// Host.
        host: HostId,
        /// Name.
        name: String,
        /// Value.
        value: i64,
    },
    /// `SO_ATTACH_REUSEPORT_EBPF` of the policy's program on `via`'s own
    /// socket.
    AttachPolicy {
        /// Index into [`KernelSpec::policies`].
        policy: usize,
        /// Worker whose socket carries the call.
        via: usize,
    },
    /// `SO_DETACH_REUSEPORT_BPF` on `via`'s own socket.
    DetachPolicy {
        /// Worker whose socket carries the call.
        via: usize,
    },
    /// `bpf_map_update_elem` in a policy's map.
    MapUpdate {
        /// Policy whose object owns the map.
        policy: usize,
        /// The entry.
        entry: MapEntry,
        /// `BPF_ANY` (0), `BPF_NOEXIST` (1) or `BPF_EXIST` (2).
        flags: u64,
    },
    /// `bpf_map_delete_elem` in a policy's map.
    MapDelete {
        /// Policy whose object owns the map.
        policy: usize,
        /// Map name.
        map: String,
        /// Key.
        key: MapDatum,
    },
}

/// An action at an instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedAction {
    /// When.
    pub at: SimTime,
    /// What.
    pub action: Action,
}

/// How to run (not part of the scenario).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Interval of the `INET_DIAG` queue samples.
    pub sample_interval: SimDuration,
    /// Write every packet crossing the link emulator (and every loopback
    /// packet of a host with same-host clients) to this pcap file.
    pub pcap: Option<PathBuf>,
    /// Set (to a signal number, or any non-zero value) to stop the run
    /// early; the run then cleans up and returns
    /// [`KernelError::Interrupted`](crate::KernelError::Interrupted).
    pub stop: crate::StopFlag,
    /// Time between the end of setup and scenario time 0, so that every
    /// thread is waiting when the run starts.
    pub start_lead: SimDuration,
    /// Run the link emulator, the timeline and the endpoints under
    /// `SCHED_FIFO` (see [`crate::clock::prio`]), so that other load on the
    /// machine delays them less.
    pub realtime: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            sample_interval: SimDuration::from_millis(10),
            pcap: None,
            stop: crate::StopFlag::new(),
            start_lead: SimDuration::from_millis(50),
            realtime: true,
        }
    }
}

impl KernelSpec {
    /// The worker index named `name`.
    pub fn worker_index(&self, name: &str) -> Option<usize> {
        self.workers.iter().position(|w| w.name == name)
    }

    /// The link between `a` and `b`, if any.
    pub fn link_between(&self, a: HostId, b: HostId) -> Option<LinkId> {
        self.links
            .iter()
            .position(|l| (l.a == a && l.b == b) || (l.a == b && l.b == a))
            .map(|i| LinkId(i as u32))
    }
}
