//! The run report: a stable JSON shape (documented in `docs/report-format.md`)
//! and an aligned text rendering.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The tool that produced a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// `reuseport-sim`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

/// The scenario that was run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// Scenario name.
    pub name: String,
    /// xxh3-64 of the scenario's canonical JSON, hex.
    pub hash: String,
    /// Simulated duration.
    pub duration: String,
}

/// Connection outcomes (client side, §2.6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connections {
    /// connect() calls.
    pub attempted: u64,
    /// Response received.
    pub completed: u64,
    /// ECONNREFUSED (RST in SYN-SENT).
    pub refused: u64,
    /// ECONNRESET (RST after establishment).
    pub reset: u64,
    /// ETIMEDOUT.
    pub timed_out: u64,
    /// The client gave up at its deadline (connect or request timeout) and
    /// closed the socket.
    #[serde(default)]
    pub abandoned: u64,
    /// The server closed the connection (FIN) without a response: the
    /// client read EOF (its worker exited after reading the request, §5.10).
    #[serde(default)]
    pub eof: u64,
    /// connect() failed at once: no local port was free for the
    /// destination (`EADDRNOTAVAIL`; e.g. every port held in the client's
    /// own TIME_WAIT, §5.12).
    #[serde(default)]
    pub no_port: u64,
    /// Still open at the end of the run.
    pub in_flight: u64,
}

impl Connections {
    /// Every outcome, in flight included: equals `attempted` when each
    /// connect() ended in exactly one outcome.
    pub fn outcomes(&self) -> u64 {
        self.completed
            + self.refused
            + self.reset
            + self.timed_out
            + self.abandoned
            + self.eof
            + self.no_port
            + self.in_flight
    }
}

/// RSTs of one cause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RstCount {
    /// Cause name.
    pub cause: String,
    /// §7 row ("-" if outside §7).
    pub spec_id: String,
    /// Spec rule.
    pub rule: String,
    /// RSTs the server host sent for this cause.
    pub rsts_sent: u64,
    /// Client connections that ended in ECONNRESET because of such an RST.
    pub connections_reset: u64,
    /// Client connections that ended in ECONNREFUSED because of such an RST.
    pub connections_refused: u64,
}

/// Silent drops of one cause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCount {
    /// Cause name.
    pub cause: String,
    /// Spec rule.
    pub rule: String,
    /// Count.
    pub count: u64,
}

/// Migrations, counted as the kernel counts them (hops).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migrations {
    /// Accept-queue children moved at close (`inet_csk_listen_stop`).
    pub accept_queue: u64,
    /// Requests moved by the SYN-ACK timer (`reqsk_timer_handler`).
    pub synack_timer: u64,
    /// Requests moved at the final ACK (`inet_csk_complete_hashdance`).
    pub final_ack: u64,
    /// `TCPMigrateReqFailure`.
    pub failed: u64,
    /// Distinct connections that migrated at least once.
    pub connections_migrated: u64,
    /// Failures by "path/reason".
    pub failures: BTreeMap<String, u64>,
}

/// Decision counts of a policy, per call site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// Policy name.
    pub name: String,
    /// Host.
    pub host: String,
    /// call site → {picks, passes, drops}.
    pub decisions: BTreeMap<String, BTreeMap<String, u64>>,
    /// For a `bpf` policy: its program's counters and maps at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf: Option<crate::reuseport::bpf::BpfReport>,
}

/// One listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerReport {
    /// Worker that created it.
    pub worker: String,
    /// Server name.
    pub server: String,
    /// Listener id within its host.
    pub listener: u32,
    /// accept() returns.
    pub accepted: u64,
    /// Peak SYN-queue length.
    pub peak_syn_queue: u32,
    /// Peak accept-queue length.
    pub peak_accept_queue: u32,
    /// State at the end.
    pub state: String,
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// Latencies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// connect() to ESTABLISHED at the client.
    pub handshake_ms: Percentiles,
    /// connect() to the response.
    pub completion_ms: Percentiles,
}

/// TIME_WAIT sockets of one side of a host (`ss -tan state time-wait`
/// counted over the run).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWaitReport {
    /// The host.
    pub host: String,
    /// `"server"` (connections its server closed first) or `"clients"`
    /// (connections its clients closed first).
    pub side: String,
    /// The most sockets in TIME_WAIT at once.
    pub peak: u64,
    /// Sockets still in TIME_WAIT when the run ended.
    pub at_end: u64,
    /// TIME_WAIT 4-tuples a new connection took over: a SYN newer than the
    /// old connection on the server side (§5.12, it skips §5.2 steps 1
    /// and 3), `tcp_tw_reuse` on the clients' side.
    pub taken_over: u64,
}

