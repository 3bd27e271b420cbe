//! Turns run samples into charts (`--plot`).

use crate::backend::{RunResult, Sample};
use crate::plot::{render_svg, Marker, PlotData, Series};
use crate::scenario::Scenario;
use sim_core::SimDuration;
use std::collections::BTreeMap;

/// The sampling interval for plots: 1/400 of the duration, at least 1 ms.
pub fn sample_interval(scn: &Scenario) -> SimDuration {
    SimDuration::from_nanos((scn.duration.0.as_nanos() / 400).max(1_000_000))
}

/// Listeners above which the queue panels show one line per worker
/// generation (the sum over its listeners) instead of one per listener.
pub const GROUP_ABOVE: usize = 4;

/// The rates panel: events per second over each sampling interval, drawn
/// at the interval's end. Completed, reset and (when sampled) migrated
/// always; refused and timed out when the run had any.
fn rates(r: &RunResult) -> Vec<Series> {
    let rate = |label: &str, count: &dyn Fn(&Sample) -> u64| Series {
        label: label.to_string(),
        points: r
            .samples
            .windows(2)
            .filter(|w| w[1].t_s > w[0].t_s)
            .map(|w| {
                let d = count(&w[1]).saturating_sub(count(&w[0]));
                (w[1].t_s, d as f64 / (w[1].t_s - w[0].t_s))
            })
            .collect(),
    };
    let names = ["completed/s", "reset/s", "refused/s", "timed_out/s"];
    let last = r.samples.last();
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if i < 2 || last.is_some_and(|s| s.outcomes[i] > 0) {
            out.push(rate(n, &|s: &Sample| s.outcomes[i]));
        }
    }
    if last.is_some_and(|s| s.migrations.is_some()) {
        out.push(rate("migrated/s", &|s: &Sample| s.migrations.unwrap_or(0)));
    }
    out
}

/// The queue series' groups: one per listener, or (above [`GROUP_ABOVE`]
/// listeners of at least two generations) one per generation, with what a
/// series stands for.
fn queue_groups(r: &RunResult) -> (Vec<(String, Vec<usize>)>, String) {
    let n = r.worker_names.len();
    let gens = &r.worker_generations;
    let mut by_gen: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    if gens.len() == n {
        for (i, g) in gens.iter().enumerate() {
            by_gen.entry(*g).or_default().push(i);
        }
    }
    if n > GROUP_ABOVE && by_gen.len() >= 2 {
        let groups = by_gen
            .into_iter()
            .map(|(g, ix)| (format!("generation {g} ({} listeners)", ix.len()), ix))
            .collect();
        (groups, "generation (sum over its listeners)".into())
    } else {
        let groups = r
            .worker_names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), vec![i]))
            .collect();
        (groups, "listener".into())
    }
}

fn data(r: &RunResult) -> PlotData {
    let names = ["completed", "reset", "refused", "timed_out"];
    let outcomes = names
        .iter()
        .enumerate()
        .map(|(i, n)| Series {
            label: n.to_string(),
            points: r
                .samples
                .iter()
                .map(|s| (s.t_s, s.outcomes[i] as f64))
                .collect(),
        })
        .collect();
    let (groups, queues_by) = queue_groups(r);
    let per = |f: &dyn Fn(&Sample, usize) -> u32| {
        groups
            .iter()
            .map(|(label, ix)| Series {
                label: label.clone(),
                points: r
                    .samples
                    .iter()
                    .map(|s| (s.t_s, ix.iter().map(|&i| f64::from(f(s, i))).sum()))
                    .collect(),
            })
            .collect()
    };
    PlotData {
        title: format!(
            "{} (seed {}, migrate {})",
            r.report.scenario.name, r.report.seed, r.report.migrate
        ),
        start_s: 0.0,
        duration_s: r.samples.last().map_or(0.0, |s| s.t_s),
        outcomes,
        rates: rates(r),
        queues_by,
        accept_queues: per(&|s, i| s.accept_queues[i]),
        syn_queues: per(&|s, i| s.syn_queues[i]),
        markers: r
            .markers
            .iter()
            .map(|(t, l)| Marker {
                at_s: *t,
                label: l.clone(),
            })
            .collect(),
    }
}

/// A time window of a plot (`--from`/`--until`), in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Start of the window.
    pub from_s: f64,
    /// End of the window.
    pub until_s: f64,
}

/// The window of `--from`/`--until` (either may be absent: the start, the
/// end of the run), checked against the run's `duration`: each must parse
/// as a duration (`"2s"`, `"1500ms"`), lie within the run, and `from` must
/// be before `until`. `None` when neither is given.
pub fn window(
    from: Option<&str>,
    until: Option<&str>,
    duration: SimDuration,
) -> Result<Option<Window>, String> {
    if from.is_none() && until.is_none() {
        return Ok(None);
    }
    let parse = |flag: &str, text: Option<&str>, default: SimDuration| match text {
        None => Ok(default),
        Some(t) => {
            let d = SimDuration::parse(t).map_err(|e| format!("{flag} {t:?}: {e}"))?;
            if d > duration {
                return Err(format!(
                    "{flag} {t}: after the end of the run ({duration}); give a time within 0..{duration}"
                ));
            }
            Ok(d)
        }
    };
    let f = parse("--from", from, SimDuration::ZERO)?;
    let u = parse("--until", until, duration)?;
    if f >= u {
        return Err(format!(
            "--from {f} must be before --until {u} (the window would be empty)"
        ));
    }
    Ok(Some(Window {
        from_s: f.as_secs_f64(),
        until_s: u.as_secs_f64(),
    }))
}

/// `d` cut to `w`: the points and markers inside it, the axis on it.
fn zoom(mut d: PlotData, w: Option<Window>) -> PlotData {
    let Some(w) = w else { return d };
    let inside = |t: f64| t >= w.from_s && t <= w.until_s;
    for series in [
        &mut d.outcomes,
        &mut d.rates,
        &mut d.accept_queues,
        &mut d.syn_queues,
    ] {
        for s in series.iter_mut() {
            s.points.retain(|p| inside(p.0));
        }
    }
    d.markers.retain(|m| inside(m.at_s));
    d.start_s = w.from_s;
    d.duration_s = w.until_s;
    d
}

/// An SVG of one run, or of `run` (migration on) over `other` (off),
/// zoomed to `window` if given.
pub fn render_run(
    run: &RunResult,
    other: Option<&RunResult>,
    window: Option<Window>,
) -> Result<String, String> {
    let d = zoom(data(run), window);
    match other {
        None => render_svg(&d, None, "run"),
        Some(o) => {
            let od = zoom(data(o), window);
            render_svg(&d, Some(("off", &od)), "on")
        }
    }
}

/// An SVG of `run` (labelled `label`) over `other` (labelled
/// `other_label`), e.g. a kernel run over a simulator run.
pub fn render_labelled(
    run: &RunResult,
    label: &str,
    other: &RunResult,
    other_label: &str,
) -> Result<String, String> {
    render_svg(&data(run), Some((other_label, &data(other))), label)
}
