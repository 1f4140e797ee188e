//! The report's first chart: a ranked forest plot, one row per variant (best first)
//! with its mean accuracy and the interval of that mean at a confidence that holds for
//! all rows jointly (Bonferroni), the best marked. It reads at a glance for thirty
//! variants, where overlaid curves do not.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart_style::{annotate, PixelBox};
use super::charts::ensure_font;
use super::summary::ExperimentSummary;
use super::ReportError;
use crate::experiment::stats::mean_interval;
use crate::store::write_file;

type Result<T> = std::result::Result<T, ReportError>;

/// One row: the variant, and its mean with the interval in percent (None when every
/// seed diverged), clipped to [0, 100].
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Variant name.
    pub name: String,
    /// (mean, low, high) in percent; low = high = mean with one seed.
    pub figure: Option<(f64, f64, f64)>,
    /// True for the best variant.
    pub best: bool,
}

/// The rows of `s`, in rank order, each interval at 1 - 0.05/k for k variants.
pub fn rows(s: &ExperimentSummary) -> Vec<Row> {
    let k = s.variants.len().max(1) as f64;
    let best = s.best().map(|b| b.index);
    s.variants
        .iter()
        .map(|v| Row {
            name: v.name.clone(),
            figure: v.rank_acc().map(|a| {
                let (lo, hi) = mean_interval(&a, 1.0 - 0.05 / k).unwrap_or((a.mean, a.mean));
                let pct = |x: f64| (x * 100.0).clamp(0.0, 100.0);
                (pct(a.mean), pct(lo), pct(hi))
            }),
            best: Some(v.index) == best,
        })
        .collect()
}

/// The accuracy axis: every interval, padded, within 0 to 100 (all of it when no
/// variant has an accuracy).
fn x_range(rows: &[Row]) -> (f64, f64) {
    let figs = rows.iter().filter_map(|r| r.figure);
    let (lo, hi) = figs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), f| {
        (a.min(f.1), b.max(f.2))
    });
    let (lo, hi) = if lo.is_finite() {
        (lo, hi)
    } else {
        (0.0, 100.0)
    };
    let pad = ((hi - lo) * 0.08).max(0.2);
    ((lo - pad).max(0.0), (hi + pad).min(100.0))
}

/// A row's ink: the best in blue, the others dark grey.
fn ink(r: &Row) -> RGBColor {
    if r.best {
        RGBColor(0, 114, 178)
    } else {
        RGBColor(60, 60, 60)
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[Row],
    x_label: &str,
) -> Result<Vec<PixelBox>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let n = rows.len().max(1);
    let (x0, x1) = x_range(rows);
    let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    let longest = names.iter().map(|l| l.chars().count()).max().unwrap_or(4);
    let mut chart = ChartBuilder::on(root)
        .caption("accuracy by variant, best first", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size((longest as u32 * 7 + 16).clamp(60, 360))
        .build_cartesian_2d(x0..x1, n as f64..0.0)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| super::charts::category_label(*y, &names))
        .x_desc(x_label)
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", 12))
        .draw()?;
    for (i, r) in rows.iter().enumerate() {
        let y = i as f64 + 0.5;
        let Some((m, l, h)) = r.figure else {
            chart.draw_series(std::iter::once(Text::new(
                "diverged: no accuracy",
                (x0, y - 0.2),
                ("sans-serif", 11).into_font().color(&RGBColor(179, 38, 30)),
            )))?;
            continue;
        };
        let c = ink(r);
        // Intervals in a lighter ink, so thirty of them (often wide) leave the means legible.
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(l, y), (h, y)],
            c.mix(0.45).stroke_width(2),
        )))?;
        chart.draw_series(std::iter::once(Circle::new((m, y), 5, c.filled())))?;
        if r.best {
            let label = format!("best {m:.2}%");
            chart.draw_series(std::iter::once(Text::new(
                label,
                (m, y - 0.45),
                ("sans-serif", 11).into_font().color(&c),
            )))?;
        }
    }
    Ok(vec![PixelBox::of(chart.plotting_area(), "plot-box")])
}

/// The forest plot as `<dir>/forest.svg` and `.png`; returns the SVG.
pub fn forest(dir: &Path, rows: &[Row], x_label: &str) -> Result<String> {
    ensure_font();
    let size = (900u32, 110 + 24 * rows.len().max(1) as u32);
    let mut svg = String::new();
    let boxes;
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        boxes = draw(&root, rows, x_label)?;
        root.present()
            .map_err(|e| ReportError::Draw(format!("svg: {e}")))?;
    }
    let svg = annotate(&svg, &boxes, &[]);
    let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        draw(&root, rows, x_label)?;
        root.present()
            .map_err(|e| ReportError::Draw(format!("png: {e}")))?;
    }
    write_file(&dir.join("forest.svg"), svg.as_bytes())?;
    super::charts::write_png(&dir.join("forest.png"), buf, size)?;
    Ok(svg)
}
