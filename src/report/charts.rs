//! Charts with plotters, each written as SVG and PNG: learning curves with bands over
//! seeds, gradient norms per layer, dead/saturated units, confusion matrices and
//! grids of misclassified images.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::ReportError;
use crate::store::write_file;

type Result<T> = std::result::Result<T, ReportError>;
use crate::data::{Dataset, SIDE};
use crate::store::records::RunRecord;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Register the embedded font once, so PNGs render text without system fonts.
pub(super) fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

pub use super::chart_style::color;
use super::chart_style::{annotate, dash, draw_legend, legend_height, Dash, PixelBox};

/// A line with a band: mean and min/max over seeds at each x.
#[derive(Debug, Clone)]
pub struct Band {
    /// Legend label.
    pub name: String,
    /// Variant position (for the colour).
    pub index: usize,
    /// x values.
    pub x: Vec<f64>,
    /// Mean over seeds.
    pub mean: Vec<f64>,
    /// Smallest over seeds.
    pub lo: Vec<f64>,
    /// Largest over seeds.
    pub hi: Vec<f64>,
}

/// Records grouped by variant, in experiment order.
pub fn by_variant(records: &[RunRecord]) -> Vec<(usize, String, Vec<&RunRecord>)> {
    let mut m: BTreeMap<usize, (String, Vec<&RunRecord>)> = BTreeMap::new();
    for r in records {
        m.entry(r.variant_index)
            .or_insert_with(|| (r.variant.clone(), Vec::new()))
            .1
            .push(r);
    }
    m.into_iter().map(|(i, (n, rs))| (i, n, rs)).collect()
}

fn band_from(name: &str, index: usize, series: Vec<Vec<(f64, f64)>>) -> Option<Band> {
    let mut at: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for s in &series {
        for &(x, y) in s {
            if y.is_finite() {
                at.entry(x.to_bits()).or_default().push(y);
            }
        }
    }
    if at.is_empty() {
        return None;
    }
    let mut pts: Vec<(f64, Vec<f64>)> = at
        .into_iter()
        .map(|(k, v)| (f64::from_bits(k), v))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(Band {
        name: name.to_string(),
        index,
        x: pts.iter().map(|p| p.0).collect(),
        mean: pts
            .iter()
            .map(|p| p.1.iter().sum::<f64>() / p.1.len() as f64)
            .collect(),
        lo: pts
            .iter()
            .map(|p| p.1.iter().copied().fold(f64::INFINITY, f64::min))
            .collect(),
        hi: pts
            .iter()
            .map(|p| p.1.iter().copied().fold(f64::NEG_INFINITY, f64::max))
            .collect(),
    })
}

/// One band per variant of a per-epoch figure.
pub fn epoch_bands(
    records: &[RunRecord],
    f: impl Fn(&crate::store::records::EpochStats) -> f64,
) -> Vec<Band> {
    by_variant(records)
        .into_iter()
        .filter_map(|(i, name, rs)| {
            let series = rs
                .iter()
                .map(|r| r.history.iter().map(|e| (e.epoch as f64, f(e))).collect())
                .collect();
            band_from(&name, i, series)
        })
        .collect()
}

/// One band per variant of layer `l`'s sampled gradient norm over steps.
pub fn grad_bands(records: &[RunRecord], l: usize) -> Vec<Band> {
    by_variant(records)
        .into_iter()
        .filter_map(|(i, name, rs)| {
            let series = rs
                .iter()
                .filter_map(|r| r.diagnostics.as_ref())
                .map(|d| {
                    d.grad_steps
                        .iter()
                        .zip(&d.grad_norms)
                        .filter_map(|(&s, n)| n.get(l).map(|&v| (s as f64, v)))
                        .collect()
                })
                .collect();
            band_from(&name, i, series)
        })
        .collect()
}

pub(super) fn write_png(path: &Path, buf: Vec<u8>, (w, h): (u32, u32)) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| ReportError::Draw("chart buffer has the wrong size".into()))?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| ReportError::Draw(format!("png: {e}")))?;
    Ok(write_file(path, &bytes)?)
}

