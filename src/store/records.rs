//! Run records (`record.json`, `runs/<variant>/seed-<n>.json`) and the experiment spec
//! (`experiment.json`) of an output folder: what a run produced, built from a
//! trainer, written and read back (records of the previous format included).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::compat::{self, StoredEpoch};
use super::{read_json, write_json, StoreError};
use crate::config::TrainConfig;
use crate::data::Split;
use crate::diagnostics::Diagnostics;
use crate::eval::Metrics;
use crate::nn::Mlp;
use crate::train::{Divergence, EpochFigures, Progress, Trainer};

/// File name of a single run's record (`actlab train`).
pub const RECORD: &str = "record.json";
/// File name of an experiment's spec.
pub const SPEC: &str = "experiment.json";
/// Folder of an experiment's run records.
pub const RUNS: &str = "runs";
/// The record format written: 2 names the figures train / val (held out) / test;
/// records without a `format` are format 1, where "val" was the test set unless a
/// validation set was held out.
pub const FORMAT: u32 = 2;

/// The split runs are chosen and compared on (tuning, convergence, the overfitting
/// gap, the demo's pick): the held-out validation split when there is one, else the
/// test set. The one place that decides it.
pub fn compared_on<T>(val: Option<T>, test: T) -> T {
    val.unwrap_or(test)
}

/// One epoch's figures as stored (see [`EpochFigures`]); reads the format-1 names too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredEpoch")]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Running mean training loss and accuracy over the epoch's batches (dropout on).
    pub train: Metrics,
    /// The held-out validation split after the epoch (only with `val_split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<Metrics>,
    /// The test set after the epoch.
    pub test: Metrics,
    /// Seconds spent training this epoch (evaluation excluded).
    pub seconds: f64,
}

impl EpochStats {
    /// The figures this epoch is compared on (see [`compared_on`]).
    pub fn compared(&self) -> Metrics {
        compared_on(self.val, self.test)
    }
}

impl From<&EpochFigures> for EpochStats {
    fn from(e: &EpochFigures) -> Self {
        EpochStats {
            epoch: e.epoch,
            train: e.train,
            val: e.val,
            test: e.test,
            seconds: e.seconds,
        }
    }
}

impl From<EpochStats> for EpochFigures {
    fn from(e: EpochStats) -> Self {
        EpochFigures {
            epoch: e.epoch,
            train: e.train,
            val: e.val,
            test: e.test,
            seconds: e.seconds,
        }
    }
}

/// The dataset a run used, so a record says exactly what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Dataset name.
    pub name: String,
    /// SHA-256 of each decompressed file (train images, train labels, test images, test labels).
    pub sha256: Vec<String>,
    /// True if every checksum matches the canonical files.
    pub canonical: bool,
    /// Training images used.
    pub n_train: usize,
    /// Test images used.
    pub n_test: usize,
    /// Training images held out as the validation set (`val_split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_val: Option<usize>,
}

impl DatasetInfo {
    /// Describe `split`.
    pub fn of(split: &Split) -> Self {
        DatasetInfo {
            name: split.name.to_string(),
            sha256: split.sha256.to_vec(),
            canonical: split.is_canonical(),
            n_train: split.train.len(),
            n_test: split.test.len(),
            n_val: split.val.as_ref().map(|v| v.len()),
        }
    }
}

/// Everything a run produced: config, history, final metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Record format ([`FORMAT`] when written by this actlab).
    pub format: u32,
    /// actlab version that produced it.
    pub actlab_version: String,
    /// Short variant label, e.g. "relu/log_softmax/nll".
    pub label: String,
    /// Name of the experiment variant this run belongs to (the label for a lone run).
    #[serde(default)]
    pub variant: String,
    /// Position of that variant in its experiment.
    #[serde(default)]
    pub variant_index: usize,
    /// Full configuration (including the seed).
    pub config: TrainConfig,
    /// Dataset and checksums.
    pub dataset: DatasetInfo,
    /// Number of parameters.
    pub params: usize,
    /// Per-epoch figures.
    pub history: Vec<EpochStats>,
    /// Final metrics on the whole training set, in evaluation mode.
    pub final_train: Option<Metrics>,
    /// Final metrics on the held-out validation split (only with `val_split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_val: Option<Metrics>,
    /// Final metrics on the test set.
    pub final_test: Option<Metrics>,
    /// Confusion matrix on the test set at the end (rows true, columns predicted).
    pub test_confusion: Option<Vec<Vec<u32>>>,
    /// Set if the loss became NaN or infinite.
    pub diverged: Option<Divergence>,
    /// Gradient norms, layer statistics, per-class accuracy (unless turned off).
    #[serde(default)]
    pub diagnostics: Option<Diagnostics>,
    /// Seconds spent in training steps (validation excluded).
    pub train_seconds: f64,
    /// Wall-clock seconds for the whole run, evaluation included.
    pub wall_seconds: f64,
    /// True when every epoch ran (or the run diverged and was recorded as such).
    pub complete: bool,
}

impl RunRecord {
    /// The final figures this run is compared on (see [`compared_on`]).
    pub fn compared(&self) -> Option<Metrics> {
        self.final_test
            .map(|test| compared_on(self.final_val, test))
    }

