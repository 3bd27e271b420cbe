//! Bad scenario input gives a clean error that says where (file, line and
//! column, or JSON path) and what was expected; and the command line reports
//! it with exit status 2, never touching existing output files.

mod common;
use common::root;
use serde_json::{json, Value};
use sim_reuseport::scenario::{load, lower, parse_str, LowerError, ScenarioError};
use std::path::Path;
use std::process::Command;

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

/// Pretty-printed, so that line numbers point at one field.
fn text(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in text"))
        + 1
}

/// Parse must fail; returns the error.
fn parse_err(text: &str) -> ScenarioError {
    match parse_str(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// Parse must succeed and lowering fail; returns the error.
fn build_err(v: &Value) -> LowerError {
    let scn = parse_str(&text(v)).unwrap_or_else(|e| panic!("parse: {e}"));
    match lower(&scn) {
        Ok(_) => panic!("validation accepted:\n{}", text(v)),
        Err(e) => e,
    }
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(haystack.contains(n), "{n:?} not in {haystack:?}");
    }
}

#[test]
fn the_base_scenario_is_valid() {
    let scn = parse_str(&text(&base())).unwrap();
    lower(&scn).unwrap();
}

#[test]
fn unknown_field_names_the_field_the_path_and_the_expected_fields() {
    let mut v = base();
    v["workers"][1]["listen_time"] = json!("1s");
    let t = text(&v);
    let e = parse_err(&t);
    assert_eq!(e.path, "workers[1].listen_time");
    assert_eq!(e.line_col.unwrap().0, line_of(&t, "listen_time"));
    assert_contains(
        &e.message,
        &[
            "unknown field `listen_time`",
            "expected one of",
            "`listen_at`",
        ],
    );
    // The top level too.
    let mut v = base();
    v["colour"] = json!("blue");
    let e = parse_err(&text(&v));
    assert_contains(&e.message, &["unknown field `colour`", "`duration`"]);
    // Inside an internally tagged enum (an action, a fault, an arrival or an
    // accept model) serde buffers the object, so the path stops at the
    // object; the message names the field.
    let mut v = base();
    v["timeline"][0]["drian"] = json!("1s");
    let e = parse_err(&text(&v));
    assert_eq!(e.path, "timeline[0]");
    assert_contains(&e.message, &["unknown field `drian`", "`drain`"]);
}

#[test]
fn wrong_type_names_the_path_and_the_expected_type() {
    let mut v = base();
    v["servers"][0]["port"] = json!("443");
    let t = text(&v);
    let e = parse_err(&t);
    assert_eq!(e.path, "servers[0].port");
    assert_eq!(e.line_col.unwrap().0, line_of(&t, "\"443\""));
    assert_contains(&e.message, &["invalid type", "string \"443\"", "u16"]);

    let mut v = base();
    v["hosts"] = json!({"name": "server"});
    let e = parse_err(&text(&v));
    assert_eq!(e.path, "hosts");
    assert_contains(&e.message, &["invalid type: map", "sequence"]);

    let mut v = base();
    v["links"][0]["latency"] = json!(5);
    let e = parse_err(&text(&v));
    assert_eq!(e.path, "links[0].latency");
    assert_contains(
        &e.message,
        &["invalid type: integer `5`", "duration string"],
    );

    let mut v = base();
    v["hosts"][0]["addresses"][0] = json!("10.0.0.300");
    let e = parse_err(&text(&v));
    assert_eq!(e.path, "hosts[0].addresses[0]");
    assert_contains(&e.message, &["invalid IP address"]);
}

#[test]
fn bad_duration_says_what_a_duration_looks_like() {
    let mut v = base();
    v["duration"] = json!("10 parsecs");
    let t = text(&v);
    let e = parse_err(&t);
    assert_eq!(e.path, "duration");
    assert_eq!(e.line_col.unwrap().0, line_of(&t, "parsecs"));
    assert_contains(&e.message, &["10 parsecs", "parsecs"]);
    for bad in ["-1s", "", "1.5", "s", "1e3ms", "0.0000000001s"] {
        let mut v = base();
        v["links"][0]["jitter"] = json!(bad);
        let e = parse_err(&text(&v));
        assert_eq!(e.path, "links[0].jitter", "{bad:?}");
        assert_contains(&e.message, &[&format!("{bad:?}")]);
        // Inside an action the path stops at the action (see above), and
        // the message quotes the bad value.
        let mut v = base();
        v["timeline"][0]["drain"] = json!(bad);
        let e = parse_err(&text(&v));
        assert_eq!(e.path, "timeline[0]", "{bad:?}");
        assert_contains(&e.message, &[&format!("{bad:?}")]);
    }
}

#[test]
fn bad_probability_says_what_a_probability_looks_like() {
    let mut v = base();
    v["links"][0]["loss"] = json!("150%");
    let e = parse_err(&text(&v));
    assert_eq!(e.path, "links[0].loss");
    assert_contains(&e.message, &["150%", "0.5%", "1/1000"]);
}

#[test]
fn negative_and_oversized_numbers_are_rejected_with_the_range() {
    let mut v = base();
    v["workers"][0]["backlog"] = json!(-5);
    let e = parse_err(&text(&v));
    assert_eq!(e.path, "workers[0].backlog");
    assert_contains(&e.message, &["-5", "u32"]);

    let mut v = base();
    v["servers"][0]["port"] = json!(70000);
    let e = parse_err(&text(&v));
    assert_eq!(e.path, "servers[0].port");
    assert_contains(&e.message, &["70000", "u16"]);

    let mut v = base();
    v["seed"] = json!(1e30);
    let e = parse_err(&text(&v));
    assert_eq!(e.path, "seed");

    // In range for the type, out of range for the model: caught by validation.
    let mut v = base();
    v["hosts"][0]["sysctls"] = json!({"tcp_migrate_req": 2});
    let e = build_err(&v);
    assert_eq!(e.path, "hosts[0].sysctls.tcp_migrate_req");
    assert_contains(&e.message, &["at most 1", "2"]);

    let mut v = base();
    v["servers"][0]["port"] = json!(0);
    assert_eq!(build_err(&v).path, "servers[0].port");

    let mut v = base();
    v["workers"][0]["backlog"] = json!(0);
    assert_eq!(build_err(&v).path, "workers[0].backlog");

    let mut v = base();
    v["clients"][0]["arrival"]["rate"] = json!(0);
    assert_eq!(build_err(&v).path, "clients[0].arrival.rate");

    let mut v = base();
    v["duration"] = json!("0s");
    assert_eq!(build_err(&v).path, "duration");

    // Delays are bounded so that no deadline can overflow.
    let mut v = base();
    v["links"][0]["latency"] = json!("18446744073s");
    let e = build_err(&v);
    assert_eq!(e.path, "links[0].latency");
    assert_contains(&e.message, &["too long", "100000s"]);
    let mut v = base();
    v["workers"][0]["service_time"] = json!("200000s");
    assert_eq!(build_err(&v).path, "workers[0].service_time");

    let mut v = base();
    v["duration"] = json!("1000000s");
    assert_contains(&build_err(&v).message, &["at most"]);
}

#[test]
fn timer_and_deadline_fields_are_checked_3_1() {
    // CONFIG_HZ takes four values.
    let mut v = base();
    v["hosts"][0]["hz"] = json!(200);
    let e = build_err(&v);
    assert_eq!(e.path, "hosts[0].hz");
    assert_contains(&e.message, &["100, 250, 300, 1000", "200"]);
    let mut v = base();
    v["hosts"][0]["timer_mode"] = json!("jiffy");
    let e = parse_err(&text(&v));
    assert_eq!(e.path, "hosts[0].timer_mode");
    assert_contains(&e.message, &["wheel", "exact"]);
    // Deadlines are positive and bounded.
    let mut v = base();
    v["clients"][0]["connect_timeout"] = json!("0s");
    let e = build_err(&v);
    assert_eq!(e.path, "clients[0].connect_timeout");
    assert_contains(&e.message, &["greater than 0"]);
    let mut v = base();
    v["clients"][0]["request_timeout"] = json!("200000s");
    assert_eq!(build_err(&v).path, "clients[0].request_timeout");
    // And a good one builds.
    let mut v = base();
    v["hosts"][0]["hz"] = json!(1000);
    v["hosts"][1]["timer_mode"] = json!("exact");
    v["clients"][0]["connect_timeout"] = json!("3s");
    v["clients"][0]["request_timeout"] = json!("5s");
    let scn = parse_str(&text(&v)).unwrap();
    assert!(lower(&scn).is_ok());
}

#[test]
fn unknown_names_say_which_names_exist() {
    let mut v = base();
    v["timeline"] = json!([{"at": "1s", "do": "close", "worker": "old-9"}]);
    let e = build_err(&v);
    assert_eq!(e.path, "timeline[0].worker");
    assert_contains(&e.message, &["unknown worker `old-9`", "old-0", "new-0"]);

    // Inside a macro.
    let mut v = base();
    v["timeline"][0]["new"] = json!(["new-7"]);
    let e = build_err(&v);
    assert_eq!(e.path, "timeline[0].new[0]");
    assert_contains(&e.message, &["unknown worker `new-7`"]);

    let mut v = base();
    v["workers"][0]["server"] = json!("mail");
    let e = build_err(&v);
    assert_eq!(e.path, "workers[0].server");
    assert_contains(&e.message, &["unknown server `mail`", "web"]);

    let mut v = base();
    v["clients"][0]["host"] = json!("nowhere");
    let e = build_err(&v);
    assert_eq!(e.path, "clients[0].host");
    assert_contains(&e.message, &["unknown host `nowhere`", "server", "clients"]);

    let mut v = base();
    v["faults"] = json!([{"kind": "link_down", "link": "wan", "from": "1s", "until": "2s"}]);
    let e = build_err(&v);
    assert_eq!(e.path, "faults[0].link");
    assert_contains(&e.message, &["unknown link `wan`", "clients-server"]);

    let mut v = base();
    v["workers"][1]["name"] = json!("old-0");
    let e = build_err(&v);
    assert_eq!(e.path, "workers[1].name");
    assert_contains(&e.message, &["duplicate worker name `old-0`"]);
}

#[test]
fn times_after_the_duration_are_rejected_with_both_times() {
    let mut v = base();
    v["timeline"] = json!([{"at": "10s", "do": "close", "worker": "old-0"}]);
    let e = build_err(&v);
    assert_eq!(e.path, "timeline[0].at");
    assert_contains(&e.message, &["10s", "after", "6s"]);

    // A macro whose later steps fall after the end.
    let mut v = base();
    v["timeline"][0]["drain"] = json!("5s");
    let e = build_err(&v);
    assert_eq!(e.path, "timeline[0].drain");
    assert_contains(&e.message, &["7s", "6s", "at 2s + drain 5s"]);

    let mut v = base();
    v["workers"][1]["listen_at"] = json!("7s");
    assert_eq!(build_err(&v).path, "workers[1].listen_at");

    let mut v = base();
    v["clients"][0]["stop"] = json!("1m");
    assert_eq!(build_err(&v).path, "clients[0].stop");
}

#[test]
fn version_2_is_refused_as_a_version_even_with_fields_this_build_does_not_know() {
    let mut v = base();
    v["version"] = json!(2);
    let e = parse_err(&text(&v));
    assert_eq!(e.path, "version");
    assert_contains(&e.message, &["unsupported format version 2", "expected 1"]);
    // A future format also has new fields: the version is what to report.
    v["workers"][0]["cpu_affinity"] = json!(3);
    let e = parse_err(&text(&v));
    assert_eq!(e.path, "version");
    assert_contains(&e.message, &["unsupported format version 2"]);
}

#[test]
fn missing_required_field_is_named() {
    let mut v = base();
    v.as_object_mut().unwrap().remove("duration");
    let e = parse_err(&text(&v));
    assert_contains(&e.message, &["missing field `duration`"]);
    let mut v = base();
    v["timeline"][0].as_object_mut().unwrap().remove("drain");
    let e = parse_err(&text(&v));
    assert_eq!(e.path, "timeline[0]");
    assert_contains(&e.message, &["missing field `drain`"]);
}

#[test]
fn truncated_and_empty_input_give_line_and_column() {
    let t = text(&base());
    let cut = &t[..t.len() / 2];
    let e = parse_err(cut);
    let (line, _col) = e.line_col.expect("position");
    assert_eq!(line, cut.lines().count());
    assert_contains(&e.message, &["EOF while parsing"]);

    let e = parse_err("");
    assert_eq!(e.line_col.map(|(l, _)| l), Some(1));
    assert_contains(&e.message, &["EOF while parsing a value"]);

    let e = parse_err("   \n");
    assert_contains(&e.message, &["EOF"]);

    let e = parse_err("{\"version\": 1,}");
    assert_contains(&e.message, &["trailing comma"]);

    let e = parse_err("[]");
    assert_contains(&e.message, &["JSON object", "not an array"]);
}

#[test]
fn errors_from_files_name_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    let mut v = base();
    v["servers"][0]["port"] = json!("https");
    let t = text(&v);
    std::fs::write(&path, &t).unwrap();
    let e = load(&path).unwrap_err();
    let shown = e.to_string();
    let line = line_of(&t, "\"https\"");
    assert!(
        shown.starts_with(&format!("{}:{line}:", path.display())),
        "{shown}"
    );
    assert_contains(&shown, &["at `servers[0].port`", "expected u16"]);

    let e = load(&dir.path().join("absent.json")).unwrap_err();
    assert_contains(&e.to_string(), &["absent.json", "cannot read file"]);

    // Validation errors, once named after the file, read the same way.
    let mut v = base();
    v["timeline"] = json!([{"at": "1s", "do": "kill", "worker": "old-9"}]);
    let scn = parse_str(&text(&v)).unwrap();
    let e = lower(&scn).unwrap_err().in_file("x.json");
    assert_eq!(
        e.to_string(),
        "x.json: at `timeline[0].worker`: unknown worker `old-9` (known: old-0, new-0)"
    );
}