/// Draw with `draw` onto an SVG and a PNG of `size`, write both as `<dir>/<stem>.{svg,png}`
/// and return the SVG text (for inlining into HTML).
macro_rules! render_both {
    ($dir:expr, $stem:expr, $size:expr, $variants:expr, $draw:ident ( $($arg:expr),* )) => {{
        ensure_font();
        let size: (u32, u32) = $size;
        let mut svg = String::new();
        let boxes: Vec<PixelBox>;
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            boxes = $draw(&root, $($arg),*)?;
            root.present().map_err(|e| ReportError::Draw(format!("svg: {e}")))?;
        }
        let svg = annotate(&svg, &boxes, $variants);
        let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
            $draw(&root, $($arg),*)?;
            root.present().map_err(|e| ReportError::Draw(format!("png: {e}")))?;
        }
        let dir: &Path = $dir;
        let svg_path = dir.join(format!("{}.svg", $stem));
        write_file(&svg_path, svg.as_bytes())?;
        write_png(&dir.join(format!("{}.png", $stem)), buf, size)?;
        Ok::<String, ReportError>(svg)
    }};
}

fn bounds(bands: &[&Band]) -> (f64, f64, f64, f64) {
    let xs = bands.iter().flat_map(|b| b.x.iter().copied());
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let ys = bands.iter().flat_map(|b| b.lo.iter().chain(&b.hi).copied());
    let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !x0.is_finite() {
        return (0.0, 1.0, 0.0, 1.0);
    }
    let (x0, x1) = if x1 > x0 {
        (x0, x1)
    } else {
        (x0 - 0.5, x0 + 0.5)
    };
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    (x0, x1, y0 - pad, y1 + pad)
}

/// A y-axis tick: "1e-9" for tiny or huge values (a log axis spans many decades),
/// else the number without trailing zeros.
fn tick(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) {
        return format!("{v:.0e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A log axis's tick label, or "" so labels never crowd: over more than two decades
/// only powers of ten are labelled, over one or two also 2 and 5 times them.
fn log_tick(v: f64, lo: f64, hi: f64) -> String {
    if v <= 0.0 || lo <= 0.0 {
        return tick(v);
    }
    let decades = (hi / lo).log10();
    let m = v / 10f64.powf(v.log10().floor());
    let near = |k: f64| (m - k).abs() < 1e-6 * k || (m - 10.0 * k).abs() < 1e-5 * k;
    let keep = if decades > 2.0 {
        near(1.0)
    } else if decades > 0.7 {
        near(1.0) || near(2.0) || near(5.0)
    } else {
        true
    };
    if keep {
        tick(v)
    } else {
        String::new()
    }
}

/// Draw the mesh, each band's min-max area and mean line (markers at its points when
/// there are few) on `$chart`
/// (a macro because linear and log charts are different types in plotters).
macro_rules! draw_bands {
    ($chart:ident, $bands:expr, $x0:expr, $x1:expr, $x_label:expr, $y_label:expr, $fmt:expr) => {{
        $chart
            .configure_mesh()
            .x_labels((($x1 - $x0).round() as usize + 1).clamp(2, 8))
            .x_label_formatter(&|v| {
                if (v - v.round()).abs() < 1e-9 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            })
            .y_label_formatter($fmt)
            .x_desc($x_label)
            .y_desc($y_label)
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", 13))
            .draw()?;
        for band in $bands {
            let c = color(band.index);
            if band.lo.iter().zip(&band.hi).any(|(l, h)| h > l) {
                $chart.draw_series(std::iter::once(Polygon::new(band_area(band), c.mix(0.18))))?;
            }
            let pts: Vec<(f64, f64)> = band
                .x
                .iter()
                .copied()
                .zip(band.mean.iter().copied())
                .collect();
            let style = c.stroke_width(2);
            match dash(band.index) {
                Dash::Solid => $chart.draw_series(LineSeries::new(pts.clone(), style))?,
                Dash::Dashed => {
                    $chart.draw_series(DashedLineSeries::new(pts.clone(), 7, 4, style))?
                }
                Dash::Dotted => {
                    $chart.draw_series(DashedLineSeries::new(pts.clone(), 2, 3, style))?
                }
            };
            // One or two epochs draw no visible line: mark the points.
            if pts.len() <= 2 {
                $chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
            }
        }
    }};
}

/// The outline of a band's min-max area: along the highs, back along the lows.
fn band_area(band: &Band) -> Vec<(f64, f64)> {
    let mut poly: Vec<(f64, f64)> = band
        .x
        .iter()
        .copied()
        .zip(band.hi.iter().copied())
        .collect();
    poly.extend(band.x.iter().copied().zip(band.lo.iter().copied()).rev());
    poly
}

/// A log axis from just below the smallest positive low to above `y1`.
fn log_range(bands: &[&Band], y1: f64) -> (f64, f64) {
    let lo = bands
        .iter()
        .flat_map(|b| b.lo.iter().copied())
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let lo = if lo.is_finite() { lo * 0.8 } else { 1e-6 };
    (lo, y1.max(lo * 10.0) * 1.2)
}

/// Every variant drawn in `panels`, once, in order of first appearance.
fn legend_entries(panels: &[(String, Vec<Band>)]) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for b in panels.iter().flat_map(|p| &p.1) {
        if !out.iter().any(|e| e.0 == b.index) {
            out.push((b.index, b.name.clone()));
        }
    }
    out
}

/// Panels side by side, one per (title, bands), sharing the x label, with the legend
/// below them (outside every plot, however many variants). Returns the plot and
/// legend boxes.
fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[(String, Vec<Band>)],
    x_label: &str,
    y_label: &str,
    log_y: bool,
) -> Result<Vec<PixelBox>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let entries = legend_entries(panels);
    let (w, h) = root.dim_in_pixel();
    let (top, bottom) = root.split_vertically(h.saturating_sub(legend_height(entries.len(), w)));
    let mut boxes = Vec::new();
    let areas = top.split_evenly((1, panels.len().max(1)));
    for ((title, bands), area) in panels.iter().zip(areas) {
        let refs: Vec<&Band> = bands.iter().collect();
        let (x0, x1, y0, y1) = bounds(&refs);
        let mut b = ChartBuilder::on(&area);
        b.caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64);
        if log_y {
            let (lo, hi) = log_range(&refs, y1);
            let mut chart = b.build_cartesian_2d(x0..x1, (lo..hi).log_scale())?;
            draw_bands!(chart, bands, x0, x1, x_label, y_label, &|v: &f64| log_tick(
                *v, lo, hi
            ));
            boxes.push(PixelBox::of(chart.plotting_area(), "plot-box"));
        } else {
            let mut chart = b.build_cartesian_2d(x0..x1, y0..y1)?;
            draw_bands!(chart, bands, x0, x1, x_label, y_label, &|v: &f64| tick(*v));
            boxes.push(PixelBox::of(chart.plotting_area(), "plot-box"));
        }
    }
    boxes.push(draw_legend(&bottom, &entries)?);
    Ok(boxes)
}

