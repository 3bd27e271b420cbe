//! The output of a kernel run: plain data, serializable, no interpretation
//! beyond what the kernel and the sockets reported.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;
use sim_core::{SimDuration, SimTime};

use crate::counters::Counters;

/// How a client connection ended, classified from what its socket reported.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The response arrived, then EOF.
    Completed,
    /// `connect()` failed with `ECONNREFUSED` (RST in SYN-SENT).
    Refused,
    /// `ECONNRESET` (or `EPIPE`) after the connection was established.
    Reset,
    /// `ETIMEDOUT` (SYN or data retransmissions exhausted).
    TimedOut,
    /// EOF before any response byte (the server closed without answering).
    EofBeforeResponse,
    /// Still open when the run ended.
    InFlight,
    /// Any other error (errno), e.g. `EADDRNOTAVAIL` when out of ports.
    OtherError(i32),
}

/// One client connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnRecord {
    /// Index into [`KernelSpec::clients`](crate::KernelSpec::clients).
    pub population: usize,
    /// Planned start (scenario time).
    pub planned: SimTime,
    /// Actual `connect()` call (scenario time).
    pub started: SimTime,
    /// The client's address and port (if `connect()` got that far).
    pub local: Option<SocketAddr>,
    /// The outcome.
    pub outcome: Outcome,
    /// `connect()` to writable (established), if it got there.
    pub handshake: Option<SimDuration>,
    /// `connect()` to EOF after the response, if completed.
    pub completion: Option<SimDuration>,
    /// Response bytes received.
    pub response_bytes: u64,
    /// When it ended (scenario time; the deadline for in-flight ones).
    pub ended: SimTime,
}

/// Counts of outcomes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    /// Connections attempted.
    pub attempted: u64,
    /// [`Outcome::Completed`].
    pub completed: u64,
    /// [`Outcome::Refused`].
    pub refused: u64,
    /// [`Outcome::Reset`].
    pub reset: u64,
    /// [`Outcome::TimedOut`].
    pub timed_out: u64,
    /// [`Outcome::EofBeforeResponse`].
    pub eof_before_response: u64,
    /// [`Outcome::InFlight`].
    pub in_flight: u64,
    /// [`Outcome::OtherError`] with `EADDRNOTAVAIL`: no free local port.
    pub no_port: u64,
    /// Any other [`Outcome::OtherError`].
    pub other_error: u64,
}

/// Counters of one namespace, read before the run's start and after its
/// end (before any socket is closed by the teardown).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NamespaceCounters {
    /// Host name.
    pub host: String,
    /// Before.
    pub before: Counters,
    /// After.
    pub after: Counters,
}

impl NamespaceCounters {
    /// `after - before` of one counter (0 if absent).
    pub fn delta(&self, name: &str) -> i64 {
        self.after.get(name).copied().unwrap_or(0) - self.before.get(name).copied().unwrap_or(0)
    }

    /// Every counter that changed.
    pub fn deltas(&self) -> Counters {
        crate::counters::delta(&self.before, &self.after)
    }
}

/// One worker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WorkerStats {
    /// Name.
    pub name: String,
    /// `accept()` returns.
    pub accepted: u64,
    /// Responses fully written.
    pub responses: u64,
    /// Connections it closed when killed.
    pub closed_at_kill: u64,
    /// Peak accept queue of its own listener (`idiag_rqueue`, sampled).
    pub peak_accept_queue: u32,
    /// Final state of its own listener: `listen`, `bound`, `shutdown`,
    /// `closed`.
    pub final_state: String,
}

/// One `INET_DIAG` sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueSample {
    /// Scenario time of the sample.
    pub t: SimTime,
    /// Accept-queue length of each worker's own listener (`idiag_rqueue`),
    /// by worker index; `None` when it is not listening.
    pub accept_queue: Vec<Option<u32>>,
    /// Request sockets (`TCP_NEW_SYN_RECV`, reported as `SYN_RECV`) per
    /// server, by server index. `INET_DIAG` does not say which listener a
    /// request belongs to (`inet_req_diag_fill` fills no listener field, and
    /// inode 0), so the SYN queue is per server address and port, summed
    /// over its listeners.
    pub syn_recv: Vec<u32>,
}

/// Latency of the link emulator: how late packets were written to their
/// destination TUN compared with their due time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatenessStats {
    /// Packets delivered.
    pub count: u64,
    /// Median lateness.
    pub p50: SimDuration,
    /// 99th percentile.
    pub p99: SimDuration,
    /// Maximum.
    pub max: SimDuration,
    /// Mean.
    pub mean: SimDuration,
}

