//! Reading records and checkpoints of format 1, where each epoch had `val_loss` and
//! `val_acc` (the test set's figures unless a validation set was held out, then
//! `test_loss`/`test_acc` beside them), a record's `final_val` was the test set's
//! figures without a hold-out, and its test confusion matrix was `val_confusion`.
//! Only the current names are ever written.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::records::{EpochStats, FORMAT};
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
        let err = epoch(json!({"epoch": 4, "train": {"loss": 0.1, "acc": 0.9}, "seconds": 0.5}))
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
