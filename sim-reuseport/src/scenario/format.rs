//! Scenario files: the JSON format (read with `serde`), strict parsing with
//! errors that name the file, line, column and JSON path, and the macros that
//! expand to timeline actions. `docs/scenario-format.md` documents the format.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sim_core::{Probability, SimDuration};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

/// The scenario format version this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// A duration written as a string with a unit: `"250ms"`, `"1.5s"`, `"10us"`,
/// `"100ns"`, `"2m"`. Exact integer nanoseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub SimDuration);

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_string(
            d,
            "a duration string with a unit, such as \"250ms\", \"1.5s\", \"10us\"",
            |v| SimDuration::parse(v).map(Dur),
        )
    }
}

/// Deserializes a value written as a string and parsed by `parse`;
/// `expecting` is what an error says was expected.
fn parse_string<'de, D, T, E>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    E: fmt::Display,
{
    struct V<T, E> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, E>,
    }
    impl<T, E: fmt::Display> serde::de::Visitor<'_> for V<T, E> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<Er: serde::de::Error>(self, v: &str) -> Result<T, Er> {
            (self.parse)(v).map_err(Er::custom)
        }
    }
    d.deserialize_str(V { expecting, parse })
}

impl JsonSchema for Dur {
    fn schema_name() -> String {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut s = schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::String.into()),
            ..Default::default()
        };
        s.metadata().description = Some(
            "A duration with a unit: ns, us or µs, ms, s, m or min (e.g. \"250ms\", \"1.5s\"), or 0"
                .into(),
        );
        s.into()
    }
}

/// A probability written as `"0.5%"`, `"0.001"` or `"1/1000"`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Prob(pub Probability);

impl Default for Prob {
    fn default() -> Self {
        Prob(Probability::NEVER)
    }
}

impl Serialize for Prob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}/1000000000", self.0.as_ppb()))
    }
}

impl<'de> Deserialize<'de> for Prob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_string(
            d,
            "a probability string such as \"0.5%\", \"0.001\" or \"1/1000\"",
            |v| Probability::parse(v).map(Prob),
        )
    }
}

impl JsonSchema for Prob {
    fn schema_name() -> String {
        "Probability".into()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut s = schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::String.into()),
            ..Default::default()
        };
        s.metadata().description = Some("A probability: \"0.5%\", \"0.001\" or \"1/1000\"".into());
        s.into()
    }
}

fn default_seed() -> u64 {
    1
}
fn default_backlog() -> u32 {
    511
}
fn default_listen_at() -> Option<Dur> {
    Some(Dur(SimDuration::ZERO))
}
fn default_response_bytes() -> u32 {
    1000
}
fn default_request_bytes() -> u32 {
    100
}
fn default_attach_at() -> Dur {
    Dur(SimDuration::ZERO)
}

/// A scenario file.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Format version; must be 1.
    pub version: u32,
    /// Short name.
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Default seed (overridden by `--seed`).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulated time to run.
    pub duration: Dur,
    /// Hosts (each a network namespace with its sysctls).
    pub hosts: Vec<HostSpec>,
    /// Links between hosts.
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// Link faults and packet filters with time windows.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Services: an address and port on a host.
    pub servers: Vec<ServerSpec>,
    /// Worker processes, each owning one listener.
    pub workers: Vec<WorkerSpec>,
    /// Client populations.
    pub clients: Vec<ClientSpec>,
    /// Policies standing in for eBPF programs.
    #[serde(default)]
    pub policies: Vec<PolicySpec>,
    /// Actions and macros at given times.
    #[serde(default)]
    pub timeline: Vec<Action>,
    /// Parameters drawn per seed (sweeps, and `run --seed`): each patches
    /// one value of this file, addressed by a JSON pointer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vary: Vec<Vary>,
    /// The directory of the scenario file ([`load`] sets it): relative
    /// paths in the file (a `bpf` policy's `object`) are resolved from it.
    /// `None` (parsed from a string): from the working directory.
    #[serde(skip)]
    #[schemars(skip)]
    pub base_dir: Option<std::path::PathBuf>,
}

