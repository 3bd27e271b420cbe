//! The JSON Schema (`schema/scenario.schema.json`) and the loader agree: a
//! real validator (the `jsonschema` crate) accepts exactly what the loader
//! (parse and lowering) accepts, over the bundled scenarios, the repro
//! files and generated mutations of single fields.
//!
//! Where the loader refuses for a reason a schema cannot express (a name
//! that refers to nothing, a time after the duration, the life of a
//! worker's fd), only the loader refuses; those kinds are listed in
//! [`BEYOND_SCHEMA`]. JSON Schema also counts `1.0` (or `1e3`) as an
//! integer, which the loader refuses for an integer field: no mutation
//! writes one.

mod common;

use serde_json::Value;
use sim_reuseport::scenario::{lower, parse_str, LowerErrorKind, MAX_RATE};

/// Lowering rules that relate several fields: a schema cannot check them.
const BEYOND_SCHEMA: [LowerErrorKind; 6] = [
    LowerErrorKind::UnknownName,
    LowerErrorKind::AfterEnd,
    LowerErrorKind::ClosedFd,
    LowerErrorKind::WorkerKilled,
    LowerErrorKind::WorkerInOldAndNew,
    LowerErrorKind::AddressNotOnHost,
];

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(common::root().join("schema/scenario.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

/// The loader's verdict: `Ok`, or the error and whether a schema could see it.
fn loader(text: &str) -> Result<(), (String, bool)> {
    let scn = parse_str(text).map_err(|e| (e.to_string(), true))?;
    lower(&scn)
        .map(|_| ())
        .map_err(|e| (e.to_string(), !BEYOND_SCHEMA.contains(&e.kind)))
}

/// The schema's verdict on `text` (which must be JSON).
fn schema(v: &jsonschema::Validator, text: &str) -> Result<(), String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let first = v
        .iter_errors(&doc)
        .next()
        .map(|e| format!("{e} at {}", e.instance_path));
    match first {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

fn agree(v: &jsonschema::Validator, what: &str, text: &str) {
    match (loader(text), schema(v, text)) {
        (Ok(()), Ok(())) | (Err(_), Err(_)) => {}
        (Err((_, false)), Ok(())) => {}
        (Ok(()), Err(s)) => panic!("{what}: the loader accepts, the schema refuses: {s}"),
        (Err((l, _)), Ok(())) => panic!("{what}: the schema accepts, the loader refuses: {l}"),
    }
}

#[test]
fn bundled_scenarios_and_repros() {
    let v = validator();
    let mut files = Vec::new();
    for dir in ["scenarios", "sim-reuseport/tests/repro"] {
        for e in std::fs::read_dir(common::root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 25, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        agree(&v, &f.display().to_string(), &text);
    }
}

/// Values to put at a JSON pointer of nginx-reload.json, as raw JSON text
/// (so that 2^64 stays 2^64): some valid, some not.
fn mutations() -> Vec<(&'static str, Vec<String>)> {
    let s = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let durations = [
        "\"200µs\"",
        "\"200us\"",
        "\"1min\"",
        "\"2m\"",
        "\"0\"",
        "\"0.0\"",
        "\"0s\"",
        "\".5ms\"",
        "\"5 ms\"",
        "\" 5ms \"",
        "\"1.5s\"",
        "\"1.000000001s\"",
        "\"1.0000000001s\"",
        "\"1.5ns\"",
        "\"1.0ns\"",
        "\"1.ms\"",
        "\".\"",
        "\"5\"",
        "\"-1ms\"",
        "\"1e3ms\"",
        "\"10 parsecs\"",
        "\"\"",
        "\"ms\"",
        "\"1.2.3s\"",
        "\"0.25us\"",
        "\"0.2505ms\"",
        "5",
        "null",
    ];
    let probabilities = [
        "\"150%\"",
        "\"100%\"",
        "\"100.0%\"",
        "\"100.1%\"",
        "\"0.5%\"",
        "\"0.5 %\"",
        "\"1/1000\"",
        "\"1 / 1000\"",
        "\"1/0\"",
        "\"1.5\"",
        "\"1\"",
        "\"1.0\"",
        "\"0\"",
        "\"0.001\"",
        "\".001\"",
        "\"0.0000000001\"",
        "\"0.0000000010\"",
        "\"250ppm\"",
        "\"1000000ppm\"",
        "\"1000001ppm\"",
        "\"7ppb\"",
        "\"1.5ppb\"",
        "\"abc\"",
        "\"\"",
        "\"-1%\"",
        "0.5",
    ];
    let rate_high = (MAX_RATE + 1).to_string();
    vec![
        (
            "/duration",
            s(&[
                "\"1min\"",
                "\"0\"",
                "\"0s\"",
                "\"0.0ms\"",
                "\"6s\"",
                "\"6 s\"",
            ]),
        ),
        ("/links/0/latency", s(&durations)),
        ("/links/0/jitter", s(&durations)),
        ("/workers/0/service_time", s(&durations)),
        ("/links/0/loss", s(&probabilities)),
        (
            "/servers/0/port",
            s(&[
                "70000", "65535", "65536", "0", "1", "-1", "443.5", "\"443\"",
            ]),
        ),
        ("/version", s(&["2", "1", "0", "\"1\""])),
        (
            "/seed",
            s(&[
                "18446744073709551616",
                "18446744073709551615",
                "0",
                "-1",
                "1.5",
                "\"1\"",
            ]),
        ),
        (
            "/hosts/1/addresses/0",
            s(&[
                "\"10.0.1.256\"",
                "\"10.0.1.77\"",
                "\"10.0.1\"",
                "\"010.0.1.1\"",
                "\"x\"",
            ]),
        ),
        (
            "/clients/0/arrival/rate",
            vec!["0".into(), "1".into(), MAX_RATE.to_string(), rate_high],
        ),
        (
            "/workers/0/backlog",
            s(&["0", "1", "4294967295", "4294967296", "-1"]),
        ),
        ("/clients/0/request_bytes", s(&["0", "1", "4294967296"])),
        ("/hosts/0/hz", s(&["250", "1000", "251", "0", "null"])),
        ("/links/0/bandwidth_bps", s(&["0", "1", "null", "-5"])),
    ]
}

#[test]
fn mutations_of_single_fields() {
    let v = validator();
    let base: Value = serde_json::from_str(&common::scenario_text("nginx-reload.json")).unwrap();
    let mut checked = 0;
    for (pointer, values) in mutations() {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        for raw in values {
            let mut doc = base.clone();
            let target = doc
                .pointer_mut(parent)
                .unwrap_or_else(|| panic!("{pointer}"));
            match target {
                Value::Object(o) => {
                    o.insert(key.into(), Value::String("@@X@@".into()));
                }
                Value::Array(a) => a[key.parse::<usize>().unwrap()] = Value::String("@@X@@".into()),
                _ => panic!("{pointer}"),
            }
            let text = serde_json::to_string_pretty(&doc)
                .unwrap()
                .replace("\"@@X@@\"", &raw);
            agree(&v, &format!("{pointer} = {raw}"), &text);
            checked += 1;
        }
    }
    // The whole file as an array, and as a string.
    let array = format!("[{}]", common::scenario_text("nginx-reload.json"));
    agree(&v, "an array", &array);
    agree(&v, "a string", "\"scenario\"");
    assert!(checked > 100);
}

/// The values of issue 16, each way: accepted by both, or refused by both.
#[test]
fn the_values_the_schema_used_to_get_wrong() {
    let v = validator();
    let base = common::scenario_text("nginx-reload.json");
    let with = |from: &str, to: &str| {
        assert!(base.contains(from), "{from}");
        base.replacen(from, to, 1)
    };
    for ok in [
        with("\"latency\": \"5ms\"", "\"latency\": \"200µs\""),
        with("\"latency\": \"5ms\"", "\"latency\": \"1min\""),
        with("\"latency\": \"5ms\"", "\"latency\": \"0\""),
    ] {
        assert!(schema(&v, &ok).is_ok() && loader(&ok).is_ok(), "{ok}");
    }
    for bad in [
        with("\"port\": 443", "\"port\": 70000"),
        with("\"version\": 1", "\"version\": 2"),
        with(
            "\"latency\": \"5ms\"",
            "\"latency\": \"5ms\", \"loss\": \"150%\"",
        ),
        with("\"rate\": 500", "\"rate\": 0"),
        with("\"seed\": 1", "\"seed\": 18446744073709551616"),
        with("\"10.0.1.1\"", "\"10.0.0.256\""),
    ] {
        assert!(schema(&v, &bad).is_err(), "the schema accepts {bad}");
        assert!(loader(&bad).is_err(), "the loader accepts {bad}");
    }
}
