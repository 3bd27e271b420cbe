//! [`run`]: setup, the timeline in real time, measurement, teardown.
//!
//! Everything the run creates is owned by [`Live`], whose `Drop` stops and
//! joins every thread, closes every socket and BPF object, and removes the
//! TUN devices and namespaces, in that order. It runs on success, on every
//! error path, on a panic of the calling thread (unwinding) and after an
//! interruption; what survives a hard crash (`SIGKILL`) is removed by the
//! next run through [`netns::remove_leftovers`].

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use sim_core::{Fault, HostId, RngStreams, SimTime, TopologyBuilder};

use crate::actions;
use crate::client::{self, EngineOutput, EngineSetup, Population};
use crate::clock::{self, Epoch, Mono};
use crate::counters::{self, Counters};
use crate::diag::DiagSocket;
use crate::env::check_environment;
use crate::error::{KernelError, Result};
use crate::forwarder::{self, Forwarder, ForwarderSetup};
use crate::hostnet::{build_host, HostNet};
use crate::lofilter::{LoFilter, LoRule};
use crate::netns::{self, panic_message};
use crate::pcap::RawPcap;
use crate::policy::LoadedPolicy;
use crate::result::*;
use crate::sampler::{self, SamplerSetup};
use crate::spec::{Action, KernelSpec, RunOptions};
use crate::sys;
use crate::validate;
use crate::worker::{self, Listeners, Shared, SockState, WorkerCtl, WorkerSetup};
use crate::StopFlag;

/// Everything a run has created. Dropping it tears it all down.
#[derive(Default)]
pub struct Live {
    pub(crate) stop: Arc<AtomicBool>,
    start: Arc<clock::StartCell>,
    pub(crate) worker_wakes: Vec<OwnedFd>,
    workers: Vec<JoinHandle<WorkerStats>>,
    client_wakes: Vec<OwnedFd>,
    clients: Vec<JoinHandle<std::io::Result<EngineOutput>>>,
    sampler: Option<JoinHandle<Vec<QueueSample>>>,
    forwarder: Option<Forwarder>,
    pub(crate) shared: Option<Shared>,
    client_open: Vec<OwnedFd>,
    pub(crate) policies: Vec<LoadedPolicy>,
    lofilters: Vec<LoFilter>,
    pub(crate) hosts: Vec<HostNet>,
}

