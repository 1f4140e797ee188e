//! Aggregating run records per variant over seeds, and the ranked comparison table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::table::{csv_field, Table};
use crate::experiment::stats::{difference_at, Difference, Summary};
use crate::experiment::{Experiment, ReportKind};
use crate::store::records::{compared_on, RunRecord};

/// How many seeds reached an accuracy, and the mean epoch among those that did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochsTo {
    /// Target accuracy (0-1) on the split runs are compared on (see [`compared_on`]).
    pub target: f64,
    /// Runs that reached it.
    pub reached: usize,
    /// Runs in all.
    pub runs: usize,
    /// Mean first epoch reaching it, over the runs that did.
    pub mean_epoch: Option<f64>,
}

impl EpochsTo {
    fn of(records: &[&RunRecord], target: f64) -> Self {
        let hits: Vec<f64> = records
            .iter()
            .filter_map(|r| r.epochs_to(target))
            .map(|e| e as f64)
            .collect();
        EpochsTo {
            target,
            reached: hits.len(),
            runs: records.len(),
            mean_epoch: Summary::of(&hits).map(|s| s.mean),
        }
    }

    /// "2", "2.3", "3 (2/3)" when not every run reached it, "-" when none did.
    pub fn cell(&self) -> String {
        match self.mean_epoch {
            None => "-".into(),
            Some(m) => {
                let v = if (m - m.round()).abs() < 1e-9 {
                    format!("{m:.0}")
                } else {
                    format!("{m:.1}")
                };
                if self.reached < self.runs {
                    format!("{v} ({}/{})", self.reached, self.runs)
                } else {
                    v
                }
            }
        }
    }
}

/// One variant's results over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantSummary {
    /// Variant name.
    pub name: String,
    /// Config label.
    pub label: String,
    /// Position in the experiment.
    pub index: usize,
    /// Seeds that finished (diverged ones included).
    pub seeds: Vec<u64>,
    /// Seeds whose run diverged (excluded from the metrics).
    pub diverged_seeds: Vec<u64>,
    /// The grid point chosen for this variant on the validation set (tuned comparisons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<BTreeMap<String, serde_json::Value>>,
    /// The name of that grid point's runs (tuned comparisons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<String>,
    /// Final test accuracy.
    pub test_acc: Option<Summary>,
    /// Final test loss.
    pub test_loss: Option<Summary>,
    /// Final accuracy on the held-out validation split (only with `--val-split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_acc: Option<Summary>,
    /// Final training accuracy (evaluation mode, all training images).
    pub train_acc: Option<Summary>,
    /// Final loss on the held-out validation split (only with `--val-split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<Summary>,
    /// Final training loss.
    pub train_loss: Option<Summary>,
    /// Overfitting gap: train acc - the compared accuracy (val when held out, else test).
    pub gap: Option<Summary>,
    /// The gap of each seed that did not diverge, by seed (for paired comparisons).
    #[serde(default)]
    pub gap_by_seed: BTreeMap<u64, f64>,
    /// Convergence: epochs to 90% compared accuracy (val when held out, else test).
    pub epochs_to_90: EpochsTo,
    /// Convergence: epochs to 97% compared accuracy.
    pub epochs_to_97: EpochsTo,
    /// Training seconds per run.
    pub seconds: Option<Summary>,
    /// Layer sizes (to check the architecture stayed fixed).
    pub sizes: Vec<usize>,
    /// Test accuracy of the best variant minus this one, with a CI adjusted for the number of comparisons with the best
    /// (Bonferroni: all hold together at 95%).
    pub behind_best: Option<Difference>,
}

impl VariantSummary {
    /// The accuracy variants are ranked by: the test set's.
    pub fn rank_acc(&self) -> Option<Summary> {
        self.test_acc
    }

    /// The accuracy this variant is compared on (see [`compared_on`]).
    pub fn compared_acc(&self) -> Option<Summary> {
        self.test_acc.map(|test| compared_on(self.val_acc, test))
    }

