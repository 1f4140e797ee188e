//! Experiments: named variants of a base config, run over several seeds.
//!
//! An experiment is the same thing whether it comes from `actlab exercise`,
//! `actlab compare` flags, or a TOML file; [`Experiment::jobs`] expands it into runs.

pub mod file;
pub mod folders;
pub mod jobs;
pub mod matrix;
pub mod proposal;
pub mod stats;
pub mod tune;

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::nn::formula::Formulas;
use crate::nn::{Activation, Loss, OutputFn};
use crate::store::StoreError;

/// A bad experiment (flags, variant specs, TOML files, folders) or a failure to
/// read or write its files.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// What is wrong and how to fix it, in one line.
    #[error("{0}")]
    Invalid(String),
    /// An experiment or run file.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A run's checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] crate::model_io::ModelError),
}

impl From<String> for ExperimentError {
    fn from(s: String) -> Self {
        ExperimentError::Invalid(s)
    }
}

impl From<&str> for ExperimentError {
    fn from(s: &str) -> Self {
        ExperimentError::Invalid(s.to_string())
    }
}

/// One configuration to compare, under a display name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Display name, unique within the experiment.
    pub name: String,
    /// Settings (the seed is replaced per run).
    pub config: TrainConfig,
    /// The variant and grid point this is, in a tuned comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<tune::TunePoint>,
}

/// Which summary an experiment prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// A ranked comparison table.
    #[default]
    Compare,
    /// The exercise's before/after table with claims and verdicts.
    Exercise,
}

/// What `run FILE` may override in every variant for a quick try; each run's record
/// holds the config it ran with, overrides included.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overrides {
    /// Passes over the training set.
    pub epochs: Option<usize>,
    /// Use only the first N training images.
    pub limit_train: Option<usize>,
    /// Use only the first N test images.
    pub limit_test: Option<usize>,
    /// Hold out N training images as the validation set.
    pub val_split: Option<usize>,
}

impl Overrides {
    /// Set what was given in every variant of `exp`, then check the experiment again.
    pub fn apply(&self, exp: &mut Experiment) -> Result<(), ExperimentError> {
        for v in &mut exp.variants {
            let c = &mut v.config;
            c.epochs = self.epochs.unwrap_or(c.epochs);
            c.limit_train = self.limit_train.or(c.limit_train);
            c.limit_test = self.limit_test.or(c.limit_test);
            c.val_split = self.val_split.or(c.val_split);
        }
        exp.check()
    }
}

/// Variants times seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Name, used in the default output folder.
    pub name: String,
    /// What to compare.
    pub variants: Vec<Variant>,
    /// Seeds each variant runs with.
    pub seeds: Vec<u64>,
    /// Which table to print.
    #[serde(default)]
    pub report: ReportKind,
    /// The grid each variant was tuned over (empty: a plain comparison).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tune: Vec<tune::TuneAxis>,
    /// Where an experiment file asks for TensorBoard event files (`tensorboard =
    /// "DIR"`); where to write is a choice of this invocation, not part of the spec.
    #[serde(skip)]
    pub tensorboard: Option<std::path::PathBuf>,
}

/// One run of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Position in the full (unsharded) job list.
    pub index: usize,
    /// Which variant.
    pub variant: usize,
    /// The variant's name.
    pub name: String,
    /// The complete config, seed included.
    pub config: TrainConfig,
}

impl Job {
    /// Where this run's record goes, relative to the experiment folder.
    pub fn record_path(&self) -> std::path::PathBuf {
        std::path::PathBuf::from("runs")
            .join(slug(&self.name))
            .join(format!("seed-{}.json", self.config.seed))
    }

    /// Where this run's model goes with `--save-models`, relative to the experiment
    /// folder (apart from `runs/`, since a model's metadata file is also `.json`).
    pub fn model_path(&self) -> std::path::PathBuf {
        model_path(&self.name, self.config.seed)
    }