impl Live {
    fn stop_threads(&mut self) {
        self.start.cancel();
        self.stop.store(true, Ordering::SeqCst);
        for w in self.worker_wakes.iter().chain(&self.client_wakes) {
            sys::eventfd_signal(w.as_raw_fd());
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop_threads();
        for h in self.clients.drain(..) {
            let _ = h.join();
        }
        if let Some(h) = self.sampler.take() {
            let _ = h.join();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
        drop(self.forwarder.take());
        self.client_open.clear();
        if let Some(shared) = self.shared.take() {
            let mut l = shared.0.lock().unwrap_or_else(|p| p.into_inner());
            l.socks.clear();
        }
        self.lofilters.clear();
        self.policies.clear();
        self.hosts.clear();
    }
}

/// Runs `spec` on the host kernel in real time.
///
/// Refuses with [`KernelError::Environment`] without root, `/dev/net/tun`,
/// Linux 5.14 or network namespaces, and with [`KernelError::InvalidSpec`]
/// on inconsistent input, before creating anything. Returns
/// [`KernelError::Interrupted`] if `opts.stop` is raised (after cleaning
/// up).
pub fn run(spec: &KernelSpec, opts: &RunOptions) -> Result<KernelRunResult> {
    let env = check_environment()?;
    validate::validate(spec)?;
    let mut warnings = Vec::new();
    let removed = netns::remove_leftovers();
    if !removed.is_empty() {
        warnings.push(format!(
            "removed {} namespace(s) left by a crashed earlier run: {}",
            removed.len(),
            removed.join(", ")
        ));
    }
    check_stop(&opts.stop)?;
    let mut live = Live::default();
    let setup = setup(spec, &mut live)?;
    let mut result = execute(spec, opts, &mut live, setup)?;
    result.kernel_release = env.kernel_release;
    result.warnings.splice(0..0, warnings);
    Ok(result)
}

fn check_stop(stop: &StopFlag) -> Result<()> {
    match stop.get() {
        Some(sig) => Err(KernelError::Interrupted { signal: sig as i32 }),
        None => Ok(()),
    }
}

/// Sleeps until `deadline`, waking every 10 ms to check the stop flag.
fn sleep_or_stop(deadline: Mono, stop: &StopFlag) -> Result<()> {
    loop {
        check_stop(stop)?;
        let now = clock::now();
        if now >= deadline {
            return Ok(());
        }
        clock::sleep_until(Mono(deadline.0.min(now.0 + 10_000_000)));
    }
}

/// What setup leaves for the execution phase.
struct Setup {
    before: Vec<Counters>,
    /// Server hosts (for the sampler and counters).
    inodes: Vec<(u64, usize)>,
    diag: Vec<(usize, DiagSocket)>,
    /// Hosts whose clients talk to their own host (loopback).
    loopback_hosts: Vec<usize>,
}

/// Hosts with a population connecting to the host itself.
fn loopback_hosts(spec: &KernelSpec) -> Vec<usize> {
    let mut v: Vec<usize> = spec
        .clients
        .iter()
        .filter(|c| {
            let t = c.target.ip();
            t.is_loopback() || validate::owner(spec, t) == Some(c.host)
        })
        .map(|c| c.host.0 as usize)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn setup(spec: &KernelSpec, live: &mut Live) -> Result<Setup> {
    let mut with_tun = vec![false; spec.hosts.len()];
    for l in &spec.links {
        with_tun[l.a.0 as usize] = true;
        with_tun[l.b.0 as usize] = true;
    }
    for (h, host) in spec.hosts.iter().enumerate() {
        live.hosts.push(build_host(host, with_tun[h])?);
    }
    let loopback_hosts = loopback_hosts(spec);
    for &h in &loopback_hosts {
        let rules = lo_rules(spec, h);
        if !rules.is_empty() {
            live.lofilters
                .push(LoFilter::attach(&live.hosts[h].ns, h, rules)?);
        }
    }
    // Listening sockets, bound now inside their server's namespace.
    let mut socks = Vec::new();
    let mut inodes = Vec::new();
    for (i, w) in spec.workers.iter().enumerate() {
        let server = &spec.servers[w.server];
        let fd = live.hosts[server.host.0 as usize].ns.run_in(|| {
            worker::create_listener(w, server).map_err(|e| {
                KernelError::sys(format!("worker `{}`: binding {}", w.name, server.addr), e)
            })
        })?;
        inodes.push((sys::socket_inode(fd.as_raw_fd()).unwrap_or(0), i));
        socks.push(Some(fd));
    }
    let n = spec.workers.len();
    live.shared = Some(Arc::new((
        Mutex::new(Listeners {
            socks,
            states: vec![SockState::Bound; n],
            ctl: (0..n)
                .map(|i| WorkerCtl {
                    current: Some(i),
                    accepting: true,
                    generation: 0,
                    killed: false,
                    kill_done: false,
                })
                .collect(),
        }),
        Condvar::new(),
    )));
    for p in &spec.policies {
        let loaded = LoadedPolicy::load(p)?;
        for e in &p.initial_entries {
            actions::map_update(live, &loaded, e, 0)
                .map_err(|m| KernelError::Bpf(format!("policy `{}`: {m}", p.name)))?;
        }
        live.policies.push(loaded);
    }
    let mut server_hosts: Vec<usize> = spec.servers.iter().map(|s| s.host.0 as usize).collect();
    server_hosts.sort_unstable();
    server_hosts.dedup();
    let mut diag = Vec::new();
    for &h in &server_hosts {
        let s = live.hosts[h]
            .ns
            .run_in(|| DiagSocket::open().map_err(|e| KernelError::sys("opening sock_diag", e)))?;
        diag.push((h, s));
    }
    let before = read_all_counters(live)?;
    Ok(Setup {
        before,
        inodes,
        diag,
        loopback_hosts,
    })
}

/// The filter faults that apply to host `h`'s loopback traffic.
fn lo_rules(spec: &KernelSpec, h: usize) -> Vec<LoRule> {
    let me = HostId(h as u32);
    spec.faults
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f {
            Fault::Filter {
                rule, from, until, ..
            } if rule.src_host.map_or(true, |x| x == me)
                && rule.dst_host.map_or(true, |x| x == me) =>
            {
                Some(LoRule {
                    fault: i,
                    rule: *rule,
                    from: *from,
                    until: *until,
                })
            }
            _ => None,
        })
        .collect()
}

fn read_all_counters(live: &Live) -> Result<Vec<Counters>> {
    live.hosts
        .iter()
        .map(|h| h.ns.run_in(counters::read_counters))
        .collect()
}

/// The link model: `sim_core`'s network with the spec's hosts, links and
/// faults (filter ids are fault indices).
pub fn build_network(spec: &KernelSpec) -> sim_core::Network {
    let mut b = TopologyBuilder::new();
    for h in &spec.hosts {
        let addrs: Vec<_> = h
            .addresses
            .iter()
            .copied()
            .filter(|a| !a.is_loopback())
            .collect();
        b.add_host(&h.name, &addrs);
    }
    for l in &spec.links {
        b.add_link(l.a, l.b, l.params);
    }
    let mut net = b.build(&RngStreams::new(spec.seed));
    for (i, f) in spec.faults.iter().enumerate() {
        let f = match *f {
            Fault::Filter {
                rule, from, until, ..
            } => Fault::Filter {
                id: sim_core::FilterId(i as u32),
                rule,
                from,
                until,
            },
            other => other,
        };
        net.add_fault(f);
    }
    net
}

/// The timeline with `listen_at`s and `attach_at`s merged in, in the
/// simulator's same-instant order.
pub fn merged_timeline(spec: &KernelSpec) -> Vec<(SimTime, Action)> {
    let mut v: Vec<(SimTime, u8, usize, Action)> = Vec::new();
    for (i, w) in spec.workers.iter().enumerate() {
        if let Some(t) = w.listen_at {
            v.push((t, 0, i, Action::Listen(i)));
        }
    }
    for (i, p) in spec.policies.iter().enumerate() {
        if let Some(t) = p.attach_at {
            v.push((
                t,
                1,
                i,
                Action::AttachPolicy {
                    policy: i,
                    via: p.via,
                },
            ));
        }
    }
    for (i, a) in spec.timeline.iter().enumerate() {
        v.push((a.at, 2, i, a.action.clone()));
    }
    v.sort_by_key(|(t, k, i, _)| (*t, *k, *i));
    v.into_iter().map(|(t, _, _, a)| (t, a)).collect()
}

fn spawn_threads(
    spec: &KernelSpec,
    opts: &RunOptions,
    live: &mut Live,
    s: &mut Setup,
) -> Result<()> {
    let spawn_err = |e| KernelError::sys("starting a thread", e);
    let tuns: Vec<Option<i32>> = live
        .hosts
        .iter()
        .map(|h| h.tun.as_ref().map(|t| t.as_raw_fd()))
        .collect();
    let mut captures = Vec::new();
    let pcap = match &opts.pcap {
        Some(p) => {
            for &h in &s.loopback_hosts {
                captures.push(live.hosts[h].ns.run_in(|| {
                    forwarder::open_lo_capture()
                        .map_err(|e| KernelError::sys("opening a capture on lo", e))
                })?);
            }
            Some(
                RawPcap::create(p)
                    .map_err(|e| KernelError::sys(format!("creating {}", p.display()), e))?,
            )
        }
        None => None,
    };
    if tuns.iter().any(Option::is_some) || pcap.is_some() {
        live.forwarder = Some(
            Forwarder::spawn(ForwarderSetup {
                network: build_network(spec),
                tuns,
                captures,
                pcap,
                start: live.start.clone(),
                realtime: opts.realtime,
            })
            .map_err(spawn_err)?,
        );
    }
    let shared = live.shared.clone().expect("listeners");
    for (i, w) in spec.workers.iter().enumerate() {
        let wake = sys::eventfd().map_err(|e| KernelError::sys("eventfd", e))?;
        let setup = WorkerSetup {
            index: i,
            spec: w.clone(),
            shared: shared.clone(),
            wake: wake.as_raw_fd(),
            stop: live.stop.clone(),
            start: live.start.clone(),
            realtime: opts.realtime,
        };
        live.worker_wakes.push(wake);
        let h = std::thread::Builder::new()
            .name(format!("rpsim-w{i}"))
            .spawn(move || worker::run_worker(setup))
            .map_err(spawn_err)?;
        live.workers.push(h);
    }
    let mut client_hosts: Vec<HostId> = spec.clients.iter().map(|c| c.host).collect();
    client_hosts.sort_unstable();
    client_hosts.dedup();
    for h in client_hosts {
        let populations: Vec<Population> = spec
            .clients
            .iter()
            .enumerate()
            .filter(|(_, c)| c.host == h)
            .map(|(i, c)| Population {
                index: i,
                spec: c.clone(),
                schedule: crate::arrivals::schedule(spec.seed, i, c),
            })
            .collect();
        let wake = sys::eventfd().map_err(|e| KernelError::sys("eventfd", e))?;
        let setup = EngineSetup {
            populations,
            start: live.start.clone(),
            deadline: SimTime(spec.duration.as_nanos()),
            stop: live.stop.clone(),
            wake: wake.as_raw_fd(),
            realtime: opts.realtime,
        };
        live.client_wakes.push(wake);
        let ns = live.hosts[h.0 as usize]
            .ns
            .dup_fd()
            .map_err(|e| KernelError::sys("dup of a namespace fd", e))?;
        let handle = std::thread::Builder::new()
            .name(format!("rpsim-c{}", h.0))
            .spawn(move || client::run_engine(ns, setup))
            .map_err(spawn_err)?;
        live.clients.push(handle);
    }
    let setup = SamplerSetup {
        sockets: std::mem::take(&mut s.diag),
        inodes: s.inodes.clone(),
        workers: spec.workers.len(),
        servers: spec.servers.clone(),
        interval: opts.sample_interval,
        start: live.start.clone(),
        stop: live.stop.clone(),
        realtime: opts.realtime,
    };
    live.sampler = Some(
        std::thread::Builder::new()
            .name("rpsim-sampler".into())
            .spawn(move || sampler::run_sampler(setup))
            .map_err(spawn_err)?,
    );
    Ok(())
}

/// Restores the calling thread's scheduling when dropped.
struct SchedGuard(Option<(i32, i32)>);

impl Drop for SchedGuard {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            clock::restore_scheduling(old);
        }
    }
}