    /// The loss this variant is compared on (see [`compared_on`]).
    pub fn compared_loss(&self) -> Option<Summary> {
        self.test_loss.map(|test| compared_on(self.val_loss, test))
    }
}

/// The accuracy a run is ranked by (see [`VariantSummary::rank_acc`]).
fn rank_acc(r: &RunRecord) -> Option<f64> {
    r.final_test.map(|m| m.acc)
}

/// Summary of a whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSummary {
    /// Experiment name.
    pub name: String,
    /// Which table it prints.
    pub report: ReportKind,
    /// Variants, best mean test accuracy first (in a tuned comparison, each at its
    /// chosen grid point).
    pub variants: Vec<VariantSummary>,
    /// The grid tuned over (empty for a plain comparison).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tune: Vec<crate::experiment::tune::TuneAxis>,
    /// Every grid point of every variant, in experiment order (tuned comparisons).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grid: Vec<VariantSummary>,
    /// Runs expected by the experiment spec.
    pub expected_runs: usize,
    /// Runs found.
    pub found_runs: usize,
}

/// The figures of one variant's runs (`rs`, at least one).
fn variant_summary(index: usize, mut rs: Vec<&RunRecord>) -> VariantSummary {
    rs.sort_by_key(|r| r.config.seed);
    let ok: Vec<&RunRecord> = rs
        .iter()
        .copied()
        .filter(|r| r.diverged.is_none())
        .collect();
    let first = rs[0];
    VariantSummary {
        name: first.variant.clone(),
        label: first.label.clone(),
        index,
        seeds: rs.iter().map(|r| r.config.seed).collect(),
        diverged_seeds: rs
            .iter()
            .filter(|r| r.diverged.is_some())
            .map(|r| r.config.seed)
            .collect(),
        chosen: None,
        point: None,
        test_acc: metric(&ok, |r| r.final_test.map(|m| m.acc)),
        test_loss: metric(&ok, |r| r.final_test.map(|m| m.loss)),
        val_acc: metric(&ok, |r| r.final_val.map(|m| m.acc)),
        train_acc: metric(&ok, |r| r.final_train.map(|m| m.acc)),
        val_loss: metric(&ok, |r| r.final_val.map(|m| m.loss)),
        train_loss: metric(&ok, |r| r.final_train.map(|m| m.loss)),
        gap: metric(&ok, |r| Some(r.final_train?.acc - r.compared()?.acc)),
        gap_by_seed: ok
            .iter()
            .filter_map(|r| Some((r.config.seed, r.final_train?.acc - r.compared()?.acc)))
            .collect(),
        epochs_to_90: EpochsTo::of(&rs, 0.90),
        epochs_to_97: EpochsTo::of(&rs, 0.97),
        seconds: metric(&rs, |r| Some(r.train_seconds)),
        sizes: first.config.arch().sizes,
        behind_best: None,
    }
}

/// Each variant after the first (the best): its test accuracy against the best's, paired by seed where both ran it. With m such comparisons each interval is
/// at confidence 1 - 0.05/m (Bonferroni), so all m hold together with 95% confidence:
/// ranking many variants on few seeds otherwise finds "significant" gaps by chance.
/// (Holm's step-down procedure would sharpen the yes/no verdicts but has no simple
/// intervals to print beside them.)
fn compare_with_best(variants: &mut [VariantSummary], records: &[RunRecord]) {
    let Some(best) = variants.first().map(|v| v.index) else {
        return;
    };
    let confidence = 1.0 - 0.05 / variants.len().saturating_sub(1).max(1) as f64;
    let vals = |i: usize| -> BTreeMap<u64, f64> {
        records
            .iter()
            .filter(|r| r.variant_index == i && r.diverged.is_none())
            .filter_map(|r| Some((r.config.seed, rank_acc(r)?)))
            .collect()
    };
    let b = vals(best);
    for v in variants.iter_mut().skip(1) {
        let o = vals(v.index);
        let pairs: Vec<(f64, f64)> = b
            .iter()
            .filter_map(|(s, x)| o.get(s).map(|y| (*x, *y)))
            .collect();
        let bv: Vec<f64> = b.values().copied().collect();
        let ov: Vec<f64> = o.values().copied().collect();
        v.behind_best = difference_at(&bv, &ov, &pairs, confidence);
    }
}

