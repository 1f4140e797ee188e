//! The report's tuning section: mean validation accuracy of every variant at every
//! grid point, as a heat map, with the point each variant kept outlined.

use std::collections::BTreeMap;

use super::markup::esc;
use super::summary::ExperimentSummary;
use crate::experiment::Experiment;

/// A background from pale to deep green as `t` goes from 0 to 1.
fn shade(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(247.0, 26.0),
        mix(252.0, 127.0),
        mix(245.0, 55.0)
    )
}

/// The heat map section ("" for a plain comparison).
pub fn section(exp: &Experiment, s: &ExperimentSummary) -> String {
    if s.grid.is_empty() {
        return String::new();
    }
    // Rows: tuned variants in experiment order; columns: grid points in grid order.
    let mut rows: Vec<String> = Vec::new();
    let mut cols: Vec<String> = Vec::new();
    let mut cells: BTreeMap<(usize, usize), (f64, usize)> = BTreeMap::new();
    for g in &s.grid {
        let Some(point) = exp.variants.get(g.index).and_then(|v| v.tune.as_ref()) else {
            continue;
        };
        let r = position(&mut rows, &point.of);
        let c = position(&mut cols, &point.describe());
        if let Some(acc) = g.val_acc {
            cells.insert((r, c), (acc.mean, g.index));
        }
    }
    let accs = cells.values().map(|v| v.0);
    let lo = accs.clone().fold(f64::INFINITY, f64::min);
    let hi = accs.fold(f64::NEG_INFINITY, f64::max);
    let chosen: Vec<usize> = s.variants.iter().map(|v| v.index).collect();
    let mut h = String::from("<h2>Tuning grid</h2><p>Mean validation accuracy (held-out training images) of each variant at each grid point, over its seeds; darker is better. The outlined cell is the point each variant kept: the test set plays no part in the choice.</p><div class=\"wrap\"><table class=\"heat\"><thead><tr><th>variant</th>");
    for c in &cols {
        h.push_str(&format!("<th>{}</th>", esc(c)));
    }
    h.push_str("</tr></thead><tbody>");
    for (r, name) in rows.iter().enumerate() {
        h.push_str(&format!("<tr><td>{}</td>", esc(name)));
        for c in 0..cols.len() {
            h.push_str(&match cells.get(&(r, c)) {
                Some(&(acc, index)) => {
                    let t = if hi > lo { (acc - lo) / (hi - lo) } else { 1.0 };
                    let ink = if t > 0.6 { "#fff" } else { "#222" };
                    let outline = if chosen.contains(&index) {
                        "outline:3px solid #1f3fbf;outline-offset:-3px;font-weight:bold;"
                    } else {
                        ""
                    };
                    format!(
                        "<td style=\"background:{};color:{ink};{outline}\">{:.2}%</td>",
                        shade(t),
                        acc * 100.0
                    )
                }
                None => "<td>-</td>".into(),
            });
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></div>");
    h
}

/// The index of `name` in `list`, appending it if new.
fn position(list: &mut Vec<String>, name: &str) -> usize {
    list.iter().position(|n| n == name).unwrap_or_else(|| {
        list.push(name.to_string());
        list.len() - 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shades_run_from_pale_to_deep() {
        assert_eq!(shade(0.0), "#f7fcf5");
        assert_eq!(shade(1.0), "#1a7f37");
        assert_eq!(shade(2.0), shade(1.0));
    }
}
