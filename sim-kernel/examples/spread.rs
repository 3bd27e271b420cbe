//! Run-to-run spread of the kernel backend: the bundled nginx-reload
//! scenario (new-first reload of 4 workers at 500 connections/s over a
//! 10 ms RTT link, 500 ms drain), written as a KernelSpec by hand, run N
//! times with migration off and on.
//!
//! `cargo run --release -p sim-kernel --example spread -- [N]` (root).

use std::collections::BTreeMap;

use sim_core::{HostId, LinkParams, SimDuration, SimTime};
use sim_kernel::*;

fn ms(n: u64) -> SimDuration {
    SimDuration::from_millis(n)
}

fn nginx_reload(migrate: bool) -> KernelSpec {
    let worker = |i: usize, new: bool| WorkerSpec {
        name: format!("{}-{i}", if new { "new" } else { "old" }),
        server: 0,
        backlog: 511,
        listen_at: (!new).then_some(SimTime::ZERO),
        accept: AcceptModel::Immediate,
        service_time: ms(2),
        response_bytes: 1000,
        syn_retries: 0,
        fast_open_qlen: 0,
        defer_accept_secs: 0,
        v6only: false,
    };
    let mut timeline = Vec::new();
    let t = |ms_: u64, action| TimedAction {
        at: SimTime(ms_ * 1_000_000),
        action,
    };
    for i in 0..4 {
        timeline.push(t(2000, Action::Listen(4 + i)));
    }
    for i in 0..4 {
        timeline.push(t(2000, Action::StopAccepting(i)));
    }
    for i in 0..4 {
        timeline.push(t(2500, Action::Close(i)));
    }
    let mut link = LinkParams::with_latency(ms(5));
    link.jitter = SimDuration::from_micros(200);
    KernelSpec {
        name: "nginx-reload".into(),
        seed: 1,
        duration: ms(6000),
        hosts: vec![
            HostSpec {
                name: "server".into(),
                addresses: vec!["10.0.0.1".parse().unwrap()],
                sysctls: BTreeMap::from([("tcp_migrate_req".into(), i64::from(migrate))]),
            },
            HostSpec {
                name: "clients".into(),
                addresses: ["10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4"]
                    .iter()
                    .map(|a| a.parse().unwrap())
                    .collect(),
                sysctls: BTreeMap::new(),
            },
        ],
        links: vec![LinkSpec {
            name: "wan".into(),
            a: HostId(1),
            b: HostId(0),
            params: link,
        }],
        faults: vec![],
        servers: vec![ServerSpec {
            name: "web".into(),
            host: HostId(0),
            addr: "10.0.0.1:443".parse().unwrap(),
        }],
        workers: (0..8).map(|i| worker(i % 4, i >= 4)).collect(),
        clients: vec![ClientSpec {
            name: "browsers".into(),
            host: HostId(1),
            target: "10.0.0.1:443".parse().unwrap(),
            sources: ["10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect(),
            arrival: ArrivalProcess::Poisson { rate: 500 },
            start: SimTime::ZERO,
            stop: SimTime(5_000_000_000),
            request_bytes: 300,
            fast_open: false,
        }],
        policies: vec![],
        timeline,
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    println!("migrate run attempted completed reset refused timed_out in_flight OutRsts MigrateOK late_p50_us late_p99_us");
    for migrate in [false, true] {
        for i in 0..n {
            let r = match run(&nginx_reload(migrate), &RunOptions::default()) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(e.exit_code());
                }
            };
            let c = r.outcome_counts();
            println!(
                "{} {i} {} {} {} {} {} {} {} {} {} {}",
                if migrate { "on" } else { "off" },
                c.attempted,
                c.completed,
                c.reset,
                c.refused,
                c.timed_out,
                c.in_flight,
                r.namespaces[0].delta("TcpOutRsts"),
                r.namespaces[0].delta("TcpExtTCPMigrateReqSuccess"),
                r.forwarder.lateness.p50.as_nanos() / 1000,
                r.forwarder.lateness.p99.as_nanos() / 1000,
            );
        }
    }
}
