//! Checkpoints: everything needed to continue a run bit-identically (parameters,
//! optimiser moments, RNG state, history), in one safetensors file written atomically.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::atomic::write_atomic;
use crate::config::TrainConfig;
use crate::model_io::{read_tensors, tensors_to_bytes};
use crate::nn::{Mlp, Optimizer, Rng};
use crate::train::{EpochStats, Trainer};

/// File name of a run's checkpoint inside its folder.
pub const FILE: &str = "checkpoint.safetensors";

/// A saved training state.
pub struct Checkpoint {
    /// The run's settings.
    pub cfg: TrainConfig,
    /// Parameters at the end of the last completed epoch.
    pub params: Vec<f32>,
    /// Optimiser first moments / momentum buffer.
    pub m: Vec<f32>,
    /// Optimiser second moments (empty for SGD).
    pub v: Vec<f32>,
    /// Optimiser steps taken.
    pub t: u64,
    /// RNG state at the end of the last completed epoch.
    pub rng: Rng,
    /// Completed epochs.
    pub history: Vec<EpochStats>,
    /// Diagnostics so far.
    pub diagnostics: Option<crate::diagnostics::Diagnostics>,
}

impl Checkpoint {
    /// Capture a trainer's state.
    pub fn of(tr: &Trainer<'_>) -> Checkpoint {
        Checkpoint {
            cfg: tr.cfg.clone(),
            params: tr.model.params.clone(),
            m: tr.opt.m.clone(),
            v: tr.opt.v.clone(),
            t: tr.opt.t,
            rng: tr.rng.clone(),
            history: tr.history.clone(),
            diagnostics: tr.recorder.as_ref().map(|r| r.diag.clone()),
        }
    }

    /// Write to `dir/checkpoint.safetensors` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut meta = BTreeMap::new();
        meta.insert("format".into(), "actlab-checkpoint".into());
        meta.insert("config".into(), serde_json::to_string(&self.cfg)?);
        meta.insert("rng".into(), serde_json::to_string(&self.rng)?);
        meta.insert("history".into(), serde_json::to_string(&self.history)?);
        meta.insert("optim_t".into(), self.t.to_string());
        if let Some(d) = &self.diagnostics {
            meta.insert("diagnostics".into(), serde_json::to_string(d)?);
        }
        let mut tensors: Vec<(String, Vec<usize>, &[f32])> = vec![
            ("params".into(), vec![self.params.len()], &self.params),
            ("optim.m".into(), vec![self.m.len()], &self.m),
        ];
        if !self.v.is_empty() {
            tensors.push(("optim.v".into(), vec![self.v.len()], &self.v));
        }
        let bytes = tensors_to_bytes(&tensors, &meta)?;
        let path = dir.join(FILE);
        write_atomic(&path, &bytes).with_context(|| format!("{}: cannot write", path.display()))
    }

    /// Read `dir/checkpoint.safetensors`.
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join(FILE);
        if !path.exists() {
            anyhow::bail!(
                "{}: no {FILE}; --resume needs the folder of a run started by `actlab train` (its --out)",
                dir.display()
            );
        }
        let f = read_tensors(&path)?;
        let meta = |k: &str| -> Result<&String> {
            f.metadata
                .get(k)
                .with_context(|| format!("{}: not an actlab checkpoint (no '{k}')", path.display()))
        };
        let bad = |k: &str| format!("{}: corrupt checkpoint field '{k}'", path.display());
        let cfg: TrainConfig =
            serde_json::from_str(meta("config")?).with_context(|| bad("config"))?;
        let rng: Rng = serde_json::from_str(meta("rng")?).with_context(|| bad("rng"))?;
        let history: Vec<EpochStats> =
            serde_json::from_str(meta("history")?).with_context(|| bad("history"))?;
        let t: u64 = meta("optim_t")?.parse().with_context(|| bad("optim_t"))?;
        let diagnostics = f
            .metadata
            .get("diagnostics")
            .map(|s| serde_json::from_str(s))
            .transpose()
            .with_context(|| bad("diagnostics"))?;
        let params = f.get(&path, "params")?.data.clone();
        let m = f.get(&path, "optim.m")?.data.clone();
        let v = f
            .tensors
            .get("optim.v")
            .map(|t| t.data.clone())
            .unwrap_or_default();
        let n = cfg.arch().n_params();
        if params.len() != n {
            anyhow::bail!(
                "{}: checkpoint holds {} parameters but its config needs {n}",
                path.display(),
                params.len()
            );
        }
        let kind = cfg.optim().kind;
        let v_len = if kind == crate::nn::OptimKind::Adam {
            n
        } else {
            0
        };
        if m.len() != n || v.len() != v_len {
            anyhow::bail!(
                "{}: checkpoint holds {} + {} optimiser moments but {kind:?} with {n} parameters needs {n} + {v_len}; the file is damaged, start the run again",
                path.display(),
                m.len(),
                v.len()
            );
        }
        Ok(Checkpoint {
            cfg,
            params,
            m,
            v,
            t,
            rng,
            history,
            diagnostics,
        })
    }

    /// A trainer that continues from this state on `split`.
    pub fn into_trainer(self, split: &crate::data::Split) -> Trainer<'_> {
        let model = Mlp::from_params(self.cfg.arch(), self.params);
        let mut tr = Trainer::with_state(self.cfg, split, model, self.rng);
        tr.opt = Optimizer {
            cfg: tr.opt.cfg,
            m: self.m,
            v: self.v,
            t: self.t,
        };
        tr.history = self.history;
        if let (Some(r), Some(d)) = (tr.recorder.take(), self.diagnostics) {
            tr.recorder = Some(r.resume(d));
        }
        tr
    }
}
