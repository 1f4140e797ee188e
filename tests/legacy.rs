//! Records, checkpoints and shards written by the previous release (record format 1,
//! where "val" meant the test set unless a validation set was held out; made by the
//! commands in tests/fixtures/legacy/README.md) still load: `report`, `merge` and
//! `train --resume` read the right numbers from them.

mod common;

use std::path::{Path, PathBuf};

use actlab::checkpoint::Checkpoint;
use actlab::eval::Metrics;
use actlab::store::records::{read_record, FORMAT};
use common::{actlab, data_dir, json_of, run_ok, TempDir};
use serde_json::{json, Value};

fn legacy(rel: &str) -> PathBuf {
    common::repo("tests/fixtures/legacy").join(rel)
}

/// Copy the folder `from` (files and subfolders) to `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Format 1's figures under `loss_key` / `acc_key` of `v`.
fn old(v: &Value, loss_key: &str, acc_key: &str) -> Metrics {
    Metrics {
        loss: v[loss_key].as_f64().unwrap(),
        acc: v[acc_key].as_f64().unwrap(),
    }
}

/// A record's `final_*` figures as format 1 wrote them.
fn old_final(raw: &Value, key: &str) -> Metrics {
    serde_json::from_value(raw[key].clone()).unwrap()
}

#[test]
fn a_previous_release_record_reads_with_val_and_test_apart() {
    // With a held-out split, format 1's val was the split and test the test set.
    let path = legacy("train-done/record.json");
    let (raw, r) = (json_of(&path), read_record(&path).unwrap());
    assert!(
        raw.get("format").is_none(),
        "the fixture is of the previous format"
    );
    assert_eq!(r.format, FORMAT);
    assert_eq!(r.final_val, Some(old_final(&raw, "final_val")));
    assert_eq!(r.final_test, Some(old_final(&raw, "final_test")));
    assert_eq!(r.final_train, Some(old_final(&raw, "final_train")));
    let confusion: Vec<Vec<u32>> = serde_json::from_value(raw["val_confusion"].clone()).unwrap();
    assert_eq!(r.test_confusion, Some(confusion));
    let old_history = raw["history"].as_array().unwrap();
    assert_eq!(r.history.len(), old_history.len());
    for (e, o) in r.history.iter().zip(old_history) {
        assert_eq!(e.train, old(o, "train_loss", "train_acc"));
        assert_eq!(e.val, Some(old(o, "val_loss", "val_acc")));
        assert_eq!(e.test, old(o, "test_loss", "test_acc"));
    }
    // Without one, format 1's val was the test set.
    let path = legacy("shard-1/runs/relu_log_softmax_nll/seed-0.json");
    let (raw, r) = (json_of(&path), read_record(&path).unwrap());
    assert!(raw.get("final_test").is_none() && raw["dataset"]["n_val"].is_null());
    assert_eq!(r.final_val, None);
    assert_eq!(r.final_test, Some(old_final(&raw, "final_val")));
    let old_history = raw["history"].as_array().unwrap();
    assert_eq!(r.history.len(), old_history.len());
    for (e, o) in r.history.iter().zip(old_history) {
        assert_eq!((e.val, e.test), (None, old(o, "val_loss", "val_acc")));
    }
}

#[test]
fn report_on_a_previous_release_run_shows_its_test_and_val_figures() {
    let d = TempDir::new("legacy-report");
    copy_dir(&legacy("train-done"), &d.0);
    run_ok(
        actlab()
            .arg("report")
            .arg(&d.0)
            .arg("--data-dir")
            .arg(data_dir()),
    );
    let page = std::fs::read_to_string(d.join("report.html")).unwrap();
    let raw = json_of(&legacy("train-done/record.json"));
    let pct = |key: &str| format!("{:.2}%", old_final(&raw, key).acc * 100.0);
    // The results row: test acc, then val acc, then train acc.
    let row = format!(
        "<td class=\"r\">{}</td><td class=\"r\">{}</td><td class=\"r\">{}</td>",
        pct("final_test"),
        pct("final_val"),
        pct("final_train")
    );
    assert!(page.contains(&row), "no {row} in the page");
    for text in [
        "test acc",
        "val acc",
        "gap (train-val)",
        "validation accuracy (held out)",
    ] {
        assert!(page.contains(text), "no {text} in the page");
    }
}

