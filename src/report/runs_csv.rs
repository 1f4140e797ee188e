//! runs.csv: the long form of an experiment's results, one row per run and epoch, for
//! notebooks (`pandas.read_csv`) and spreadsheets.

use super::table::csv_field;
use crate::train::{EpochStats, RunRecord};

/// The per-epoch figures of a record, by column name: the one place that says which
/// record field feeds which column.
fn epoch_figures(e: &EpochStats) -> [(&'static str, Option<f64>); 7] {
    [
        ("train_loss", Some(e.train_loss)),
        ("train_acc", Some(e.train_acc)),
        ("val_loss", Some(e.val_loss)),
        ("val_acc", Some(e.val_acc)),
        ("test_loss", e.test_loss),
        ("test_acc", e.test_acc),
        ("seconds", Some(e.seconds)),
    ]
}

/// The CSV text: a header, then per record (in the order given) one row per epoch.
pub fn runs_csv(records: &[RunRecord]) -> String {
    let template = EpochStats {
        epoch: 0,
        train_loss: 0.0,
        train_acc: 0.0,
        val_loss: 0.0,
        val_acc: 0.0,
        test_loss: None,
        test_acc: None,
        seconds: 0.0,
    };
    let mut out = String::from("variant,label,variant_index,seed,epoch");
    for (name, _) in epoch_figures(&template) {
        out.push(',');
        out.push_str(name);
    }
    out.push_str(",diverged\n");
    for r in records {
        for e in &r.history {
            out.push_str(&format!(
                "{},{},{},{},{}",
                csv_field(&r.variant),
                csv_field(&r.label),
                r.variant_index,
                r.config.seed,
                e.epoch
            ));
            for (_, v) in epoch_figures(e) {
                out.push(',');
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    out.push_str(&v.to_string());
                }
            }
            out.push_str(if r.diverged.is_some() {
                ",yes\n"
            } else {
                ",no\n"
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_run_and_epoch() {
        let e = |epoch| EpochStats {
            epoch,
            train_loss: 0.5,
            train_acc: 0.9,
            val_loss: f64::NAN,
            val_acc: 0.8,
            test_loss: None,
            test_acc: None,
            seconds: 1.5,
        };
        let mut r: RunRecord = serde_json::from_value(serde_json::json!({
            "actlab_version": "t", "label": "relu, x", "variant": "relu", "variant_index": 2,
            "config": crate::config::TrainConfig::default(),
            "dataset": {"name": "mnist", "sha256": [], "canonical": true, "n_train": 1, "n_test": 1},
            "params": 0, "history": [], "final_train": null, "final_val": null,
            "val_confusion": null, "diverged": null, "train_seconds": 0.0,
            "wall_seconds": 0.0, "complete": true
        }))
        .unwrap();
        r.history = vec![e(1), e(2)];
        let csv = runs_csv(&[r]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "variant,label,variant_index,seed,epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,diverged"
        );
        assert_eq!(lines[2], "relu,\"relu, x\",2,0,2,0.5,0.9,,0.8,,,1.5,no");
        assert_eq!(lines.len(), 3);
    }
}
