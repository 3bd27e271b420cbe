//! SO_REUSEPORT groups, socket migration (`tcp_migrate_req` and
//! `SELECT_OR_MIGRATE` policies), the scenario runner, reports and the
//! `reuseport-sim` command line. Section numbers (§) refer to
//! `docs/model.md`.
#![warn(missing_docs)]

pub mod group;
pub mod policy;

pub use group::{Group, GroupId, ReuseportTable};
pub use policy::{
    DecisionCounts, Policy, PolicyContext, PolicyDecision, PolicyKind, PolicyStats, Rule,
};
pub mod interrupt;
pub mod invariants;
pub mod output;
pub mod plot;
pub mod plots;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sweep;
pub mod vary;