// ---- the command line, end to end ----

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reuseport-sim"))
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A scenario that parses but fails validation (after output files are opened).
fn invalid_scenario() -> String {
    let mut v = base();
    v["timeline"] = json!([{"at": "1s", "do": "close", "worker": "ghost"}]);
    text(&v)
}

#[test]
fn cli_validate_bad_file_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = root().join("scenarios").join("nginx-reload.json");
    let bad = write(dir.path(), "typo.json", "{\"version\": 1, \"nmae\": \"x\"}");
    let invalid = write(dir.path(), "invalid.json", &invalid_scenario());
    let out = cli()
        .arg("validate")
        .args([&good, &bad, &invalid])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_contains(&stderr, &["typo.json:1:", "unknown field `nmae`"]);
    assert_contains(&stderr, &["invalid.json: at `timeline[0].worker`", "ghost"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_contains(&stdout, &["nginx-reload.json: ok"]);

    let out = cli().arg("validate").arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn cli_run_missing_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-scenario.json");
    let out = cli().arg("run").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        &["no-such-scenario.json", "cannot read file"],
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn cli_run_json_prints_the_report() {
    let file = root().join("scenarios").join("selftest-final-ack.json");
    let out = cli()
        .args(["run", "--format", "json"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    for key in [
        "scenario",
        "seed",
        "connections",
        "resets_by_cause",
        "migrations",
        "counters",
        "listeners",
        "digest",
        "events",
    ] {
        assert!(v.get(key).is_some(), "no top-level key {key}");
    }
    assert_eq!(v["scenario"]["name"], "selftest-final-ack");
    assert_eq!(v["connections"]["completed"], 25);
}

#[test]
fn cli_run_writes_trace_pcap_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let (t, p, s) = (
        dir.path().join("t.jsonl"),
        dir.path().join("p.pcap"),
        dir.path().join("p.svg"),
    );
    let file = root().join("scenarios").join("selftest-established.json");
    let out = cli()
        .arg("run")
        .arg(&file)
        .arg("--trace")
        .arg(&t)
        .arg("--pcap")
        .arg(&p)
        .arg("--plot")
        .arg(&s)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = std::fs::read_to_string(&t).unwrap();
    assert!(trace.lines().count() > 100);
    for line in trace.lines() {
        let rec: Value = serde_json::from_str(line).expect("each trace line is JSON");
        assert!(rec["t_ns"].is_u64() && rec["event"].is_string());
    }
    let pcap = std::fs::read(&p).unwrap();
    assert!(pcap.len() > 100, "pcap has a header and packets");
    // A pcapng section header block (type 0x0a0d0d0a), little endian
    // (byte-order magic 0x1a2b3c4d).
    assert_eq!(&pcap[..4], &[0x0a, 0x0d, 0x0d, 0x0a], "pcapng block type");
    assert_eq!(&pcap[8..12], &0x1a2b_3c4du32.to_le_bytes(), "byte order");
    let svg = std::fs::read_to_string(&s).unwrap();
    assert!(svg.contains("<svg"));
    // Nothing left behind but the three outputs.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["p.pcap", "p.svg", "t.jsonl"]);
}

#[test]
fn cli_failing_run_leaves_existing_outputs_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "invalid.json", &invalid_scenario());
    let t = write(dir.path(), "t.jsonl", "previous trace\n");
    let p = write(dir.path(), "p.pcap", "previous pcap");
    let s = write(dir.path(), "p.svg", "previous plot");
    let out = cli()
        .arg("run")
        .arg(&bad)
        .arg("--trace")
        .arg(&t)
        .arg("--pcap")
        .arg(&p)
        .arg("--plot")
        .arg(&s)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        &["invalid.json", "ghost"],
    );
    assert_eq!(std::fs::read_to_string(&t).unwrap(), "previous trace\n");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "previous pcap");
    assert_eq!(std::fs::read_to_string(&s).unwrap(), "previous plot");
    // No temporary file is left behind either.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["invalid.json", "p.pcap", "p.svg", "t.jsonl"]);

    // A bad file for `compare` does not touch the plot either.
    let out = cli()
        .arg("compare")
        .arg(&bad)
        .arg("--plot")
        .arg(&s)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&s).unwrap(), "previous plot");
}

/// A scenario written as a JSON array (which serde would read as the
/// fields in order) is refused at the top level, as the JSON Schema does
/// (the repro asarray.json).
#[test]
fn a_top_level_array_is_refused() {
    let e = parse_err("\n  [1, \"x\", 1, \"10s\"]");
    assert_eq!(e.path, ".");
    assert_eq!(e.line_col, Some((2, 3)));
    assert_contains(&e.message, &["JSON object", "not an array"]);
}
