//! Shared helpers of the kernel tests: the environment gate and a lock
//! that runs kernel scenarios one at a time (they are timing-sensitive and
//! the machine has 2 cores).

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

static KERNEL: Mutex<()> = Mutex::new(());

/// `Some(guard)` if the kernel backend can run here; otherwise prints why
/// the test is skipped and returns `None` (the test then returns without
/// asserting anything, and says so).
pub fn kernel_or_skip(test: &str) -> Option<MutexGuard<'static, ()>> {
    match sim_kernel::check_environment() {
        Ok(_) => Some(KERNEL.lock().unwrap_or_else(|p| p.into_inner())),
        Err(e) => {
            eprintln!("SKIPPED {test}: {e}");
            None
        }
    }
}

/// Names of this process's namespaces still under /run/netns.
pub fn my_namespaces() -> Vec<String> {
    sim_kernel::netns::list_mine()
}
