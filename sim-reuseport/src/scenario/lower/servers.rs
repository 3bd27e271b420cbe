//! Lowering of the server side: servers (service addresses), the workers
//! that bind them, and the policies loaded through the workers' sockets.

use super::{unique, Cx, Result, K};
use crate::scenario::format::{AcceptSpec, RuleSpec};
use crate::scenario::plan::*;
use crate::scenario::LowerError;
use sim_core::SimDuration;
use std::net::SocketAddr;

impl Cx<'_> {
    pub(super) fn servers(&self) -> Result<Vec<ServerPlan>> {
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

    pub(super) fn workers(
        &self,
        servers: &[ServerPlan],
        timeline: &mut Vec<Step>,
    ) -> Result<Vec<WorkerPlan>> {
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
            let host = servers[server.index()].host;
            if let Some(cpu) = w.incoming_cpu {
                let cpus = self.host_cpus(host);
                if cpu >= cpus {
                    return Err(LowerError::new(
                        K::IncomingCpuOutOfRange,
                        format!("workers[{i}].incoming_cpu"),
                        format!("CPU {cpu} is not a CPU of its host, which has {cpus} (0..{cpus})"),
                    ));
                }
            }
            workers.push(WorkerPlan {
                name: w.name.clone(),
                server,
                host: servers[server.index()].host,
                backlog: w.backlog,
                accept,
                service_time,
                response_bytes: w.response_bytes,
                keep_alive: w.keep_alive,
                generation: w.generation,
                syn_retries: w.syn_retries,
                fast_open_qlen: w.fast_open_qlen,
                defer_accept: sim_tcp::secs_to_retrans(w.defer_accept),
                v6only: w.v6only,
                incoming_cpu: w.incoming_cpu,
                cpu_per_accept: self.bounded(
                    w.cpu_per_accept.map_or(SimDuration::ZERO, |d| d.0),
                    format!("workers[{i}].cpu_per_accept"),
                )?,
                cpu_per_request: self.bounded(
                    w.cpu_per_request.map_or(SimDuration::ZERO, |d| d.0),
                    format!("workers[{i}].cpu_per_request"),
                )?,
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

    pub(super) fn policies(
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
            let bpf = match &p.bpf {
                Some(spec) => Some(self.bpf(i, p, spec)?),
                None => None,
            };
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
                bpf,
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
}
