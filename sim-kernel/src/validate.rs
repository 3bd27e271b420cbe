//! Checks a [`KernelSpec`] before anything is created, so that bad input is
//! an [`KernelError::InvalidSpec`] naming the field, never a panic or a
//! half-built run.

use std::collections::BTreeSet;
use std::net::IpAddr;

use sim_core::{Fault, HostId};

use crate::error::{KernelError, Result};
use crate::spec::{AcceptModel, Action, ArrivalProcess, KernelSpec, MapDatum};

fn bad(msg: String) -> KernelError {
    KernelError::InvalidSpec(msg)
}

/// The host owning `a` (loopback addresses belong to every host).
pub fn host_has(spec: &KernelSpec, h: HostId, a: IpAddr) -> bool {
    a.is_loopback() || spec.hosts[h.0 as usize].addresses.contains(&a)
}

/// The host owning a non-loopback address.
pub fn owner(spec: &KernelSpec, a: IpAddr) -> Option<HostId> {
    spec.hosts
        .iter()
        .position(|h| h.addresses.contains(&a))
        .map(|i| HostId(i as u32))
}

/// Hosts reachable from `from` over links.
fn reachable(spec: &KernelSpec, from: HostId) -> BTreeSet<HostId> {
    let mut seen = BTreeSet::from([from]);
    let mut stack = vec![from];
    while let Some(h) = stack.pop() {
        for l in &spec.links {
            let other = if l.a == h {
                l.b
            } else if l.b == h {
                l.a
            } else {
                continue;
            };
            if seen.insert(other) {
                stack.push(other);
            }
        }
    }
    seen
}

