//! SVG charts of a run, or of two runs overlaid, drawn with `plotters`.
//!
//! [`render_svg`] draws four stacked panels sharing the time axis:
//! cumulative connection outcomes, their rates per second, accept-queue
//! lengths and SYN-queue lengths, with the timeline's actions ([`Marker`]s)
//! as thin vertical lines.
//! The output is a deterministic function of the input: no timestamps, no
//! system fonts (text is emitted as SVG `<text>` and laid out by the viewer).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::tools::plot_labels::{merge, place, Placed, CHAR_W, ROW_H};

/// One line of a chart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend label, e.g. `"completed"` or `"listener 3"`.
    pub label: String,
    /// `(time in seconds, value)` points in time order.
    pub points: Vec<(f64, f64)>,
}

/// A vertical marker (a timeline action).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Marker {
    /// When the action happens, seconds since the start of the run.
    pub at_s: f64,
    /// Short text drawn next to the line, e.g. `"close L0"`.
    pub label: String,
}

/// Everything one run contributes to a chart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlotData {
    /// Chart title (the scenario name, say).
    pub title: String,
    /// Start of the time axis in seconds (0 unless zoomed).
    pub start_s: f64,
    /// End of the time axis in seconds (the length of the run unless zoomed).
    pub duration_s: f64,
    /// Cumulative completed / reset / refused / timed_out over time.
    pub outcomes: Vec<Series>,
    /// Events per second over time (completed, reset, migrated, ...).
    pub rates: Vec<Series>,
    /// What each queue series stands for, in the panels' captions:
    /// `"listener"`, or e.g. `"generation (sum over its listeners)"`.
    /// Empty means `"listener"`.
    pub queues_by: String,
    /// Accept-queue length per listener (or group) over time.
    pub accept_queues: Vec<Series>,
    /// SYN-queue length per listener (or group) over time.
    pub syn_queues: Vec<Series>,
    /// Timeline actions.
    pub markers: Vec<Marker>,
}

const WIDTH: u32 = 1280;
const TITLE_H: u32 = 64;
const PANEL_H: u32 = 340;
const LEGEND_W: u32 = 250;
/// Legend entries shown per panel before "+N more".
const LEGEND_MAX: usize = 14;
/// Longest legend label, in characters, before it is cut with "…".
const LEGEND_LABEL_MAX: usize = 30;
const FONT: &str = "sans-serif";
/// Time buckets for decimating long series (about one per pixel column).
const DECIMATE_BUCKETS: usize = 1000;

/// Fixed palette (Tableau 10 plus two), cycled by series index.
const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
    RGBColor(128, 64, 0),
];
const MARKER_COLOR: RGBColor = RGBColor(90, 90, 90);
const GRID_COLOR: RGBColor = RGBColor(225, 225, 225);

/// Colour of series `index` of a panel. Outcome names get fixed colours so
/// that charts of different runs read the same way.
fn series_color(label: &str, index: usize) -> RGBColor {
    let key = label.to_ascii_lowercase();
    if key.starts_with("completed") {
        PALETTE[2]
    } else if key.starts_with("reset") {
        PALETTE[3]
    } else if key.starts_with("refused") {
        PALETTE[1]
    } else if key.starts_with("timed_out") || key.starts_with("timed out") {
        PALETTE[4]
    } else if key.starts_with("migrat") {
        PALETTE[0]
    } else {
        PALETTE[index % PALETTE.len()]
    }
}

/// One line as drawn: which run it belongs to decides the style.
struct Line<'a> {
    label: String,
    points: &'a [(f64, f64)],
    color: RGBColor,
    /// Drawn dashed and lighter (the `other` run of an overlay).
    secondary: bool,
}

/// Collects the lines of one panel: `run`'s solid, then `other`'s dashed.
/// Labels get a `" (label)"` suffix only in an overlay.
fn panel_lines<'a>(
    run: &'a [Series],
    run_label: &str,
    other: Option<(&str, &'a [Series])>,
) -> Vec<Line<'a>> {
    let suffix = |label: &str, run: &str| {
        if other.is_some() {
            format!("{label} ({run})")
        } else {
            label.to_string()
        }
    };
    let mut lines: Vec<Line<'a>> = run
        .iter()
        .enumerate()
        .map(|(i, s)| Line {
            label: suffix(&s.label, run_label),
            points: &s.points,
            color: series_color(&s.label, i),
            secondary: false,
        })
        .collect();
    if let Some((other_label, series)) = other {
        lines.extend(series.iter().enumerate().map(|(i, s)| Line {
            label: suffix(&s.label, other_label),
            points: &s.points,
            color: series_color(&s.label, i),
            secondary: true,
        }));
    }
    lines
}

