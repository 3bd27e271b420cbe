//! Lowering: [`Scenario`] → [`Plan`]. Every name is resolved to a typed
//! index, every cross-reference and bound checked, macros expanded, and
//! every error a user can cause raised here, with the JSON path of the
//! field. A backend builds and runs the `Plan` with no error path of its
//! own for the input.
//!
//! The checks run in a fixed order (the order of the file's sections, and
//! within a section, of its entries), so a scenario with several mistakes
//! always reports the same first one.

use super::format::{
    AcceptSpec, Action, Arrival, FaultSpec, MatchSpec, RuleSpec, Scenario, ScenarioError,
};
use super::plan::*;
use sim_core::{FilterMatch, LinkParams, SimDuration, SimTime};
use sim_tcp::Sysctls;
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Longest delay a scenario may give (latency, jitter, service time, accept
/// interval, burst spacing), like the longest duration: no deadline can
/// overflow.
pub const MAX_DELAY: SimDuration = SimDuration::from_secs(100_000);

/// Longest duration of a run.
pub const MAX_DURATION: SimDuration = SimDuration::from_secs(100_000);

/// Most workers (listeners) a scenario may declare: well below the 65535
/// sockets a reuseport group holds.
pub const MAX_WORKERS: usize = 4096;

/// Most hosts a scenario may declare.
pub const MAX_HOSTS: usize = 1024;

/// Most client populations a scenario may declare.
pub const MAX_CLIENTS: usize = 4096;

/// Largest burst of connections a client population may declare.
pub const MAX_BURST: u64 = 10_000_000;

/// Highest arrival rate (connections per second) of a client population.
pub const MAX_RATE: u64 = 100_000_000;

macro_rules! error_kinds {
    ($($(#[$m:meta])* $kind:ident,)*) => {
        /// The rule a scenario broke: one kind per check of [`lower`].
        #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum LowerErrorKind {
            $($(#[$m])* $kind,)*
        }

        impl LowerErrorKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [LowerErrorKind] = &[$(LowerErrorKind::$kind,)*];
        }
    };
}

error_kinds! {
    /// `duration` is 0.
    DurationZero,
    /// `duration` is longer than [`MAX_DURATION`].
    DurationTooLong,
    /// A time (an action, a fault window, a client's start or stop) is after the duration.
    AfterEnd,
    /// A delay is longer than [`MAX_DELAY`].
    DelayTooLong,
    /// No host.
    NoHosts,
    /// More than [`MAX_HOSTS`] hosts.
    TooManyHosts,
    /// An empty host, link, server, worker, policy or client name.
    EmptyName,
    /// Two hosts, links, servers, workers, policies or clients of one name.
    DuplicateName,
    /// A name that refers to nothing (the message lists the known names).
    UnknownName,
    /// A host without an address.
    NoAddresses,
    /// An unspecified address, or one address on two hosts or twice on one.
    BadAddress,
    /// An unknown sysctl, or a value out of its range.
    BadSysctl,
    /// A link from a host to itself.
    LinkToSelf,
    /// Two links between the same pair of hosts.
    DuplicateLink,
    /// Link parameters the network model refuses (a bandwidth of 0).
    BadLinkParams,
    /// A fault window that ends before it starts.
    WindowReversed,
    /// No server.
    NoServers,
    /// A server address that is not an address of its host.
    AddressNotOnHost,
    /// Port 0.
    PortZero,
    /// No worker.
    NoWorkers,
    /// More than [`MAX_WORKERS`] workers.
    TooManyWorkers,
    /// An accept rate, batch interval or batch size of 0.
    AcceptZero,
    /// A backlog of 0.
    BacklogZero,
    /// A policy map whose `missing` is neither `"drop"` nor `"pass"`.
    BadMapMissing,
    /// A `rolling_restart` or `fd_passing` with unequal `old` and `new` lists.
    MacroListsDiffer,
    /// A handover between workers of different hosts.
    HandoverAcrossHosts,
    /// A handover to the same worker, or to one that listens on its own.
    HandoverToListener,
    /// A worker that inherits two listeners.
    InheritsTwice,
    /// A worker that inherits a listener and also listens on its own.
    HeirListens,
    /// A wildcard server whose host has no address of its family to connect to.
    NoServerAddress,
    /// A client host without an address of the server's family.
    NoSourceAddress,
    /// A client host with no route to its server's host.
    NoRoute,
    /// A burst larger than [`MAX_BURST`].
    BurstTooLarge,
    /// An arrival rate of 0.
    RateZero,
    /// An arrival rate above [`MAX_RATE`].
    RateTooHigh,
    /// A request of 0 bytes.
    RequestZero,
    /// A client population that stops before it starts.
    StopBeforeStart,
    /// More than [`MAX_CLIENTS`] client populations.
    TooManyClients,
}

/// Why [`lower`] refused a scenario: the rule, the JSON path of the field
/// and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowerError {
    /// The rule broken.
    pub kind: LowerErrorKind,
    /// JSON path of the offending field (e.g. `workers[2].server`).
    pub path: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl LowerError {
    fn new(kind: LowerErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        LowerError {
            kind,
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error as a [`ScenarioError`] naming `file`.
    pub fn in_file(self, file: &str) -> ScenarioError {
        ScenarioError::from(self).in_file(file)
    }
}

impl From<LowerError> for ScenarioError {
    fn from(e: LowerError) -> Self {
        ScenarioError::at(e.path, e.message)
    }
}

impl fmt::Display for LowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ScenarioError::from(self.clone()).fmt(f)
    }
}

impl std::error::Error for LowerError {}

type Result<T> = std::result::Result<T, LowerError>;

use LowerErrorKind as K;

/// Canonical hash of a scenario (independent of whitespace and key order in the file).
pub fn scenario_hash(scn: &Scenario) -> String {
    let canon = serde_json::to_string(scn).expect("scenario serializes");
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(canon.as_bytes()))
}

/// Lowers `scn` to a [`Plan`], or names the first field that breaks a rule.
pub fn lower(scn: &Scenario) -> Result<Plan> {
    let duration = scn.duration.0;
    if duration == SimDuration::ZERO {
        return Err(LowerError::new(
            K::DurationZero,
            "duration",
            "must be greater than 0",
        ));
    }
    if duration > MAX_DURATION {
        return Err(LowerError::new(
            K::DurationTooLong,
            "duration",
            format!("must be at most {MAX_DURATION}"),
        ));
    }
    let cx = Cx { scn, duration };
    let hosts = cx.hosts()?;
    let links = cx.links()?;
    let faults = cx.faults(&links)?;
    let servers = cx.servers()?;
    let mut timeline = Vec::new();
    let workers = cx.workers(&servers, &mut timeline)?;
    let policies = cx.policies(&workers, &mut timeline)?;
    for (i, a) in scn.timeline.iter().enumerate() {
        cx.action(i, a, &workers, &mut timeline)?;
    }
    // Stable: by time, then declaration order (workers' listens, then
    // policies' attaches, then the timeline).
    timeline.sort_by_key(|s| s.at);
    check_heirs(&timeline, &workers)?;
    if workers.len() > MAX_WORKERS {
        return Err(LowerError::new(
            K::TooManyWorkers,
            "workers",
            format!("at most {MAX_WORKERS} workers"),
        ));
    }
    let clients = cx.clients(&hosts, &links, &servers)?;
    Ok(Plan {
        name: scn.name.clone(),
        hash: scenario_hash(scn),
        seed: scn.seed,
        duration,
        hosts,
        links,
        faults,
        servers,
        workers,
        policies,
        clients,
        timeline,
    })
}

/// Names must be non-empty and unique within a list.
fn unique<'n>(names: impl Iterator<Item = &'n str>, what: &str, list: &str) -> Result<()> {
    let mut seen = BTreeSet::new();
    for (i, n) in names.enumerate() {
        if n.is_empty() {
            return Err(LowerError::new(
                K::EmptyName,
                format!("{list}[{i}].name"),
                format!("{what} name must not be empty"),
            ));
        }
        if !seen.insert(n) {
            return Err(LowerError::new(
                K::DuplicateName,
                format!("{list}[{i}].name"),
                format!("duplicate {what} name `{n}`"),
            ));
        }
    }
    Ok(())
}

/// The position of `name` in `names`, or an error listing the known names.
fn index_of<'n>(
    names: impl Iterator<Item = &'n str> + Clone,
    name: &str,
    path: &str,
    what: &str,
) -> Result<usize> {
    names.clone().position(|n| n == name).ok_or_else(|| {
        let known: Vec<&str> = names.collect();
        LowerError::new(
            K::UnknownName,
            path,
            format!("unknown {what} `{name}` (known: {})", known.join(", ")),
        )
    })
}

