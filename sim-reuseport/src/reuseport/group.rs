//! Reuseport groups (`struct sock_reuseport`, `net/core/sock_reuseport.c`),
//! the listener table, selection (§4.2) and migration targets (§4.3).

use super::incoming_cpu;
use crate::policy::{Policy, PolicyContext, PolicyDecision, PolicyStats};
use crate::reuseport::bpf::{BpfReport, Call, GroupCtx};
use serde::Serialize;
use sim_core::{FourTuple, SimTime};
use sim_tcp::{
    reciprocal_scale, Listener, ListenerId, MigrateFailure, MigrateOutcome, MigratingSock,
    ReuseportHooks, Selection, TCP_SYNCOOKIE_VALID,
};
use std::net::{IpAddr, SocketAddr};

/// `HZ` as used by `tcp_synq_overflow` (one second of jiffies).
const SYNQ_OVERFLOW_HZ: sim_core::SimDuration = sim_core::SimDuration::from_secs(1);

/// `INIT_SOCKS`: initial size of a group's `socks` array.
pub const INIT_SOCKS: usize = 128;
/// Upper bound of `max_socks` (`U16_MAX`).
pub const MAX_SOCKS_LIMIT: usize = 65_535;

/// A reuseport group id (index into [`ReuseportTable::groups`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GroupId(pub u32);

/// `struct sock_reuseport` (§2.3).
#[derive(Clone, Debug)]
pub struct Group {
    /// Group identity: the exact bound address and port.
    pub local: SocketAddr,
    /// `socks[0..max_socks)`; live section `[0, num_socks)`, closed section
    /// `[max_socks - num_closed_socks, max_socks)`.
    pub socks: Vec<Option<ListenerId>>,
    /// `num_socks`.
    pub num_socks: usize,
    /// `num_closed_socks`.
    pub num_closed_socks: usize,
    /// The attached policy, if any (§2.7).
    pub policy: Option<usize>,
    /// `synq_overflow_ts`.
    pub synq_overflow_ts: Option<SimTime>,
    /// False once `num_socks + num_closed_socks` reached 0 (the group is freed).
    pub alive: bool,
}

impl Group {
    fn new(local: SocketAddr) -> Self {
        Group {
            local,
            socks: vec![None; INIT_SOCKS],
            num_socks: 0,
            num_closed_socks: 0,
            policy: None,
            synq_overflow_ts: None,
            alive: true,
        }
    }

    /// `max_socks`.
    pub fn max_socks(&self) -> usize {
        self.socks.len()
    }

    /// The live section.
    pub fn live(&self) -> impl Iterator<Item = ListenerId> + '_ {
        self.socks[..self.num_socks]
            .iter()
            .map(|s| s.expect("live slot"))
    }

    /// The closed section, top first.
    pub fn closed(&self) -> impl Iterator<Item = ListenerId> + '_ {
        let max = self.max_socks();
        self.socks[max - self.num_closed_socks..]
            .iter()
            .rev()
            .map(|s| s.expect("closed slot"))
    }

    /// `reuseport_grow`: double `socks` when full, live entries at the
    /// front and closed entries at the end. Returns false at the limit.
    fn grow_if_full(&mut self) -> bool {
        let max = self.max_socks();
        if self.num_socks + self.num_closed_socks < max {
            return true;
        }
        let new_max = (max * 2).min(MAX_SOCKS_LIMIT);
        if new_max == max {
            return false;
        }
        let mut socks = vec![None; new_max];
        socks[..self.num_socks].copy_from_slice(&self.socks[..self.num_socks]);
        socks[new_max - self.num_closed_socks..]
            .copy_from_slice(&self.socks[max - self.num_closed_socks..]);
        self.socks = socks;
        true
    }

    fn add_live(&mut self, l: ListenerId) {
        assert!(
            self.grow_if_full(),
            "reuseport group full ({MAX_SOCKS_LIMIT} sockets)"
        );
        self.socks[self.num_socks] = Some(l);
        self.num_socks += 1;
    }

    fn add_closed(&mut self, l: ListenerId) {
        assert!(
            self.grow_if_full(),
            "reuseport group full ({MAX_SOCKS_LIMIT} sockets)"
        );
        let max = self.max_socks();
        self.socks[max - self.num_closed_socks - 1] = Some(l);
        self.num_closed_socks += 1;
    }

    /// `__reuseport_detach_sock`: swap-remove from the live section.
    fn detach_live(&mut self, l: ListenerId) -> bool {
        let Some(i) = self.socks[..self.num_socks]
            .iter()
            .position(|&s| s == Some(l))
        else {
            return false;
        };
        self.num_socks -= 1;
        self.socks[i] = self.socks[self.num_socks];
        self.socks[self.num_socks] = None;
        true
    }

    /// `__reuseport_detach_closed_sock`: the gap is filled with the lowest
    /// closed entry.
    fn detach_closed(&mut self, l: ListenerId) -> bool {
        let max = self.max_socks();
        let lo = max - self.num_closed_socks;
        let Some(i) = self.socks[lo..].iter().position(|&s| s == Some(l)) else {
            return false;
        };
        self.socks[lo + i] = self.socks[lo];
        self.socks[lo] = None;
        self.num_closed_socks -= 1;
        true
    }

    fn is_empty(&self) -> bool {
        self.num_socks + self.num_closed_socks == 0
    }

    /// `reuseport_select_sock_by_hash` (§4.2): `socks[reciprocal_scale(h, n)]`.
    pub fn select_by_hash(&self, hash: u32) -> Option<ListenerId> {
        if self.num_socks == 0 {
            return None;
        }
        self.socks[reciprocal_scale(hash, self.num_socks as u32) as usize]
    }
}

/// Per-listener data the reuseport layer keeps.
#[derive(Clone, Debug, Default)]
struct Member {
    group: Option<GroupId>,
    /// Worker generation, for policies that steer to the newest workers.
    generation: u32,
    /// `sk_incoming_cpu` as set by `SO_INCOMING_CPU` (`None` = -1).
    incoming_cpu: Option<u16>,
}