/// Packet totals of the network.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSummary {
    /// Packets sent by all hosts.
    pub sent: u64,
    /// Packets lost to random loss.
    pub lost: u64,
    /// Packets dropped by a down link.
    pub link_down: u64,
    /// Packets dropped by packet filters.
    pub filtered: u64,
}

/// The report of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Tool and version.
    pub tool: ToolInfo,
    /// What ran the scenario: `"sim"` (the simulator, deterministic) or
    /// `"kernel"` (the host's Linux kernel in real time, not deterministic).
    #[serde(default = "sim_backend")]
    pub backend: String,
    /// Scenario name and hash.
    pub scenario: ScenarioInfo,
    /// The seed.
    pub seed: u64,
    /// Values drawn for this seed from the scenario's `vary` block (JSON pointer → value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub varied: BTreeMap<String, serde_json::Value>,
    /// `tcp_migrate_req` override: "scenario", "on" or "off".
    pub migrate: String,
    /// Outcomes.
    pub connections: Connections,
    /// RSTs by cause (§7).
    pub resets_by_cause: Vec<RstCount>,
    /// Silent drops by cause.
    pub drops_by_cause: Vec<DropCount>,
    /// Migrations.
    pub migrations: Migrations,
    /// Policy decisions.
    pub policies: Vec<PolicyReport>,
    /// §8 counters under `nstat` names, summed over the server stacks (the
    /// server's sockets only).
    pub counters: BTreeMap<String, u64>,
    /// `nstat` of each host's network namespace (host name → counter →
    /// value; non-zero counters only): its server stack's sockets and its
    /// client sockets together, as `nstat` run inside that namespace shows.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters_by_host: BTreeMap<String, BTreeMap<String, u64>>,
    /// RSTs sent by client hosts, by cause (`sim_tcp::ClientRstCause`
    /// names); counted in their host's `TcpOutRsts`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub client_rsts_by_cause: BTreeMap<String, u64>,
    /// TIME_WAIT sockets per host and side (only where some existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_wait: Vec<TimeWaitReport>,
    /// Per listener.
    pub listeners: Vec<ListenerReport>,
    /// Latencies.
    pub latency: Latency,
    /// Network totals.
    pub network: NetworkSummary,
    /// Events processed.
    pub events: u64,
    /// Run digest (hash over every processed event).
    pub digest: String,
    /// Kernel runs only: what the real kernel reported beyond the common shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelDetails>,
}

impl KernelDetails {
    /// The text report's kernel section.
    fn text(&self, s: &mut String) {
        let l = &self.lateness_us;
        let _ = writeln!(
            s,
            "kernel   eof_before_response {}  other_error {}  emulator lateness p50 {} us  p99 {} us  max {} us",
            self.eof_before_response, self.other_error, l.p50, l.p99, l.max
        );
        for (server, peak) in &self.peak_syn_recv {
            let _ = writeln!(s, "  peak SYN_RECV  {server:<20} {peak:>8}");
        }
        for e in &self.action_errors {
            let _ = writeln!(s, "  action failed: {e}");
        }
        for w in &self.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
    }
}

fn sim_backend() -> String {
    "sim".into()
}

/// The link emulator's lateness (write time − due time) in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatenessUs {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

/// What a kernel run measured that the simulator's report has no field
/// for, and what its report cannot say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelDetails {
    /// `uname -r` of the kernel that ran it.
    pub kernel_release: String,
    /// What differs from a simulator report (e.g. RST causes are
    /// simulator-only).
    pub notes: Vec<String>,
    /// Client connections that saw EOF before any response byte.
    pub eof_before_response: u64,
    /// Client connections that failed with another errno.
    pub other_error: u64,
    /// Peak request sockets (`SYN_RECV` in `INET_DIAG`) per server: the
    /// kernel does not say which listener a request belongs to.
    pub peak_syn_recv: BTreeMap<String, u32>,
    /// Link emulator lateness.
    pub lateness_us: LatenessUs,
    /// Timeline actions that failed (label: error).
    pub action_errors: Vec<String>,
    /// What did not go as planned without stopping the run.
    pub warnings: Vec<String>,
}

/// `compare`: the same seed with migration off and on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Migration off.
    pub off: Report,
    /// Migration on.
    pub on: Report,
    /// on − off for the outcome counts.
    pub delta: BTreeMap<String, i64>,
}

impl Comparison {
    /// Builds the comparison of two reports of the same scenario and seed.
    pub fn new(off: Report, on: Report) -> Self {
        let mut delta = BTreeMap::new();
        for ((name, a), (_, b)) in outcome_rows(&off).into_iter().zip(outcome_rows(&on)) {
            delta.insert(name.to_string(), b as i64 - a as i64);
        }
        Comparison { off, on, delta }
    }
}

