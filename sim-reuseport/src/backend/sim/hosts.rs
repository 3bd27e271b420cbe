//! The hosts: each one's sysctls and, where a server runs, its TCP stack
//! (`sim_tcp::ServerStack` with the reuseport layer as its hooks), which
//! worker accepts from each listener, its server ports, and the policies
//! loaded into its kernel.

use super::Stack;
use crate::report::{ListenerReport, PolicyReport, TimeWaitReport};
use crate::reuseport::bpf::BpfPolicy;
use crate::reuseport::group::ReuseportTable;
use crate::reuseport::policy::{Policy, Rule};
use crate::scenario::plan::{HostIx, Plan, PolicyIx, RulePlan, ServerIx, WorkerIx};
use sim_core::{FourTuple, RngStreams, SimTime, TimerMode, TimerModel};
use sim_tcp::{ClientEnv, Counters, FlowHasher, Listener, ListenerId, ListenerOptions};
use sim_tcp::{ListenerState, MigrationPath, ServerStack, Sysctls, TcpMetrics, TimeWaitTable};
use std::collections::BTreeMap;

/// A host that runs a server.
struct ServerHost {
    stack: Stack,
    /// listener → the worker that accepts from it.
    owner: Vec<Option<WorkerIx>>,
}

/// Every host of a run.
pub(super) struct Hosts {
    names: Vec<String>,
    /// Each host's sysctls, as the clients on it read them.
    sysctls: Vec<Sysctls>,
    /// Each host's timer granularity (§3.1).
    timers: Vec<TimerModel>,
    /// The TCP metrics cache of hosts without a server stack (a server
    /// host's clients share the stack's: one namespace).
    client_metrics: Vec<TcpMetrics>,
    /// Counters of each host's client sockets (its nstat = these + its
    /// server stack's).
    client_counters: Vec<Counters>,
    /// TIME_WAIT sockets of each host's clients (connections they closed
    /// first). A host that also runs a server keeps its server's in the
    /// stack: the two tables check `tcp_max_tw_buckets` each on their own.
    client_tw: Vec<TimeWaitTable>,
    servers: Vec<Option<ServerHost>>,
    server_names: Vec<String>,
    /// Sorted server ports per host: segments to them go to the server stack.
    server_ports: Vec<Vec<u16>>,
    /// Policy → (host, slot in that host's table).
    policy_slots: Vec<(HostIx, usize)>,
}

impl Hosts {
    /// The plan's hosts, with a server stack on each host that has a server.
    /// `migrate` overrides `tcp_migrate_req` everywhere and `timer_mode`
    /// every host's timer mode; a stack's flow-hash secret is drawn from
    /// `rng`'s `("flow-hash-secret", host)` stream.
    pub(super) fn new(
        plan: &Plan,
        rng: &RngStreams,
        migrate: Option<bool>,
        timer_mode: Option<TimerMode>,
        inject_bug: Option<MigrationPath>,
    ) -> Self {
        let timers: Vec<TimerModel> = plan
            .hosts
            .iter()
            .map(|h| TimerModel {
                mode: timer_mode.unwrap_or(h.timers.mode),
                ..h.timers
            })
            .collect();
        let sysctls: Vec<Sysctls> = plan
            .hosts
            .iter()
            .map(|h| {
                let mut s = h.sysctls.clone();
                if let Some(m) = migrate {
                    s.tcp_migrate_req = u8::from(m);
                }
                s
            })
            .collect();
        let mut servers: Vec<Option<ServerHost>> = (0..plan.hosts.len()).map(|_| None).collect();
        let mut server_ports = vec![Vec::new(); plan.hosts.len()];
        for s in &plan.servers {
            let h = s.host.index();
            server_ports[h].push(s.local.port());
            if servers[h].is_none() {
                let secret = sim_core::uniform_below(
                    &mut rng.stream("flow-hash-secret", h as u64),
                    u64::MAX,
                );
                let mut table = ReuseportTable::new();
                table.set_cpus(plan.hosts[h].cpus);
                let mut stack =
                    ServerStack::new(sysctls[h].clone(), table, FlowHasher::new(secret));
                stack.inject_bug = inject_bug;
                stack.timers = timers[h];
                servers[h] = Some(ServerHost {
                    stack,
                    owner: Vec::new(),
                });
            }
        }
        for p in &mut server_ports {
            p.sort_unstable();
            p.dedup();
        }
        let n = plan.hosts.len();
        Hosts {
            names: plan.hosts.iter().map(|h| h.name.clone()).collect(),
            sysctls,
            timers,
            client_metrics: vec![TcpMetrics::default(); n],
            client_counters: vec![Counters::default(); n],
            client_tw: (0..n).map(|_| TimeWaitTable::default()).collect(),
            servers,
            server_names: plan.servers.iter().map(|s| s.name.clone()).collect(),
            server_ports,
            policy_slots: Vec::new(),
        }
    }

