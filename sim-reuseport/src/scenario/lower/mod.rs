//! Lowering: [`Scenario`] → [`Plan`]. Every name is resolved to a typed
//! index, every cross-reference and bound checked, macros expanded, and
//! every error a user can cause raised here, with the JSON path of the
//! field. A backend builds and runs the `Plan` with no error path of its
//! own for the input.
//!
//! The checks run in a fixed order (the order of the file's sections, and
//! within a section, of its entries), so a scenario with several mistakes
//! always reports the same first one.

mod bpf;
mod clients;
mod error;
mod lifecycle;
mod network;
mod servers;
mod timeline;

pub use error::{LowerError, LowerErrorKind};

use super::format::Scenario;
use super::plan::*;
use error::LowerErrorKind as K;
use lifecycle::{check_lifecycle, declared_origins};
use sim_core::{SimDuration, SimTime};
use std::collections::BTreeSet;
use timeline::{check_heirs, check_relistens};

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

type Result<T> = std::result::Result<T, LowerError>;

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
    let mut origins = declared_origins(&timeline);
    for (i, a) in scn.timeline.iter().enumerate() {
        cx.action(i, a, &workers, &policies, &mut timeline, &mut origins)?;
    }
    // Stable: by time, then declaration order (workers' listens, then
    // policies' attaches, then the timeline).
    let mut order: Vec<usize> = (0..timeline.len()).collect();
    order.sort_by_key(|&i| timeline[i].at);
    check_lifecycle(&order, &timeline, &origins, &workers)?;
    timeline.sort_by_key(|s| s.at);
    check_heirs(&timeline, &workers)?;
    check_relistens(&timeline, &workers)?;
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

    /// [`Cx::within`] for a time computed from what the user wrote
    /// (`written`, e.g. `at 2s + drain 500ms`), which the error quotes.
    fn within_as(&self, t: SimDuration, path: String, written: &str) -> Result<SimTime> {
        self.within(t, path).map_err(|mut e| {
            if written != format!("at {t}") {
                e.message = format!(
                    "time {t} ({written}) is after the scenario's duration {}",
                    self.duration
                );
            }
            e
        })
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

    /// A lowered host's CPU count (the scenario's `cpus`, default 1).
    fn host_cpus(&self, h: HostIx) -> u16 {
        self.scn.hosts[h.index()].cpus.unwrap_or(1)
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
}
