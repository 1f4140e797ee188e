//! Tuned comparisons and the held-out validation split, end to end through the CLI on
//! small MNIST slices: the test set never chooses, and tuned experiments shard, merge
//! and resume like plain ones.

mod common;

use std::path::Path;

use common::{actlab, data_dir, json_of, TempDir};
use serde_json::Value;

/// Run actlab with `args`, data from `data`, results into `out`; stdout and stderr.
fn run_ok(args: &[&str], data: &Path, out: &Path) -> String {
    let (stdout, stderr) = common::run_ok_with_stderr(
        actlab()
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .arg("--out")
            .arg(out),
    );
    stdout + &stderr
}

const TUNED: [&str; 16] = [
    "compare",
    "--activation",
    "relu,sigmoid",
    "--tune",
    "lr=1e-4,3e-3",
    "--val-split",
    "500",
    "--seeds",
    "2",
    "--epochs",
    "1",
    "--limit-train",
    "2000",
    "--limit-test",
    "500",
    "--no-diagnostics",
];

/// Each variant's name, chosen setting, and mean val and test accuracy, by name
/// (the ranking follows the test set, which differs between the two runs).
fn chosen(summary: &Value) -> Vec<(String, Value, f64, f64)> {
    summary["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["chosen"].clone(),
                v["val_acc"]["mean"].as_f64().unwrap(),
                v["test_acc"]["mean"].as_f64().unwrap(),
            )
        })
        .collect::<Vec<_>>()
        .tap_sort()
}

/// Sorting in an expression.
trait TapSort {
    fn tap_sort(self) -> Self;
}

impl TapSort for Vec<(String, Value, f64, f64)> {
    fn tap_sort(mut self) -> Self {
        self.sort_by(|a, b| a.0.cmp(&b.0));
        self
    }
}

/// A copy of the MNIST slice whose test labels are rotated by one class: a model's
/// test accuracy changes, but nothing it trains or validates on does.
fn with_shuffled_test_labels(dir: &Path) {
    common::write_small_mnist(dir, 2000, 500);
    let path = dir.join("t10k-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[8..] {
        *b = (*b + 1) % 10;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn the_test_set_never_chooses_a_setting() {
    let (a, b) = (TempDir::new("tune-a"), TempDir::new("tune-b"));
    let shuffled = TempDir::new("tune-shuffled-data");
    with_shuffled_test_labels(&shuffled.0);
    let text = run_ok(&TUNED, &data_dir(), &a.0);
    assert!(
        text.contains("chosen") && text.contains("test acc vs best"),
        "{text}"
    );
    run_ok(&TUNED, &shuffled.0, &b.0);
    let (real, fake) = (
        chosen(&json_of(&a.join("summary.json"))),
        chosen(&json_of(&b.join("summary.json"))),
    );
    assert_eq!((real.len(), fake.len()), (2, 2));
    for (r, f) in real.iter().zip(&fake) {
        // Same choice from the same validation figures...
        assert_eq!((&r.0, &r.1, r.2), (&f.0, &f.1, f.2));
        assert!(r.1["lr"].is_number(), "{:?}", r.1);
        // ...while the test figures are wholly different.
        assert!(r.3 > f.3 + 0.25, "test acc {} vs {}", r.3, f.3);
    }
    // The whole grid stays in the summary files and the report.
    let s = json_of(&a.join("summary.json"));
    assert_eq!(s["grid"].as_array().unwrap().len(), 4);
    let grid = std::fs::read_to_string(a.join("grid.csv")).unwrap();
    assert_eq!(grid.lines().count(), 5, "{grid}");
    // Each variant's kept point is marked in the `chosen` column.
    assert_eq!(grid.matches(",yes,").count(), 2, "{grid}");
    assert_eq!(grid.matches(",no,").count(), 2, "{grid}");
    let report = std::fs::read_to_string(a.join("report.html")).unwrap();
    assert!(report.contains("Tuning grid") && report.contains("outline:3px"));
    assert!(
        report.contains("test accuracy"),
        "the test set's curves are drawn apart"
    );
}

#[test]
fn tuned_comparisons_shard_merge_and_resume_like_plain_ones() {
    let whole = TempDir::new("tune-whole");
    run_ok(&TUNED, &data_dir(), &whole.0);
    let (s1, s2) = (TempDir::new("tune-s1"), TempDir::new("tune-s2"));
    for (k, dir) in [("1/2", &s1), ("2/2", &s2)] {
        let mut args = TUNED.to_vec();
        args.extend(["--shard", k, "--jobs", "1"]);
        let text = run_ok(&args, &data_dir(), &dir.0);
        assert!(
            text.contains(&format!("shard {k} done: 4 record(s)")),
            "{text}"
        );
    }
    let merged = TempDir::new("tune-merged");
    common::run_ok(
        actlab()
            .arg("merge")
            .arg(&s1.0)
            .arg(&s2.0)
            .arg("--out")
            .arg(&merged.0),
    );
    let without_time = |dir: &Path| {
        let mut v = json_of(&dir.join("summary.json"));
        for key in ["variants", "grid"] {
            for var in v[key].as_array_mut().unwrap() {
                var["seconds"] = Value::Null;
            }
        }
        v
    };
    assert_eq!(without_time(&merged.0), without_time(&whole.0));
    let mut args = TUNED.to_vec();
    args.push("--resume");
    let text = run_ok(&args, &data_dir(), &whole.0);
    assert_eq!(text.matches("(already done, reused)").count(), 8, "{text}");
}

#[test]
fn tuning_without_a_validation_split_is_refused() {
    let out = TempDir::new("tune-refused");
    let o = actlab()
        .args([
            "compare",
            "--activation",
            "relu",
            "--tune",
            "lr=1e-3,3e-3",
            "--out",
        ])
        .arg(&out.0)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--val-split"), "{err}");
}

#[test]
fn a_validation_split_reports_val_and_test_apart() {
    let out = TempDir::new("val-split-train");
    let text = run_ok(
        &[
            "train",
            "--val-split",
            "300",
            "--limit-train",
            "1500",
            "--limit-test",
            "200",
            "--epochs",
            "1",
        ],
        &data_dir(),
        &out.0,
    );
    assert!(
        text.contains("1200 train / 300 held-out val / 200 test"),
        "{text}"
    );
    let r = json_of(&out.join("record.json"));
    assert_eq!(
        (&r["dataset"]["n_train"], &r["dataset"]["n_val"]),
        (&1200.into(), &300.into())
    );
    let e = &r["history"][0];
    assert!(r["final_test"]["acc"].is_number() && e["test"]["acc"].is_number());
    assert!(r["final_val"]["acc"].is_number() && e["val"]["acc"].is_number());
    assert_ne!(r["final_test"], r["final_val"]);
    assert!(
        text.contains("val loss") && text.contains("test loss"),
        "{text}"
    );
}
