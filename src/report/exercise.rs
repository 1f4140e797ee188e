//! The exercise's before/after table: measured figures beside the exercise's claims,
//! and a plain verdict per task goal.

use super::grade;
use super::summary::{cell, ExperimentSummary, Spread, Unit, VariantSummary};
use super::table::{Align, Table};
use crate::experiment::proposal::is_proposal;
use crate::experiment::stats::Summary;

/// What the exercise says a variant gives: (train acc, val acc, val loss).
pub fn claim(name: &str) -> Option<(f64, f64, f64)> {
    match name {
        "before" => Some((0.98, 0.85, 0.35)),
        "after" => Some((0.95, 0.91, 0.25)),
        _ => None,
    }
}

fn by_index(s: &ExperimentSummary) -> Vec<&VariantSummary> {
    let mut v: Vec<&VariantSummary> = s.variants.iter().collect();
    v.sort_by_key(|v| v.index);
    v
}

/// The side-by-side table, variants in the exercise's order.
pub fn table(s: &ExperimentSummary) -> Table {
    let val = s.held_out();
    let name = s.compared_name();
    let (loss, gap) = (format!("{name} loss"), format!("gap (train-{name})"));
    let mut head = vec!["variant", "model", "train acc"];
    head.extend(val.then_some("val acc"));
    head.extend(["test acc", "train loss", &loss, &gap, "ep→90%", "ep→97%"]);
    head.extend(["seconds", "claim (train / val / loss)"]);
    let mut t = Table::new(&head);
    t.align[1] = Align::Left;
    t.align[head.len() - 1] = Align::Left;
    t.droppable(&["train loss", "seconds", "ep→97%", &loss, "model", "ep→90%"]);
    for v in by_index(s) {
        let claimed = claim(&v.name)
            .map(|(a, b, c)| format!("{:.0}% / {:.0}% / {c:.2}", a * 100.0, b * 100.0))
            .unwrap_or_else(|| "-".into());
        let mut name = v.name.clone();
        if !v.diverged_seeds.is_empty() {
            name.push_str(&format!(" ({} diverged)", v.diverged_seeds.len()));
        }
        let mut row = vec![
            name,
            v.label.clone(),
            cell(v.train_acc, Unit::Percent, Spread::Range),
        ];
        row.extend(val.then(|| cell(v.val_acc, Unit::Percent, Spread::Range)));
        row.extend([
            cell(v.test_acc, Unit::Percent, Spread::Range),
            cell(v.train_loss, Unit::Plain(4), Spread::Range),
            cell(v.compared_loss(), Unit::Plain(4), Spread::Range),
            cell(v.gap, Unit::Points, Spread::Range),
            v.epochs_to_90.cell(),
            v.epochs_to_97.cell(),
            cell(v.seconds, Unit::Plain(2), Spread::Range),
            claimed,
        ]);
        t.row(row);
    }
    t
}

fn find<'a>(s: &'a ExperimentSummary, name: &str) -> Option<&'a VariantSummary> {
    s.variants.iter().find(|v| v.name == name)
}

fn mean(s: Option<Summary>) -> Option<f64> {
    s.map(|s| s.mean)
}

/// One line per task goal and per claim, saying what was measured; then each
/// learner's proposal (`--try`) graded on the same goals.
pub fn verdicts(s: &ExperimentSummary) -> Vec<String> {
    let before = find(s, "before");
    let after = find(s, "after");
    let bonus = s.variants.iter().find(|v| v.name.starts_with("bonus"));
    let name = s.compared_name();
    let mut out = Vec::new();
    out.extend(after.map(|a| grade::accuracy(a, name).line()));
    out.extend(
        before
            .zip(after)
            .and_then(|(b, a)| grade::gap(b, a, bonus))
            .map(|g| g.line()),
    );
    let all: Vec<&VariantSummary> = by_index(s);
    out.extend(grade::architecture(&all).map(|g| g.line()));
    out.extend(
        [before, after]
            .into_iter()
            .flatten()
            .filter_map(|v| claim_line(v, name)),
    );
    if let Some(before) = before {
        for v in all.iter().filter(|v| is_proposal(&v.name)) {
            out.extend(grade::proposal(s, before, v));
        }
    }
    out
}

/// How `measured` stands against `claimed`: "matches" within `tolerance`, otherwise
/// "is above/below the claimed".
fn against(measured: f64, claimed: f64, tolerance: f64) -> &'static str {
    if (measured - claimed).abs() <= tolerance {
        "matches"
    } else if measured > claimed {
        "is above the claimed"
    } else {
        "is below the claimed"
    }
}

