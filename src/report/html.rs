//! One self-contained report.html: summary table and verdicts, charts as inline SVG,
//! per-digit accuracy, confusion matrices, misclassified images, and the exact
//! command and configs. No network; one small inline script lets a reader show and
//! hide variants in the learning curves (the page reads the same without it).

use std::path::{Path, PathBuf};

use super::charts::{self, by_variant, epoch_bands, grad_bands};
use super::markup::{esc, figure, table_html};
use super::summary::{layer_stats, per_class_acc, ExperimentSummary};
use super::table::Table;
use super::ReportError;
use crate::data::Split;
use crate::experiment::Experiment;
use crate::store::records::RunRecord;
use crate::store::{create_dir, write_file};

type Result<T> = std::result::Result<T, ReportError>;

const CSS: &str = r#"
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; font-size: .85rem; margin: .6rem 0; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: right; white-space: nowrap; }
th { background: #f3f5f7; white-space: normal; min-width: 3.5rem; vertical-align: bottom; } td:first-child, th:first-child, td.l { text-align: left; }
td.l { white-space: normal; min-width: 8rem; }
.wrap { overflow-x: auto; max-width: 100%; }
.s0, .s1 { position: sticky; z-index: 1; background: #fff; } th.s0, th.s1 { background: #f3f5f7; }
.s0 { left: 0; } table.st2 .s0 { min-width: 2.6rem; max-width: 2.6rem; width: 2.6rem; box-sizing: border-box; } table.st2 .s1 { left: 2.6rem; box-shadow: 2px 0 0 #ddd; }
table.st1 .s0 { box-shadow: 2px 0 0 #ddd; }
.toggles { display: flex; flex-wrap: wrap; gap: .2rem .8rem; font-size: .8rem; margin: .4rem 0; } .toggles label { white-space: nowrap; cursor: pointer; }
.toggles i { display: inline-block; width: 1.4rem; height: 0; border-top: 3px solid; vertical-align: middle; margin-right: .25rem; }
ul.verdicts li { margin: .2rem 0; } .yes { color: #0a7a3e; font-weight: bold; } .no { color: #b3261e; font-weight: bold; } .ns { color: #8a5a00; font-weight: bold; }
figure { margin: 1rem 0; } figcaption { color: #555; font-size: .85rem; }
svg { max-width: 100%; height: auto; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem; } .grid figure { margin: 0; }
code, pre { background: #f6f8fa; border-radius: 4px; } pre { padding: .6rem; overflow-x: auto; font-size: .8rem; }
@media print { body { margin: 0; max-width: none; } h2 { page-break-after: avoid; } figure, table { page-break-inside: avoid; } .wrap { overflow: visible; } }
"#;

/// Highlight the yes/NO word of a verdict line.
fn verdict_html(line: &str) -> String {
    let e = esc(line);
    e.replacen(": yes —", ": <span class=\"yes\">yes</span> —", 1)
        .replacen(": NO —", ": <span class=\"no\">NO</span> —", 1)
        .replacen(": PASS —", ": <span class=\"yes\">PASS</span> —", 1)
        .replacen(": FAIL —", ": <span class=\"no\">FAIL</span> —", 1)
        .replacen(
            ": not shown —",
            ": <span class=\"ns\">not shown</span> —",
            1,
        )
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

/// What a report is made of: an experiment, its summary and records, and where the
/// charts go. `data` supplies test images for the misclassified-image grids.
pub struct Page<'a> {
    /// The experiment's spec.
    pub exp: &'a Experiment,
    /// Its summary, as printed and written beside the report.
    pub summary: &'a ExperimentSummary,
    /// Its run records.
    pub records: &'a [RunRecord],
    /// The command line that produced it ("" if unknown).
    pub command: &'a str,
    /// The dataset, for image grids.
    pub data: Option<&'a Split>,
}

/// Build `dir/report.html` (and `dir/charts/*.svg|png`) from `page`.
pub fn write_report(dir: &Path, page: &Page<'_>) -> Result<PathBuf> {
    let charts_dir = dir.join("charts");
    create_dir(&charts_dir)?;
    let mut h = header(page);
    h.push_str(&results(page.summary));
    h.push_str(&forest_figure(&charts_dir, page.summary)?);
    h.push_str(&super::tuning::section(page.exp, page.summary));
    h.push_str(&curves(&charts_dir, page.records)?);
    h.push_str(&diagnostics(&charts_dir, page.records)?);
    h.push_str(&super::depth::section(&charts_dir, page.records)?);
    h.push_str(&activations(page.exp));
    h.push_str(&per_class(page.records));
    h.push_str(&confusions(&charts_dir, page.records)?);
    h.push_str(&mistakes(&charts_dir, page.records, page.data)?);
    h.push_str(&provenance(page.exp, page.command));
    h.push_str(&format!("<script>{TOGGLE_SCRIPT}</script></body></html>\n"));
    let path = dir.join("report.html");
    write_file(&path, h.as_bytes())?;
    Ok(path)
}

/// The document head and title lines.
fn header(page: &Page<'_>) -> String {
    let exp = page.exp;
    let datasets: std::collections::BTreeSet<String> = page
        .records
        .iter()
        .map(|r| r.dataset.name.clone())
        .collect();
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>actlab: {}</title><style>{CSS}</style></head><body>\
         <h1>actlab report: {}</h1><p class=\"sub\">{} variant(s) × {} seed(s), {} run(s) on {}; actlab {}</p>",
        esc(&exp.name),
        esc(&exp.name),
        exp.variants.len(),
        exp.seeds.len(),
        page.records.len(),
        esc(&datasets.into_iter().collect::<Vec<_>>().join(", ")),
        env!("CARGO_PKG_VERSION")
    )
}

/// The summary table with its verdicts and notes.
fn results(summary: &ExperimentSummary) -> String {
    let mut h = String::from("<h2>Results</h2>");
    h.push_str(&table_html(&super::table(summary)));
    let lines = super::lines(summary);
    if !lines.is_empty() {
        h.push_str("<ul class=\"verdicts\">");
        for l in &lines {
            h.push_str(&format!("<li>{}</li>", verdict_html(l)));
        }
        h.push_str("</ul>");
    }
    let on = summary.compared_name();
    h.push_str(&format!("<p>Train accuracy and loss are measured at the end on all training images in evaluation mode (no dropout); \
        gap = train acc − {on} acc; ep→X% = first epoch whose {on} accuracy reached X%.</p>"));
    h
}

/// Checkboxes (built by the script, so a page without scripts shows none) that show
/// and hide a variant's marks (`class="v<i>"`) in every chart of `.curves`.
const TOGGLE_SCRIPT: &str = r#"
document.querySelectorAll('.toggles').forEach(function (box) {
  JSON.parse(box.dataset.variants).forEach(function (v) {
    var label = document.createElement('label');
    var input = document.createElement('input');
    input.type = 'checkbox'; input.checked = true;
    input.addEventListener('change', function () {
      document.querySelectorAll('.curves svg .v' + v[0]).forEach(function (el) {
        el.style.display = input.checked ? '' : 'none';
      });
    });
    var swatch = document.createElement('i'); swatch.style.borderColor = v[2];
    label.append(input, swatch, v[1]);
    box.append(label);
  });
});
"#;

/// The ranked forest plot of every variant's accuracy.
fn forest_figure(charts_dir: &Path, summary: &super::summary::ExperimentSummary) -> Result<String> {
    let rows = super::forest::rows(summary);
    // Variants are ranked on the test set (see `VariantSummary::rank_acc`).
    let ranked_on = "test";
    let svg = super::forest::forest(charts_dir, &rows, &format!("{ranked_on} accuracy (%)"))?;
    let k = rows.len();
    Ok(figure(&svg, &format!(
        "Mean {ranked_on} accuracy per variant over seeds, best first (marked); bars are t-intervals of the mean at {:.2}% each so that all {k} hold together at 95% (Bonferroni), cut to [0, 100]. Wide bars mean few seeds: run more with --seeds.",
        100.0 - 5.0 / k.max(1) as f64
    )))
}

/// Loss and accuracy per epoch, mean with a min-max band over seeds.
fn curves(charts_dir: &Path, records: &[RunRecord]) -> Result<String> {
    let mut h = String::from("<h2>Learning curves</h2><p>Lines are means over seeds; shaded bands span the lowest and highest seed.</p><div class=\"curves\">");
    let variants: Vec<(usize, String, String)> = by_variant(records)
        .into_iter()
        .map(|(i, name, _)| (i, name, super::chart_style::hex(charts::color(i))))
        .collect();
    let json = serde_json::to_string(&variants).unwrap_or_else(|_| "[]".into());
    h.push_str(&format!(
        "<div class=\"toggles\" data-variants=\"{}\"></div>",
        esc(&json)
    ));
    let mut loss_panels = vec![(
        "train loss (running mean over each epoch)".to_string(),
        epoch_bands(records, |e| e.train.loss),
    )];
    // A held-out validation split has curves of its own, beside the test set's.
    let held_out = records
        .iter()
        .any(|r| r.history.iter().any(|e| e.val.is_some()));
    if held_out {
        let val = epoch_bands(records, |e| e.val.map_or(f64::NAN, |m| m.loss));
        loss_panels.push(("validation loss (held out)".to_string(), val));
    }
    loss_panels.push((
        "test loss".to_string(),
        epoch_bands(records, |e| e.test.loss),
    ));
    let svg = charts::line_panels(charts_dir, "loss", &loss_panels, "epoch", "loss", false)?;
    h.push_str(&figure(&svg, "Training and test loss per epoch."));
    let mut acc_panels = vec![(
        "train accuracy (running)".to_string(),
        epoch_bands(records, |e| e.train.acc * 100.0),
    )];
    if held_out {
        let val = epoch_bands(records, |e| e.val.map_or(f64::NAN, |m| m.acc * 100.0));
        acc_panels.push(("validation accuracy (held out)".to_string(), val));
    }
    acc_panels.push((
        "test accuracy".to_string(),
        epoch_bands(records, |e| e.test.acc * 100.0),
    ));
    let svg = charts::line_panels(
        charts_dir,
        "accuracy",
        &acc_panels,
        "epoch",
        "accuracy (%)",
        false,
    )?;
    h.push_str(&figure(&svg, "Accuracy per epoch."));
    h.push_str("</div>");
    Ok(h)
}

/// Gradient norms, inactive units and last-epoch layer statistics ("" without diagnostics).
fn diagnostics(charts_dir: &Path, records: &[RunRecord]) -> Result<String> {
    let Some(first) = records.iter().find_map(|r| r.diagnostics.as_ref()) else {
        return Ok(String::new());
    };
    let mut h = String::from("<h2>Why: gradients and units</h2>");
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
        charts_dir,
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
    let (groups, stats_rows) = unit_tables(records);
    let svg = charts::bars(
        charts_dir,
        "units",
        "inactive units in the last epoch (saturated sigmoid/tanh, dead ReLU)",
        &groups,
        "share of units",
    )?;
    h.push_str(&figure(&svg, "Saturated = derivative below 19% of its peak (sigmoid output outside [0.05, 0.95], tanh outside [−0.9, 0.9]), share of unit×image pairs on a held sample of 1,000 training images. Dead = ReLU unit that outputs 0 for every image of that sample."));
    h.push_str("<p>Last-epoch layer statistics (means over seeds):</p>");
    h.push_str(&table_html(&stats_rows));
    Ok(h)
}

/// Bars of inactive units per hidden layer, and the layer statistics table.
type UnitBars = Vec<(String, Vec<(String, Option<f64>)>)>;

/// The inactive-unit bars per variant and the table of last-epoch layer statistics.
fn unit_tables(records: &[RunRecord]) -> (UnitBars, Table) {
    let mut groups = Vec::new();
    let mut rows = Table::new(&[
        "variant",
        "layer",
        "grad norm",
        "pre-act mean ± std",
        "act mean ± std",
        "saturated",
        "dead",
    ]);
    let share = |v: Option<f64>| {
        v.map(|x| format!("{:.1}%", x * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    for (_, name, rs) in by_variant(records) {
        let stats = layer_stats(&rs);
        if stats.is_empty() {
            continue;
        }
        let mut bars = Vec::new();
        for s in &stats {
            let fc = s.name.clone();
            if s.hidden {
                // Not measured for this activation (neither saturating nor able to die):
                // the chart says n/a instead of drawing 0%.
                bars.push((fc.clone(), s.saturated.or(s.dead)));
            }
            rows.row(vec![
                name.clone(),
                fc,
                s.grad_norm.map(|v| super::num(v, 4)).unwrap_or_default(),
                format!("{:.3} ± {:.3}", s.pre.0, s.pre.1),
                s.act
                    .map(|(m, sd)| format!("{m:.3} ± {sd:.3}"))
                    .unwrap_or_else(|| "-".into()),
                share(s.saturated),
                share(s.dead),
            ]);
        }
        groups.push((name, bars));
    }
    (groups, rows)
}

/// Every activation the experiment uses, with its formula and a plot.
fn activations(exp: &Experiment) -> String {
    let mut acts: Vec<crate::nn::Activation> = Vec::new();
    for v in &exp.variants {
        for a in v.config.activations() {
            if !acts.contains(&a) {
                acts.push(a);
            }
        }
    }
    let mut h = String::from("<h2>The activation functions</h2><div class=\"grid\">");
    for a in acts {
        let i = a.info();
        h.push_str(&format!(
            "<figure>{}<figcaption><b>{}</b>: f(x) = {}; f'(x) = {}; range {}. {}</figcaption></figure>",
            super::activations::svg(&a),
            esc(&a.to_string()),
            esc(i.formula),
            esc(i.derivative),
            esc(i.range),
            esc(i.saturation)
        ));
    }
    h.push_str("</div>");
    h
}

/// The dataset's class names (MNIST's digits if there are no records).
fn class_names(records: &[RunRecord]) -> Vec<String> {
    let cfg = records
        .first()
        .map(|r| r.config.clone())
        .unwrap_or_default();
    cfg.dataset.class_names(cfg.shape().classes)
}

/// Validation accuracy per class and variant.
fn per_class(records: &[RunRecord]) -> String {
    let groups = by_variant(records);
    let names = class_names(records);
    let mut h = String::from("<h2>Per-class accuracy and confusions</h2>");
    if !crate::eval::shows_confusion(names.len()) {
        // A row per class and a K x K chart per variant would bury the page.
        h.push_str(&format!(
            "<p>{} classes: the per-class table and confusion matrices are left out above {} classes; each record's <code>diagnostics.per_class_acc</code> and <code>most_confused</code> hold them.</p>",
            names.len(),
            crate::eval::CONFUSION_MAX_CLASSES
        ));
        return h;
    }
    let mut headers = vec!["class".to_string()];
    headers.extend(groups.iter().map(|g| g.1.clone()));
    let hs: Vec<&str> = headers.iter().map(|s| s.as_str()).collect();
    let mut per = Table::new(&hs);
    let accs: Vec<Vec<Option<f64>>> = groups
        .iter()
        .map(|(_, _, rs)| per_class_acc(rs, names.len()))
        .collect();
    for (c, cname) in names.iter().enumerate() {
        let mut row = vec![cname.to_string()];
        for a in &accs {
            row.push(match a[c] {
                None => "-".into(),
                Some(v) => format!("{:.2}%", v * 100.0),
            });
        }
        per.row(row);
    }
    h.push_str("<p>Test accuracy per class (mean over seeds):</p>");
    h.push_str(&table_html(&per));
    h
}

/// One confusion matrix per variant (its first seed with one).
fn confusions(charts_dir: &Path, records: &[RunRecord]) -> Result<String> {
    let names = class_names(records);
    let mut h = String::from("<div class=\"grid\">");
    for (i, name, rs) in &by_variant(records) {
        let Some((r, m)) = rs
            .iter()
            .find_map(|r| r.test_confusion.as_ref().map(|m| (r, m)))
        else {
            continue;
        };
        let svg = charts::heatmap(
            charts_dir,
            &format!("confusion-{i}"),
            &format!("{name} (seed {})", r.config.seed),
            m,
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        let worst = r
            .diagnostics
            .as_ref()
            .map(|d| {
                d.most_confused
                    .iter()
                    .take(3)
                    .map(|(t, p, n)| format!("{} → {}: {n}", names[*t], names[*p]))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        h.push_str(&figure(
            &svg,
            &format!("Confusion matrix on the test set, rows true, columns predicted. Most confused: {worst}."),
        ));
    }
    h.push_str("</div>");
    Ok(h)
}

/// Grids of misclassified test images per variant, when the dataset is at hand.
fn mistakes(charts_dir: &Path, records: &[RunRecord], data: Option<&Split>) -> Result<String> {
    let Some(split) = data else {
        return Ok("<p>(Misclassified-image grids need the dataset: run <code>actlab report DIR --data-dir ...</code>.)</p>".into());
    };
    // The grids draw 28x28 byte images; other data (features, 8x8 digits) has none.
    if split.shape.image != Some([crate::data::SIDE; 2]) || !split.shape.bytes {
        return Ok(String::new());
    }
    let names = class_names(records);
    let mut h = String::new();
    for (i, name, rs) in &by_variant(records) {
        let Some(d) = rs
            .iter()
            .find_map(|r| r.diagnostics.as_ref().filter(|d| !d.mistakes.is_empty()))
        else {
            continue;
        };
        let items: Vec<(usize, String)> = d
            .mistakes
            .iter()
            .map(|&(idx, t, p)| (idx, format!("{}→{} #{idx}", names[t], names[p])))
            .collect();
        let title = format!("{name}: misclassified test images (true→predicted)");
        let svg = charts::image_grid(
            charts_dir,
            &format!("mistakes-{i}"),
            &title,
            &split.test,
            &items,
        )?;
        h.push_str(&figure(
            &svg,
            "Test images from the most confused pairs, with their test-set index.",
        ));
    }
    Ok(h)
}

/// The command, every variant's config and the seeds.
fn provenance(exp: &Experiment, command: &str) -> String {
    let mut h = String::from("<h2>How this was produced</h2>");
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
    h
}
