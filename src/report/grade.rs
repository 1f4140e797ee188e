//! The exercise's goals, decided one way for "after" and for a learner's proposals
//! (`exercise --try`): accuracy above 90% and a smaller overfitting gap than "before",
//! each by a 95% interval over seeds, and the architecture unchanged.

use super::summary::{ExperimentSummary, VariantSummary};
use crate::experiment::stats::{difference, mean_interval, Summary};

/// The accuracy the exercise asks for on its "validation" split.
const TARGET: f64 = 0.90;

/// What a goal's evidence shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Met (beyond the 95% interval where there is one).
    Yes,
    /// Missed.
    No,
    /// The interval does not decide it (or there is none: one seed).
    NotShown,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Yes => "yes",
            Outcome::No => "NO",
            Outcome::NotShown => "not shown",
        }
    }
}

/// One goal: its name, outcome and the measured reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    /// The goal as the exercise states it.
    pub name: &'static str,
    /// What was shown.
    pub outcome: Outcome,
    /// The measurements behind it.
    pub why: String,
}

impl Goal {
    /// `goal "NAME": outcome — why`, as printed and put in the report.
    pub fn line(&self) -> String {
        format!(
            "goal \"{}\": {} — {}",
            self.name,
            self.outcome.word(),
            self.why
        )
    }
}

/// How to get an interval that can decide, with `n` seeds run.
pub fn how_to_show(n: usize) -> String {
    if n < 2 {
        "one seed gives no interval (use --seeds 3)".into()
    } else {
        format!("more seeds narrow it (e.g. --seeds {})", (2 * n).max(5))
    }
}

/// Goal: `v` above 90% accuracy on the compared split, `split` (the exercise's
/// "validation" is its test set). With two or more seeds the mean's 95% interval must
/// clear 90%; one seed is judged on its value, saying so.
pub fn accuracy(v: &VariantSummary, split: &str) -> Goal {
    let name = "validation accuracy above 90%";
    let Some(acc) = v.compared_acc() else {
        return Goal {
            name,
            outcome: Outcome::No,
            why: format!(
                "every seed of {} diverged (NaN/inf loss: seeds {:?}), so it has no accuracy",
                v.name, v.diverged_seeds
            ),
        };
    };
    let reaches = format!("{} reaches {:.2}% {split} acc", v.name, acc.mean * 100.0);
    let Some((lo, hi)) = mean_interval(&acc, 0.95) else {
        let outcome = if acc.mean > TARGET {
            Outcome::Yes
        } else {
            Outcome::No
        };
        let why = format!("{reaches} (one seed; --seeds 3 gives an interval)");
        return Goal { name, outcome, why };
    };
    let outcome = if lo > TARGET {
        Outcome::Yes
    } else if hi < TARGET {
        Outcome::No
    } else {
        Outcome::NotShown
    };
    let mut why = format!(
        "{reaches}, 95% interval over seeds {:.2} to {:.2}%",
        lo * 100.0,
        hi * 100.0
    );
    if outcome == Outcome::NotShown {
        why.push_str(&format!(" includes 90%; {}", how_to_show(acc.n)));
    }
    Goal { name, outcome, why }
}

/// Goal: a smaller train-val gap in `v` than in `before`, judged by the 95% interval of
/// the gap's change paired by seed: "not shown" when it includes 0 or when one seed
/// gives no interval. `bonus`'s gap (dropout) is quoted beside it.
pub fn gap(
    before: &VariantSummary,
    v: &VariantSummary,
    bonus: Option<&VariantSummary>,
) -> Option<Goal> {
    let (gb, gv) = (mean(before.gap)?, mean(v.gap)?);
    let (outcome, mut why) = match gap_change(before, v) {
        Some((lo, hi)) if hi < 0.0 => (
            Outcome::Yes,
            format!(
                "the gap shrank by {:.2} to {:.2} pt (95% interval over seeds)",
                -hi * 100.0,
                -lo * 100.0
            ),
        ),
        Some((lo, hi)) if lo > 0.0 => (
            Outcome::No,
            format!(
                "the gap grew by {:.2} to {:.2} pt (95% interval over seeds)",
                lo * 100.0,
                hi * 100.0
            ),
        ),
        Some((lo, hi)) => (
            Outcome::NotShown,
            format!(
                "its change over seeds, {:+.2} to {:+.2} pt (95%), includes 0; {}",
                lo * 100.0,
                hi * 100.0,
                how_to_show(common_seeds(before, v))
            ),
        ),
        None => (Outcome::NotShown, how_to_show(common_seeds(before, v))),
    };
    why.push_str(&format!(
        "; gap {:+.2} pt before, {:+.2} pt {}",
        gb * 100.0,
        gv * 100.0,
        v.name
    ));
    if gb.abs() < 0.02 {
        why.push_str(&format!(
            "; but \"before\" barely overfits ({:+.2} pt), so there was little to reduce",
            gb * 100.0
        ));
    }
    if let Some(gd) = bonus.and_then(|b| mean(b.gap)) {
        why.push_str(&format!("; with dropout {:+.2} pt", gd * 100.0));
    }
    Some(Goal {
        name: "overfitting reduced (smaller gap)",
        outcome,
        why,
    })
}