/// Line chart(s) with bands and a legend below, as SVG and PNG; returns the SVG.
pub fn line_panels(
    dir: &Path,
    stem: &str,
    panels: &[(String, Vec<Band>)],
    x_label: &str,
    y_label: &str,
    log_y: bool,
) -> Result<String> {
    let w = 460 * panels.len().max(1) as u32;
    let entries = legend_entries(panels);
    let variants: Vec<usize> = entries.iter().map(|e| e.0).collect();
    let h = 360 + legend_height(entries.len(), w);
    render_both!(
        dir,
        stem,
        (w, h),
        &variants,
        draw_panels(panels, x_label, y_label, log_y)
    )
}

/// The label of the category whose centre is at `v` (categories sit at 0.5, 1.5, ...),
/// or "" between categories.
pub(super) fn category_label(v: f64, labels: &[String]) -> String {
    let i = (v - 0.5).round();
    if (v - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
        labels[i as usize].clone()
    } else {
        String::new()
    }
}

/// Bar groups: per group (variant) a name and its bars (label, share or None when not
/// measured).
pub type BarGroups = [(String, Vec<(String, Option<f64>)>)];

/// Horizontal bars, one per (group, bar), each labelled on the axis "variant · fc1"
/// (no legend to cover them); a share not measured is written "n/a" on its row.
fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    groups: &BarGroups,
    x_label: &str,
) -> Result<Vec<PixelBox>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let rows: Vec<(String, usize, Option<f64>)> = groups
        .iter()
        .flat_map(|(name, bars)| {
            bars.iter()
                .enumerate()
                .map(move |(s, (label, v))| (format!("{name} · {label}"), s, *v))
        })
        .collect();
    let n = rows.len().max(1);
    let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let longest = names.iter().map(|l| l.chars().count()).max().unwrap_or(4);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size((longest as u32 * 7 + 16).clamp(60, 360))
        .build_cartesian_2d(0.0..1.0, n as f64..0.0)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| category_label(*y, &names))
        .x_desc(x_label)
        .light_line_style(WHITE.mix(0.0))
        .x_label_formatter(&|v| format!("{:.0}%", v * 100.0))
        .label_style(("sans-serif", 12))
        .draw()?;
    chart.draw_series(rows.iter().enumerate().filter_map(|(i, (_, s, v))| {
        let c = Palette99::pick(s + 1).to_rgba();
        let y = i as f64;
        Some(Rectangle::new(
            [(0.0, y + 0.15), ((*v)?, y + 0.85)],
            c.filled(),
        ))
    }))?;
    chart.draw_series(
        rows.iter()
            .enumerate()
            .filter(|(_, r)| r.2.is_none())
            .map(|(i, _)| Text::new("n/a", (0.01, i as f64 + 0.2), ("sans-serif", 11))),
    )?;
    Ok(vec![PixelBox::of(chart.plotting_area(), "plot-box")])
}

