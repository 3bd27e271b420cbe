//! The kernel backend on the real kernel (root, `/dev/net/tun`, Linux
//! 5.14+): the selftest `migrate_reuseport` scenarios (four states × IPv4 /
//! IPv6, with the declarative policy run as `policy.o`, with
//! `tcp_migrate_req`, and with migration off) and a short nginx reload
//! with migration off and on. Each asserts the kernel's own result and that
//! no namespace of this process is left behind. Without root or TUN each
//! test prints `SKIPPED <test>: <reason>` and returns.
//!
//! Durations are shrunk to what each case needs (the selftests end by
//! 2.3 s); the cases run one at a time (they are timing-sensitive and the
//! machine may have 2 cores).
//!
//! Also, without root: features the kernel backend cannot carry out are
//! refused with an error naming them.

use serde_json::Value;
use sim_reuseport::backend::{Backend, KernelBackend, RunError, RunOptions};
use sim_reuseport::report::Report;
use sim_reuseport::scenario::{lower, parse_str, Plan};
use std::sync::{Mutex, MutexGuard};

static KERNEL: Mutex<()> = Mutex::new(());

const NR_CLIENTS: u64 = 25;

/// `Some(guard)` when the kernel backend can run here; otherwise says why
/// the test is skipped.
fn kernel_or_skip(test: &str) -> Option<MutexGuard<'static, ()>> {
    match sim_kernel::check_environment() {
        Ok(_) => Some(KERNEL.lock().unwrap_or_else(|p| p.into_inner())),
        Err(e) => {
            eprintln!("SKIPPED {test}: {e}");
            None
        }
    }
}

