//! The JSON Schema of the scenario format: generated from the types by
//! `schemars`, then given what the loader checks and the generator cannot
//! see: the integer ranges of Rust's types (schemars writes them as a
//! `format` that validators ignore), addresses, the version, the grammar
//! of durations and probabilities, and the ranges lowering enforces on
//! single fields (a port, a rate, a backlog > 0). `tests/schema_agreement.rs`
//! checks with a real validator that the schema and the loader agree.
//!
//! What a schema cannot say is left to the loader: cross-references
//! (unknown names), times after the duration, a ratio above 1 (`"3/2"`),
//! a duration that overflows 2^64 ns, and `1.0` for an integer (JSON
//! Schema counts it as the integer 1; the loader wants `1`).

use super::format::Scenario;
use super::lower::{MAX_BURST, MAX_RATE};
use serde_json::{json, Map, Value};

/// A number as `SimDuration::parse` reads it, with at most `k` significant
/// decimals (the unit's resolution in ns).
fn number(k: usize) -> String {
    let frac = if k == 0 {
        r"\.0+".to_string()
    } else {
        format!(r"\.([0-9]{{1,{k}}}0*|0+)")
    };
    format!("([0-9]+({frac})?|{frac})")
}

/// The grammar of `SimDuration::parse`: a number and a unit (`ns`, `us`
/// or `µs`, `ms`, `s`, `m` or `min`), or a bare zero.
pub fn duration_pattern() -> String {
    let units = [
        (0, "ns"),
        (3, "(us|µs)"),
        (6, "ms"),
        (9, "s"),
        (10, "(m|min)"),
    ];
    let alts: Vec<String> = units
        .iter()
        .map(|(k, u)| format!(r"{}\s*{u}", number(*k)))
        .chain(std::iter::once(r"(0+(\.0+)?|\.0+)".to_string()))
        .collect();
    format!(r"^\s*({})\s*$", alts.join("|"))
}

/// A duration of zero, in any unit.
fn zero_duration_pattern() -> String {
    r"^\s*(0+(\.0+)?|\.0+)\s*(ns|us|µs|ms|s|m|min)?\s*$".to_string()
}

/// The grammar of `Probability::parse`: a fraction in [0, 1], a
/// percentage up to 100, ppm up to 10^6, ppb up to 10^9, or a ratio.
pub fn probability_pattern() -> String {
    // `max` with its trailing `.0`s, or up to `digits` digits with up to
    // `k` significant decimals.
    let bounded = |max: &str, digits: usize, k: usize| {
        let frac = if k == 0 {
            r"\.0+".to_string()
        } else {
            format!(r"\.([0-9]{{1,{k}}}0*|0+)")
        };
        format!(r"(0*{max}(\.0+)?|0*[0-9]{{1,{digits}}}({frac})?|{frac})")
    };
    let alts = [
        bounded("1", 1, 9).replace("[0-9]{1,1}", "0"),
        format!(r"{}\s*%", bounded("100", 2, 7)),
        format!(r"{}\s*ppm", bounded("1000000", 6, 3)),
        format!(r"{}\s*ppb", bounded("1000000000", 9, 0)),
        r"[0-9]+\s*/\s*0*[1-9][0-9]*".to_string(),
    ];
    format!(r"^\s*({})\s*$", alts.join("|"))
}

/// The JSON Schema of the scenario format, for editors and validators.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Scenario);
    let mut v = serde_json::to_value(&schema).expect("schema serializes");
    integer_ranges(&mut v);
    patch(&mut v);
    serde_json::to_string_pretty(&v).expect("schema serializes")
}

/// Gives every integer the range of its Rust type, and every address the
/// formats of an IPv4 or IPv6 address.
fn integer_ranges(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let max = match o.get("format").and_then(Value::as_str) {
                Some("uint8") => Some(json!(u8::MAX)),
                Some("uint16") => Some(json!(u16::MAX)),
                Some("uint32") => Some(json!(u32::MAX)),
                Some("uint64") => Some(json!(u64::MAX)),
                _ => None,
            };
            if let Some(max) = max {
                o.insert("maximum".into(), max);
                o.insert("minimum".into(), json!(0));
            }
            if o.get("format").and_then(Value::as_str) == Some("ip") {
                o.remove("format");
                o.insert(
                    "anyOf".into(),
                    json!([{"format": "ipv4"}, {"format": "ipv6"}]),
                );
            }
            o.values_mut().for_each(integer_ranges);
        }
        Value::Array(a) => a.iter_mut().for_each(integer_ranges),
        _ => {}
    }
}

/// The `oneOf` variant of definition `def` whose `kind` is `kind`.
fn variant<'v>(defs: &'v mut Value, def: &str, kind: &str) -> &'v mut Map<String, Value> {
    defs[def]["oneOf"]
        .as_array_mut()
        .and_then(|vs| {
            vs.iter_mut()
                .find(|v| v["properties"]["kind"]["enum"][0] == kind)
        })
        .and_then(|v| v["properties"].as_object_mut())
        .unwrap_or_else(|| panic!("schema: no variant {def}/{kind}"))
}

fn set(field: &mut Value, key: &str, value: Value) {
    field
        .as_object_mut()
        .expect("schema: a field is an object")
        .insert(key.into(), value);
}

/// What the loader checks on single fields.
fn patch(v: &mut Value) {
    set(&mut v["properties"]["version"], "const", json!(1));
    set(
        &mut v["properties"]["duration"],
        "not",
        json!({"pattern": zero_duration_pattern()}),
    );
    let defs = &mut v["definitions"];
    set(&mut defs["Duration"], "pattern", json!(duration_pattern()));
    set(
        &mut defs["Probability"],
        "pattern",
        json!(probability_pattern()),
    );
    set(
        &mut defs["ServerSpec"]["properties"]["port"],
        "minimum",
        json!(1),
    );
    set(
        &mut defs["WorkerSpec"]["properties"]["backlog"],
        "minimum",
        json!(1),
    );
    set(
        &mut defs["ClientSpec"]["properties"]["request_bytes"],
        "minimum",
        json!(1),
    );
    set(
        &mut defs["HostSpec"]["properties"]["hz"],
        "enum",
        json!([100, 250, 300, 1000, null]),
    );
    set(
        &mut defs["LinkSpec"]["properties"]["bandwidth_bps"],
        "minimum",
        json!(1),
    );
    for kind in ["constant", "poisson"] {
        let rate = &mut variant(defs, "Arrival", kind)["rate"];
        set(rate, "minimum", json!(1));
        set(rate, "maximum", json!(MAX_RATE));
    }
    set(
        &mut variant(defs, "Arrival", "burst")["count"],
        "maximum",
        json!(MAX_BURST),
    );
    let ramp = variant(defs, "Arrival", "ramp");
    for f in ["from_rate", "to_rate"] {
        set(&mut ramp[f], "maximum", json!(MAX_RATE));
    }
    let ramp_variant = defs["Arrival"]["oneOf"]
        .as_array_mut()
        .and_then(|vs| {
            vs.iter_mut()
                .find(|v| v["properties"]["kind"]["enum"][0] == "ramp")
        })
        .expect("schema: the ramp variant");
    set(
        ramp_variant,
        "not",
        json!({"properties": {"from_rate": {"const": 0}, "to_rate": {"const": 0}}}),
    );
    set(
        &mut variant(defs, "AcceptSpec", "rate")["per_second"],
        "minimum",
        json!(1),
    );
    set(
        &mut variant(defs, "AcceptSpec", "batch")["max"],
        "minimum",
        json!(1),
    );
}