    /// First epoch (1-based) whose compared accuracy reached `acc`, if any.
    pub fn epochs_to(&self, acc: f64) -> Option<usize> {
        self.history
            .iter()
            .find(|e| e.compared().acc >= acc)
            .map(|e| e.epoch)
    }

    /// This record with every timing set to 0: what two runs of the same settings share.
    pub fn without_timings(&self) -> RunRecord {
        let mut r = self.clone();
        r.train_seconds = 0.0;
        r.wall_seconds = 0.0;
        r.history.iter_mut().for_each(|e| e.seconds = 0.0);
        r
    }

    /// The record of a run still in progress (no final evaluation; `complete` is false).
    pub fn partial(tr: &Trainer<'_>, t0: Instant) -> RunRecord {
        RunRecord {
            format: FORMAT,
            actlab_version: env!("CARGO_PKG_VERSION").to_string(),
            label: tr.cfg.label(),
            variant: tr.cfg.label(),
            variant_index: 0,
            config: tr.cfg.clone(),
            dataset: DatasetInfo::of(tr.split()),
            params: tr.model.params.len(),
            history: tr.history.iter().map(EpochStats::from).collect(),
            final_train: None,
            final_val: None,
            final_test: None,
            test_confusion: None,
            diverged: tr.diverged.clone(),
            diagnostics: tr.recorder.as_ref().map(|r| r.diag.clone()),
            train_seconds: tr.history.iter().map(|e| e.seconds).sum(),
            wall_seconds: t0.elapsed().as_secs_f64(),
            complete: false,
        }
    }

    /// Final evaluation and the record of a trainer's run so far.
    pub fn finish(tr: &mut Trainer<'_>, t0: Instant) -> RunRecord {
        let mut r = RunRecord::partial(tr, t0);
        r.complete = tr.history.len() == tr.cfg.epochs || tr.diverged.is_some();
        if let Some(f) = tr.final_figures() {
            r.final_train = Some(f.train);
            r.final_val = f.val;
            r.final_test = Some(f.test.metrics);
            // Per-digit errors are the test set's: the figures a reader compares.
            if let Some(d) = &mut r.diagnostics {
                d.per_class_acc = f.test.per_class_acc();
                d.most_confused = f.test.most_confused(10);
                d.mistakes = crate::diagnostics::pick_mistakes(&f.mistakes, &d.most_confused);
            }
            r.test_confusion = Some(f.test.confusion);
        }
        r.wall_seconds = t0.elapsed().as_secs_f64();
        r
    }
}

/// Train to the end (or divergence / stop) and produce the record and the model.
pub fn train(
    cfg: &TrainConfig,
    split: &Split,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> (RunRecord, Mlp) {
    let t0 = Instant::now();
    let mut tr = Trainer::new(cfg.clone(), split);
    let _ = tr.run_remaining(progress, stop, |_| Ok::<(), std::convert::Infallible>(()));
    let record = RunRecord::finish(&mut tr, t0);
    (record, tr.model)
}

/// Write a record as pretty JSON, atomically.
pub fn write_record(path: &Path, record: &RunRecord) -> Result<(), StoreError> {
    write_json(path, record)
}

/// Read one run record, of this format or the previous one.
pub fn read_record(path: &Path) -> Result<RunRecord, StoreError> {
    let what = "a run record";
    let value = compat::upgrade_record(read_json(path, what)?)
        .map_err(|why| StoreError::Refused(format!("{}: {why}", path.display())))?;
    serde_json::from_value(value).map_err(|source| StoreError::Parse {
        path: path.to_path_buf(),
        what,
        source,
    })
}

/// The record in `path` if it holds a finished run of exactly `config`.
pub fn reusable(path: &Path, config: &TrainConfig) -> Option<RunRecord> {
    let r = read_record(path).ok()?;
    (r.complete && r.config == *config).then_some(r)
}

/// Write an experiment's spec into its folder.
pub fn write_spec<T: Serialize>(dir: &Path, spec: &T) -> Result<(), StoreError> {
    write_json(&dir.join(SPEC), spec)
}

/// The spec in `dir`, or `None` if there is none.
pub fn read_spec<T: DeserializeOwned>(dir: &Path) -> Result<Option<T>, StoreError> {
    let path = dir.join(SPEC);
    if !path.exists() {
        return Ok(None);
    }
    read_json(&path, "an actlab experiment file").map(Some)
}

/// Every run record under `dir/runs/<variant>/seed-<n>.json` with its path, in no
/// particular order.
pub fn read_run_records(dir: &Path) -> Result<Vec<(std::path::PathBuf, RunRecord)>, StoreError> {
    let mut out = Vec::new();
    let Ok(variants) = std::fs::read_dir(dir.join(RUNS)) else {
        return Ok(out);
    };
    for v in variants.flatten() {
        let Ok(files) = std::fs::read_dir(v.path()) else {
            continue;
        };
        for f in files.flatten() {
            let p = f.path();
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with("seed-") && name.ends_with(".json") {
                let r = read_record(&p)?;
                out.push((p, r));
            }
        }
    }
    Ok(out)
}
