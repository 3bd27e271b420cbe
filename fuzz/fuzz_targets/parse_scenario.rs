//! Any bytes given to the scenario parser and validator produce `Ok` or a
//! clean error, never a panic. Run (nightly toolchain and cargo-fuzz):
//! `cargo +nightly fuzz run parse_scenario -- -max_total_time=60`
#![no_main]

use libfuzzer_sys::fuzz_target;
use sim_reuseport::runner::{RunOptions, Sim};
use sim_reuseport::scenario::parse_str;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(scn) = parse_str(text) {
            let _ = Sim::build(&scn, RunOptions::default());
        }
    }
});
