//! Experiment files (TOML): a base config, variants that override it, seeds, formula
//! definitions and a tuning grid. Every key is checked where it is written, so an
//! error names the file, line and column of the key (or value) at fault.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::matrix::{self, Axis};
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
    /// Lists of values whose every combination is a variant (see [`super::matrix`]).
    #[serde(default)]
    matrix: Located,
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

/// The axes of a `[matrix]` in the order written, each value checked at its key's
/// line; also its name template and exclude entries.
#[allow(clippy::type_complexity)]
fn matrix_axes(
    src: &Source<'_>,
    table: &Located,
    formulas: &Formulas,
) -> Result<(Vec<Axis>, Option<String>, Vec<toml::Table>), ExperimentError> {
    let keys = TrainConfig::keys();
    let (mut axes, mut template, mut exclude) = (Vec::new(), None, Vec::new());
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (key, value) in entries {
        let (k, v, at) = (key.get_ref().as_str(), value.get_ref(), value.span().start);
        if k == matrix::NAME {
            let t = v.as_str().ok_or_else(|| {
                src.at(
                    at,
                    "[matrix]: name is a text template, e.g. name = \"{activation} x{depth}\"",
                )
            })?;
            template = Some(t.to_string());
        } else if k == matrix::EXCLUDE {
            let list = v.as_array().and_then(|a| {
                a.iter()
                    .map(|e| e.as_table().cloned())
                    .collect::<Option<Vec<_>>>()
            });
            exclude = list.ok_or_else(|| {
                src.at(at, "[matrix]: exclude is a list of tables, e.g. exclude = [{ activation = \"tanh\", init = [\"he\"] }]")
            })?;
        } else {
            let values = axis_values(src, (key, value), &keys, formulas)?;
            axes.push(Axis {
                key: k.to_string(),
                values,
            });
        }
    }
    for e in &exclude {
        if let Some(k) = e.keys().find(|k| !axes.iter().any(|a| &a.key == *k)) {
            let at = table
                .keys()
                .find(|k| k.get_ref() == matrix::EXCLUDE)
                .map_or(0, |k| k.span().start);
            return Err(src.at(
                at,
                format!("[matrix]: exclude names '{k}', which is not a key of the matrix"),
            ));
        }
    }
    Ok((axes, template, exclude))
}

/// One `[matrix]` axis's values (one value or a list), each checked on its own.
fn axis_values(
    src: &Source<'_>,
    (key, value): (&Spanned<String>, &Spanned<toml::Value>),
    keys: &[String],
    formulas: &Formulas,
) -> Result<Vec<toml::Value>, ExperimentError> {
    let (k, v, at) = (key.get_ref().as_str(), value.get_ref(), value.span().start);
    if k != matrix::DEPTH && !keys.iter().any(|known| known == k) {
        let mut known: Vec<&str> = keys.iter().map(String::as_str).collect();
        known.extend([matrix::DEPTH, matrix::NAME, matrix::EXCLUDE]);
        let msg = crate::nn::names::unknown_name("key", k, &known);
        return Err(src.at(key.span().start, format!("[matrix]: {msg}")));
    }
    let values = match v {
        toml::Value::Array(a) if a.is_empty() => {
            return Err(src.at(at, format!("[matrix]: {k} = []: list at least one value")))
        }
        toml::Value::Array(a) => a.clone(),
        one => vec![one.clone()],
    };
    for one in &values {
        let point = vec![(k.to_string(), one.clone())];
        matrix::table(&toml::Table::new(), &point)
            .map_err(ExperimentError::from)
            .and_then(|t| super::table_to_config(t, formulas))
            .map_err(|e| src.at(at, format!("[matrix]: {k} = {one}: {e}")))?;
    }
    Ok(values)
}

