//! Run records (`record.json`, `runs/<variant>/seed-<n>.json`) and the experiment spec
//! (`experiment.json`) of an output folder: what a run produced, built from a
//! trainer, written and read back (records of the previous format included).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{read_json, write_json, StoreError};
use crate::config::TrainConfig;
use crate::data::Split;
use crate::diagnostics::Diagnostics;
use crate::eval::Metrics;
use crate::nn::Mlp;
use crate::train::{Divergence, EpochFigures, Progress, Trainer};
use compat::StoredEpoch;

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
            let classes = f.test.confusion.len();
            r.test_confusion = crate::eval::shows_confusion(classes).then_some(f.test.confusion);
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

/// Reading records and checkpoints of format 1, where each epoch had `val_loss` and
/// `val_acc` (the test set's figures unless a validation set was held out, then
/// `test_loss`/`test_acc` beside them), a record's `final_val` was the test set's
/// figures without a hold-out, and its test confusion matrix was `val_confusion`.
/// Only the current names are ever written.
mod compat {
    use serde::Deserialize;
    use serde_json::{Map, Value};

    use super::{EpochStats, FORMAT};
    use crate::eval::Metrics;

    /// An epoch as found in a file: the current names or format 1's.
    #[derive(Deserialize)]
    pub struct StoredEpoch {
        epoch: usize,
        seconds: f64,
        train: Option<Metrics>,
        val: Option<Metrics>,
        test: Option<Metrics>,
        train_loss: Option<f64>,
        train_acc: Option<f64>,
        val_loss: Option<f64>,
        val_acc: Option<f64>,
        test_loss: Option<f64>,
        test_acc: Option<f64>,
    }

    fn metrics(loss: Option<f64>, acc: Option<f64>) -> Option<Metrics> {
        Some(Metrics {
            loss: loss?,
            acc: acc?,
        })
    }

    impl TryFrom<StoredEpoch> for EpochStats {
        type Error = String;

        fn try_from(e: StoredEpoch) -> Result<Self, String> {
            let missing = || format!("epoch {}: no train, test figures", e.epoch);
            let (train, val, test) = match (e.train, e.test) {
                (Some(train), Some(test)) => (train, e.val, test),
                (None, None) => {
                    let train = metrics(e.train_loss, e.train_acc).ok_or_else(missing)?;
                    let first = metrics(e.val_loss, e.val_acc).ok_or_else(missing)?;
                    // Format 1 wrote test figures apart only beside a held-out split.
                    match metrics(e.test_loss, e.test_acc) {
                        Some(test) => (train, Some(first), test),
                        None => (train, None, first),
                    }
                }
                _ => return Err(missing()),
            };
            Ok(EpochStats {
                epoch: e.epoch,
                train,
                val,
                test,
                seconds: e.seconds,
            })
        }
    }

    /// A record's JSON in the current format: format 1 is renamed (its epochs are
    /// renamed as they are read); a newer format is refused.
    pub fn upgrade_record(mut v: Value) -> Result<Value, String> {
        let Some(r) = v.as_object_mut() else {
            return Ok(v);
        };
        match r.get("format").map(Value::as_u64) {
            None => from_format_1(r),
            Some(Some(n)) if n <= u64::from(FORMAT) => {}
            Some(_) => {
                return Err(format!(
                "record format {} is newer than this actlab reads ({FORMAT}); use a newer actlab",
                r["format"]
            ))
            }
        }
        Ok(v)
    }