/// All reuseport groups of one network namespace, the listener table (the
/// hashed listeners, in insertion order) and the attached policies.
#[derive(Clone, Debug, Default)]
pub struct ReuseportTable {
    /// Every group ever created (freed groups stay, `alive = false`).
    pub groups: Vec<Group>,
    members: Vec<Member>,
    hashed: Vec<ListenerId>,
    /// Policies known to this namespace (attached or not).
    pub policies: Vec<Policy>,
    /// `synq_overflow_ts` of listeners without a group.
    lone_overflow: Vec<Option<SimTime>>,
    /// The first hashed listener bound to each exact address (lookup index
    /// over `hashed`, rebuilt for an address when its listeners change).
    exact: rustc_hash::FxHashMap<SocketAddr, ListenerId>,
    /// Scratch buffer for a policy's view of the live section.
    scratch: Vec<(ListenerId, u32)>,
    /// The virtual clock, for `bpf` policies (`bpf_ktime_get_ns`): the
    /// backend sets it before each call into the stack.
    now: SimTime,
    /// The first runtime fault of a `bpf` policy: the run stops with it.
    fault: Option<String>,
    /// The host's CPU count (RSS spreads flows over them); 0 = one CPU.
    cpus: u16,
    /// Whether any listener set `SO_INCOMING_CPU` (the fast path skips
    /// counting a group's `incoming_cpu` when none did).
    any_incoming_cpu: bool,
}

