//! Backends: each runs a [`Plan`] and returns a [`RunResult`] whose
//! [`Report`] has the same shape whatever ran it.
//! The command line, snapshots, sweeps and invariants consume the result
//! and never ask which backend produced it.
//!
//! Two backends: the simulator ([`Simulator`], in [`sim`]) and the host's
//! real Linux kernel ([`KernelBackend`], in [`kernel`]). A report's
//! `backend` field says which one ran.

pub mod kernel;
pub mod sim;

pub use kernel::KernelBackend;
pub use sim::{Simulator, MAX_EVENTS};

use crate::report::Report;
use crate::scenario::{lower, Plan, Scenario, ScenarioError};
use serde::Serialize;
pub use sim_core::pcap::Fate;
use sim_core::{Packet, SimDuration, SimTime};
use sim_tcp::MigrationPath;
use std::io::Write;

/// Runs a [`Plan`].
pub trait Backend {
    /// A short name (`"sim"`), for messages.
    fn name(&self) -> &'static str;

    /// Runs `plan` with `opts` to the plan's duration and reports. The plan
    /// was checked by lowering: a backend fails only for reasons of its own
    /// (an output that cannot be written, a bound on the run's size).
    fn run(&self, plan: &Plan, opts: RunOptions<'_>) -> Result<RunResult, RunError>;
}

/// Receives every packet the moment it is sent (for pcap capture), with
/// what the network made of it.
pub trait PacketTap {
    /// `pkt` leaves its host at `t`; `fate` says whether the network will
    /// deliver it or lost it (and why).
    fn packet(&mut self, t: SimTime, pkt: &Packet, fate: Fate<'_>);
}

impl<W: Write> PacketTap for sim_core::PcapWriter<W> {
    fn packet(&mut self, t: SimTime, pkt: &Packet, fate: Fate<'_>) {
        // A write error surfaces when the writer is finished (`into_inner`).
        let _ = self.write_packet(t, pkt, fate);
    }
}

/// How to run a plan.
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
    /// Told the simulated time reached, every few thousand events (a
    /// progress bar). Observes only: the run is the same without it.
    pub progress: Option<&'a mut dyn FnMut(SimDuration)>,
}

/// A time series sample for plots.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Time in seconds.
    pub t_s: f64,
    /// Cumulative completed, reset, refused, timed out.
    pub outcomes: [u64; 4],
    /// Cumulative migrations (every path), when the backend counts them
    /// over time (the simulator; not the kernel backend).
    pub migrations: Option<u64>,
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
    /// Worker generations in listener order (to group the plot's queues).
    pub worker_generations: Vec<u32>,
    /// Timeline actions as (time in s, label), for plot markers.
    pub markers: Vec<(f64, String)>,
}

/// Why a run failed.
#[derive(Debug)]
pub enum RunError {
    /// The scenario is invalid (raised by lowering, in [`run`]).
    Scenario(ScenarioError),
    /// Writing the trace or capture failed.
    Io(std::io::Error),
    /// The run hit a bound on its size ([`MAX_EVENTS`]).
    Limit(String),
    /// The plan uses a feature this backend cannot carry out (named).
    Unsupported(String),
    /// The kernel backend failed (environment, setup, interruption).
    Kernel(sim_kernel::KernelError),
    /// A `bpf` policy's program faulted (an out-of-bounds access, the
    /// instruction budget): the kernel's verifier would have refused such a
    /// program, so no result is given. Names the time, policy, program,
    /// instruction and reason.
    Program(String),
}

impl RunError {
    /// The exit status a command line should use: 2 for input the backend
    /// cannot run and for an environment that cannot run it, 128 + the
    /// signal when interrupted, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Scenario(_) | RunError::Unsupported(_) => 2,
            RunError::Io(_) | RunError::Limit(_) => 1,
            RunError::Program(_) => 2,
            RunError::Kernel(e) => e.exit_code(),
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Scenario(e) => write!(f, "{e}"),
            RunError::Io(e) => write!(f, "output error: {e}"),
            RunError::Limit(m) => write!(f, "{m}"),
            RunError::Unsupported(m) => write!(f, "the kernel backend cannot run this: {m}"),
            RunError::Kernel(e) => write!(f, "kernel backend: {e}"),
            RunError::Program(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Lowers `scn` and runs it on the simulator.
pub fn run(scn: &Scenario, opts: RunOptions<'_>) -> Result<RunResult, RunError> {
    let plan = lower(scn).map_err(|e| RunError::Scenario(e.into()))?;
    Simulator.run(&plan, opts)
}
