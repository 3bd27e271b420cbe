//! Timeline macros (`reload_new_first`, `restart_old_first`,
//! `worker_reduction`, `rolling_restart`, `immediate_stop`, `fd_passing`):
//! each expands here into the primitive actions a real deployment tool
//! would perform, in the order they happen within one instant, each with
//! where in the entry it came from ([`Expanded`]) so that an error names
//! the macro's own field and the times the user wrote.

use super::format::{Action, Dur};
use sim_core::SimDuration;

/// A primitive action of a timeline entry and where it came from.
#[derive(Clone, Debug)]
pub struct Expanded {
    /// The primitive action.
    pub action: Action,
    /// The JSON path, within the entry, of each worker name the primitive
    /// acts on, in the order of its fields (`worker`; `from`, `to`; `via`):
    /// `"worker"` for a primitive, `"old[2]"` for a macro's.
    pub worker_fields: Vec<String>,
    /// The field, within the entry, that made the time: `"at"`, or the
    /// delay added last (`"drain"`, `"gap"`, `"interval"`).
    pub time_field: &'static str,
    /// How the time was computed from what the user wrote, e.g.
    /// `"at 2s + drain 500ms"` (just `"at 2s"` for a primitive).
    pub time_text: String,
}

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
            | Action::MapUpdate { at, .. }
            | Action::MapDelete { at, .. }
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
        self.expand_traced().into_iter().map(|e| e.action).collect()
    }

    /// [`Action::expand`], with where each primitive came from.
    pub fn expand_traced(&self) -> Vec<Expanded> {
        let mut out = Vec::new();
        match self {
            Action::ReloadNewFirst {
                at,
                old,
                new,
                drain,
            } => {
                let t = Time::at(*at);
                let later = t.plus("drain", *drain);
                push_each(&mut out, new, "new", &t, listen);
                push_each(&mut out, old, "old", &t, stop_accepting);
                push_each(&mut out, old, "old", &later, close);
            }
            Action::RestartOldFirst { at, old, new, gap } => {
                let t = Time::at(*at);
                push_each(&mut out, old, "old", &t, close);
                push_each(&mut out, new, "new", &t.plus("gap", *gap), listen);
            }
            Action::WorkerReduction { at, remove, drain } => {
                let t = Time::at(*at);
                push_each(&mut out, remove, "remove", &t, stop_accepting);
                push_each(&mut out, remove, "remove", &t.plus("drain", *drain), close);
            }
            Action::RollingRestart {
                at,
                old,
                new,
                interval,
                drain,
            } => {
                for (i, (o, n)) in old.iter().zip(new).enumerate() {
                    let t = Time::at(*at).times("interval", *interval, i as u64);
                    let (o, n) = (std::slice::from_ref(o), std::slice::from_ref(n));
                    push_one(&mut out, n, "new", i, &t, listen);
                    push_one(&mut out, o, "old", i, &t, stop_accepting);
                    push_one(&mut out, o, "old", i, &t.plus("drain", *drain), close);
                }
            }
            Action::ImmediateStop { at, old, new } => {
                let t = Time::at(*at);
                push_each(&mut out, new, "new", &t, listen);
                push_each(&mut out, old, "old", &t, close);
            }
            Action::FdPassing { at, old, new } => {
                let t = Time::at(*at);
                for (i, (o, n)) in old.iter().zip(new).enumerate() {
                    out.push(Expanded {
                        action: Action::Handover {
                            at: Dur(t.t),
                            from: o.clone(),
                            to: n.clone(),
                        },
                        worker_fields: vec![format!("old[{i}]"), format!("new[{i}]")],
                        time_field: t.field,
                        time_text: t.text.clone(),
                    });
                }
            }
            primitive => {
                let worker_fields = match primitive {
                    Action::Handover { .. } => vec!["from".into(), "to".into()],
                    Action::AttachPolicy { via: Some(_), .. } | Action::DetachPolicy { .. } => {
                        vec!["via".into()]
                    }
                    // Through the policy's own `via`.
                    Action::AttachPolicy { via: None, .. } => vec!["policy".into()],
                    Action::SetSysctl { .. } => vec![],
                    _ => vec!["worker".into()],
                };
                let t = Time::at(Dur(primitive.at()));
                out.push(Expanded {
                    action: primitive.clone(),
                    worker_fields,
                    time_field: t.field,
                    time_text: t.text,
                });
            }
        }
        out
    }
}

/// A macro's time, and how it was computed from the entry's fields.
struct Time {
    t: SimDuration,
    field: &'static str,
    text: String,
}

impl Time {
    fn at(at: Dur) -> Time {
        Time {
            t: at.0,
            field: "at",
            text: format!("at {}", at.0),
        }
    }

    fn plus(&self, field: &'static str, d: Dur) -> Time {
        Time {
            t: self.t.saturating_add(d.0),
            field,
            text: format!("{} + {field} {}", self.text, d.0),
        }
    }

    /// `self + n * d` (nothing added for `n = 0`).
    fn times(self, field: &'static str, d: Dur, n: u64) -> Time {
        if n == 0 {
            return self;
        }
        Time {
            t: self.t.saturating_add(d.0.saturating_mul(n)),
            field,
            text: format!("{} + {n} × {field} {}", self.text, d.0),
        }
    }
}

fn listen(at: Dur, worker: String) -> Action {
    Action::Listen { at, worker }
}
fn stop_accepting(at: Dur, worker: String) -> Action {
    Action::StopAccepting { at, worker }
}
fn close(at: Dur, worker: String) -> Action {
    Action::Close { at, worker }
}

/// One primitive per worker of the macro's list `field`.
fn push_each(
    out: &mut Vec<Expanded>,
    workers: &[String],
    field: &str,
    t: &Time,
    make: fn(Dur, String) -> Action,
) {
    for (i, w) in workers.iter().enumerate() {
        push_one(out, std::slice::from_ref(w), field, i, t, make);
    }
}

/// The primitive for `worker[0]`, element `i` of the macro's list `field`.
fn push_one(
    out: &mut Vec<Expanded>,
    worker: &[String],
    field: &str,
    i: usize,
    t: &Time,
    make: fn(Dur, String) -> Action,
) {
    out.push(Expanded {
        action: make(Dur(t.t), worker[0].clone()),
        worker_fields: vec![format!("{field}[{i}]")],
        time_field: t.field,
        time_text: t.text.clone(),
    });
}
