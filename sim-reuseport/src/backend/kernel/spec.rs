//! [`Plan`] → [`KernelSpec`], field by field. Indices carry over unchanged
//! (plan host *i* is spec host *i*, worker *i* is worker *i*, ...), so the
//! kernel's results map back by index.
//!
//! What the kernel backend cannot do is refused here, before anything is
//! created: [`RunError::Unsupported`] names the feature and why.

use super::bpf::Holds;
use super::policy::Policies;
use crate::backend::RunError;
use crate::scenario::plan::{
    AcceptModel, ArrivalPlan, ClientPlan, FaultPlan, HostPlan, LinkIx, Plan, Prim, WorkerPlan,
};
use sim_core::{Fault, HostId, LinkParams, SimDuration};
use sim_kernel::{
    Action, ArrivalProcess, ClientSpec, HostSpec, KernelSpec, LinkSpec, ServerSpec, TimedAction,
    WorkerSpec,
};
use sim_tcp::Sysctls;
use std::collections::BTreeMap;

/// The kernel run of `plan` with `seed`; `migrate` overrides
/// `tcp_migrate_req` on every host for the whole run (the timeline's writes
/// of it are then left out, as in the simulator).
pub fn kernel_spec(plan: &Plan, seed: u64, migrate: Option<bool>) -> Result<KernelSpec, RunError> {
    let clients = plan
        .clients
        .iter()
        .map(client)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(w) = plan.workers.iter().find(|w| w.incoming_cpu.is_some()) {
        return Err(RunError::Unsupported(format!(
            "worker {}: incoming_cpu (SO_INCOMING_CPU) needs the scenario's CPUs and RSS, which the namespaces on this machine do not have",
            w.name
        )));
    }
    let cpu = |w: &&WorkerPlan| w.cpu_per_accept + w.cpu_per_request != SimDuration::ZERO;
    if let Some(w) = plan.workers.iter().find(cpu) {
        return Err(RunError::Unsupported(format!(
            "worker {}: cpu_per_accept / cpu_per_request (the simulated application CPU) are not carried out by the kernel backend's workers",
            w.name
        )));
    }
    if let Some(w) = plan.workers.iter().find(|w| w.keep_alive) {
        return Err(RunError::Unsupported(format!(
            "worker {}: keep_alive (answer without closing, close at the client's FIN) is not implemented by the kernel backend's workers and clients",
            w.name
        )));
    }
    let mut policies = Policies::new(plan)?;
    let timeline = timeline(plan, migrate, &mut policies);
    Ok(KernelSpec {
        name: plan.name.clone(),
        seed,
        duration: plan.duration,
        hosts: plan.hosts.iter().map(|h| host(h, migrate)).collect(),
        links: plan
            .links
            .iter()
            .map(|l| LinkSpec {
                name: l.name.clone(),
                a: HostId(u32::from(l.a.0)),
                b: HostId(u32::from(l.b.0)),
                params: l.params,
            })
            .collect(),
        faults: faults(plan),
        servers: plan
            .servers
            .iter()
            .map(|s| ServerSpec {
                name: s.name.clone(),
                host: HostId(u32::from(s.host.0)),
                addr: s.local,
            })
            .collect(),
        workers: plan.workers.iter().map(worker).collect(),
        clients,
        policies: policies.into_specs(),
        timeline,
    })
}

/// A host's namespace: its addresses and every sysctl the model reads,
/// written under its kernel name (the simulator's defaults are the
/// kernel's, so the namespace starts from the same values). A sysctl this
/// kernel does not have (`tcp_rto_max_ms` before 6.15) is left out when it
/// keeps its default, since the kernel then behaves as the default says.
fn host(h: &HostPlan, migrate: Option<bool>) -> HostSpec {
    let defaults = Sysctls::default();
    let mut sysctls = BTreeMap::new();
    for &name in Sysctls::NAMES {
        let Some(value) = h.sysctls.get(name) else {
            continue;
        };
        let value = match (name, migrate) {
            ("tcp_migrate_req", Some(m)) => u64::from(m),
            _ => value,
        };
        if defaults.get(name) == Some(value) && !kernel_has_sysctl(name) {
            continue;
        }
        sysctls.insert(name.to_string(), value as i64);
    }
    HostSpec {
        name: h.name.clone(),
        addresses: h.addresses.clone(),
        sysctls,
    }
}

/// Whether the running kernel has this per-namespace sysctl (looked up in
/// the host's `/proc/sys`, read-only: the same kernel as the namespaces').
fn kernel_has_sysctl(name: &str) -> bool {
    sim_kernel::sysctl::sysctl_path(name).is_ok_and(|p| std::path::Path::new(&p).exists())
}

/// `retrans_to_secs(retrans, TCP_TIMEOUT_INIT / HZ, TCP_RTO_MAX / HZ)`
/// (`net/ipv4/tcp.c`): the seconds `getsockopt(TCP_DEFER_ACCEPT)` reports
/// for `retrans` SYN-ACK timeouts, 1 + 2 + … + 2^(retrans−1) with the
/// intervals capped at 120 s. `setsockopt` with them gives back `retrans`
/// (`secs_to_retrans` rounds up), so a worker's `defer_accept` is set as
/// these seconds.
pub fn retrans_to_secs(retrans: u8) -> u32 {
    let (mut period, mut timeout) = (0u32, 1u32);
    for i in 0..retrans {
        if i > 0 {
            timeout = (timeout << 1).min(120);
        }
        period += timeout;
    }
    period
}

