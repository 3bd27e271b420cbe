//! SO_REUSEPORT groups, socket migration (`tcp_migrate_req` and
//! `SELECT_OR_MIGRATE` policies), the scenario format, the simulator, its
//! reports and tools, and the `reuseport-sim` command line. Section numbers
//! (§) refer to `docs/model.md`.
//!
//! The pipeline, one module per layer (see `docs/architecture.md`):
//! a [`scenario`] file is parsed, drawn per seed ([`scenario::vary`]) and
//! lowered ([`scenario::lower`]) to a checked [`scenario::Plan`]; a
//! [`backend`] runs the plan and returns a [`backend::RunResult`] whose
//! [`report::Report`] the [`tools`] consume. The kernel's reuseport layer
//! ([`reuseport`]) plugs into `sim-tcp`'s server stack.
//!
//! The modules of [`reuseport`], [`tools`] and `scenario::vary` are also
//! re-exported at the crate root under their short names.
#![warn(missing_docs)]

pub mod backend;
pub mod report;
pub mod reuseport;
pub mod scenario;
pub mod tools;

pub use reuseport::{group, policy};
pub use scenario::vary;
pub use tools::{interrupt, invariants, output, plot, plots, sweep};

pub use group::{Group, GroupId, ReuseportTable};
pub use policy::{
    DecisionCounts, Policy, PolicyContext, PolicyDecision, PolicyKind, PolicyStats, Rule,
};