/// One varied parameter: the value at `path` (a JSON pointer into the
/// scenario, e.g. `/links/0/latency`) is drawn per seed, uniformly from
/// `choices`, or from `[min, max]` (both durations, or both integers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vary {
    /// JSON pointer of the value to replace.
    pub path: String,
    /// Lower bound (a duration string or an integer).
    #[serde(default)]
    pub min: Option<serde_json::Value>,
    /// Upper bound, inclusive (same kind as `min`).
    #[serde(default)]
    pub max: Option<serde_json::Value>,
    /// Alternatives, drawn uniformly.
    #[serde(default)]
    pub choices: Vec<serde_json::Value>,
}

/// A host.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Unique name.
    pub name: String,
    /// Addresses of the host (IPv4 and/or IPv6).
    pub addresses: Vec<IpAddr>,
    /// Sysctls by kernel name (`tcp_migrate_req`, `tcp_synack_retries`, ...).
    #[serde(default)]
    pub sysctls: BTreeMap<String, u64>,
    /// The kernel's `CONFIG_HZ` (100, 250, 300 or 1000; default 250): the
    /// granularity of the host's TCP timers on the timer wheel (§3.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hz: Option<u32>,
    /// How the host's TCP timers fire (default `wheel`, as Linux does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer_mode: Option<TimerModeSpec>,
    /// Number of CPUs (default 1). Receive-side scaling spreads flows over
    /// them by flow hash; workers' `incoming_cpu` refers to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u16>,
}

/// How a host's TCP timers fire (§3.1).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimerModeSpec {
    /// At the expiry of their timer-wheel bucket, in jiffies (Linux).
    Wheel,
    /// At their exact nominal deadlines (to see what the wheel changes).
    Exact,
}

impl From<TimerModeSpec> for sim_core::TimerMode {
    fn from(m: TimerModeSpec) -> Self {
        match m {
            TimerModeSpec::Wheel => sim_core::TimerMode::Wheel,
            TimerModeSpec::Exact => sim_core::TimerMode::Exact,
        }
    }
}

/// A bidirectional link.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Name used by faults (default `"<a>-<b>"`).
    #[serde(default)]
    pub name: Option<String>,
    /// The two hosts.
    pub between: [String; 2],
    /// One-way latency.
    pub latency: Dur,
    /// Bound of the uniform extra delay.
    #[serde(default)]
    pub jitter: Dur,
    /// Loss probability per packet and hop.
    #[serde(default)]
    pub loss: Prob,
    /// Bandwidth in bits per second (none = unlimited).
    #[serde(default)]
    pub bandwidth_bps: Option<u64>,
    /// Let jitter reorder packets within one direction.
    #[serde(default)]
    pub allow_reorder: bool,
}

/// Which segments a packet filter drops.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchSpec {
    /// Everything.
    Any,
    /// ACK only, no payload.
    PureAck,
    /// ACK without SYN (pure ACKs and data), like the selftest's XDP `drop_ack`.
    AckNoSyn,
    /// SYN without ACK.
    Syn,
    /// SYN with ACK.
    SynAck,
    /// RST.
    Rst,
    /// Any segment with payload.
    Data,
}

/// A fault.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultSpec {
    /// The link drops everything in `[from, until)` (a partition).
    LinkDown {
        /// Link name.
        link: String,
        /// Window start.
        from: Dur,
        /// Window end.
        until: Dur,
    },
    /// Change a link's parameters at a time.
    SetLink {
        /// Link name.
        link: String,
        /// When.
        at: Dur,
        /// New latency.
        #[serde(default)]
        latency: Option<Dur>,
        /// New jitter.
        #[serde(default)]
        jitter: Option<Dur>,
        /// New loss.
        #[serde(default)]
        loss: Option<Prob>,
    },
    /// Drop matching packets leaving their source host in `[from, until)`.
    DropPackets {
        /// Window start.
        from: Dur,
        /// Window end.
        until: Dur,
        /// Which segments.
        #[serde(rename = "match")]
        match_kind: MatchSpec,
        /// Only from this host.
        #[serde(default)]
        src_host: Option<String>,
        /// Only to this host.
        #[serde(default)]
        dst_host: Option<String>,
        /// Only to this port.
        #[serde(default)]
        dst_port: Option<u16>,
        /// Only from this port.
        #[serde(default)]
        src_port: Option<u16>,
    },
}

