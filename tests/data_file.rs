//! `--data-file FILE.npz`: the user's own data (scikit-learn's bundled digits and breast
//! cancer sets, see tests/fixtures/DATA-FILES.md) trains, evaluates, predicts and
//! resumes; every bad file gets one line and exit code 2.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{actlab, TempDir};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "failed: {err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn record(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("record.json")).unwrap()).unwrap()
}

#[test]
fn digits_reach_95_percent_and_the_model_knows_its_data() {
    let d = TempDir::new("digits");
    let (out, model) = (d.0.join("run"), d.0.join("m.safetensors"));
    let mut c = actlab();
    c.args(["train", "--epochs", "20", "--data-file"])
        .arg(fixture("digits.npz"))
        .arg("--out")
        .arg(&out)
        .arg("--save")
        .arg(&model);
    ok(&mut c);
    let r = record(&out);
    let acc = r["final_test"]["acc"].as_f64().unwrap();
    assert!(acc >= 0.95, "test accuracy {acc}");
    assert_eq!(r["dataset"]["name"], "file");
    assert_eq!(r["dataset"]["sha256"].as_array().unwrap().len(), 1);
    assert_eq!(r["config"]["data_shape"]["width"], 64);
    assert_eq!(
        r["config"]["data_shape"]["image"],
        serde_json::json!([8, 8])
    );
    assert_eq!(r["config"]["data_shape"]["classes"], 10);
    let eval = ok(actlab().arg("eval").arg(&model));
    assert!(eval.contains("on 360 test images"), "{eval}");
    let pred = ok(actlab()
        .arg("predict")
        .arg(&model)
        .args(["--test-index", "0..2"]));
    assert_eq!(pred.lines().count(), 2, "{pred}");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.0.join("m.json")).unwrap()).unwrap();
    assert_eq!(meta["shape"]["image"], serde_json::json!([8, 8]));
    assert_eq!(meta["sizes"], serde_json::json!([64, 128, 64, 10]));
}

#[test]
fn standardised_features_train_and_resume() {
    let d = TempDir::new("features");
    let out = d.0.join("run");
    let mut c = actlab();
    c.args([
        "train",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--data-file",
    ])
    .arg(fixture("breast_cancer.npz"))
    .arg("--out")
    .arg(&out);
    ok(&mut c);
    ok(actlab()
        .args(["train", "--epochs", "2", "--resume"])
        .arg(&out));
    let r = record(&out);
    assert_eq!(r["history"].as_array().unwrap().len(), 2);
    assert!(
        r["final_test"]["acc"].as_f64().unwrap() > 0.8,
        "{}",
        r["final_test"]
    );
    assert_eq!(r["config"]["data_shape"]["bytes"], false);
}

#[test]
fn a_comparison_on_8x8_digits_and_on_features_writes_its_report() {
    // The misclassified-image grids draw 28x28 images: they indexed past an 8x8 digit.
    for (name, file) in [("digits", "digits.npz"), ("features", "breast_cancer.npz")] {
        let d = TempDir::new(name);
        let mut c = actlab();
        c.args(["compare", "--activation", "relu,tanh", "--epochs", "1"])
            .arg("--data-file")
            .arg(fixture(file))
            .arg("--out")
            .arg(&d.0);
        ok(&mut c);
        let html = std::fs::read_to_string(d.0.join("report.html")).unwrap();
        assert!(html.contains("relu/log_softmax/nll"), "{name}");
        assert!(!html.contains("misclassified test images"), "{name}");
    }
}

#[test]
fn bad_files_get_one_line_and_exit_2() {
    let d = TempDir::new("badnpz");
    let cases = [
        ("bad-object.npz", "x_train holds Python objects"),
        ("bad-missing.npz", "no array 'y_test'"),
        ("bad-float-labels.npz", "labels must be integers"),
        (
            "too-many-classes.npz",
            "y_train[1000] = 1000: labels must be class numbers 0..K-1 with K at most 1000",
        ),
        ("DATA-FILES.md", "not an .npz file"),
        ("no-such.npz", "cannot read"),
    ];
    for (file, needle) in cases {
        let o = actlab()
            .args(["train", "--epochs", "1", "--data-file"])
            .arg(fixture(file))
            .arg("--out")
            .arg(d.0.join("run"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{file}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{file}: {err}");
        assert!(
            lines[0].contains(needle) && lines[0].contains(file),
            "{file}: {err}"
        );
    }
}

#[test]
fn a_thousand_classes_train_and_keep_no_confusion_matrix() {
    let d = TempDir::new("k1000");
    let (out, model) = (d.0.join("run"), d.0.join("m.safetensors"));
    let mut c = actlab();
    c.args(["train", "--epochs", "2", "--data-file"])
        .arg(fixture("classes-1000.npz"))
        .arg("--out")
        .arg(&out)
        .arg("--save")
        .arg(&model);
    ok(&mut c);
    let r = record(&out);
    assert_eq!(r["config"]["data_shape"]["classes"], 1000);
    assert!(r["final_test"]["loss"].as_f64().unwrap().is_finite());
    // A million-cell matrix would swamp the record; per-class accuracy stays.
    assert!(r["test_confusion"].is_null(), "{}", r["test_confusion"]);
    let per_class = r["diagnostics"]["per_class_acc"].as_array().unwrap();
    assert_eq!(per_class.len(), 1000);
    let eval = ok(actlab().arg("eval").arg(&model));
    assert!(eval.contains("no confusion matrix: 1000 classes"), "{eval}");
    let json = ok(actlab().arg("eval").arg(&model).arg("--json"));
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(j["confusion"].is_null());
    assert_eq!(j["per_class_accuracy"].as_array().unwrap().len(), 1000);
}

#[test]
fn three_hundred_classes_learn_and_the_report_stays_small() {
    let d = TempDir::new("k300");
    let mut c = actlab();
    c.args(["compare", "--activation", "relu,tanh", "--epochs", "10"])
        .arg("--data-file")
        .arg(fixture("classes-300.npz"))
        .arg("--out")
        .arg(&d.0);
    ok(&mut c);
    let html = std::fs::read_to_string(d.0.join("report.html")).unwrap();
    assert!(
        html.contains("300 classes: the per-class table and confusion matrices are left out"),
        "no note on the left-out tables"
    );
    assert!(html.len() < 400_000, "report.html is {} bytes", html.len());
    let charts: Vec<String> = std::fs::read_dir(d.0.join("charts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !charts.iter().any(|n| n.starts_with("confusion")),
        "{charts:?}"
    );
    let summary = std::fs::read_to_string(d.0.join("summary.md")).unwrap();
    assert!(
        summary.len() < 50_000,
        "summary.md is {} bytes",
        summary.len()
    );
    // Well-separated clusters: far above chance (1/300) after 10 epochs.
    let table = std::fs::read_to_string(d.0.join("summary.csv")).unwrap();
    let best = table.lines().nth(1).unwrap_or_default();
    let acc: f64 = best.split(',').nth(6).unwrap_or("").parse().unwrap_or(0.0);
    assert!(acc > 0.5, "test accuracy {acc} on 300 classes: {best}");
}