    /// Binds each worker's listener to its server's address, in worker
    /// order, and returns them (worker `i` owns listener `i` of the result).
    pub(super) fn bind_workers(&mut self, plan: &Plan) -> Vec<ListenerId> {
        let mut listeners = Vec::with_capacity(plan.workers.len());
        for (i, w) in plan.workers.iter().enumerate() {
            let host = self.server_mut(w.host);
            let l = host.stack.bind(
                plan.servers[w.server.index()].local,
                ListenerOptions {
                    syn_retries: w.syn_retries,
                    fastopen_qlen: w.fast_open_qlen,
                    defer_accept: w.defer_accept,
                    v6only: w.v6only,
                },
            );
            host.stack.hooks.set_generation(l, w.generation);
            host.stack.hooks.set_incoming_cpu(l, w.incoming_cpu);
            host.owner.push(Some(WorkerIx(i as u16)));
            listeners.push(l);
        }
        listeners
    }

    /// Loads the plan's policies into their hosts' kernels (detached);
    /// `listeners` are the workers' own listeners.
    pub(super) fn load_policies(
        &mut self,
        plan: &Plan,
        listeners: &[ListenerId],
        rng: &RngStreams,
    ) {
        let own = |w: WorkerIx| listeners[w.index()];
        let rule = |r: &RulePlan| match r {
            RulePlan::Pass => Rule::Pass,
            RulePlan::Drop => Rule::Drop,
            RulePlan::NewestGeneration => Rule::NewestGeneration,
            RulePlan::LeastLoaded => Rule::LeastLoaded,
            RulePlan::Pick(w) => Rule::Pick(own(*w)),
            RulePlan::Map {
                targets,
                missing_drop,
            } => Rule::MapByClosingListener {
                targets: targets.iter().map(|&(f, t)| (own(f), own(t))).collect(),
                missing_drop: *missing_drop,
            },
        };
        for (i, p) in plan.policies.iter().enumerate() {
            let cancel = p.cancel_for.iter().map(|&w| own(w)).collect();
            let mut policy = Policy::new(
                &p.name,
                p.kind,
                rule(&p.on_syn),
                rule(&p.on_migrate),
                cancel,
            );
            // Each program's `bpf_get_prandom_u32` draws from its own stream
            // of the run's seed.
            policy.bpf = p.bpf.as_ref().map(|b| {
                Box::new(BpfPolicy::new(
                    &b.object,
                    &b.loaded,
                    b.prog,
                    rng.stream("bpf-prandom", i as u64),
                ))
            });
            let slot = self.server_mut(p.host).stack.hooks.add_policy(policy);
            self.policy_slots.push((p.host, slot));
        }
    }

    fn server_mut(&mut self, h: HostIx) -> &mut ServerHost {
        self.servers[h.index()]
            .as_mut()
            .expect("a worker's host runs a server")
    }

    /// Host `h`'s stack, if it runs a server.
    #[inline]
    pub(super) fn stack(&self, h: HostIx) -> Option<&Stack> {
        self.servers[h.index()].as_ref().map(|s| &s.stack)
    }

    /// Host `h`'s stack, if it runs a server.
    #[inline]
    pub(super) fn stack_mut(&mut self, h: HostIx) -> Option<&mut Stack> {
        self.servers[h.index()].as_mut().map(|s| &mut s.stack)
    }

