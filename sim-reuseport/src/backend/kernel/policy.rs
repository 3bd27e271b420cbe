//! Declarative policies on the kernel: the map-driven C twin program
//! `sim-bpf/fixtures/policy.o` (`policy.c`), its maps filled so that it
//! does what the plan's [`PolicyPlan`] says (the interface of each map is
//! documented in `policy.c` and `docs/bpf.md`).
//!
//! - `socks` (`REUSEPORT_SOCKARRAY`): slot *i* is worker *i*'s own
//!   listener, written right after its first `listen()` (the kernel
//!   requires a listening socket). The kernel drops the entry when the
//!   listener stops (`bpf_sk_reuseport_detach`), and a re-`listen()`
//!   does not put it back: user space does not either, as in the kernel
//!   selftest `migrate_reuseport` and the simulator (`group.rs`: a
//!   resurrected listener is not inserted);
//! - `config[0]`: the rules, pick slots, `missing_drop`, `newest_len`;
//! - `newest`: the slots of the newest generation among the listening
//!   workers of the policy's server, rewritten after every `listen`,
//!   `shutdown`, `close` and `kill` (what the simulator computes at each
//!   call, user space computes at each change);
//! - `targets` (cookie of the closing listener → slot) and `cancel`
//!   (cookies): written at load, from the listeners' `SO_COOKIE`.
//!
//! `bpf` policies (the scenario's own object) are translated by
//! [`super::bpf`].
//!
//! `least_loaded` is refused: the program needs the accept-queue lengths
//! published into its `loads` map while the run goes, and the kernel
//! backend runs no such publisher.

use crate::backend::RunError;
use crate::policy::PolicyKind;
use crate::scenario::plan::{Plan, PolicyPlan, Prim, RulePlan, ServerIx, WorkerIx};
use sim_kernel::{Action, BpfObject, MapDatum, MapEntry, PolicySpec, ReuseportAttach};
use std::collections::BTreeSet;

/// The compiled C twin of the declarative policies (`policy.c`).
pub const POLICY_OBJECT: &[u8] = include_bytes!("../../../../sim-bpf/fixtures/policy.o");

/// `MAX_SLOTS` of `policy.c`: slots of `socks`, `newest`, `order`, `loads`.
pub const MAX_SLOTS: usize = 256;

/// `enum rule` of `policy.c`.
const RULE_PASS: u32 = 0;
const RULE_DROP: u32 = 1;
const RULE_PICK: u32 = 2;
const RULE_NEWEST_GENERATION: u32 = 3;
const RULE_MAP_BY_CLOSING_LISTENER: u32 = 5;

/// `struct policy_config` of `policy.c`, field by field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Config {
    syn_rule: u32,
    migrate_rule: u32,
    syn_pick_slot: u32,
    migrate_pick_slot: u32,
    missing_drop: u32,
    newest_len: u32,
    order_len: u32,
}

impl Config {
    /// The struct's bytes (seven native-endian `__u32`, no padding).
    fn bytes(&self) -> Vec<u8> {
        [
            self.syn_rule,
            self.migrate_rule,
            self.syn_pick_slot,
            self.migrate_pick_slot,
            self.missing_drop,
            self.newest_len,
            self.order_len,
        ]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect()
    }
}

/// One policy's translation and the listener state its maps follow.
#[derive(Debug)]
struct Tracker {
    spec: PolicySpec,
    config: Config,
    /// Workers of the policy's server (the group its program serves).
    members: BTreeSet<usize>,
    /// Generation of every worker, by index.
    generations: Vec<u32>,
    /// Listening listeners, by the index of the worker that created them.
    listening: BTreeSet<usize>,
    /// Listeners that have listened at least once (inserted in `socks`).
    inserted: BTreeSet<usize>,
    /// The listener each worker holds (its own, or one handed over).
    holds: Vec<Option<usize>>,
    /// Whether a rule needs `newest`.
    uses_newest: bool,
    /// Last `newest` written (to skip no-op rewrites).
    newest: Vec<usize>,
}

/// One policy of the plan on the kernel.
#[derive(Debug)]
enum Translated {
    /// Declarative rules, run as `policy.o` with maps user space keeps.
    Rules(Box<Tracker>),
    /// The scenario's own object ([`super::bpf`]): its maps change only
    /// by the timeline's map actions.
    Bpf(PolicySpec),
}

/// Every policy of a plan, as kernel programs and the map updates that
/// follow the timeline.
#[derive(Debug)]
pub struct Policies {
    trackers: Vec<Translated>,
}

impl Policies {
    /// Translates the plan's policies; refuses a rule the program cannot be
    /// driven to follow.
    pub fn new(plan: &Plan) -> Result<Self, RunError> {
        if plan.workers.len() > MAX_SLOTS && !plan.policies.is_empty() {
            return Err(RunError::Unsupported(format!(
                "policies with more than {MAX_SLOTS} workers (policy.c has {MAX_SLOTS} socket slots)"
            )));
        }
        let trackers = plan
            .policies
            .iter()
            .map(|p| match &p.bpf {
                Some(b) => Ok(Translated::Bpf(super::bpf::policy_spec(p, b))),
                None => tracker(plan, p).map(|t| Translated::Rules(Box::new(t))),
            })
            .collect::<Result<_, _>>()?;
        Ok(Policies { trackers })
    }

    /// The map updates that must follow `prim` (same instant, right after).
    pub fn after(&mut self, prim: &Prim) -> Vec<Action> {
        let mut out = Vec::new();
        for (i, t) in self.trackers.iter_mut().enumerate() {
            if let Translated::Rules(t) = t {
                t.after(i, prim, &mut out);
            }
        }
        out
    }

