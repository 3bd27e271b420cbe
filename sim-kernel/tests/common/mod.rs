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
        sysctls: sysctls
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>(),
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
        defer_accept_secs: 0,
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
        workers: (0..workers)
            .map(|i| worker(&format!("w{i}"), 0, Some(0)))
            .collect(),
        clients: vec![],
        policies: vec![],
        timeline: vec![],
    }
}

pub fn clients(
    host: u32,
    target: &str,
    src: &str,
    arrival: ArrivalProcess,
    stop_ms: u64,
) -> ClientSpec {
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

pub const MIGRATE_OBJ: &[u8] = include_bytes!("../../bpf/test_migrate.bpf.o");

/// How the selftest-like run migrates.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Migration {
    Off,
    Sysctl,
    Policy,
}

/// The kernel selftest `migrate_reuseport`, reproduced: five listeners on
/// one loopback host (s4 listens at 100 ms), nobody accepting; 25 clients
/// at 1 ms spacing write 12 bytes; at 150 ms s0..s3 shut down; s4 accepts
/// from 300 ms. `drop_ack`: final ACKs and data are dropped until 150 ms
/// (requests stay in the SYN queue: migration at the final ACK); without
/// it the children wait in the accept queues (migration at close).
pub fn selftest(v6: bool, migration: Migration, drop_ack: bool) -> KernelSpec {
    let addr = if v6 { "::1" } else { "127.0.0.1" };
    let port = 40000;
    let target: std::net::SocketAddr = (addr.parse::<std::net::IpAddr>().unwrap(), port).into();
    let mut workers: Vec<WorkerSpec> = (0..5)
        .map(|i| {
            let mut w = worker(&format!("s{i}"), 0, (i < 4).then_some(0));
            w.backlog = 125;
            w
        })
        .collect();
    workers[4].listen_at = None;
    let mut timeline: Vec<TimedAction> = (0..5)
        .map(|i| TimedAction {
            at: at_ms(0),
            action: Action::StopAccepting(i),
        })
        .collect();
    timeline.push(TimedAction {
        at: at_ms(100),
        action: Action::Listen(4),
    });
    let mut policies = vec![];
    if migration == Migration::Policy {
        timeline.push(TimedAction {
            at: at_ms(100),
            action: Action::MapUpdate {
                policy: 0,
                entry: MapEntry {
                    map: "reuse_map".into(),
                    key: MapDatum::U32(0),
                    value: MapDatum::ListenerFd(4),
                },
                flags: 0,
            },
        });
        policies.push(PolicySpec {
            name: "migrate_reuseport".into(),
            object: BpfObject::Bytes(MIGRATE_OBJ.into()),
            program: "migrate_reuseport".into(),
            attach: ReuseportAttach::SelectOrMigrate,
            initial_entries: (0..5)
                .map(|i| MapEntry {
                    map: "migrate_map".into(),
                    key: MapDatum::ListenerCookie(i),
                    value: MapDatum::U32(0),
                })
                .collect(),
            attach_at: Some(at_ms(0)),
            via: 0,
        });
    }
    for i in 0..4 {
        timeline.push(TimedAction {
            at: at_ms(150),
            action: Action::Shutdown(i),
        });
    }
    timeline.push(TimedAction {
        at: at_ms(300),
        action: Action::ResumeAccepting(4),
    });
    let faults = if drop_ack {
        vec![sim_core::Fault::Filter {
            id: sim_core::FilterId(0),
            rule: sim_core::PacketFilter {
                src_host: None,
                dst_host: None,
                dst_port: Some(port),
                src_port: None,
                match_kind: sim_core::FilterMatch::AckNoSyn,
            },
            from: at_ms(0),
            until: at_ms(150),
        }]
    } else {
        vec![]
    };
    let migrate = i64::from(migration == Migration::Sysctl);
    KernelSpec {
        name: "selftest".into(),
        seed: 1,
        duration: ms(1000),
        hosts: vec![host(
            "lo",
            &["127.0.0.1", "::1"],
            &[("tcp_migrate_req", migrate)],
        )],
        links: vec![],
        faults,
        servers: vec![ServerSpec {
            name: "srv".into(),
            host: HostId(0),
            addr: target,
        }],
        workers,
        clients: vec![ClientSpec {
            name: "selftest".into(),
            host: HostId(0),
            target,
            sources: vec![addr.parse().unwrap()],
            arrival: ArrivalProcess::Burst {
                count: 25,
                spacing: ms(1),
            },
            start: at_ms(10),
            stop: at_ms(10),
            request_bytes: 12,
            fast_open: false,
        }],
        policies,
        timeline,
    }
}
