//! Lowering raises every kind of error it has, each at the JSON path of
//! the field that breaks the rule: one bad scenario per
//! [`LowerErrorKind`]. The cases are an exhaustive `match` over the kinds,
//! so a new kind does not compile until it has a case here, and
//! `LowerErrorKind::ALL` is generated from the enum's own variant list.

use serde_json::{json, Value};
use sim_reuseport::scenario::{lower, parse_str, LowerErrorKind, MAX_CLIENTS, MAX_HOSTS};
use sim_reuseport::scenario::{MAX_BURST, MAX_RATE, MAX_WORKERS};

/// A small valid scenario to break.
fn base() -> Value {
    json!({
        "version": 1,
        "name": "base",
        "duration": "6s",
        "hosts": [
            {"name": "server", "addresses": ["10.0.0.1"]},
            {"name": "clients", "addresses": ["10.0.1.1"]}
        ],
        "links": [{"between": ["clients", "server"], "latency": "5ms"}],
        "servers": [{"name": "web", "host": "server", "address": "10.0.0.1", "port": 443}],
        "workers": [
            {"name": "old-0", "server": "web"},
            {"name": "new-0", "server": "web", "listen_at": null}
        ],
        "clients": [{"name": "c", "host": "clients", "server": "web",
                     "arrival": {"kind": "constant", "rate": 100}}],
        "timeline": [
            {"at": "2s", "do": "reload_new_first", "old": ["old-0"], "new": ["new-0"], "drain": "500ms"}
        ]
    })
}

fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut v = base();
    f(&mut v);
    v
}