fn outcome_rows(r: &Report) -> Vec<(&'static str, u64)> {
    let c = &r.connections;
    let m = &r.migrations;
    vec![
        ("attempted", c.attempted),
        ("completed", c.completed),
        ("refused", c.refused),
        ("reset", c.reset),
        ("timed_out", c.timed_out),
        ("abandoned", c.abandoned),
        ("eof", c.eof),
        ("no_port", c.no_port),
        ("in_flight", c.in_flight),
        (
            "rsts_sent",
            r.counters.get("TcpOutRsts").copied().unwrap_or(0),
        ),
        ("migrated_accept_queue", m.accept_queue),
        ("migrated_synack_timer", m.synack_timer),
        ("migrated_final_ack", m.final_ack),
        ("migration_failures", m.failed),
        ("connections_migrated", m.connections_migrated),
    ]
}

impl Report {
    /// The text report's TIME_WAIT lines, one per host side.
    fn time_wait_text(&self, s: &mut String) {
        for t in &self.time_wait {
            let _ = writeln!(
                s,
                "time_wait {} ({})  peak {}  at end {}  taken over {}",
                t.host, t.side, t.peak, t.at_end, t.taken_over
            );
        }
    }
}

impl Report {
    /// The RST row of `cause` (a [`sim_tcp::RstCause`] name), if any.
    fn rst_row(&self, cause: &str) -> Option<&RstCount> {
        self.resets_by_cause.iter().find(|c| c.cause == cause)
    }

    /// RSTs the server sent for `cause` (a [`sim_tcp::RstCause`] name).
    pub fn rsts_sent(&self, cause: &str) -> u64 {
        self.rst_row(cause).map_or(0, |c| c.rsts_sent)
    }

    /// Client connections reset (ECONNRESET) by an RST of `cause`.
    pub fn connections_reset_by(&self, cause: &str) -> u64 {
        self.rst_row(cause).map_or(0, |c| c.connections_reset)
    }

    /// Silent drops of `cause` (a [`sim_tcp::DropCause`] name).
    pub fn drops(&self, cause: &str) -> u64 {
        self.drops_by_cause
            .iter()
            .find(|d| d.cause == cause)
            .map_or(0, |d| d.count)
    }

    /// A §8 counter by its `nstat` name (0 if absent).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// Migration hops over the three paths (= `TcpExtTCPMigrateReqSuccess`).
    pub fn migration_hops(&self) -> u64 {
        let m = &self.migrations;
        m.accept_queue + m.synack_timer + m.final_ack
    }