    /// The programs to load.
    pub fn into_specs(self) -> Vec<PolicySpec> {
        self.trackers
            .into_iter()
            .map(|t| match t {
                Translated::Rules(t) => t.spec,
                Translated::Bpf(spec) => spec,
            })
            .collect()
    }
}

fn tracker(plan: &Plan, p: &PolicyPlan) -> Result<Tracker, RunError> {
    let mut config = Config::default();
    let mut targets = Vec::new();
    let mut uses_newest = false;
    for (on_syn, rule) in [(true, &p.on_syn), (false, &p.on_migrate)] {
        let (id, pick) = match rule {
            RulePlan::Pass => (RULE_PASS, 0),
            RulePlan::Drop => (RULE_DROP, 0),
            RulePlan::Pick(w) => (RULE_PICK, w.0 as u32),
            RulePlan::NewestGeneration => {
                uses_newest = true;
                (RULE_NEWEST_GENERATION, 0)
            }
            RulePlan::LeastLoaded => {
                return Err(RunError::Unsupported(format!(
                    "policy `{}`: rule least_loaded needs the accept-queue lengths published into the program's `loads` map during the run, which the kernel backend does not do",
                    p.name
                )))
            }
            RulePlan::Map {
                targets: t,
                missing_drop,
            } => {
                config.missing_drop = u32::from(*missing_drop);
                targets.clone_from(t);
                (RULE_MAP_BY_CLOSING_LISTENER, 0)
            }
        };
        if on_syn {
            config.syn_rule = id;
            config.syn_pick_slot = pick;
        } else {
            config.migrate_rule = id;
            config.migrate_pick_slot = pick;
        }
    }
    let server: ServerIx = plan.workers[p.via.index()].server;
    let members = (0..plan.workers.len())
        .filter(|&w| plan.workers[w].server == server)
        .collect();
    let cookie = |w: WorkerIx| MapDatum::ListenerCookie(w.index());
    let mut initial_entries = vec![config_entry(&config)];
    initial_entries.extend(targets.iter().map(|&(closing, target)| MapEntry {
        map: "targets".into(),
        key: cookie(closing),
        value: MapDatum::U32(target.0.into()),
    }));
    initial_entries.extend(p.cancel_for.iter().map(|&w| MapEntry {
        map: "cancel".into(),
        key: cookie(w),
        value: MapDatum::U32(1),
    }));
    let (program, attach) = match p.kind {
        PolicyKind::Select => ("select_policy", ReuseportAttach::Select),
        PolicyKind::SelectOrMigrate => ("migrate_policy", ReuseportAttach::SelectOrMigrate),
    };
    Ok(Tracker {
        spec: PolicySpec {
            name: p.name.clone(),
            object: BpfObject::Bytes(POLICY_OBJECT.into()),
            program: program.into(),
            attach,
            initial_entries,
            // The plan's timeline holds every attach, `attach_at` included.
            attach_at: None,
            via: p.via.index(),
        },
        config,
        members,
        generations: plan.workers.iter().map(|w| w.generation).collect(),
        listening: BTreeSet::new(),
        inserted: BTreeSet::new(),
        holds: (0..plan.workers.len()).map(Some).collect(),
        uses_newest,
        newest: Vec::new(),
    })
}

fn config_entry(config: &Config) -> MapEntry {
    MapEntry {
        map: "config".into(),
        key: MapDatum::U32(0),
        value: MapDatum::Bytes(config.bytes()),
    }
}

impl Tracker {
    /// Follows `prim` and appends the updates of policy `me`'s maps.
    fn after(&mut self, me: usize, prim: &Prim, out: &mut Vec<Action>) {
        let stopped = |t: &mut Tracker, w: WorkerIx| {
            if let Some(l) = t.holds[w.index()] {
                t.listening.remove(&l);
            }
        };
        match prim {
            Prim::Listen(w) if self.members.contains(&w.index()) => {
                self.listening.insert(w.index());
                if !self.inserted.insert(w.index()) {
                    // A re-listen: not put back into `socks` (see above).
                    if self.uses_newest {
                        self.write_newest(me, out);
                    }
                    return;
                }
                out.push(Action::MapUpdate {
                    policy: me,
                    entry: MapEntry {
                        map: "socks".into(),
                        key: MapDatum::U32(w.0.into()),
                        value: MapDatum::ListenerFd(w.index()),
                    },
                    flags: 0,
                });
            }
            Prim::Shutdown(w) | Prim::Close(w) | Prim::Kill(w) => stopped(self, *w),
            Prim::Handover { from, to } => {
                self.holds[to.index()] = self.holds[from.index()].take();
            }
            _ => return,
        }
        if self.uses_newest {
            self.write_newest(me, out);
        }
    }

    /// Rewrites `newest` and `config.newest_len` if the newest generation's
    /// listening listeners changed.
    fn write_newest(&mut self, me: usize, out: &mut Vec<Action>) {
        let top = self.listening.iter().map(|&l| self.generations[l]).max();
        let newest: Vec<usize> = self
            .listening
            .iter()
            .copied()
            .filter(|&l| Some(self.generations[l]) == top)
            .collect();
        if newest == self.newest {
            return;
        }
        for (i, &slot) in newest.iter().enumerate() {
            out.push(Action::MapUpdate {
                policy: me,
                entry: MapEntry {
                    map: "newest".into(),
                    key: MapDatum::U32(i as u32),
                    value: MapDatum::U32(slot as u32),
                },
                flags: 0,
            });
        }
        self.config.newest_len = newest.len() as u32;
        out.push(Action::MapUpdate {
            policy: me,
            entry: config_entry(&self.config),
            flags: 0,
        });
        self.newest = newest;
    }
}