/// The fixtures directory of `sim-bpf` (absolute: a scenario parsed from a
/// string resolves object paths from the working directory).
fn fixture(name: &str) -> String {
    format!("{}/../sim-bpf/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The base scenario with a `bpf` policy running the selftest's program.
fn with_bpf(f: impl FnOnce(&mut Value)) -> Value {
    with(|v| {
        v["policies"] = json!([{
            "name": "mig", "kind": "select_or_migrate", "via": "old-0",
            "bpf": {"object": fixture("migrate_reuseport.o"), "program": "migrate_reuseport"}
        }]);
        f(v)
    })
}

/// A scenario that breaks the rule of `kind`, and the path the error names.
fn case(kind: LowerErrorKind) -> (Value, &'static str) {
    use LowerErrorKind as K;
    match kind {
        K::DurationZero => (with(|v| v["duration"] = json!("0s")), "duration"),
        K::BpfObjectUnreadable => (
            with_bpf(|v| v["policies"][0]["bpf"]["object"] = json!(fixture("missing.o"))),
            "policies[0].bpf.object",
        ),
        K::BpfLoad => (
            // A C source is not an ELF object.
            with_bpf(|v| v["policies"][0]["bpf"]["object"] = json!(fixture("migrate_reuseport.c"))),
            "policies[0].bpf.object",
        ),
        K::BpfUnknownProgram => (
            with_bpf(|v| v["policies"][0]["bpf"]["program"] = json!("select_policy")),
            "policies[0].bpf.program",
        ),
        K::BpfAttachType => (
            with_bpf(|v| v["policies"][0]["kind"] = json!("select")),
            "policies[0].kind",
        ),
        K::BpfWithRules => (
            with_bpf(|v| v["policies"][0]["on_syn"] = json!("drop")),
            "policies[0].on_syn",
        ),
        K::BpfUnknownMap => (
            with_bpf(|v| {
                v["policies"][0]["bpf"]["maps"] = json!([{"map": "targets", "key": 0, "value": 0}])
            }),
            "policies[0].bpf.maps[0].map",
        ),
        K::BpfMapBytes => (
            // migrate_map's value is a u32 slot.
            with_bpf(|v| {
                v["policies"][0]["bpf"]["maps"] =
                    json!([{"map": "migrate_map", "key": {"cookie": "old-0"}, "value": 1u64 << 32}])
            }),
            "policies[0].bpf.maps[0].value",
        ),
        K::NotBpfPolicy => (
            with(|v| {
                v["policies"] = json!([{"name": "p", "kind": "select", "via": "old-0"}]);
                v["timeline"].as_array_mut().unwrap().push(json!(
                    {"at": "1s", "do": "map_delete", "policy": "p", "map": "socks", "key": 0}));
            }),
            "timeline[1].policy",
        ),
        K::DurationTooLong => (with(|v| v["duration"] = json!("100001s")), "duration"),
        K::AfterEnd => (
            with(|v| v["timeline"] = json!([{"at": "7s", "do": "close", "worker": "old-0"}])),
            "timeline[0].at",
        ),
        K::DelayTooLong => (
            with(|v| v["links"][0]["latency"] = json!("100001s")),
            "links[0].latency",
        ),
        K::NoHosts => (with(|v| v["hosts"] = json!([])), "hosts"),
        K::TooManyHosts => (
            with(|v| {
                let hosts = v["hosts"].as_array_mut().unwrap();
                for i in 0..MAX_HOSTS {
                    hosts.push(json!({"name": format!("h{i}"),
                                      "addresses": [format!("10.2.{}.{}", i / 250, 1 + i % 250)]}));
                }
            }),
            "hosts",
        ),
        K::EmptyName => (
            with(|v| v["workers"][0]["name"] = json!("")),
            "workers[0].name",
        ),
        K::DuplicateName => (
            with(|v| v["workers"][1]["name"] = json!("old-0")),
            "workers[1].name",
        ),
        K::UnknownName => (
            with(|v| v["workers"][0]["server"] = json!("mail")),
            "workers[0].server",
        ),
        K::NoAddresses => (
            with(|v| v["hosts"][0]["addresses"] = json!([])),
            "hosts[0].addresses",
        ),
        K::BadAddress => (
            with(|v| v["hosts"][1]["addresses"] = json!(["10.0.0.1"])),
            "hosts[1].addresses[0]",
        ),
        K::BadSysctl => (
            with(|v| v["hosts"][0]["sysctls"] = json!({"tcp_migrate_req": 2})),
            "hosts[0].sysctls.tcp_migrate_req",
        ),
        K::BadHz => (with(|v| v["hosts"][0]["hz"] = json!(200)), "hosts[0].hz"),
        K::CpusZero => (with(|v| v["hosts"][0]["cpus"] = json!(0)), "hosts[0].cpus"),
        K::IncomingCpuOutOfRange => (
            with(|v| v["workers"][0]["incoming_cpu"] = json!(1)),
            "workers[0].incoming_cpu",
        ),
        K::TimeoutZero => (
            with(|v| v["clients"][0]["request_timeout"] = json!("0s")),
            "clients[0].request_timeout",
        ),
        K::LinkToSelf => (
            with(|v| v["links"][0]["between"] = json!(["server", "server"])),
            "links[0].between",
        ),
        K::DuplicateLink => (
            with(|v| {
                let l = v["links"][0].clone();
                v["links"].as_array_mut().unwrap().push(l);
            }),
            "links[1].between",
        ),
        K::BadLinkParams => (
            with(|v| v["links"][0]["bandwidth_bps"] = json!(0)),
            "links[0].bandwidth_bps",
        ),
        K::WindowReversed => (
            with(|v| {
                v["faults"] = json!([{"kind": "link_down", "link": "clients-server",
                                      "from": "2s", "until": "1s"}])
            }),
            "faults[0].until",
        ),
        K::NoServers => (with(|v| v["servers"] = json!([])), "servers"),
        K::AddressNotOnHost => (
            with(|v| v["servers"][0]["address"] = json!("10.0.1.1")),
            "servers[0].address",
        ),
        K::PortZero => (
            with(|v| v["servers"][0]["port"] = json!(0)),
            "servers[0].port",
        ),
        K::NoWorkers => (with(|v| v["workers"] = json!([])), "workers"),
        K::TooManyWorkers => (
            with(|v| {
                let workers = v["workers"].as_array_mut().unwrap();
                for i in 0..MAX_WORKERS {
                    workers.push(json!({"name": format!("w{i}"), "server": "web"}));
                }
            }),
            "workers",
        ),
        K::AcceptZero => (
            with(|v| v["workers"][0]["accept"] = json!({"kind": "rate", "per_second": 0})),
            "workers[0].accept.per_second",
        ),
        K::BacklogZero => (
            with(|v| v["workers"][0]["backlog"] = json!(0)),
            "workers[0].backlog",
        ),
        K::BadMapMissing => (
            with(|v| {
                v["policies"] = json!([{"name": "p", "kind": "select_or_migrate", "via": "old-0",
                    "on_migrate": {"map": {"targets": {"old-0": "new-0"}, "missing": "maybe"}}}])
            }),
            "policies[0].on_migrate.map.missing",
        ),
        K::MacroListsDiffer => (
            with(|v| {
                v["timeline"] =
                    json!([{"at": "1s", "do": "fd_passing", "old": ["old-0"], "new": []}])
            }),
            "timeline[0].new",
        ),
        K::HandoverAcrossHosts => (
            with(|v| {
                v["hosts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "other", "addresses": ["10.0.2.1"]}));
                v["servers"].as_array_mut().unwrap().push(
                    json!({"name": "web2", "host": "other", "address": "10.0.2.1", "port": 443}),
                );
                v["workers"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "far", "server": "web2", "listen_at": null}));
                v["timeline"] =
                    json!([{"at": "1s", "do": "handover", "from": "old-0", "to": "far"}]);
            }),
            "timeline[0].to",
        ),
        K::HandoverToListener => (
            with(|v| {
                v["timeline"] =
                    json!([{"at": "1s", "do": "handover", "from": "old-0", "to": "old-0"}])
            }),
            "timeline[0].to",
        ),
        K::InheritsTwice => (
            with(|v| {
                v["workers"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "new-1", "server": "web", "listen_at": null}));
                v["timeline"] = json!([
                    {"at": "1s", "do": "handover", "from": "old-0", "to": "new-0"},
                    {"at": "2s", "do": "handover", "from": "new-1", "to": "new-0"}
                ]);
            }),
            "timeline",
        ),
        K::HeirListens => (
            with(|v| {
                v["timeline"] = json!([
                    {"at": "1s", "do": "handover", "from": "old-0", "to": "new-0"},
                    {"at": "2s", "do": "listen", "worker": "new-0"}
                ])
            }),
            "timeline",
        ),
        K::WorkerInOldAndNew => (
            with(|v| v["timeline"][0]["new"] = json!(["new-0", "old-0"])),
            "timeline[0].new[1]",
        ),
        // listen after close (the repro listen_after_close.json).
        K::ClosedFd => (
            with(|v| {
                v["timeline"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"at": "4s", "do": "listen", "worker": "old-0"}))
            }),
            "timeline[1].worker",
        ),
        // kill, then a macro closes the dead worker.
        K::WorkerKilled => (
            with(|v| {
                v["timeline"]
                    .as_array_mut()
                    .unwrap()
                    .insert(0, json!({"at": "1s", "do": "kill", "worker": "old-0"}))
            }),
            "timeline[1].old[0]",
        ),
        K::RelistenBeforeListen => (
            with(|v| {
                v["timeline"] = json!([
                    {"at": "1s", "do": "relisten", "worker": "new-0", "backlog": 64}
                ])
            }),
            "timeline",
        ),
        K::NoServerAddress => (
            with(|v| v["servers"][0]["address"] = json!("::")),
            "servers[0].address",
        ),
        K::NoSourceAddress => (
            with(|v| {
                v["hosts"][0]["addresses"] = json!(["10.0.0.1", "fd00::1"]);
                v["servers"][0]["address"] = json!("fd00::1");
            }),
            "clients[0].host",
        ),
        K::NoRoute => (with(|v| v["links"] = json!([])), "clients[0].host"),
        K::BurstTooLarge => (
            with(|v| v["clients"][0]["arrival"] = json!({"kind": "burst", "count": MAX_BURST + 1})),
            "clients[0].arrival.count",
        ),
        K::RateZero => (
            with(|v| v["clients"][0]["arrival"]["rate"] = json!(0)),
            "clients[0].arrival.rate",
        ),
        K::RateTooHigh => (
            with(|v| v["clients"][0]["arrival"]["rate"] = json!(MAX_RATE + 1)),
            "clients[0].arrival.rate",
        ),
        K::RequestZero => (
            with(|v| v["clients"][0]["request_bytes"] = json!(0)),
            "clients[0].request_bytes",
        ),
        K::StopBeforeStart => (
            with(|v| {
                v["clients"][0]["start"] = json!("3s");
                v["clients"][0]["stop"] = json!("2s");
            }),
            "clients[0].stop",
        ),
        K::TooManyClients => (
            with(|v| {
                let c = v["clients"][0].clone();
                let clients = v["clients"].as_array_mut().unwrap();
                for i in 0..MAX_CLIENTS {
                    let mut c = c.clone();
                    c["name"] = json!(format!("c{i}"));
                    clients.push(c);
                }
            }),
            "clients",
        ),
    }
}