fn scenario_json(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn plan_of(doc: &Value) -> Plan {
    lower(&parse_str(&doc.to_string()).unwrap()).unwrap()
}

/// Runs on the kernel, then checks that the run left no namespace.
fn run_kernel(plan: &Plan, migrate: Option<bool>) -> Report {
    let r = KernelBackend::default()
        .run(
            plan,
            RunOptions {
                migrate,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e}", plan.name));
    let left = sim_kernel::netns::list_mine();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let in_run_dir: Vec<String> = std::fs::read_dir(sim_kernel::netns::NETNS_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    n.starts_with(&format!(
                        "{}{}",
                        sim_kernel::netns::PREFIX,
                        std::process::id()
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(in_run_dir.is_empty(), "/run/netns still has {in_run_dir:?}");
    assert_eq!(r.report.backend, "kernel");
    r.report
}

/// A selftest scenario, in IPv6 if asked, its duration cut to `ms`;
/// without its policy unless `policy`.
fn selftest(file: &str, ipv6: bool, policy: bool, ms: u64) -> Plan {
    let mut doc = scenario_json(file);
    if ipv6 {
        doc["servers"][0]["address"] = "::1".into();
    }
    if !policy {
        doc.as_object_mut().unwrap().remove("policies");
    }
    doc["duration"] = format!("{ms}ms").into();
    plan_of(&doc)
}

struct Case {
    file: &'static str,
    /// Migration hops per connection with the policy (as the simulator's
    /// selftest test asserts them).
    hops: u64,
    /// Run length that covers the case (the last action plus the responses).
    ms: u64,
}

const CASES: [Case; 4] = [
    Case {
        file: "selftest-established.json",
        hops: 3,
        ms: 700,
    },
    Case {
        file: "selftest-fastopen.json",
        hops: 3,
        ms: 700,
    },
    Case {
        file: "selftest-synack-timer.json",
        hops: 1,
        // Completions at about 1.7 s: the request migrates at the SYN-ACK
        // timer (1 s) and the client's data gets through at its third
        // retransmission, after the drop window (1150 ms).
        ms: 2300,
    },
    Case {
        file: "selftest-final-ack.json",
        hops: 1,
        ms: 1000,
    },
];

fn s4(r: &Report) -> u64 {
    r.listeners
        .iter()
        .find(|l| l.worker == "s4")
        .unwrap()
        .accepted
}

fn migrated(r: &Report) -> u64 {
    r.counters["TcpExtTCPMigrateReqSuccess"]
}

#[test]
fn selftests_with_the_policy_program_reach_the_last_listener_on_the_kernel() {
    let Some(_g) = kernel_or_skip("selftests_with_the_policy_program") else {
        return;
    };
    for case in &CASES {
        for ipv6 in [false, true] {
            let r = run_kernel(&selftest(case.file, ipv6, true, case.ms), None);
            let tag = format!("{} ipv6={ipv6} (policy.o)", case.file);
            assert_eq!(s4(&r), NR_CLIENTS, "{tag}");
            assert_eq!(r.connections.completed, NR_CLIENTS, "{tag}");
            assert_eq!(r.connections.reset + r.connections.refused, 0, "{tag}");
            assert_eq!(migrated(&r), NR_CLIENTS * case.hops, "{tag}");
            assert_eq!(r.counters["TcpExtTCPMigrateReqFailure"], 0, "{tag}");
            assert_eq!(r.counters["TcpOutRsts"], 0, "{tag}");
            // The program's own counts per call path (policy.c's
            // `decisions` map) are the simulator's, decision for decision.
            let sim = sim_reuseport::backend::Simulator
                .run(
                    &selftest(case.file, ipv6, true, case.ms),
                    RunOptions::default(),
                )
                .unwrap()
                .report;
            assert_eq!(r.policies[0].decisions, sim.policies[0].decisions, "{tag}");
        }
    }
}

/// The `selftest-*-bpf` twin of a selftest scenario.
fn bpf_twin(file: &str) -> String {
    file.replace(".json", "-bpf.json")
}

/// The global variables of a `bpf` policy's `.bss` (the program's own
/// counters per migration path), by name.
fn bss_globals(r: &Report) -> Vec<(String, u64)> {
    let bpf = r.policies[0].bpf.as_ref().expect("a bpf section");
    let maps = serde_json::to_value(&bpf.maps).unwrap();
    let bss = maps
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == ".bss")
        .expect(".bss read back");
    bss["globals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["value"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn bpf_selftests_load_the_same_object_and_agree_with_the_simulator_on_the_kernel() {
    let Some(_g) = kernel_or_skip("bpf_selftests_on_the_kernel") else {
        return;
    };
    for case in &CASES {
        for ipv6 in [false, true] {
            let plan = selftest(&bpf_twin(case.file), ipv6, true, case.ms);
            assert!(plan.policies[0].bpf.is_some());
            let r = run_kernel(&plan, None);
            let tag = format!("{} ipv6={ipv6} (own object)", bpf_twin(case.file));
            // The kernel selftest's result: the target accepts all 25, no
            // reset, every hop a successful migration.
            assert_eq!(s4(&r), NR_CLIENTS, "{tag}");
            assert_eq!(r.connections.completed, NR_CLIENTS, "{tag}");
            assert_eq!(r.connections.reset + r.connections.refused, 0, "{tag}");
            assert_eq!(migrated(&r), NR_CLIENTS * case.hops, "{tag}");
            assert_eq!(r.counters["TcpExtTCPMigrateReqFailure"], 0, "{tag}");
            assert_eq!(r.counters["TcpOutRsts"], 0, "{tag}");
            let bpf = r.policies[0].bpf.as_ref().unwrap();
            assert!(bpf.map_errors.is_empty(), "{tag}: {:?}", bpf.map_errors);
            assert!(r.kernel.as_ref().unwrap().action_errors.is_empty(), "{tag}");
            // The simulator on the same plan: same counts, and the
            // program's own counters (read back from the kernel's .bss)
            // are the simulator's, path for path.
            let sim = sim_reuseport::backend::Simulator
                .run(&plan, RunOptions::default())
                .unwrap()
                .report;
            assert_eq!(s4(&sim), s4(&r), "{tag}");
            assert_eq!(sim.connections.completed, r.connections.completed, "{tag}");
            assert_eq!(sim.connections.reset, r.connections.reset, "{tag}");
            let kernel_bss = bss_globals(&r);
            assert!(
                kernel_bss.iter().any(|&(_, v)| v == NR_CLIENTS),
                "{tag}: {kernel_bss:?}"
            );
            assert_eq!(kernel_bss, bss_globals(&sim), "{tag}");
        }
    }
}

#[test]
fn selftests_with_the_sysctl_reach_the_last_listener_on_the_kernel() {
    let Some(_g) = kernel_or_skip("selftests_with_the_sysctl") else {
        return;
    };
    for case in &CASES {
        for ipv6 in [false, true] {
            let r = run_kernel(&selftest(case.file, ipv6, false, case.ms), Some(true));
            let tag = format!("{} ipv6={ipv6} (tcp_migrate_req=1)", case.file);
            assert_eq!(s4(&r), NR_CLIENTS, "{tag}");
            assert_eq!(r.connections.completed, NR_CLIENTS, "{tag}");
            assert_eq!(r.connections.reset + r.connections.refused, 0, "{tag}");
            assert!(migrated(&r) >= NR_CLIENTS, "{tag}");
        }
    }
}

#[test]
fn selftests_with_migration_off_reset_all_25_on_the_kernel() {
    let Some(_g) = kernel_or_skip("selftests_with_migration_off") else {
        return;
    };
    for case in &CASES {
        for ipv6 in [false, true] {
            let r = run_kernel(&selftest(case.file, ipv6, false, case.ms), Some(false));
            let tag = format!("{} ipv6={ipv6} (migration off)", case.file);
            assert_eq!(
                r.connections.reset, NR_CLIENTS,
                "{tag}: {:?}",
                r.connections
            );
            assert_eq!(r.connections.completed, 0, "{tag}");
            assert_eq!(s4(&r), 0, "{tag}");
            assert_eq!(migrated(&r), 0, "{tag}");
            assert!(r.counters["TcpOutRsts"] >= NR_CLIENTS, "{tag}");
        }
    }
}

/// nginx-reload, shortened: the reload at 800 ms (old workers stop
/// accepting, new ones listen; old listeners close 500 ms later), clients
/// until 2 s, the run ends at 2.5 s.
fn short_nginx_reload() -> Plan {
    let mut doc = scenario_json("nginx-reload.json");
    doc["duration"] = "2500ms".into();
    doc["clients"][0]["stop"] = "2s".into();
    doc["timeline"][0]["at"] = "800ms".into();
    plan_of(&doc)
}

#[test]
fn nginx_reload_resets_without_migration_and_none_with_it_on_the_kernel() {
    let Some(_g) = kernel_or_skip("nginx_reload_on_the_kernel") else {
        return;
    };
    let plan = short_nginx_reload();
    let off = run_kernel(&plan, Some(false));
    let on = run_kernel(&plan, Some(true));
    // Off: the old listeners' accept queues (filled while they no longer
    // accept) are reset at close (§7 A, here only as client outcomes and
    // TcpOutRsts: the kernel does not label causes).
    assert!(off.connections.reset >= 20, "off: {:?}", off.connections);
    assert!(off.counters["TcpOutRsts"] >= off.connections.reset);
    assert_eq!(migrated(&off), 0);
    // On: every child migrates to a new listener; no client is reset.
    assert_eq!(on.connections.reset, 0, "on: {:?}", on.connections);
    assert_eq!(on.connections.refused, 0);
    assert!(migrated(&on) >= 20, "on: {}", migrated(&on));
    assert_eq!(on.connections.completed, on.connections.attempted);
    // Both saw the same arrivals (the simulator's draws for the seed).
    assert_eq!(off.connections.attempted, on.connections.attempted);
}

/// selftest-established without its policy: 25 connections to four
/// listeners that do not accept; `relisten` at `relisten_at` (if any)
/// lowers every backlog to 1.
fn relisten_plan(relisten: bool) -> Plan {
    let mut doc = scenario_json("selftest-established.json");
    doc.as_object_mut().unwrap().remove("policies");
    doc["duration"] = "400ms".into();
    let mut timeline = Vec::new();
    for w in ["s0", "s1", "s2", "s3"] {
        timeline.push(serde_json::json!({"at": "0s", "do": "stop_accepting", "worker": w}));
        if relisten {
            timeline
                .push(serde_json::json!({"at": "0s", "do": "relisten", "worker": w, "backlog": 1}));
        }
    }
    doc["timeline"] = timeline.into();
    plan_of(&doc)
}

#[test]
fn relisten_changes_the_backlog_of_the_held_listener_on_the_kernel() {
    let Some(_g) = kernel_or_skip("relisten_on_the_kernel") else {
        return;
    };
    let before = run_kernel(&relisten_plan(false), None);
    let after = run_kernel(&relisten_plan(true), None);
    assert!(after.kernel.as_ref().unwrap().action_errors.is_empty());
    // Backlog 125: all 25 wait in the accept queues. Backlog 1: a queue
    // is full at 2 (sk_acceptq_is_full: more than the backlog), the rest
    // of the final ACKs overflow (§5.1).
    assert_eq!(before.counters["TcpExtListenOverflows"], 0);
    let peak = |r: &Report| {
        r.listeners
            .iter()
            .map(|l| l.peak_accept_queue)
            .max()
            .unwrap()
    };
    assert!(peak(&before) > 2, "{:?}", before.listeners);
    assert!(peak(&after) <= 2, "{:?}", after.listeners);
    assert!(after.counters["TcpExtListenOverflows"] > 0);
    // The simulator bounds the queues the same way.
    let sim = sim_reuseport::backend::Simulator
        .run(&relisten_plan(true), RunOptions::default())
        .unwrap()
        .report;
    assert!(peak(&sim) <= 2 && sim.counters["TcpExtListenOverflows"] > 0);
}

/// nginx-deferred-reload, shortened (the reload at 400 ms, its old
/// listeners closing at 900 ms, clients until 1 s, the run ends at 1.5 s)
/// and without loss; `defer_accept` removed unless `deferred`.
fn short_deferred_reload(deferred: bool) -> Plan {
    let mut doc = scenario_json("nginx-deferred-reload.json");
    doc["duration"] = "1500ms".into();
    doc["clients"][0]["stop"] = "1s".into();
    doc["timeline"][0]["at"] = "400ms".into();
    doc["links"][0]["loss"] = "0%".into();
    if !deferred {
        for w in doc["workers"].as_array_mut().unwrap() {
            w.as_object_mut().unwrap().remove("defer_accept");
        }
    }
    plan_of(&doc)
}

#[test]
fn defer_accept_drops_every_bare_final_ack_on_the_kernel() {
    let Some(_g) = kernel_or_skip("defer_accept_on_the_kernel") else {
        return;
    };
    let plain = run_kernel(&short_deferred_reload(false), Some(true));
    let deferred = run_kernel(&short_deferred_reload(true), Some(true));
    // TCP_DEFER_ACCEPT: the client's final ACK carries no data, so it only
    // marks the request acked (TcpExtTCPDeferAcceptDrop); the request
    // segment makes the child (§5.3). Without it, none is dropped.
    assert_eq!(plain.counters["TcpExtTCPDeferAcceptDrop"], 0);
    let drops = deferred.counters["TcpExtTCPDeferAcceptDrop"];
    assert!(
        drops >= deferred.connections.completed && drops > 0,
        "{drops} drops, {:?}",
        deferred.connections
    );
    assert_eq!(deferred.connections.reset, 0, "{:?}", deferred.connections);
    // The simulator counts one drop per connection too.
    let sim = sim_reuseport::backend::Simulator
        .run(&short_deferred_reload(true), RunOptions::default())
        .unwrap()
        .report;
    assert!(sim.counters["TcpExtTCPDeferAcceptDrop"] >= sim.connections.completed);
}

#[test]
fn defer_accept_is_set_as_the_seconds_of_its_syn_ack_timeouts() {
    use sim_reuseport::backend::kernel::spec::retrans_to_secs;
    // As `getsockopt(TCP_DEFER_ACCEPT)` reports them: 5 s → 3 → 7 s.
    assert_eq!(retrans_to_secs(0), 0);
    assert_eq!(retrans_to_secs(3), 7);
    assert_eq!(retrans_to_secs(5), 31);
    assert_eq!(retrans_to_secs(8), 127 + 120);
    for d in 0..=20u8 {
        assert_eq!(sim_tcp::secs_to_retrans(retrans_to_secs(d)), d, "{d}");
    }
    let plan = short_deferred_reload(true);
    let spec = sim_reuseport::backend::kernel::spec::kernel_spec(&plan, 1, None).unwrap();
    assert!(spec.workers.iter().all(|w| w.defer_accept_secs == 7));
}

#[test]
fn a_bpf_plan_loads_the_scenarios_object_and_carries_out_its_map_actions() {
    use sim_kernel::{Action, MapDatum};
    let plan = plan_of(&scenario_json("selftest-established-bpf.json"));
    let spec = sim_reuseport::backend::kernel::spec::kernel_spec(&plan, 1, None).unwrap();
    let p = &spec.policies[0];
    assert_eq!(p.program, "migrate_reuseport");
    assert_eq!(p.attach, sim_kernel::ReuseportAttach::SelectOrMigrate);
    // The very bytes the simulator loaded.
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sim-bpf/fixtures/migrate_reuseport.o");
    match &p.object {
        sim_kernel::BpfObject::Bytes(b) => assert_eq!(&b[..], &std::fs::read(file).unwrap()[..]),
        other => panic!("{other:?}"),
    }
    // migrate_map: every listener's cookie → slot 4, at load.
    assert_eq!(p.initial_entries.len(), 5);
    assert!(p.initial_entries.iter().all(|e| e.map == "migrate_map"
        && matches!(e.key, MapDatum::ListenerCookie(_))
        && e.value == MapDatum::Bytes(4u32.to_le_bytes().to_vec())));
    // reuseport_map[i] = listener i, after s4's listen at 100 ms.
    let updates: Vec<_> = spec
        .timeline
        .iter()
        .filter_map(|t| match &t.action {
            Action::MapUpdate {
                policy: 0,
                entry,
                flags: 0,
            } => Some((t.at, entry)),
            _ => None,
        })
        .collect();
    assert_eq!(updates.len(), 5);
    for (i, (at, e)) in updates.iter().enumerate() {
        assert_eq!(*at, sim_core::SimTime(100_000_000));
        assert_eq!(e.map, "reuseport_map");
        assert_eq!(e.value, MapDatum::ListenerFd(i));
    }
}

#[test]
fn features_the_kernel_cannot_run_are_refused_by_name() {
    // least_loaded needs a user-space publisher of queue lengths.
    let plan = plan_of(&scenario_json("bpf-steer-new-generation.json"));
    let err = KernelBackend::default()
        .run(&plan, RunOptions::default())
        .unwrap_err();
    assert!(matches!(err, RunError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("least_loaded"), "{err}");
    assert_eq!(err.exit_code(), 2);
    // Application deadlines are not implemented by the client engine.
    let mut doc = scenario_json("nginx-reload.json");
    doc["clients"][0]["connect_timeout"] = "1s".into();
    let err = KernelBackend::default()
        .run(&plan_of(&doc), RunOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("connect_timeout"), "{err}");
    // Simulator-only run options.
    let mut sink = Vec::new();
    let err = KernelBackend::default()
        .run(
            &plan_of(&scenario_json("nginx-reload.json")),
            RunOptions {
                trace: Some(&mut sink),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("--trace"), "{err}");
}

#[test]
fn a_plan_translates_field_by_field() {
    use sim_kernel::Action;
    let plan = plan_of(&scenario_json("selftest-established.json"));
    let spec = sim_reuseport::backend::kernel::spec::kernel_spec(&plan, 7, Some(true)).unwrap();
    assert_eq!(spec.seed, 7);
    assert_eq!(spec.hosts[0].sysctls["tcp_migrate_req"], 1);
    assert_eq!(spec.workers.len(), 5);
    assert!(spec.workers.iter().all(|w| w.listen_at.is_none()));
    // The policy is policy.o's migrate program, attached through s0.
    assert_eq!(spec.policies[0].program, "migrate_policy");
    assert_eq!(spec.policies[0].via, 0);
    // s4's listen at 100 ms is followed by its socket-array entry.
    let i = spec
        .timeline
        .iter()
        .position(|t| t.action == Action::Listen(4))
        .unwrap();
    assert_eq!(spec.timeline[i].at, sim_core::SimTime(100_000_000));
    match &spec.timeline[i + 1].action {
        Action::MapUpdate {
            policy: 0,
            entry,
            flags: 0,
        } => {
            assert_eq!(entry.map, "socks");
            assert_eq!(entry.value, sim_kernel::MapDatum::ListenerFd(4));
        }
        other => panic!("expected the socks update, got {other:?}"),
    }
    // Every closing listener maps to s4's slot, by cookie.
    let targets: Vec<_> = spec.policies[0]
        .initial_entries
        .iter()
        .filter(|e| e.map == "targets")
        .collect();
    assert_eq!(targets.len(), 5);
    assert!(targets
        .iter()
        .all(|e| e.value == sim_kernel::MapDatum::U32(4)));
}

#[test]
fn the_kernel_command_refuses_an_unsupported_scenario_with_exit_2() {
    // Refused before the environment check: runs without root too.
    for cmd in ["kernel", "calibrate"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_reuseport-sim"))
            .args([cmd, "../scenarios/bpf-steer-new-generation.json"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(err.contains("least_loaded"), "{cmd}: {err}");
        assert!(
            err.contains("bpf-steer-new-generation.json"),
            "{cmd}: {err}"
        );
    }
}