/// A service address.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Unique name.
    pub name: String,
    /// The host it runs on.
    pub host: String,
    /// Bound address (may be a wildcard such as `0.0.0.0` or `::`); clients
    /// connect to the host's first address of the same family when wildcard.
    pub address: IpAddr,
    /// TCP port.
    pub port: u16,
}

/// How a worker calls accept().
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AcceptSpec {
    /// As soon as a child is queued.
    #[default]
    Immediate,
    /// At most `per_second` accepts per second, evenly spaced.
    Rate {
        /// Accepts per second (> 0).
        per_second: u64,
    },
    /// Every `interval` (an event-loop tick) accept up to `max` children.
    Batch {
        /// Tick interval (> 0).
        interval: Dur,
        /// Accepts per tick (> 0).
        max: u32,
    },
}

/// A worker process owning one listener.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    /// Unique name.
    pub name: String,
    /// The server (address and port) it listens on.
    pub server: String,
    /// listen() backlog (capped by `somaxconn`). nginx's default is 511.
    #[serde(default = "default_backlog")]
    pub backlog: u32,
    /// When it calls listen(); `null` = only through the timeline.
    #[serde(default = "default_listen_at")]
    pub listen_at: Option<Dur>,
    /// Accept model.
    #[serde(default)]
    pub accept: AcceptSpec,
    /// Time from having the request to sending the response.
    #[serde(default)]
    pub service_time: Dur,
    /// Response size in bytes.
    #[serde(default = "default_response_bytes")]
    pub response_bytes: u32,
    /// HTTP keep-alive: the worker answers without closing and closes when
    /// the client does (it reads EOF), so the client closes first and
    /// holds the TIME_WAIT. Default: the worker closes after its response
    /// (HTTP/1.0), and the server holds the TIME_WAIT.
    #[serde(default)]
    pub keep_alive: bool,
    /// Worker generation (for `newest_generation` policies).
    #[serde(default)]
    pub generation: u32,
    /// `TCP_SYNCNT` on the listener (0 = `tcp_synack_retries`).
    #[serde(default)]
    pub syn_retries: u8,
    /// `TCP_FASTOPEN` queue length (0 = Fast Open off on this listener).
    #[serde(default)]
    pub fast_open_qlen: u32,
    /// `TCP_DEFER_ACCEPT` in seconds on the listener (0 = off; nginx
    /// `listen ... deferred`): rounded up to SYN-ACK timeouts (§5.3).
    #[serde(default)]
    pub defer_accept: u32,
    /// `IPV6_V6ONLY` on a wildcard IPv6 listener.
    #[serde(default)]
    pub v6only: bool,
    /// `SO_INCOMING_CPU` on the listener: selection prefers it for flows
    /// processed on this CPU (< the host's `cpus`; default unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming_cpu: Option<u16>,
    /// CPU time of each `accept()` on the host's CPUs (default none: with
    /// `cpu_per_request` also unset, the worker uses no CPU model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_per_accept: Option<Dur>,
    /// CPU time of handling each request, before `service_time` runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_per_request: Option<Dur>,
}

/// The arrival process of a client population.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Arrival {
    /// Evenly spaced connections at `rate` per second.
    Constant {
        /// Connections per second (> 0).
        rate: u64,
    },
    /// A Poisson process of mean `rate` per second.
    Poisson {
        /// Connections per second (> 0).
        rate: u64,
    },
    /// `count` connections at `start`, `spacing` apart.
    Burst {
        /// Number of connections.
        count: u64,
        /// Time between two connections.
        #[serde(default)]
        spacing: Dur,
    },
    /// Rate ramping linearly from `from_rate` to `to_rate` over [start, stop).
    Ramp {
        /// Initial rate per second.
        from_rate: u64,
        /// Final rate per second.
        to_rate: u64,
    },
}

/// A client population.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// Unique name.
    pub name: String,
    /// The host the clients run on (its addresses are the source addresses).
    pub host: String,
    /// The server they connect to.
    pub server: String,
    /// Arrival process.
    pub arrival: Arrival,
    /// First arrival time.
    #[serde(default)]
    pub start: Dur,
    /// No arrivals at or after this time (default: the scenario's duration).
    #[serde(default)]
    pub stop: Option<Dur>,
    /// Request bytes written right after connect() (> 0).
    #[serde(default = "default_request_bytes")]
    pub request_bytes: u32,
    /// Use Fast Open (`TCP_FASTOPEN_CONNECT`).
    #[serde(default)]
    pub fast_open: bool,
    /// The clients hold a Fast Open cookie.
    #[serde(default)]
    pub has_cookie: bool,
    /// Give up on a connection whose handshake has not completed this long
    /// after connect() (a connect timeout); the socket is closed and the
    /// outcome is `abandoned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    /// Give up on a connection whose response has not arrived this long
    /// after connect() (a whole-request timeout, as load generators set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Dur>,
}

