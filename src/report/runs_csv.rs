//! runs.csv: the long form of an experiment's results, one row per run and epoch, for
//! notebooks (`pandas.read_csv`) and spreadsheets.

use super::table::csv_field;
use crate::eval::Metrics;
use crate::store::records::{EpochStats, RunRecord};

/// The per-epoch figures of a record, by column name: the one place that says which
/// record field feeds which column.
fn epoch_figures(e: &EpochStats) -> [(&'static str, Option<f64>); 7] {
    [
        ("train_loss", Some(e.train.loss)),
        ("train_acc", Some(e.train.acc)),
        ("val_loss", e.val.map(|m| m.loss)),
        ("val_acc", e.val.map(|m| m.acc)),
        ("test_loss", Some(e.test.loss)),
        ("test_acc", Some(e.test.acc)),
        ("seconds", Some(e.seconds)),
    ]
}

/// The CSV text: a header, then per record (in the order given) one row per epoch.
pub fn runs_csv(records: &[RunRecord]) -> String {
    let zero = Metrics {
        loss: 0.0,
        acc: 0.0,
    };
    let template = EpochStats {
        epoch: 0,
        train: zero,
        val: None,
        test: zero,
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
            train: Metrics {
                loss: 0.5,
                acc: 0.9,
            },
            val: None,
            test: Metrics {
                loss: f64::NAN,
                acc: 0.8,
            },
            seconds: 1.5,
        };
        let r = RunRecord {
            history: vec![e(1), e(2)],
            label: "relu, x".into(),
            variant: "relu".into(),
            variant_index: 2,
            ..crate::report::exercise::tests::record("relu", 2, 0, 0.9, 0.8)
        };
        let csv = runs_csv(&[r]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "variant,label,variant_index,seed,epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,diverged"
        );
        assert_eq!(lines[2], "relu,\"relu, x\",2,0,2,0.5,0.9,,,,0.8,1.5,no");
        assert_eq!(lines.len(), 3);
    }
}
