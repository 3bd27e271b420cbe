//! Shared helpers of the kernel tests: the environment gate and a lock
//! that runs kernel scenarios one at a time (they are timing-sensitive and
//! the machine has 2 cores).

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

static KERNEL: Mutex<()> = Mutex::new(());

/// `Some(guard)` if the kernel backend can run here; otherwise prints why
/// the test is skipped and returns `None` (the test then returns without
/// asserting anything, and says so).
pub fn kernel_or_skip(test: &str) -> Option<MutexGuard<'static, ()>> {
    match sim_kernel::check_environment() {
        Ok(_) => Some(KERNEL.lock().unwrap_or_else(|p| p.into_inner())),
        Err(e) => {
            eprintln!("SKIPPED {test}: {e}");
            None
        }
    }
}

/// Names of this process's namespaces still under /run/netns.
pub fn my_namespaces() -> Vec<String> {
    sim_kernel::netns::list_mine()
}

use std::collections::BTreeMap;

use sim_core::{HostId, LinkParams, SimDuration, SimTime};
use sim_kernel::*;

pub fn ms(n: u64) -> SimDuration {
    SimDuration::from_millis(n)
}

pub fn at_ms(n: u64) -> SimTime {
    SimTime(n * 1_000_000)
}

pub fn host(name: &str, addrs: &[&str], sysctls: &[(&str, i64)]) -> HostSpec {
    HostSpec {
        name: name.into(),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        sysctls: sysctls.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
    }
}

pub fn worker(name: &str, server: usize, listen_at: Option<u64>) -> WorkerSpec {
    WorkerSpec {
        name: name.into(),
        server,
        backlog: 128,
        listen_at: listen_at.map(at_ms),
        accept: AcceptModel::Immediate,
        service_time: ms(1),
        response_bytes: 1000,
        syn_retries: 0,
        fast_open_qlen: 0,
        v6only: false,
    }
}

/// Two hosts (`server` 10.0.0.1 / fd00::1, `clients` 10.0.1.1 / fd00:1::1)
/// over one link of `latency` one way; one server on port 8080 with
/// `workers` workers listening at 0; no clients yet.
pub fn two_hosts(latency: SimDuration, workers: usize, duration_ms: u64) -> KernelSpec {
    KernelSpec {
        name: "two-hosts".into(),
        seed: 1,
        duration: ms(duration_ms),
        hosts: vec![
            host("server", &["10.0.0.1", "fd00::1"], &[]),
            host("clients", &["10.0.1.1", "fd00:1::1"], &[]),
        ],
        links: vec![LinkSpec {
            name: "wan".into(),
            a: HostId(1),
            b: HostId(0),
            params: LinkParams::with_latency(latency),
        }],
        faults: vec![],
        servers: vec![ServerSpec {
            name: "web".into(),
            host: HostId(0),
            addr: "10.0.0.1:8080".parse().unwrap(),
        }],
        workers: (0..workers).map(|i| worker(&format!("w{i}"), 0, Some(0))).collect(),
        clients: vec![],
        policies: vec![],
        timeline: vec![],
    }
}

pub fn clients(host: u32, target: &str, src: &str, arrival: ArrivalProcess, stop_ms: u64) -> ClientSpec {
    ClientSpec {
        name: "c".into(),
        host: HostId(host),
        target: target.parse().unwrap(),
        sources: vec![src.parse().unwrap()],
        arrival,
        start: SimTime::ZERO,
        stop: at_ms(stop_ms),
        request_bytes: 100,
        fast_open: false,
    }
}

pub fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}
