//! Checkpoints: everything needed to continue a run bit-identically (parameters,
//! optimiser moments, RNG state, history), in one safetensors file written atomically.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::TrainConfig;
use crate::model_io::{
    bail, buffer_tensors, invalid, read_tensors, stats_from, typed_tensors_to_bytes, Result, Values,
};
use crate::nn::norm::RunningStats;
use crate::nn::{Mlp, Optimizer, Rng};
use crate::store::records::EpochStats;
use crate::train::Trainer;

/// File name of a run's checkpoint inside its folder.
pub const FILE: &str = "checkpoint.safetensors";

/// A saved training state.
pub struct Checkpoint {
    /// The run's settings.
    pub cfg: TrainConfig,
    /// Parameters at the end of the last completed epoch.
    pub params: Vec<f32>,
    /// Batch norm's running statistics then (saved as `norm{i}.running_mean`, ...).
    pub stats: Vec<RunningStats>,
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
    /// Where the run lives and what it reads and writes, so `--resume DIR` alone
    /// continues it as it was started.
    pub origin: Option<RunOrigin>,
}

/// How the flat parameters and moments are laid out: weights input-major ([in, out]).
const LAYOUT: &str = "input-major";

/// The places a run was started with, all absolute.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunOrigin {
    /// The run folder the checkpoint belongs to.
    pub folder: std::path::PathBuf,
    /// The folder the dataset was read from.
    pub data_dir: Option<std::path::PathBuf>,
    /// Where the final model is saved (`--save`).
    pub save: Option<std::path::PathBuf>,
}

impl Checkpoint {
    /// Capture a trainer's state.
    pub fn of(tr: &Trainer<'_>) -> Checkpoint {
        Checkpoint {
            cfg: tr.cfg.clone(),
            params: tr.model.params.clone(),
            stats: tr.model.stats.clone(),
            m: tr.opt.m.clone(),
            v: tr.opt.v.clone(),
            t: tr.opt.t,
            rng: tr.rng.clone(),
            history: tr.history.iter().map(EpochStats::from).collect(),
            diagnostics: tr.recorder.as_ref().map(|r| r.diag.clone()),
            origin: None,
        }
    }

    /// The same state, remembering where its run lives.
    pub fn with_origin(self, origin: RunOrigin) -> Checkpoint {
        Checkpoint {
            origin: Some(origin),
            ..self
        }
    }

