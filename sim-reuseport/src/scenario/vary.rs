//! The scenario's `vary` block: values drawn per seed.
//!
//! Each entry of `vary` names a value of the scenario by JSON pointer
//! (`/links/0/latency`) and a set to draw from: `choices` (uniform), or an
//! inclusive range `[min, max]` of integers, durations (`"3ms"`) or
//! probabilities (`"0.1%"`). Entry `i` draws from its own sub-stream
//! `RngStreams::new(seed).stream("vary", i)`, so adding an entry never
//! changes the draws of the others, and the same seed always draws the same
//! values: `reuseport-sim run FILE --seed S` reproduces exactly what a sweep
//! ran for seed `S`.
//!
//! [`apply`] patches the drawn values into the scenario (through its JSON
//! form), removes the `vary` block and parses the result again, so a varied
//! scenario is checked like a file. [`check`] tries every choice and both
//! bounds of every entry once, so a bad entry is reported whatever the seed.

use crate::scenario::{parse_str, Scenario, ScenarioError, Vary};
use serde_json::Value;
use sim_core::{uniform_below, Probability, RngStreams, SimDuration};
use std::collections::BTreeMap;

/// The RNG stream name of the `vary` draws (index = entry index).
pub const STREAM: &str = "vary";

/// The kind of a range entry, decided from its bounds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum RangeKind {
    Int,
    Duration,
    Probability,
}

fn entry_path(i: usize) -> String {
    format!("vary[{i}]")
}

fn range_kind(i: usize, v: &Vary) -> Result<(RangeKind, i128, i128), ScenarioError> {
    let (Some(min), Some(max)) = (&v.min, &v.max) else {
        return Err(ScenarioError::at(
            entry_path(i),
            "needs `choices`, or both `min` and `max`",
        ));
    };
    let bounds = match (min, max) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => Some((RangeKind::Int, i128::from(a), i128::from(b))),
            _ => match (a.as_u64(), b.as_u64()) {
                (Some(a), Some(b)) => Some((RangeKind::Int, i128::from(a), i128::from(b))),
                _ => None,
            },
        },
        (Value::String(a), Value::String(b)) => {
            match (SimDuration::parse(a), SimDuration::parse(b)) {
                (Ok(a), Ok(b)) => Some((
                    RangeKind::Duration,
                    i128::from(a.as_nanos()),
                    i128::from(b.as_nanos()),
                )),
                _ => match (Probability::parse(a), Probability::parse(b)) {
                    (Ok(a), Ok(b)) => Some((
                        RangeKind::Probability,
                        i128::from(a.as_ppb()),
                        i128::from(b.as_ppb()),
                    )),
                    _ => None,
                },
            }
        }
        _ => None,
    };
    let Some((kind, lo, hi)) = bounds else {
        return Err(ScenarioError::at(
            entry_path(i),
            format!(
                "`min` ({min}) and `max` ({max}) must both be integers, both durations \
                 (\"5ms\") or both probabilities (\"0.1%\")"
            ),
        ));
    };
    if lo > hi {
        return Err(ScenarioError::at(
            entry_path(i),
            format!("`min` ({min}) is greater than `max` ({max})"),
        ));
    }
    Ok((kind, lo, hi))
}

fn shape(i: usize, v: &Vary) -> Result<(), ScenarioError> {
    if v.path.is_empty() || !v.path.starts_with('/') {
        return Err(ScenarioError::at(
            format!("{}.path", entry_path(i)),
            format!(
                "`{}` is not a JSON pointer to a value (it starts with `/`, e.g. `/links/0/latency`)",
                v.path
            ),
        ));
    }
    if v.path == "/vary" || v.path.starts_with("/vary/") {
        return Err(ScenarioError::at(
            format!("{}.path", entry_path(i)),
            "the vary block cannot vary itself",
        ));
    }
    if !v.choices.is_empty() {
        if v.min.is_some() || v.max.is_some() {
            return Err(ScenarioError::at(
                entry_path(i),
                "give either `choices` or `min` and `max`, not both",
            ));
        }
        return Ok(());
    }
    range_kind(i, v).map(|_| ())
}