/// Validates every reference, window and value.
pub fn validate(spec: &KernelSpec) -> Result<()> {
    let nh = spec.hosts.len();
    let nw = spec.workers.len();
    if spec.duration.as_nanos() == 0 {
        return Err(bad("duration must be positive".into()));
    }
    if nh == 0 {
        return Err(bad("no hosts".into()));
    }
    let host_ok = |h: HostId, what: String| -> Result<()> {
        if (h.0 as usize) < nh {
            Ok(())
        } else {
            Err(bad(format!("{what}: unknown host #{}", h.0)))
        }
    };
    let mut names = BTreeSet::new();
    let mut addrs = BTreeSet::new();
    for (i, h) in spec.hosts.iter().enumerate() {
        if !names.insert(h.name.as_str()) {
            return Err(bad(format!("hosts[{i}]: duplicate name `{}`", h.name)));
        }
        for a in &h.addresses {
            if a.is_unspecified() {
                return Err(bad(format!(
                    "hosts[{i}].addresses: unspecified address {a}"
                )));
            }
            if !a.is_loopback() && !addrs.insert(*a) {
                return Err(bad(format!("hosts[{i}].addresses: {a} is on two hosts")));
            }
        }
        for k in h.sysctls.keys() {
            crate::sysctl::sysctl_path(k).map_err(|e| bad(format!("hosts[{i}].sysctls: {e}")))?;
        }
    }
    let mut pairs = BTreeSet::new();
    for (i, l) in spec.links.iter().enumerate() {
        host_ok(l.a, format!("links[{i}].a"))?;
        host_ok(l.b, format!("links[{i}].b"))?;
        if l.a == l.b {
            return Err(bad(format!("links[{i}]: a link from a host to itself")));
        }
        if !pairs.insert((l.a.min(l.b), l.a.max(l.b))) {
            return Err(bad(format!(
                "links[{i}]: a second link between the same hosts"
            )));
        }
        l.params
            .validate()
            .map_err(|e| bad(format!("links[{i}]: {e}")))?;
    }
    for (i, f) in spec.faults.iter().enumerate() {
        let link_ok = |l: sim_core::LinkId| {
            if (l.0 as usize) < spec.links.len() {
                Ok(())
            } else {
                Err(bad(format!("faults[{i}]: unknown link #{}", l.0)))
            }
        };
        match f {
            Fault::LinkDown { link, from, until } => {
                link_ok(*link)?;
                if from > until {
                    return Err(bad(format!("faults[{i}]: window ends before it starts")));
                }
            }
            Fault::SetLinkParams { link, params, .. } => {
                link_ok(*link)?;
                params
                    .validate()
                    .map_err(|e| bad(format!("faults[{i}]: {e}")))?;
            }
            Fault::Filter {
                rule, from, until, ..
            } => {
                if from > until {
                    return Err(bad(format!("faults[{i}]: window ends before it starts")));
                }
                for h in [rule.src_host, rule.dst_host].into_iter().flatten() {
                    host_ok(h, format!("faults[{i}]"))?;
                }
            }
        }
    }
    for (i, s) in spec.servers.iter().enumerate() {
        host_ok(s.host, format!("servers[{i}].host"))?;
        if !s.addr.ip().is_unspecified() && !host_has(spec, s.host, s.addr.ip()) {
            return Err(bad(format!(
                "servers[{i}].addr: {} is not an address of host `{}`",
                s.addr.ip(),
                spec.hosts[s.host.0 as usize].name
            )));
        }
        if s.addr.port() == 0 {
            return Err(bad(format!("servers[{i}].addr: port 0")));
        }
    }
    for (i, w) in spec.workers.iter().enumerate() {
        if w.server >= spec.servers.len() {
            return Err(bad(format!(
                "workers[{i}].server: unknown server #{}",
                w.server
            )));
        }
        if w.backlog == 0 {
            return Err(bad(format!("workers[{i}].backlog: must be at least 1")));
        }
        match w.accept {
            AcceptModel::Rate { per_second: 0 } => {
                return Err(bad(format!("workers[{i}].accept: rate must be positive")))
            }
            AcceptModel::Batch { max: 0, .. } => {
                return Err(bad(format!(
                    "workers[{i}].accept: batch max must be positive"
                )))
            }
            AcceptModel::Batch { interval, .. } if interval.as_nanos() == 0 => {
                return Err(bad(format!(
                    "workers[{i}].accept: batch interval must be positive"
                )))
            }
            _ => {}
        }
    }
    for (i, c) in spec.clients.iter().enumerate() {
        let p = format!("clients[{i}]");
        host_ok(c.host, format!("{p}.host"))?;
        let t = c.target.ip();
        if t.is_unspecified() || c.target.port() == 0 {
            return Err(bad(format!(
                "{p}.target: {} is not a connectable address",
                c.target
            )));
        }
        if c.sources.is_empty() {
            return Err(bad(format!("{p}.sources: empty")));
        }
        for s in &c.sources {
            if s.is_ipv4() != t.is_ipv4() {
                return Err(bad(format!(
                    "{p}.sources: {s} is not of the target's family"
                )));
            }
            if !host_has(spec, c.host, *s) {
                return Err(bad(format!(
                    "{p}.sources: {s} is not an address of the client host"
                )));
            }
        }
        let dst = if t.is_loopback() {
            Some(c.host)
        } else {
            owner(spec, t)
        };
        let Some(dst) = dst else {
            return Err(bad(format!("{p}.target: no host owns {t}")));
        };
        if !reachable(spec, c.host).contains(&dst) {
            return Err(bad(format!(
                "{p}: no route from host `{}` to host `{}`",
                spec.hosts[c.host.0 as usize].name, spec.hosts[dst.0 as usize].name
            )));
        }
        match &c.arrival {
            ArrivalProcess::Constant { rate: 0 } | ArrivalProcess::Poisson { rate: 0 } => {
                return Err(bad(format!("{p}.arrival: rate must be positive")))
            }
            ArrivalProcess::Schedule(v) if v.windows(2).any(|w| w[0] > w[1]) => {
                return Err(bad(format!("{p}.arrival: schedule not sorted")))
            }
            _ => {}
        }
    }
    let worker_ok = |w: usize, what: String| {
        if w < nw {
            Ok(())
        } else {
            Err(bad(format!("{what}: unknown worker #{w}")))
        }
    };
    let datum_ok = |d: &MapDatum, what: String| match d {
        MapDatum::ListenerFd(w) | MapDatum::ListenerCookie(w) => worker_ok(*w, what),
        _ => Ok(()),
    };
    for (i, p) in spec.policies.iter().enumerate() {
        worker_ok(p.via, format!("policies[{i}].via"))?;
        for (j, e) in p.initial_entries.iter().enumerate() {
            for d in [&e.key, &e.value] {
                if matches!(d, MapDatum::ListenerFd(_)) {
                    return Err(bad(format!(
                        "policies[{i}].initial_entries[{j}]: a listener fd can only be stored once it listens (use a timeline map_update)"
                    )));
                }
                datum_ok(d, format!("policies[{i}].initial_entries[{j}]"))?;
            }
        }
    }
    for (i, a) in spec.timeline.iter().enumerate() {
        let p = format!("timeline[{i}]");
        if a.at.as_nanos() > spec.duration.as_nanos() {
            return Err(bad(format!("{p}.at: after the run's duration")));
        }
        match &a.action {
            Action::Listen(w)
            | Action::Shutdown(w)
            | Action::Close(w)
            | Action::StopAccepting(w)
            | Action::ResumeAccepting(w)
            | Action::Kill(w)
            | Action::DetachPolicy { via: w }
            | Action::Relisten { worker: w, .. } => worker_ok(*w, p)?,
            Action::Handover { from, to } => {
                worker_ok(*from, p.clone())?;
                worker_ok(*to, p.clone())?;
                if spec.servers[spec.workers[*from].server].host
                    != spec.servers[spec.workers[*to].server].host
                {
                    return Err(bad(format!(
                        "{p}: handover between workers of different hosts"
                    )));
                }
            }
            Action::SetSysctl { host, name, .. } => {
                host_ok(*host, p.clone())?;
                crate::sysctl::sysctl_path(name).map_err(|e| bad(format!("{p}: {e}")))?;
            }
            Action::AttachPolicy { policy, via } => {
                worker_ok(*via, p.clone())?;
                if *policy >= spec.policies.len() {
                    return Err(bad(format!("{p}: unknown policy #{policy}")));
                }
            }
            Action::MapUpdate {
                policy,
                entry,
                flags,
            } => {
                if *flags > 2 {
                    return Err(bad(format!(
                        "{p}: map update flags {flags} (expected BPF_ANY 0, BPF_NOEXIST 1 or BPF_EXIST 2)"
                    )));
                }
                if *policy >= spec.policies.len() {
                    return Err(bad(format!("{p}: unknown policy #{policy}")));
                }
                datum_ok(&entry.key, p.clone())?;
                datum_ok(&entry.value, p)?;
            }
            Action::MapDelete { policy, key, .. } => {
                if *policy >= spec.policies.len() {
                    return Err(bad(format!("{p}: unknown policy #{policy}")));
                }
                datum_ok(key, p)?;
            }
        }
    }
    Ok(())
}