fn family_compatible(listener: IpAddr, packet_local: IpAddr, v6only: bool) -> bool {
    match (listener, packet_local) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => true,
        (IpAddr::V6(_), IpAddr::V4(_)) => !v6only,
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

impl ReuseportTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn member(&mut self, l: ListenerId) -> &mut Member {
        if self.members.len() <= l.index() {
            self.members.resize(l.index() + 1, Member::default());
        }
        &mut self.members[l.index()]
    }

    /// The group of listener `l` (live or closed section), if any.
    pub fn group_of(&self, l: ListenerId) -> Option<GroupId> {
        self.members.get(l.index()).and_then(|m| m.group)
    }

    /// A group by id.
    pub fn group(&self, g: GroupId) -> &Group {
        &self.groups[g.0 as usize]
    }

    /// Sets the worker generation of `l` (used by `newest_generation` policies).
    pub fn set_generation(&mut self, l: ListenerId, generation: u32) {
        self.member(l).generation = generation;
    }

    /// Sets the host's CPU count (the packet's CPU is `rss_cpu(hash, cpus)`).
    pub fn set_cpus(&mut self, cpus: u16) {
        self.cpus = cpus;
    }

    /// `setsockopt(SO_INCOMING_CPU)` on `l` (before it joins a group here,
    /// so `reuse->incoming_cpu` is counted from the members' values).
    pub fn set_incoming_cpu(&mut self, l: ListenerId, cpu: Option<u16>) {
        self.any_incoming_cpu |= cpu.is_some();
        self.member(l).incoming_cpu = cpu;
    }

    /// `reuse->incoming_cpu`: members of both sections with the option set.
    fn incoming_cpu_count(&self, g: GroupId) -> usize {
        let group = &self.groups[g.0 as usize];
        let set = |l: &ListenerId| {
            self.members
                .get(l.index())
                .is_some_and(|m| m.incoming_cpu.is_some())
        };
        group.live().filter(set).count() + group.closed().filter(set).count()
    }

    /// `reuseport_select_sock_by_hash` (§4.2, exact form with
    /// `SO_INCOMING_CPU`): the packet's CPU is the flow's RSS CPU.
    fn select_sock_by_hash(&self, g: GroupId, hash: u32) -> Option<ListenerId> {
        let group = &self.groups[g.0 as usize];
        if !self.any_incoming_cpu {
            return group.select_by_hash(hash);
        }
        incoming_cpu::select_sock_by_hash(
            &group.socks[..group.num_socks],
            hash,
            self.incoming_cpu_count(g),
            incoming_cpu::rss_cpu(hash, self.cpus),
            |l| self.members.get(l.index()).and_then(|m| m.incoming_cpu),
        )
    }

    /// Registers a policy; returns its index.
    pub fn add_policy(&mut self, policy: Policy) -> usize {
        self.policies.push(policy);
        self.policies.len() - 1
    }

    /// `reuseport_attach_prog` through listener `via` (§2.7, §5.9). A bound
    /// socket without a group gets one now (`reuseport_alloc`). The policy's
    /// socket array is filled with the group's live members.
    pub fn attach_policy(&mut self, via: ListenerId, local: SocketAddr, policy: usize) {
        // Through a shut-down member (in its group's closed section):
        // `reuseport_alloc` → `reuseport_resurrect(sk, reuse, NULL)` moves the
        // socket into a fresh group, and the policy goes there; the old
        // group is untouched.
        if let Some(old) = self.group_of(via) {
            if self.groups[old.0 as usize].closed().any(|l| l == via) {
                self.groups[old.0 as usize].detach_closed(via);
                self.member(via).group = None;
                self.free_if_empty(old);
            }
        }
        let g = match self.group_of(via) {
            Some(g) => g,
            None => {
                let g = self.new_group(local);
                self.groups[g.0 as usize].add_live(via);
                self.member(via).group = Some(g);
                g
            }
        };
        let group = &mut self.groups[g.0 as usize];
        if let Some(old) = group.policy {
            self.policies[old].attached = false;
        }
        group.policy = Some(policy);
        let live: Vec<ListenerId> = group.live().collect();
        let p = &mut self.policies[policy];
        p.attached = true;
        for l in live {
            p.sockarray_insert(l);
        }
    }

    /// Detaches the policy of `via`'s group (`reuseport_detach_prog`). Refused
    /// through an unhashed socket whose group has closed members, such as a
    /// shut-down member (§5.9): returns false then.
    pub fn detach_policy(&mut self, via: ListenerId, via_listening: bool) -> bool {
        let Some(g) = self.group_of(via) else {
            return false;
        };
        if !via_listening && self.groups[g.0 as usize].num_closed_socks > 0 {
            return false;
        }
        if let Some(p) = self.groups[g.0 as usize].policy.take() {
            self.policies[p].attached = false;
        }
        true
    }

    /// The decisions of each policy so far.
    pub fn policy_stats(&self) -> Vec<(&str, &PolicyStats)> {
        self.policies
            .iter()
            .map(|p| (p.name.as_str(), &p.stats))
            .collect()
    }

    fn new_group(&mut self, local: SocketAddr) -> GroupId {
        self.groups.push(Group::new(local));
        GroupId(self.groups.len() as u32 - 1)
    }

    fn free_if_empty(&mut self, g: GroupId) {
        let group = &mut self.groups[g.0 as usize];
        if group.is_empty() && group.alive {
            group.alive = false;
            if let Some(p) = group.policy.take() {
                self.policies[p].attached = false;
            }
        }
    }

    fn reindex(&mut self, listeners: &[Listener], local: SocketAddr) {
        match self
            .hashed
            .iter()
            .copied()
            .find(|&o| listeners[o.index()].local == local)
        {
            Some(first) => {
                self.exact.insert(local, first);
            }
            None => {
                self.exact.remove(&local);
            }
        }
    }

    fn find_hashed_match(&self, listeners: &[Listener], l: ListenerId) -> Option<ListenerId> {
        // Group identity (§2.3): exact address and port, and IPV6_V6ONLY.
        let me = &listeners[l.index()];
        self.hashed.iter().copied().find(|&o| {
            let other = &listeners[o.index()];
            let v6only = |x: &Listener| x.local.is_ipv6() && x.options.v6only;
            o != l && other.local == me.local && v6only(other) == v6only(me)
        })
    }

    fn policy_of(&self, g: GroupId) -> Option<usize> {
        self.groups[g.0 as usize].policy
    }

    #[allow(clippy::too_many_arguments)]
    fn run_policy(
        &mut self,
        listeners: &[Listener],
        g: GroupId,
        ctx: PolicyContext,
        sk: ListenerId,
        closing: Option<ListenerId>,
        hash: u32,
        call: Call<'_>,
    ) -> Option<PolicyDecision> {
        let p = self.policy_of(g)?;
        let group = &self.groups[g.0 as usize];
        let policy = &mut self.policies[p];
        if ctx.is_migration() && !policy.kind.migrate_capable() {
            return None;
        }
        if let Some(bpf) = policy.bpf.as_deref_mut() {
            let members = &self.members;
            let groups = |l: ListenerId| members.get(l.index()).and_then(|m| m.group.map(|g| g.0));
            let gcx = GroupCtx {
                reuseport_id: g.0,
                bind_inany: group.local.ip().is_unspecified(),
            };
            let decision = match bpf.run(self.now, listeners, &groups, sk, gcx, hash, call) {
                Ok(d) => d,
                Err(e) => {
                    // Never a verdict: the run stops (the backend reads it).
                    self.fault
                        .get_or_insert(format!("policy {:?}: {e}", policy.name));
                    PolicyDecision::Pass
                }
            };
            policy.stats.count(ctx, decision);
            return Some(decision);
        }
        // Reused buffer: a policy runs for every SYN.
        self.scratch.clear();
        self.scratch.extend(
            group
                .live()
                .map(|l| (l, self.members.get(l.index()).map_or(0, |m| m.generation))),
        );
        Some(policy.decide(listeners, &self.scratch, ctx, closing, hash))
    }

    /// Sets the virtual clock `bpf` policies read.
    #[inline]
    pub fn set_now(&mut self, now: SimTime) {
        self.now = now;
    }

    /// The first runtime fault of a `bpf` policy, if one happened (taken).
    #[inline]
    pub fn take_fault(&mut self) -> Option<String> {
        self.fault.take()
    }

    /// Whether a `bpf` policy has `bpf_trace_printk` lines waiting.
    pub fn has_bpf_trace(&self) -> bool {
        self.policies
            .iter()
            .any(|p| p.bpf.as_ref().is_some_and(|b| b.has_trace()))
    }

    /// The waiting `bpf_trace_printk` lines of every `bpf` policy.
    pub fn take_bpf_trace(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        for p in &mut self.policies {
            if let Some(b) = p.bpf.as_deref_mut() {
                lines.extend(b.take_trace());
            }
        }
        lines
    }

    /// A user-space map update (`value` given) or delete on policy `p`'s
    /// object (`bpf()` syscall). Key and value bytes are final.
    pub fn bpf_map_write(
        &mut self,
        listeners: &[Listener],
        p: usize,
        map: sim_bpf::MapId,
        key: &[u8],
        value: Option<&[u8]>,
        flags: u64,
    ) -> Result<(), sim_bpf::Errno> {
        let members = &self.members;
        let groups = |l: ListenerId| members.get(l.index()).and_then(|m| m.group.map(|g| g.0));
        let bpf = self.policies[p]
            .bpf
            .as_deref_mut()
            .expect("lowering checked: a bpf policy");
        bpf.map_write(self.now, listeners, &groups, map, key, value, flags)
    }

    /// The socket cookie of listener `l` as policy `p`'s host sees it.
    pub fn bpf_cookie(&mut self, p: usize, l: ListenerId) -> u64 {
        self.policies[p]
            .bpf
            .as_deref_mut()
            .expect("lowering checked: a bpf policy")
            .cookie(l)
    }

    /// The report of policy `p`'s program, if it is a `bpf` policy.
    pub fn bpf_report(&mut self, listeners: &[Listener], p: usize) -> Option<BpfReport> {
        let members = &self.members;
        let groups = |l: ListenerId| members.get(l.index()).and_then(|m| m.group.map(|g| g.0));
        let bpf = self.policies[p].bpf.as_deref_mut()?;
        Some(bpf.report(listeners, &groups))
    }
}