fn worker(w: &WorkerPlan) -> WorkerSpec {
    WorkerSpec {
        name: w.name.clone(),
        server: w.server.index(),
        backlog: w.backlog,
        // The plan's timeline holds every `listen`, `listen_at`s included.
        listen_at: None,
        accept: match w.accept {
            AcceptModel::Immediate => sim_kernel::AcceptModel::Immediate,
            AcceptModel::Rate { per_second } => sim_kernel::AcceptModel::Rate { per_second },
            AcceptModel::Batch { interval, max } => {
                sim_kernel::AcceptModel::Batch { interval, max }
            }
        },
        service_time: w.service_time,
        response_bytes: w.response_bytes,
        syn_retries: w.syn_retries,
        fast_open_qlen: w.fast_open_qlen,
        defer_accept_secs: retrans_to_secs(w.defer_accept),
        v6only: w.v6only,
    }
}

fn client(c: &ClientPlan) -> Result<ClientSpec, RunError> {
    let refuse = |what: &str| {
        Err(RunError::Unsupported(format!(
            "client population `{}`: {what}",
            c.name
        )))
    };
    if c.connect_timeout.is_some() || c.request_timeout.is_some() {
        return refuse(
            "connect_timeout / request_timeout (application deadlines) are not implemented by the kernel backend's client engine",
        );
    }
    if c.has_cookie {
        return refuse(
            "has_cookie (a Fast Open cookie held before the run) cannot be planted in a real kernel's cookie cache",
        );
    }
    let arrival = match c.arrival {
        ArrivalPlan::Constant { rate } => ArrivalProcess::Constant { rate },
        ArrivalPlan::Poisson { rate } => ArrivalProcess::Poisson { rate },
        ArrivalPlan::Burst { count, spacing } => ArrivalProcess::Burst {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            spacing,
        },
        ArrivalPlan::Ramp { from_rate, to_rate } => ArrivalProcess::Ramp { from_rate, to_rate },
    };
    Ok(ClientSpec {
        name: c.name.clone(),
        host: HostId(u32::from(c.host.0)),
        target: c.server_addr,
        sources: c.sources.clone(),
        arrival,
        start: c.start,
        stop: c.stop,
        request_bytes: c.request_bytes,
        fast_open: c.fast_open,
    })
}

/// The plan's faults as `sim_core` faults (the link emulator runs the
/// simulator's own link model); a filter's id is its index, as in the
/// simulator.
fn faults(plan: &Plan) -> Vec<Fault> {
    plan.faults
        .iter()
        .enumerate()
        .map(|(i, f)| f.to_fault(i, |link, at| link_params_at(plan, link, at, i)))
        .collect()
}

/// The parameters of `link` in force at `at` before fault `me` applies: the
/// link's own, changed by every earlier parameter change (by time, then
/// scenario order), as the simulator computes them.
fn link_params_at(plan: &Plan, link: LinkIx, at: sim_core::SimTime, me: usize) -> LinkParams {
    let mut changes: Vec<(sim_core::SimTime, usize, &FaultPlan)> = plan
        .faults
        .iter()
        .enumerate()
        .filter_map(|(j, f)| match f {
            FaultPlan::SetLink { link: l, at: t, .. }
                if *l == link && j != me && (*t < at || (*t == at && j < me)) =>
            {
                Some((*t, j, f))
            }
            _ => None,
        })
        .collect();
    changes.sort_by_key(|&(t, j, _)| (t, j));
    let mut params = plan.links[link.index()].params;
    for (_, _, f) in changes {
        if let FaultPlan::SetLink {
            latency,
            jitter,
            loss,
            ..
        } = *f
        {
            if let Some(l) = latency {
                params.latency = l;
            }
            if let Some(j) = jitter {
                params.jitter = j;
            }
            if let Some(p) = loss {
                params.loss = p;
            }
        }
    }
    params
}

/// The plan's steps as kernel actions, in order, each followed by the map
/// updates that keep the declarative policies' maps describing the
/// listeners.
fn timeline(plan: &Plan, migrate: Option<bool>, policies: &mut Policies) -> Vec<TimedAction> {
    let mut out = Vec::with_capacity(plan.timeline.len());
    let mut holds = Holds::new(plan.workers.len());
    for step in &plan.timeline {
        let action = match &step.prim {
            Prim::Listen(w) => Action::Listen(w.index()),
            Prim::Shutdown(w) => Action::Shutdown(w.index()),
            Prim::Close(w) => Action::Close(w.index()),
            Prim::StopAccepting(w) => Action::StopAccepting(w.index()),
            Prim::ResumeAccepting(w) => Action::ResumeAccepting(w.index()),
            Prim::Kill(w) => Action::Kill(w.index()),
            Prim::SetSysctl { host, name, value } => {
                if migrate.is_some() && name == "tcp_migrate_req" {
                    continue;
                }
                Action::SetSysctl {
                    host: HostId(u32::from(host.0)),
                    name: name.clone(),
                    value: *value as i64,
                }
            }
            Prim::AttachPolicy { policy, via } => Action::AttachPolicy {
                policy: policy.index(),
                via: via.index(),
            },
            Prim::DetachPolicy { via } => Action::DetachPolicy { via: via.index() },
            Prim::Handover { from, to } => Action::Handover {
                from: from.index(),
                to: to.index(),
            },
            Prim::Relisten(w, backlog) => Action::Relisten {
                worker: w.index(),
                backlog: *backlog,
            },
            Prim::MapUpdate { .. } | Prim::MapDelete { .. } => holds
                .map_action(&step.prim)
                .expect("a map action of a `bpf` policy"),
        };
        holds.after(&step.prim);
        out.push(TimedAction {
            at: step.at,
            action,
        });
        for action in policies.after(&step.prim) {
            out.push(TimedAction {
                at: step.at,
                action,
            });
        }
    }
    out
}