    /// Where this run's checkpoint lives while it is unfinished, beside its record.
    pub fn checkpoint_path(&self) -> std::path::PathBuf {
        self.record_path().with_extension("checkpoint.safetensors")
    }
}

/// `models/<variant>/seed-<n>.safetensors`: a saved run's model in its experiment folder.
pub fn model_path(variant: &str, seed: u64) -> std::path::PathBuf {
    std::path::PathBuf::from("models")
        .join(slug(variant))
        .join(format!("seed-{seed}.safetensors"))
}

/// A file-name-safe version of a variant name: ASCII letters, digits, `.`, `-` and
/// `_`, never starting with a dot (so never `.` or `..`, nor a hidden file), never
/// empty, at most [`MAX_SLUG`] bytes; the display name stays in the records.
pub fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            c
        } else {
            '_'
        };
        if !(c == '_' && s.ends_with('_')) {
            s.push(c);
        }
    }
    let s = s.trim_matches(|c| c == '_' || c == '.');
    if s.is_empty() {
        return "unnamed".to_string();
    }
    if s.len() <= MAX_SLUG {
        return s.to_string();
    }
    // Too long for a file name: a prefix and a checksum of the whole name, unique.
    format!(
        "{}-{:08x}",
        &s[..MAX_SLUG - 9],
        crc32fast::hash(name.as_bytes())
    )
}

/// Longest folder name made from a variant name (file systems allow 255 bytes).
const MAX_SLUG: usize = 160;

/// Most runs one experiment may have (variants x seeds); larger sweeps are split into
/// several experiments (or shards of several).
pub const MAX_RUNS: usize = 100_000;

/// Parse `--seeds`: "0,1,2" lists seeds; a single number N means 0..N.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>, ExperimentError> {
    let parts: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let nums: Vec<u64> = parts
        .iter()
        .map(|p| {
            p.parse::<u64>().map_err(|_| {
                format!("--seeds '{s}': '{p}' is not a whole number (use e.g. 0,1,2 or 5)")
            })
        })
        .collect::<Result<_, _>>()?;
    let seeds = match nums.as_slice() {
        [] => return Err("--seeds: give a count (e.g. 5) or a list (e.g. 0,1,2)".into()),
        [n] if !s.contains(',') => {
            if *n == 0 {
                return Err("--seeds 0: run at least one seed".into());
            }
            if *n > MAX_RUNS as u64 {
                return Err(format!("--seeds {n}: at most {MAX_RUNS} runs per experiment").into());
            }
            (0..*n).collect()
        }
        _ => nums,
    };
    let mut sorted = seeds.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != seeds.len() {
        return Err(format!("--seeds '{s}': a seed is listed twice").into());
    }
    Ok(seeds)
}

/// `--seeds`: every seed an experiment's variants run with.
#[derive(Debug, Clone, PartialEq)]
pub struct Seeds(pub Vec<u64>);

impl std::str::FromStr for Seeds {
    type Err = ExperimentError;
    fn from_str(s: &str) -> Result<Seeds, ExperimentError> {
        parse_seeds(s).map(Seeds)
    }
}

/// `--shard K/N`: run only every N-th job, starting at the K-th (1-based).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shard {
    /// Which slice, 1..=n.
    pub k: usize,
    /// How many slices.
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = ExperimentError;
    fn from_str(s: &str) -> Result<Shard, ExperimentError> {
        parse_shard(s).map(|(k, n)| Shard { k, n })
    }
}

/// Parse `--shard K/N` (1-based K).
pub fn parse_shard(s: &str) -> Result<(usize, usize), ExperimentError> {
    let err = || format!("--shard '{s}': expected K/N with 1 <= K <= N, e.g. 2/8");
    let (k, n) = s.split_once('/').ok_or_else(err)?;
    let k: usize = k.trim().parse().map_err(|_| err())?;
    let n: usize = n.trim().parse().map_err(|_| err())?;
    if n == 0 || k == 0 || k > n {
        return Err(err().into());
    }
    Ok((k, n))
}

