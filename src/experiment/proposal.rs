//! A learner's answer to the exercise (`exercise --try SPEC`): a variant spec that may
//! change only the hidden activations, the output function and the loss. Anything
//! else would break the exercise's rule "architecture unchanged" (and its fixed Adam
//! lr 1e-3, batch 64), so it is refused here, once, naming the rule.

use super::{parse_variant, Experiment, ExperimentError, Variant};
use crate::config::TrainConfig;
use crate::nn::formula::Formulas;

/// How a proposal's variant name starts: "try tanh/log_softmax/nll".
pub const PREFIX: &str = "try ";

/// The settings (TrainConfig fields) a proposal may change.
const FREE: [&str; 3] = ["activation", "output", "loss"];

/// The exercise's rule, as refusals quote it.
pub const RULE: &str = "the exercise's rule is \"architecture unchanged\": a proposal may change only the activations, the output function and the loss (784-128-64-10, Adam lr 1e-3, batch 64 and dropout stay as posed)";

/// Whether `name` is a proposal's variant.
pub fn is_proposal(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// The variant `spec` proposes on top of `base` (the exercise's "before"): missing
/// parts keep before's; refused, naming the rule, when it changes anything else.
pub fn parse(
    spec: &str,
    base: &TrainConfig,
    formulas: &Formulas,
) -> Result<Variant, ExperimentError> {
    let v = parse_variant(spec, base, formulas).map_err(|e| match e {
        ExperimentError::Invalid(m) => m.replacen("--variant", "--try", 1).into(),
        other => other,
    })?;
    let changed = changed_settings(base, &v.config);
    if !changed.is_empty() {
        return Err(format!("--try '{spec}': {} — {RULE}", changed.join(", ")).into());
    }
    Ok(Variant {
        name: format!("{PREFIX}{}", v.name),
        ..v
    })
}

/// The settings other than [`FREE`] that differ between `a` and `b`, as "+key=value".
fn changed_settings(a: &TrainConfig, b: &TrainConfig) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        // A config always serialises to an object; were it not to, refuse nothing
        // here: the runs still check every setting.
        return Vec::new();
    };
    // Both sides' keys: a record leaves out fields at their defaults.
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| !FREE.contains(&k.as_str()) && a.get(*k) != b.get(*k))
        .map(|k| {
            let v = b.get(k).map_or("default".into(), |v| v.to_string());
            format!("+{k}={}", v.trim_matches('"'))
        })
        .collect()
}

impl Experiment {
    /// The exercise with one variant per proposal in `specs` (activations may name
    /// `formulas`), each held to the exercise's rule.
    pub fn with_proposals(
        mut self,
        specs: &[String],
        formulas: &Formulas,
    ) -> Result<Experiment, ExperimentError> {
        if specs.is_empty() {
            return Ok(self);
        }
        let before = self
            .variants
            .iter()
            .find(|v| v.name == "before")
            .map(|v| v.config.clone())
            .ok_or("--try grades against the exercise's \"before\"; use it with actlab exercise")?;
        // The 90% goal and the claims are MNIST's.
        if before.dataset != crate::data::DatasetName::Mnist || before.data_file.is_some() {
            return Err("--try grades against the exercise's goals, set for MNIST: drop --dataset and --data-file (or use actlab compare on other data)".into());
        }
        for spec in specs {
            self.variants.push(parse(spec, &before, formulas)?);
        }
        self.check().map_err(|e| match e {
            ExperimentError::Invalid(m) => format!("--try: {m}").into(),
            other => other,
        })?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise() -> Experiment {
        Experiment::exercise(&TrainConfig::default(), 0.2, vec![0])
    }

    #[test]
    fn a_proposal_changes_activations_output_and_loss_only() {
        let exp = exercise()
            .with_proposals(&["tanh/log_softmax/nll".into()], &Formulas::default())
            .unwrap();
        let v = exp.variants.last().unwrap();
        assert_eq!(v.name, "try tanh/log_softmax/nll");
        assert!(is_proposal(&v.name) && !is_proposal("before"));
        let before = &exp.variants[0].config;
        assert_eq!(
            (v.config.hidden.clone(), v.config.lr, v.config.batch_size),
            (before.hidden.clone(), before.lr, before.batch_size)
        );
        // Missing parts keep before's output and loss.
        let exp = exercise()
            .with_proposals(&["tanh".into()], &Formulas::default())
            .unwrap();
        assert_eq!(
            exp.variants.last().unwrap().name,
            "try tanh/sigmoid/cross_entropy"
        );
    }

    #[test]
    fn proposals_may_use_formulas() {
        let mut formulas = Formulas::default();
        formulas
            .add(crate::nn::activation::define_spec("qg=x * sigmoid(1.702 * x)").unwrap())
            .unwrap();
        let exp = exercise()
            .with_proposals(&["qg/log_softmax/nll".into()], &formulas)
            .unwrap();
        assert_eq!(
            exp.variants.last().unwrap().config.activation[0].name(),
            "qg"
        );
    }

    #[test]
    fn anything_else_is_refused_naming_the_rule() {
        for (spec, named) in [
            ("relu/log_softmax/nll+hidden=256,128", "+hidden=[256,128]"),
            ("relu/log_softmax/nll+lr=0.01", "+lr=0.01"),
            ("relu/log_softmax/nll+dropout0.2", "+dropout=0.2"),
            ("relu/log_softmax/nll+batch_size=32", "+batch_size=32"),
            ("relu/log_softmax/nll+optimizer=sgd", "+optimizer=sgd"),
            ("relu/log_softmax/nll+norm=layer", "+norm=layer"),
            ("relu/log_softmax/nll+limit_train=100", "+limit_train=100"),
        ] {
            let e = exercise()
                .with_proposals(&[spec.into()], &Formulas::default())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(named) && e.contains("architecture unchanged"),
                "{spec}: {e}"
            );
        }
        let e = exercise()
            .with_proposals(&["rleu/log_softmax/nll".into()], &Formulas::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--try 'rleu") && e.contains("'relu'"), "{e}");
        let twice = ["tanh".to_string(), "tanh".to_string()];
        let e = exercise()
            .with_proposals(&twice, &Formulas::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--try") && e.contains("named"), "{e}");
        // A wrong number of per-layer activations is the config's own check.
        let e = exercise()
            .with_proposals(&["relu,tanh,gelu".into()], &Formulas::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--try"), "{e}");
    }
}