/// Horizontal bar chart as SVG and PNG, as tall as its rows need; returns the SVG.
pub fn bars(
    dir: &Path,
    stem: &str,
    title: &str,
    groups: &BarGroups,
    x_label: &str,
) -> Result<String> {
    let rows: usize = groups.iter().map(|g| g.1.len()).sum();
    let h = 110 + 20 * rows.max(1) as u32;
    render_both!(dir, stem, (900, h), &[], draw_bars(title, groups, x_label))
}

/// A confusion matrix `m` (rows true, columns predicted) as coloured cells with counts.
fn draw_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    m: &[Vec<u32>],
    labels: &[&str],
) -> Result<Vec<PixelBox>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let n = m.len();
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..n as f64, n as f64..0.0)?;
    let names: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * n + 1)
        .y_labels(2 * n + 1)
        .x_label_formatter(&|v| category_label(*v, &names))
        .y_label_formatter(&|v| category_label(*v, &names))
        .x_desc("predicted")
        .y_desc("true")
        .label_style(("sans-serif", 12))
        .draw()?;
    chart.draw_series(heat_cells(m))?;
    let style = TextStyle::from(("sans-serif", 11).into_font()).pos(
        plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ),
    );
    chart.draw_series(m.iter().enumerate().flat_map(|(t, row)| {
        let style = style.clone();
        row.iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(move |(p, &c)| {
                Text::new(
                    c.to_string(),
                    (p as f64 + 0.5, t as f64 + 0.5),
                    style.clone(),
                )
            })
    }))?;
    Ok(Vec::new())
}

/// One cell per (true, predicted) pair, coloured by its share of the true class's
/// images: blue on the diagonal, red off it (scaled 8x so rare mistakes still show).
fn heat_cells(m: &[Vec<u32>]) -> Vec<Rectangle<(f64, f64)>> {
    let mut cells = Vec::new();
    for (t, row) in m.iter().enumerate() {
        let total: u32 = row.iter().sum::<u32>().max(1);
        for (p, &c) in row.iter().enumerate() {
            let share = c as f64 / total as f64;
            let col = if t == p {
                RGBColor(
                    255 - (share * 200.0) as u8,
                    255 - (share * 120.0) as u8,
                    255 - (share * 60.0) as u8,
                )
            } else {
                let v = (share * 8.0).min(1.0);
                RGBColor(255, 255 - (v * 190.0) as u8, 255 - (v * 200.0) as u8)
            };
            cells.push(Rectangle::new(
                [(p as f64, t as f64), (p as f64 + 1.0, t as f64 + 1.0)],
                col.filled(),
            ));
        }
    }
    cells
}

/// Confusion-matrix heat map as SVG and PNG; returns the SVG.
pub fn heatmap(
    dir: &Path,
    stem: &str,
    title: &str,
    m: &[Vec<u32>],
    labels: &[&str],
) -> Result<String> {
    render_both!(dir, stem, (520, 500), &[], draw_heatmap(title, m, labels))
}

fn draw_grid<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    images: &[(&[u8], String)],
    cols: usize,
) -> Result<Vec<PixelBox>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (body, _) = (root.titled(title, ("sans-serif", 16))?, ());
    let cell = 84i32;
    let scale = 2i32;
    for (k, (img, label)) in images.iter().enumerate() {
        let (cx, cy) = (
            (k % cols) as i32 * cell + 12,
            (k / cols) as i32 * (cell + 4) + 4,
        );
        for y in 0..SIDE {
            for x in 0..SIDE {
                let v = 255 - img[y * SIDE + x];
                if v < 250 {
                    let (px, py) = (cx + x as i32 * scale, cy + y as i32 * scale);
                    body.draw(&Rectangle::new(
                        [(px, py), (px + scale, py + scale)],
                        RGBColor(v, v, v).filled(),
                    ))?;
                }
            }
        }
        body.draw(&Rectangle::new(
            [
                (cx - 1, cy - 1),
                (cx + SIDE as i32 * scale + 1, cy + SIDE as i32 * scale + 1),
            ],
            BLACK.mix(0.25),
        ))?;
        body.draw(&Text::new(
            label.clone(),
            (cx, cy + SIDE as i32 * scale + 4),
            ("sans-serif", 12),
        ))?;
    }
    Ok(Vec::new())
}

