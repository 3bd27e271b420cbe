//! `sim-kernel`: the real Linux kernel as a backend for reuseport-sim.
//!
//! [`run`] takes a [`KernelSpec`] (hosts, links, faults, servers, workers,
//! clients, `SK_REUSEPORT` programs, a timeline) and carries it out in real
//! time on the host kernel:
//!
//! - each host is a private network namespace ([`netns`]) with its
//!   sysctls; `lo` is up;
//! - links are emulated in user space ([`forwarder`]): every host with a
//!   link has a TUN device, and one thread moves packets between them with
//!   `sim_core`'s link model (latency, jitter, loss, bandwidth, link down,
//!   parameter changes, packet filters), so the semantics are the
//!   simulator's own; same-host traffic never leaves `lo`, and filters on
//!   it are an XDP program on `lo` ([`lofilter`]);
//! - workers are threads with real `SO_REUSEPORT` listeners ([`worker`]),
//!   clients a non-blocking epoll engine ([`client`]);
//! - `SK_REUSEPORT` programs are loaded from ELF objects ([`bpf`]);
//! - counters come from `/proc/net/{netstat,snmp}` of each namespace
//!   ([`counters`]) and listener queues from `INET_DIAG` ([`diag`]).
//!
//! Results are not deterministic: the kernel runs in real time, so timer
//! jitter, scheduling and CPU contention move individual outcomes between
//! runs (see the crate README for measured spreads).
//!
//! Safety: [`check_environment`] refuses without root, `/dev/net/tun`,
//! Linux 5.14 or network namespaces. Nothing is done in the host's own
//! namespace. Every namespace, device and thread is removed when the run
//! ends, fails, panics or is interrupted; [`netns::remove_leftovers`]
//! removes those of a crashed earlier run.

#![warn(missing_docs)]

pub mod actions;
pub mod arrivals;
pub mod bpf;
pub mod client;
pub mod clock;
pub mod counters;
pub mod diag;
pub mod env;
pub mod error;
pub mod forwarder;
pub mod hostnet;
pub mod lofilter;
pub mod netlink;
pub mod netns;
pub mod packet;
pub mod pcap;
pub mod policy;
pub mod result;
pub mod runner;
pub mod sampler;
pub mod spec;
pub mod sys;
pub mod sysctl;
pub mod tun;
pub mod validate;
pub mod worker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub use env::{check_environment, EnvInfo};
pub use error::{EnvError, KernelError, Result};
pub use result::*;
pub use runner::run;
pub use spec::*;

/// A flag that stops a run: set to a signal number (or any non-zero value).
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicUsize>);

impl StopFlag {
    /// A cleared flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets it (e.g. `libc::SIGINT`).
    pub fn raise(&self, value: usize) {
        self.0.store(value.max(1), Ordering::SeqCst);
    }

    /// The value if set.
    pub fn get(&self) -> Option<usize> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            v => Some(v),
        }
    }

    /// Registers SIGINT and SIGTERM to set this flag (to their number)
    /// instead of terminating the process, so a run in progress stops and
    /// cleans up; the caller then exits with 128 + the signal.
    pub fn register_signals(&self) -> std::io::Result<()> {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register_usize(sig, Arc::clone(&self.0), sig as usize)?;
        }
        Ok(())
    }
}