impl ReuseportHooks for ReuseportTable {
    fn on_listen(&mut self, listeners: &[Listener], id: ListenerId, resurrect: bool) {
        let old = self.group_of(id);
        let anchor_group = self
            .find_hashed_match(listeners, id)
            .and_then(|a| self.group_of(a));
        let local = listeners[id.index()].local;
        // The group mechanics follow where the socket sits; `resurrect` (it
        // listened before and was shut down) only decides whether user space
        // puts it back into a policy's socket array: it does not (§5.9).
        let in_closed = old.is_some_and(|g| self.groups[g.0 as usize].closed().any(|l| l == id));
        let g = match old {
            // Already a live member of its own group: a group made by
            // attaching a policy to the unhashed socket (`reuseport_alloc`).
            Some(g) if !in_closed => match anchor_group.filter(|&ga| ga != g) {
                // `reuseport_add_sock`: a matching listener is hashed, so the
                // socket moves into its group and its own one-socket group
                // (with the policy attached to it) is freed.
                Some(ga) => {
                    self.groups[g.0 as usize].detach_live(id);
                    self.member(id).group = None;
                    self.free_if_empty(g);
                    self.groups[ga.0 as usize].add_live(id);
                    ga
                }
                None => {
                    if !self.groups[g.0 as usize].live().any(|l| l == id) {
                        self.groups[g.0 as usize].add_live(id);
                    }
                    g
                }
            },
            // `reuseport_resurrect` (§5.9) from the closed section, or
            // `inet_reuseport_add_sock` (§5.1) for a socket without a group.
            _ => {
                if let Some(g) = old {
                    self.groups[g.0 as usize].detach_closed(id);
                    self.member(id).group = None;
                    self.free_if_empty(g);
                }
                let g = match anchor_group {
                    Some(g) => g,
                    None => self.new_group(local),
                };
                self.groups[g.0 as usize].add_live(id);
                g
            }
        };
        self.member(id).group = Some(g);
        // A worker started after the policy was attached: user space inserts
        // it into the policy's socket array.
        if !resurrect {
            if let Some(p) = self.groups[g.0 as usize].policy {
                self.policies[p].sockarray_insert(id);
            }
        }
        self.hashed.push(id);
        self.reindex(listeners, local);
    }

    fn on_stop_listen(&mut self, listeners: &[Listener], id: ListenerId, migrate_req: bool) {
        if let Some(pos) = self.hashed.iter().position(|&l| l == id) {
            self.hashed.remove(pos);
            self.reindex(listeners, listeners[id.index()].local);
        }
        let Some(g) = self.group_of(id) else {
            return;
        };
        // bpf_sk_reuseport_detach: the socket leaves every policy map.
        for p in &mut self.policies {
            p.sockarray_remove(id);
            if let Some(b) = p.bpf.as_deref_mut() {
                b.remove_socket(id);
            }
        }
        let capable = migrate_req
            || self
                .policy_of(g)
                .is_some_and(|p| self.policies[p].kind.migrate_capable());
        let group = &mut self.groups[g.0 as usize];
        group.detach_live(id);
        if capable {
            group.add_closed(id);
        } else {
            self.member(id).group = None;
            self.free_if_empty(g);
        }
    }

    fn on_destroy(&mut self, id: ListenerId) {
        let Some(g) = self.group_of(id) else {
            return;
        };
        let group = &mut self.groups[g.0 as usize];
        if !group.detach_closed(id) {
            group.detach_live(id);
        }
        self.member(id).group = None;
        self.free_if_empty(g);
    }

    fn select(
        &mut self,
        listeners: &[Listener],
        tuple: &FourTuple,
        hash: u32,
        has_payload: bool,
    ) -> Selection {
        let port = tuple.local.port();
        let ip = tuple.local.ip();
        // inet_lhash2_lookup for the exact address first, then the wildcard.
        let exact = self.exact.get(&tuple.local).copied();
        // Wildcards: `compute_score` prefers a listener of the packet's own
        // family over a dual-stack IPv6 one.
        let wildcard = |same_family_only: bool| {
            self.hashed.iter().copied().find(|&l| {
                let lst = &listeners[l.index()];
                lst.local.port() == port
                    && lst.local.ip().is_unspecified()
                    && if same_family_only {
                        lst.local.is_ipv4() == ip.is_ipv4()
                    } else {
                        family_compatible(lst.local.ip(), ip, lst.options.v6only)
                    }
            })
        };
        let best = exact.or_else(|| wildcard(true)).or_else(|| wildcard(false));
        let Some(best) = best else {
            return Selection::NoListener;
        };
        let Some(g) = self.group_of(best) else {
            return Selection::Listener(best);
        };
        if self.groups[g.0 as usize].num_socks == 0 {
            return Selection::NoListener;
        }
        let ctx = PolicyContext::Syn { has_payload };
        let call = Call::Select { tuple };
        match self.run_policy(listeners, g, ctx, best, None, hash, call) {
            Some(PolicyDecision::Pick(l)) => return Selection::Listener(l),
            Some(PolicyDecision::Drop) => return Selection::PolicyDrop,
            Some(PolicyDecision::Pass) | None => {}
        }
        match self.select_sock_by_hash(g, hash) {
            Some(l) => Selection::Listener(l),
            None => Selection::NoListener,
        }
    }