/// A rule of a policy for one kind of call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleSpec {
    /// `SK_PASS` without a selection (kernel hash fallback).
    Pass,
    /// `SK_DROP`.
    Drop,
    /// Hash among the live workers of the newest generation.
    NewestGeneration,
    /// The live worker with the shortest accept queue.
    LeastLoaded,
    /// Select this worker's listener.
    Pick(String),
    /// The kernel selftest's program: closing worker → target worker map.
    Map {
        /// closing worker → target worker.
        targets: BTreeMap<String, String>,
        /// Decision for a closing worker absent from the map: `"drop"` (the
        /// selftest) or `"pass"`.
        #[serde(default = "default_missing")]
        missing: String,
    },
}

fn default_missing() -> String {
    "drop".into()
}

fn default_rule() -> RuleSpec {
    RuleSpec::Pass
}

/// A policy standing in for an `SK_REUSEPORT` eBPF program (§2.7).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Unique name.
    pub name: String,
    /// `select` or `select_or_migrate`.
    pub kind: crate::policy::PolicyKind,
    /// Rule for SYN selection.
    #[serde(default = "default_rule")]
    pub on_syn: RuleSpec,
    /// Rule for migration (only `select_or_migrate`).
    #[serde(default = "default_rule")]
    pub on_migrate: RuleSpec,
    /// Migrations away from these workers are dropped.
    #[serde(default)]
    pub cancel_for: Vec<String>,
    /// Attach at this time (`null` = only through the timeline).
    #[serde(default = "default_attach_opt")]
    pub attach_at: Option<Dur>,
    /// The worker whose socket it is attached through.
    pub via: String,
    /// Run this eBPF program instead of the declarative rules (which must
    /// then be left out): `kind` is its attach type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf: Option<BpfSpec>,
}

/// A real `SK_REUSEPORT` program: an ELF object clang built (`sim-bpf`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BpfSpec {
    /// The object file, relative to the scenario file's directory.
    pub object: String,
    /// The program: its function name, or its section (`sk_reuseport`,
    /// `sk_reuseport/migrate`) when the section holds one program.
    pub program: String,
    /// Map contents written when the object is loaded, at the start of the
    /// run (before any listener exists), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maps: Vec<MapEntrySpec>,
}

/// One map element written by user space (`BPF_MAP_UPDATE_ELEM`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapEntrySpec {
    /// Map name (a `.bss`/`.data` section is a one-element array named
    /// after it).
    pub map: String,
    /// Key.
    pub key: MapBytesSpec,
    /// Value.
    pub value: MapBytesSpec,
}

/// Bytes of a map key or value, as user space writes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum MapBytesSpec {
    /// An unsigned integer, little-endian, of the key's or value's size
    /// (1, 2, 4 or 8 bytes).
    Int(u64),
    /// Several `u32`s in a row (a struct of `__u32` fields).
    U32s {
        /// The values, little-endian.
        u32: Vec<u32>,
    },
    /// Raw bytes in hex, exactly the key's or value's size.
    Hex {
        /// Hex digits, two per byte.
        hex: String,
    },
    /// The socket of a worker's listener, as the value of a socket map (the
    /// fd user space passes).
    Worker {
        /// Worker name.
        worker: String,
    },
    /// The socket cookie of a worker's listener (8 bytes).
    Cookie {
        /// Worker name.
        cookie: String,
    },
}

fn default_attach_opt() -> Option<Dur> {
    Some(default_attach_at())
}

/// The flags of a map update.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MapUpdateFlags {
    /// `BPF_ANY`: create or replace.
    #[default]
    Any,
    /// `BPF_NOEXIST`: create only.
    Noexist,
    /// `BPF_EXIST`: replace only.
    Exist,
}

