//! Experiment files (TOML): a base config, variants that override it, seeds, formula
//! definitions and a tuning grid. Every key is checked where it is written, so an
//! error names the file, line and column of the key (or value) at fault.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{tune, Experiment, ExperimentError, ReportKind, Variant, MAX_RUNS};
use crate::config::TrainConfig;
use crate::nn::formula::Formulas;

/// A table whose keys and values remember where they were written.
type Located = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// The experiment file format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExperimentFile {
    name: Option<String>,
    #[serde(default)]
    report: ReportKind,
    seeds: Option<toml::Value>,
    #[serde(default)]
    base: Located,
    #[serde(default, rename = "variant")]
    variants: Vec<Located>,
    /// Formula activations, NAME = "FORMULA", usable in base and variants.
    #[serde(default)]
    define: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Settings to tune per variant: KEY = [V1, V2, ...].
    #[serde(default)]
    tune: toml::Table,
    /// TensorBoard event files under this folder (`--tensorboard` overrides it).
    tensorboard: Option<std::path::PathBuf>,
}

/// "line L, column C" of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> String {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    format!("line {line}, column {col}")
}

/// "line L, column C: message" for a TOML error (one line, no source excerpt).
pub fn toml_error(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => format!("{}: {msg}", line_col(text, span.start)),
        None => msg,
    }
}

/// The file being read: its text (for line numbers) and its name (for messages).
struct Source<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Source<'_> {
    /// "FILE: line L, column C: message" at byte `offset`.
    fn at(&self, offset: usize, msg: impl std::fmt::Display) -> ExperimentError {
        let msg = msg.to_string().trim().replace('\n', " ");
        format!("{}: {}: {msg}", self.origin, line_col(self.text, offset)).into()
    }
}

/// The `seeds` of an experiment file: a count (0..n) or a list; one seed (0) if absent.
fn toml_seeds(seeds: Option<toml::Value>, origin: &str) -> Result<Vec<u64>, ExperimentError> {
    Ok(match seeds {
        None => vec![0],
        Some(toml::Value::Integer(n)) if n > MAX_RUNS as i64 => {
            return Err(
                format!("{origin}: seeds = {n}: at most {MAX_RUNS} runs per experiment").into(),
            )
        }
        Some(toml::Value::Integer(n)) if n > 0 => (0..n as u64).collect(),
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_integer().filter(|&i| i >= 0).map(|i| i as u64))
            .collect::<Option<Vec<u64>>>()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{origin}: seeds must be a count or a list of whole numbers"))?,
        Some(_) => {
            return Err(format!(
                "{origin}: seeds must be a count (seeds = 3) or a list (seeds = [0, 1, 2])"
            )
            .into())
        }
    })
}

/// The formulas of `[define]`, each checked where it is written.
fn definitions(
    src: &Source<'_>,
    define: &BTreeMap<Spanned<String>, Spanned<String>>,
) -> Result<Formulas, ExperimentError> {
    let mut formulas = Formulas::default();
    for (name, text) in define {
        crate::nn::activation::define(name.get_ref(), text.get_ref())
            .and_then(|f| formulas.add(f))
            .map_err(|e| src.at(name.span().start, format!("[define] {e}")))?;
    }
    Ok(formulas)
}

/// Check each key of a `[base]` or `[[variant]]` table on its own (`where_` names the
/// table), so an unknown key or bad value is reported at its line and column.
fn check_keys(
    src: &Source<'_>,
    table: &Located,
    where_: &str,
    formulas: &Formulas,
) -> Result<(), ExperimentError> {
    let keys = TrainConfig::keys();
    for (key, value) in table {
        let k = key.get_ref();
        if k == "name" && where_ != "[base]" {
            if value.get_ref().as_str().is_none() {
                let v = value.get_ref();
                let hint = v.to_string().trim_matches('"').to_string();
                let msg = format!("{where_}: name = {v}: a name is text; write name = \"{hint}\"");
                return Err(src.at(value.span().start, msg));
            }
            continue;
        }
        if !keys.iter().any(|known| known == k) {
            let known: Vec<&str> = keys.iter().map(String::as_str).collect();
            let msg = crate::nn::names::unknown_name("key", k, &known);
            return Err(src.at(key.span().start, format!("{where_}: {msg}")));
        }
        let one = toml::Table::from_iter([(k.clone(), value.get_ref().clone())]);
        super::table_to_config(one, formulas)
            .map_err(|e| src.at(value.span().start, format!("{where_}: {k}: {e}")))?;
    }
    Ok(())
}