    fn migrate_target(
        &mut self,
        listeners: &[Listener],
        closed: ListenerId,
        migrating: MigratingSock,
        migrate_req: bool,
    ) -> MigrateOutcome {
        let Some(g) = self.group_of(closed) else {
            return MigrateOutcome::Detached;
        };
        if self.groups[g.0 as usize].num_socks == 0 {
            return MigrateOutcome::Fail(MigrateFailure::NoLiveMember);
        }
        let hash = migrating.hash();
        // `reuseport_migrate_sock` scales with `raw_smp_processor_id()` too:
        // the model takes the flow's RSS CPU, where its packets and its
        // request timer run (the close path runs on the closing process's
        // CPU, not modelled).
        let ctx = PolicyContext::from_migrating(migrating);
        let call = Call::Migrate { migrating };
        let target = match self.run_policy(listeners, g, ctx, closed, Some(closed), hash, call) {
            Some(PolicyDecision::Pick(l)) => l,
            Some(PolicyDecision::Drop) => return MigrateOutcome::Fail(MigrateFailure::PolicyDrop),
            // PassNoPick falls back to hash regardless of the sysctl.
            Some(PolicyDecision::Pass) => self.select_sock_by_hash(g, hash).expect("live member"),
            None if migrate_req => self.select_sock_by_hash(g, hash).expect("live member"),
            None => return MigrateOutcome::Fail(MigrateFailure::SysctlOff),
        };
        MigrateOutcome::Target(target)
    }

    fn note_synq_overflow(&mut self, id: ListenerId, now: SimTime) {
        // `tcp_synq_overflow`: refreshed at most once per second
        // (`!time_between32(now, last, last + HZ)`).
        let slot = match self.group_of(id) {
            Some(g) => &mut self.groups[g.0 as usize].synq_overflow_ts,
            None => {
                if self.lone_overflow.len() <= id.index() {
                    self.lone_overflow.resize(id.index() + 1, None);
                }
                &mut self.lone_overflow[id.index()]
            }
        };
        let within_a_second =
            slot.is_some_and(|last| now >= last && now <= last + SYNQ_OVERFLOW_HZ);
        if !within_a_second {
            *slot = Some(now);
        }
    }

