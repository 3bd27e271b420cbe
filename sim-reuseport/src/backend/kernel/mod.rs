//! The real Linux kernel as a backend: a [`Plan`] translated into a
//! [`sim_kernel::KernelSpec`] ([`spec`], [`policy`]), run in real time by
//! `sim-kernel` (private network namespaces, a user-space link emulator,
//! real `SO_REUSEPORT` listeners), and its measurements put back into the
//! simulator's [`RunResult`] shape ([`report`]).
//!
//! Not deterministic: the same plan and seed give different results from
//! run to run (real time, the kernel's own hash secret); the report says
//! `"backend": "kernel"`. The kernel does not label its RSTs, so a kernel
//! report has no resets or drops by cause: it gives the kernel's counters
//! and the clients' outcomes.
//!
//! What the kernel backend cannot carry out is refused before anything is
//! created, with a [`RunError::Unsupported`] naming the feature.

pub mod bpf;
pub mod policy;
pub mod report;
pub mod spec;

use super::{Backend, RunError, RunOptions, RunResult};
use crate::scenario::Plan;
use sim_core::SimDuration;
use std::path::PathBuf;

pub use sim_kernel::{check_environment, EnvError, KernelError, StopFlag};

/// Runs plans on the host kernel (root, `/dev/net/tun`, Linux 5.14+).
#[derive(Clone, Debug, Default)]
pub struct KernelBackend {
    /// Write every packet crossing the link emulator (and loopback packets
    /// of hosts with same-host clients) to this pcap file, timestamped in
    /// scenario time.
    pub pcap: Option<PathBuf>,
    /// Raised (e.g. by the interrupt handler) to stop a run in progress; the
    /// run then cleans up and fails with [`KernelError::Interrupted`].
    pub stop: StopFlag,
}

/// Default interval of the `INET_DIAG` queue samples when the caller asks
/// for none (the peaks of the report come from them).
pub const DEFAULT_SAMPLE_INTERVAL: SimDuration = SimDuration::from_millis(10);

impl Backend for KernelBackend {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn run(&self, plan: &Plan, opts: RunOptions<'_>) -> Result<RunResult, RunError> {
        refuse_options(&opts)?;
        let seed = opts.seed.unwrap_or(plan.seed);
        let kspec = spec::kernel_spec(plan, seed, opts.migrate)?;
        let interval = opts.sample_interval;
        let kopts = sim_kernel::RunOptions {
            sample_interval: interval.unwrap_or(DEFAULT_SAMPLE_INTERVAL),
            pcap: self.pcap.clone(),
            stop: self.stop.clone(),
            ..Default::default()
        };
        let result = sim_kernel::run(&kspec, &kopts).map_err(RunError::Kernel)?;
        Ok(report::run_result(
            plan,
            &kspec,
            seed,
            opts.migrate,
            interval.is_some(),
            result,
        ))
    }
}

/// Run options only the simulator can honour.
fn refuse_options(opts: &RunOptions<'_>) -> Result<(), RunError> {
    let unsupported = |what: &str| Err(RunError::Unsupported(what.to_string()));
    if opts.trace.is_some() {
        return unsupported(
            "--trace: the kernel backend has no event trace (use --pcap for its packets)",
        );
    }
    if opts.tap.is_some() {
        return unsupported(
            "a packet tap: the kernel backend writes its own capture (KernelBackend::pcap)",
        );
    }
    if opts.inject_bug.is_some() {
        return unsupported("--inject-bug: the real kernel's migration paths cannot be broken");
    }
    if opts.timer_mode.is_some() {
        return unsupported("--timers: the kernel's timers are its own (its CONFIG_HZ wheel)");
    }
    Ok(())
}
