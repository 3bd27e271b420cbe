//! The `reuseport-sim` command line (see [`cli`] for its definition).

mod cli;

use clap::Parser;
use cli::{Cli, Command, Failure};
use sim_reuseport::interrupt;
use sim_reuseport::scenario;
use std::process::ExitCode;

fn main_inner(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Run(a) => cli::run_cmd(a),
        Command::Compare(a) => cli::compare_cmd(a),
        Command::Sweep(a) => cli::sweep_cmd(a),
        Command::Merge(a) => cli::merge_cmd(a),
        Command::Validate(a) => cli::validate_cmd(a),
        Command::Kernel(a) => cli::kernel_cmd(a),
        Command::Calibrate(a) => cli::calibrate_cmd(a),
        Command::Schema => {
            println!("{}", scenario::json_schema());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = interrupt::install() {
        eprintln!("error: cannot install the Ctrl-C handler: {e}");
        return ExitCode::from(2);
    }
    match main_inner(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Invariant(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}