fn metric(records: &[&RunRecord], f: impl Fn(&RunRecord) -> Option<f64>) -> Option<Summary> {
    let v: Vec<f64> = records.iter().filter_map(|r| f(r)).collect();
    Summary::of(&v)
}

/// Group `records` by variant (choosing each tuned variant's grid point) and rank by
/// mean test accuracy.
pub fn summarise(exp: &Experiment, records: &[RunRecord]) -> ExperimentSummary {
    let mut groups: BTreeMap<usize, Vec<&RunRecord>> = BTreeMap::new();
    for r in records {
        groups.entry(r.variant_index).or_default().push(r);
    }
    let all: Vec<VariantSummary> = groups
        .into_iter()
        .map(|(index, rs)| variant_summary(index, rs))
        .collect();
    let (mut variants, grid) = if exp.tune.is_empty() {
        (all, Vec::new())
    } else {
        (choose(exp, &all), all)
    };
    let mean = |s: Option<Summary>| s.map(|s| s.mean).unwrap_or(f64::NEG_INFINITY);
    variants.sort_by(|a, b| {
        let (x, y) = (mean(a.rank_acc()), mean(b.rank_acc()));
        y.total_cmp(&x).then(a.index.cmp(&b.index))
    });
    compare_with_best(&mut variants, records);
    ExperimentSummary {
        name: exp.name.clone(),
        report: exp.report,
        expected_runs: exp.jobs_count(),
        found_runs: records.len(),
        variants,
        tune: exp.tune.clone(),
        grid,
    }
}

/// For each tuned variant, its grid point with the best mean validation accuracy (the
/// first in grid order on a tie); the test set plays no part in the choice.
fn choose(exp: &Experiment, grid: &[VariantSummary]) -> Vec<VariantSummary> {
    let mut order: Vec<&str> = Vec::new();
    for v in &exp.variants {
        if let Some(t) = &v.tune {
            if !order.contains(&t.of.as_str()) {
                order.push(&t.of);
            }
        }
    }
    let val = |v: &VariantSummary| v.val_acc.map(|s| s.mean).unwrap_or(f64::NEG_INFINITY);
    order
        .into_iter()
        .filter_map(|name| {
            let point = |v: &&VariantSummary| exp.variants.get(v.index)?.tune.as_ref();
            let best = grid
                .iter()
                .filter(|v| point(v).is_some_and(|t| t.of == name))
                .fold(None::<&VariantSummary>, |best, v| match best {
                    Some(b) if val(b) >= val(v) => Some(b),
                    _ => Some(v),
                })?;
            let setting = &point(&best)?.setting;
            let mut chosen = best.clone();
            chosen.point = Some(std::mem::replace(&mut chosen.name, name.to_string()));
            chosen.chosen = Some(
                setting
                    .iter()
                    .map(|(k, v)| (k.clone(), crate::experiment::tune::json_value(k, v)))
                    .collect(),
            );
            Some(chosen)
        })
        .collect()
}

/// How a metric is shown in a table cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// An accuracy share shown in percent: "97.61%".
    Percent,
    /// A difference of shares in percentage points with a sign: "+1.20 pt".
    Points,
    /// A plain number with this many decimals: "0.0812".
    Plain(usize),
}

/// How the spread over seeds is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// "mean ± std".
    Std,
    /// "mean [min–max]".
    Range,
}

