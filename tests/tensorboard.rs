//! `--tensorboard DIR` read back with TensorBoard's own reader (EventAccumulator, via
//! scripts/tensorboard_read.py): every scalar equals the run record's value, and the
//! histograms are there for every epoch.

mod common;

use std::path::PathBuf;

use common::{actlab, data_dir, json_of, repo, TempDir};
use serde_json::Value;

/// A Python that can import tensorboard: $ACTLAB_TB_PYTHON, else CI's venv.
fn python() -> PathBuf {
    let p = std::env::var_os("ACTLAB_TB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("target/ci-venv/bin/python"));
    let ok = std::process::Command::new(&p)
        .args(["-c", "import tensorboard"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{}: cannot import tensorboard; run .ci/run (it installs it) or set ACTLAB_TB_PYTHON",
        p.display()
    );
    p
}

/// What TensorBoard reads from `logdir`, by run.
fn read(logdir: &std::path::Path) -> Value {
    let o = std::process::Command::new(python())
        .arg(repo("scripts/tensorboard_read.py"))
        .arg(logdir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The (step, value) pairs of `tag` in a run, values as f64.
fn series(run: &Value, tag: &str) -> Vec<(u64, f64)> {
    run["scalars"][tag]
        .as_array()
        .unwrap_or_else(|| panic!("no scalar {tag}: {run}"))
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

/// The HParams session of a run: its options as in the record, and a finished status.
fn check_session(run: &Value, record: &Value, name: &str) {
    let h = &run["hparams"];
    let start = &h["session_start"];
    assert_eq!(start["group"], Value::from(name), "{h}");
    let hp = &start["hparams"];
    assert_eq!(hp["variant"], record["variant"], "{h}");
    let config = &record["config"];
    for key in ["lr", "seed", "epochs", "batch_size"] {
        assert_eq!(hp[key].as_f64(), config[key].as_f64(), "{key}: {h}");
    }
    for key in ["optimizer", "loss", "output"] {
        assert_eq!(hp[key], config[key], "{key}: {h}");
    }
    assert_eq!(h["session_end"], Value::from("STATUS_SUCCESS"), "{h}");
}

/// Every epoch figure, gradient sample, unit share and histogram of one record.
fn check_run(run: &Value, record: &Value) {
    let history = record["history"].as_array().unwrap();
    let per_epoch = |key: &str| -> Vec<(u64, f64)> {
        history
            .iter()
            .map(|e| {
                let v = e.pointer(key).unwrap_or_else(|| panic!("no {key} in {e}"));
                (e["epoch"].as_u64().unwrap(), v.as_f64().unwrap())
            })
            .collect()
    };
    for (tag, key) in [
        ("train/loss", "/train/loss"),
        ("train/accuracy", "/train/acc"),
        ("val/loss", "/val/loss"),
        ("val/accuracy", "/val/acc"),
        ("test/loss", "/test/loss"),
        ("test/accuracy", "/test/acc"),
        ("time/epoch_seconds", "/seconds"),
    ] {
        let want: Vec<(u64, f64)> = per_epoch(key)
            .into_iter()
            .map(|(s, v)| (s, v as f32 as f64))
            .collect();
        assert_eq!(series(run, tag), want, "{tag}");
    }
    let d = &record["diagnostics"];
    let steps = d["grad_steps"].as_array().unwrap();
    assert_eq!(steps.len(), d["grad_norms"].as_array().unwrap().len());
    for (l, name) in d["layers"].as_array().unwrap().iter().enumerate() {
        let name = name.as_str().unwrap();
        let want: Vec<(u64, f64)> = steps
            .iter()
            .zip(d["grad_norms"].as_array().unwrap())
            .map(|(s, n)| (s.as_u64().unwrap(), n[l].as_f64().unwrap() as f32 as f64))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(series(run, &format!("grad_norm/{name}")), want, "{name}");
        for kind in ["saturated", "dead"] {
            let want: Vec<(u64, f64)> = d["epochs"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| Some((e["epoch"].as_u64()?, e[kind][l].as_f64()? as f32 as f64)))
                .collect();
            if !want.is_empty() {
                assert_eq!(series(run, &format!("units/{kind}/{name}")), want);
            }
        }
    }
    let hidden = record["config"]["hidden"].as_array().unwrap();
    let epochs: Vec<u64> = (1..=history.len() as u64).collect();
    let h = &run["histograms"];
    let weights_fc1 = h["weights/fc1"].as_array().unwrap();
    let steps: Vec<u64> = weights_fc1.iter().map(|p| p[0].as_u64().unwrap()).collect();
    assert_eq!(steps, epochs);
    assert_eq!(
        weights_fc1[0][1].as_f64(),
        Some(784.0 * hidden[0].as_f64().unwrap())
    );
    for l in 1..=hidden.len() {
        assert_eq!(
            h[format!("activations/hidden{l}")]
                .as_array()
                .unwrap()
                .len(),
            epochs.len()
        );
    }
}

#[test]
#[ignore = "needs Python with the tensorboard package (.ci/run installs it into target/ci-venv)"]
fn tensorboard_reads_every_figure_of_every_run() {
    let (out, tb) = (TempDir::new("tb-out"), TempDir::new("tb-logs"));
    common::run_ok(
        actlab()
            .args([
                "compare",
                "--activation",
                "relu,sigmoid",
                "--seeds",
                "2",
                "--epochs",
                "2",
            ])
            .args([
                "--limit-train",
                "1500",
                "--limit-test",
                "300",
                "--val-split",
                "300",
            ])
            .arg("--data-dir")
            .arg(data_dir())
            .arg("--out")
            .arg(&out.0)
            .arg("--tensorboard")
            .arg(&tb.0),
    );
    let mut runs = read(&tb.0);
    // The log folder itself holds the HParams experiment: every option, the final metrics.
    let root = runs
        .as_object_mut()
        .unwrap()
        .remove(".")
        .expect("no experiment");
    let experiment = &root["hparams"]["experiment"];
    for name in ["variant", "activation", "lr", "seed", "hidden"] {
        assert!(
            experiment["hparams"]
                .as_array()
                .unwrap()
                .contains(&Value::from(name)),
            "{experiment}"
        );
    }
    for tag in ["val/accuracy", "test/accuracy", "train/loss"] {
        assert!(
            experiment["metrics"]
                .as_array()
                .unwrap()
                .contains(&Value::from(tag)),
            "{experiment}"
        );
    }
    let names: Vec<&String> = runs.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "relu_log_softmax_nll/seed-0",
            "relu_log_softmax_nll/seed-1",
            "sigmoid_log_softmax_nll/seed-0",
            "sigmoid_log_softmax_nll/seed-1"
        ]
    );
    for (name, run) in runs.as_object().unwrap() {
        let record = json_of(&out.join(&format!("runs/{name}.json")));
        check_run(run, &record);
        check_session(run, &record, name);
    }
    // Sigmoid layers report saturation, ReLU layers dead units.
    assert!(runs["sigmoid_log_softmax_nll/seed-0"]["scalars"]["units/saturated/fc1"].is_array());
    assert!(runs["relu_log_softmax_nll/seed-0"]["scalars"]["units/dead/fc1"].is_array());
}

#[test]
#[ignore = "needs Python with the tensorboard package (.ci/run installs it into target/ci-venv)"]
fn a_resumed_train_run_continues_its_tensorboard_run() {
    let (out, tb) = (TempDir::new("tb-train"), TempDir::new("tb-train-logs"));
    common::run_ok(
        actlab()
            .args([
                "train",
                "--epochs",
                "1",
                "--limit-train",
                "1200",
                "--limit-test",
                "200",
            ])
            .args(["--val-split", "200", "--data-dir"])
            .arg(data_dir())
            .arg("--tensorboard")
            .arg(&tb.0)
            .arg("--out")
            .arg(&out.0),
    );
    // The resumed run keeps its own settings; --epochs extends it.
    common::run_ok(
        actlab()
            .args(["train", "--epochs", "3", "--resume"])
            .arg(&out.0)
            .arg("--tensorboard")
            .arg(&tb.0),
    );
    let runs = read(&tb.0);
    let run = &runs["relu_log_softmax_nll/seed-0"];
    let record = json_of(&out.join("record.json"));
    check_run(run, &record);
    check_session(run, &record, "relu_log_softmax_nll/seed-0");
}
