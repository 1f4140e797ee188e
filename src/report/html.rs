//! One self-contained report.html: summary table and verdicts, charts as inline SVG,
//! per-digit accuracy, confusion matrices, misclassified images, and the exact
//! command and configs. No scripts, no network.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::charts::{self, by_variant, epoch_bands, grad_bands};
use super::summary::summarise;
use super::table::Table;
use crate::atomic::write_atomic;
use crate::data::Split;
use crate::experiment::{Experiment, ReportKind};
use crate::train::RunRecord;

const CSS: &str = r#"
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; font-size: .85rem; margin: .6rem 0; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: right; white-space: nowrap; }
th { background: #f3f5f7; } td:first-child, th:first-child, td.l { text-align: left; }
.wrap { overflow-x: auto; }
ul.verdicts li { margin: .2rem 0; } .yes { color: #0a7a3e; font-weight: bold; } .no { color: #b3261e; font-weight: bold; }
figure { margin: 1rem 0; } figcaption { color: #555; font-size: .85rem; }
svg { max-width: 100%; height: auto; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem; } .grid figure { margin: 0; }
code, pre { background: #f6f8fa; border-radius: 4px; } pre { padding: .6rem; overflow-x: auto; font-size: .8rem; }
@media print { body { margin: 0; max-width: none; } h2 { page-break-after: avoid; } figure, table { page-break-inside: avoid; } .wrap { overflow: visible; } }
"#;

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn table_html(t: &Table) -> String {
    let mut out = String::from("<div class=\"wrap\"><table><thead><tr>");
    for h in &t.headers {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for r in &t.rows {
        out.push_str("<tr>");
        for (c, a) in r.iter().zip(&t.align) {
            let class = if *a == super::table::Align::Left {
                " class=\"l\""
            } else {
                ""
            };
            out.push_str(&format!("<td{class}>{}</td>", esc(c)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

fn figure(svg: &str, caption: &str) -> String {
    format!(
        "<figure>{svg}<figcaption>{}</figcaption></figure>",
        esc(caption)
    )
}

/// Highlight the yes/NO word of a verdict line.
fn verdict_html(line: &str) -> String {
    let e = esc(line);
    e.replacen(": yes —", ": <span class=\"yes\">yes</span> —", 1)
        .replacen(": NO —", ": <span class=\"no\">NO</span> —", 1)
        .replacen(
            ": reproduces —",
            ": <span class=\"yes\">reproduces</span> —",
            1,
        )
        .replacen(
            ": does NOT reproduce —",
            ": <span class=\"no\">does NOT reproduce</span> —",
            1,
        )
}

/// Build `dir/report.html` (and `dir/charts/*.svg|png`) from an experiment's records.
/// `data` supplies test images for the misclassified-image grids when available.
pub fn write_report(
    dir: &Path,
    exp: &Experiment,
    records: &[RunRecord],
    command: &str,
    data: Option<&Split>,
) -> Result<PathBuf> {
    let charts_dir = dir.join("charts");
    std::fs::create_dir_all(&charts_dir)
        .with_context(|| format!("{}: cannot create", charts_dir.display()))?;
    let summary = summarise(exp, records);
    let mut h = String::new();
    h.push_str(&format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>actlab: {}</title><style>{CSS}</style></head><body>",
        esc(&exp.name)
    ));
    let datasets: std::collections::BTreeSet<String> =
        records.iter().map(|r| r.dataset.name.clone()).collect();
    h.push_str(&format!(
        "<h1>actlab report: {}</h1><p class=\"sub\">{} variant(s) × {} seed(s), {} run(s) on {}; actlab {}</p>",
        esc(&exp.name),
        exp.variants.len(),
        exp.seeds.len(),
        records.len(),
        esc(&datasets.into_iter().collect::<Vec<_>>().join(", ")),
        env!("CARGO_PKG_VERSION")
    ));

    h.push_str("<h2>Results</h2>");
    h.push_str(&table_html(&super::table(&summary)));
    let lines = super::lines(&summary);
    if !lines.is_empty() {
        h.push_str("<ul class=\"verdicts\">");
        for l in &lines {
            h.push_str(&format!("<li>{}</li>", verdict_html(l)));
        }
        h.push_str("</ul>");
    }
    h.push_str("<p>Train accuracy and loss are measured at the end on all training images in evaluation mode (no dropout); \
        gap = train acc − val acc; ep→X% = first epoch whose validation accuracy reached X%.</p>");

    h.push_str("<h2>Learning curves</h2><p>Lines are means over seeds; shaded bands span the lowest and highest seed.</p>");
    let loss_panels = vec![
        (
            "train loss (running mean over each epoch)".to_string(),
            epoch_bands(records, |e| e.train_loss),
        ),
        (
            "validation loss".to_string(),
            epoch_bands(records, |e| e.val_loss),
        ),
    ];
    let svg = charts::line_panels(&charts_dir, "loss", &loss_panels, "epoch", "loss", false)?;
    h.push_str(&figure(&svg, "Training and validation loss per epoch."));
    let acc_panels = vec![
        (
            "train accuracy (running)".to_string(),
            epoch_bands(records, |e| e.train_acc * 100.0),
        ),
        (
            "validation accuracy".to_string(),
            epoch_bands(records, |e| e.val_acc * 100.0),
        ),
    ];
    let svg = charts::line_panels(
        &charts_dir,
        "accuracy",
        &acc_panels,
        "epoch",
        "accuracy (%)",
        false,
    )?;
    h.push_str(&figure(&svg, "Accuracy per epoch."));

    let with_diag: Vec<&RunRecord> = records.iter().filter(|r| r.diagnostics.is_some()).collect();
    if let Some(first) = with_diag.first().and_then(|r| r.diagnostics.as_ref()) {
        h.push_str("<h2>Why: gradients and units</h2>");
        let panels: Vec<(String, Vec<charts::Band>)> = first
            .layers
            .iter()
            .enumerate()
            .map(|(l, name)| {
                (
                    format!("{name} weight-gradient norm"),
                    grad_bands(records, l),
                )
            })
            .collect();
        let svg = charts::line_panels(
            &charts_dir,
            "grad_norm",
            &panels,
            "step",
            "L2 norm (log)",
            true,
        )?;
        h.push_str(&figure(&svg, &format!(
            "Norm of each layer's weight gradient, sampled every {} steps. Vanishing gradients show as lower curves in the early layers.",
            first.grad_every
        )));
        // Final-epoch share of inactive units per hidden layer.
        let mut groups = Vec::new();
        let mut stats_rows = Table::new(&[
            "variant",
            "layer",
            "grad norm",
            "pre-act mean ± std",
            "act mean ± std",
            "saturated",
            "dead",
        ]);
        for (_, name, rs) in by_variant(records) {
            let ds: Vec<&crate::diagnostics::EpochDiag> = rs
                .iter()
                .filter_map(|r| r.diagnostics.as_ref().and_then(|d| d.epochs.last()))
                .collect();
            let Some(d0) = ds.first() else { continue };
            let hidden = d0.dead.len().saturating_sub(1);
            let avg = |f: &dyn Fn(&crate::diagnostics::EpochDiag) -> Option<f64>| -> Option<f64> {
                let v: Vec<f64> = ds.iter().filter_map(|d| f(d)).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            let mut bars = Vec::new();
            for l in 0..d0.grad_norm.len() {
                let sat = avg(&|d| d.saturated.get(l).copied().flatten());
                let dead = avg(&|d| d.dead.get(l).copied().flatten());
                if l < hidden {
                    bars.push((format!("fc{}", l + 1), sat.or(dead).unwrap_or(0.0)));
                }
                let pct = |v: Option<f64>| {
                    v.map(|x| format!("{:.1}%", x * 100.0))
                        .unwrap_or_else(|| "-".into())
                };
                stats_rows.row(vec![
                    name.clone(),
                    format!("fc{}", l + 1),
                    avg(&|d| d.grad_norm.get(l).copied())
                        .map(|v| format!("{v:.4}"))
                        .unwrap_or_default(),
                    format!(
                        "{:.3} ± {:.3}",
                        avg(&|d| d.pre_mean.get(l).copied()).unwrap_or(0.0),
                        avg(&|d| d.pre_std.get(l).copied()).unwrap_or(0.0)
                    ),
                    match (
                        avg(&|d| d.act_mean.get(l).copied().flatten()),
                        avg(&|d| d.act_std.get(l).copied().flatten()),
                    ) {
                        (Some(m), Some(s)) => format!("{m:.3} ± {s:.3}"),
                        _ => "-".into(),
                    },
                    pct(sat),
                    pct(dead),
                ]);
            }
            groups.push((name, bars));
        }
        let svg = charts::bars(
            &charts_dir,
            "units",
            "inactive units in the last epoch (saturated sigmoid/tanh, dead ReLU)",
            &groups,
            "share of units",
        )?;
        h.push_str(&figure(&svg, "Saturated = derivative below 19% of its peak (sigmoid output outside [0.05, 0.95], tanh outside [−0.9, 0.9]), share of unit×image pairs on a held sample of 1,000 training images. Dead = ReLU unit that outputs 0 for every image of that sample."));
        h.push_str("<p>Last-epoch layer statistics (means over seeds):</p>");
        h.push_str(&table_html(&stats_rows));
    }

    let mut acts: Vec<crate::nn::Activation> = Vec::new();
    for v in &exp.variants {
        for a in v.config.activations() {
            if !acts.contains(&a) {
                acts.push(a);
            }
        }
    }
    h.push_str("<h2>The activation functions</h2><div class=\"grid\">");
    for a in acts {
        let i = a.info();
        h.push_str(&format!(
            "<figure>{}<figcaption><b>{}</b>: f(x) = {}; f'(x) = {}; range {}. {}</figcaption></figure>",
            super::activations::svg(a),
            esc(&a.to_string()),
            esc(i.formula),
            esc(i.derivative),
            esc(i.range),
            esc(i.saturation)
        ));
    }
    h.push_str("</div>");

    h.push_str("<h2>Per-digit accuracy and confusions</h2>");
    let groups = by_variant(records);
    let class_names = records
        .first()
        .and_then(|r| r.config.dataset.class_names().into())
        .unwrap_or(crate::data::DatasetName::Mnist.class_names());
    let mut headers = vec!["class".to_string()];
    headers.extend(groups.iter().map(|g| g.1.clone()));
    let hs: Vec<&str> = headers.iter().map(|s| s.as_str()).collect();
    let mut per = Table::new(&hs);
    for (c, cname) in class_names.iter().enumerate() {
        let mut row = vec![cname.to_string()];
        for (_, _, rs) in &groups {
            let v: Vec<f64> = rs
                .iter()
                .filter_map(|r| {
                    r.diagnostics
                        .as_ref()
                        .and_then(|d| d.per_class_acc.get(c).copied())
                })
                .collect();
            row.push(if v.is_empty() {
                "-".into()
            } else {
                format!("{:.2}%", v.iter().sum::<f64>() / v.len() as f64 * 100.0)
            });
        }
        per.row(row);
    }
    h.push_str("<p>Validation accuracy per class (mean over seeds):</p>");
    h.push_str(&table_html(&per));
    h.push_str("<div class=\"grid\">");
    for (i, name, rs) in &groups {
        let Some(r) = rs.iter().find(|r| r.val_confusion.is_some()) else {
            continue;
        };
        let Some(m) = &r.val_confusion else { continue };
        let svg = charts::heatmap(
            &charts_dir,
            &format!("confusion-{i}"),
            &format!("{name} (seed {})", r.config.seed),
            m,
            &class_names,
        )?;
        let worst = r
            .diagnostics
            .as_ref()
            .map(|d| {
                d.most_confused
                    .iter()
                    .take(3)
                    .map(|(t, p, n)| format!("{} → {}: {n}", class_names[*t], class_names[*p]))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        h.push_str(&figure(
            &svg,
            &format!("Confusion matrix, rows true, columns predicted. Most confused: {worst}."),
        ));
    }
    h.push_str("</div>");
    match data {
        Some(split) => {
            for (i, name, rs) in &groups {
                let Some(d) = rs.iter().find_map(|r| r.diagnostics.as_ref().filter(|d| !d.mistakes.is_empty())) else { continue };
                let items: Vec<(usize, String)> = d
                    .mistakes
                    .iter()
                    .map(|&(idx, t, p)| (idx, format!("{}→{} #{idx}", class_names[t], class_names[p])))
                    .collect();
                let svg = charts::image_grid(&charts_dir, &format!("mistakes-{i}"), &format!("{name}: misclassified test images (true→predicted)"), &split.test, &items)?;
                h.push_str(&figure(&svg, "Test images from the most confused pairs, with their test-set index."));
            }
        }
        None => h.push_str("<p>(Misclassified-image grids need the dataset: run <code>actlab report DIR --data-dir ...</code>.)</p>"),
    }

    h.push_str("<h2>How this was produced</h2>");
    if !command.is_empty() {
        h.push_str(&format!("<p>Command:</p><pre>{}</pre>", esc(command)));
    }
    for v in &exp.variants {
        let json = serde_json::to_string_pretty(&v.config).unwrap_or_default();
        h.push_str(&format!(
            "<details><summary>config of <b>{}</b></summary><pre>{}</pre></details>",
            esc(&v.name),
            esc(&json)
        ));
    }
    h.push_str(&format!(
        "<p>Seeds: {:?}. Charts are also saved as SVG and PNG in <code>charts/</code>.</p>",
        exp.seeds
    ));
    h.push_str("</body></html>\n");
    let path = dir.join("report.html");
    write_atomic(&path, h.as_bytes())
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(path)
}

/// Read an output folder: an experiment (experiment.json + runs/) or a single
/// `actlab train` run (record.json), as an experiment with its records.
pub fn load_dir(dir: &Path) -> Result<(Experiment, Vec<RunRecord>, String)> {
    if dir.join("experiment.json").exists() {
        let (exp, records) = crate::experiment::jobs::collect(&[dir.to_path_buf()])?;
        return Ok((exp, records, String::new()));
    }
    let path = dir.join("record.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: neither experiment.json nor record.json; pass a folder written by actlab train/compare/exercise/run",
            dir.display()
        )
    })?;
    let r: RunRecord = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a run record", path.display()))?;
    let exp = Experiment {
        name: r.label.clone(),
        variants: vec![crate::experiment::Variant {
            name: r.variant.clone(),
            config: r.config.clone(),
        }],
        seeds: vec![r.config.seed],
        report: ReportKind::Compare,
    };
    Ok((exp, vec![r], String::new()))
}