/// A summary as one cell: the mean alone for one seed, else with its spread.
pub fn cell(s: Option<Summary>, unit: Unit, spread: Spread) -> String {
    let Some(s) = s else {
        return "-".into();
    };
    let (scale, digits, sign, suffix) = match unit {
        Unit::Percent => (100.0, 2, false, "%"),
        Unit::Points => (100.0, 2, true, " pt"),
        Unit::Plain(d) => (1.0, d, false, ""),
    };
    // Only a mean can be tiny enough for scientific notation; a spread that small is
    // rounding noise beside it.
    let spread_of = |v: f64| format!("{:.*}", digits, (v * scale).abs());
    let num = |v: f64, signed: bool| {
        let text = super::num(v * scale, digits);
        if signed && !text.starts_with('-') {
            format!("+{text}")
        } else {
            text
        }
    };
    if s.n == 1 {
        return format!("{}{suffix}", num(s.mean, sign));
    }
    match (spread, unit) {
        (Spread::Std, _) => format!("{} ± {}{suffix}", num(s.mean, sign), spread_of(s.std)),
        // "97.61% [97.50–97.70]": the unit follows the mean, the range is bare.
        (Spread::Range, Unit::Percent) => {
            format!(
                "{}% [{}–{}]",
                num(s.mean, false),
                num(s.min, false),
                num(s.max, false)
            )
        }
        (Spread::Range, _) => format!(
            "{}{suffix} [{}–{}]",
            num(s.mean, sign),
            num(s.min, sign),
            num(s.max, sign)
        ),
    }
}

/// "lr=0.001, dropout=0.2": a tuned variant's chosen setting.
pub fn chosen_text(v: &VariantSummary) -> String {
    let Some(c) = &v.chosen else {
        return "-".into();
    };
    let parts: Vec<String> = c
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    parts.join(", ")
}

/// A difference of accuracies in points can be no wider than ±100: an interval from
/// few seeds that spills past that is cut there (and the notes say why it is wide).
fn clip_points(v: f64) -> f64 {
    v.clamp(-100.0, 100.0)
}

/// True when a difference's interval reaches past what accuracies allow.
fn clipped(d: &Difference) -> bool {
    d.lo.is_finite() && (d.lo < -1.0 || d.hi > 1.0)
}

/// The "vs best" cell: "-" for a variant without an accuracy (every seed diverged).
fn diff_cell(d: Option<Difference>) -> String {
    match d {
        None => "-".into(),
        Some(d) if d.lo.is_infinite() => format!("{:+.2} pt (1 seed: no CI)", -d.diff * 100.0),
        Some(d) => format!(
            "{:+.2} pt [{:+.2}, {:+.2}]{}",
            -d.diff * 100.0,
            clip_points(-d.hi * 100.0),
            clip_points(-d.lo * 100.0),
            if d.significant() { "" } else { " n.s." }
        ),
    }
}

impl ExperimentSummary {
    /// True when the runs held out a validation split (`--val-split`).
    pub fn held_out(&self) -> bool {
        self.variants.iter().any(|v| v.val_acc.is_some())
    }