fn mean(s: Option<Summary>) -> Option<f64> {
    s.map(|s| s.mean)
}

/// The seeds both variants finished.
fn common_seeds(a: &VariantSummary, b: &VariantSummary) -> usize {
    b.gap_by_seed
        .keys()
        .filter(|s| a.gap_by_seed.contains_key(s))
        .count()
}

/// The 95% interval of `v`'s gap minus before's, paired by seed (None with fewer than
/// two common seeds).
fn gap_change(before: &VariantSummary, v: &VariantSummary) -> Option<(f64, f64)> {
    let pairs: Vec<(f64, f64)> = v
        .gap_by_seed
        .iter()
        .filter_map(|(seed, a)| Some((*a, *before.gap_by_seed.get(seed)?)))
        .collect();
    if pairs.len() < 2 {
        return None;
    }
    let (a, b): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let d = difference(&a, &b, &pairs)?;
    Some((d.lo, d.hi))
}

/// Goal: the variants `vs` all have the layer sizes of the first.
pub fn architecture(vs: &[&VariantSummary]) -> Option<Goal> {
    let first = &vs.first()?.sizes;
    let same = vs.iter().all(|v| &v.sizes == first);
    let dims: Vec<String> = first.iter().map(|d| d.to_string()).collect();
    Some(Goal {
        name: "architecture unchanged",
        outcome: if same { Outcome::Yes } else { Outcome::No },
        why: if same {
            format!("every variant is {}", dims.join("-"))
        } else {
            format!("not every variant is {}", dims.join("-"))
        },
    })
}