    /// Write to `dir/checkpoint.safetensors` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.save_file(&dir.join(FILE))
    }

    /// Write to the file `path` atomically.
    pub fn save_file(&self, path: &Path) -> Result<()> {
        let mut meta = BTreeMap::new();
        meta.insert("format".into(), "actlab-checkpoint".into());
        meta.insert("layout".into(), LAYOUT.into());
        meta.insert("config".into(), json(&self.cfg)?);
        meta.insert("rng".into(), json(&self.rng)?);
        meta.insert("history".into(), json(&self.history)?);
        meta.insert("optim_t".into(), self.t.to_string());
        if let Some(d) = &self.diagnostics {
            meta.insert("diagnostics".into(), json(d)?);
        }
        if let Some(o) = &self.origin {
            meta.insert("origin".into(), json(o)?);
        }
        let mut tensors: Vec<(String, Vec<usize>, Values<'_>)> = vec![
            (
                "params".into(),
                vec![self.params.len()],
                Values::F32(&self.params),
            ),
            ("optim.m".into(), vec![self.m.len()], Values::F32(&self.m)),
        ];
        if !self.v.is_empty() {
            tensors.push(("optim.v".into(), vec![self.v.len()], Values::F32(&self.v)));
        }
        tensors.extend(buffer_tensors(&self.cfg.arch(), &self.stats));
        let bytes = typed_tensors_to_bytes(&tensors, &meta)?;
        Ok(crate::store::write_file(path, &bytes)?)
    }

    /// Read `dir/checkpoint.safetensors`, refusing one whose sizes do not fit its config.
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join(FILE);
        if !path.exists() {
            bail!(
                "{}: no {FILE}; --resume needs the folder of a run started by `actlab train` (its --out)",
                dir.display()
            );
        }
        Checkpoint::load_file(&path)
    }

    /// Read the checkpoint file `path`.
    pub fn load_file(path: &Path) -> Result<Checkpoint> {
        let path = path.to_path_buf();
        let f = read_tensors(&path)?;
        let meta = Meta { f: &f, path: &path };
        let cfg: TrainConfig = meta.json("config")?;
        let rng: Rng = meta.json("rng")?;
        let history: Vec<EpochStats> = meta.json("history")?;
        let t: u64 = meta
            .get("optim_t")?
            .parse()
            .map_err(|e| meta.corrupt("optim_t", e))?;
        let diagnostics = meta.optional("diagnostics")?;
        let origin = meta.optional("origin")?;
        let mut c = Checkpoint {
            params: f.get(&path, "params")?.data.clone(),
            stats: stats_from(&f, &path, &cfg.arch(), "")?,
            m: f.get(&path, "optim.m")?.data.clone(),
            v: f.tensors
                .get("optim.v")
                .map(|t| t.data.clone())
                .unwrap_or_default(),
            cfg,
            t,
            rng,
            history,
            diagnostics,
            origin,
        };
        c.check_sizes(&path)?;
        // Checkpoints written before weights were stored input-major hold PyTorch's
        // [out, in] layout (no "layout" entry): convert parameters and moments alike.
        if f.metadata.get("layout").map(String::as_str) != Some(LAYOUT) {
            let arch = c.cfg.arch();
            c.params = arch.from_files(&c.params);
            c.m = arch.from_files(&c.m);
            if !c.v.is_empty() {
                c.v = arch.from_files(&c.v);
            }
        }
        Ok(c)
    }

    /// Parameters and optimiser moments must be finite and as many as the config needs.
    fn check_sizes(&self, path: &Path) -> Result<()> {
        if self.history.len() > self.cfg.epochs {
            bail!(
                "{}: the checkpoint records {} epochs but its run has only {}; the file is damaged, start the run again",
                path.display(),
                self.history.len(),
                self.cfg.epochs
            );
        }
        let n = self.cfg.arch().n_params();
        if self.params.len() != n {
            bail!(
                "{}: checkpoint holds {} parameters but its config needs {n}",
                path.display(),
                self.params.len()
            );
        }
        for (name, t) in [
            ("params", &self.params),
            ("optim.m", &self.m),
            ("optim.v", &self.v),
        ] {
            if let Some(i) = crate::model_io::first_non_finite(t) {
                bail!(
                    "{}: the checkpoint is invalid: tensor '{name}' holds {} at index {i} (a damaged file, not a diverged run: a diverged run never writes one); start the run again",
                    path.display(),
                    t[i]
                );
            }
        }
        let kind = self.cfg.optim().kind;
        let v_len = if kind.has_second_moments() { n } else { 0 };
        if self.m.len() != n || self.v.len() != v_len {
            bail!(
                "{}: checkpoint holds {} + {} optimiser moments but {kind:?} with {n} parameters needs {n} + {v_len}; the file is damaged, start the run again",
                path.display(),
                self.m.len(),
                self.v.len()
            );
        }
        Ok(())
    }

    /// A trainer that continues from this state on `split`.
    pub fn into_trainer(self, split: &crate::data::Split) -> Trainer<'_> {
        let mut model = Mlp::from_params(self.cfg.arch(), self.params);
        model.stats = self.stats;
        let mut tr = Trainer::with_state(self.cfg, split, model, self.rng);
        tr.opt = Optimizer {
            cfg: tr.opt.cfg,
            m: self.m,
            v: self.v,
            t: self.t,
        };
        tr.history = self.history.into_iter().map(Into::into).collect();
        if let (Some(r), Some(d)) = (tr.recorder.take(), self.diagnostics) {
            tr.recorder = Some(r.resume(d));
        }
        tr
    }
}

/// The metadata of a checkpoint file, read field by field with errors naming the file.
struct Meta<'a> {
    f: &'a crate::model_io::TensorFile,
    path: &'a Path,
}

impl Meta<'_> {
    fn get(&self, k: &str) -> Result<&String> {
        self.f.metadata.get(k).ok_or_else(|| {
            invalid!(
                "{}: not an actlab checkpoint (no '{k}')",
                self.path.display()
            )
        })
    }

    fn optional<T: serde::de::DeserializeOwned>(&self, k: &str) -> Result<Option<T>> {
        match self.f.metadata.get(k) {
            Some(s) => Ok(Some(
                serde_json::from_str(s).map_err(|e| self.corrupt(k, e))?,
            )),
            None => Ok(None),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(&self, k: &str) -> Result<T> {
        serde_json::from_str(self.get(k)?).map_err(|e| self.corrupt(k, e))
    }

    fn corrupt(&self, k: &str, e: impl std::fmt::Display) -> crate::model_io::ModelError {
        invalid!(
            "{}: corrupt checkpoint field '{k}': {e}",
            self.path.display()
        )
    }
}

/// `v` as JSON text for the checkpoint's metadata.
fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    Ok(serde_json::to_string(v)?)
}
