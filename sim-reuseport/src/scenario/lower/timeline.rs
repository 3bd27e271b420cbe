//! Lowering of the timeline: each entry (a macro expanded by
//! [`Action::expand`]) to primitive steps, and the rules of fd passing.

use super::{Cx, Result, K};
use crate::scenario::format::Action;
use crate::scenario::plan::*;
use crate::scenario::LowerError;
use sim_tcp::Sysctls;
use std::collections::BTreeSet;

impl Cx<'_> {
    /// Timeline entry `i`: a primitive, or a macro expanded to primitives.
    pub(super) fn action(
        &self,
        i: usize,
        a: &Action,
        workers: &[WorkerPlan],
        timeline: &mut Vec<Step>,
    ) -> Result<()> {
        let base = format!("timeline[{i}]");
        if let Action::RollingRestart { old, new, .. } | Action::FdPassing { old, new, .. } = a {
            if old.len() != new.len() {
                return Err(LowerError::new(
                    K::MacroListsDiffer,
                    format!("{base}.new"),
                    format!(
                        "needs as many new workers as old ({} vs {})",
                        new.len(),
                        old.len()
                    ),
                ));
            }
        }
        for p in a.expand() {
            let at = self.within(p.at(), format!("{base}.at"))?;
            let (prim, label) = self.primitive(&base, &p, workers)?;
            timeline.push(Step { at, prim, label });
        }
        Ok(())
    }

    /// A primitive action of `timeline[i]` (`base`), resolved.
    fn primitive(&self, base: &str, p: &Action, workers: &[WorkerPlan]) -> Result<(Prim, String)> {
        let w = |name: &str, field: &str| self.worker(name, &format!("{base}.{field}"));
        Ok(match p {
            Action::Listen { worker, .. } => (
                Prim::Listen(w(worker, "worker")?),
                format!("listen {worker}"),
            ),
            Action::Shutdown { worker, .. } => (
                Prim::Shutdown(w(worker, "worker")?),
                format!("shutdown {worker}"),
            ),
            Action::Close { worker, .. } => {
                (Prim::Close(w(worker, "worker")?), format!("close {worker}"))
            }
            Action::StopAccepting { worker, .. } => (
                Prim::StopAccepting(w(worker, "worker")?),
                format!("stop_accepting {worker}"),
            ),
            Action::ResumeAccepting { worker, .. } => (
                Prim::ResumeAccepting(w(worker, "worker")?),
                format!("resume_accepting {worker}"),
            ),
            Action::Relisten {
                worker, backlog, ..
            } => (
                Prim::Relisten(w(worker, "worker")?, *backlog),
                format!("relisten {worker} backlog {backlog}"),
            ),
            Action::Kill { worker, .. } => {
                (Prim::Kill(w(worker, "worker")?), format!("kill {worker}"))
            }
            Action::SetSysctl {
                host, name, value, ..
            } => {
                let h = self.host(host, &format!("{base}.host"))?;
                Sysctls::default()
                    .set(name, *value)
                    .map_err(|m| LowerError::new(K::BadSysctl, format!("{base}.name"), m))?;
                (
                    Prim::SetSysctl {
                        host: h,
                        name: name.clone(),
                        value: *value,
                    },
                    format!("{host}: {name}={value}"),
                )
            }
            Action::AttachPolicy { policy, via, .. } => {
                let pi = self.policy(policy, &format!("{base}.policy"))?;
                let via = match via {
                    Some(v) => w(v, "via")?,
                    None => w(&self.scn.policies[pi.index()].via, "via")?,
                };
                (
                    Prim::AttachPolicy { policy: pi, via },
                    format!("attach {policy}"),
                )
            }
            Action::DetachPolicy { via, .. } => (
                Prim::DetachPolicy {
                    via: w(via, "via")?,
                },
                format!("detach policy via {via}"),
            ),
            Action::Handover { from, to, .. } => {
                let (f, t) = (w(from, "from")?, w(to, "to")?);
                if workers[f.index()].host != workers[t.index()].host {
                    return Err(LowerError::new(
                        K::HandoverAcrossHosts,
                        format!("{base}.to"),
                        "fd passing needs both workers on one host",
                    ));
                }
                // The new worker uses the inherited listener only: a
                // listener of its own would stay in the group with nobody
                // accepting from it.
                if f == t || self.scn.workers[t.index()].listen_at.is_some() {
                    return Err(LowerError::new(
                        K::HandoverToListener,
                        format!("{base}.to"),
                        format!("worker `{to}` inherits a listener: it must be another worker with \"listen_at\": null"),
                    ));
                }
                (
                    Prim::Handover { from: f, to: t },
                    format!("handover {from}->{to}"),
                )
            }
            _ => unreachable!("macros expand to primitives"),
        })
    }
}

/// A `relisten` needs a socket the worker has made listen (its own
/// `listen`) or inherited (`handover`) at or before that instant, in plan
/// order. Whether it is still listening then (not closed or shut down) is
/// decided at run time: a `relisten` of a socket that is not listening does
/// nothing (traced), since `listen()` on a shut-down one would resurrect it
/// (§5.9), which is the `listen` action's job.
pub(super) fn check_relistens(timeline: &[Step], workers: &[WorkerPlan]) -> Result<()> {
    let mut holds = BTreeSet::new();
    for s in timeline {
        match s.prim {
            Prim::Listen(w) | Prim::Handover { to: w, .. } => {
                holds.insert(w);
            }
            Prim::Relisten(w, _) if !holds.contains(&w) => {
                return Err(LowerError::new(
                    K::RelistenBeforeListen,
                    "timeline",
                    format!(
                        "`{}` at {}: worker `{}` has no listening socket yet (it needs a `listen` or a `handover` to it first)",
                        s.label,
                        s.at,
                        workers[w.index()].name
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A worker inherits at most one listener, and never listens on its own.
pub(super) fn check_heirs(timeline: &[Step], workers: &[WorkerPlan]) -> Result<()> {
    let mut heirs = BTreeSet::new();
    for s in timeline {
        if let Prim::Handover { to, .. } = s.prim {
            if !heirs.insert(to) {
                return Err(LowerError::new(
                    K::InheritsTwice,
                    "timeline",
                    format!(
                        "`{}`: worker `{}` already inherits a listener",
                        s.label,
                        workers[to.index()].name
                    ),
                ));
            }
        }
    }
    for s in timeline {
        if let Prim::Listen(w) = s.prim {
            if heirs.contains(&w) {
                return Err(LowerError::new(
                    K::HeirListens,
                    "timeline",
                    format!(
                        "`{}`: worker `{}` inherits a listener by fd passing and cannot listen on its own",
                        s.label,
                        workers[w.index()].name
                    ),
                ));
            }
        }
    }
    Ok(())
}
