//! Shard outputs: per-seed JSON lines, the results file of an interrupted
//! sweep, and merging outputs.

use super::*;

// ---------------------------------------------------------------------------
// Shard outputs.

/// Per-seed results as JSON lines.
pub fn to_jsonl(results: &[SeedResult]) -> String {
    let mut s = String::new();
    for r in results {
        s.push_str(&serde_json::to_string(r).expect("seed result serializes"));
        s.push('\n');
    }
    s
}

/// Reads JSON lines of per-seed results; errors name the line.
pub fn from_jsonl(text: &str, name: &str) -> Result<Vec<SeedResult>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("{name}:{}: {e}", i + 1)))
        .collect()
}

/// Reads the results file of an interrupted sweep: lines in completion
/// order, of which the last may be cut short by the interruption (it is
/// dropped: that seed runs again). Every seed must belong to `spec`'s shard
/// and appear once.
pub fn read_partial(text: &str, name: &str, spec: &SweepSpec) -> Result<Vec<SeedResult>, String> {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut results = from_jsonl(complete, name)?;
    results.sort_by_key(|r| r.seed);
    let range = spec.range;
    for w in results.windows(2) {
        if w[0].seed == w[1].seed {
            return Err(format!("{name}: seed {} appears twice", w[0].seed));
        }
    }
    for r in &results {
        let ours = r.seed >= range.start
            && r.seed < range.end
            && spec.shard.map_or(true, |s| s.owns(r.seed - range.start));
        if !ours {
            return Err(format!(
                "{name}: seed {} is not in seeds {range}{}",
                r.seed,
                spec.shard.map_or(String::new(), |s| format!(" shard {s}"))
            ));
        }
    }
    Ok(results)
}

/// Whether two shard outputs come from the same scenario and options, so
/// that their results can be combined.
fn same_scenario(a: &SweepMeta, b: &SweepMeta) -> bool {
    a.scenario_hash == b.scenario_hash && a.inject_bug == b.inject_bug
}

/// Seed ranges missing from the sorted, distinct `seeds` within
/// `start..end`, as text (at most a few).
fn gaps(seeds: &[u64], start: u64, end: u64) -> String {
    let mut out = Vec::new();
    let mut next = start;
    for &s in seeds.iter().chain(std::iter::once(&end)) {
        if s > next {
            out.push(if s - next == 1 {
                next.to_string()
            } else {
                format!("{next}..{s}")
            });
        }
        next = s.saturating_add(1);
        if out.len() == 5 {
            out.push("...".into());
            break;
        }
    }
    out.join(", ")
}

/// Merges sweep outputs: shards of one sweep, or sweeps of sub-ranges of
/// one scenario (e.g. `0..5000` and `5000..10000`), or both. Each output
/// must be complete for its own seeds (an interrupted one is continued with
/// `sweep --resume` first), the outputs must come from the same scenario,
/// and together they must hold every seed of one contiguous range exactly
/// once. Returns the metadata of the whole (no shard, the union range) and
/// the results in seed order. Shards of one range merge into exactly the
/// summary of the unsharded sweep; sub-range sweeps also re-checked their
/// own first seed for determinism (see [`SweepSpec::rechecks`]).
pub fn merge(
    parts: Vec<(String, SweepMeta, Vec<SeedResult>)>,
) -> Result<(SweepMeta, Vec<SeedResult>), String> {
    let Some((first_name, first, _)) = parts.first() else {
        return Err("merge needs at least one shard output".into());
    };
    let (first_name, mut meta) = (first_name.clone(), first.clone());
    let mut all: Vec<(SeedResult, usize)> = Vec::new();
    let mut names = Vec::new();
    for (k, (name, m, results)) in parts.into_iter().enumerate() {
        if !same_scenario(&m, &meta) {
            return Err(format!(
                "{name} is not from the same scenario as {first_name}: scenario {} ({}, hash {}) \
                 vs scenario {} ({}, hash {})",
                m.scenario_name,
                m.file,
                m.scenario_hash,
                meta.scenario_name,
                meta.file,
                meta.scenario_hash,
            ));
        }
        let spec_seeds = shard_seeds(m.range, m.shard);
        let got: Vec<u64> = results.iter().map(|r| r.seed).collect();
        if got != spec_seeds {
            return Err(format!(
                "{name} holds {} seed result(s), but seeds {}{} are {}: the output is \
                 incomplete (an interrupted sweep: continue it with `sweep --resume --out {name}`) \
                 or was edited",
                got.len(),
                m.range,
                m.shard.map_or(String::new(), |s| format!(" shard {s}")),
                spec_seeds.len()
            ));
        }
        all.extend(results.into_iter().map(|r| (r, k)));
        names.push(name);
    }
    all.sort_by_key(|(r, _)| r.seed);
    for w in all.windows(2) {
        if w[0].0.seed == w[1].0.seed {
            return Err(format!(
                "seed {} is in both {} and {}: each seed must be merged once",
                w[0].0.seed, names[w[0].1], names[w[1].1]
            ));
        }
    }
    let seeds: Vec<u64> = all.iter().map(|(r, _)| r.seed).collect();
    let (lo, hi) = (seeds[0], seeds[seeds.len() - 1]);
    if (hi - lo) as usize + 1 != seeds.len() {
        let missing = gaps(&seeds, lo, hi + 1);
        let shard_hint = match meta.shard {
            Some(s) if s.count > 1 => format!(
                " (the outputs are shards of {} shard(s): is one missing?)",
                s.count
            ),
            _ => String::new(),
        };
        return Err(format!(
            "missing seeds {missing} between {lo} and {hi}: the outputs must cover one \
             contiguous range{shard_hint}"
        ));
    }
    meta.range = SeedRange {
        start: lo,
        end: hi + 1,
    };
    meta.shard = None;
    Ok((meta, all.into_iter().map(|(r, _)| r).collect()))
}
