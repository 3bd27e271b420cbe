//! SO_REUSEPORT groups, socket migration (`tcp_migrate_req` and
//! `SELECT_OR_MIGRATE` policies), the scenario runner, reports and the
//! `reuseport-sim` command line. Section numbers (§) refer to
//! `shared/spec/linux-reuseport.md`.
#![warn(missing_docs)]

pub mod backend;
pub mod report;
pub mod reuseport;
pub mod scenario;
pub mod tools;

pub use reuseport::{group, policy};
pub use scenario::vary;
pub use tools::{invariants, output, plot, plots, sweep};

pub use group::{Group, GroupId, ReuseportTable};
pub use policy::{
    DecisionCounts, Policy, PolicyContext, PolicyDecision, PolicyKind, PolicyStats, Rule,
};