#[test]
fn merge_of_previous_release_shards_summarises_the_test_set() {
    let d = TempDir::new("legacy-merge");
    let (a, b, out) = (d.join("a"), d.join("b"), d.join("merged"));
    copy_dir(&legacy("shard-1"), &a);
    copy_dir(&legacy("shard-2"), &b);
    run_ok(
        actlab()
            .arg("merge")
            .arg(&a)
            .arg(&b)
            .arg("--out")
            .arg(&out)
            .arg("--data-dir")
            .arg(data_dir()),
    );
    let s = json_of(&out.join("summary.json"));
    let variants = s["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    for v in variants {
        let slug = actlab::experiment::slug(v["name"].as_str().unwrap());
        // Format 1 without a hold-out: final_val is the test set's.
        let accs: Vec<f64> = [(&a, 0), (&b, 1)]
            .iter()
            .map(|(dir, seed)| {
                let r = json_of(&dir.join(format!("runs/{slug}/seed-{seed}.json")));
                old_final(&r, "final_val").acc
            })
            .collect();
        let mean = (accs[0] + accs[1]) / 2.0;
        assert!(
            (v["test_acc"]["mean"].as_f64().unwrap() - mean).abs() < 1e-12,
            "{v}"
        );
        assert_eq!(v["test_acc"]["n"], 2);
        assert!(v.get("val_acc").is_none(), "no split was held out: {v}");
    }
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(
        csv.lines().next().unwrap().contains(",test_acc_mean,"),
        "{csv}"
    );
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains("test acc vs best") && !page.contains("val acc"));
}

/// Point the checkpoint's run folder and data folder at `folder` and `data`, as if
/// the run had been started there (a checkpoint refuses to resume elsewhere).
fn set_origin(file: &Path, folder: &Path, data: &Path) {
    let bytes = std::fs::read(file).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let origin = json!({"folder": folder, "data_dir": data, "save": null});
    header["__metadata__"]["origin"] = Value::String(origin.to_string());
    let mut text = serde_json::to_vec(&header).unwrap();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[8 + n..]);
    std::fs::write(file, out).unwrap();
}

#[test]
fn train_resume_continues_a_previous_release_checkpoint_exactly() {
    let d = TempDir::new("legacy-resume");
    let (run, straight) = (d.join("run"), d.join("straight"));
    copy_dir(&legacy("train-stopped"), &run);
    let ckpt = run.join("checkpoint.safetensors");
    set_origin(&ckpt, &run, &data_dir().join("mnist"));
    // The checkpoint's epoch: format 1's val was the test set.
    let c = Checkpoint::load_file(&ckpt).unwrap();
    let raw = actlab::model_io::read_tensors(&ckpt).unwrap();
    let old_history: Value = serde_json::from_str(&raw.metadata["history"]).unwrap();
    let o = &old_history[0];
    assert!(
        o.get("val_acc").is_some(),
        "the fixture is of the previous format"
    );
    assert_eq!(c.history.len(), 1);
    assert_eq!(
        (c.history[0].val, c.history[0].test),
        (None, old(o, "val_loss", "val_acc"))
    );

    let text = run_ok(actlab().arg("train").arg("--resume").arg(&run));
    assert!(text.contains("continuing after epoch 1 of 2"), "{text}");
    run_ok(
        actlab()
            .args(["train", "--hidden", "16", "--limit-train", "2000"])
            .args(["--limit-test", "500", "--epochs", "2", "--data-dir"])
            .arg(data_dir())
            .arg("--out")
            .arg(&straight),
    );
    let resumed = common::record_without_timings(&run.join("record.json"));
    assert_eq!(
        resumed,
        common::record_without_timings(&straight.join("record.json"))
    );
    assert_eq!(resumed.history[0].test, old(o, "val_loss", "val_acc"));
}
