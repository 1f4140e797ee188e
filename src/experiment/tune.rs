//! Tuned comparisons: every variant at every point of a grid of training settings.
//!
//! A grid point is an ordinary variant (named `VARIANT [lr=0.001]`), so jobs, shards,
//! `merge` and `--resume` treat tuned experiments exactly as plain ones; the summary
//! groups the points back by the variant they came from and picks one per variant on
//! the held-out validation set.

use serde::{Deserialize, Serialize};

use super::{apply_overrides, ExperimentError, Variant};

/// One tuned setting and the values it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneAxis {
    /// A training option, as in TOML (`lr`, `dropout`, `init`, ...).
    pub key: String,
    /// Its values, as written.
    pub values: Vec<String>,
}

/// Where a grid-point variant came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TunePoint {
    /// The name of the variant being tuned.
    pub of: String,
    /// The settings of this point, in axis order.
    pub setting: Vec<(String, String)>,
}

impl TunePoint {
    /// "lr=0.001, dropout=0.2".
    pub fn describe(&self) -> String {
        describe(&self.setting)
    }
}

/// "lr=0.001, dropout=0.2".
pub fn describe(setting: &[(String, String)]) -> String {
    let parts: Vec<String> = setting.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(", ")
}

/// Options a grid may not vary: they are not training settings of one run.
const NOT_TUNABLE: [(&str, &str); 5] = [
    ("seed", "seeds are set with --seeds"),
    (
        "val_split",
        "every point must be chosen on the same validation set",
    ),
    ("dataset", "compare datasets in separate experiments"),
    (
        "limit_test",
        "every point must be tested on the same test set",
    ),
    (
        "limit_train",
        "the validation set is held out of the training images, so every point must start from the same ones",
    ),
];

/// Parse `--tune KEY=V1,V2,...` (commas inside [...] belong to one value).
pub fn parse_axis(spec: &str) -> Result<TuneAxis, ExperimentError> {
    let (key, values) = spec.split_once('=').ok_or_else(|| {
        format!("--tune '{spec}': expected KEY=V1,V2,..., e.g. --tune lr=3e-4,1e-3,3e-3")
    })?;
    let key = key.trim().replace('-', "_");
    let mut out = Vec::new();
    let (mut depth, mut cur) = (0i32, String::new());
    for c in values.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out.retain(|v| !v.is_empty());
    axis(key, out, &format!("--tune '{spec}'"))
}

/// A `[tune]` table of an experiment file: `lr = [3e-4, 1e-3]`.
pub fn axes_from_toml(table: &toml::Table, origin: &str) -> Result<Vec<TuneAxis>, ExperimentError> {
    table
        .iter()
        .map(|(key, v)| {
            let where_ = format!("{origin}: [tune] {key}");
            let toml::Value::Array(items) = v else {
                return Err(format!(
                    "{where_}: give a list of values, e.g. {key} = [0.0003, 0.001]"
                )
                .into());
            };
            let values = items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            axis(key.clone(), values, &where_)
        })
        .collect()
}

fn axis(key: String, values: Vec<String>, where_: &str) -> Result<TuneAxis, ExperimentError> {
    if let Some((_, why)) = NOT_TUNABLE.iter().find(|(k, _)| *k == key) {
        return Err(format!("{where_}: '{key}' cannot be tuned: {why}").into());
    }
    if values.is_empty() {
        return Err(format!("{where_}: give at least one value").into());
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(v) = values.iter().find(|v| !seen.insert(v.as_str())) {
        return Err(format!("{where_}: the value {v} is listed twice").into());
    }
    Ok(TuneAxis { key, values })
}

/// Every combination of the axes' values, first axis slowest.
fn grid(axes: &[TuneAxis]) -> Vec<Vec<(String, String)>> {
    let mut points = vec![Vec::new()];
    for a in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                a.values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((a.key.clone(), v.clone()));
                    q
                })
            })
            .collect();
    }
    points
}