#[test]
fn the_base_scenario_lowers() {
    let scn = parse_str(&base().to_string()).unwrap();
    let plan = lower(&scn).unwrap();
    assert_eq!(plan.workers.len(), 2);
    assert_eq!(plan.timeline.len(), 4, "{:?}", plan.timeline);
}

#[test]
fn every_error_kind_is_raised_at_its_path() {
    assert!(LowerErrorKind::ALL.len() >= 38);
    for &kind in LowerErrorKind::ALL {
        let (v, path) = case(kind);
        let scn = parse_str(&v.to_string())
            .unwrap_or_else(|e| panic!("{kind:?}: the case does not parse: {e}"));
        let e = match lower(&scn) {
            Ok(_) => panic!("{kind:?}: lowering accepted the case"),
            Err(e) => e,
        };
        assert_eq!(e.kind, kind, "{kind:?}: raised {e}");
        assert_eq!(e.path, path, "{kind:?}: {e}");
        assert!(
            !e.message.is_empty(),
            "{kind:?}: a message says what was expected"
        );
    }
}

/// The lifecycle errors name the earlier action, the kernel's answer and
/// the times as the user wrote them (a macro's `at + drain`).
#[test]
fn lifecycle_errors_say_what_happened_before() {
    let lowered = |v: Value| lower(&parse_str(&v.to_string()).unwrap());
    // Close twice: the macro's close at 2s + drain 500ms, then a close.
    let e = lowered(with(|v| {
        v["timeline"]
            .as_array_mut()
            .unwrap()
            .push(json!({"at": "3s", "do": "close", "worker": "old-0"}))
    }))
    .unwrap_err();
    assert_eq!(e.kind, LowerErrorKind::ClosedFd, "{e}");
    assert_eq!(e.path, "timeline[1].worker");
    assert!(e.message.contains("EBADF"), "{e}");
    assert!(
        e.message
            .contains("`close old-0` at 2.5s (timeline[0].old[0])"),
        "{e}"
    );
    // Kill then close (by the macro): the error is at the macro's field.
    let e = lowered(with(|v| {
        v["timeline"]
            .as_array_mut()
            .unwrap()
            .push(json!({"at": "2100ms", "do": "kill", "worker": "old-0"}))
    }))
    .unwrap_err();
    assert_eq!(e.kind, LowerErrorKind::WorkerKilled, "{e}");
    assert_eq!(e.path, "timeline[0].old[0]");
    assert!(e.message.contains("at 2s + drain 500ms"), "{e}");
    assert!(e.message.contains("`kill old-0` at 2.1s"), "{e}");
    // Shutdown, then listen again, then close: what the kernel allows
    // (§5.9 resurrection), and close then kill: the process outlives its fd.
    lowered(with(|v| {
        v["timeline"] = json!([
            {"at": "1s", "do": "shutdown", "worker": "old-0"},
            {"at": "2s", "do": "listen", "worker": "old-0"},
            {"at": "3s", "do": "close", "worker": "old-0"},
            {"at": "4s", "do": "kill", "worker": "old-0"}
        ])
    }))
    .unwrap();
    // Kill twice.
    let e = lowered(with(|v| {
        v["timeline"] = json!([
            {"at": "1s", "do": "kill", "worker": "new-0"},
            {"at": "1s", "do": "kill", "worker": "new-0"}
        ])
    }))
    .unwrap_err();
    assert_eq!(
        (e.kind, e.path.as_str()),
        (LowerErrorKind::WorkerKilled, "timeline[1].worker")
    );
}