fn execute(
    spec: &KernelSpec,
    opts: &RunOptions,
    live: &mut Live,
    mut s: Setup,
) -> Result<KernelRunResult> {
    spawn_threads(spec, opts, live, &mut s)?;
    // The timeline runs on the caller's thread, raised for the run only.
    let _sched = SchedGuard(
        opts.realtime
            .then(|| clock::set_realtime(clock::prio::TIMELINE))
            .flatten(),
    );
    // Scenario time 0: every thread exists and waits for it.
    let epoch = Epoch(Mono(clock::now().0 + opts.start_lead.as_nanos()));
    for f in &live.lofilters {
        f.arm(epoch)?;
    }
    live.start.start(epoch);
    let mut records = Vec::new();
    for (at, action) in merged_timeline(spec) {
        sleep_or_stop(epoch.at(at), &opts.stop)?;
        let executed = epoch.elapsed();
        let error = actions::execute(spec, live, &action).err();
        records.push(ActionRecord {
            planned: at,
            executed,
            label: actions::label(spec, &action),
            error,
        });
    }
    sleep_or_stop(epoch.at(SimTime(spec.duration.as_nanos())), &opts.stop)?;

    // Clients stop at the deadline by themselves; their open sockets stay
    // open until the counters have been read.
    let mut connections = Vec::new();
    for h in live.clients.drain(..) {
        let out = h
            .join()
            .map_err(|p| {
                KernelError::ThreadPanicked(format!("client engine: {}", panic_message(&*p)))
            })?
            .map_err(|e| KernelError::sys("client engine", e))?;
        connections.extend(out.records);
        live.client_open.extend(out.open);
    }
    connections.sort_by_key(|c| (c.planned, c.population));
    live.stop.store(true, Ordering::SeqCst);
    let samples = match live.sampler.take() {
        Some(h) => h
            .join()
            .map_err(|p| KernelError::ThreadPanicked(format!("sampler: {}", panic_message(&*p))))?,
        None => Vec::new(),
    };
    let after = read_all_counters(live)?;
    live.stop_threads();
    let mut workers = Vec::new();
    for h in live.workers.drain(..) {
        workers.push(
            h.join().map_err(|p| {
                KernelError::ThreadPanicked(format!("worker: {}", panic_message(&*p)))
            })?,
        );
    }
    let (forwarder, pcap) = live
        .forwarder
        .take()
        .map(Forwarder::finish)
        .unwrap_or_default();
    let pcap_packets = match pcap {
        Some(p) => p
            .finish()
            .map_err(|e| KernelError::sys("writing the pcap file", e))?,
        None => 0,
    };
    finish_result(
        spec,
        live,
        s,
        connections,
        samples,
        after,
        workers,
        forwarder,
        records,
        pcap_packets,
    )
}