    /// The report as pretty JSON (stable key order).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes") + "\n"
    }

    /// An aligned text table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scenario  {}  (hash {})",
            self.scenario.name, self.scenario.hash
        );
        let _ = writeln!(
            s,
            "seed      {}   migrate {}   duration {}   events {}   digest {}",
            self.seed, self.migrate, self.scenario.duration, self.events, self.digest
        );
        if let Some(k) = &self.kernel {
            let _ = writeln!(s, "backend   kernel (Linux {})", k.kernel_release);
            for n in &k.notes {
                let _ = writeln!(s, "note      {n}");
            }
        }
        for (path, v) in &self.varied {
            let _ = writeln!(s, "varied    {path} = {v}");
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "connections");
        for (name, v) in outcome_rows(self).into_iter().take(7) {
            let _ = writeln!(s, "  {name:<22} {v:>10}");
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "resets by cause            §7   rule                          sent   reset refused"
        );
        for r in &self.resets_by_cause {
            let _ = writeln!(
                s,
                "  {:<24} {:<4} {:<28} {:>6} {:>7} {:>7}",
                r.cause, r.spec_id, r.rule, r.rsts_sent, r.connections_reset, r.connections_refused
            );
        }
        if self.resets_by_cause.is_empty() {
            let _ = writeln!(s, "  (none)");
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "silent drops               rule                                count"
        );
        for d in &self.drops_by_cause {
            let _ = writeln!(s, "  {:<26} {:<32} {:>7}", d.cause, d.rule, d.count);
        }
        if self.drops_by_cause.is_empty() {
            let _ = writeln!(s, "  (none)");
        }
        let m = &self.migrations;
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "migrations (hops)  accept_queue {}  synack_timer {}  final_ack {}  failed {}  connections_migrated {}",
            m.accept_queue, m.synack_timer, m.final_ack, m.failed, m.connections_migrated
        );
        for (k, v) in &m.failures {
            let _ = writeln!(s, "  failure {k:<40} {v:>7}");
        }
        for p in &self.policies {
            let _ = writeln!(s, "policy {} ({})", p.name, p.host);
            for (ctx, d) in &p.decisions {
                let _ = writeln!(
                    s,
                    "  {:<20} picks {:>6}  passes {:>6}  drops {:>6}",
                    ctx,
                    d.get("picks").unwrap_or(&0),
                    d.get("passes").unwrap_or(&0),
                    d.get("drops").unwrap_or(&0)
                );
            }
            if let Some(b) = &p.bpf {
                let _ = writeln!(
                    s,
                    "  program {} ({})  calls {}  insns {} (max {} per call)  div_by_zero {}",
                    b.program, b.object, b.calls, b.insns, b.insns_max, b.div_by_zero
                );
                for e in &b.map_errors {
                    let _ = writeln!(s, "  map error {e}");
                }
                for line in b.maps_text.lines() {
                    let _ = writeln!(s, "  {line}");
                }
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "listeners  worker               server       accepted  peak_synq  peak_acceptq  state"
        );
        for l in &self.listeners {
            let _ = writeln!(
                s,
                "  #{:<6} {:<20} {:<12} {:>8} {:>10} {:>13}  {}",
                l.listener,
                l.worker,
                l.server,
                l.accepted,
                l.peak_syn_queue,
                l.peak_accept_queue,
                l.state
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "latency (ms)        count      p50      p90      p99      max"
        );
        for (name, p) in [
            ("handshake", &self.latency.handshake_ms),
            ("completion", &self.latency.completion_ms),
        ] {
            let _ = writeln!(
                s,
                "  {:<14} {:>9} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                name, p.count, p.p50, p.p90, p.p99, p.max
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "counters (nstat)");
        for (k, v) in &self.counters {
            if *v != 0 {
                let _ = writeln!(s, "  {k:<30} {v:>10}");
            }
        }
        if !self.counters_by_host.is_empty() {
            self.host_counters_text(&mut s);
        }
        if !self.client_rsts_by_cause.is_empty() {
            let _ = writeln!(s, "client host RSTs by cause");
            for (k, v) in &self.client_rsts_by_cause {
                let _ = writeln!(s, "  {k:<30} {v:>10}");
            }
        }
        self.time_wait_text(&mut s);
        let n = &self.network;
        let _ = writeln!(
            s,
            "network  sent {}  lost {}  link_down {}  filtered {}",
            n.sent, n.lost, n.link_down, n.filtered
        );
        if let Some(k) = &self.kernel {
            k.text(&mut s);
        }
        s
    }
}

impl Report {
    /// The per-host nstat table: one column per host.
    fn host_counters_text(&self, s: &mut String) {
        let hosts: Vec<&String> = self.counters_by_host.keys().collect();
        let mut names: Vec<&String> = self
            .counters_by_host
            .values()
            .flat_map(|c| c.keys())
            .collect();
        names.sort();
        names.dedup();
        let _ = writeln!(s);
        let _ = write!(s, "counters by host (nstat per namespace)");
        for h in &hosts {
            let _ = write!(s, " {h:>12}");
        }
        let _ = writeln!(s);
        for n in names {
            let _ = write!(s, "  {n:<36}");
            for h in &hosts {
                let v = self.counters_by_host[*h].get(n).copied().unwrap_or(0);
                let _ = write!(s, " {v:>12}");
            }
            let _ = writeln!(s);
        }
    }
}

impl Comparison {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("comparison serializes") + "\n"
    }

    /// Side-by-side text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scenario  {}  seed {}  (same arrivals, migration off vs on)",
            self.on.scenario.name, self.on.seed
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "  {:<24} {:>10} {:>10} {:>10}", "", "off", "on", "delta");
        for ((name, a), (_, b)) in outcome_rows(&self.off)
            .into_iter()
            .zip(outcome_rows(&self.on))
        {
            let _ = writeln!(
                s,
                "  {:<24} {:>10} {:>10} {:>+10}",
                name,
                a,
                b,
                b as i64 - a as i64
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "resets by cause (off / on)");
        let mut causes: Vec<&str> = self
            .off
            .resets_by_cause
            .iter()
            .map(|r| r.cause.as_str())
            .collect();
        for r in &self.on.resets_by_cause {
            if !causes.contains(&r.cause.as_str()) {
                causes.push(&r.cause);
            }
        }
        let get = |rep: &Report, c: &str| {
            rep.resets_by_cause
                .iter()
                .find(|r| r.cause == c)
                .map_or(0, |r| r.rsts_sent)
        };
        for c in causes {
            let _ = writeln!(
                s,
                "  {:<30} {:>8} {:>8}",
                c,
                get(&self.off, c),
                get(&self.on, c)
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "digest  off {}  on {}", self.off.digest, self.on.digest);
        s
    }
}
