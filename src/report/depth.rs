//! The report's "gradient flow by depth" section: for variants that differ only in the
//! number of hidden layers, each layer's weight-gradient norm in the first epoch (one
//! line per depth) and the final accuracy against depth.
//!
//! Vanishing gradients show as a first layer whose gradient is orders of magnitude
//! below the last layer's; the ratio fc1 / fcL is tabled per variant and depth.

use std::collections::BTreeMap;
use std::path::Path;

use super::charts::{self, Band};
use super::table::Table;
use super::ReportError;
use crate::config::TrainConfig;
use crate::store::records::RunRecord;

/// Runs of one family (same settings but depth), by depth.
struct Family<'a> {
    name: String,
    by_depth: BTreeMap<usize, Vec<&'a RunRecord>>,
}

/// What identifies a family: the config without its depth and seed.
fn family_key(c: &TrainConfig) -> String {
    let mut widths = c.hidden.clone();
    widths.sort_unstable();
    widths.dedup();
    let acts = if c.activation.len() == 1 {
        c.activation.clone()
    } else {
        Vec::new()
    };
    let key = TrainConfig {
        hidden: widths,
        activation: acts,
        seed: 0,
        ..c.clone()
    };
    serde_json::to_string(&key).unwrap_or_default()
}

/// A family's row name: activation, init and norm ("sigmoid (torch init, batch norm)");
/// when that is already `taken` by a family differing in another option, its number too.
fn family_name(c: &TrainConfig, number: usize, taken: impl Fn(&str) -> bool) -> String {
    let norm = match c.norm {
        crate::nn::spec::Norm::None => String::new(),
        n => format!(", {n} norm"),
    };
    let name = format!("{} ({} init{norm})", c.activation[0], c.init);
    if taken(&name) {
        format!("{name} #{number}")
    } else {
        name
    }
}

/// Families with at least two depths, in order of first appearance.
fn families(records: &[RunRecord]) -> Vec<Family<'_>> {
    let mut out: Vec<(String, Family<'_>)> = Vec::new();
    for r in records.iter().filter(|r| r.config.activation.len() == 1) {
        let key = family_key(&r.config);
        let i = match out.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let fam = Family {
                    name: family_name(&r.config, out.len() + 1, |n| {
                        out.iter().any(|(_, f)| f.name == n)
                    }),
                    by_depth: BTreeMap::new(),
                };
                out.push((key, fam));
                out.len() - 1
            }
        };
        let depth = r.config.hidden.len();
        out[i].1.by_depth.entry(depth).or_default().push(r);
    }
    out.into_iter()
        .map(|(_, f)| f)
        .filter(|f| f.by_depth.len() >= 2)
        .collect()
}

/// Mean over runs of each layer's first-epoch gradient norm (None where unmeasured).
fn first_epoch_norms(runs: &[&RunRecord]) -> Vec<Option<f64>> {
    let per_run: Vec<&Vec<Option<f64>>> = runs
        .iter()
        .filter(|r| r.diverged.is_none())
        .filter_map(|r| r.diagnostics.as_ref()?.epochs.first())
        .map(|e| &e.grad_norm)
        .collect();
    let layers = per_run.iter().map(|v| v.len()).max().unwrap_or(0);
    (0..layers)
        .map(|l| {
            let v: Vec<f64> = per_run
                .iter()
                .filter_map(|n| n.get(l).copied().flatten())
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        })
        .collect()
}

/// Final test accuracies of runs that finished.
fn accuracies(runs: &[&RunRecord]) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| r.final_test.as_ref())
        .map(|m| m.acc * 100.0)
        .collect()
}

/// One band (mean, min, max) from a column of values at `x`.
fn point(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((mean, lo, hi))
}

fn band(name: String, index: usize, pts: Vec<(f64, (f64, f64, f64))>) -> Band {
    Band {
        name,
        index,
        x: pts.iter().map(|p| p.0).collect(),
        mean: pts.iter().map(|p| p.1 .0).collect(),
        lo: pts.iter().map(|p| p.1 .1).collect(),
        hi: pts.iter().map(|p| p.1 .2).collect(),
    }
}

/// The gradient-norm panel of one family: a line per depth over the layer index.
fn norm_bands(f: &Family<'_>) -> Vec<Band> {
    f.by_depth
        .iter()
        .enumerate()
        .map(|(i, (depth, runs))| {
            let pts = first_epoch_norms(runs)
                .into_iter()
                .enumerate()
                .filter_map(|(l, n)| {
                    Some(((l + 1) as f64, n.filter(|v| *v > 0.0).map(|v| (v, v, v))?))
                })
                .collect();
            band(format!("{depth} hidden"), i, pts)
        })
        .collect()
}

