//! Turns run samples into charts (`--plot`).

use crate::backend::RunResult;
use crate::plot::{render_svg, Marker, PlotData, Series};
use crate::scenario::Scenario;
use sim_core::SimDuration;

/// The sampling interval for plots: 1/400 of the duration, at least 1 ms.
pub fn sample_interval(scn: &Scenario) -> SimDuration {
    SimDuration::from_nanos((scn.duration.0.as_nanos() / 400).max(1_000_000))
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
    let per = |f: &dyn Fn(&crate::backend::Sample, usize) -> u32| {
        r.worker_names
            .iter()
            .enumerate()
            .map(|(i, n)| Series {
                label: n.clone(),
                points: r
                    .samples
                    .iter()
                    .map(|s| (s.t_s, f64::from(f(s, i))))
                    .collect(),
            })
            .collect()
    };
    PlotData {
        title: format!(
            "{} (seed {}, migrate {})",
            r.report.scenario.name, r.report.seed, r.report.migrate
        ),
        duration_s: r.samples.last().map_or(0.0, |s| s.t_s),
        outcomes,
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

/// An SVG of one run, or of `run` (migration on) over `other` (off).
pub fn render_run(run: &RunResult, other: Option<&RunResult>) -> Result<String, String> {
    let d = data(run);
    match other {
        None => render_svg(&d, None, "run"),
        Some(o) => {
            let od = data(o);
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
