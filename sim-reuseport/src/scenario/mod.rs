//! The scenario layer: the JSON format and its parser ([`format`]), the
//! timeline macros ([`expand`]), the per-seed draws of a `vary` block
//! ([`vary`]), and lowering ([`lower`]) to the backend-neutral [`Plan`]
//! ([`plan`]).

mod expand;
mod format;
mod lower;
pub mod plan;
pub mod vary;

pub use format::*;
pub use lower::{
    lower, scenario_hash, LowerError, LowerErrorKind, MAX_BURST, MAX_CLIENTS, MAX_DELAY,
    MAX_DURATION, MAX_HOSTS, MAX_RATE, MAX_WORKERS,
};
pub use plan::Plan;