#[allow(clippy::too_many_arguments)]
fn finish_result(
    spec: &KernelSpec,
    live: &Live,
    s: Setup,
    connections: Vec<ConnRecord>,
    samples: Vec<QueueSample>,
    after: Vec<Counters>,
    mut workers: Vec<WorkerStats>,
    forwarder: ForwarderStats,
    actions: Vec<ActionRecord>,
    pcap_packets: u64,
) -> Result<KernelRunResult> {
    let states = {
        let l = live
            .shared
            .as_ref()
            .expect("listeners")
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        l.states.clone()
    };
    for (i, w) in workers.iter_mut().enumerate() {
        w.peak_accept_queue = samples
            .iter()
            .filter_map(|q| q.accept_queue[i])
            .max()
            .unwrap_or(0);
        w.final_state = states[i].name().to_owned();
    }
    let peak_syn_recv = (0..spec.servers.len())
        .map(|i| samples.iter().map(|q| q.syn_recv[i]).max().unwrap_or(0))
        .collect();
    let namespaces = spec
        .hosts
        .iter()
        .zip(s.before)
        .zip(after)
        .map(|((h, before), after)| NamespaceCounters {
            host: h.name.clone(),
            before,
            after,
        })
        .collect();
    let lo_filters = live
        .lofilters
        .iter()
        .flat_map(|f| {
            f.dropped()
                .into_iter()
                .map(move |(filter, dropped)| LoFilterStats {
                    host: spec.hosts[f.host].name.clone(),
                    filter,
                    dropped,
                })
        })
        .collect();
    let mut policy_data = Vec::new();
    for (p, loaded) in spec.policies.iter().zip(&live.policies) {
        for m in
            loaded.object.maps.iter().filter(|m| {
                m.map_type == crate::bpf::BPF_MAP_TYPE_ARRAY && !m.name.starts_with('.')
            })
        {
            policy_data.push(PolicyData {
                policy: p.name.clone(),
                section: m.name.clone(),
                bytes: read_array(m),
            });
        }
        for m in loaded
            .object
            .maps
            .iter()
            .filter(|m| m.name == ".bss" || m.name.starts_with(".data"))
        {
            let mut bytes = vec![0u8; m.value_size as usize];
            if crate::bpf::map_lookup(m.fd.as_raw_fd(), &0u32.to_ne_bytes(), &mut bytes).is_ok() {
                policy_data.push(PolicyData {
                    policy: p.name.clone(),
                    section: m.name.clone(),
                    bytes,
                });
            }
        }
    }
    let mut warnings = Vec::new();
    let late = forwarder.lateness.p99;
    if late.as_nanos() > 1_000_000 {
        warnings.push(format!(
            "the link emulator delivered 1% of packets more than {late} late (CPU contention?)"
        ));
    }
    Ok(KernelRunResult {
        kernel_release: String::new(),
        connections,
        namespaces,
        workers,
        samples,
        peak_syn_recv,
        forwarder,
        lo_filters,
        policy_data,
        actions,
        pcap_packets,
        warnings,
    })
}

/// Most entries read from an array map at the end of a run.
const MAX_ARRAY_READ: u32 = 4096;

/// The values of an array map, concatenated in key order (keys from 0
/// until the first failed lookup, i.e. `max_entries`).
fn read_array(m: &crate::bpf::MapInfo) -> Vec<u8> {
    let mut out = Vec::new();
    let mut value = vec![0u8; m.value_size as usize];
    for key in 0..MAX_ARRAY_READ {
        if crate::bpf::map_lookup(m.fd.as_raw_fd(), &key.to_ne_bytes(), &mut value).is_err() {
            break;
        }
        out.extend_from_slice(&value);
    }
    out
}