/// A proposal's grade line followed by its goal lines: PASS when every goal is met,
/// FAIL naming the missed ones, otherwise "not shown" naming what is undecided.
pub fn proposal(s: &ExperimentSummary, before: &VariantSummary, v: &VariantSummary) -> Vec<String> {
    let split = s.compared_name();
    let goals: Vec<Goal> = [
        architecture(&[before, v]),
        Some(accuracy(v, split)),
        gap(before, v, None),
    ]
    .into_iter()
    .flatten()
    .collect();
    let named = |o: Outcome| {
        let names: Vec<String> = goals
            .iter()
            .filter(|g| g.outcome == o)
            .map(|g| format!("\"{}\"", g.name))
            .collect();
        names.join(", ")
    };
    let head = if goals.iter().any(|g| g.outcome == Outcome::No) {
        format!("FAIL — misses {}", named(Outcome::No))
    } else if goals.iter().any(|g| g.outcome == Outcome::NotShown) {
        format!(
            "not shown — {} undecided; {}",
            named(Outcome::NotShown),
            how_to_show(v.seeds.len())
        )
    } else {
        format!("PASS — meets all {} goals", goals.len())
    };
    let mut out = vec![format!("{}: {head}", v.name)];
    out.extend(goals.iter().map(|g| format!("{}, {}", v.name, g.line())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::experiment::Experiment;
    use crate::report::exercise::tests::record;
    use crate::report::summary::summarise;

    /// The summary of the exercise with one proposal, from (train, test) accuracies
    /// per seed of "before" and of the proposal.
    fn graded(before: &[(f64, f64)], tried: &[(f64, f64)]) -> Vec<String> {
        let seeds: Vec<u64> = (0..before.len() as u64).collect();
        let exp = Experiment::exercise(&TrainConfig::default(), 0.2, seeds)
            .with_proposals(&["tanh/log_softmax/nll".into()], &Default::default())
            .unwrap();
        let name = &exp.variants[4].name;
        let mut recs = Vec::new();
        for (seed, (&(bt, bv), &(pt, pv))) in before.iter().zip(tried).enumerate() {
            recs.push(record("before", 0, seed as u64, bt, bv));
            recs.push(record(name, 4, seed as u64, pt, pv));
        }
        let s = summarise(&exp, &recs);
        let before = s.variants.iter().find(|v| v.name == "before").unwrap();
        let v = s.variants.iter().find(|v| v.name == *name).unwrap();
        proposal(&s, before, v)
    }

    const BEFORE: [(f64, f64); 3] = [(0.98, 0.95), (0.982, 0.95), (0.981, 0.951)];

    #[test]
    fn a_proposal_that_meets_every_goal_passes() {
        let g = graded(&BEFORE, &[(0.975, 0.97), (0.976, 0.97), (0.975, 0.971)]);
        assert_eq!(
            g[0], "try tanh/log_softmax/nll: PASS — meets all 3 goals",
            "{g:?}"
        );
        assert!(g[1].contains("\"architecture unchanged\": yes"), "{g:?}");
        assert!(
            g[2].contains(
                "above 90%\": yes — try tanh/log_softmax/nll reaches 97.03% test acc, 95% interval"
            ),
            "{g:?}"
        );
        assert!(g[3].contains("yes — the gap shrank"), "{g:?}");
    }

    #[test]
    fn a_proposal_that_misses_a_goal_fails_naming_it() {
        let g = graded(&BEFORE, &[(0.86, 0.85), (0.861, 0.85), (0.86, 0.851)]);
        assert_eq!(
            g[0], "try tanh/log_softmax/nll: FAIL — misses \"validation accuracy above 90%\"",
            "{g:?}"
        );
        assert!(g[2].contains("\": NO — "), "{g:?}");
        let g = graded(&BEFORE, &[(0.999, 0.95), (0.998, 0.95), (0.999, 0.951)]);
        assert!(
            g[0].contains("FAIL — misses \"overfitting reduced (smaller gap)\""),
            "{g:?}"
        );
        assert!(g[3].contains("NO — the gap grew"), "{g:?}");
    }

    #[test]
    fn undecided_goals_are_not_shown_and_say_how_to_show_them() {
        let g = graded(&BEFORE[..1], &[(0.975, 0.97)]);
        assert_eq!(
            g[0],
            "try tanh/log_softmax/nll: not shown — \"overfitting reduced (smaller gap)\" undecided; one seed gives no interval (use --seeds 3)",
            "{g:?}"
        );
        // One seed decides accuracy on its value, and says so.
        assert!(
            g[2].contains(": yes — ") && g[2].contains("--seeds 3 gives an interval"),
            "{g:?}"
        );
        // Accuracy whose interval straddles 90%.
        let g = graded(&BEFORE, &[(0.90, 0.88), (0.93, 0.92), (0.91, 0.90)]);
        assert!(
            g[0].starts_with(
                "try tanh/log_softmax/nll: not shown — \"validation accuracy above 90%\""
            ),
            "{g:?}"
        );
        assert!(
            g[2].contains("includes 90%; more seeds narrow it (e.g. --seeds 6)"),
            "{g:?}"
        );
    }

    #[test]
    fn a_changed_layer_size_fails_the_architecture_goal() {
        let exp = Experiment::exercise(&TrainConfig::default(), 0.2, vec![0]);
        let s = summarise(&exp, &[record("before", 0, 0, 0.98, 0.95)]);
        let a = s.variants.iter().find(|v| v.name == "before").unwrap();
        let mut b = a.clone();
        b.sizes = vec![784, 256, 10];
        let g = architecture(&[a, &b]).unwrap();
        assert_eq!(g.outcome, Outcome::No);
        assert!(
            g.line().contains("NO — not every variant is 784-128-64-10"),
            "{}",
            g.line()
        );
    }
}