/// The exercise's claim for `v` beside what was measured on the compared split, `name`,
/// saying for each figure that does not reproduce in which direction it is off.
fn claim_line(v: &VariantSummary, name: &str) -> Option<String> {
    let (ct, cv, cl) = claim(&v.name)?;
    let (t, a, l) = (
        mean(v.train_acc)?,
        mean(v.compared_acc())?,
        mean(v.compared_loss())?,
    );
    // Within 2 points of accuracy and 0.05 of loss counts as reproduced.
    let figures = [
        (
            format!("{name} {:.2}%", a * 100.0),
            against(a, cv, 0.02),
            format!("{:.0}%", cv * 100.0),
        ),
        (
            format!("train {:.2}%", t * 100.0),
            against(t, ct, 0.02),
            format!("{:.0}%", ct * 100.0),
        ),
        (
            format!("{name} loss {l:.4}"),
            against(l, cl, 0.05),
            format!("{cl:.2}"),
        ),
    ];
    let off = figures.iter().any(|(_, how, _)| *how != "matches");
    let measured: Vec<String> = figures
        .iter()
        .map(|(m, how, c)| format!("{m} {how} {c}"))
        .collect();
    Some(format!(
        "claim \"{}: train {:.0}%, val {:.0}%, val loss {:.2}\": {} — measured {}",
        v.name,
        ct * 100.0,
        cv * 100.0,
        cl,
        if off {
            "does NOT reproduce"
        } else {
            "reproduces"
        },
        measured.join(", ")
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::eval::Metrics;
    use crate::experiment::Experiment;
    use crate::report::summary::summarise;
    use crate::store::records::{DatasetInfo, EpochStats, RunRecord, FORMAT};

    /// A finished run without a held-out split: `test` is its test accuracy.
    pub(crate) fn record(
        variant: &str,
        index: usize,
        seed: u64,
        train: f64,
        test: f64,
    ) -> RunRecord {
        RunRecord {
            format: FORMAT,
            actlab_version: "test".into(),
            label: variant.into(),
            variant: variant.into(),
            variant_index: index,
            config: TrainConfig {
                seed,
                ..Default::default()
            },
            dataset: DatasetInfo {
                name: "mnist".into(),
                sha256: vec![],
                canonical: true,
                n_train: 1,
                n_test: 1,
                n_val: None,
            },
            params: 0,
            history: vec![EpochStats {
                epoch: 1,
                train: Metrics {
                    loss: 0.0,
                    acc: 0.0,
                },
                val: None,
                test: Metrics {
                    loss: 0.1,
                    acc: test,
                },
                seconds: 1.0,
            }],
            final_train: Some(Metrics {
                loss: 0.05,
                acc: train,
            }),
            final_val: None,
            final_test: Some(Metrics {
                loss: 0.1,
                acc: test,
            }),
            test_confusion: None,
            diverged: None,
            diagnostics: None,
            train_seconds: 1.0,
            wall_seconds: 1.0,
            complete: true,
        }
    }

    /// A tuned variant keeps its best point on validation, however its test figures
    /// look, and variants are then ranked by test accuracy.
    #[test]
    fn tuning_chooses_on_validation_and_ranks_on_test() {
        let base = TrainConfig {
            val_split: Some(10),
            activation: vec!["relu".parse().unwrap(), "tanh".parse().unwrap()],
            ..Default::default()
        };
        let axis = crate::experiment::tune::parse_axis("lr=1e-3,3e-3").unwrap();
        let exp = Experiment::compare(&base, &[], &Default::default(), vec![0, 1])
            .unwrap()
            .tuned(vec![axis])
            .unwrap();
        // (val, test) of each grid point: relu 1e-3, relu 3e-3, tanh 1e-3, tanh 3e-3.
        let points = [(0.95, 0.90), (0.94, 0.99), (0.90, 0.97), (0.93, 0.96)];
        let mut records = Vec::new();
        for (i, (val, test)) in points.into_iter().enumerate() {
            for seed in [0, 1] {
                let mut r = record(&exp.variants[i].name, i, seed, 0.99, test);
                r.dataset.n_val = Some(10);
                r.final_val = Some(Metrics {
                    loss: 0.1,
                    acc: val,
                });
                records.push(r);
            }
        }
        let s = summarise(&exp, &records);
        let picked: Vec<(&str, Option<usize>)> = s
            .variants
            .iter()
            .map(|v| (v.name.as_str(), Some(v.index)))
            .collect();
        assert_eq!(
            picked,
            [
                ("tanh/log_softmax/nll", Some(3)),
                ("relu/log_softmax/nll", Some(0))
            ]
        );
        assert_eq!(s.variants[1].chosen.as_ref().unwrap()["lr"], 0.001);
        assert_eq!(s.grid.len(), 4);
        let text = crate::report::render_text(&s);
        assert!(
            text.contains("lr=0.003") && text.contains("test acc vs best"),
            "{text}"
        );
    }

    /// The gap verdict follows the paired interval of the gap's change; a claim must
    /// match its validation loss too; an "after" whose every seed diverged fails the
    /// accuracy goal with the reason instead of vanishing.
    #[test]
    fn verdicts_follow_intervals_losses_and_divergence() {
        let exp = Experiment::exercise(&TrainConfig::default(), 0.2, vec![0, 1, 2]);
        let gaps = |before: [f64; 3], after: [f64; 3]| {
            let mut recs = Vec::new();
            for seed in 0..3 {
                recs.push(record("before", 0, seed as u64, 0.97 + before[seed], 0.97));
                recs.push(record("after", 2, seed as u64, 0.95 + after[seed], 0.95));
            }
            verdicts(&summarise(&exp, &recs))[1].clone()
        };
        let shrank = gaps([0.030, 0.032, 0.031], [0.010, 0.011, 0.010]);
        assert!(shrank.contains("yes — the gap shrank"), "{shrank}");
        let grew = gaps([0.010, 0.011, 0.010], [0.030, 0.032, 0.031]);
        assert!(grew.contains("NO — the gap grew"), "{grew}");
        let one = verdicts(&summarise(
            &Experiment::exercise(&TrainConfig::default(), 0.2, vec![0]),
            &[
                record("before", 0, 0, 0.99, 0.97),
                record("after", 2, 0, 0.98, 0.97),
            ],
        ));
        assert!(one[1].contains("not shown — one seed"), "{one:?}");
        // Accuracies as claimed, validation loss 0.10 against the claimed 0.25.
        let recs = [
            record("after", 2, 0, 0.95, 0.91),
            record("before", 0, 0, 0.98, 0.85),
        ];
        let v = verdicts(&summarise(&exp, &recs));
        assert!(
            v.iter().any(|l| l.contains("after: train 95%")
                && l.contains("does NOT reproduce — measured test 91.00% matches 91%")
                && l.contains("test loss 0.1000 is below the claimed 0.25")),
            "{v:?}"
        );
        let mut dead = record("after", 2, 0, 0.0, 0.0);
        dead.diverged = Some(crate::train::Divergence {
            epoch: 1,
            step: 3,
            loss: "NaN".into(),
        });
        dead.final_test = None;
        dead.final_train = None;
        let v = verdicts(&summarise(
            &exp,
            &[record("before", 0, 0, 0.98, 0.97), dead],
        ));
        assert!(v[0].contains("NO — every seed of after diverged"), "{v:?}");
    }

    /// A small gap that a lone 95% interval calls real is n.s. once the interval is
    /// adjusted for comparing four variants with the best.
    #[test]
    fn intervals_widen_with_the_number_of_comparisons() {
        use crate::nn::Activation;
        let summary = |acts: &[Activation]| {
            let base = TrainConfig {
                activation: acts.to_vec(),
                ..Default::default()
            };
            let exp = Experiment::compare(&base, &[], &Default::default(), vec![0, 1, 2]).unwrap();
            let best = [0.970, 0.972, 0.974];
            let close = [0.9695, 0.9712, 0.9735];
            let mut recs = Vec::new();
            for (i, v) in exp.variants.iter().enumerate() {
                for seed in 0..3 {
                    let val = match i {
                        0 => best[seed],
                        1 => close[seed],
                        _ => 0.90 + seed as f64 * 0.001,
                    };
                    recs.push(record(&v.name, i, seed as u64, 0.99, val));
                }
            }
            summarise(&exp, &recs)
        };
        let two = summary(&[Activation::Relu, Activation::Tanh]);
        let d = two.variants[1].behind_best.unwrap();
        assert!(d.significant() && d.confidence == 0.95, "{d:?}");
        let five = summary(&[
            Activation::Relu,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Gelu,
            Activation::Elu(1.0),
        ]);
        let d = five.variants[1].behind_best.unwrap();
        assert!(
            !d.significant() && (d.confidence - 0.9875).abs() < 1e-12,
            "{d:?}"
        );
        assert!(five.variants[4].behind_best.unwrap().significant());
        let text = five.compare_table().to_text();
        assert!(
            text.contains("[joint 95% CI]") && text.contains("n.s."),
            "{text}"
        );
    }

    #[test]
    fn verdicts_report_measured_numbers() {
        let exp = Experiment::exercise(&TrainConfig::default(), 0.2, vec![0, 1]);
        let recs = vec![
            record("before", 0, 0, 0.975, 0.968),
            record("before", 0, 1, 0.977, 0.966),
            record("after", 2, 0, 0.99, 0.976),
            record("after", 2, 1, 0.988, 0.978),
        ];
        let s = summarise(&exp, &recs);
        let v = verdicts(&s);
        assert!(v[0].contains("yes") && v[0].contains("97.70%"), "{v:?}");
        // Gaps 0.7 and 1.1 pt before, 1.4 and 1.0 after: the change's interval holds 0.
        assert!(
            v[1].contains("not shown") && v[1].contains("+0.90 pt before"),
            "{v:?}"
        );
        assert!(v[2].contains("784-128-64-10"), "{v:?}");
        assert!(
            v[3].contains("does NOT reproduce — measured test 96.70% is above the claimed 85%"),
            "{v:?}"
        );
        let text = table(&s).to_text();
        assert!(text.contains("96.70% [96.60–96.80]"), "{text}");
        assert!(text.contains("98% / 85% / 0.35"), "{text}");
    }
}
