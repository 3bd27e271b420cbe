//! Lowering of the network: hosts (addresses, sysctls), links, faults.

use super::{index_of, unique, Cx, Result, K, MAX_HOSTS};
use crate::scenario::format::{FaultSpec, MatchSpec};
use crate::scenario::plan::*;
use crate::scenario::LowerError;
use sim_core::{FilterMatch, LinkParams, SimDuration, SimTime};
use sim_tcp::Sysctls;
use std::collections::BTreeSet;

impl Cx<'_> {
    pub(super) fn hosts(&self) -> Result<Vec<HostPlan>> {
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
            let hz = match h.hz {
                None => sim_core::Hz::DEFAULT,
                Some(hz) => sim_core::Hz::new(hz).ok_or_else(|| {
                    LowerError::new(
                        K::BadHz,
                        format!("hosts[{i}].hz"),
                        format!("CONFIG_HZ is one of 100, 250, 300, 1000; got {hz}"),
                    )
                })?,
            };
            let mode = h.timer_mode.map(Into::into).unwrap_or_default();
            let cpus = h.cpus.unwrap_or(1);
            if cpus == 0 {
                return Err(LowerError::new(
                    K::CpusZero,
                    format!("hosts[{i}].cpus"),
                    "a host has at least 1 CPU",
                ));
            }
            hosts.push(HostPlan {
                name: h.name.clone(),
                addresses: h.addresses.clone(),
                sysctls,
                timers: sim_core::TimerModel { hz, mode },
                cpus,
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

    pub(super) fn links(&self) -> Result<Vec<LinkPlan>> {
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

    pub(super) fn faults(&self, links: &[LinkPlan]) -> Result<Vec<FaultPlan>> {
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
pub(super) struct Reach {
    /// Each host's component: the smallest host index it is connected to.
    component: Vec<usize>,
}

impl Reach {
    pub(super) fn new(hosts: usize, links: &[LinkPlan]) -> Self {
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

    pub(super) fn connected(&self, a: HostIx, b: HostIx) -> bool {
        self.component[a.index()] == self.component[b.index()]
    }
}