    fn synq_overflow_recent(&self, id: ListenerId, now: SimTime) -> bool {
        let ts = match self.group_of(id) {
            Some(g) => self.groups[g.0 as usize].synq_overflow_ts,
            None => self.lone_overflow.get(id.index()).copied().flatten(),
        };
        // `!tcp_synq_no_recent_overflow`: `time_between32(now, last - HZ,
        // last + TCP_SYNCOOKIE_VALID)`, inclusive.
        ts.is_some_and(|t| {
            now.as_nanos() + SYNQ_OVERFLOW_HZ.as_nanos() >= t.as_nanos()
                && now <= t + TCP_SYNCOOKIE_VALID
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyKind, Rule};
    use sim_tcp::{ListenerOptions, ListenerState};

    fn listeners(n: usize) -> Vec<Listener> {
        (0..n)
            .map(|i| {
                let mut l = Listener::new(
                    ListenerId(i as u32),
                    "10.0.0.1:443".parse().unwrap(),
                    ListenerOptions::default(),
                );
                l.state = ListenerState::Listen;
                l
            })
            .collect()
    }

    fn ids(v: impl Iterator<Item = ListenerId>) -> Vec<u32> {
        v.map(|l| l.0).collect()
    }

    /// Registers a `select_or_migrate` policy named "p" (not attached).
    fn migrate_policy(t: &mut ReuseportTable, on_syn: Rule, on_migrate: Rule) -> usize {
        t.add_policy(Policy::new(
            "p",
            PolicyKind::SelectOrMigrate,
            on_syn,
            on_migrate,
            vec![],
        ))
    }

    fn listen_all(t: &mut ReuseportTable, ls: &[Listener], n: usize) {
        for i in 0..n {
            t.on_listen(ls, ListenerId(i as u32), false);
        }
    }

    #[test]
    fn listeners_join_the_group_of_a_hashed_listener_in_join_order_5_1() {
        let ls = listeners(4);
        let mut t = ReuseportTable::new();
        listen_all(&mut t, &ls, 4);
        let g = t.group_of(ListenerId(0)).unwrap();
        assert!((0..4).all(|i| t.group_of(ListenerId(i)) == Some(g)));
        assert_eq!(ids(t.group(g).live()), vec![0, 1, 2, 3]);
        assert_eq!(t.group(g).max_socks(), INIT_SOCKS);
    }

    #[test]
    fn stop_swap_removes_from_live_and_fills_closed_section_downward_2_3() {
        let ls = listeners(5);
        let mut t = ReuseportTable::new();
        listen_all(&mut t, &ls, 5);
        let g = t.group_of(ListenerId(0)).unwrap();
        t.on_stop_listen(&ls, ListenerId(1), true);
        // The last live entry moves into the hole.
        assert_eq!(ids(t.group(g).live()), vec![0, 4, 2, 3]);
        t.on_stop_listen(&ls, ListenerId(0), true);
        assert_eq!(ids(t.group(g).live()), vec![3, 4, 2]);
        let grp = t.group(g);
        assert_eq!(grp.num_closed_socks, 2);
        assert_eq!(grp.socks[INIT_SOCKS - 1], Some(ListenerId(1)));
        assert_eq!(grp.socks[INIT_SOCKS - 2], Some(ListenerId(0)));
        // Destroying the top one fills the gap with the lowest closed entry.
        t.on_destroy(ListenerId(1));
        let grp = t.group(g);
        assert_eq!(grp.num_closed_socks, 1);
        assert_eq!(grp.socks[INIT_SOCKS - 1], Some(ListenerId(0)));
        assert_eq!(t.group_of(ListenerId(1)), None);
    }

    #[test]
    fn not_capable_listener_is_detached_and_an_empty_group_is_freed_6_1_6_3() {
        let ls = listeners(3);
        let mut t = ReuseportTable::new();
        listen_all(&mut t, &ls, 2);
        let g = t.group_of(ListenerId(0)).unwrap();
        t.on_stop_listen(&ls, ListenerId(0), false);
        assert_eq!(t.group_of(ListenerId(0)), None);
        t.on_stop_listen(&ls, ListenerId(1), true);
        assert!(t.group(g).alive, "a capable closed member keeps the group");
        assert_eq!(t.group(g).num_socks, 0);
        // A new listener cannot join through a closed member: new group (§6.3).
        t.on_listen(&ls, ListenerId(2), false);
        let g2 = t.group_of(ListenerId(2)).unwrap();
        assert_ne!(g, g2);
        // The stranded group's requests can never reach the new listener.
        let m = MigratingSock::Request {
            hash: 7,
            len: 0,
            tuple: flow(),
        };
        assert_eq!(
            t.migrate_target(&ls, ListenerId(1), m, true),
            MigrateOutcome::Fail(MigrateFailure::NoLiveMember)
        );
        t.on_destroy(ListenerId(1));
        assert!(!t.group(g).alive);
    }

    #[test]
    fn socks_array_grows_from_128_by_doubling_keeping_sections_2_3() {
        let ls = listeners(130);
        let mut t = ReuseportTable::new();
        listen_all(&mut t, &ls, 127);
        let g = t.group_of(ListenerId(0)).unwrap();
        t.on_stop_listen(&ls, ListenerId(0), true);
        t.on_listen(&ls, ListenerId(127), false);
        assert_eq!(t.group(g).max_socks(), 128);
        assert_eq!(t.group(g).num_socks + t.group(g).num_closed_socks, 128);
        t.on_listen(&ls, ListenerId(128), false);
        let grp = t.group(g);
        assert_eq!(grp.max_socks(), 256);
        assert_eq!(grp.num_socks, 128);
        assert_eq!(
            grp.socks[255],
            Some(ListenerId(0)),
            "closed entries move to the end"
        );
        assert_eq!(grp.socks[127], Some(ListenerId(128)));
    }

    #[test]
    fn select_by_hash_uses_reciprocal_scale_over_the_live_section_4_2() {
        let ls = listeners(4);
        let mut t = ReuseportTable::new();
        listen_all(&mut t, &ls, 4);
        let tuple = FourTuple {
            local: "10.0.0.1:443".parse().unwrap(),
            remote: "10.0.1.1:5000".parse().unwrap(),
        };
        for (hash, want) in [
            (0u32, 0u32),
            (u32::MAX, 3),
            (1 << 31, 2),
            ((1 << 30) - 1, 0),
        ] {
            assert_eq!(
                t.select(&ls, &tuple, hash, false),
                Selection::Listener(ListenerId(want))
            );
        }
        // After a swap-remove the same hash maps elsewhere.
        t.on_stop_listen(&ls, ListenerId(0), true);
        assert_eq!(
            t.select(&ls, &tuple, 0, false),
            Selection::Listener(ListenerId(3))
        );
        let other = FourTuple {
            local: "10.0.0.2:443".parse().unwrap(),
            ..tuple
        };
        assert_eq!(t.select(&ls, &other, 0, false), Selection::NoListener);
    }

    #[test]
    fn incoming_cpu_steers_selection_and_migration_to_the_flows_cpu_4_2() {
        // docs/linux-semantics/so-incoming-cpu.md, probe row "L0 unset,
        // L1=0, L2 unset": CPU-0 flows all go to L1; CPU-1 flows hash over
        // all three. Migration targets follow the same rule.
        let ls = listeners(3);
        let mut t = ReuseportTable::new();
        t.set_cpus(2);
        t.set_incoming_cpu(ListenerId(1), Some(0));
        listen_all(&mut t, &ls, 3);
        let g = t.group_of(ListenerId(0)).unwrap();
        assert_eq!(t.incoming_cpu_count(g), 1);
        let tuple = FourTuple {
            local: "10.0.0.1:443".parse().unwrap(),
            remote: "10.0.1.1:5000".parse().unwrap(),
        };
        let (mut cpu1, mut cpu1_l1) = (0, 0);
        for k in 0..256u32 {
            let hash = k.wrapping_mul(0x9E37_79B9);
            let Selection::Listener(l) = t.select(&ls, &tuple, hash, false) else {
                panic!("no listener");
            };
            if incoming_cpu::rss_cpu(hash, 2) == 0 {
                assert_eq!(l, ListenerId(1), "hash {hash:#x}");
            } else {
                assert_eq!(Some(l), t.group(g).select_by_hash(hash));
                cpu1 += 1;
                cpu1_l1 += u32::from(l == ListenerId(1));
            }
        }
        assert!(cpu1_l1 > 0 && cpu1_l1 < cpu1, "{cpu1_l1} of {cpu1}");
        // L1 closes (migration on): the count keeps it in the closed
        // section (`__reuseport_add_closed_sock`), but no live member claims
        // CPU 0 any more, so its children migrate by hash.
        t.on_stop_listen(&ls, ListenerId(1), true);
        assert_eq!(t.incoming_cpu_count(g), 1, "closed members count");
        for k in 0..64u32 {
            let hash = (k << 1).wrapping_mul(0x9E37_79B9) & !1;
            assert_eq!(incoming_cpu::rss_cpu(hash, 2), 0);
            let m = MigratingSock::Established {
                hash,
                tuple: flow(),
            };
            assert_eq!(
                t.migrate_target(&ls, ListenerId(1), m, true),
                MigrateOutcome::Target(t.group(g).select_by_hash(hash).unwrap())
            );
        }
        t.on_destroy(ListenerId(1));
        assert_eq!(t.incoming_cpu_count(g), 0);
    }

    #[test]
    fn without_incoming_cpu_the_cpu_count_changes_nothing_4_2() {
        let ls = listeners(4);
        let (mut plain, mut cpus) = (ReuseportTable::new(), ReuseportTable::new());
        cpus.set_cpus(8);
        listen_all(&mut plain, &ls, 4);
        listen_all(&mut cpus, &ls, 4);
        let tuple = FourTuple {
            local: "10.0.0.1:443".parse().unwrap(),
            remote: "10.0.1.1:5000".parse().unwrap(),
        };
        for k in 0..256u32 {
            let hash = k.wrapping_mul(0x9E37_79B9);
            assert_eq!(
                plain.select(&ls, &tuple, hash, false),
                cpus.select(&ls, &tuple, hash, false)
            );
        }
    }

    #[test]
    fn migration_needs_sysctl_or_migrate_policy_4_3_5_8() {
        let ls = listeners(3);
        let m = MigratingSock::Established {
            hash: 0,
            tuple: flow(),
        };
        // Capable at close, sysctl off at migration: FAIL.
        let mut t = ReuseportTable::new();
        listen_all(&mut t, &ls, 3);
        t.on_stop_listen(&ls, ListenerId(0), true);
        assert_eq!(
            t.migrate_target(&ls, ListenerId(0), m, false),
            MigrateOutcome::Fail(MigrateFailure::SysctlOff)
        );
        assert_eq!(
            t.migrate_target(&ls, ListenerId(0), m, true),
            MigrateOutcome::Target(ListenerId(2))
        );
        // Not capable at close, sysctl on at migration: detached, no failure.
        t.on_stop_listen(&ls, ListenerId(1), false);
        assert_eq!(
            t.migrate_target(&ls, ListenerId(1), m, true),
            MigrateOutcome::Detached
        );
    }

    #[test]
    fn select_policy_is_not_migration_capable_but_select_or_migrate_is_2_7() {
        let ls = listeners(3);
        let m = MigratingSock::Request {
            hash: 0,
            len: 0,
            tuple: flow(),
        };
        for (kind, capable) in [
            (PolicyKind::Select, false),
            (PolicyKind::SelectOrMigrate, true),
        ] {
            let mut t = ReuseportTable::new();
            let p = t.add_policy(Policy::new("p", kind, Rule::Pass, Rule::Pass, vec![]));
            listen_all(&mut t, &ls, 3);
            t.attach_policy(ListenerId(0), ls[0].local, p);
            t.on_stop_listen(&ls, ListenerId(0), false);
            let got = t.migrate_target(&ls, ListenerId(0), m, false);
            if capable {
                // PassNoPick falls back to hash regardless of the sysctl.
                assert_eq!(got, MigrateOutcome::Target(ListenerId(2)), "{kind:?}");
            } else {
                assert_eq!(got, MigrateOutcome::Detached, "{kind:?}");
            }
        }
    }

    #[test]
    fn policy_drop_on_syn_refuses_and_on_migration_fails_4_2_4_3() {
        let ls = listeners(2);
        let mut t = ReuseportTable::new();
        let p = migrate_policy(&mut t, Rule::Drop, Rule::Drop);
        listen_all(&mut t, &ls, 2);
        t.attach_policy(ListenerId(0), ls[0].local, p);
        let tuple = FourTuple {
            local: ls[0].local,
            remote: "10.0.1.1:5000".parse().unwrap(),
        };
        assert_eq!(t.select(&ls, &tuple, 1, false), Selection::PolicyDrop);
        t.on_stop_listen(&ls, ListenerId(0), false);
        let m = MigratingSock::Established {
            hash: 1,
            tuple: flow(),
        };
        assert_eq!(
            t.migrate_target(&ls, ListenerId(0), m, true),
            MigrateOutcome::Fail(MigrateFailure::PolicyDrop)
        );
        assert_eq!(t.policies[p].stats.get("syn").unwrap().drops, 1);
        assert_eq!(
            t.policies[p].stats.get("close_established").unwrap().drops,
            1
        );
    }

    #[test]
    fn resurrect_rejoins_live_section_but_not_the_policy_map_5_9() {
        let ls = listeners(3);
        let mut t = ReuseportTable::new();
        let targets = BTreeMapFor::from([
            (ListenerId(0), ListenerId(1)),
            (ListenerId(1), ListenerId(1)),
        ]);
        let rule = Rule::MapByClosingListener {
            targets,
            missing_drop: true,
        };
        let p = migrate_policy(&mut t, Rule::Pass, rule);
        listen_all(&mut t, &ls, 3);
        t.attach_policy(ListenerId(0), ls[0].local, p);
        let g = t.group_of(ListenerId(0)).unwrap();
        t.on_stop_listen(&ls, ListenerId(1), false);
        assert_eq!(t.group(g).num_closed_socks, 1);
        t.on_listen(&ls, ListenerId(1), true);
        assert_eq!(ids(t.group(g).live()), vec![0, 2, 1]);
        assert_eq!(t.group(g).num_closed_socks, 0);
        // Listener 0 closes: the map says 1, but 1 left the socket array at
        // stop and was not re-inserted: the selection fails, the program
        // passes, the kernel hashes.
        t.on_stop_listen(&ls, ListenerId(0), false);
        let m = MigratingSock::Established {
            hash: 0,
            tuple: flow(),
        };
        assert_eq!(
            t.migrate_target(&ls, ListenerId(0), m, false),
            MigrateOutcome::Target(ListenerId(1))
        );
        assert_eq!(
            t.policies[p].stats.get("close_established").unwrap().picks,
            0
        );
        assert_eq!(
            t.policies[p].stats.get("close_established").unwrap().passes,
            1
        );
        // A closing listener missing from the map: SK_DROP.
        t.on_stop_listen(&ls, ListenerId(2), false);
        assert_eq!(
            t.migrate_target(
                &ls,
                ListenerId(2),
                MigratingSock::Established {
                    hash: 0,
                    tuple: flow()
                },
                false
            ),
            MigrateOutcome::Fail(MigrateFailure::PolicyDrop)
        );
    }

    /// A flow for migrating sockets in these tests.
    fn flow() -> FourTuple {
        FourTuple {
            local: "10.0.0.1:443".parse().unwrap(),
            remote: "10.0.1.1:5000".parse().unwrap(),
        }
    }

    type BTreeMapFor = std::collections::BTreeMap<ListenerId, ListenerId>;

    #[test]
    fn a_socket_given_a_policy_before_listen_joins_the_hashed_group_and_loses_it_5_1() {
        // `reuseport_add_sock`: the socket's own one-socket group (made by
        // attaching a program to the unhashed socket) is freed with its
        // program, and the socket joins the hashed listener's group.
        let ls = listeners(2);
        let mut t = ReuseportTable::new();
        t.on_listen(&ls, ListenerId(0), false);
        let p = migrate_policy(&mut t, Rule::Drop, Rule::Drop);
        t.attach_policy(ListenerId(1), ls[1].local, p);
        let own = t.group_of(ListenerId(1)).unwrap();
        assert_ne!(Some(own), t.group_of(ListenerId(0)));
        t.on_listen(&ls, ListenerId(1), false);
        let g = t.group_of(ListenerId(0)).unwrap();
        assert_eq!(t.group_of(ListenerId(1)), Some(g));
        assert_eq!(ids(t.group(g).live()), vec![0, 1]);
        assert!(!t.group(own).alive);
        assert!(!t.policies[p].attached);
        let tuple = FourTuple {
            local: ls[0].local,
            remote: "10.0.1.1:5000".parse().unwrap(),
        };
        assert_eq!(
            t.select(&ls, &tuple, u32::MAX, false),
            Selection::Listener(ListenerId(1))
        );
    }

    #[test]
    fn attaching_through_a_shut_down_member_moves_it_to_a_fresh_group_5_9() {
        // `reuseport_attach_prog` on an unhashed socket → `reuseport_alloc` →
        // `reuseport_resurrect(sk, reuse, NULL)`: the old group is untouched.
        let ls = listeners(3);
        let mut t = ReuseportTable::new();
        listen_all(&mut t, &ls, 3);
        let g = t.group_of(ListenerId(0)).unwrap();
        t.on_stop_listen(&ls, ListenerId(0), true);
        assert_eq!(t.group(g).num_closed_socks, 1);
        let p = migrate_policy(&mut t, Rule::Drop, Rule::Drop);
        t.attach_policy(ListenerId(0), ls[0].local, p);
        let fresh = t.group_of(ListenerId(0)).unwrap();
        assert_ne!(fresh, g);
        assert_eq!(t.group(g).policy, None);
        assert_eq!(t.group(g).num_closed_socks, 0);
        assert_eq!(ids(t.group(g).live()), vec![2, 1]);
        assert_eq!(t.group(fresh).policy, Some(p));
        let tuple = FourTuple {
            local: ls[1].local,
            remote: "10.0.1.1:5000".parse().unwrap(),
        };
        assert!(matches!(
            t.select(&ls, &tuple, 0, false),
            Selection::Listener(_)
        ));
    }

    #[test]
    fn relisten_after_attach_through_a_shut_down_member_keeps_the_fresh_group_5_9() {
        // After the attach the socket is a live member of its fresh group;
        // listening again with no matching hashed listener keeps that group
        // and its policy (`reuseport_alloc` finds a group with no closed
        // members and keeps it).
        let ls = listeners(1);
        let mut t = ReuseportTable::new();
        t.on_listen(&ls, ListenerId(0), false);
        t.on_stop_listen(&ls, ListenerId(0), true);
        let p = migrate_policy(&mut t, Rule::Pass, Rule::Pass);
        t.attach_policy(ListenerId(0), ls[0].local, p);
        let fresh = t.group_of(ListenerId(0)).unwrap();
        t.on_listen(&ls, ListenerId(0), true);
        assert_eq!(t.group_of(ListenerId(0)), Some(fresh));
        assert_eq!(t.group(fresh).policy, Some(p));
        assert!(t.detach_policy(ListenerId(0), true));
    }

    #[test]
    fn detach_is_refused_through_an_unhashed_member_of_a_group_with_closed_sockets_5_9() {
        let ls = listeners(2);
        let mut t = ReuseportTable::new();
        listen_all(&mut t, &ls, 2);
        let p = migrate_policy(&mut t, Rule::Pass, Rule::Pass);
        t.attach_policy(ListenerId(1), ls[1].local, p);
        t.on_stop_listen(&ls, ListenerId(0), true);
        assert!(!t.detach_policy(ListenerId(0), false), "shut-down member");
        assert!(t.detach_policy(ListenerId(1), true));
        assert!(!t.policies[p].attached);
    }

    #[test]
    fn wildcard_selection_prefers_the_packets_family_over_dual_stack_4_2() {
        let mut ls = Vec::new();
        for (i, addr) in ["[::]:443", "0.0.0.0:443"].iter().enumerate() {
            let mut l = Listener::new(
                ListenerId(i as u32),
                addr.parse().unwrap(),
                ListenerOptions::default(),
            );
            l.state = ListenerState::Listen;
            ls.push(l);
        }
        let mut t = ReuseportTable::new();
        listen_all(&mut t, &ls, 2);
        // Different families: different groups.
        assert_ne!(t.group_of(ListenerId(0)), t.group_of(ListenerId(1)));
        let v4 = FourTuple {
            local: "10.0.0.1:443".parse().unwrap(),
            remote: "10.0.1.1:5000".parse().unwrap(),
        };
        assert_eq!(
            t.select(&ls, &v4, 0, false),
            Selection::Listener(ListenerId(1))
        );
        let v6 = FourTuple {
            local: "[fd00::1]:443".parse().unwrap(),
            remote: "[fd00::2]:5000".parse().unwrap(),
        };
        assert_eq!(
            t.select(&ls, &v6, 0, false),
            Selection::Listener(ListenerId(0))
        );
        // Without the IPv4 wildcard, the dual-stack one takes IPv4 too.
        t.on_stop_listen(&ls, ListenerId(1), false);
        assert_eq!(
            t.select(&ls, &v4, 0, false),
            Selection::Listener(ListenerId(0))
        );
    }

    #[test]
    fn v6only_is_part_of_the_group_identity_2_3() {
        let mut ls = Vec::new();
        for (i, v6only) in [false, true].into_iter().enumerate() {
            let opts = ListenerOptions {
                v6only,
                ..ListenerOptions::default()
            };
            let mut l = Listener::new(ListenerId(i as u32), "[::]:443".parse().unwrap(), opts);
            l.state = ListenerState::Listen;
            ls.push(l);
        }
        let mut t = ReuseportTable::new();
        listen_all(&mut t, &ls, 2);
        assert_ne!(t.group_of(ListenerId(0)), t.group_of(ListenerId(1)));
    }
}