    /// The name of the split runs are compared on (see [`compared_on`]): "val" or "test".
    pub fn compared_name(&self) -> &'static str {
        compared_on(self.held_out().then_some("val"), "test")
    }

    /// The ranked comparison table. A variant whose every seed diverged has no rank
    /// and is never "best".
    pub fn compare_table(&self) -> Table {
        let (tuned, val) = (!self.tune.is_empty(), self.held_out());
        let vs_best = if self.variants.len() > 2 {
            "test acc vs best [joint 95% CI]"
        } else {
            "test acc vs best [95% CI]"
        };
        let any_diverged = self.variants.iter().any(|v| !v.diverged_seeds.is_empty());
        let gap = format!("gap (train-{})", self.compared_name());
        let mut head: Vec<&str> = vec!["rank", "variant"];
        head.extend(tuned.then_some("chosen"));
        head.push("seeds");
        head.extend(any_diverged.then_some("diverged"));
        head.push("test acc");
        head.extend(val.then_some("val acc"));
        head.extend(["train acc", "test loss"]);
        head.extend(val.then_some("val loss"));
        head.extend(["train loss", gap.as_str(), "ep→90%", "ep→97%"]);
        head.extend(["seconds", vs_best]);
        let mut t = Table::new(&head);
        t.align[1] = super::table::Align::Left;
        t.sticky = 2;
        t.droppable(&[
            "train loss",
            "test loss",
            "ep→97%",
            "seconds",
            "val loss",
            "train acc",
            "ep→90%",
            gap.as_str(),
        ]);
        for (i, v) in self.variants.iter().enumerate() {
            t.row(compare_row(i, v, (tuned, val, any_diverged)));
        }
        t
    }

    /// The best variant: the first ranked one, if it has an accuracy.
    pub fn best(&self) -> Option<&VariantSummary> {
        self.variants.first().filter(|v| v.rank_acc().is_some())
    }

    /// Notes printed under the table (missing runs, divergences, how to read the CI).
    pub fn notes(&self) -> Vec<String> {
        let mut n = Vec::new();
        if self.found_runs < self.expected_runs {
            n.push(format!(
                "{} of {} runs found: the summary covers only those (merge the other shards to complete it)",
                self.found_runs, self.expected_runs
            ));
        }
        for v in &self.variants {
            if !v.diverged_seeds.is_empty() {
                n.push(format!(
                    "{} diverged (NaN/inf loss) with seed(s) {:?}; those runs are left out of its figures",
                    v.name, v.diverged_seeds
                ));
            }
        }
        n.extend(self.split_notes());
        n.extend(self.interval_notes());
        if self.report == ReportKind::Exercise && self.variants.iter().any(|v| v.seeds.len() > 1) {
            n.push("each cell is the mean over seeds with [min–max]".into());
        } else if self.variants.iter().any(|v| v.seeds.len() > 1) {
            let m = self.variants.len().saturating_sub(1);
            n.push(if m > 1 {
                format!("± is the standard deviation over seeds; the CIs are t-intervals over seeds (paired by seed where both ran the same seeds), each at {:.2}% so that all {m} comparisons with the best hold together at 95% (Bonferroni); n.s. = the interval includes 0", 100.0 - 5.0 / m as f64)
            } else {
                "± is the standard deviation over seeds; the CI is a 95% t-interval over seeds (paired by seed where both ran the same seeds); n.s. = the interval includes 0".into()
            });
        }
        n
    }

    /// Why intervals are wide: few seeds, and a cut at what accuracies allow.
    fn interval_notes(&self) -> Vec<String> {
        let seeds = self
            .variants
            .iter()
            .map(|v| v.seeds.len())
            .min()
            .unwrap_or(0);
        let ds: Vec<&Difference> = self
            .variants
            .iter()
            .filter_map(|v| v.behind_best.as_ref())
            .collect();
        let mut n = Vec::new();
        if self.report != ReportKind::Compare {
            return n;
        }
        if ds.iter().any(|d| d.lo.is_finite()) && seeds < 5 {
            n.push(format!(
                "with {seeds} seed(s) per variant an interval rests on {} degree(s) of freedom, so it is wide; --seeds 5 or more narrows it",
                seeds.saturating_sub(1)
            ));
        }
        if ds.iter().any(|d| clipped(d)) {
            n.push("intervals are cut at ±100 pt, the most two accuracies can differ".into());
        }
        n
    }

    /// What "val" and "test" mean here, and how tuned settings were chosen.
    fn split_notes(&self) -> Vec<String> {
        let mut n = Vec::new();
        if self.held_out() {
            n.push("val = training images held out by --val-split (class-stratified, the same for every run, never trained on); test = the test set, used only to rank and report, never to choose".into());
        } else if self.report == ReportKind::Exercise {
            n.push("test = the test set, which the exercise calls \"validation\"; --val-split N holds out a validation set instead".into());
        }
        if !self.tune.is_empty() {
            let points = self.tune.iter().map(|a| a.values.len()).product::<usize>();
            n.push(format!(
                "tuned over {} ({points} points): each variant is shown at the point with the best mean val acc; the whole grid is in summary.json (\"grid\") and grid.csv",
                self.tune
                    .iter()
                    .map(|a| format!("{}={}", a.key, a.values.join(",")))
                    .collect::<Vec<_>>()
                    .join(" x ")
            ));
        }
        n
    }

    /// CSV with one row per variant (at its chosen point when tuned) and raw numbers.
    pub fn to_csv(&self) -> String {
        csv(&self.variants, true)
    }

    /// CSV of every grid point of a tuned comparison, in experiment order; `chosen`
    /// says "yes" on the point each variant kept.
    pub fn grid_csv(&self) -> String {
        let kept: Vec<usize> = self.variants.iter().map(|v| v.index).collect();
        let marked: Vec<VariantSummary> = self
            .grid
            .iter()
            .map(|g| {
                let mut g = g.clone();
                g.chosen = kept.contains(&g.index).then(BTreeMap::new);
                g
            })
            .collect();
        csv(&marked, false)
    }
}

