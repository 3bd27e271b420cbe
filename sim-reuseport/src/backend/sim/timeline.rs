//! The timeline: the plan's steps (system calls of the application and
//! the operator, macros already expanded), each due at its time.

use crate::scenario::plan::{Prim, Step};
use sim_core::SimTime;

/// The steps of a run, in time order.
pub(super) struct Timeline {
    steps: Vec<Step>,
}

impl Timeline {
    /// The plan's timeline.
    pub(super) fn new(steps: &[Step]) -> Self {
        Timeline {
            steps: steps.to_vec(),
        }
    }

    /// Each step's index and time, in order.
    pub(super) fn due(&self) -> impl Iterator<Item = (u32, SimTime)> + '_ {
        self.steps.iter().enumerate().map(|(i, s)| (i as u32, s.at))
    }

    /// Step `i`: what to do, and its label.
    pub(super) fn step(&self, i: u32) -> (Prim, String) {
        let s = &self.steps[i as usize];
        (s.prim.clone(), s.label.clone())
    }

    /// (time in seconds, label) of every step, for plot markers.
    pub(super) fn markers(&self) -> Vec<(f64, String)> {
        self.steps
            .iter()
            .map(|s| (s.at.as_secs_f64(), s.label.clone()))
            .collect()
    }
}