/// Each variant at each grid point, variant-major. Refused without a held-out
/// validation set: choosing on the test set would inflate the winner.
pub fn expand(variants: &[Variant], axes: &[TuneAxis]) -> Result<Vec<Variant>, ExperimentError> {
    let mut keys = std::collections::HashSet::new();
    if let Some(a) = axes.iter().find(|a| !keys.insert(a.key.as_str())) {
        return Err(format!(
            "--tune {}: the setting is tuned twice; give one list",
            a.key
        )
        .into());
    }
    check_grid_size(variants.len(), axes)?;
    let mut out = Vec::new();
    for v in variants {
        if v.config.val_split.is_none() {
            return Err("--tune chooses each variant's settings on a validation set: add --val-split N (e.g. 5000, or val_split in [base]) so the test set is never used to choose".into());
        }
        for setting in grid(axes) {
            let config = apply_overrides(&v.config, &setting, &Default::default())
                .map_err(|e| format!("--tune {}: {e}", describe(&setting)))?;
            config
                .validate()
                .map_err(|e| format!("--tune {}: {e}", describe(&setting)))?;
            out.push(Variant {
                name: format!("{} [{}]", v.name, describe(&setting)),
                config,
                tune: Some(TunePoint {
                    of: v.name.clone(),
                    setting,
                }),
            });
        }
    }
    Ok(out)
}

/// Refuse a grid of more than [`super::MAX_RUNS`] variant-points, counted by
/// multiplying the axis sizes before any point is built.
fn check_grid_size(variants: usize, axes: &[TuneAxis]) -> Result<(), ExperimentError> {
    let points = axes
        .iter()
        .try_fold(variants.max(1), |n, a| n.checked_mul(a.values.len()))
        .filter(|&n| n <= super::MAX_RUNS);
    if points.is_none() {
        let sizes: Vec<String> = axes.iter().map(|a| a.values.len().to_string()).collect();
        return Err(format!(
            "--tune: {variants} variant(s) x {} grid points is more than {} runs per experiment; use fewer values",
            sizes.join(" x "),
            super::MAX_RUNS
        )
        .into());
    }
    Ok(())
}

/// A tuned value as JSON: numbers stay numbers, words become strings.
pub fn json_value(key: &str, text: &str) -> serde_json::Value {
    serde_json::to_value(super::parse_value(key, text)).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;

    fn base() -> Variant {
        Variant {
            name: "relu".into(),
            config: TrainConfig {
                val_split: Some(100),
                ..TrainConfig::default()
            },
            tune: None,
        }
    }

    #[test]
    fn axes_parse_and_expand_into_named_points() {
        let lr = parse_axis("lr=3e-4,1e-3").unwrap();
        let init = parse_axis("init=torch,xavier").unwrap();
        let h = parse_axis("hidden=[128,64],[256]").unwrap();
        assert_eq!(h.values, vec!["[128,64]", "[256]"]);
        let v = expand(&[base()], &[lr, init]).unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[1].name, "relu [lr=3e-4, init=xavier]");
        assert_eq!(v[3].config.lr, 1e-3);
        assert_eq!(v[3].config.init, crate::nn::Init::Xavier);
        assert_eq!(json_value("lr", "1e-3"), serde_json::json!(0.001));
        assert_eq!(json_value("init", "xavier"), serde_json::json!("xavier"));
    }

    #[test]
    fn bad_grids_are_refused_with_the_reason() {
        let err = |r: Result<Vec<Variant>, ExperimentError>| r.unwrap_err().to_string();
        let plain = Variant {
            config: TrainConfig::default(),
            ..base()
        };
        let lr = parse_axis("lr=1e-3").unwrap();
        assert!(err(expand(&[plain], std::slice::from_ref(&lr))).contains("--val-split"));
        assert!(err(expand(&[base()], &[parse_axis("lrr=1").unwrap()])).contains("lrr"));
        assert!(err(expand(&[base()], &[parse_axis("lr=-1").unwrap()])).contains("--lr"));
        assert!(err(expand(&[base()], &[lr.clone(), lr])).contains("twice"));
        assert!(parse_axis("seed=1,2")
            .unwrap_err()
            .to_string()
            .contains("--seeds"));
        assert!(parse_axis("lr").is_err());
        assert!(parse_axis("lr=1,1")
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }

    #[test]
    fn huge_grids_are_refused_before_they_are_built() {
        let many = |key: &str| TuneAxis {
            key: key.into(),
            values: (0..1000).map(|i| format!("{}", i + 1)).collect(),
        };
        let axes = [many("batch_size"), many("epochs"), many("lr")];
        let e = expand(&[base()], &axes).unwrap_err().to_string();
        assert!(
            e.contains("1000 x 1000 x 1000") && e.contains("100000"),
            "{e}"
        );
        let e = parse_axis("limit_train=100,200").unwrap_err().to_string();
        assert!(e.contains("cannot be tuned"), "{e}");
    }
}