/// `(lo, hi)` of the finite values picked by `f` over all points, if any.
fn finite_range<'a>(
    lines: impl IntoIterator<Item = &'a [(f64, f64)]>,
    f: impl Fn(&(f64, f64)) -> f64,
) -> Option<(f64, f64)> {
    let mut out: Option<(f64, f64)> = None;
    for points in lines {
        for v in points.iter().map(&f).filter(|v| v.is_finite()) {
            out = Some(match out {
                None => (v, v),
                Some((lo, hi)) => (lo.min(v), hi.max(v)),
            });
        }
    }
    out
}

/// The finite points of a line, decimated when there are many more points
/// than pixel columns: within each of [`DECIMATE_BUCKETS`] time buckets a
/// run of consecutive points keeps only its first, lowest, highest and last
/// point (in their original order), so spikes survive.
fn plot_points(points: &[(f64, f64)], x_min: f64, x_max: f64) -> Vec<(f64, f64)> {
    let finite = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    if points.len() <= 4 * DECIMATE_BUCKETS {
        return finite.collect();
    }
    let span = x_max - x_min;
    let bucket_of = |x: f64| ((x - x_min) / span * DECIMATE_BUCKETS as f64).floor() as i64;
    let mut out = Vec::with_capacity(4 * DECIMATE_BUCKETS + 4);
    let mut run: Vec<(f64, f64)> = Vec::new();
    let flush = |run: &mut Vec<(f64, f64)>, out: &mut Vec<(f64, f64)>| {
        if run.is_empty() {
            return;
        }
        let (mut lo, mut hi) = (0, 0);
        for (i, p) in run.iter().enumerate() {
            if p.1 < run[lo].1 {
                lo = i;
            }
            if p.1 > run[hi].1 {
                hi = i;
            }
        }
        let mut keep = [0, lo, hi, run.len() - 1];
        keep.sort_unstable();
        let mut last = None;
        for i in keep {
            if last != Some(i) {
                out.push(run[i]);
                last = Some(i);
            }
        }
        run.clear();
    };
    let mut current = None;
    for p in finite {
        let b = bucket_of(p.0);
        if current != Some(b) {
            flush(&mut run, &mut out);
            current = Some(b);
        }
        run.push(p);
    }
    flush(&mut run, &mut out);
    out
}

fn truncate_label(label: &str) -> String {
    if label.chars().count() <= LEGEND_LABEL_MAX {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(LEGEND_LABEL_MAX - 1).collect();
        s.push('…');
        s
    }
}

fn fmt_tick(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("plot: {e}")
}

/// What one panel shows.
struct Panel<'a> {
    caption: String,
    y_desc: &'a str,
    lines: Vec<Line<'a>>,
}

