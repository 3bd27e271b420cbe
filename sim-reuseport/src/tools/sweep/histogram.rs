//! The resets-per-seed histogram (SVG).

use super::*;

// ---------------------------------------------------------------------------
// Histogram.

/// An SVG histogram of resets per seed, migration off vs on.
pub fn resets_histogram(summary_title: &str, results: &[SeedResult]) -> Result<String, String> {
    use plotters::prelude::*;
    let off: Vec<u64> = results
        .iter()
        .filter_map(|r| r.off.as_ref().map(|x| x.connections.reset))
        .collect();
    let on: Vec<u64> = results
        .iter()
        .filter_map(|r| r.on.as_ref().map(|x| x.connections.reset))
        .collect();
    let max = off.iter().chain(&on).copied().max().unwrap_or(0);
    const BINS_MAX: u64 = 60;
    let width = (max + 1).div_ceil(BINS_MAX).max(1);
    let bins = (max / width + 1) as usize;
    let count = |v: &[u64]| {
        let mut c = vec![0u64; bins];
        for &x in v {
            c[(x / width) as usize] += 1;
        }
        c
    };
    let (c_off, c_on) = (count(&off), count(&on));
    let y_max = c_off.iter().chain(&c_on).copied().max().unwrap_or(0).max(1);
    let err = |e: &dyn fmt::Display| format!("histogram: {e}");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{summary_title}: connections reset per seed"),
                ("sans-serif", 20),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..bins as f64, 0f64..(y_max as f64 * 1.1))
            .map_err(|e| err(&e))?;
        let x_desc = if width == 1 {
            "connections reset in the run".to_string()
        } else {
            format!("connections reset in the run (bins of {width})")
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_desc)
            .y_desc("seeds")
            .x_labels(bins.min(20))
            .x_label_formatter(&|v| format!("{}", (*v as u64) * width))
            .y_label_formatter(&|v| format!("{}", *v as u64))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| err(&e))?;
        let off_color = RGBColor(214, 39, 40);
        let on_color = RGBColor(31, 119, 180);
        chart
            .draw_series(
                c_off
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(|(i, &n)| {
                        Rectangle::new(
                            [(i as f64 + 0.08, 0.0), (i as f64 + 0.5, n as f64)],
                            off_color.mix(0.8).filled(),
                        )
                    }),
            )
            .map_err(|e| err(&e))?
            .label(format!("migration off ({} runs)", off.len()))
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], off_color.filled())
            });
        chart
            .draw_series(
                c_on.iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(|(i, &n)| {
                        Rectangle::new(
                            [(i as f64 + 0.5, 0.0), (i as f64 + 0.92, n as f64)],
                            on_color.mix(0.8).filled(),
                        )
                    }),
            )
            .map_err(|e| err(&e))?
            .label(format!("migration on ({} runs)", on.len()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], on_color.filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}
