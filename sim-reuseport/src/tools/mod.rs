//! The tools on top of the pipeline: plots, seed sweeps and their merge,
//! the invariants every run is checked against, and safe output files.

pub mod calibrate;
pub mod estimate;
pub mod interrupt;
pub mod invariants;
pub mod kernel_cmd;
pub mod output;
pub mod plot;
pub mod plot_labels;
pub mod plots;
pub mod sweep;