/// Renders one run, or two overlaid, as an SVG document string.
///
/// `run` is labelled `run_label`. With `other = Some((other_label, data))`
/// (a comparison, e.g. policy off vs on), both runs are drawn in every
/// panel: `run` solid, `other` dashed and lighter, each series label
/// suffixed with `" (run_label)"` / `" (other_label)"`; same-named series
/// share a colour. Pass the "on" run as `run` and the "off" run as `other`.
/// The time axis spans `0..max(duration_s)` of the runs shown (extended to
/// cover every point). Markers of `run` (and of `other`, if any, when
/// different) are drawn in every panel. Non-finite points are skipped.
///
/// The same input always gives the same string. Errors come from
/// `plotters` and are returned as text.
pub fn render_svg(
    run: &PlotData,
    other: Option<(&str, &PlotData)>,
    run_label: &str,
) -> Result<String, String> {
    let by = if run.queues_by.is_empty() {
        "listener"
    } else {
        run.queues_by.as_str()
    };
    let panels = [
        Panel {
            caption: "Connection outcomes (cumulative)".into(),
            y_desc: "connections",
            lines: panel_lines(
                &run.outcomes,
                run_label,
                other.map(|(l, o)| (l, o.outcomes.as_slice())),
            ),
        },
        Panel {
            caption: "Rates (per second, over each sampling interval)".into(),
            y_desc: "per second",
            lines: panel_lines(
                &run.rates,
                run_label,
                other.map(|(l, o)| (l, o.rates.as_slice())),
            ),
        },
        Panel {
            caption: format!("Accept queue length per {by}"),
            y_desc: "accept queue",
            lines: panel_lines(
                &run.accept_queues,
                run_label,
                other.map(|(l, o)| (l, o.accept_queues.as_slice())),
            ),
        },
        Panel {
            caption: format!("SYN queue length per {by}"),
            y_desc: "SYN queue",
            lines: panel_lines(
                &run.syn_queues,
                run_label,
                other.map(|(l, o)| (l, o.syn_queues.as_slice())),
            ),
        },
    ];

    // Shared time axis.
    let mut x_max = run.duration_s;
    let mut x_min = if run.start_s.is_finite() {
        run.start_s
    } else {
        0.0
    };
    if let Some((_, o)) = other {
        x_max = x_max.max(o.duration_s);
        if o.start_s.is_finite() {
            x_min = x_min.min(o.start_s);
        }
    }
    let all_points = panels.iter().flat_map(|p| p.lines.iter().map(|l| l.points));
    let (x_lo, x_hi) = finite_range(all_points, |p| p.0).unwrap_or((x_min, x_min));
    let x_min = x_lo.min(x_min);
    x_max = if x_max.is_finite() { x_max } else { 0.0 }.max(x_hi);
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }

    let mut markers: Vec<&Marker> = run.markers.iter().collect();
    if let Some((_, o)) = other {
        for m in &o.markers {
            if !markers.contains(&m) {
                markers.push(m);
            }
        }
    }
    markers.retain(|m| m.at_s.is_finite() && m.at_s >= x_min && m.at_s <= x_max);
    let plot_w = f64::from(WIDTH - LEGEND_W - 10 - 16 - 64);
    let (labels, rows) = place(merge(&markers), x_min, x_max, plot_w);

    let height = TITLE_H + PANEL_H * panels.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (title_area, body) = root.split_vertically(TITLE_H);
        draw_title(&title_area, run, other, run_label)?;
        let areas = body.split_evenly((panels.len(), 1));
        for (panel, area) in panels.iter().zip(&areas) {
            draw_panel(
                area,
                panel,
                (x_min, x_max),
                (&labels, rows),
                other,
                run_label,
            )?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn draw_title<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    run: &PlotData,
    other: Option<(&str, &PlotData)>,
    run_label: &str,
) -> Result<(), String> {
    let center = Pos::new(HPos::Center, VPos::Top);
    let title = TextStyle::from((FONT, 24).into_font().style(FontStyle::Bold))
        .color(&BLACK)
        .pos(center);
    area.draw(&Text::new(run.title.clone(), (WIDTH as i32 / 2, 8), title))
        .map_err(err)?;
    let subtitle = match other {
        Some((other_label, _)) => {
            format!("{run_label} (solid) vs {other_label} (dashed, lighter)")
        }
        None => run_label.to_string(),
    };
    if !subtitle.is_empty() {
        let style = TextStyle::from((FONT, 15).into_font())
            .color(&RGBColor(70, 70, 70))
            .pos(center);
        area.draw(&Text::new(subtitle, (WIDTH as i32 / 2, 38), style))
            .map_err(err)?;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel<'_>,
    (x_min, x_max): (f64, f64),
    (labels, rows): (&[Placed], usize),
    other: Option<(&str, &PlotData)>,
    run_label: &str,
) -> Result<(), String> {
    let (chart_area, legend_area) = area.split_horizontally(WIDTH - LEGEND_W);

    let (y_lo, y_hi) =
        finite_range(panel.lines.iter().map(|l| l.points), |p| p.1).unwrap_or((0.0, 0.0));
    let y_min = y_lo.min(0.0);
    let mut y_max = y_hi.max(0.0);
    // Headroom for the rows of action labels along the top, so that they
    // hide no data: the data keeps the rest of the plot's height.
    let plot_h = f64::from(PANEL_H - 4 - 6 - 42 - 24);
    let need = (f64::from(ROW_H) * rows as f64 + 6.0).min(plot_h * 0.7);
    y_max = if y_max <= y_min {
        y_min + 1.0
    } else {
        y_min + (y_max - y_min) * plot_h / (plot_h - need)
    };

    let mut chart = ChartBuilder::on(&chart_area)
        .caption(
            &panel.caption,
            (FONT, 17).into_font().style(FontStyle::Bold),
        )
        .margin_top(4)
        .margin_left(10)
        .margin_right(16)
        .margin_bottom(6)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(x_min..x_max, y_min..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(panel.y_desc)
        .x_labels(12)
        .y_labels(6)
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .light_line_style(GRID_COLOR.mix(0.35))
        .bold_line_style(GRID_COLOR)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(err)?;

    // Marker lines under the data, their labels (on a light background)
    // over it.
    for m in labels.iter().map(|l| &l.marker) {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(m.at_s, y_min), (m.at_s, y_max)],
                MARKER_COLOR.mix(0.7).stroke_width(1),
            )))
            .map_err(err)?;
    }

    // Secondary (dashed) lines first so the solid ones stay on top.
    for line in panel.lines.iter().filter(|l| l.secondary) {
        let pts = plot_points(line.points, x_min, x_max);
        if pts.len() < 2 {
            continue;
        }
        chart
            .draw_series(DashedLineSeries::new(
                pts,
                7,
                5,
                line.color.mix(0.55).stroke_width(2),
            ))
            .map_err(err)?;
    }
    for line in panel.lines.iter().filter(|l| !l.secondary) {
        let pts = plot_points(line.points, x_min, x_max);
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(pts, line.color.stroke_width(2)))
            .map_err(err)?;
    }
    let marker_style = TextStyle::from((FONT, 12).into_font()).color(&MARKER_COLOR);
    for l in labels {
        let m = &l.marker;
        let y = 2 + ROW_H * l.row as i32;
        let w = (m.label.chars().count() as f64 * CHAR_W).ceil() as i32 + 4;
        let (dx, h, bg) = if l.left {
            (-3, HPos::Right, [(-w - 1, y - 1), (-1, y + 13)])
        } else {
            (3, HPos::Left, [(1, y - 1), (w + 1, y + 13)])
        };
        let style = marker_style.pos(Pos::new(h, VPos::Top));
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((m.at_s, y_max))
                    + Rectangle::new(bg, WHITE.mix(0.8).filled())
                    + Text::new(m.label.clone(), (dx, y), style),
            ))
            .map_err(err)?;
    }
    if panel.lines.is_empty() {
        let style = TextStyle::from((FONT, 15).into_font())
            .color(&MARKER_COLOR)
            .pos(Pos::new(HPos::Center, VPos::Center));
        let (w, h) = chart_area.dim_in_pixel();
        chart_area
            .draw(&Text::new("no data", (w as i32 / 2, h as i32 / 2), style))
            .map_err(err)?;
    }

    draw_legend(&legend_area, &panel.lines, other, run_label)
}