/// The link emulator's packet counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ForwarderStats {
    /// Packets read from TUN devices.
    pub read: u64,
    /// TCP packets handed to the link model.
    pub tcp: u64,
    /// Non-TCP packets (IPv6 neighbour discovery, MLD, ...) dropped.
    pub non_tcp_dropped: u64,
    /// Dropped by random loss.
    pub lost: u64,
    /// Dropped by a down link.
    pub link_down: u64,
    /// Dropped by a packet filter.
    pub filtered: u64,
    /// Dropped for lack of a route (unknown address).
    pub no_route: u64,
    /// Written to a destination TUN.
    pub delivered: u64,
    /// Writes that failed.
    pub write_errors: u64,
    /// Per link and per filter, as `sim_core` counts them.
    pub network: sim_core::topology::NetworkStats,
    /// Added-latency error.
    pub lateness: LatenessStats,
}

/// Drops of a loopback filter (XDP on `lo`) in one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoFilterStats {
    /// Host name.
    pub host: String,
    /// Index of the filter among the spec's filter faults.
    pub filter: usize,
    /// Packets dropped.
    pub dropped: u64,
}

/// A policy's global data (`.bss`, `.data`) or array map at the end of
/// the run, where BPF programs keep their own counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyData {
    /// Policy name.
    pub policy: String,
    /// Section name (`.bss`, `.data`), or the name of an array map.
    pub section: String,
    /// Contents (an array map's values concatenated in key order).
    pub bytes: Vec<u8>,
}

impl PolicyData {
    /// The native-endian `u32` at byte offset `off` (e.g. an `int` counter).
    pub fn u32_at(&self, off: usize) -> Option<u32> {
        self.bytes
            .get(off..off + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
    }
}

/// An executed action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionRecord {
    /// Planned time.
    pub planned: SimTime,
    /// When it ran.
    pub executed: SimTime,
    /// What it was.
    pub label: String,
    /// `None` if it succeeded, else the error (e.g. `EBADF` after close).
    pub error: Option<String>,
}

/// Everything a kernel run measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelRunResult {
    /// `uname -r`.
    pub kernel_release: String,
    /// Every client connection, in start order.
    pub connections: Vec<ConnRecord>,
    /// Counters of every namespace, by host index.
    pub namespaces: Vec<NamespaceCounters>,
    /// Per worker, by index.
    pub workers: Vec<WorkerStats>,
    /// Queue samples.
    pub samples: Vec<QueueSample>,
    /// Peak SYN-queue (request socket) count per server.
    pub peak_syn_recv: Vec<u32>,
    /// Link emulator statistics.
    pub forwarder: ForwarderStats,
    /// Loopback filter drops.
    pub lo_filters: Vec<LoFilterStats>,
    /// Global data of each policy at the end.
    pub policy_data: Vec<PolicyData>,
    /// Timeline, as executed.
    pub actions: Vec<ActionRecord>,
    /// Packets written to the pcap file.
    pub pcap_packets: u64,
    /// Things that did not go as planned but did not stop the run.
    pub warnings: Vec<String>,
}

impl KernelRunResult {
    /// Outcome counts.
    pub fn outcome_counts(&self) -> OutcomeCounts {
        let mut c = OutcomeCounts {
            attempted: self.connections.len() as u64,
            ..Default::default()
        };
        for r in &self.connections {
            match r.outcome {
                Outcome::Completed => c.completed += 1,
                Outcome::Refused => c.refused += 1,
                Outcome::Reset => c.reset += 1,
                Outcome::TimedOut => c.timed_out += 1,
                Outcome::EofBeforeResponse => c.eof_before_response += 1,
                Outcome::InFlight => c.in_flight += 1,
                Outcome::OtherError(libc::EADDRNOTAVAIL) => c.no_port += 1,
                Outcome::OtherError(_) => c.other_error += 1,
            }
        }
        c
    }

    /// A counter's delta summed over every namespace.
    pub fn counter_delta(&self, name: &str) -> i64 {
        self.namespaces.iter().map(|n| n.delta(name)).sum()
    }

    /// Every changed counter, summed over the namespaces of `hosts` (all
    /// if empty).
    pub fn counter_deltas(&self, hosts: &[usize]) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for (i, n) in self.namespaces.iter().enumerate() {
            if hosts.is_empty() || hosts.contains(&i) {
                for (k, v) in n.deltas() {
                    *out.entry(k).or_insert(0) += v;
                }
            }
        }
        out
    }
}