/// A plain table (keys and values without their places), without `name`.
fn plain(table: &Located) -> toml::Table {
    table
        .iter()
        .filter(|(k, _)| k.get_ref() != "name")
        .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
        .collect()
}

/// Variant `i` (1-based) of the file: `[base]` with the variant's keys over it.
fn variant(
    src: &Source<'_>,
    base: &toml::Table,
    v: &Located,
    i: usize,
    formulas: &Formulas,
) -> Result<Variant, ExperimentError> {
    let name = v
        .iter()
        .find(|(k, _)| k.get_ref() == "name")
        .and_then(|(_, val)| val.get_ref().as_str().map(str::to_string));
    let where_ = match &name {
        Some(n) => format!("variant {i} ('{n}')"),
        None => format!("variant {i}"),
    };
    check_keys(src, v, &where_, formulas)?;
    let mut table = base.clone();
    table.extend(plain(v));
    // Whole-config rules (e.g. one activation per layer) are blamed on the variant's
    // first key, or on the file when it has none.
    let start = v.keys().map(|k| k.span().start).min().unwrap_or(0);
    let config = super::table_to_config(table, formulas)
        .map_err(|e| src.at(start, format!("{where_}: {e}")))?;
    config
        .validate()
        .map_err(|e| src.at(start, format!("{where_}: {e}")))?;
    Ok(Variant {
        name: name.unwrap_or_else(|| config.label()),
        config,
        tune: None,
    })
}

impl Experiment {
    /// Parse an experiment TOML file's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Experiment, ExperimentError> {
        let f: ExperimentFile =
            toml::from_str(text).map_err(|e| format!("{origin}: {}", toml_error(&e, text)))?;
        let src = Source { text, origin };
        let seeds = toml_seeds(f.seeds, origin)?;
        let formulas = definitions(&src, &f.define)?;
        check_keys(&src, &f.base, "[base]", &formulas)?;
        if f.variants.is_empty() {
            return Err(format!(
                "{origin}: no [[variant]] tables; add at least one, e.g. [[variant]] activation = \"relu\""
            ).into());
        }
        let base = plain(&f.base);
        let variants = f
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| variant(&src, &base, v, i + 1, &formulas))
            .collect::<Result<Vec<_>, _>>()?;
        let exp = Experiment {
            name: f.name.unwrap_or_else(|| "experiment".into()),
            variants,
            seeds,
            report: f.report,
            tune: Vec::new(),
            tensorboard: f.tensorboard,
        };
        let axes = tune::axes_from_toml(&f.tune, origin)?;
        let exp = exp.tuned(axes).map_err(|e| format!("{origin}: {e}"))?;
        exp.check().map_err(|e| format!("{origin}: {e}"))?;
        Ok(exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_blamed_at_its_line_and_column() {
        let err = |text: &str| {
            Experiment::from_toml(text, "x.toml")
                .unwrap_err()
                .to_string()
        };
        let e = err("[base]\nepochs = 1\nactivaton = \"relu\"\n[[variant]]\nactivation = \"relu\"");
        assert!(
            e.starts_with("x.toml: line 3, column 1: [base]: unknown key 'activaton' (did you mean 'activation'?)"),
            "{e}"
        );
        let e = err("[[variant]]\nname = \"a\"\nlr = \"fast\"");
        assert!(
            e.starts_with("x.toml: line 3, column 6: variant 1 ('a'): lr: "),
            "{e}"
        );
        let e = err("[[variant]]\nactivation = \"relu\"\n[[variant]]\nactivation = \"rleu\"");
        assert!(
            e.starts_with("x.toml: line 4, column 14: variant 2: activation: ")
                && e.contains("did you mean 'relu'"),
            "{e}"
        );
        let e = err("[[variant]]\nhidden = [8]\nactivation = [\"relu\", \"tanh\"]");
        assert!(
            e.starts_with("x.toml: line 2, column 1: variant 1: --activation lists 2"),
            "{e}"
        );
        let e = err("[define]\nq = \"x *\"\n[[variant]]\nactivation = \"q\"");
        assert!(
            e.starts_with("x.toml: line 2, column 1: [define] --define q=x *"),
            "{e}"
        );
    }

    #[test]
    fn defined_formulas_are_held_by_the_variants_that_use_them() {
        let text = "[define]\nqg = \"x * sigmoid(1.702 * x)\"\n[[variant]]\nactivation = \"qg\"";
        let e = Experiment::from_toml(text, "f.toml").unwrap();
        let a = &e.variants[0].config.activation[0];
        assert_eq!(
            a.formula().map(|f| f.text.as_str()),
            Some("x * sigmoid(1.702 * x)")
        );
        assert_eq!(e.variants[0].name, "qg/log_softmax/nll");
    }
}