/// fc1 / fcL gradient-norm ratio and final accuracy, per family and depth.
fn ratio_table(fams: &[Family<'_>]) -> Table {
    let depths: std::collections::BTreeSet<usize> = fams
        .iter()
        .flat_map(|f| f.by_depth.keys().copied())
        .collect();
    let mut head = vec!["variant".to_string()];
    for d in &depths {
        head.push(format!("fc1/last, {d} hidden"));
    }
    for d in &depths {
        head.push(format!("acc, {d} hidden"));
    }
    let refs: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut t = Table::new(&refs);
    t.align[0] = super::table::Align::Left;
    for f in fams {
        let mut row = vec![f.name.clone()];
        for d in &depths {
            let n = f
                .by_depth
                .get(d)
                .map(|r| first_epoch_norms(r))
                .unwrap_or_default();
            row.push(
                match (n.first().copied().flatten(), n.last().copied().flatten()) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2e}", a / b),
                    _ => "-".into(),
                },
            );
        }
        for d in &depths {
            let acc = f.by_depth.get(d).map(|r| accuracies(r)).unwrap_or_default();
            row.push(
                point(&acc)
                    .map(|p| format!("{:.2}%", p.0))
                    .unwrap_or("-".into()),
            );
        }
        t.row(row);
    }
    t
}

/// The section as HTML ("" when no variants differ only in depth).
pub fn section(charts_dir: &Path, records: &[RunRecord]) -> Result<String, ReportError> {
    let fams = families(records);
    if fams.is_empty() {
        return Ok(String::new());
    }
    let mut h = String::from("<h2>Gradient flow by depth</h2><p>Each layer's weight-gradient norm, averaged over the first epoch's samples and over seeds, one line per depth (layer 1 is fc1, the last is the output layer). A first layer far below the last is a vanishing gradient.</p><div class=\"grid\">");
    for (i, f) in fams.iter().enumerate() {
        let panels = vec![(f.name.clone(), norm_bands(f))];
        let stem = format!("depth_grad_{i}");
        let svg = charts::line_panels(
            charts_dir,
            &stem,
            &panels,
            "layer",
            "gradient norm (log)",
            true,
        )?;
        h.push_str(&super::markup::figure(
            &svg,
            &format!("{}: first-epoch gradient norm per layer", f.name),
        ));
    }
    h.push_str("</div>");
    let acc: Vec<Band> = fams
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let pts = f
                .by_depth
                .iter()
                .filter_map(|(d, runs)| Some((*d as f64, point(&accuracies(runs))?)))
                .collect();
            band(f.name.clone(), i, pts)
        })
        .collect();
    let panels = vec![("final test accuracy by depth".to_string(), acc)];
    let svg = charts::line_panels(
        charts_dir,
        "depth_accuracy",
        &panels,
        "hidden layers",
        "accuracy (%)",
        false,
    )?;
    h.push_str(&super::markup::figure(
        &svg,
        "Final test accuracy against the number of hidden layers (mean, band = lowest to highest seed).",
    ));
    h.push_str("<p>Ratio of the first layer's to the last layer's first-epoch gradient norm, and final test accuracy (means over seeds):</p>");
    h.push_str(&super::markup::table_html(&ratio_table(&fams)));
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_group_by_everything_but_depth() {
        let a = TrainConfig {
            hidden: vec![64, 64],
            ..TrainConfig::default()
        };
        let b = TrainConfig {
            hidden: vec![64; 8],
            seed: 3,
            ..a.clone()
        };
        let c = TrainConfig {
            init: crate::nn::Init::He,
            ..a.clone()
        };
        assert_eq!(family_key(&a), family_key(&b));
        assert_ne!(family_key(&a), family_key(&c));
    }

    #[test]
    fn family_names_tell_norms_and_other_differences_apart() {
        let plain = TrainConfig::default();
        let batch = TrainConfig {
            norm: crate::nn::spec::Norm::Batch,
            ..plain.clone()
        };
        assert_eq!(family_name(&plain, 1, |_| false), "relu (torch init)");
        assert_eq!(
            family_name(&batch, 2, |_| false),
            "relu (torch init, batch norm)"
        );
        assert_eq!(
            family_name(&plain, 3, |n| n == "relu (torch init)"),
            "relu (torch init) #3"
        );
    }
}