/// An error inside a macro names the macro's own field, and a time past the
/// end says how it was computed from what the user wrote.
#[test]
fn macro_errors_point_at_the_macro() {
    let lowered = |v: Value| lower(&parse_str(&v.to_string()).unwrap());
    let e = lowered(with(|v| v["timeline"][0]["old"] = json!(["old-0", "gone"]))).unwrap_err();
    assert_eq!(
        (e.kind, e.path.as_str()),
        (LowerErrorKind::UnknownName, "timeline[0].old[1]")
    );
    let e = lowered(with(|v| v["timeline"][0]["drain"] = json!("4500ms"))).unwrap_err();
    assert_eq!(
        (e.kind, e.path.as_str()),
        (LowerErrorKind::AfterEnd, "timeline[0].drain")
    );
    assert!(e.message.contains("6.5s (at 2s + drain 4.5s)"), "{e}");
}

/// The other ways a `bpf` policy is refused, each naming the file or field.
#[test]
fn bpf_policy_errors_name_the_file_the_program_and_the_reason() {
    let lower_err = |v: Value| lower(&parse_str(&v.to_string()).unwrap()).unwrap_err();
    // A helper the simulator does not offer: the selftest's object with its
    // bpf_get_socket_cookie call (helper 46) turned into
    // bpf_get_current_task (35).
    let mut obj = std::fs::read(fixture("migrate_reuseport.o")).unwrap();
    let call = [0x85u8, 0, 0, 0, 46, 0, 0, 0];
    let at = obj
        .windows(8)
        .position(|w| w == call)
        .expect("a call of helper 46");
    obj[at + 4] = 35;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("helper.o");
    std::fs::write(&file, &obj).unwrap();
    let e = lower_err(with_bpf(|v| {
        v["policies"][0]["bpf"]["object"] = json!(file.display().to_string())
    }));
    assert_eq!(e.kind, LowerErrorKind::BpfLoad, "{e}");
    assert_eq!(e.path, "policies[0].bpf.object");
    assert!(e.message.contains("helper.o"), "{e}");
    assert!(e.message.contains("instruction 6"), "{e}");
    assert!(e.message.contains("helper 35"), "{e}");
    // The missing file is named with the reason.
    let e = lower_err(with_bpf(|v| {
        v["policies"][0]["bpf"]["object"] = json!(fixture("missing.o"))
    }));
    assert!(e.message.contains("missing.o"), "{e}");
    // An unknown program lists the object's programs.
    let e = lower_err(with_bpf(|v| {
        v["policies"][0]["bpf"]["program"] = json!("nope")
    }));
    assert!(
        e.message
            .contains("migrate_reuseport in sk_reuseport/migrate"),
        "{e}"
    );
    // A socket cannot be in the maps written at load (nothing listens yet).
    let e =
        lower_err(with_bpf(
            |v| {
                v["policies"][0]["bpf"]["maps"] =
                    json!([{"map": "reuseport_map", "key": 0, "value": {"worker": "old-0"}}])
            },
        ));
    assert_eq!(
        (e.kind, e.path.as_str()),
        (LowerErrorKind::BpfMapBytes, "policies[0].bpf.maps[0].value")
    );
    // A socket map's value must be a socket; a timeline key of the wrong size.
    let e = lower_err(with_bpf(|v| {
        v["timeline"]
            .as_array_mut()
            .unwrap()
            .push(json!({"at": "1s", "do": "map_update",
            "policy": "mig", "map": "reuseport_map", "key": 0, "value": 3}));
    }));
    assert_eq!(
        (e.kind, e.path.as_str()),
        (LowerErrorKind::BpfMapBytes, "timeline[1].value")
    );
    let e = lower_err(with_bpf(|v| {
        v["timeline"]
            .as_array_mut()
            .unwrap()
            .push(json!({"at": "1s", "do": "map_delete",
            "policy": "mig", "map": "migrate_map", "key": {"u32": [1]}}));
    }));
    assert_eq!(
        (e.kind, e.path.as_str()),
        (LowerErrorKind::BpfMapBytes, "timeline[1].key")
    );
    // A good one lowers, with its maps resolved.
    let plan = lower(
        &parse_str(
            &with_bpf(|v| {
                v["policies"][0]["bpf"]["maps"] =
                    json!([{"map": "migrate_map", "key": {"cookie": "old-0"}, "value": 1}]);
                v["timeline"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"at": "1s", "do": "map_update",
                    "policy": "mig", "map": "reuseport_map", "key": 1, "value": {"worker": "new-0"},
                    "flags": "noexist"}));
            })
            .to_string(),
        )
        .unwrap(),
    )
    .unwrap();
    let b = plan.policies[0].bpf.as_ref().unwrap();
    assert_eq!(b.program, "migrate_reuseport");
    assert_eq!(b.init.len(), 1);
}
