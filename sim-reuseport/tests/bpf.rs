//! Real `SK_REUSEPORT` programs in the simulator (§2.7, `sim-bpf`):
//!
//! * the kernel selftest's program (`sim-bpf/fixtures/migrate_reuseport.o`)
//!   gives the declarative stand-in's results in the four selftest cases,
//!   IPv4 and IPv6, with every migration setting;
//! * each declarative policy of a bundled scenario and its C twin
//!   (`policy.o` with its maps filled as the stand-in's user space would)
//!   give the same outcomes: decisions per call site, resets, drops,
//!   migrations, counters, listeners;
//! * a program fault stops the run with an error naming the program, the
//!   instruction and the reason; `bpf_trace_printk` lines reach the trace;
//!   user-space map errors are reported.

mod common;
use common::*;
use serde_json::{json, Value};
use sim_reuseport::backend::{run, RunError, RunOptions};
use sim_reuseport::report::Report;
use sim_reuseport::scenario::plan::Prim;
use sim_reuseport::scenario::{lower, parse_str, Scenario};

const NR_CLIENTS: u64 = 25;

/// (declarative file, the `.bss` counter of its path).
const SELFTESTS: [(&str, &str); 4] = [
    ("selftest-established", "migrated_at_close"),
    ("selftest-fastopen", "migrated_at_close_fastopen"),
    ("selftest-synack-timer", "migrated_at_send_synack"),
    ("selftest-final-ack", "migrated_at_recv_ack"),
];

/// A bundled scenario (IPv6 if asked), object paths resolved from `scenarios/`.
fn bundled(file: &str, ipv6: bool) -> Scenario {
    let mut scn = scenario(file, ipv6);
    scn.base_dir = Some(root().join("scenarios"));
    scn
}

fn from_json(v: &Value) -> Scenario {
    let mut scn = parse_str(&v.to_string()).unwrap();
    scn.base_dir = Some(root().join("scenarios"));
    scn
}

/// The parts of a report that are the run's outcome (not its name, hash,
/// event count or digest, which differ with the timeline's map actions).
fn outcome(r: &Report) -> Value {
    let v: Value = serde_json::from_str(&r.to_json()).unwrap();
    json!({
        "connections": v["connections"],
        "resets_by_cause": v["resets_by_cause"],
        "drops_by_cause": v["drops_by_cause"],
        "client_rsts_by_cause": v["client_rsts_by_cause"],
        "migrations": v["migrations"],
        "counters": v["counters"],
        "listeners": v["listeners"],
        "latency": v["latency"],
        "decisions": v["policies"].as_array().unwrap().iter()
            .map(|p| p["decisions"].clone()).collect::<Vec<_>>(),
    })
}

/// A global of a `bpf` policy's `.bss`, at the end of the run.
fn bss(r: &Report, name: &str) -> u64 {
    let bpf = r.policies[0].bpf.as_ref().expect("a bpf policy");
    let maps = bpf.maps.as_array().unwrap();
    let bss = maps.iter().find(|m| m["name"] == ".bss").unwrap();
    let globals = bss["globals"].as_array().unwrap();
    let g = globals.iter().find(|g| g["name"] == name).unwrap();
    g["value"].as_u64().unwrap()
}

