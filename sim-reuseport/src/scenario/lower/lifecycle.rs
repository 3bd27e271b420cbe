//! The life of each worker's listener fd and process along the timeline:
//! an action through a closed fd is what the kernel answers with `EBADF`,
//! and a killed worker's process makes no call at all. Lowering refuses
//! both, at the JSON path of the action (the macro's own field for a
//! macro), naming the earlier action that closed or killed the worker.

use super::timeline::Origin;
use super::{Result, K};
use crate::scenario::plan::{Prim, Step, WorkerIx, WorkerPlan};
use crate::scenario::LowerError;
use sim_core::SimDuration;

/// The origins of the steps lowering made before the timeline: workers'
/// `listen_at` and policies' `attach_at`.
pub(super) fn declared_origins(steps: &[Step]) -> Vec<Origin> {
    steps
        .iter()
        .map(|s| match s.prim {
            Prim::Listen(w) => Origin {
                path: format!("workers[{}].listen_at", w.index()),
                time: format!("listen_at {}", since_start(s)),
            },
            Prim::AttachPolicy { policy, .. } => Origin {
                path: format!("policies[{}].via", policy.index()),
                time: format!("attach_at {}", since_start(s)),
            },
            _ => Origin {
                path: "timeline".into(),
                time: format!("at {}", since_start(s)),
            },
        })
        .collect()
}

/// When `s` happens, as a duration since the start (`"2.5s"`).
fn since_start(s: &Step) -> SimDuration {
    SimDuration::from_nanos(s.at.as_nanos())
}

/// What has happened to a worker so far.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Life {
    /// Its listener fd is open (listening or not).
    Open,
    /// Its listener fd was closed by step `.0`; the process lives on.
    Closed(usize),
    /// It was killed by step `.0`.
    Killed(usize),
}

/// How a step uses a worker.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// A call on the listener's fd (`listen`, `shutdown`, `close`,
    /// `accept`, `setsockopt`, `sendmsg` of the fd).
    Fd,
    /// The worker's own behaviour, no call on the fd (stop calling accept).
    Process,
}

/// The workers a step uses, and how.
type Uses = Vec<(WorkerIx, Use)>;

/// Checks the steps in run order (`order`, indices into `steps`): no
/// action through a closed fd, none by a killed worker.
pub(super) fn check_lifecycle(
    order: &[usize],
    steps: &[Step],
    origins: &[Origin],
    workers: &[WorkerPlan],
) -> Result<()> {
    let mut life = vec![Life::Open; workers.len()];
    for &i in order {
        let s = &steps[i];
        let (uses, after): (Uses, Option<(WorkerIx, Life)>) = match s.prim {
            Prim::Listen(w)
            | Prim::Relisten(w, _)
            | Prim::Shutdown(w)
            | Prim::ResumeAccepting(w) => (vec![(w, Use::Fd)], None),
            Prim::Close(w) => (vec![(w, Use::Fd)], Some((w, Life::Closed(i)))),
            Prim::Kill(w) => (vec![(w, Use::Process)], Some((w, Life::Killed(i)))),
            Prim::StopAccepting(w) => (vec![(w, Use::Process)], None),
            Prim::AttachPolicy { via, .. } | Prim::DetachPolicy { via } => {
                (vec![(via, Use::Fd)], None)
            }
            Prim::Handover { from, to } => (vec![(from, Use::Fd), (to, Use::Process)], None),
            // The deploying process writes the maps; a worker named in a
            // value is checked when the write runs (a closed listener is
            // refused by the map, as the kernel does).
            Prim::SetSysctl { .. } | Prim::MapUpdate { .. } | Prim::MapDelete { .. } => {
                (vec![], None)
            }
        };
        for (w, how) in uses {
            let name = &workers[w.index()].name;
            let what = |j: usize| {
                format!(
                    "`{}` at {} ({})",
                    steps[j].label,
                    since_start(&steps[j]),
                    origins[j].path
                )
            };
            let here = format!("`{}` ({})", s.label, origins[i].time);
            match (life[w.index()], how) {
                (Life::Open, _) | (Life::Closed(_), Use::Process) => {}
                (Life::Closed(j), Use::Fd) => {
                    return Err(LowerError::new(
                        K::ClosedFd,
                        origins[i].path.clone(),
                        format!(
                            "{here}: worker `{name}` already closed its listener by {}; \
                             the kernel would answer EBADF (a closed fd)",
                            what(j)
                        ),
                    ));
                }
                (Life::Killed(j), _) => {
                    return Err(LowerError::new(
                        K::WorkerKilled,
                        origins[i].path.clone(),
                        format!(
                            "{here}: worker `{name}` was killed by {}; its process is gone \
                             and its fds closed (a call on its listener would get EBADF)",
                            what(j)
                        ),
                    ));
                }
            }
        }
        if let Some((w, l)) = after {
            life[w.index()] = l;
        }
    }
    Ok(())
}