/// Draws the value of entry `i` for `seed`.
fn draw(i: usize, v: &Vary, seed: u64) -> Result<Value, ScenarioError> {
    let mut rng = RngStreams::new(seed).stream(STREAM, i as u64);
    if !v.choices.is_empty() {
        let k = uniform_below(&mut rng, v.choices.len() as u64) as usize;
        return Ok(v.choices[k].clone());
    }
    let (kind, lo, hi) = range_kind(i, v)?;
    // Spans fit in u64 for every kind: i64/u64 integers, u64 nanoseconds,
    // u32 parts per billion. A full u64 span draws a raw u64.
    let span = (hi - lo) as u128 + 1;
    let off = if span > u128::from(u64::MAX) {
        let hi = uniform_below(&mut rng, 1 << 32);
        i128::from(hi << 32 | uniform_below(&mut rng, 1 << 32))
    } else {
        i128::from(uniform_below(&mut rng, span as u64))
    };
    let x = lo + off;
    Ok(match kind {
        RangeKind::Int => {
            if let Ok(n) = i64::try_from(x) {
                Value::from(n)
            } else {
                Value::from(x as u64)
            }
        }
        RangeKind::Duration => Value::String(SimDuration::from_nanos(x as u64).to_string()),
        RangeKind::Probability => Value::String(
            Probability::from_ppb(x as u32)
                .expect("within the bounds")
                .to_string(),
        ),
    })
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Writes `value` at entry `i`'s pointer. Ranges must replace a value of the
/// same JSON kind (a duration string by a duration string, a number by a
/// number); a choice may replace anything (e.g. a rule string by a rule
/// object), since the parse that follows checks it.
fn patch(doc: &mut Value, i: usize, v: &Vary, value: Value) -> Result<(), ScenarioError> {
    let Some(slot) = doc.pointer_mut(&v.path) else {
        return Err(ScenarioError::at(
            format!("{}.path", entry_path(i)),
            format!(
                "`{}` does not point to a value of the scenario (a default value that is \
                 not written out, e.g. an absent optional field, cannot be varied)",
                v.path
            ),
        ));
    };
    let same_kind = std::mem::discriminant(slot) == std::mem::discriminant(&value);
    if v.choices.is_empty() && !same_kind && !slot.is_null() {
        return Err(ScenarioError::at(
            format!("{}.path", entry_path(i)),
            format!(
                "`{}` holds {}, but the range draws {}",
                v.path,
                kind_name(slot),
                kind_name(&value)
            ),
        ));
    }
    *slot = value;
    Ok(())
}

fn reparse(doc: &Value, what: &str) -> Result<Scenario, ScenarioError> {
    let text = serde_json::to_string_pretty(doc).expect("JSON value serializes");
    parse_str(&text).map_err(|e| {
        // The line and column refer to the generated text, not to the file.
        ScenarioError::at(
            e.path.clone(),
            format!("{} (after applying {what})", e.message),
        )
    })
}

/// A check of a whole scenario beyond parsing (the lowering: names,
/// cross-references, times within the duration), for [`check`].
pub type Validate<'a> = &'a dyn Fn(&Scenario) -> Result<(), ScenarioError>;

/// The candidate values of entry `i` that [`check`] tries: both bounds of
/// a range, or every choice, each with its label.
fn candidates(i: usize, v: &Vary) -> Result<Vec<(Value, String)>, ScenarioError> {
    if !v.choices.is_empty() {
        return Ok(v
            .choices
            .iter()
            .enumerate()
            .map(|(k, c)| (c.clone(), format!("choices[{k}]")))
            .collect());
    }
    let (kind, lo, hi) = range_kind(i, v)?;
    Ok([(lo, "min"), (hi, "max")]
        .into_iter()
        .map(|(x, label)| {
            let value = match kind {
                RangeKind::Int => i64::try_from(x)
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(x as u64)),
                RangeKind::Duration => Value::String(SimDuration::from_nanos(x as u64).to_string()),
                RangeKind::Probability => {
                    Value::String(Probability::from_ppb(x as u32).expect("ppb").to_string())
                }
            };
            (value, label.to_string())
        })
        .collect())
}