#[test]
fn selftest_program_gives_the_stand_ins_results_ipv4_and_ipv6() {
    for (file, counter) in SELFTESTS {
        for ipv6 in [false, true] {
            let decl = bundled(&format!("{file}.json"), ipv6);
            let real = bundled(&format!("{file}-bpf.json"), ipv6);
            assert_eq!(real.servers[0].address.is_ipv6(), ipv6);
            for migrate in [None, Some(true), Some(false)] {
                let tag = format!("{file} ipv6={ipv6} migrate={migrate:?}");
                let d = run_with(&decl, migrate);
                let b = run_with(&real, migrate);
                assert_eq!(outcome(&b), outcome(&d), "{tag}");
                // What the kernel selftest asserts: the target accepted all
                // 25, and the program's own counter for the path is 25.
                assert_eq!(listener(&b, "s4").accepted, NR_CLIENTS, "{tag}");
                assert_eq!(bss(&b, counter), NR_CLIENTS, "{tag}");
                assert!(
                    b.counter("TcpExtTCPMigrateReqSuccess") >= NR_CLIENTS,
                    "{tag}"
                );
                assert_eq!(b.counter("TcpExtTCPMigrateReqFailure"), 0, "{tag}");
                let p = b.policies[0].bpf.as_ref().unwrap();
                assert!(p.calls >= NR_CLIENTS && p.insns > p.calls, "{tag}");
                assert!(p.map_errors.is_empty(), "{tag}: {:?}", p.map_errors);
            }
        }
    }
}

/// `policy.o`'s rule ids (`enum rule` in `sim-bpf/fixtures/policy.c`).
fn rule_id(rule: &Value) -> (u32, u32, Option<&serde_json::Map<String, Value>>) {
    match rule {
        Value::String(s) if s == "pass" => (0, 0, None),
        Value::String(s) if s == "drop" => (1, 0, None),
        Value::Object(o) if o.contains_key("pick") => {
            let w = o["pick"].as_str().unwrap();
            (2, worker_slot(w), None)
        }
        Value::Object(o) if o.contains_key("map") => (5, 0, o["map"].as_object()),
        other => panic!("no faithful static twin for rule {other} (see docs/bpf.md)"),
    }
}

/// Twins give each worker the slot of its index (`s<i>`, or by order).
fn worker_slot(name: &str) -> u32 {
    WORKERS.with(|w| w.borrow().iter().position(|n| n == name).unwrap() as u32)
}