/// The legend, right of the plot: up to [`LEGEND_MAX`] entries, then
/// "+N more", then (in an overlay) which line style is which run.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[Line<'_>],
    other: Option<(&str, &PlotData)>,
    run_label: &str,
) -> Result<(), String> {
    const ROW: i32 = 18;
    const X0: i32 = 6;
    const SWATCH: i32 = 26;
    let text = TextStyle::from((FONT, 13).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let mut y = 40;
    let draw_swatch = |y: i32, color: RGBAColor, dashed: bool| -> Result<(), String> {
        let style = color.stroke_width(2);
        if dashed {
            for (a, b) in [(0, 8), (13, 21)] {
                area.draw(&PathElement::new(vec![(X0 + a, y), (X0 + b, y)], style))
                    .map_err(err)?;
            }
        } else {
            area.draw(&PathElement::new(
                vec![(X0, y), (X0 + SWATCH - 4, y)],
                style,
            ))
            .map_err(err)?;
        }
        Ok(())
    };
    // In an overlay, same-named series share a colour and the style key
    // below says which run is which: one entry per series keeps the legend
    // complete.
    let suffix = format!(" ({run_label})");
    let shown: Vec<Line<'_>> = lines
        .iter()
        .filter(|l| other.is_none() || !l.secondary)
        .map(|l| Line {
            label: l
                .label
                .strip_suffix(suffix.as_str())
                .filter(|_| other.is_some())
                .unwrap_or(&l.label)
                .to_string(),
            points: l.points,
            color: l.color,
            secondary: l.secondary,
        })
        .collect();
    let lines = &shown;
    for line in lines.iter().take(LEGEND_MAX) {
        let color = if line.secondary {
            line.color.mix(0.55)
        } else {
            line.color.mix(1.0)
        };
        draw_swatch(y, color, line.secondary)?;
        area.draw(&Text::new(
            truncate_label(&line.label),
            (X0 + SWATCH + 4, y),
            text.clone(),
        ))
        .map_err(err)?;
        y += ROW;
    }
    if lines.len() > LEGEND_MAX {
        area.draw(&Text::new(
            format!("+{} more", lines.len() - LEGEND_MAX),
            (X0 + SWATCH + 4, y),
            text.clone(),
        ))
        .map_err(err)?;
        y += ROW;
    }
    if let Some((other_label, _)) = other {
        y += ROW / 2;
        let key = text.color(&RGBColor(70, 70, 70));
        draw_swatch(y, BLACK.mix(1.0), false)?;
        area.draw(&Text::new(
            truncate_label(run_label),
            (X0 + SWATCH + 4, y),
            key.clone(),
        ))
        .map_err(err)?;
        y += ROW;
        draw_swatch(y, BLACK.mix(0.55), true)?;
        area.draw(&Text::new(
            truncate_label(other_label),
            (X0 + SWATCH + 4, y),
            key,
        ))
        .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ramp of `n` points over `duration` seconds with value `f(t)`.
    fn series(label: &str, duration: f64, n: usize, f: impl Fn(f64) -> f64) -> Series {
        Series {
            label: label.to_string(),
            points: (0..=n)
                .map(|i| {
                    let t = duration * i as f64 / n as f64;
                    (t, f(t))
                })
                .collect(),
        }
    }

    /// A synthetic run: a restart at 4 s that resets some connections.
    fn sample(title: &str, listeners: usize, resets: f64) -> PlotData {
        let d = 10.0;
        let n = 200;
        PlotData {
            title: title.to_string(),
            start_s: 0.0,
            duration_s: d,
            rates: vec![series("completed/s", d, n, |_| 950.0)],
            queues_by: String::new(),
            outcomes: vec![
                series("completed", d, n, |t| (t * 950.0).floor()),
                series("reset", d, n, |t| {
                    if t < 4.0 {
                        0.0
                    } else {
                        (resets * (1.0 - (-(t - 4.0)).exp())).floor()
                    }
                }),
                series("refused", d, n, |t| if t < 4.2 { 0.0 } else { 12.0 }),
                series("timed_out", d, n, |t| (t / 3.0).floor()),
            ],
            accept_queues: (0..listeners)
                .map(|l| {
                    series(&format!("listener {l}"), d, n, move |t| {
                        let phase = l as f64 * 0.7;
                        let base = 20.0 + 15.0 * (t * 2.0 + phase).sin();
                        if l == 0 && t > 4.0 {
                            0.0
                        } else {
                            base.round()
                        }
                    })
                })
                .collect(),
            syn_queues: (0..listeners)
                .map(|l| {
                    series(&format!("listener {l}"), d, n, move |t| {
                        (5.0 + 4.0 * (t * 3.0 + l as f64).cos()).round()
                    })
                })
                .collect(),
            markers: vec![
                Marker {
                    at_s: 4.0,
                    label: "close L0".to_string(),
                },
                Marker {
                    at_s: 4.2,
                    label: "bind L0'".to_string(),
                },
                Marker {
                    at_s: 9.5,
                    label: "drain done".to_string(),
                },
            ],
        }
    }

    #[test]
    fn renders_single_run() {
        let data = sample("restart <one> & two", 4, 300.0);
        let svg = render_svg(&data, None, "baseline").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("restart &lt;one&gt; &amp; two"));
        assert!(svg.contains("completed"));
        assert!(svg.contains("listener 3"));
        assert!(svg.contains("close L0"));
        assert!(svg.contains("time (s)"));
        assert!(
            !svg.contains("(baseline)"),
            "no label suffix without overlay"
        );
        assert_eq!(svg, render_svg(&data, None, "baseline").unwrap());
    }

    #[test]
    fn renders_overlay() {
        let on = sample("migration", 3, 20.0);
        let off = sample("migration", 3, 400.0);
        let svg = render_svg(&on, Some(("policy off", &off)), "policy on").unwrap();
        assert!(svg.starts_with("<svg"));
        // One legend entry per series (the colour), and a key for the runs.
        assert!(svg.contains("\ncompleted\n"));
        assert!(svg.contains("\nlistener 2\n"));
        assert!(!svg.contains("(policy off)\n"));
        assert!(svg.contains("policy on"));
        assert!(svg.contains("policy off"));
        assert_eq!(
            svg,
            render_svg(&on, Some(("policy off", &off)), "policy on").unwrap()
        );
        assert_ne!(svg, render_svg(&on, None, "policy on").unwrap());
    }

    #[test]
    fn many_series_truncate_legend() {
        let data = sample("32 listeners", 32, 100.0);
        let svg = render_svg(&data, None, "").unwrap();
        assert!(svg.contains("listener 13"));
        assert!(!svg.contains("listener 14<"));
        assert!(svg.contains("+18 more"));
    }

    #[test]
    fn degenerate_inputs() {
        let empty = PlotData::default();
        let svg = render_svg(&empty, None, "").unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("no data"));
        let mut odd = sample("odd", 1, 1.0);
        odd.duration_s = f64::NAN;
        odd.outcomes[0].points.push((f64::NAN, 1.0));
        odd.outcomes[1].points.push((11.0, f64::INFINITY));
        odd.outcomes[2].points.clear();
        odd.markers.push(Marker {
            at_s: f64::NAN,
            label: "bad".into(),
        });
        let svg = render_svg(&odd, None, "x").unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(!svg.contains("NaN") && !svg.contains("=\"inf"));
    }

    #[test]
    fn long_series_are_decimated() {
        let mut data = sample("long", 2, 10.0);
        let n = 200_000;
        data.accept_queues[0] = series("listener 0", 10.0, n, |t| {
            // A single one-sample spike must survive decimation.
            if (t - 5.0).abs() < 1e-9 {
                999.0
            } else {
                (t * 1000.0).sin().abs() * 10.0
            }
        });
        let svg = render_svg(&data, Some(("b", &data)), "a").unwrap();
        assert!(svg.len() < 3_000_000, "svg is {} bytes", svg.len());
        let pts = plot_points(&data.accept_queues[0].points, 0.0, 10.0);
        assert!(pts.len() <= 4 * DECIMATE_BUCKETS + 4);
        assert!(pts.contains(&(5.0, 999.0)));
        assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(pts.first(), data.accept_queues[0].points.first());
        assert_eq!(pts.last(), data.accept_queues[0].points.last());
    }

    /// Writes an example to `/tmp/plot-example.svg` (and the overlay to
    /// `/tmp/plot-example-overlay.svg`) for a visual check.
    #[test]
    fn example_file() {
        let on = sample("Listener restart: 4 listeners, close L0 at 4 s", 4, 20.0);
        let off = sample("Listener restart: 4 listeners, close L0 at 4 s", 4, 400.0);
        let dir = std::path::Path::new("/tmp");
        if !dir.is_dir() {
            return;
        }
        let single = render_svg(&off, None, "migrate off").unwrap();
        std::fs::write(dir.join("plot-example.svg"), single).unwrap();
        let overlay = render_svg(&on, Some(("migrate off", &off)), "migrate on").unwrap();
        std::fs::write(dir.join("plot-example-overlay.svg"), overlay).unwrap();
        let many_on = sample("32 listeners", 32, 20.0);
        let many_off = sample("32 listeners", 32, 400.0);
        let many = render_svg(&many_on, Some(("migrate off", &many_off)), "migrate on").unwrap();
        std::fs::write(dir.join("plot-example-32.svg"), many).unwrap();
    }
}
