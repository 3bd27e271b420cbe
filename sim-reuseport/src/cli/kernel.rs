//! `kernel` and `calibrate`: the real-kernel backend from the command line
//! (the work is in `sim_reuseport::tools::{kernel_cmd, calibrate}`).

use super::{CalibrateArgs, Failure, Format, KernelArgs, OnOff};
use sim_reuseport::tools::{calibrate, kernel_cmd};

fn cmd_failure(e: kernel_cmd::CmdError) -> Failure {
    match e.code {
        2 => Failure::BadInput(e.message),
        _ => Failure::Invariant(e.message),
    }
}

/// `kernel`: one run on the host kernel.
pub(crate) fn kernel_cmd(a: KernelArgs) -> Result<(), Failure> {
    kernel_cmd::kernel_command(&kernel_cmd::KernelArgs {
        file: a.file,
        seed: a.seed,
        migrate: a.migrate.map(|m| m == OnOff::On),
        json: a.format == Format::Json,
        pcap: a.pcap,
    })
    .map_err(cmd_failure)
}

/// `calibrate`: kernel runs and simulator seeds side by side.
pub(crate) fn calibrate_cmd(a: CalibrateArgs) -> Result<(), Failure> {
    calibrate::command(&calibrate::CalibrateArgs {
        file: a.file,
        repeats: a.repeats,
        seeds: a.seeds,
        migrate: a.migrate.map(|m| m == OnOff::On),
        json: a.format == Format::Json,
        plot: a.plot,
    })
    .map_err(cmd_failure)
}