thread_local! {
    static WORKERS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The C twin of the declarative policy of `decl`: `policy.o`'s program of
/// the same attach type, its `config`, `targets` and `cancel` maps filled
/// at load, and `socks` filled as the stand-in's user space fills its socket
/// array: the group's listeners when the policy is attached, and each
/// worker when it first listens later (not on a re-listen, §5.9).
fn twin(decl: &Value) -> Value {
    let mut v = decl.clone();
    let names: Vec<String> = v["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect();
    WORKERS.with(|w| *w.borrow_mut() = names.clone());
    let p = v["policies"][0].clone();
    let pass = json!("pass");
    let (syn_rule, syn_slot, _) = rule_id(p.get("on_syn").unwrap_or(&pass));
    let (mig_rule, mig_slot, map) = rule_id(p.get("on_migrate").unwrap_or(&pass));
    let mut maps = Vec::new();
    let mut missing_drop = 1;
    if let Some(map) = map {
        missing_drop = u32::from(!map.get("missing").is_some_and(|m| m == "pass"));
        for (from, to) in map["targets"].as_object().unwrap() {
            maps.push(json!({"map": "targets", "key": {"cookie": from},
                              "value": worker_slot(to.as_str().unwrap())}));
        }
    }
    for w in p
        .get("cancel_for")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        maps.push(json!({"map": "cancel", "key": {"cookie": w}, "value": 1}));
    }
    maps.insert(
        0,
        json!({"map": "config", "key": 0,
               "value": {"u32": [syn_rule, mig_rule, syn_slot, mig_slot, missing_drop, 0, 0]}}),
    );
    let program = match p["kind"].as_str().unwrap() {
        "select" => "select_policy",
        _ => "migrate_policy",
    };
    v["name"] = json!(format!("{}-twin", v["name"].as_str().unwrap()));
    v["policies"][0] = json!({
        "name": p["name"], "kind": p["kind"], "via": p["via"],
        "bpf": {"object": "../sim-bpf/fixtures/policy.o", "program": program, "maps": maps}
    });
    if let Some(at) = p.get("attach_at") {
        v["policies"][0]["attach_at"] = at.clone();
    }
    // When the stand-in's socket array gains each worker (from the plan).
    let plan = lower(&from_json(decl)).unwrap();
    let attach = plan
        .timeline
        .iter()
        .find(|s| matches!(s.prim, Prim::AttachPolicy { .. }))
        .expect("the policy is attached")
        .at;
    let mut seen = vec![false; names.len()];
    let mut inserts = Vec::new();
    for s in &plan.timeline {
        if let Prim::Listen(w) = s.prim {
            if std::mem::replace(&mut seen[w.index()], true) {
                continue; // a re-listen: user space does not re-insert (§5.9)
            }
            let at = s.at.max(attach);
            inserts.push(
                json!({"at": format!("{}ns", at.as_nanos()), "do": "map_update",
                "policy": p["name"], "map": "socks", "key": w.index(),
                "value": {"worker": names[w.index()]}}),
            );
        }
    }
    v["timeline"].as_array_mut().unwrap().extend(inserts);
    v
}

/// The program's own `decisions[path * 3 + decision]` counters.
fn own_decisions(r: &Report) -> Vec<u64> {
    let bpf = r.policies[0].bpf.as_ref().unwrap();
    let maps = bpf.maps.as_array().unwrap();
    let m = maps.iter().find(|m| m["name"] == "decisions").unwrap();
    let mut out = vec![0; 15];
    for e in m["entries"].as_array().unwrap() {
        let bytes = |s: &str| -> Vec<u8> {
            s.split(' ')
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect()
        };
        let k = bytes(e["key"].as_str().unwrap());
        let val = bytes(e["value"].as_str().unwrap());
        out[u32::from_le_bytes(k[..4].try_into().unwrap()) as usize] =
            u64::from_le_bytes(val[..8].try_into().unwrap());
    }
    out
}

#[test]
fn declarative_policies_and_their_c_twins_give_identical_outcomes() {
    const PATHS: [&str; 5] = [
        "syn",
        "close_established",
        "close_syn_recv",
        "synack_timer",
        "final_ack",
    ];
    let files = [
        "selftest-established.json",
        "selftest-fastopen.json",
        "selftest-synack-timer.json",
        "selftest-final-ack.json",
        "bpf-cancel-migration.json",
    ];
    for file in files {
        let decl: Value = serde_json::from_str(&scenario_text(file)).unwrap();
        let twin = from_json(&twin(&decl));
        let decl = from_json(&decl);
        for migrate in [Some(false), Some(true)] {
            let tag = format!("{file} migrate={migrate:?}");
            let d = run_with(&decl, migrate);
            let b = run_with(&twin, migrate);
            assert_eq!(outcome(&b), outcome(&d), "{tag}");
            // The twin's own counters say the same as the stand-in's.
            let own = own_decisions(&b);
            for (i, path) in PATHS.iter().enumerate() {
                let want = d.policies[0].decisions.get(*path);
                let get = |k: &str| want.and_then(|w| w.get(k)).copied().unwrap_or(0);
                assert_eq!(
                    own[i * 3..i * 3 + 3],
                    [get("picks"), get("passes"), get("drops")],
                    "{tag}: {path}"
                );
            }
            assert!(b.policies[0].bpf.as_ref().unwrap().map_errors.is_empty());
        }
    }
}

/// A small scenario: one host, two workers, 20 SYNs 1 ms apart from 10 ms.
fn small(policy: Value, timeline: Value) -> Value {
    json!({
        "version": 1, "name": "small", "duration": "2s",
        "hosts": [{"name": "lo", "addresses": ["127.0.0.1"]}],
        "servers": [{"name": "srv", "host": "lo", "address": "127.0.0.1", "port": 40000}],
        "workers": [{"name": "a", "server": "srv"}, {"name": "b", "server": "srv"}],
        "clients": [{"name": "c", "host": "lo", "server": "srv", "start": "10ms",
                     "arrival": {"kind": "burst", "count": 20, "spacing": "1ms"}}],
        "policies": [policy],
        "timeline": timeline
    })
}

fn trace_of(scn: &Scenario) -> (Report, Vec<Value>) {
    let mut trace = Vec::new();
    let r = run(
        scn,
        RunOptions {
            trace: Some(&mut trace),
            ..Default::default()
        },
    )
    .unwrap();
    let lines = String::from_utf8(trace).unwrap();
    let events = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (r.report, events)
}

#[test]
fn printk_reaches_the_trace_and_time_and_randomness_are_the_runs() {
    let policy = json!({"name": "t", "kind": "select", "via": "a",
        "bpf": {"object": "../sim-bpf/fixtures/trace_call.o", "program": "sk_reuseport"}});
    let scn = from_json(&small(policy, json!([])));
    let (r, events) = trace_of(&scn);
    let printk: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "bpf_printk")
        .collect();
    assert_eq!(printk.len(), 20, "one line per SYN");
    // Printed at the SYN's arrival (no link: the SYN is sent at 10 ms + i ms),
    // with the SYN's TCP length (40-byte header, Linux's SYN options).
    for (i, e) in printk.iter().enumerate() {
        assert_eq!(e["t_ns"], 10_000_000 + i as u64 * 1_000_000, "{e}");
        let d = e["detail"].as_str().unwrap();
        assert!(
            d.starts_with("trace_call: hash ") && d.contains(" len 40 slot "),
            "{d}"
        );
    }
    // bpf_ktime_get_ns is the virtual clock of the last call.
    assert_eq!(bss(&r, "last_ns"), 29_000_000);
    // bpf_get_prandom_u32 is the seed's stream: the same for the same seed,
    // another for another seed.
    let again = run_with(&scn, None);
    assert_eq!(bss(&again, "last_random"), bss(&r, "last_random"));
    let mut other = scn.clone();
    other.seed += 1;
    assert_ne!(
        bss(&run_with(&other, None), "last_random"),
        bss(&r, "last_random")
    );
    let p = r.policies[0].bpf.as_ref().unwrap();
    assert_eq!((p.calls, p.div_by_zero), (20, 0));
    assert_eq!(r.policies[0].decisions["syn"]["passes"], 20);
}

