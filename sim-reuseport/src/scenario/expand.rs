//! Timeline macros (`reload_new_first`, `restart_old_first`,
//! `worker_reduction`, `rolling_restart`, `immediate_stop`, `fd_passing`):
//! each expands here into the primitive actions a real deployment tool
//! would perform, in the order they happen within one instant.

use super::format::{Action, Dur};
use sim_core::SimDuration;

impl Action {
    /// When the action (or the first action of a macro) happens.
    pub fn at(&self) -> SimDuration {
        match self {
            Action::Listen { at, .. }
            | Action::Shutdown { at, .. }
            | Action::Close { at, .. }
            | Action::StopAccepting { at, .. }
            | Action::ResumeAccepting { at, .. }
            | Action::Relisten { at, .. }
            | Action::Kill { at, .. }
            | Action::SetSysctl { at, .. }
            | Action::AttachPolicy { at, .. }
            | Action::DetachPolicy { at, .. }
            | Action::Handover { at, .. }
            | Action::ReloadNewFirst { at, .. }
            | Action::RestartOldFirst { at, .. }
            | Action::WorkerReduction { at, .. }
            | Action::RollingRestart { at, .. }
            | Action::ImmediateStop { at, .. }
            | Action::FdPassing { at, .. } => at.0,
        }
    }

    /// Expands a macro into primitive actions (a primitive expands to
    /// itself). The order within one instant is the order of the result.
    pub fn expand(&self) -> Vec<Action> {
        let d = |t: SimDuration| Dur(t);
        match self {
            Action::ReloadNewFirst {
                at,
                old,
                new,
                drain,
            } => {
                let mut v: Vec<Action> = new
                    .iter()
                    .map(|w| Action::Listen {
                        at: *at,
                        worker: w.clone(),
                    })
                    .collect();
                v.extend(old.iter().map(|w| Action::StopAccepting {
                    at: *at,
                    worker: w.clone(),
                }));
                v.extend(old.iter().map(|w| Action::Close {
                    at: d(at.0.saturating_add(drain.0)),
                    worker: w.clone(),
                }));
                v
            }
            Action::RestartOldFirst { at, old, new, gap } => {
                let mut v: Vec<Action> = old
                    .iter()
                    .map(|w| Action::Close {
                        at: *at,
                        worker: w.clone(),
                    })
                    .collect();
                v.extend(new.iter().map(|w| Action::Listen {
                    at: d(at.0.saturating_add(gap.0)),
                    worker: w.clone(),
                }));
                v
            }
            Action::WorkerReduction { at, remove, drain } => {
                let mut v: Vec<Action> = remove
                    .iter()
                    .map(|w| Action::StopAccepting {
                        at: *at,
                        worker: w.clone(),
                    })
                    .collect();
                v.extend(remove.iter().map(|w| Action::Close {
                    at: d(at.0.saturating_add(drain.0)),
                    worker: w.clone(),
                }));
                v
            }
            Action::RollingRestart {
                at,
                old,
                new,
                interval,
                drain,
            } => {
                let mut v = Vec::new();
                for (i, (o, n)) in old.iter().zip(new).enumerate() {
                    let t = at.0.saturating_add(interval.0.saturating_mul(i as u64));
                    v.push(Action::Listen {
                        at: d(t),
                        worker: n.clone(),
                    });
                    v.push(Action::StopAccepting {
                        at: d(t),
                        worker: o.clone(),
                    });
                    v.push(Action::Close {
                        at: d(t.saturating_add(drain.0)),
                        worker: o.clone(),
                    });
                }
                v
            }
            Action::ImmediateStop { at, old, new } => {
                let mut v: Vec<Action> = new
                    .iter()
                    .map(|w| Action::Listen {
                        at: *at,
                        worker: w.clone(),
                    })
                    .collect();
                v.extend(old.iter().map(|w| Action::Close {
                    at: *at,
                    worker: w.clone(),
                }));
                v
            }
            Action::FdPassing { at, old, new } => old
                .iter()
                .zip(new)
                .map(|(o, n)| Action::Handover {
                    at: *at,
                    from: o.clone(),
                    to: n.clone(),
                })
                .collect(),
            primitive => vec![primitive.clone()],
        }
    }
}
