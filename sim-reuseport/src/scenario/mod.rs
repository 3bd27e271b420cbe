//! The scenario layer: the JSON format and its parser ([`format`]), the
//! per-seed draws of a `vary` block ([`vary`]).

mod format;
pub mod vary;

pub use format::*;