/// A timeline entry: an action or a macro at a time.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// `listen()` (also re-listen after shutdown, §5.9).
    Listen {
        /// When.
        at: Dur,
        /// Worker.
        worker: String,
    },
    /// `shutdown(SHUT_RDWR)` of the worker's listener.
    Shutdown {
        /// When.
        at: Dur,
        /// Worker.
        worker: String,
    },
    /// The last `close()` of the worker's listener; accepted connections go on.
    Close {
        /// When.
        at: Dur,
        /// Worker.
        worker: String,
    },
    /// The worker stops calling accept(); its listener stays in the group.
    StopAccepting {
        /// When.
        at: Dur,
        /// Worker.
        worker: String,
    },
    /// The worker calls accept() again.
    ResumeAccepting {
        /// When.
        at: Dur,
        /// Worker.
        worker: String,
    },
    /// `listen(fd, backlog)` again on the listening socket the worker holds
    /// (its own, or one it inherited): only the backlog changes, nothing
    /// queued is evicted (§5.1; nginx re-listens inherited sockets with the
    /// configured backlog on reload).
    Relisten {
        /// When.
        at: Dur,
        /// Worker.
        worker: String,
        /// The new `listen()` backlog (capped at `somaxconn`).
        backlog: u32,
    },
    /// The worker's process exits: its listener closes (§5.7) and each
    /// connection it accepted is closed, FIN or RST as Linux does (§5.10).
    Kill {
        /// When.
        at: Dur,
        /// Worker.
        worker: String,
    },
    /// Set a sysctl on a host.
    SetSysctl {
        /// When.
        at: Dur,
        /// Host.
        host: String,
        /// Kernel name.
        name: String,
        /// Value.
        value: u64,
    },
    /// Attach (or replace) a policy on the group of `via`'s listener.
    AttachPolicy {
        /// When.
        at: Dur,
        /// Policy.
        policy: String,
        /// Worker whose socket carries the call (default: the policy's `via`).
        #[serde(default)]
        via: Option<String>,
    },
    /// Detach the policy of `via`'s group (fails through a shut-down socket).
    DetachPolicy {
        /// When.
        at: Dur,
        /// Worker whose socket carries the call.
        via: String,
    },
    /// `bpf(BPF_MAP_UPDATE_ELEM)` on a map of a `bpf` policy.
    MapUpdate {
        /// When.
        at: Dur,
        /// The `bpf` policy.
        policy: String,
        /// Map name.
        map: String,
        /// Key.
        key: MapBytesSpec,
        /// Value.
        value: MapBytesSpec,
        /// `any` (default), `noexist` or `exist` (`BPF_ANY`...).
        #[serde(default)]
        flags: MapUpdateFlags,
    },
    /// `bpf(BPF_MAP_DELETE_ELEM)` on a map of a `bpf` policy.
    MapDelete {
        /// When.
        at: Dur,
        /// The `bpf` policy.
        policy: String,
        /// Map name.
        map: String,
        /// Key.
        key: MapBytesSpec,
    },
    /// fd passing: `to` inherits `from`'s listener; `from` stops accepting.
    Handover {
        /// When.
        at: Dur,
        /// Old worker.
        from: String,
        /// New worker.
        to: String,
    },
    /// Macro. New-first reload: `new` listen at `at`, `old` stop accepting at
    /// `at` and close at `at + drain`, then serve what they accepted.
    ReloadNewFirst {
        /// When.
        at: Dur,
        /// Old workers.
        old: Vec<String>,
        /// New workers.
        new: Vec<String>,
        /// Time between stop-accepting and close.
        drain: Dur,
    },
    /// Macro. Old-first restart (§6.3): `old` close at `at`, `new` listen at `at + gap`.
    RestartOldFirst {
        /// When.
        at: Dur,
        /// Old workers.
        old: Vec<String>,
        /// New workers.
        new: Vec<String>,
        /// Gap with no listener.
        gap: Dur,
    },
    /// Macro. Worker-count reduction: `remove` stop accepting at `at`, close at `at + drain`.
    WorkerReduction {
        /// When.
        at: Dur,
        /// Workers removed.
        remove: Vec<String>,
        /// Time between stop-accepting and close.
        drain: Dur,
    },
    /// Macro. Rolling restart: for each i, at `at + i*interval`, `new[i]`
    /// listens and `old[i]` stops accepting, and closes `drain` later.
    RollingRestart {
        /// When the first pair starts.
        at: Dur,
        /// Old workers.
        old: Vec<String>,
        /// New workers (same count).
        new: Vec<String>,
        /// Time between two pairs.
        interval: Dur,
        /// Time between stop-accepting and close.
        drain: Dur,
    },
    /// Macro. Immediate stop (certificate rotation): at `at`, `new` listen
    /// and then `old` close at the same instant.
    ImmediateStop {
        /// When.
        at: Dur,
        /// Old workers.
        old: Vec<String>,
        /// New workers.
        new: Vec<String>,
    },
    /// Macro. fd passing (nginx reload): `new[i]` inherits `old[i]`'s
    /// listener at `at`; nothing closes.
    FdPassing {
        /// When.
        at: Dur,
        /// Old workers.
        old: Vec<String>,
        /// New workers (same count).
        new: Vec<String>,
    },
}