    /// The namespace state host `h`'s client sockets read and update: its
    /// sysctls and timers, its TCP metrics cache (its stack's, if it runs
    /// a server) and its clients' counters.
    #[inline]
    pub(super) fn client_env(&mut self, h: HostIx) -> ClientEnv<'_> {
        let h = h.index();
        ClientEnv {
            sysctls: &self.sysctls[h],
            timers: self.timers[h],
            metrics: match self.servers[h].as_mut() {
                Some(s) => &mut s.stack.metrics,
                None => &mut self.client_metrics[h],
            },
            counters: &mut self.client_counters[h],
            timewait: &mut self.client_tw[h],
        }
    }

    /// `tw_timer_handler` for host `h`'s client TIME_WAIT sockets due at
    /// `now`; `gone` is told each freed 4-tuple. Returns the next call's instant.
    pub(super) fn expire_client_tw(
        &mut self,
        h: HostIx,
        now: SimTime,
        gone: impl FnMut(&FourTuple),
    ) -> Option<SimTime> {
        let h = h.index();
        self.client_tw[h].expire(now, &mut self.client_counters[h], gone)
    }

    /// The report's `time_wait`: each host side where a socket entered
    /// TIME_WAIT, with its peak and what is left at the end.
    pub(super) fn time_wait_report(&self) -> Vec<TimeWaitReport> {
        let mut out = Vec::new();
        for (h, host) in self.names.iter().enumerate() {
            let server = self.servers[h].as_ref().map(|s| &s.stack.timewait);
            for (side, t) in [("server", server), ("clients", Some(&self.client_tw[h]))] {
                if let Some(t) = t.filter(|t| t.peak() > 0) {
                    out.push(TimeWaitReport {
                        host: host.clone(),
                        side: side.to_string(),
                        peak: t.peak() as u64,
                        at_end: t.len() as u64,
                        taken_over: t.taken_over(),
                    });
                }
            }
        }
        out
    }

    /// The server ports of host `h`, sorted.
    #[inline]
    pub(super) fn server_ports(&self, h: HostIx) -> &[u16] {
        &self.server_ports[h.index()]
    }

    /// True if segments to `port` on host `h` go to its server stack
    /// (clients never use a server port of their host).
    #[inline]
    pub(super) fn is_server_port(&self, h: HostIx, port: u16) -> bool {
        self.server_ports[h.index()].binary_search(&port).is_ok()
    }

    /// The worker that accepts from listener `l` of host `h`.
    pub(super) fn owner(&self, h: HostIx, l: ListenerId) -> Option<WorkerIx> {
        let server = self.servers[h.index()].as_ref()?;
        server.owner.get(l.index()).copied().flatten()
    }

    /// Worker `w` now accepts from listener `l` of host `h` (fd passing).
    pub(super) fn set_owner(&mut self, h: HostIx, l: ListenerId, w: WorkerIx) {
        self.server_mut(h).owner[l.index()] = Some(w);
    }

    /// `listen(l, backlog)` on host `h` by worker `w`, who owns `l` from
    /// now on unless another worker already does.
    pub(super) fn listen(&mut self, h: HostIx, l: ListenerId, backlog: u32, w: WorkerIx) {
        let server = self.server_mut(h);
        // A closed socket cannot listen again: nothing happens.
        let _ = server.stack.listen(l, backlog);
        if server.owner[l.index()].is_none() {
            server.owner[l.index()] = Some(w);
        }
    }

    /// Sets a sysctl on host `h` (its clients and its stack).
    pub(super) fn set_sysctl(&mut self, h: HostIx, name: &str, value: u64) {
        self.sysctls[h.index()]
            .set(name, value)
            .expect("checked by lowering");
        if let Some(s) = self.stack_mut(h) {
            s.sysctls.set(name, value).expect("checked by lowering");
        }
    }

    /// `SO_ATTACH_REUSEPORT_EBPF` of policy `p` through listener `l` of host
    /// `h`. Returns false if it was refused (a closed socket takes no
    /// `setsockopt`; a policy of another host cannot be attached).
    pub(super) fn attach_policy(&mut self, p: PolicyIx, h: HostIx, l: ListenerId) -> bool {
        let (ph, slot) = self.policy_slots[p.index()];
        let stack = &mut self.server_mut(h).stack;
        let listener = &stack.listeners[l.index()];
        let local = listener.local;
        if ph == h && listener.state != ListenerState::Closed {
            stack.hooks.attach_policy(l, local, slot);
            true
        } else {
            false
        }
    }

    /// A user-space map update (`value` given) or delete on `bpf` policy
    /// `p`'s object.
    pub(super) fn bpf_map_write(
        &mut self,
        p: PolicyIx,
        map: sim_bpf::MapId,
        key: &[u8],
        value: Option<&[u8]>,
        flags: u64,
    ) -> Result<(), sim_bpf::Errno> {
        let (h, slot) = self.policy_slots[p.index()];
        let stack = &mut self.server_mut(h).stack;
        stack
            .hooks
            .bpf_map_write(&stack.listeners, slot, map, key, value, flags)
    }

    /// The host of policy `p` and its slot in that host's table.
    pub(super) fn policy_host(&self, p: PolicyIx) -> (HostIx, usize) {
        self.policy_slots[p.index()]
    }

    /// The socket cookie of listener `l` in `bpf` policy `p`'s host.
    pub(super) fn bpf_cookie(&mut self, p: PolicyIx, l: ListenerId) -> u64 {
        let (h, slot) = self.policy_slots[p.index()];
        self.server_mut(h).stack.hooks.bpf_cookie(slot, l)
    }

    /// `SO_DETACH_REUSEPORT_BPF` through listener `l` of host `h`.
    pub(super) fn detach_policy(&mut self, h: HostIx, l: ListenerId) {
        let stack = &mut self.server_mut(h).stack;
        let listening = stack.listeners[l.index()].is_listening();
        stack.hooks.detach_policy(l, listening);
    }

    /// Listener `l` of host `h`.
    pub(super) fn listener(&self, h: HostIx, l: ListenerId) -> &Listener {
        &self.stack(h).expect("server host").listeners[l.index()]
    }

    /// Worker listener `l` of host `h`, mutable (for the sampler's window peaks).
    pub(super) fn listener_mut(&mut self, h: HostIx, l: ListenerId) -> &mut Listener {
        &mut self.stack_mut(h).expect("server host").listeners[l.index()]
    }

    /// Shrinks tables left sparse by a peak.
    pub(super) fn compact(&mut self) {
        for s in self.servers.iter_mut().flatten() {
            s.stack.compact();
        }
    }

    /// The report's `counters`: each nstat counter summed over the hosts.
    pub(super) fn counters(&self) -> BTreeMap<String, u64> {
        let mut counters = BTreeMap::new();
        for server in self.servers.iter().flatten() {
            for (name, v) in server.stack.counters.entries() {
                *counters.entry(name.to_string()).or_default() += v;
            }
        }
        counters
    }

    /// The report's `counters_by_host`: each host's namespace counters (its
    /// server stack's plus its clients'), non-zero ones only; hosts with
    /// nothing counted are left out.
    pub(super) fn counters_by_host(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for (h, name) in self.names.iter().enumerate() {
            let mut c = self.client_counters[h].clone();
            if let Some(s) = &self.servers[h] {
                c.add(&s.stack.counters);
            }
            let row: BTreeMap<String, u64> = c
                .entries()
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            if !row.is_empty() {
                out.insert(name.clone(), row);
            }
        }
        out
    }

    /// The report's `policies`: each host's, in load order.
    pub(super) fn policies(&mut self) -> Vec<PolicyReport> {
        let mut policies = Vec::new();
        for (h, server) in self.servers.iter_mut().enumerate() {
            let Some(server) = server else { continue };
            let stack = &mut server.stack;
            let n = stack.hooks.policies.len();
            let bpf: Vec<_> = (0..n)
                .map(|p| stack.hooks.bpf_report(&stack.listeners, p))
                .collect();
            for ((name, stats), bpf) in stack.hooks.policy_stats().into_iter().zip(bpf) {
                let mut decisions = BTreeMap::new();
                for (ctx, d) in stats.entries() {
                    if d.picks + d.passes + d.drops > 0 {
                        decisions.insert(
                            ctx.to_string(),
                            BTreeMap::from([
                                ("picks".to_string(), d.picks),
                                ("passes".to_string(), d.passes),
                                ("drops".to_string(), d.drops),
                            ]),
                        );
                    }
                }
                policies.push(PolicyReport {
                    name: name.to_string(),
                    host: self.names[h].clone(),
                    decisions,
                    bpf,
                });
            }
        }
        policies
    }

    /// The report on listener `l` of host `h`, which `worker` of `server` created.
    pub(super) fn listener_report(
        &self,
        worker: &str,
        server: ServerIx,
        h: HostIx,
        l: ListenerId,
    ) -> ListenerReport {
        let listener = self.listener(h, l);
        ListenerReport {
            worker: worker.to_string(),
            server: self.server_names[server.index()].clone(),
            listener: l.0,
            accepted: listener.accepted_total,
            peak_syn_queue: listener.peak_syn_qlen,
            peak_accept_queue: listener.peak_accept_qlen,
            state: match listener.state {
                ListenerState::Bound => "bound",
                ListenerState::Listen => "listen",
                ListenerState::Shutdown => "shutdown",
                ListenerState::Closed => "closed",
            }
            .to_string(),
        }
    }
}