    /// Format 1 to 2: without a held-out split, `final_val` was the test set's.
    fn from_format_1(r: &mut Map<String, Value>) {
        let held_out = r
            .get("dataset")
            .and_then(|d| d.get("n_val"))
            .is_some_and(|n| !n.is_null());
        if !held_out {
            let test = r.remove("final_val").unwrap_or(Value::Null);
            r.insert("final_test".into(), test);
        }
        let confusion = r.remove("val_confusion").unwrap_or(Value::Null);
        r.insert("test_confusion".into(), confusion);
        r.insert("format".into(), FORMAT.into());
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::store::records::RunRecord;
        use serde_json::json;

        fn epoch(v: Value) -> Result<EpochStats, serde_json::Error> {
            serde_json::from_value(v)
        }

        #[test]
        fn a_format_1_epoch_without_a_hold_out_is_the_test_sets() {
            let e = epoch(json!({"epoch": 1, "train_loss": 0.5, "train_acc": 0.8,
            "val_loss": 0.3, "val_acc": 0.9, "seconds": 1.5}))
            .unwrap();
            assert_eq!(
                e.train,
                Metrics {
                    loss: 0.5,
                    acc: 0.8
                }
            );
            assert_eq!(e.val, None);
            assert_eq!(
                e.test,
                Metrics {
                    loss: 0.3,
                    acc: 0.9
                }
            );
            assert_eq!(e.seconds, 1.5);
        }

        #[test]
        fn a_format_1_epoch_with_a_hold_out_keeps_both() {
            let e = epoch(json!({"epoch": 2, "train_loss": 0.5, "train_acc": 0.8,
            "val_loss": 0.3, "val_acc": 0.9, "test_loss": 0.4, "test_acc": 0.85,
            "seconds": 1.0}))
            .unwrap();
            assert_eq!(
                e.val,
                Some(Metrics {
                    loss: 0.3,
                    acc: 0.9
                })
            );
            assert_eq!(
                e.test,
                Metrics {
                    loss: 0.4,
                    acc: 0.85
                }
            );
        }

        #[test]
        fn an_epoch_is_written_with_the_current_names_and_read_back() {
            let e = EpochStats {
                epoch: 3,
                train: Metrics {
                    loss: 0.1,
                    acc: 0.9,
                },
                val: None,
                test: Metrics {
                    loss: 0.2,
                    acc: 0.8,
                },
                seconds: 0.5,
            };
            let text = serde_json::to_value(&e).unwrap();
            assert_eq!(
                text,
                json!({"epoch": 3, "train": {"loss": 0.1, "acc": 0.9},
                "test": {"loss": 0.2, "acc": 0.8}, "seconds": 0.5})
            );
            assert_eq!(epoch(text).unwrap(), e);
        }

        #[test]
        fn an_epoch_without_test_figures_is_refused() {
            let err =
                epoch(json!({"epoch": 4, "train": {"loss": 0.1, "acc": 0.9}, "seconds": 0.5}))
                    .unwrap_err();
            assert!(
                err.to_string().contains("epoch 4: no train, test figures"),
                "{err}"
            );
        }

        #[test]
        fn a_format_1_record_moves_the_test_figures_out_of_val() {
            let mut v = json!({"dataset": {"n_val": null}, "final_val": {"loss": 0.3, "acc": 0.9},
            "val_confusion": [[1]]});
            v = upgrade_record(v).unwrap();
            assert_eq!(v["format"], json!(FORMAT));
            assert_eq!(v["final_test"], json!({"loss": 0.3, "acc": 0.9}));
            assert!(v.get("final_val").is_none() && v.get("val_confusion").is_none());
            assert_eq!(v["test_confusion"], json!([[1]]));
            let held = json!({"dataset": {"n_val": 100}, "final_val": {"loss": 0.3, "acc": 0.9},
            "final_test": {"loss": 0.4, "acc": 0.8}});
            let held = upgrade_record(held).unwrap();
            assert_eq!(held["final_val"], json!({"loss": 0.3, "acc": 0.9}));
            assert_eq!(held["final_test"], json!({"loss": 0.4, "acc": 0.8}));
        }

        #[test]
        fn a_newer_record_format_is_refused_and_a_current_one_is_kept() {
            let err = upgrade_record(json!({"format": FORMAT + 1})).unwrap_err();
            assert!(err.contains("is newer than this actlab reads"), "{err}");
            let now = json!({"format": FORMAT, "final_val": {"loss": 1.0, "acc": 0.5}});
            assert_eq!(upgrade_record(now.clone()).unwrap(), now);
            // Without the upgrade a format-1 record is not silently taken as current.
            assert!(serde_json::from_value::<RunRecord>(json!({"label": "x"})).is_err());
        }
    }
}
