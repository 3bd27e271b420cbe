//! Mutation fuzzing of the scenario front end: each bundled scenario's JSON,
//! randomly mutated (a key deleted, a number replaced by a random, negative,
//! huge or fractional value, a string replaced by random text, a value of
//! another type swapped in, an array emptied, or the text truncated at a
//! random byte), goes through `scenario::parse_str`, lowering (`scenario::lower`) and the
//! simulator's construction and first instant.
//! Every input must give `Ok` or `Err`: a panic fails the test and prints the
//! input.
//!
//! `cargo fuzz` would need a nightly toolchain, which this project does not
//! use; this property test runs on stable with the rest of the suite.

mod common;
use common::root;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use sim_core::SimDuration;
use sim_reuseport::backend::{Backend, RunOptions, Simulator};
use sim_reuseport::scenario::{lower, parse_str};
use sim_reuseport::vary;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The bundled scenarios, except the large benchmark (its size only slows
/// the test down; its shape is the same as the others').
fn corpus() -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| !p.ends_with("bench-100k.json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect()
}

/// One mutation, applied at the `pick`-th node (pre-order) of the document.
#[derive(Clone, Debug)]
enum Mutation {
    DeleteKey,
    Number(i128),
    Float(f64),
    Text(String),
    SwapType(u8),
    EmptyArray,
    DuplicateArrayItem,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let number = prop_oneof![
        any::<i64>().prop_map(i128::from),
        (-3i128..3),
        Just(i128::from(u64::MAX)),
        Just(i128::from(u64::MAX) + 1),
        Just(i128::from(u32::MAX) + 1),
        Just(i128::from(u16::MAX) + 1),
        Just(i128::from(i64::MIN)),
        (0i128..100_000_000_000),
    ];
    let text = prop_oneof![
        ".{0,12}",
        "[0-9]{1,25}(ns|us|ms|s|m|min|h|)",
        "[0-9]{9,13}(s|m)",
        "[0-9]{0,3}\\.[0-9]{0,12}(s|ms|%|ppm|)",
        "[0-9]{1,20}/[0-9]{0,20}",
        Just(String::new()),
        Just("18446744073709551615s".to_string()),
        Just("99999999999999m".to_string()),
        Just("::".to_string()),
        Just("0.0.0.0".to_string()),
        Just("new-0".to_string()),
        Just("old-0".to_string()),
        Just("server".to_string()),
    ];
    prop_oneof![
        2 => Just(Mutation::DeleteKey),
        3 => number.prop_map(Mutation::Number),
        1 => prop_oneof![Just(f64::MAX), Just(-0.5), Just(1e300), Just(0.25)].prop_map(Mutation::Float),
        3 => text.prop_map(Mutation::Text),
        2 => (0u8..6).prop_map(Mutation::SwapType),
        1 => Just(Mutation::EmptyArray),
        1 => Just(Mutation::DuplicateArrayItem),
    ]
}

/// Counts the nodes (values) of a document.
fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// Applies `m` at the node numbered `*n` (pre-order); returns true once done.
fn apply(v: &mut Value, n: &mut usize, m: &Mutation) -> bool {
    if *n == 0 {
        mutate_node(v, m);
        return true;
    }
    *n -= 1;
    match v {
        Value::Array(a) => {
            for item in a.iter_mut() {
                if apply(item, n, m) {
                    return true;
                }
            }
        }
        Value::Object(o) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            for k in keys {
                // Deleting is done from the parent, so that the key goes.
                if *n == 0 && matches!(m, Mutation::DeleteKey) {
                    o.remove(&k);
                    return true;
                }
                if apply(o.get_mut(&k).unwrap(), n, m) {
                    return true;
                }
            }
        }
        _ => {}
    }
    false
}

fn mutate_node(v: &mut Value, m: &Mutation) {
    let new = match m {
        Mutation::DeleteKey => Value::Null,
        Mutation::Number(x) => serde_json::from_str(&x.to_string()).unwrap_or(Value::Null),
        Mutation::Float(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        Mutation::Text(s) => Value::String(s.clone()),
        Mutation::SwapType(k) => match k {
            0 => Value::Null,
            1 => Value::Bool(true),
            2 => Value::from(7),
            3 => Value::from("7ms"),
            4 => Value::Array(vec![v.clone()]),
            _ => serde_json::json!({ "kind": v.clone() }),
        },
        Mutation::EmptyArray => match v {
            Value::Array(_) => Value::Array(Vec::new()),
            _ => return,
        },
        Mutation::DuplicateArrayItem => match v {
            Value::Array(a) if !a.is_empty() => {
                let mut a = a.clone();
                a.push(a[0].clone());
                Value::Array(a)
            }
            _ => return,
        },
    };
    *v = new;
}

/// Parses and builds `text`; a panic becomes an `Err` that shows the input.
fn front_end(text: &str) -> Result<(), String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(scn) = parse_str(text) {
            let _ = vary::check(&scn, &sim_reuseport::scenario::validate);
            if let Ok(mut plan) = lower(&scn) {
                // Construction and the first instant only: the whole run
                // of a mutated scenario can be arbitrarily long.
                plan.duration = SimDuration::from_nanos(1);
                let _ = Simulator.run(&plan, RunOptions::default());
                let _ = Simulator.run(
                    &plan,
                    RunOptions {
                        migrate: Some(true),
                        seed: Some(7),
                        ..Default::default()
                    },
                );
            }
        }
    }));
    outcome.map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("panic: {msg}\ninput:\n{text}")
    })
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        // Shrinking a JSON document is slow and the input is printed anyway.
        max_shrink_iters: 64,
        ..Config::default()
    })
}