#[test]
fn a_program_fault_stops_the_run_naming_program_instruction_and_reason() {
    // The selftest's program with its counter increment
    // (`lock *(u32 *)(r1 + 0) += r2`, instruction 41) moved 256 bytes past
    // the 16-byte .bss value: the kernel's verifier would refuse it; the
    // simulator finds it at the first successful migration.
    let mut obj = std::fs::read(root().join("sim-bpf/fixtures/migrate_reuseport.o")).unwrap();
    let insn = [0xc3u8, 0x21, 0, 0, 0, 0, 0, 0];
    let at = obj
        .windows(8)
        .position(|w| w == insn)
        .expect("the atomic add");
    obj[at + 3] = 1; // off = 0x0100
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("oob.o"), &obj).unwrap();
    let mut v: Value =
        serde_json::from_str(&scenario_text("selftest-established-bpf.json")).unwrap();
    v["policies"][0]["bpf"]["object"] = json!(dir.path().join("oob.o").display().to_string());
    let scn = from_json(&v);
    let e = match run(&scn, RunOptions::default()) {
        Err(RunError::Program(m)) => m,
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("the faulting program ran to the end"),
    };
    assert!(e.contains("at simulated time 0.150000000s"), "{e}");
    assert!(e.contains("policy \"migrate_reuseport\""), "{e}");
    assert!(
        e.contains("program \"migrate_reuseport\", instruction 41"),
        "{e}"
    );
    assert!(e.contains("out-of-bounds"), "{e}");
}