/// Patches `values` (entry index, value) into `base`, parses and validates
/// the result; errors say which values were drawn.
fn try_values(
    scn: &Scenario,
    base: &Value,
    values: &[(usize, Value, String)],
    validate: Validate<'_>,
) -> Result<(), ScenarioError> {
    let mut doc = base.clone();
    for (i, value, _) in values {
        patch(&mut doc, *i, &scn.vary[*i], value.clone())?;
    }
    let listing = values
        .iter()
        .map(|(i, value, label)| format!("vary[{i}]: {} = {value} ({label})", scn.vary[*i].path))
        .collect::<Vec<_>>()
        .join(", ");
    let varied = reparse(&doc, &listing)?;
    validate(&varied).map_err(|e| {
        let path = if values.len() == 1 {
            format!("{}.{}", entry_path(values[0].0), values[0].2)
        } else {
            "vary".to_string()
        };
        ScenarioError::at(
            path,
            format!(
                "drawing {listing} makes the scenario invalid: {}: {}",
                e.path, e.message
            ),
        )
    })
}

/// Checks the `vary` block independently of the seed, before any seed
/// runs: every entry is well formed, its pointer exists, and every choice
/// and both range bounds give a scenario that parses and passes `validate`
/// (the lowering), each alone and all lower bounds (first choices)
/// together and all upper bounds (last choices) together. Values that
/// interact otherwise can still make a single draw invalid; the sweep then
/// reports that seed.
pub fn check(scn: &Scenario, validate: Validate<'_>) -> Result<(), ScenarioError> {
    if scn.vary.is_empty() {
        return Ok(());
    }
    let mut base = serde_json::to_value(scn).expect("scenario serializes");
    base.as_object_mut()
        .expect("scenario is an object")
        .remove("vary");
    let mut seen = std::collections::BTreeSet::new();
    let mut lows = Vec::new();
    let mut highs = Vec::new();
    for (i, v) in scn.vary.iter().enumerate() {
        shape(i, v)?;
        if !seen.insert(v.path.as_str()) {
            return Err(ScenarioError::at(
                format!("{}.path", entry_path(i)),
                format!("`{}` is varied twice", v.path),
            ));
        }
        let cands = candidates(i, v)?;
        for (value, label) in &cands {
            try_values(scn, &base, &[(i, value.clone(), label.clone())], validate)?;
        }
        let (lo, hi) = (&cands[0], &cands[cands.len() - 1]);
        lows.push((i, lo.0.clone(), lo.1.clone()));
        highs.push((i, hi.0.clone(), hi.1.clone()));
    }
    if scn.vary.len() > 1 {
        try_values(scn, &base, &lows, validate)?;
        try_values(scn, &base, &highs, validate)?;
    }
    Ok(())
}

/// The scenario for `seed`: each `vary` entry's value drawn and patched in,
/// the `vary` block removed, the result parsed again. Also returns the
/// drawn values (JSON pointer → value), for `Report::varied`. Without a
/// `vary` block the scenario is returned unchanged.
pub fn apply(
    scn: &Scenario,
    seed: u64,
) -> Result<(Scenario, BTreeMap<String, Value>), ScenarioError> {
    if scn.vary.is_empty() {
        return Ok((scn.clone(), BTreeMap::new()));
    }
    let mut doc = serde_json::to_value(scn).expect("scenario serializes");
    doc.as_object_mut()
        .expect("scenario is an object")
        .remove("vary");
    let mut drawn = BTreeMap::new();
    for (i, v) in scn.vary.iter().enumerate() {
        shape(i, v)?;
        let value = draw(i, v, seed)?;
        patch(&mut doc, i, v, value.clone())?;
        if drawn.insert(v.path.clone(), value).is_some() {
            return Err(ScenarioError::at(
                format!("{}.path", entry_path(i)),
                format!("`{}` is varied twice", v.path),
            ));
        }
    }
    let listing = drawn
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let varied = reparse(&doc, &format!("vary for seed {seed}: {listing}"))?;
    Ok((varied, drawn))
}

