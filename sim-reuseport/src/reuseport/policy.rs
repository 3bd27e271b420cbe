//! Declarative migration policies standing in for `SK_REUSEPORT` eBPF
//! programs (§2.7): `select` (selection only) and `select_or_migrate`.

use serde::{Deserialize, Serialize};
use sim_tcp::{reciprocal_scale, Listener, ListenerId, MigratingSock};
use std::collections::BTreeMap;

/// `expected_attach_type` of the program.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// `BPF_SK_REUSEPORT_SELECT` (or classic BPF): selection only; not migration-capable.
    Select,
    /// `BPF_SK_REUSEPORT_SELECT_OR_MIGRATE`: migration-capable.
    SelectOrMigrate,
}

impl PolicyKind {
    /// Whether a group with this policy is migration-capable (§5.7 step 2).
    pub fn migrate_capable(self) -> bool {
        self == PolicyKind::SelectOrMigrate
    }
}

/// What the program does for one kind of call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `SK_PASS` without selecting: the kernel falls back to the hash.
    Pass,
    /// `SK_DROP`.
    Drop,
    /// Select this listener through the socket array; if it is not there
    /// (it stopped), the selection fails and the program passes.
    Pick(ListenerId),
    /// Hash among the live members of the highest worker generation that are
    /// in the socket array.
    NewestGeneration,
    /// The live member in the socket array with the shortest accept queue
    /// (ties: the lowest `socks` index).
    LeastLoaded,
    /// The kernel selftest's program: look up the closing listener in a map;
    /// absent key → `missing`; else select the mapped listener through the
    /// socket array, passing if the entry is gone.
    MapByClosingListener {
        /// closing listener → target listener.
        targets: BTreeMap<ListenerId, ListenerId>,
        /// Decision when the closing listener is not in the map.
        missing_drop: bool,
    },
}

/// Where the program is called from (`migrating_sk` state and `len`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyContext {
    /// Listener selection (`migrating_sk == NULL`).
    Syn {
        /// `len > 0` beyond the header (always true for a real segment).
        has_payload: bool,
    },
    /// An `ESTABLISHED` child at close (`inet_csk_listen_stop`).
    CloseEstablished,
    /// A Fast Open `SYN_RECV` child at close.
    CloseSynRecv,
    /// A `NEW_SYN_RECV` request from the SYN-ACK timer (`len == 0`).
    SynackTimer,
    /// A `NEW_SYN_RECV` request at its final ACK (`len > 0`).
    FinalAck,
}

impl PolicyContext {
    pub(crate) fn from_migrating(m: MigratingSock) -> Self {
        match m {
            MigratingSock::Request { len: 0, .. } => PolicyContext::SynackTimer,
            MigratingSock::Request { .. } => PolicyContext::FinalAck,
            MigratingSock::Established { .. } => PolicyContext::CloseEstablished,
            MigratingSock::SynRecv { .. } => PolicyContext::CloseSynRecv,
        }
    }

    /// True for the migration contexts.
    pub fn is_migration(self) -> bool {
        !matches!(self, PolicyContext::Syn { .. })
    }

    /// Stable report name.
    pub fn name(self) -> &'static str {
        match self {
            PolicyContext::Syn { .. } => "syn",
            PolicyContext::CloseEstablished => "close_established",
            PolicyContext::CloseSynRecv => "close_syn_recv",
            PolicyContext::SynackTimer => "synack_timer",
            PolicyContext::FinalAck => "final_ack",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            PolicyContext::Syn { .. } => 0,
            PolicyContext::CloseEstablished => 1,
            PolicyContext::CloseSynRecv => 2,
            PolicyContext::SynackTimer => 3,
            PolicyContext::FinalAck => 4,
        }
    }

    const NAMES: [&'static str; 5] = [
        "syn",
        "close_established",
        "close_syn_recv",
        "synack_timer",
        "final_ack",
    ];
}

/// A program's return, as the kernel sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PolicyDecision {
    /// `bpf_sk_select_reuseport` succeeded: this live member.
    Pick(ListenerId),
    /// `SK_PASS` without a selection.
    Pass,
    /// `SK_DROP`.
    Drop,
}

/// Counts of decisions per call site, as a BPF program's own counters would
/// see them (a pick is counted only when the selection succeeded).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DecisionCounts {
    /// Successful picks.
    pub picks: u64,
    /// Passes (including a failed selection followed by a pass).
    pub passes: u64,
    /// Drops.
    pub drops: u64,
}

/// Per-context decision counts of one policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyStats {
    counts: [DecisionCounts; 5],
}

impl PolicyStats {
    /// Counts one decision at call site `ctx`.
    pub(crate) fn count(&mut self, ctx: PolicyContext, decision: PolicyDecision) {
        let c = &mut self.counts[ctx.index()];
        match decision {
            PolicyDecision::Pick(_) => c.picks += 1,
            PolicyDecision::Pass => c.passes += 1,
            PolicyDecision::Drop => c.drops += 1,
        }
    }

