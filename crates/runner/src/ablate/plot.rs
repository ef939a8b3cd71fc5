//! PNG plots: per cell, matching loss against outer iteration for each experiment and the final test
//! accuracy of every evaluation network at the last iteration; per table whose columns are numbers
//! (iterations, ipc), each row's accuracy against them. The font is bundled (DejaVu Sans), so plots
//! render the same on machines without system fonts.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).unwrap_or_else(|_| panic!("the bundled font is valid"));
    });
}

pub fn cell_plot(
    path: &Path,
    title: &str,
    losses: &[(String, Vec<f64>)],
    accuracies: &[(String, Vec<f64>)],
    iterations: usize,
) -> Result<()> {
    register_font();
    let root = BitMapBackend::new(path, (960, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root.titled(title, ("sans-serif", 18)).map_err(|e| anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(560);
    let x_max = iterations.max(1) as f64;
    loss_chart(&left, losses, x_max)?;
    accuracy_chart(&right, accuracies, x_max)?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Matching loss against outer iteration, one line per experiment.
fn loss_chart(area: &Area, losses: &[(String, Vec<f64>)], x_max: f64) -> Result<()> {
    let finite = || losses.iter().flat_map(|(_, l)| l.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, if hi > lo { hi } else { lo + 1.0 }) } else { (0.0, 1.0) };
    let mut chart = ChartBuilder::on(area)
        .caption("matching loss", ("sans-serif", 14))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, lo..hi)
        .map_err(|e| anyhow!("{e}"))?;
    chart.configure_mesh().x_desc("outer iteration").draw().map_err(|e| anyhow!("{e}"))?;
    for (i, (name, series)) in losses.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(series.iter().enumerate().map(|(x, &y)| (x as f64, y)), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(|e| anyhow!("{e}"))
}

/// The test accuracy of every evaluation network, at the last iteration, one colour per model.
fn accuracy_chart(area: &Area, accuracies: &[(String, Vec<f64>)], x_max: f64) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption("test accuracy (%) at the last iteration", ("sans-serif", 14))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(0.0..x_max * 1.1, 0.0..100.0)
        .map_err(|e| anyhow!("{e}"))?;
    chart.configure_mesh().x_desc("outer iteration").draw().map_err(|e| anyhow!("{e}"))?;
    for (i, (model, values)) in accuracies.iter().enumerate() {
        let color = Palette99::pick(i + 5).to_rgba();
        chart
            .draw_series(values.iter().map(|&a| Circle::new((x_max, a), 4, color.filled())))
            .map_err(|e| anyhow!("{e}"))?
            .label(model.as_str())
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(|e| anyhow!("{e}"))
}

/// One row of a table as a line: (column value, mean accuracy %, its std) where the row has an entry.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// Every curve's mean accuracy against the column values, with bars of ± one std.
pub fn curves_plot(path: &Path, title: &str, x_desc: &str, curves: &[Curve]) -> Result<()> {
    register_font();
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let points = || curves.iter().flat_map(|c| c.points.iter());
    let x_max = points().map(|p| p.0).fold(1.0, f64::max);
    let y_lo = points().map(|p| p.1 - p.2).fold(100.0, f64::min).clamp(0.0, 100.0);
    let y_hi = points().map(|p| p.1 + p.2).fold(0.0, f64::max).clamp(y_lo + 1.0, 100.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max * 1.05, (y_lo - 2.0).max(0.0)..(y_hi + 2.0).min(100.0))
        .map_err(|e| anyhow!("{e}"))?;
    chart.configure_mesh().x_desc(x_desc).y_desc("test accuracy (%)").draw().map_err(|e| anyhow!("{e}"))?;
    for (i, curve) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line = curve.points.iter().map(|&(x, mean, _)| (x, mean));
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)).point_size(3))
            .map_err(|e| anyhow!("{e}"))?
            .label(curve.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        let bars = curve.points.iter().map(|&(x, mean, std)| ErrorBar::new_vertical(x, mean - std, mean, mean + std, color, 6));
        chart.draw_series(bars).map_err(|e| anyhow!("{e}"))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