/// The drawn values as `path = value` pairs, one string, for messages.
pub fn describe(values: &BTreeMap<String, Value>) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"{
      "version": 1, "name": "t", "duration": "1s",
      "hosts": [{"name": "s", "addresses": ["10.0.0.1"]}, {"name": "c", "addresses": ["10.0.1.1"]}],
      "links": [{"between": ["c", "s"], "latency": "5ms"}],
      "servers": [{"name": "web", "host": "s", "address": "10.0.0.1", "port": 80}],
      "workers": [{"name": "w0", "server": "web"}],
      "clients": [{"name": "b", "host": "c", "server": "web", "arrival": {"kind": "constant", "rate": 10}}],
      "vary": VARY
    }"#;

    fn scn(vary: &str) -> Scenario {
        parse_str(&BASE.replace("VARY", vary)).unwrap()
    }

    #[test]
    fn draws_are_per_seed_and_reproducible() {
        let s = scn(r#"[
            {"path": "/links/0/latency", "min": "1ms", "max": "20ms"},
            {"path": "/links/0/loss", "min": "0%", "max": "1%"},
            {"path": "/workers/0/backlog", "min": 1, "max": 1000},
            {"path": "/workers/0/accept", "choices": [{"kind": "immediate"}, {"kind": "rate", "per_second": 50}]}
        ]"#);
        check(&s, &crate::scenario::validate).unwrap();
        let (a, va) = apply(&s, 7).unwrap();
        let (_, va2) = apply(&s, 7).unwrap();
        assert_eq!(va, va2);
        assert!(a.vary.is_empty());
        assert_eq!(va.len(), 4);
        let lat = SimDuration::parse(va["/links/0/latency"].as_str().unwrap()).unwrap();
        assert!(lat >= SimDuration::from_millis(1) && lat <= SimDuration::from_millis(20));
        assert_eq!(a.links[0].latency.0, lat);
        let backlog = va["/workers/0/backlog"].as_u64().unwrap();
        assert!((1..=1000).contains(&backlog));
        assert_eq!(u64::from(a.workers[0].backlog), backlog);
        let distinct: std::collections::BTreeSet<String> = (0..50)
            .map(|seed| apply(&s, seed).unwrap().1["/links/0/latency"].to_string())
            .collect();
        assert!(distinct.len() > 40);
    }

    #[test]
    fn inclusive_bounds_and_single_value() {
        let s = scn(r#"[{"path": "/workers/0/backlog", "min": 3, "max": 4}]"#);
        let got: std::collections::BTreeSet<u64> = (0..64)
            .map(|seed| {
                apply(&s, seed).unwrap().1["/workers/0/backlog"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(got, [3, 4].into());
        let s = scn(r#"[{"path": "/workers/0/backlog", "min": 9, "max": 9}]"#);
        assert_eq!(apply(&s, 1).unwrap().0.workers[0].backlog, 9);
    }

    #[test]
    fn errors_name_the_entry() {
        let bad = |vary: &str| {
            let s = scn(vary);
            assert!(apply(&s, 1).is_err(), "{vary}");
            check(&s, &crate::scenario::validate)
                .unwrap_err()
                .to_string()
        };
        let e = bad(r#"[{"path": "/links/0/latencyx", "min": "1ms", "max": "2ms"}]"#);
        assert!(
            e.contains("vary[0].path") && e.contains("does not point"),
            "{e}"
        );
        let e = bad(r#"[{"path": "/links/0/latency", "min": 1, "max": 2}]"#);
        assert!(e.contains("holds a string"), "{e}");
        let e = bad(r#"[{"path": "/links/0/latency", "min": "5ms", "max": "1ms"}]"#);
        assert!(e.contains("greater than"), "{e}");
        let e = bad(r#"[{"path": "/links/0/latency", "min": "5ms", "max": 3}]"#);
        assert!(e.contains("must both be"), "{e}");
        let e = bad(r#"[{"path": "/workers/0/accept", "choices": ["fast"]}]"#);
        assert!(e.contains("after applying vary[0]"), "{e}");
        let e = bad(r#"[{"path": "/workers/0/backlog"}]"#);
        assert!(e.contains("needs `choices`"), "{e}");
    }
}
