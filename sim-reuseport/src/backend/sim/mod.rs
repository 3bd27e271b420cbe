//! The simulator backend: a deterministic discrete-event run of a [`Plan`]
//! over the `sim-tcp` model of each host's TCP stack, with the reuseport
//! kernel layer ([`crate::reuseport`]) plugged into each server stack.
//!
//! One module per concern, each owning its state behind a small API that
//! does not know the world:
//!
//! | Module | Owns |
//! |---|---|
//! | `sched` | the event queue, its lanes and the batched TCP timer checks |
//! | `net` | the network (links, faults) and the packets in flight |
//! | `hosts` | each host's sysctls and server stack, listener owners, policies |
//! | `workers` | the accept models and service of accepted connections |
//! | `clients` | the client populations, their sockets, the RST-cause ledger |
//! | `timeline` | the timeline's steps |
//! | `stats` | counters, histograms and samples (a sink) |
//! | `tap` | the trace and packet capture (a sink) |
//! | `world` | composes them: the events (`Ev`), the run loop, dispatch, the digest, the report |
//!
//! Imports point one way: `world` → parts → `sim-tcp`/`sim-core`. A part
//! reaches another only through what the world passes in a call (a stack,
//! a slice of sysctls, an output sink). Only `world` and its adapters
//! (`world/io.rs`) name more than one part.

mod clients;
mod cpu;
mod hosts;
mod net;
mod sched;
mod stats;
mod tap;
mod timeline;
mod workers;
mod world;

pub use world::MAX_EVENTS;

use super::{Backend, RunError, RunOptions, RunResult};
use crate::reuseport::group::ReuseportTable;
use crate::scenario::Plan;

/// A host's TCP stack, with the reuseport layer as its hooks.
type Stack = sim_tcp::ServerStack<ReuseportTable>;

/// The simulator backend.
#[derive(Copy, Clone, Debug, Default)]
pub struct Simulator;

impl Backend for Simulator {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn run(&self, plan: &Plan, opts: RunOptions<'_>) -> Result<RunResult, RunError> {
        let mut result = world::World::new(plan, opts).run()?;
        result.worker_generations = plan.workers.iter().map(|w| w.generation).collect();
        Ok(result)
    }
}