/// One CSV row per summary; `ranked` numbers the rows as ranks.
fn csv(variants: &[VariantSummary], ranked: bool) -> String {
    let mut out = String::from(if ranked { "rank" } else { "position" });
    out.push_str(",variant,label,chosen,seeds,diverged");
    for m in [
        "test_acc",
        "test_loss",
        "val_acc",
        "train_acc",
        "val_loss",
        "train_loss",
        "gap",
        "seconds",
    ] {
        out.push_str(&format!(",{m}_mean,{m}_std,{m}_min,{m}_max"));
    }
    out.push_str(",epochs_to_90,epochs_to_97,behind_best,behind_best_lo,behind_best_hi\n");
    let f = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    for (i, v) in variants.iter().enumerate() {
        out.push_str(&csv_head(i, v, ranked));
        for s in [
            v.test_acc,
            v.test_loss,
            v.val_acc,
            v.train_acc,
            v.val_loss,
            v.train_loss,
            v.gap,
            v.seconds,
        ] {
            out.push_str(&format!(
                ",{},{},{},{}",
                f(s.map(|s| s.mean)),
                f(s.map(|s| s.std)),
                f(s.map(|s| s.min)),
                f(s.map(|s| s.max))
            ));
        }
        let d = v.behind_best;
        out.push_str(&format!(
            ",{},{},{},{},{}\n",
            f(v.epochs_to_90.mean_epoch),
            f(v.epochs_to_97.mean_epoch),
            f(d.map(|d| d.diff)),
            f(d.map(|d| d.lo).filter(|x| x.is_finite())),
            f(d.map(|d| d.hi).filter(|x| x.is_finite()))
        ));
    }
    out
}

/// Row `i` of the compare table (columns as its head: `tuned` adds the chosen
/// point, `val` the held-out figures, `diverged` the diverged seeds).
fn compare_row(
    i: usize,
    v: &VariantSummary,
    (tuned, val, diverged): (bool, bool, bool),
) -> Vec<String> {
    let ranked = v.rank_acc().is_some();
    let rank = if ranked {
        (i + 1).to_string()
    } else {
        "-".into()
    };
    let mut row = vec![rank, v.name.clone()];
    row.extend(tuned.then(|| chosen_text(v)));
    row.push(v.seeds.len().to_string());
    row.extend(diverged.then(|| v.diverged_seeds.len().to_string()));
    row.push(cell(v.test_acc, Unit::Percent, Spread::Std));
    row.extend(val.then(|| cell(v.val_acc, Unit::Percent, Spread::Std)));
    row.push(cell(v.train_acc, Unit::Percent, Spread::Std));
    row.push(cell(v.test_loss, Unit::Plain(4), Spread::Std));
    row.extend(val.then(|| cell(v.val_loss, Unit::Plain(4), Spread::Std)));
    row.extend([
        cell(v.train_loss, Unit::Plain(4), Spread::Std),
        cell(v.gap, Unit::Points, Spread::Std),
        v.epochs_to_90.cell(),
        v.epochs_to_97.cell(),
        cell(v.seconds, Unit::Plain(2), Spread::Std),
        if i == 0 && ranked {
            "best".into()
        } else {
            diff_cell(v.behind_best)
        },
    ]);
    row
}