/// Grid of test images with captions such as "true 4 → 9", as SVG and PNG.
pub fn image_grid(
    dir: &Path,
    stem: &str,
    title: &str,
    data: &Dataset,
    items: &[(usize, String)],
) -> Result<String> {
    let cols = 8usize;
    let rows = items.len().div_ceil(cols).max(1);
    let images: Vec<(&[u8], String)> = items
        .iter()
        .filter(|(i, _)| *i < data.len())
        .map(|(i, l)| (data.image(*i), l.clone()))
        .collect();
    let size = ((cols * 84 + 24) as u32, (rows * 88 + 40) as u32);
    render_both!(dir, stem, size, &[], draw_grid(title, &images, cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(1e-7), "1e-7");
        assert_eq!(tick(0.001), "0.001");
        assert_eq!(tick(90.0), "90");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(0.0), "0");
    }

    /// The y tick labels of a one-panel SVG (numbers left of the plot): (y, label),
    /// each once (plotters may draw the same label twice in the same place).
    fn y_labels(svg: &str) -> Vec<(f64, String)> {
        let attr = |t: &str, name: &str| -> Option<f64> {
            let i = t.find(&format!(" {name}=\""))? + name.len() + 3;
            t[i..].split('"').next()?.parse().ok()
        };
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let (x, y) = (attr(t, "x")?, attr(t, "y")?);
                let label = t.split('>').nth(1)?.split('<').next()?.trim().to_string();
                let number = label.parse::<f64>().is_ok();
                (x < 76.0 && number).then_some((y, label))
            })
            .fold(Vec::new(), |mut out, l| {
                if !out.contains(&l) {
                    out.push(l);
                }
                out
            })
    }

    /// On a log axis of any span, no two tick labels are closer than a line of text.
    #[test]
    fn log_axis_labels_never_overlap() {
        let dir = std::env::temp_dir().join(format!("actlab-logticks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (lo, hi) in [
            (0.5, 1.0),
            (0.05, 1.0),
            (1e-3, 2.0),
            (1e-14, 1.0),
            (0.3, 40.0),
        ] {
            let band = Band {
                name: "v".into(),
                index: 0,
                x: vec![1.0, 2.0],
                mean: vec![lo, hi],
                lo: vec![lo, hi],
                hi: vec![lo, hi],
            };
            let panels = vec![("t".to_string(), vec![band])];
            let svg = line_panels(&dir, "log", &panels, "epoch", "loss", true).unwrap();
            let mut ys: Vec<(f64, String)> = y_labels(&svg);
            assert!(ys.len() >= 2, "{lo}..{hi}: too few labels {ys:?}");
            ys.sort_by(|a, b| a.0.total_cmp(&b.0));
            for w in ys.windows(2) {
                assert!(
                    w[1].0 - w[0].0 >= 12.0,
                    "{lo}..{hi}: {:?} and {:?} crowd",
                    w[0],
                    w[1]
                );
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bands_average_over_seeds() {
        let b = band_from(
            "x",
            0,
            vec![vec![(1.0, 0.9), (2.0, 0.95)], vec![(1.0, 0.8), (2.0, 0.97)]],
        )
        .unwrap();
        assert_eq!(b.x, vec![1.0, 2.0]);
        assert!((b.mean[0] - 0.85).abs() < 1e-12);
        assert_eq!((b.lo[1], b.hi[1]), (0.95, 0.97));
    }

    /// A share not measured for an activation is drawn as "n/a", not as a 0% bar.
    #[test]
    fn unmeasured_bars_say_na() {
        let dir = std::env::temp_dir().join(format!("actlab-bars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let groups = vec![
            ("gelu".to_string(), vec![("fc1".to_string(), None)]),
            ("relu".to_string(), vec![("fc1".to_string(), Some(0.25))]),
        ];
        let svg = bars(&dir, "units", "inactive units", &groups, "share").unwrap();
        let measured = vec![groups[1].clone()];
        let only_measured = bars(&dir, "units2", "inactive units", &measured, "share").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(svg.matches("n/a").count(), 1, "{svg}");
        assert!(!only_measured.contains("n/a"));
    }
}
