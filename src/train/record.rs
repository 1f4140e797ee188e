//! What a run produced: the per-epoch figures, the dataset it saw and the run record,
//! built from a trainer's state.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Divergence, Trainer};
use crate::config::TrainConfig;
use crate::data::Split;
use crate::diagnostics::Diagnostics;
use crate::eval::Metrics;

/// One epoch's figures. Train figures are running means over the epoch's batches
/// (in training mode, with dropout); validation is a full pass over the test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Training accuracy over the epoch's batches.
    pub train_acc: f64,
    /// Validation loss after the epoch.
    pub val_loss: f64,
    /// Validation accuracy after the epoch.
    pub val_acc: f64,
    /// Test loss after the epoch, when a validation set is held out (`val_split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    /// Test accuracy after the epoch, when a validation set is held out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_acc: Option<f64>,
    /// Seconds spent training this epoch (validation excluded).
    pub seconds: f64,
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
    /// Final metrics on the validation set (the test set unless `val_split` is set).
    pub final_val: Option<Metrics>,
    /// Final metrics on the test set, when a validation set is held out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_test: Option<Metrics>,
    /// Confusion matrix on the test set at the end (rows true, columns predicted).
    pub val_confusion: Option<Vec<Vec<u32>>>,
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
    /// First epoch (1-based) whose validation accuracy reached `acc`, if any.
    pub fn epochs_to(&self, acc: f64) -> Option<usize> {
        self.history
            .iter()
            .find(|e| e.val_acc >= acc)
            .map(|e| e.epoch)
    }
}

impl RunRecord {
    /// This record with every timing set to 0: what two runs of the same settings share.
    pub fn without_timings(&self) -> RunRecord {
        let mut r = self.clone();
        r.train_seconds = 0.0;
        r.wall_seconds = 0.0;
        r.history.iter_mut().for_each(|e| e.seconds = 0.0);
        r
    }
}

/// The record of a run still in progress (no final evaluation; `complete` is false).
pub fn finish_partial(tr: &Trainer<'_>, t0: Instant) -> RunRecord {
    RunRecord {
        actlab_version: env!("CARGO_PKG_VERSION").to_string(),
        label: tr.cfg.label(),
        variant: tr.cfg.label(),
        variant_index: 0,
        config: tr.cfg.clone(),
        dataset: DatasetInfo::of(tr.split),
        params: tr.model.params.len(),
        history: tr.history.clone(),
        final_train: None,
        final_val: None,
        final_test: None,
        val_confusion: None,
        diverged: tr.diverged.clone(),
        diagnostics: tr.recorder.as_ref().map(|r| r.diag.clone()),
        train_seconds: tr.history.iter().map(|e| e.seconds).sum(),
        wall_seconds: t0.elapsed().as_secs_f64(),
        complete: false,
    }
}

/// Final evaluation and the record of a trainer's run so far.
pub fn finish(tr: &mut Trainer<'_>, t0: Instant) -> RunRecord {
    let mut r = finish_partial(tr, t0);
    r.complete = tr.history.len() == tr.cfg.epochs || tr.diverged.is_some();
    if tr.diverged.is_none() && !tr.history.is_empty() {
        let train = tr.evaluate_train();
        // The last epoch's test pass saw this very model.
        let (test, wrong) = match tr.last_test.take() {
            Some((epoch, test, wrong)) if epoch == tr.history.len() => (test, wrong),
            _ => tr.test_pass(),
        };
        r.final_train = Some(train.metrics);
        if let (Some(_), Some(last)) = (&tr.split.val, tr.history.last()) {
            // The last epoch validated this very model: its figures are the final ones.
            r.final_val = Some(Metrics {
                loss: last.val_loss,
                acc: last.val_acc,
            });
            r.final_test = Some(test.metrics);
        } else {
            r.final_val = Some(test.metrics);
        }
        // Per-digit errors are the test set's: the figures a reader compares.
        if let Some(d) = &mut r.diagnostics {
            d.per_class_acc = test.per_class_acc();
            d.most_confused = test.most_confused(10);
            d.mistakes = crate::diagnostics::pick_mistakes(&wrong, &d.most_confused);
        }
        r.val_confusion = Some(test.confusion);
    }
    r.wall_seconds = t0.elapsed().as_secs_f64();
    r
}