#[test]
fn failed_map_writes_are_reported_with_their_errno() {
    // Slot 0 twice with "noexist" (EEXIST), a socket that does not listen
    // yet (EINVAL: not hashed), an index past max_entries (E2BIG), and a
    // delete of an empty slot (ENOENT).
    let policy = json!({"name": "m", "kind": "select_or_migrate", "via": "a",
        "bpf": {"object": "../sim-bpf/fixtures/migrate_reuseport.o", "program": "migrate_reuseport"}});
    let up = |at: &str, key: u64, w: &str, flags: &str| {
        json!({"at": at, "do": "map_update", "policy": "m", "map": "reuseport_map",
               "key": key, "value": {"worker": w}, "flags": flags})
    };
    let mut v = small(
        policy,
        json!([
            up("1ms", 0, "a", "noexist"),
            up("2ms", 0, "b", "noexist"),
            up("3ms", 300, "b", "any"),
            {"at": "4ms", "do": "map_delete", "policy": "m", "map": "reuseport_map", "key": 1},
            up("5ms", 1, "b", "any"),
        ]),
    );
    v["workers"][1]["listen_at"] = json!(null);
    let r = run_with(&from_json(&v), None);
    let p = r.policies[0].bpf.as_ref().unwrap();
    assert_eq!(
        p.map_errors,
        [
            "0.002000000s map_update reuseport_map: EEXIST",
            "0.003000000s map_update reuseport_map: E2BIG",
            "0.004000000s map_delete reuseport_map: ENOENT",
            "0.005000000s map_update reuseport_map: EINVAL",
        ]
    );
    assert!(
        p.maps_text.contains("key: 00 00 00 00  value: sock 1"),
        "{}",
        p.maps_text
    );
}

/// Record `key` of `ctx_probe.o`'s `rec` map as `u32` fields.
fn probe_rec(r: &Report, key: u32) -> Vec<u32> {
    let bpf = r.policies[0].bpf.as_ref().unwrap();
    let maps = bpf.maps.as_array().unwrap();
    let m = maps.iter().find(|m| m["name"] == "rec").unwrap();
    let e = m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == format!("{:02x} 00 00 00", key))
        .unwrap_or_else(|| panic!("no record {key}"));
    let b: Vec<u8> = e["value"]
        .as_str()
        .unwrap()
        .split(' ')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    b.chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn the_context_probe_sees_the_listener_and_the_migrating_child() {
    // ctx_probe.o (sim-bpf/fixtures) records every context field per call
    // path; it passes, so the kernel hashes (§4.3). Run in the selftest's
    // established case: the SYN path (record 0) and children at close
    // (record 1).
    for ipv6 in [false, true] {
        let mut v: Value =
            serde_json::from_str(&scenario_text("selftest-established-bpf.json")).unwrap();
        if ipv6 {
            v["servers"][0]["address"] = json!("::1");
        }
        v["policies"][0]["bpf"] =
            json!({"object": "../sim-bpf/fixtures/ctx_probe.o", "program": "probe"});
        v["timeline"] = json!(v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["do"] != "map_update")
            .cloned()
            .collect::<Vec<_>>());
        let r = run_with(&from_json(&v), None);
        let tag = format!("ipv6={ipv6}");
        let (family, eth) = if ipv6 { (10, 0xdd86) } else { (2, 0x0008) };
        let syn = probe_rec(&r, 0);
        assert_eq!(syn[0], 25, "{tag}: one call per SYN");
        assert_eq!(
            (syn[1], syn[2], syn[4]),
            (40, eth, 6),
            "{tag}: len, eth_protocol, ip_protocol"
        );
        assert_eq!(
            (syn[8], syn[9], syn[10]),
            (10, family, 40_000),
            "{tag}: sk LISTEN, family, port"
        );
        assert_eq!(syn[16], 0, "{tag}: no migrating_sk on selection");
        let close = probe_rec(&r, 1);
        assert_eq!(
            u64::from(close[0]),
            r.migrations.accept_queue,
            "{tag}: one call per child migration (the hash spreads them, so more hops than with the map)"
        );
        assert_eq!((close[1], close[7]), (0, 0), "{tag}: alloc_skb(0)");
        assert_eq!(
            (close[8], close[9]),
            (7, family),
            "{tag}: sk is the closed listener"
        );
        // migrating_sk: an ESTABLISHED child of the flow, local port 40000
        // (host order), the client's port (network order) and address.
        assert_eq!(
            (close[16], close[17], close[18]),
            (1, family, 40_000),
            "{tag}"
        );
        assert_ne!(close[19], 0, "{tag}: the peer's port");
        if ipv6 {
            assert_eq!(
                close[27],
                u32::from_le_bytes([0, 0, 0, 1]),
                "{tag}: peer ::1"
            );
        } else {
            let lo = u32::from_le_bytes([127, 0, 0, 1]);
            assert_eq!(
                (close[20], close[21]),
                (lo, lo),
                "{tag}: 127.0.0.1 both ends"
            );
        }
    }
}

