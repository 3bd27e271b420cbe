//! `reuseport-sim kernel`: a scenario on the host's real kernel, and the
//! pieces `calibrate` shares with it (environment check, interrupt wiring).
//!
//! Safety: refuses (exit 2, with the reason) without root, `/dev/net/tun`,
//! Linux 5.14 or network namespaces, before anything is created. The run
//! happens in private namespaces only. On Ctrl-C or SIGTERM the CLI's
//! interrupt handler ([`crate::interrupt`]) raises the run's stop flag,
//! waits for the run to tear itself down, then removes any namespace of
//! this process still mounted, and exits with 128 + the signal; a run that
//! fails or panics is torn down by `sim-kernel`'s guard; namespaces of a
//! crashed earlier run are removed by prefix at the start of every run.

use crate::backend::{Backend, KernelBackend, RunError, RunOptions, RunResult};
use crate::interrupt;
use crate::output::write_output;
use crate::scenario::{self, lower, Plan, Scenario};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A command's failure: its exit status and message.
#[derive(Debug)]
pub struct CmdError {
    /// Exit status: 2 for input or environment, 1 for a failed run or
    /// verdict.
    pub code: u8,
    /// What went wrong.
    pub message: String,
}

impl CmdError {
    /// Bad input or an environment that cannot run the kernel backend.
    pub fn input(message: impl Into<String>) -> Self {
        CmdError {
            code: 2,
            message: message.into(),
        }
    }

    fn run(file: &Path, e: RunError) -> Self {
        let message = match &e {
            RunError::Scenario(s) => s.clone().in_file(&file.display().to_string()).to_string(),
            _ => format!("{}: {e}", file.display()),
        };
        CmdError {
            code: u8::try_from(e.exit_code()).unwrap_or(1),
            message,
        }
    }
}

/// The arguments of `reuseport-sim kernel`.
#[derive(Clone, Debug)]
pub struct KernelArgs {
    /// Scenario file.
    pub file: PathBuf,
    /// Seed (default: the scenario's).
    pub seed: Option<u64>,
    /// `tcp_migrate_req` override.
    pub migrate: Option<bool>,
    /// JSON instead of text.
    pub json: bool,
    /// Capture file.
    pub pcap: Option<PathBuf>,
}

/// Checks that this host can run the kernel backend; the error says why
/// not (exit 2).
pub fn require_environment() -> Result<sim_kernel::EnvInfo, CmdError> {
    sim_kernel::check_environment().map_err(|e| CmdError::input(format!("refusing to run: {e}")))
}

/// The scenario file with its `vary` block drawn for `seed` (default: the
/// file's), lowered: (scenario, plan, seed, drawn values).
pub fn load_plan(
    file: &Path,
    seed: Option<u64>,
) -> Result<
    (
        Scenario,
        Plan,
        u64,
        std::collections::BTreeMap<String, serde_json::Value>,
    ),
    CmdError,
> {
    let name = file.display().to_string();
    let scn = scenario::load(file).map_err(|e| CmdError::input(e.to_string()))?;
    let seed = seed.unwrap_or(scn.seed);
    let (scn, drawn) = crate::vary::apply(&scn, seed)
        .map_err(|e| CmdError::input(e.in_file(&name).to_string()))?;
    let plan = lower(&scn).map_err(|e| {
        CmdError::input(scenario::ScenarioError::from(e).in_file(&name).to_string())
    })?;
    Ok((scn, plan, seed, drawn))
}

/// Runs `plan` on the kernel with the interrupt handler wired: on a signal
/// the run is stopped and torn down before the process exits.
pub fn run_on_kernel(
    backend: &KernelBackend,
    plan: &Plan,
    opts: RunOptions<'_>,
) -> Result<RunResult, RunError> {
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let guard = {
        let stop = backend.stop.clone();
        let done = Arc::clone(&done);
        interrupt::on_interrupt(move || {
            stop.raise(libc_sigint());
            let (lock, cv) = &*done;
            let g = lock.lock().unwrap_or_else(|e| e.into_inner());
            // The run checks its stop flag every 10 ms; its teardown joins
            // threads and removes devices and namespaces.
            let _ = cv.wait_timeout_while(g, Duration::from_secs(20), |d| !*d);
            let left = sim_kernel::netns::remove_mine();
            if !left.is_empty() {
                eprintln!("removed namespaces: {}", left.join(", "));
            }
        })
    };
    // Mark the run finished even when it panics, so a concurrent interrupt
    // never waits for nothing.
    struct Finished(Arc<(Mutex<bool>, Condvar)>);
    impl Drop for Finished {
        fn drop(&mut self) {
            let (lock, cv) = &*self.0;
            *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
            cv.notify_all();
        }
    }
    let finished = Finished(Arc::clone(&done));
    let result = backend.run(plan, opts);
    drop(finished);
    drop(guard);
    result
}

/// `SIGINT`'s number (2 on every Linux architecture).
const fn libc_sigint() -> usize {
    2
}

/// `reuseport-sim kernel`.
pub fn kernel_command(a: &KernelArgs) -> Result<(), CmdError> {
    let (scn, plan, seed, drawn) = load_plan(&a.file, a.seed)?;
    // Refuse what the backend cannot run before asking for root.
    crate::backend::kernel::spec::kernel_spec(&plan, seed, a.migrate)
        .map_err(|e| CmdError::run(&a.file, e))?;
    require_environment()?;
    let backend = KernelBackend {
        pcap: a.pcap.clone(),
        ..Default::default()
    };
    let opts = RunOptions {
        seed: Some(seed),
        migrate: a.migrate,
        sample_interval: Some(crate::plots::sample_interval(&scn)),
        ..Default::default()
    };
    let mut result = run_on_kernel(&backend, &plan, opts).map_err(|e| CmdError::run(&a.file, e))?;
    result.report.varied = drawn;
    let text = if a.json {
        result.report.to_json()
    } else {
        result.report.to_text()
    };
    print!("{text}");
    Ok(())
}

/// Writes an SVG (or `-`: stdout) for `--plot`.
pub fn write_plot(path: &Path, svg: &str) -> Result<(), CmdError> {
    write_output(path, svg.as_bytes()).map_err(CmdError::input)
}