/// The variants a `[matrix]` expands into, over `[base]`.
fn matrix_variants(
    src: &Source<'_>,
    base: &toml::Table,
    table: &Located,
    formulas: &Formulas,
) -> Result<Vec<Variant>, ExperimentError> {
    let (axes, template, exclude) = matrix_axes(src, table, formulas)?;
    let start = table.keys().map(|k| k.span().start).min().unwrap_or(0);
    let points = matrix::points(&axes, &exclude);
    if points.is_empty() {
        return Err(src.at(
            start,
            "[matrix]: every combination is excluded; remove an exclude entry",
        ));
    }
    points
        .iter()
        .map(|p| {
            let name = matrix::name(template.as_deref(), p)
                .map_err(|e| src.at(start, format!("[matrix]: {e}")))?;
            let blame = |e: String| src.at(start, format!("[matrix] variant '{name}': {e}"));
            let t = matrix::table(base, p).map_err(blame)?;
            let config = super::table_to_config(t, formulas).map_err(|e| blame(e.to_string()))?;
            config.validate().map_err(|e| blame(e.to_string()))?;
            Ok(Variant {
                name,
                config,
                tune: None,
            })
        })
        .collect()
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
        if f.variants.is_empty() && f.matrix.is_empty() {
            return Err(format!(
                "{origin}: no [[variant]] tables and no [matrix]; add one, e.g. [[variant]] activation = \"relu\""
            ).into());
        }
        let base = plain(&f.base);
        let mut variants = f
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| variant(&src, &base, v, i + 1, &formulas))
            .collect::<Result<Vec<_>, _>>()?;
        if !f.matrix.is_empty() {
            variants.extend(matrix_variants(&src, &base, &f.matrix, &formulas)?);
        }
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
    use crate::nn::spec::{Norm, Pool};

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
    fn conv_pool_and_norm_are_keys_of_a_file() {
        let text = "[base]\nconv = [\"6:5:1:2\", \"16:5\"]\npool = \"avg\"\nnorm = \"layer\"\nhidden = [120, 84]\n[[variant]]\nactivation = \"tanh\"";
        let exp = Experiment::from_toml(text, "x.toml").unwrap();
        let c = &exp.variants[0].config;
        assert_eq!(c.conv.len(), 2);
        assert_eq!(
            (c.conv[0].channels, c.conv[0].pad, c.conv[1].kernel),
            (6, 2, 5)
        );
        assert_eq!((c.pool, c.norm), (Pool::Avg, Norm::Layer));
        let e = Experiment::from_toml("[base]\npool = \"mx\"\n[[variant]]\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.toml: line 2, column 8: [base]: pool: "),
            "{e}"
        );
    }

    #[test]
    fn matrix_errors_name_line_and_column() {
        let err = |text: &str| {
            Experiment::from_toml(text, "m.toml")
                .unwrap_err()
                .to_string()
        };
        let e = err("[matrix]\ndepth = [2]\nactivaton = [\"relu\"]");
        assert!(
            e.starts_with("m.toml: line 3, column 1: [matrix]: unknown key 'activaton'"),
            "{e}"
        );
        let e = err("[matrix]\nactivation = [\"relu\", \"rleu\"]");
        assert!(
            e.starts_with("m.toml: line 2, column 14: [matrix]: activation = \"rleu\": "),
            "{e}"
        );
        let e = err("[matrix]\ndepth = [2, 0]");
        assert!(e.contains("line 2, column 9: [matrix]: depth = 0: "), "{e}");
        let e = err("[matrix]\ndepth = [2]\nname = \"x{width}\"");
        assert!(e.contains("{width} is not a key of the matrix"), "{e}");
        let e = err("[matrix]\ndepth = [2]\nexclude = [{ init = \"he\" }]");
        assert!(
            e.starts_with("m.toml: line 3, column 1: [matrix]: exclude names 'init'"),
            "{e}"
        );
        let e = err("[matrix]\ndepth = [2, 3]\nexclude = [{ depth = [2, 3] }]");
        assert!(e.contains("every combination is excluded"), "{e}");
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
