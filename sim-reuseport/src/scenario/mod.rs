//! The scenario layer, one file per step of the way in:
//!
//! - `format.rs`: the JSON format ([`Scenario`]) and its strict parser
//!   ([`parse_str`], [`load`]), with errors that name the file, line,
//!   column and JSON path;
//! - `expand.rs`: the timeline macros ([`Action::expand`]);
//! - [`vary`]: the per-seed draws of a `vary` block;
//! - `lower/`: lowering ([`lower`]) to the backend-neutral [`Plan`]
//!   ([`plan`]), where every check of the input is made.

mod expand;
mod format;
mod lower;
pub mod plan;
pub mod schema;
pub mod vary;

pub use format::*;
pub use lower::{
    lower, scenario_hash, LowerError, LowerErrorKind, MAX_BURST, MAX_CLIENTS, MAX_DELAY,
    MAX_DURATION, MAX_HOSTS, MAX_RATE, MAX_WORKERS,
};
pub use plan::Plan;

/// Checks everything about `scn` that lowering checks (names,
/// cross-references, times within the duration), keeping only the verdict:
/// the check [`vary::check`] applies to every bound of a `vary` block.
pub fn validate(scn: &Scenario) -> Result<(), ScenarioError> {
    lower(scn).map(|_| ()).map_err(ScenarioError::from)
}
