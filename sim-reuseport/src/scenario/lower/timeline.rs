//! Lowering of the timeline: each entry (a macro expanded by
//! [`Action::expand`]) to primitive steps, and the rules of fd passing.

use super::bpf::{map_id, Part};
use super::{Cx, Result, K};
use crate::scenario::format::{Action, MapUpdateFlags};
use crate::scenario::plan::*;
use crate::scenario::LowerError;
use sim_tcp::Sysctls;
use std::collections::BTreeSet;

/// Where a step came from: the JSON path of the worker field it acts
/// through (the macro's own field for a macro) and its time as written.
#[derive(Clone, Debug)]
pub(super) struct Origin {
    /// JSON path of the worker the step acts on, e.g. `timeline[0].old[1]`.
    pub(super) path: String,
    /// The time as the user wrote it, e.g. `at 2s + drain 500ms`.
    pub(super) time: String,
}

impl Cx<'_> {
    /// Timeline entry `i`: a primitive, or a macro expanded to primitives.
    pub(super) fn action(
        &self,
        i: usize,
        a: &Action,
        workers: &[WorkerPlan],
        policies: &[PolicyPlan],
        timeline: &mut Vec<Step>,
        origins: &mut Vec<Origin>,
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
        old_not_new(&base, a)?;
        for e in a.expand_traced() {
            let at = self.within_as(
                e.action.at(),
                format!("{base}.{}", e.time_field),
                &e.time_text,
            )?;
            let fields: Vec<String> = e
                .worker_fields
                .iter()
                .map(|f| format!("{base}.{f}"))
                .collect();
            let (prim, label) = self.primitive(&base, &e.action, &fields, workers, policies)?;
            origins.push(Origin {
                path: fields.first().cloned().unwrap_or_else(|| base.clone()),
                time: e.time_text,
            });
            timeline.push(Step { at, prim, label });
        }
        Ok(())
    }

    /// A primitive action of `timeline[i]` (`base`), resolved.
    /// `fields` are the JSON paths of its worker names, in field order.
    fn primitive(
        &self,
        base: &str,
        p: &Action,
        fields: &[String],
        workers: &[WorkerPlan],
        policies: &[PolicyPlan],
    ) -> Result<(Prim, String)> {
        let path = |field: &str| {
            let k = match field {
                "to" => 1,
                _ => 0,
            };
            fields
                .get(k)
                .cloned()
                .unwrap_or_else(|| format!("{base}.{field}"))
        };
        let w = |name: &str, field: &str| self.worker(name, &path(field));
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
            Action::MapUpdate {
                policy,
                map,
                key,
                value,
                flags,
                ..
            } => {
                let (pi, b) = self.bpf_policy(policies, policy, &format!("{base}.policy"))?;
                let id = map_id(&b.loaded, map, &format!("{base}.map"))?;
                let k = self.map_bytes(&b.loaded, id, Part::Key, key, &format!("{base}.key"))?;
                let v =
                    self.map_bytes(&b.loaded, id, Part::Value, value, &format!("{base}.value"))?;
                let flags = match flags {
                    MapUpdateFlags::Any => sim_bpf::BPF_ANY,
                    MapUpdateFlags::Noexist => sim_bpf::BPF_NOEXIST,
                    MapUpdateFlags::Exist => sim_bpf::BPF_EXIST,
                };
                (
                    Prim::MapUpdate {
                        policy: pi,
                        write: MapWrite {
                            map: id,
                            map_name: map.clone(),
                            key: k,
                            value: v,
                        },
                        flags,
                    },
                    format!("map_update {policy} {map}"),
                )
            }
            Action::MapDelete {
                policy, map, key, ..
            } => {
                let (pi, b) = self.bpf_policy(policies, policy, &format!("{base}.policy"))?;
                let id = map_id(&b.loaded, map, &format!("{base}.map"))?;
                let k = self.map_bytes(&b.loaded, id, Part::Key, key, &format!("{base}.key"))?;
                (
                    Prim::MapDelete {
                        policy: pi,
                        map: id,
                        map_name: map.clone(),
                        key: k,
                    },
                    format!("map_delete {policy} {map}"),
                )
            }
            Action::Handover { from, to, .. } => {
                let (f, t) = (w(from, "from")?, w(to, "to")?);
                if workers[f.index()].host != workers[t.index()].host {
                    return Err(LowerError::new(
                        K::HandoverAcrossHosts,
                        path("to"),
                        "fd passing needs both workers on one host",
                    ));
                }
                // The new worker uses the inherited listener only: a
                // listener of its own would stay in the group with nobody
                // accepting from it.
                if f == t || self.scn.workers[t.index()].listen_at.is_some() {
                    return Err(LowerError::new(
                        K::HandoverToListener,
                        path("to"),
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

/// A macro that replaces `old` workers by `new` ones cannot name one
/// worker in both lists.
fn old_not_new(base: &str, a: &Action) -> Result<()> {
    let (Action::ReloadNewFirst { old, new, .. }
    | Action::RestartOldFirst { old, new, .. }
    | Action::RollingRestart { old, new, .. }
    | Action::ImmediateStop { old, new, .. }
    | Action::FdPassing { old, new, .. }) = a
    else {
        return Ok(());
    };
    for (j, n) in new.iter().enumerate() {
        if let Some(k) = old.iter().position(|o| o == n) {
            return Err(LowerError::new(
                K::WorkerInOldAndNew,
                format!("{base}.new[{j}]"),
                format!(
                    "worker `{n}` is also in `old` (old[{k}]): a worker cannot replace itself; \
                     declare a new worker (with \"listen_at\": null) for the new generation"
                ),
            ));
        }
    }
    Ok(())
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