/// The scenario being lowered, and the checks shared by its sections.
struct Cx<'s> {
    scn: &'s Scenario,
    duration: SimDuration,
}

impl Cx<'_> {
    /// `t` as a time of the run, which must not be after its end.
    fn within(&self, t: SimDuration, path: String) -> Result<SimTime> {
        if t > self.duration {
            Err(LowerError::new(
                K::AfterEnd,
                path,
                format!(
                    "time {t} is after the scenario's duration {}",
                    self.duration
                ),
            ))
        } else {
            Ok(SimTime::ZERO + t)
        }
    }

    /// A delay added to the current time, bounded so that no deadline can overflow.
    fn bounded(&self, d: SimDuration, path: String) -> Result<SimDuration> {
        if d > MAX_DELAY {
            Err(LowerError::new(
                K::DelayTooLong,
                path,
                format!("{d} is too long (at most {MAX_DELAY})"),
            ))
        } else {
            Ok(d)
        }
    }

    fn host(&self, name: &str, path: &str) -> Result<HostIx> {
        let names = self.scn.hosts.iter().map(|h| h.name.as_str());
        index_of(names, name, path, "host").map(|i| HostIx(i as u16))
    }

    fn server(&self, name: &str, path: &str) -> Result<ServerIx> {
        let names = self.scn.servers.iter().map(|s| s.name.as_str());
        index_of(names, name, path, "server").map(|i| ServerIx(i as u32))
    }

    fn worker(&self, name: &str, path: &str) -> Result<WorkerIx> {
        let names = self.scn.workers.iter().map(|w| w.name.as_str());
        index_of(names, name, path, "worker").map(|i| WorkerIx(i as u16))
    }

    fn policy(&self, name: &str, path: &str) -> Result<PolicyIx> {
        let names = self.scn.policies.iter().map(|p| p.name.as_str());
        index_of(names, name, path, "policy").map(|i| PolicyIx(i as u32))
    }

    fn hosts(&self) -> Result<Vec<HostPlan>> {
        let scn = self.scn;
        if scn.hosts.is_empty() {
            return Err(LowerError::new(
                K::NoHosts,
                "hosts",
                "at least one host is required",
            ));
        }
        unique(scn.hosts.iter().map(|h| h.name.as_str()), "host", "hosts")?;
        let mut seen_addrs = BTreeSet::new();
        let mut hosts = Vec::new();
        for (i, h) in scn.hosts.iter().enumerate() {
            if h.addresses.is_empty() {
                return Err(LowerError::new(
                    K::NoAddresses,
                    format!("hosts[{i}].addresses"),
                    "at least one address is required",
                ));
            }
            for (j, a) in h.addresses.iter().enumerate() {
                if a.is_unspecified() || !seen_addrs.insert(*a) {
                    return Err(LowerError::new(
                        K::BadAddress,
                        format!("hosts[{i}].addresses[{j}]"),
                        format!("address {a} is unspecified or used twice"),
                    ));
                }
            }
            let mut sysctls = Sysctls::default();
            for (name, v) in &h.sysctls {
                sysctls.set(name, *v).map_err(|m| {
                    LowerError::new(K::BadSysctl, format!("hosts[{i}].sysctls.{name}"), m)
                })?;
            }
            hosts.push(HostPlan {
                name: h.name.clone(),
                addresses: h.addresses.clone(),
                sysctls,
            });
        }
        if hosts.len() > MAX_HOSTS {
            return Err(LowerError::new(
                K::TooManyHosts,
                "hosts",
                format!("at most {MAX_HOSTS} hosts"),
            ));
        }
        Ok(hosts)
    }

    fn links(&self) -> Result<Vec<LinkPlan>> {
        let mut links = Vec::new();
        let mut pairs = BTreeSet::new();
        for (i, l) in self.scn.links.iter().enumerate() {
            let a = self.host(&l.between[0], &format!("links[{i}].between[0]"))?;
            let b = self.host(&l.between[1], &format!("links[{i}].between[1]"))?;
            if a == b {
                return Err(LowerError::new(
                    K::LinkToSelf,
                    format!("links[{i}].between"),
                    "a link joins two different hosts",
                ));
            }
            if !pairs.insert((a.min(b), a.max(b))) {
                return Err(LowerError::new(
                    K::DuplicateLink,
                    format!("links[{i}].between"),
                    "two links join the same pair of hosts",
                ));
            }
            if l.bandwidth_bps == Some(0) {
                return Err(LowerError::new(
                    K::BadLinkParams,
                    format!("links[{i}].bandwidth_bps"),
                    "must be greater than 0 (omit it for unlimited)",
                ));
            }
            let params = LinkParams {
                latency: self.bounded(l.latency.0, format!("links[{i}].latency"))?,
                jitter: self.bounded(l.jitter.0, format!("links[{i}].jitter"))?,
                loss: l.loss.0,
                bandwidth_bps: l.bandwidth_bps,
                allow_reorder: l.allow_reorder,
            };
            params
                .validate()
                .map_err(|m| LowerError::new(K::BadLinkParams, format!("links[{i}]"), m))?;
            let name = l
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{}", l.between[0], l.between[1]));
            links.push(LinkPlan { name, a, b, params });
        }
        unique(links.iter().map(|l| l.name.as_str()), "link", "links")?;
        Ok(links)
    }

    /// A fault window `[from, until)`.
    fn window(
        &self,
        i: usize,
        from: SimDuration,
        until: SimDuration,
    ) -> Result<(SimTime, SimTime)> {
        let from = self.within(from, format!("faults[{i}].from"))?;
        let until = self.within(until, format!("faults[{i}].until"))?;
        if from > until {
            return Err(LowerError::new(
                K::WindowReversed,
                format!("faults[{i}].until"),
                "window ends before it starts",
            ));
        }
        Ok((from, until))
    }

    fn faults(&self, links: &[LinkPlan]) -> Result<Vec<FaultPlan>> {
        let mut faults = Vec::new();
        for (i, f) in self.scn.faults.iter().enumerate() {
            let link = |name: &str| {
                let names = links.iter().map(|l| l.name.as_str());
                index_of(names, name, &format!("faults[{i}].link"), "link")
                    .map(|l| LinkIx(l as u32))
            };
            faults.push(match f {
                FaultSpec::LinkDown {
                    link: l,
                    from,
                    until,
                } => {
                    let link = link(l)?;
                    let (from, until) = self.window(i, from.0, until.0)?;
                    FaultPlan::LinkDown { link, from, until }
                }
                FaultSpec::SetLink {
                    link: l,
                    at,
                    latency,
                    jitter,
                    loss,
                } => {
                    let link = link(l)?;
                    let at = self.within(at.0, format!("faults[{i}].at"))?;
                    let latency = latency
                        .map(|d| self.bounded(d.0, format!("faults[{i}].latency")))
                        .transpose()?;
                    let jitter = jitter
                        .map(|d| self.bounded(d.0, format!("faults[{i}].jitter")))
                        .transpose()?;
                    FaultPlan::SetLink {
                        link,
                        at,
                        latency,
                        jitter,
                        loss: loss.map(|p| p.0),
                    }
                }
                FaultSpec::DropPackets {
                    from,
                    until,
                    match_kind,
                    src_host,
                    dst_host,
                    dst_port,
                    src_port,
                } => {
                    let (from, until) = self.window(i, from.0, until.0)?;
                    let host = |h: &Option<String>, field: &str| {
                        h.as_deref()
                            .map(|h| self.host(h, &format!("faults[{i}].{field}")))
                            .transpose()
                    };
                    FaultPlan::DropPackets {
                        from,
                        until,
                        match_kind: filter_match(*match_kind),
                        src_host: host(src_host, "src_host")?,
                        dst_host: host(dst_host, "dst_host")?,
                        dst_port: *dst_port,
                        src_port: *src_port,
                    }
                }
            });
        }
        Ok(faults)
    }

    fn servers(&self) -> Result<Vec<ServerPlan>> {
        let scn = self.scn;
        if scn.servers.is_empty() {
            return Err(LowerError::new(
                K::NoServers,
                "servers",
                "at least one server is required",
            ));
        }
        unique(
            scn.servers.iter().map(|s| s.name.as_str()),
            "server",
            "servers",
        )?;
        let mut servers = Vec::new();
        for (i, s) in scn.servers.iter().enumerate() {
            let host = self.host(&s.host, &format!("servers[{i}].host"))?;
            if !s.address.is_unspecified()
                && !scn.hosts[host.index()].addresses.contains(&s.address)
            {
                return Err(LowerError::new(
                    K::AddressNotOnHost,
                    format!("servers[{i}].address"),
                    format!("{} is not an address of host `{}`", s.address, s.host),
                ));
            }
            if s.port == 0 {
                return Err(LowerError::new(
                    K::PortZero,
                    format!("servers[{i}].port"),
                    "port must be 1..65535",
                ));
            }
            servers.push(ServerPlan {
                name: s.name.clone(),
                host,
                local: SocketAddr::new(s.address, s.port),
            });
        }
        Ok(servers)
    }

    fn accept_model(&self, i: usize, accept: &AcceptSpec) -> Result<AcceptModel> {
        Ok(match accept {
            AcceptSpec::Immediate => AcceptModel::Immediate,
            AcceptSpec::Rate { per_second: 0 } => {
                return Err(LowerError::new(
                    K::AcceptZero,
                    format!("workers[{i}].accept.per_second"),
                    "must be greater than 0",
                ))
            }
            AcceptSpec::Rate { per_second } => AcceptModel::Rate {
                per_second: *per_second,
            },
            AcceptSpec::Batch { interval, max } if interval.0 == SimDuration::ZERO || *max == 0 => {
                return Err(LowerError::new(
                    K::AcceptZero,
                    format!("workers[{i}].accept"),
                    "interval and max must be greater than 0",
                ))
            }
            // The interval is bounded after the service time (below).
            AcceptSpec::Batch { interval, max } => AcceptModel::Batch {
                interval: interval.0,
                max: *max,
            },
        })
    }

    fn workers(&self, servers: &[ServerPlan], timeline: &mut Vec<Step>) -> Result<Vec<WorkerPlan>> {
        let scn = self.scn;
        if scn.workers.is_empty() {
            return Err(LowerError::new(
                K::NoWorkers,
                "workers",
                "at least one worker is required",
            ));
        }
        unique(
            scn.workers.iter().map(|w| w.name.as_str()),
            "worker",
            "workers",
        )?;
        let mut workers = Vec::new();
        for (i, w) in scn.workers.iter().enumerate() {
            let server = self.server(&w.server, &format!("workers[{i}].server"))?;
            let accept = self.accept_model(i, &w.accept)?;
            let service_time =
                self.bounded(w.service_time.0, format!("workers[{i}].service_time"))?;
            if let AcceptModel::Batch { interval, .. } = accept {
                self.bounded(interval, format!("workers[{i}].accept.interval"))?;
            }
            if w.backlog == 0 {
                return Err(LowerError::new(
                    K::BacklogZero,
                    format!("workers[{i}].backlog"),
                    "must be at least 1",
                ));
            }
            workers.push(WorkerPlan {
                name: w.name.clone(),
                server,
                host: servers[server.index()].host,
                backlog: w.backlog,
                accept,
                service_time,
                response_bytes: w.response_bytes,
                generation: w.generation,
                syn_retries: w.syn_retries,
                fast_open_qlen: w.fast_open_qlen,
                v6only: w.v6only,
            });
            if let Some(t) = w.listen_at {
                timeline.push(Step {
                    at: self.within(t.0, format!("workers[{i}].listen_at"))?,
                    prim: Prim::Listen(WorkerIx(i as u16)),
                    label: format!("listen {}", w.name),
                });
            }
        }
        Ok(workers)
    }

    fn rule(&self, r: &RuleSpec, path: String) -> Result<RulePlan> {
        Ok(match r {
            RuleSpec::Pass => RulePlan::Pass,
            RuleSpec::Drop => RulePlan::Drop,
            RuleSpec::NewestGeneration => RulePlan::NewestGeneration,
            RuleSpec::LeastLoaded => RulePlan::LeastLoaded,
            RuleSpec::Pick(w) => RulePlan::Pick(self.worker(w, &path)?),
            RuleSpec::Map { targets, missing } => {
                let mut resolved = Vec::new();
                for (from, to) in targets {
                    let f = self.worker(from, &format!("{path}.map.targets"))?;
                    let t = self.worker(to, &format!("{path}.map.targets.{from}"))?;
                    resolved.push((f, t));
                }
                let missing_drop = match missing.as_str() {
                    "drop" => true,
                    "pass" => false,
                    other => {
                        return Err(LowerError::new(
                            K::BadMapMissing,
                            format!("{path}.map.missing"),
                            format!("expected \"drop\" or \"pass\", got \"{other}\""),
                        ))
                    }
                };
                RulePlan::Map {
                    targets: resolved,
                    missing_drop,
                }
            }
        })
    }

    fn policies(
        &self,
        workers: &[WorkerPlan],
        timeline: &mut Vec<Step>,
    ) -> Result<Vec<PolicyPlan>> {
        let scn = self.scn;
        unique(
            scn.policies.iter().map(|p| p.name.as_str()),
            "policy",
            "policies",
        )?;
        let mut policies = Vec::new();
        for (i, p) in scn.policies.iter().enumerate() {
            let via = self.worker(&p.via, &format!("policies[{i}].via"))?;
            let on_syn = self.rule(&p.on_syn, format!("policies[{i}].on_syn"))?;
            let on_migrate = self.rule(&p.on_migrate, format!("policies[{i}].on_migrate"))?;
            let mut cancel_for = Vec::new();
            for (j, w) in p.cancel_for.iter().enumerate() {
                cancel_for.push(self.worker(w, &format!("policies[{i}].cancel_for[{j}]"))?);
            }
            policies.push(PolicyPlan {
                name: p.name.clone(),
                kind: p.kind,
                on_syn,
                on_migrate,
                cancel_for,
                via,
                host: workers[via.index()].host,
            });
            if let Some(t) = p.attach_at {
                timeline.push(Step {
                    at: self.within(t.0, format!("policies[{i}].attach_at"))?,
                    prim: Prim::AttachPolicy {
                        policy: PolicyIx(i as u32),
                        via,
                    },
                    label: format!("attach {}", p.name),
                });
            }
        }
        Ok(policies)
    }

    /// Timeline entry `i`: a primitive, or a macro expanded to primitives.
    fn action(
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

    fn clients(
        &self,
        hosts: &[HostPlan],
        links: &[LinkPlan],
        servers: &[ServerPlan],
    ) -> Result<Vec<ClientPlan>> {
        let scn = self.scn;
        unique(
            scn.clients.iter().map(|c| c.name.as_str()),
            "client",
            "clients",
        )?;
        let reach = Reach::new(hosts.len(), links);
        let mut clients = Vec::new();
        for i in 0..scn.clients.len() {
            clients.push(self.client(i, hosts, &reach, servers)?);
        }
        if clients.len() > MAX_CLIENTS {
            return Err(LowerError::new(
                K::TooManyClients,
                "clients",
                format!("at most {MAX_CLIENTS} client populations"),
            ));
        }
        Ok(clients)
    }

    fn client(
        &self,
        i: usize,
        hosts: &[HostPlan],
        reach: &Reach,
        servers: &[ServerPlan],
    ) -> Result<ClientPlan> {
        let c = &self.scn.clients[i];
        let host = self.host(&c.host, &format!("clients[{i}].host"))?;
        let server = self.server(&c.server, &format!("clients[{i}].server"))?;
        let spec = &servers[server.index()];
        let server_host = spec.host;
        let server_ip = if spec.local.ip().is_unspecified() {
            *hosts[server_host.index()]
                .addresses
                .iter()
                .find(|a| a.is_ipv4() == spec.local.is_ipv4())
                .ok_or_else(|| {
                    LowerError::new(
                        K::NoServerAddress,
                        format!("servers[{}].address", server.0),
                        "the host has no address of this family for clients to connect to",
                    )
                })?
        } else {
            spec.local.ip()
        };
        let sources: Vec<IpAddr> = hosts[host.index()]
            .addresses
            .iter()
            .copied()
            .filter(|a| a.is_ipv4() == server_ip.is_ipv4())
            .collect();
        if sources.is_empty() {
            return Err(LowerError::new(
                K::NoSourceAddress,
                format!("clients[{i}].host"),
                format!("host `{}` has no address of the server's family", c.host),
            ));
        }
        if !reach.connected(host, server_host) {
            return Err(LowerError::new(
                K::NoRoute,
                format!("clients[{i}].host"),
                format!(
                    "no route from `{}` to `{}`: add a link",
                    c.host,
                    hosts[server_host.index()].name
                ),
            ));
        }
        let arrival = self.arrival(i, &c.arrival)?;
        if c.request_bytes == 0 {
            return Err(LowerError::new(
                K::RequestZero,
                format!("clients[{i}].request_bytes"),
                "must be at least 1",
            ));
        }
        self.rates(i, &c.arrival)?;
        let start = self.within(c.start.0, format!("clients[{i}].start"))?;
        let stop = self.within(
            c.stop.map_or(self.duration, |s| s.0),
            format!("clients[{i}].stop"),
        )?;
        if stop < start {
            return Err(LowerError::new(
                K::StopBeforeStart,
                format!("clients[{i}].stop"),
                "stop is before start",
            ));
        }
        Ok(ClientPlan {
            name: c.name.clone(),
            host,
            server,
            server_host,
            server_addr: SocketAddr::new(server_ip, spec.local.port()),
            sources,
            arrival,
            start,
            stop,
            request_bytes: c.request_bytes,
            fast_open: c.fast_open,
            has_cookie: c.has_cookie,
        })
    }

    /// The arrival process, with a burst's spacing and size checked.
    fn arrival(&self, i: usize, a: &Arrival) -> Result<ArrivalPlan> {
        Ok(match a {
            Arrival::Constant { rate } => ArrivalPlan::Constant { rate: *rate },
            Arrival::Poisson { rate } => ArrivalPlan::Poisson { rate: *rate },
            Arrival::Burst { count, spacing } => {
                let spacing = self.bounded(spacing.0, format!("clients[{i}].arrival.spacing"))?;
                if *count > MAX_BURST {
                    return Err(LowerError::new(
                        K::BurstTooLarge,
                        format!("clients[{i}].arrival.count"),
                        format!("a burst is at most {MAX_BURST} connections"),
                    ));
                }
                ArrivalPlan::Burst {
                    count: *count,
                    spacing,
                }
            }
            Arrival::Ramp { from_rate, to_rate } => ArrivalPlan::Ramp {
                from_rate: *from_rate,
                to_rate: *to_rate,
            },
        })
    }

    /// Rates are positive and at most [`MAX_RATE`].
    fn rates(&self, i: usize, a: &Arrival) -> Result<()> {
        match a {
            Arrival::Constant { rate: 0 } | Arrival::Poisson { rate: 0 } => Err(LowerError::new(
                K::RateZero,
                format!("clients[{i}].arrival.rate"),
                "must be greater than 0",
            )),
            Arrival::Ramp { from_rate, to_rate } if *from_rate == 0 && *to_rate == 0 => {
                Err(LowerError::new(
                    K::RateZero,
                    format!("clients[{i}].arrival"),
                    "a ramp needs a non-zero rate",
                ))
            }
            Arrival::Ramp { from_rate, to_rate } if (*from_rate).max(*to_rate) > MAX_RATE => {
                Err(LowerError::new(
                    K::RateTooHigh,
                    format!("clients[{i}].arrival"),
                    format!("ramp rates are at most {MAX_RATE} per second"),
                ))
            }
            Arrival::Constant { rate } | Arrival::Poisson { rate } if *rate > MAX_RATE => {
                Err(LowerError::new(
                    K::RateTooHigh,
                    format!("clients[{i}].arrival.rate"),
                    format!("at most {MAX_RATE} per second"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// A worker inherits at most one listener, and never listens on its own.
fn check_heirs(timeline: &[Step], workers: &[WorkerPlan]) -> Result<()> {
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

fn filter_match(m: MatchSpec) -> FilterMatch {
    match m {
        MatchSpec::Any => FilterMatch::Any,
        MatchSpec::PureAck => FilterMatch::PureAck,
        MatchSpec::AckNoSyn => FilterMatch::AckNoSyn,
        MatchSpec::Syn => FilterMatch::Syn,
        MatchSpec::SynAck => FilterMatch::SynAck,
        MatchSpec::Rst => FilterMatch::Rst,
        MatchSpec::Data => FilterMatch::Data,
    }
}

/// Which hosts can reach each other over the links (the network routes
/// along any path, so reachability is connectivity).
struct Reach {
    /// Each host's component: the smallest host index it is connected to.
    component: Vec<usize>,
}

impl Reach {
    fn new(hosts: usize, links: &[LinkPlan]) -> Self {
        let mut component: Vec<usize> = (0..hosts).collect();
        fn root(c: &mut [usize], mut h: usize) -> usize {
            while c[h] != h {
                c[h] = c[c[h]];
                h = c[h];
            }
            h
        }
        for l in links {
            let (a, b) = (
                root(&mut component, l.a.index()),
                root(&mut component, l.b.index()),
            );
            component[a.max(b)] = a.min(b);
        }
        for h in 0..hosts {
            component[h] = root(&mut component, h);
        }
        Reach { component }
    }

    fn connected(&self, a: HostIx, b: HostIx) -> bool {
        self.component[a.index()] == self.component[b.index()]
    }
}
