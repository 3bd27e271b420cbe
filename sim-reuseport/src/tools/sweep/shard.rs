//! Seed ranges and shards: which seeds a process runs.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A half-open range of seeds `start..end`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRange {
    /// First seed.
    pub start: u64,
    /// One past the last seed.
    pub end: u64,
}

impl SeedRange {
    /// Number of seeds.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range is empty (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

impl fmt::Display for SeedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl FromStr for SeedRange {
    type Err = String;

    /// `A..B` (B excluded) or `A..=B` (B included).
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| {
            t.trim().parse::<u64>().map_err(|_| {
                format!("`{t}` is not a seed (an unsigned 64-bit integer); expected A..B or A..=B")
            })
        };
        let (a, b, inclusive) = if let Some((a, b)) = s.split_once("..=") {
            (a, b, true)
        } else if let Some((a, b)) = s.split_once("..") {
            (a, b, false)
        } else {
            return Err(format!(
                "`{s}` is not a seed range; expected A..B (B excluded) or A..=B, e.g. 0..10000"
            ));
        };
        let (start, last) = (num(a)?, num(b)?);
        let end = if inclusive {
            last.checked_add(1)
                .ok_or_else(|| format!("`{s}`: the range end overflows u64"))?
        } else {
            last
        };
        if end <= start {
            return Err(format!(
                "`{s}` is an empty range: the end must be greater than the start (A..B excludes B)"
            ));
        }
        Ok(SeedRange { start, end })
    }
}

/// One shard of a sweep: `index` of `count`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based index.
    pub index: u64,
    /// Number of shards.
    pub count: u64,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    fn new(index: u64, count: u64, what: &str) -> Result<Shard, String> {
        if count == 0 {
            return Err(format!("{what}: the number of shards must be at least 1"));
        }
        if index >= count {
            return Err(format!(
                "{what}: shard index {index} is out of range for {count} shard(s) (0..={})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether the seed at `offset` from the range start belongs to this shard.
    pub fn owns(&self, offset: u64) -> bool {
        offset % self.count == self.index
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`, 0-based: `0/4` … `3/4`.
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((i, n)) = s.split_once('/') else {
            return Err(format!(
                "`{s}` is not a shard; expected I/N with 0 <= I < N, e.g. 0/4"
            ));
        };
        let parse = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("`{s}` is not a shard; expected I/N with 0 <= I < N"))
        };
        Shard::new(parse(i)?, parse(n)?, &format!("`{s}`"))
    }
}

/// The shard from the environment of an array job, if any:
/// `SLURM_ARRAY_TASK_ID` (minus `SLURM_ARRAY_TASK_MIN`, divided by
/// `SLURM_ARRAY_TASK_STEP`) of `SLURM_ARRAY_TASK_COUNT`, or Kubernetes'
/// `JOB_COMPLETION_INDEX` of `shards` (the Job's `completions`, which
/// Kubernetes does not put in the environment). `shards` also overrides
/// Slurm's count. Returns the shard and a description of where it came from.
pub fn shard_from_env(
    get: impl Fn(&str) -> Option<String>,
    shards: Option<u64>,
) -> Result<Option<(Shard, String)>, String> {
    let num = |name: &str| -> Result<Option<u64>, String> {
        match get(name) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{name}={v:?} is not an unsigned integer")),
        }
    };
    if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let count = match shards {
            Some(n) => n,
            None => num("SLURM_ARRAY_TASK_COUNT")?.ok_or(
                "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: pass --shards N",
            )?,
        };
        if id < min || (id - min) % step != 0 {
            return Err(format!(
                "SLURM_ARRAY_TASK_ID={id} is not in the array (min {min}, step {step})"
            ));
        }
        let index = (id - min) / step;
        let what = format!("SLURM_ARRAY_TASK_ID={id} (min {min}, step {step}, count {count})");
        return Shard::new(index, count, &what).map(|s| Some((s, what)));
    }
    if let Some(index) = num("JOB_COMPLETION_INDEX")? {
        let Some(count) = shards else {
            return Err(format!(
                "JOB_COMPLETION_INDEX={index} is set (a Kubernetes Indexed Job) but the number \
                 of shards is not known: pass --shards N with N the Job's `completions`"
            ));
        };
        let what = format!("JOB_COMPLETION_INDEX={index} of {count}");
        return Shard::new(index, count, &what).map(|s| Some((s, what)));
    }
    Ok(None)
}
/// How many seeds `shard` of `range` holds.
pub fn shard_len(range: SeedRange, shard: Option<Shard>) -> u64 {
    let shard = shard.unwrap_or(Shard { index: 0, count: 1 });
    // Without overflow for any range: offsets index, index+count, ...
    let len = range.len();
    len / shard.count + u64::from(shard.index < len % shard.count)
}

/// The seeds of `shard` of `range` (all of them for `None`), in order.
///
/// Callers bound the count first ([`shard_len`], [`super::MAX_SEEDS_PER_PROCESS`]).
pub fn shard_seeds(range: SeedRange, shard: Option<Shard>) -> Vec<u64> {
    let shard = shard.unwrap_or(Shard { index: 0, count: 1 });
    let step = usize::try_from(shard.count).unwrap_or(usize::MAX);
    (shard.index..range.len())
        .step_by(step)
        .map(|off| range.start + off)
        .collect()
}