/// Apply `key=value` overrides (TOML values; bare words are strings) to a config; an
/// activation may name a formula of `formulas` or of the config itself.
pub fn apply_overrides(
    base: &TrainConfig,
    overrides: &[(String, String)],
    formulas: &Formulas,
) -> Result<TrainConfig, ExperimentError> {
    let mut table = toml::Table::try_from(base).map_err(|e| e.to_string())?;
    for (k, v) in overrides {
        let value = parse_value(k, v);
        table.insert(k.clone(), value);
    }
    let mut known = formulas.clone();
    for f in base.activation.iter().filter_map(Activation::formula_arc) {
        // The config's own formula under a name `formulas` also defines: `formulas` wins.
        let _ = known.add(f.clone());
    }
    table_to_config(table, &known)
}

/// Activation, hidden and conv lists accept "a,b" as well as TOML arrays.
pub(crate) fn parse_value(key: &str, v: &str) -> toml::Value {
    let list_key = matches!(key, "activation" | "hidden" | "conv");
    if list_key && !v.trim_start().starts_with('[') {
        let items = v.split(',').map(|p| parse_value("", p.trim()));
        return toml::Value::Array(items.collect());
    }
    toml::from_str::<toml::Table>(&format!("v = {v}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()))
}

/// Deserialize a merged table into a config, with TOML's message on error; names of
/// `formulas` in the activation list become the formulas they name.
pub fn table_to_config(
    table: toml::Table,
    formulas: &Formulas,
) -> Result<TrainConfig, ExperimentError> {
    let mut table = table;
    // A single activation may be written as a string, several as "a,b".
    if let Some(toml::Value::String(s)) = table.get("activation").cloned() {
        let items = s
            .split(',')
            .map(|p| toml::Value::String(p.trim().to_string()));
        table.insert("activation".into(), toml::Value::Array(items.collect()));
    }
    if let Some(toml::Value::Array(items)) = table.get_mut("activation") {
        for item in items.iter_mut() {
            let Some(name) = item.as_str() else { continue };
            if let Some(f) = formulas.get(name.trim()) {
                *item = toml::Value::String(format!("{}={}", f.name, f.text));
            }
        }
    }
    TrainConfig::deserialize(table)
        .map_err(|e| ExperimentError::Invalid(e.to_string().trim().replace('\n', " ")))
}

/// Parse a `--variant` spec: `ACT/OUTPUT/LOSS[+key=value...]`, where ACT may be a
/// comma list (one per hidden layer) and `+dropout0.2` is short for `+dropout=0.2`.
/// Missing parts keep the base config's values; `name=` sets the display name; an
/// activation may name one of `formulas`.
pub fn parse_variant(
    spec: &str,
    base: &TrainConfig,
    formulas: &Formulas,
) -> Result<Variant, ExperimentError> {
    let mut pieces = spec.split('+');
    let head = pieces.next().unwrap_or_default().trim();
    let mut overrides: Vec<(String, String)> = Vec::new();
    let parts: Vec<&str> = head.split('/').collect();
    if parts.len() > 3 {
        return Err(format!(
            "--variant '{spec}': expected ACTIVATION/OUTPUT/LOSS[+dropout0.2][+key=value], e.g. relu/log_softmax/nll+dropout0.2"
        ).into());
    }
    for (key, val) in ["activation", "output", "loss"].iter().zip(&parts) {
        if !val.trim().is_empty() {
            overrides.push((key.to_string(), val.trim().to_string()));
        }
    }
    let mut name = None;
    for p in pieces {
        let p = p.trim();
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => {
                let split = p
                    .find(|c: char| c.is_ascii_digit() || c == '.')
                    .unwrap_or(p.len());
                let (k, v) = p.split_at(split);
                if v.is_empty() {
                    return Err(format!(
                        "--variant '{spec}': '+{p}' needs a value, e.g. +dropout0.2 or +lr=0.01"
                    )
                    .into());
                }
                (k.to_string(), v.to_string())
            }
        };
        let k = match k.as_str() {
            "wd" => "weight_decay".to_string(),
            "bs" => "batch_size".to_string(),
            other => other.replace('-', "_"),
        };
        if k == "name" {
            name = Some(v);
        } else {
            overrides.push((k, v));
        }
    }
    let config = apply_overrides(base, &overrides, formulas)
        .map_err(|e| format!("--variant '{spec}': {e}"))?;
    Ok(Variant {
        name: name.unwrap_or_else(|| config.label()),
        config,
        tune: None,
    })
}

impl Experiment {
    /// `actlab compare`: one variant per activation of `base`'s list, or one per
    /// `--variant` spec (whose activations may name `formulas`) when any is given.
    pub fn compare(
        base: &TrainConfig,
        specs: &[String],
        formulas: &Formulas,
        seeds: Vec<u64>,
    ) -> Result<Experiment, ExperimentError> {
        let variants: Vec<Variant> = if specs.is_empty() {
            base.activation
                .iter()
                .map(|a| {
                    let config = TrainConfig {
                        activation: vec![a.clone()],
                        ..base.clone()
                    };
                    Variant {
                        name: config.label(),
                        config,
                        tune: None,
                    }
                })
                .collect()
        } else {
            specs
                .iter()
                .map(|v| parse_variant(v, base, formulas))
                .collect::<Result<_, _>>()?
        };
        Ok(Experiment {
            name: "compare".into(),
            variants,
            seeds,
            report: ReportKind::Compare,
            tune: Vec::new(),
            tensorboard: None,
        })
    }

    /// This experiment with each variant run at every point of the grid `axes`
    /// (unchanged for no axes); needs a held-out validation set to choose on.
    pub fn tuned(mut self, axes: Vec<tune::TuneAxis>) -> Result<Experiment, ExperimentError> {
        if axes.is_empty() {
            return Ok(self);
        }
        if self.report == ReportKind::Exercise {
            return Err(
                "the exercise compares fixed settings; tune with compare or an experiment file"
                    .into(),
            );
        }
        self.variants = tune::expand(&self.variants, &axes)?;
        self.tune = axes;
        self.check()?;
        Ok(self)
    }

    /// Every variant's settings are valid, names are unique (records are filed by
    /// name), and the runs are not too many.
    pub fn check(&self) -> Result<(), ExperimentError> {
        for v in &self.variants {
            v.config
                .validate()
                .map_err(|e| format!("variant '{}': {e}", v.name))?;
        }
        let runs = self.variants.len().saturating_mul(self.seeds.len());
        if runs > MAX_RUNS {
            return Err(format!(
                "{} variants x {} seeds = {runs} runs: at most {MAX_RUNS} per experiment; split the sweep",
                self.variants.len(),
                self.seeds.len()
            )
            .into());
        }
        let mut seeds = std::collections::HashSet::new();
        if let Some(s) = self.seeds.iter().find(|s| !seeds.insert(**s)) {
            return Err(format!(
                "seeds: seed {s} is listed twice; list each seed once (a repeated run would count as another sample)"
            )
            .into());
        }
        let mut seen = std::collections::HashMap::new();
        for v in &self.variants {
            if let Some(other) = seen.insert(slug(&v.name), &v.name) {
                let what = if *other == v.name {
                    format!("two variants are both named '{}'", v.name)
                } else {
                    format!(
                        "variants '{other}' and '{}' would share the folder name '{}'",
                        v.name,
                        slug(&v.name)
                    )
                };
                return Err(format!("{what}; give each a distinct name").into());
            }
        }
        Ok(())
    }

    /// The number of runs, without listing them.
    pub fn jobs_count(&self) -> usize {
        self.variants.len().saturating_mul(self.seeds.len())
    }

    /// Every run, variant-major, seeds in order.
    pub fn jobs(&self) -> Vec<Job> {
        let mut out = Vec::new();
        for (vi, v) in self.variants.iter().enumerate() {
            for &seed in &self.seeds {
                out.push(Job {
                    index: out.len(),
                    variant: vi,
                    name: v.name.clone(),
                    config: TrainConfig {
                        seed,
                        ..v.config.clone()
                    },
                });
            }
        }
        out
    }

    /// The runs of shard `k` of `n` (1-based): every n-th job starting at k-1.
    pub fn shard(&self, k: usize, n: usize) -> Vec<Job> {
        self.jobs()
            .into_iter()
            .filter(|j| j.index % n == k - 1)
            .collect()
    }

    /// The exercise as posed, plus the other reading of "before" and the dropout bonus.
    pub fn exercise(base: &TrainConfig, dropout: f32, seeds: Vec<u64>) -> Experiment {
        let with = |name: &str, act: Activation, output: OutputFn, loss: Loss, p: f32| Variant {
            name: name.to_string(),
            tune: None,
            config: TrainConfig {
                activation: vec![act],
                output,
                loss,
                dropout: p,
                ..base.clone()
            },
        };
        let (sigmoid, relu) = (Activation::Sigmoid, Activation::Relu);
        Experiment {
            name: "exercise".into(),
            variants: vec![
                with(
                    "before",
                    sigmoid.clone(),
                    OutputFn::Sigmoid,
                    Loss::CrossEntropy,
                    0.0,
                ),
                with(
                    "before (logits)",
                    sigmoid,
                    OutputFn::Identity,
                    Loss::CrossEntropy,
                    0.0,
                ),
                with("after", relu.clone(), OutputFn::LogSoftmax, Loss::Nll, 0.0),
                with(
                    "bonus (dropout)",
                    relu,
                    OutputFn::LogSoftmax,
                    Loss::Nll,
                    dropout,
                ),
            ],
            seeds,
            report: ReportKind::Exercise,
            tune: Vec::new(),
            tensorboard: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_safe() {
        assert_eq!(slug("before (logits)"), "before_logits");
        assert_eq!(
            slug("relu/log_softmax/nll+dropout0.2"),
            "relu_log_softmax_nll_dropout0.2"
        );
        for escape in ["..", ".", "/", "", "../..", "./x", ".hidden"] {
            let s = slug(escape);
            assert!(!s.is_empty() && !s.starts_with('.'), "{escape:?} -> {s:?}");
            assert!(!s.contains('/'), "{escape:?} -> {s:?}");
        }
        let long = |end: &str| format!("{}{end}", "a".repeat(300));
        let (a, b) = (slug(&long("x")), slug(&long("y")));
        assert!(a.len() <= MAX_SLUG && a != b, "{a} {b}");
    }

    #[test]
    fn variants_sharing_a_folder_and_repeated_seeds_are_refused() {
        let text = "seeds = [0, 0, 1]\n[[variant]]\nactivation = \"relu\"\n";
        let e = Experiment::from_toml(text, "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("seed 0 is listed twice"), "{e}");
        let text = "[[variant]]\nname = \"..\"\n[[variant]]\nname = \".\"\nactivation = \"tanh\"\n";
        let e = Experiment::from_toml(text, "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("would share the folder name 'unnamed'"), "{e}");
        let text = "[[variant]]\nname = 5\n";
        let e = Experiment::from_toml(text, "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("name = 5") && e.contains("\"5\""), "{e}");
    }

    #[test]
    fn seeds_and_shards_parse() {
        assert_eq!(parse_seeds("5").unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse_seeds("0,1,2").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_seeds("7,").unwrap(), vec![7]);
        assert!(parse_seeds("0").is_err());
        assert!(parse_seeds("1,1").is_err());
        assert!(parse_seeds("a").is_err());
        assert_eq!(parse_shard("2/8").unwrap(), (2, 8));
        assert!(parse_shard("0/8").is_err());
        assert!(parse_shard("9/8").is_err());
        assert!(parse_shard("2").is_err());
    }

    #[test]
    fn variant_specs() {
        let base = TrainConfig::default();
        let v =
            parse_variant("sigmoid/sigmoid/cross_entropy", &base, &Formulas::default()).unwrap();
        assert_eq!(v.config.activation, vec![Activation::Sigmoid]);
        assert_eq!(v.config.output, OutputFn::Sigmoid);
        assert_eq!(v.config.loss, Loss::CrossEntropy);
        assert_eq!(v.name, "sigmoid/sigmoid/cross_entropy");
        let v = parse_variant(
            "relu/log_softmax/nll+dropout0.2+lr=0.01+name=bonus",
            &base,
            &Formulas::default(),
        )
        .unwrap();
        assert_eq!((v.config.dropout, v.config.lr), (0.2, 0.01));
        assert_eq!(v.name, "bonus");
        let v = parse_variant("relu,tanh+hidden=256,128", &base, &Formulas::default()).unwrap();
        assert_eq!(v.config.hidden, vec![256, 128]);
        assert_eq!(v.config.activation.len(), 2);
        let v = parse_variant(
            "tanh+conv=6:5:1:2,16:5+pool=avg",
            &base,
            &Formulas::default(),
        )
        .unwrap();
        assert_eq!((v.config.conv.len(), v.config.conv[1].kernel), (2, 5));
        assert_eq!(v.config.pool, crate::nn::spec::Pool::Avg);
        assert!(
            parse_variant("rleu/log_softmax/nll", &base, &Formulas::default())
                .unwrap_err()
                .to_string()
                .contains("did you mean 'relu'")
        );
        assert!(parse_variant("relu+bogus=1", &base, &Formulas::default())
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
        assert!(parse_variant("relu+dropout", &base, &Formulas::default()).is_err());
        let dropout = parse_variant("relu+dropout1.5", &base, &Formulas::default()).unwrap();
        let exp = Experiment::compare(&base, &[], &Formulas::default(), vec![0]).unwrap();
        let exp = Experiment {
            variants: vec![dropout],
            ..exp
        };
        assert!(exp
            .check()
            .unwrap_err()
            .to_string()
            .contains("--dropout 1.5"));
    }

    #[test]
    fn toml_experiment() {
        let text = r#"
            name = "zoo"
            seeds = 2
            [base]
            epochs = 3
            [[variant]]
            activation = "relu"
            [[variant]]
            name = "smooth"
            activation = ["gelu", "silu"]
            dropout = 0.1
        "#;
        let e = Experiment::from_toml(text, "zoo.toml").unwrap();
        assert_eq!(e.seeds, vec![0, 1]);
        assert_eq!(e.variants[1].name, "smooth");
        assert_eq!(e.variants[1].config.epochs, 3);
        assert_eq!(e.jobs().len(), 4);
        assert_eq!(
            e.shard(1, 3).iter().map(|j| j.index).collect::<Vec<_>>(),
            vec![0, 3]
        );
        let err = Experiment::from_toml("[[variant]]\nactivaton = \"relu\"", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml") && err.contains("activaton"), "{err}");
        let tuned = "[base]\nval_split = 100\n[tune]\nlr = [0.001, 0.003]\ninit = [\"torch\", \"he\"]\n[[variant]]\nactivation = \"relu\"";
        let e = Experiment::from_toml(tuned, "t.toml").unwrap();
        assert_eq!(e.variants.len(), 4);
        assert_eq!(
            e.variants[3].name,
            "relu/log_softmax/nll [init=he, lr=0.003]"
        );
        assert_eq!(e.tune.len(), 2);
        let err = Experiment::from_toml(
            "[tune]\nlr = [0.001]\n[[variant]]\nactivation = \"relu\"",
            "u.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("u.toml") && err.contains("--val-split"),
            "{err}"
        );
        let e = Experiment::from_toml(
            "tensorboard = \"tb\"\n[[variant]]\nactivation = \"relu\"",
            "v.toml",
        )
        .unwrap();
        assert_eq!(e.tensorboard, Some("tb".into()));
        assert!(
            !serde_json::to_string(&e).unwrap().contains("tensorboard"),
            "not part of the spec"
        );
        let err = Experiment::from_toml("seeds = [", "y.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