/// A scenario error: where (file, line and column, or JSON path) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file, if read from one.
    pub file: Option<String>,
    /// 1-based line and column, when known.
    pub line_col: Option<(usize, usize)>,
    /// JSON path of the offending field (e.g. `workers[2].server`).
    pub path: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}")?;
            if let Some((l, c)) = self.line_col {
                write!(f, ":{l}:{c}")?;
            }
            write!(f, ": ")?;
        } else if let Some((l, c)) = self.line_col {
            write!(f, "line {l}, column {c}: ")?;
        }
        if !self.path.is_empty() && self.path != "." {
            write!(f, "at `{}`: ", self.path)?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

impl ScenarioError {
    /// A validation error at `path`.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ScenarioError {
            file: None,
            line_col: None,
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error, naming `file`.
    pub fn in_file(mut self, file: &str) -> Self {
        self.file = Some(file.to_string());
        self
    }
}

/// Parses scenario JSON strictly. Errors carry line, column and JSON path.
pub fn parse_str(text: &str) -> Result<Scenario, ScenarioError> {
    // serde reads a struct from a JSON array too (its fields in order):
    // the format, and its JSON Schema, take an object only.
    if let Some(at) = text.find(|c: char| !c.is_whitespace()) {
        if text[at..].starts_with('[') {
            let line = text[..at].matches('\n').count() + 1;
            let col = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
            return Err(ScenarioError {
                file: None,
                line_col: Some((line, col)),
                path: ".".into(),
                message: "a scenario is a JSON object ({ \"version\": 1, ... }), not an array"
                    .into(),
            });
        }
    }
    // The version first: a file of another format version most likely has
    // fields this build does not know, and the version is what to report.
    #[derive(Deserialize)]
    struct VersionOnly {
        version: Option<serde_json::Value>,
    }
    if let Ok(VersionOnly { version: Some(v) }) = serde_json::from_str::<VersionOnly>(text) {
        if v.is_u64() && v.as_u64() != Some(u64::from(FORMAT_VERSION)) {
            return Err(ScenarioError::at(
                "version",
                format!("unsupported format version {v}, expected {FORMAT_VERSION}"),
            ));
        }
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    let scn: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ScenarioError {
            file: None,
            line_col: (inner.line() > 0).then(|| (inner.line(), inner.column())),
            path,
            message: strip_position(&inner.to_string()),
        }
    })?;
    if scn.version != FORMAT_VERSION {
        return Err(ScenarioError::at(
            "version",
            format!(
                "unsupported format version {}, expected {FORMAT_VERSION}",
                scn.version
            ),
        ));
    }
    Ok(scn)
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Largest scenario file read (the bundled ones are a few KiB): a device
/// such as `/dev/zero` given as the file is refused instead of read until
/// memory runs out.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads and parses a scenario file; errors name the file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let name = path.display().to_string();
    let text = crate::output::read_limited(path, MAX_FILE_BYTES)
        .map_err(|e| ScenarioError::at("", format!("cannot read file: {e}")).in_file(&name))?;
    let mut scn = parse_str(&text).map_err(|e| e.in_file(&name))?;
    scn.base_dir = Some(path.parent().map(Path::to_path_buf).unwrap_or_default());
    Ok(scn)
}

/// The JSON Schema of the scenario format, for editors (see `schema.rs`).
pub fn json_schema() -> String {
    super::schema::json_schema()
}