    /// The counts for a context name ("syn", "close_established", ...).
    pub fn get(&self, ctx: &str) -> Option<&DecisionCounts> {
        PolicyContext::NAMES
            .iter()
            .position(|&n| n == ctx)
            .map(|i| &self.counts[i])
    }

    /// `(context name, counts)` in a stable order.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, &DecisionCounts)> {
        PolicyContext::NAMES.iter().copied().zip(self.counts.iter())
    }
}

/// A policy: one program with its maps.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Name from the scenario.
    pub name: String,
    /// Attach type.
    pub kind: PolicyKind,
    /// Rule for listener selection.
    pub on_syn: Rule,
    /// Rule for migrations (ignored for `Select`).
    pub on_migrate: Rule,
    /// Migrations away from these listeners are dropped (checked first).
    pub cancel_for: Vec<ListenerId>,
    /// `REUSEPORT_SOCKARRAY`: listeners the program can select. Entries are
    /// removed when a listener stops and are not re-added on re-listen.
    pub sockarray: Vec<ListenerId>,
    /// Whether the policy is attached to a group now.
    pub attached: bool,
    /// Decisions so far.
    pub stats: PolicyStats,
    /// A real eBPF program, run instead of the rules.
    pub bpf: Option<Box<crate::reuseport::bpf::BpfPolicy>>,
}

impl Policy {
    /// A detached policy with an empty socket array.
    pub fn new(
        name: &str,
        kind: PolicyKind,
        on_syn: Rule,
        on_migrate: Rule,
        cancel_for: Vec<ListenerId>,
    ) -> Self {
        Policy {
            name: name.to_string(),
            kind,
            on_syn,
            on_migrate,
            cancel_for,
            sockarray: Vec::new(),
            attached: false,
            stats: PolicyStats::default(),
            bpf: None,
        }
    }

    pub(crate) fn sockarray_insert(&mut self, l: ListenerId) {
        if !self.sockarray.contains(&l) {
            self.sockarray.push(l);
        }
    }

    pub(crate) fn sockarray_remove(&mut self, l: ListenerId) {
        self.sockarray.retain(|&x| x != l);
    }

    fn selectable(&self, live: &[(ListenerId, u32)], l: ListenerId) -> bool {
        self.sockarray.contains(&l) && live.iter().any(|&(x, _)| x == l)
    }

    /// Runs the program. `live` is the group's live section with each
    /// member's generation; `closing` the closed listener on migration.
    pub fn decide(
        &mut self,
        listeners: &[Listener],
        live: &[(ListenerId, u32)],
        ctx: PolicyContext,
        closing: Option<ListenerId>,
        hash: u32,
    ) -> PolicyDecision {
        let rule = if ctx.is_migration() {
            &self.on_migrate
        } else {
            &self.on_syn
        };
        let decision =
            if ctx.is_migration() && closing.is_some_and(|c| self.cancel_for.contains(&c)) {
                PolicyDecision::Drop
            } else {
                match rule {
                    Rule::Pass => PolicyDecision::Pass,
                    Rule::Drop => PolicyDecision::Drop,
                    Rule::Pick(l) => {
                        if self.selectable(live, *l) {
                            PolicyDecision::Pick(*l)
                        } else {
                            PolicyDecision::Pass
                        }
                    }
                    Rule::NewestGeneration => {
                        // In socket-array order: the slots user space wrote,
                        // all a real program can see (it has no view of the
                        // group's own order, which swap-removes reshuffle).
                        let candidates: Vec<(ListenerId, u32)> = self
                            .sockarray
                            .iter()
                            .filter_map(|&l| live.iter().find(|&&(x, _)| x == l).copied())
                            .collect();
                        match candidates.iter().map(|&(_, g)| g).max() {
                            None => PolicyDecision::Pass,
                            Some(newest) => {
                                let newest: Vec<ListenerId> = candidates
                                    .iter()
                                    .filter(|&&(_, g)| g == newest)
                                    .map(|&(l, _)| l)
                                    .collect();
                                PolicyDecision::Pick(
                                    newest[reciprocal_scale(hash, newest.len() as u32) as usize],
                                )
                            }
                        }
                    }
                    // Ties go to the first slot, as in `policy.c`.
                    Rule::LeastLoaded => self
                        .sockarray
                        .iter()
                        .filter(|&&l| live.iter().any(|&(x, _)| x == l))
                        .min_by_key(|&&l| listeners[l.index()].ack_backlog())
                        .map_or(PolicyDecision::Pass, |&l| PolicyDecision::Pick(l)),
                    Rule::MapByClosingListener {
                        targets,
                        missing_drop,
                    } => match closing.and_then(|c| targets.get(&c)) {
                        None if *missing_drop => PolicyDecision::Drop,
                        None => PolicyDecision::Pass,
                        Some(&t) if self.selectable(live, t) => PolicyDecision::Pick(t),
                        Some(_) => PolicyDecision::Pass,
                    },
                }
            };
        self.stats.count(ctx, decision);
        decision
    }
}