#[test]
fn mutated_scenarios_never_panic_the_front_end() {
    let corpus = corpus();
    let mut runner = runner(20_000);
    let docs = corpus.clone();
    let strategy =
        (0..docs.len(), any::<prop::sample::Index>(), 1..4usize).prop_flat_map(|(d, at, k)| {
            (
                Just(d),
                Just(at),
                prop::collection::vec((any::<prop::sample::Index>(), mutation()), k),
            )
        });
    // Silence the default hook while panics are being caught.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = runner.run(&strategy, |(d, _, muts)| {
        let mut v = docs[d].1.clone();
        for (at, m) in &muts {
            let mut n = at.index(count(&v));
            apply(&mut v, &mut n, m);
        }
        let text = serde_json::to_string_pretty(&v).unwrap();
        front_end(&text).map_err(|e| TestCaseError::fail(format!("{}: {e}", docs[d].0)))
    });
    std::panic::set_hook(hook);
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn truncated_scenarios_never_panic_the_front_end() {
    let corpus = corpus();
    let texts: Vec<(String, String)> = corpus
        .iter()
        .map(|(n, v)| (n.clone(), serde_json::to_string_pretty(v).unwrap()))
        .collect();
    let mut runner = runner(4_000);
    let strategy = (0..texts.len(), any::<prop::sample::Index>());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = runner.run(&strategy, |(d, at)| {
        let (name, text) = &texts[d];
        let bytes = text.as_bytes();
        let cut = &bytes[..at.index(bytes.len() + 1)];
        // A cut inside a multi-byte character is not a &str; parse what is valid.
        let s = String::from_utf8_lossy(cut);
        front_end(&s).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))
    });
    std::panic::set_hook(hook);
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn handpicked_edge_cases_never_panic_the_front_end() {
    let (_, base) = corpus()
        .into_iter()
        .find(|(n, _)| n == "nginx-reload.json")
        .unwrap();
    let patch = |f: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        f(&mut v);
        serde_json::to_string(&v).unwrap()
    };
    let cases = [
        patch(&|v| v["duration"] = "100000s".into()),
        patch(&|v| v["duration"] = "1ns".into()),
        patch(&|v| v["links"][0]["latency"] = "18446744073s".into()),
        patch(&|v| v["links"][0]["jitter"] = "18446744073s".into()),
        patch(&|v| v["links"][0]["bandwidth_bps"] = 1.into()),
        patch(&|v| v["links"][0]["loss"] = "1".into()),
        patch(&|v| {
            v["clients"][0]["arrival"] = serde_json::json!({"kind": "poisson", "rate": 100_000_000})
        }),
        patch(&|v| {
            v["clients"][0]["arrival"] =
                serde_json::json!({"kind": "burst", "count": u64::MAX, "spacing": "0s"})
        }),
        patch(&|v| {
            v["clients"][0]["arrival"] =
                serde_json::json!({"kind": "ramp", "from_rate": u64::MAX, "to_rate": 0})
        }),
        patch(&|v| v["clients"][0]["start"] = "5s".into()),
        patch(&|v| v["workers"][0]["backlog"] = u32::MAX.into()),
        patch(&|v| {
            v["workers"][0]["accept"] = serde_json::json!({"kind": "rate", "per_second": u64::MAX})
        }),
        patch(&|v| {
            v["workers"][0]["accept"] =
                serde_json::json!({"kind": "batch", "interval": "1ns", "max": u32::MAX})
        }),
        patch(&|v| v["workers"][0]["syn_retries"] = 255.into()),
        patch(&|v| {
            v["hosts"][0]["sysctls"] = serde_json::json!({"tcp_rto_max_ms": 1000, "tcp_synack_retries": 255, "somaxconn": 0})
        }),
        patch(&|v| v["timeline"][0]["drain"] = "18446744073s".into()),
        patch(
            &|v| v["timeline"] = serde_json::json!([{"at": "1s", "do": "rolling_restart", "old": ["old-0"], "new": ["new-0"], "interval": "18446744073s", "drain": "0s"}]),
        ),
        patch(&|v| {
            v["timeline"] =
                serde_json::json!([{"at": "1s", "do": "handover", "from": "old-0", "to": "old-0"}])
        }),
        patch(&|v| {
            v["timeline"] = serde_json::json!([{"at": "1s", "do": "detach_policy", "via": "old-0"}])
        }),
        patch(
            &|v| v["policies"] = serde_json::json!([{"name": "p", "kind": "select", "via": "new-0", "attach_at": "0s", "on_migrate": {"map": {"targets": {"old-0": "nobody"}}}}]),
        ),
        patch(&|v| v["servers"][0]["address"] = "::".into()),
        patch(&|v| v["hosts"][0]["addresses"] = serde_json::json!(["::1"])),
        patch(&|v| {
            v["vary"] = serde_json::json!([{"path": "/links/0/latency", "min": "1ms", "max": "18446744073s"}])
        }),
        patch(&|v| {
            v["vary"] = serde_json::json!([{"path": "/seed", "min": i64::MIN, "max": u64::MAX}])
        }),
        patch(&|v| v["vary"] = serde_json::json!([{"path": "/nowhere/0", "choices": [1]}])),
    ];
    for text in cases {
        if let Err(e) = front_end(&text) {
            panic!("{e}");
        }
    }
}