/// A csv row's first cells: position, names, whether chosen, seeds and diverged.
fn csv_head(i: usize, v: &VariantSummary, ranked: bool) -> String {
    let chosen = match &v.chosen {
        // A grid point kept by its variant (grid.csv).
        Some(c) if c.is_empty() => "yes".to_string(),
        Some(_) => chosen_text(v),
        None if ranked => String::new(),
        None => "no".to_string(),
    };
    format!(
        "{},{},{},{},{},{}",
        i + 1,
        csv_field(&v.name),
        csv_field(&v.label),
        csv_field(&chosen),
        v.seeds.len(),
        v.diverged_seeds.len()
    )
}

/// Last-epoch statistics of one layer, averaged over a variant's seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStats {
    /// 0-based layer (conv layers first, then fc1).
    pub layer: usize,
    /// Its name as the diagnostics record it: conv1.., fc1...
    pub name: String,
    /// True for hidden layers (the ones with an activation).
    pub hidden: bool,
    /// Weight-gradient norm.
    pub grad_norm: Option<f64>,
    /// Pre-activation mean and standard deviation.
    pub pre: (f64, f64),
    /// Activation mean and standard deviation, where recorded.
    pub act: Option<(f64, f64)>,
    /// Share of saturated units (sigmoid/tanh family).
    pub saturated: Option<f64>,
    /// Share of dead units (ReLU family).
    pub dead: Option<f64>,
}

/// Per-layer last-epoch statistics of one variant's runs (empty without diagnostics).
pub fn layer_stats(runs: &[&RunRecord]) -> Vec<LayerStats> {
    let ds: Vec<&crate::diagnostics::EpochDiag> = runs
        .iter()
        .filter_map(|r| r.diagnostics.as_ref().and_then(|d| d.epochs.last()))
        .collect();
    let Some(d0) = ds.first() else {
        return Vec::new();
    };
    let hidden = d0.dead.len().saturating_sub(1);
    let names: Vec<String> = (runs.iter())
        .find_map(|r| r.diagnostics.as_ref().map(|d| d.layers.clone()))
        .unwrap_or_default();
    let avg = |f: &dyn Fn(&crate::diagnostics::EpochDiag) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = ds.iter().filter_map(|d| f(d)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    (0..d0.grad_norm.len())
        .map(|l| LayerStats {
            layer: l,
            name: names
                .get(l)
                .cloned()
                .unwrap_or_else(|| format!("fc{}", l + 1)),
            hidden: l < hidden,
            grad_norm: avg(&|d| d.grad_norm.get(l).copied().flatten()),
            pre: (
                avg(&|d| d.pre_mean.get(l).copied()).unwrap_or(0.0),
                avg(&|d| d.pre_std.get(l).copied()).unwrap_or(0.0),
            ),
            act: avg(&|d| d.act_mean.get(l).copied().flatten())
                .zip(avg(&|d| d.act_std.get(l).copied().flatten())),
            saturated: avg(&|d| d.saturated.get(l).copied().flatten()),
            dead: avg(&|d| d.dead.get(l).copied().flatten()),
        })
        .collect()
}

/// Validation accuracy per class, mean over the runs that recorded it.
pub fn per_class_acc(runs: &[&RunRecord], classes: usize) -> Vec<Option<f64>> {
    (0..classes)
        .map(|c| {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| {
                    r.diagnostics
                        .as_ref()
                        .and_then(|d| d.per_class_acc.get(c).copied())
                })
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_show_mean_and_spread() {
        let one = Summary::of(&[0.9761]);
        let two = Summary::of(&[0.975, 0.977]);
        assert_eq!(cell(one, Unit::Percent, Spread::Std), "97.61%");
        assert_eq!(
            cell(two, Unit::Percent, Spread::Range),
            "97.60% [97.50–97.70]"
        );
        assert_eq!(
            cell(Summary::of(&[0.012, 0.011]), Unit::Points, Spread::Range),
            "+1.15 pt [+1.10–+1.20]"
        );
        assert_eq!(
            cell(Summary::of(&[1.0, 3.0]), Unit::Plain(2), Spread::Std),
            "2.00 ± 1.41"
        );
        assert_eq!(cell(None, Unit::Percent, Spread::Std), "-");
    }
}