/// A kernel-backend map write (`sim_kernel::MapEntry`) as a scenario's
/// `map_update` action or initial map entry.
fn entry_json(e: &sim_kernel::MapEntry, names: &[String]) -> Value {
    use sim_kernel::MapDatum as D;
    let datum = |d: &D| match d {
        D::U32(v) => json!(v),
        D::U64(v) => json!({"hex": hex(&v.to_le_bytes())}),
        D::Bytes(b) => json!({"hex": hex(b)}),
        D::ListenerFd(w) => json!({"worker": names[*w]}),
        D::ListenerCookie(w) => json!({"cookie": names[*w]}),
    };
    json!({"map": e.map, "key": datum(&e.key), "value": datum(&e.value)})
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `newest_generation` and its C twin: `policy.o` with `newest[]` and
/// `config.newest_len` rewritten at every listen and close, exactly as the
/// kernel backend's user space writes them (`backend::kernel::policy`), on
/// `bpf-steer-new-generation` with `pass` on migration (`least_loaded` reads
/// accept-queue lengths, which no `SK_REUSEPORT` program can see: its twin
/// needs user space to publish every enqueue, so it has no static twin).
#[test]
fn newest_generation_and_its_c_twin_give_identical_outcomes() {
    use sim_reuseport::backend::kernel::policy::Policies;
    let mut decl: Value =
        serde_json::from_str(&scenario_text("bpf-steer-new-generation.json")).unwrap();
    decl["policies"][0]["on_migrate"] = json!("pass");
    let names: Vec<String> = decl["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect();
    let plan = lower(&from_json(&decl)).unwrap();
    let mut policies = Policies::new(&plan).unwrap();
    let mut writes = Vec::new();
    for s in &plan.timeline {
        for a in policies.after(&s.prim) {
            let sim_kernel::Action::MapUpdate { entry, .. } = a else {
                panic!("only map updates follow a step: {a:?}")
            };
            let mut w = entry_json(&entry, &names);
            w["at"] = json!(format!("{}ns", s.at.as_nanos()));
            w["do"] = json!("map_update");
            w["policy"] = decl["policies"][0]["name"].clone();
            writes.push(w);
        }
    }
    let spec = policies.into_specs().remove(0);
    let mut twin = decl.clone();
    let p = &decl["policies"][0];
    twin["policies"][0] = json!({
        "name": p["name"], "kind": p["kind"], "via": p["via"], "attach_at": p["attach_at"],
        "bpf": {"object": "../sim-bpf/fixtures/policy.o", "program": spec.program,
                "maps": spec.initial_entries.iter().map(|e| entry_json(e, &names)).collect::<Vec<_>>()}
    });
    twin["timeline"].as_array_mut().unwrap().extend(writes);
    let (decl, twin) = (from_json(&decl), from_json(&twin));
    for migrate in [Some(false), Some(true)] {
        let d = run_with(&decl, migrate);
        let b = run_with(&twin, migrate);
        assert!(d.connections.completed > 0);
        assert_eq!(outcome(&b), outcome(&d), "migrate={migrate:?}");
        assert!(b.policies[0].bpf.as_ref().unwrap().map_errors.is_empty());
    }
}
