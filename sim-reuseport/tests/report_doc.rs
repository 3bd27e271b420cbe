//! docs/report-format.md's example report cannot go stale: every key and
//! value it shows is what `run scenarios/nginx-reload.json --migrate off
//! --format json` prints now (a `"..."` key stands for keys left out of a
//! map), and it shows every key of the report's top level.

mod common;

use serde_json::Value;
use sim_reuseport::backend::{run, RunOptions};

/// The first ```json block after `## Report`.
fn example() -> Value {
    let doc = std::fs::read_to_string(common::root().join("docs/report-format.md")).unwrap();
    let section = &doc[doc.find("\n## Report\n").expect("## Report")..];
    let start = section.find("```json\n").expect("a json block") + 8;
    let len = section[start..].find("```").unwrap();
    serde_json::from_str(&section[start..start + len])
        .unwrap_or_else(|e| panic!("the example is not JSON: {e}"))
}

/// Every value of `doc` is in `real` at the same path.
fn same(doc: &Value, real: &Value, path: &str, bad: &mut Vec<String>) {
    match (doc, real) {
        (Value::Object(d), Value::Object(r)) => {
            for (k, v) in d {
                if k == "..." {
                    continue;
                }
                match r.get(k) {
                    Some(rv) => same(v, rv, &format!("{path}.{k}"), bad),
                    None => bad.push(format!("{path}.{k}: not in the report")),
                }
            }
        }
        (Value::Array(d), Value::Array(r)) => {
            for (i, v) in d.iter().enumerate() {
                match r.get(i) {
                    Some(rv) => same(v, rv, &format!("{path}[{i}]"), bad),
                    None => bad.push(format!("{path}[{i}]: not in the report")),
                }
            }
        }
        (Value::Number(d), Value::Number(r)) if d.as_f64() == r.as_f64() => {}
        _ if doc == real => {}
        _ => bad.push(format!(
            "{path}: the doc shows {doc}, the report has {real}"
        )),
    }
}

#[test]
fn the_report_example_is_what_the_tool_prints() {
    let scn = common::scenario("nginx-reload.json", false);
    let r = run(
        &scn,
        RunOptions {
            migrate: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    let real = serde_json::to_value(&r.report).unwrap();
    let doc = example();
    let mut bad = Vec::new();
    same(&doc, &real, "", &mut bad);
    for k in real.as_object().unwrap().keys() {
        if doc.get(k).is_none() {
            bad.push(format!(".{k}: in the report, missing from the example"));
        }
    }
    assert!(
        bad.is_empty(),
        "docs/report-format.md is stale:\n{}",
        bad.join("\n")
    );
}
