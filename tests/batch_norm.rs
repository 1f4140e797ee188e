//! Batch norm end to end through the command line: running statistics saved with the
//! model and the checkpoint, read back by `eval` and `--resume` (bit-identical to an
//! uninterrupted run), a batch of one image skipped with a warning, `--threads 2`.

mod common;

use std::path::Path;

use actlab::model_io::{load_model, read_tensors, save_model, stats_from};
use actlab::nn::norm::RunningStats;
use common::{actlab, fails, json_of, run_ok_with_stderr, TempDir};

/// A small batch-norm MLP run on the first `n` MNIST training images.
fn bn_train(out: &Path, n: usize, epochs: usize) -> std::process::Command {
    let mut c = actlab();
    c.args(["train", "--norm", "batch", "--hidden", "32,16"])
        .args([
            "--limit-train",
            &n.to_string(),
            "--epochs",
            &epochs.to_string(),
        ])
        .args(["--batch-size", "50", "--out"])
        .arg(out);
    c
}

/// The last epoch's test figures in a run's record.
fn last_test(run: &Path) -> serde_json::Value {
    let r = json_of(&run.join("record.json"));
    r["history"].as_array().unwrap().last().unwrap()["test"].clone()
}

/// `actlab eval MODEL --json` (the whole test set, as a run without --limit-test).
fn eval_json(model: &Path) -> serde_json::Value {
    let (out, _) = run_ok_with_stderr(actlab().arg("eval").arg(model).arg("--json"));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_saved_model_keeps_its_running_statistics_and_eval_uses_them() {
    let d = TempDir::new("bn-eval");
    let model = d.join("m.safetensors");
    run_ok_with_stderr(bn_train(&d.join("run"), 1000, 2).arg("--save").arg(&model));
    let file = read_tensors(&model).unwrap();
    let t = &file.tensors["norm1.num_batches_tracked"];
    assert_eq!(t.ints, [40], "int64, 20 batches in each of 2 epochs");
    let (m, meta) = load_model(&model, None).unwrap();
    assert_eq!(m.stats.len(), 2);
    assert!(m.stats.iter().all(|s| s.batches_tracked == 40));
    assert_ne!(m.stats[0], RunningStats::new(32), "the statistics moved");
    // eval's figures are the run's own test pass, so they used the same statistics...
    let (got, want) = (eval_json(&model), last_test(&d.join("run")));
    assert_eq!(got["accuracy"], want["acc"], "{got} vs {want}");
    assert_eq!(got["loss"], want["loss"]);
    // ...and with fresh statistics they would not be.
    let mut fresh = m.clone();
    fresh.stats = fresh
        .stats
        .iter()
        .map(|s| RunningStats::new(s.mean.len()))
        .collect();
    let reset = d.join("fresh.safetensors");
    save_model(&reset, &fresh, meta.config.as_ref().unwrap()).unwrap();
    assert_ne!(eval_json(&reset)["loss"], want["loss"]);
    // Two threads evaluate their batches with the saved statistics: the same report.
    let (two, _) =
        run_ok_with_stderr(
            actlab()
                .arg("eval")
                .arg(&model)
                .args(["--json", "--threads", "2"]),
        );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&two).unwrap(),
        got
    );
}

#[test]
fn a_resumed_batch_norm_run_matches_an_uninterrupted_one() {
    let d = TempDir::new("bn-resume");
    let (straight, cut) = (d.join("straight"), d.join("cut"));
    let limit = ["--limit-test", "300"];
    run_ok_with_stderr(
        bn_train(&straight, 600, 3)
            .args(limit)
            .arg("--save")
            .arg(d.join("a.safetensors")),
    );
    let o = bn_train(&cut, 600, 3)
        .args(limit)
        .arg("--save")
        .arg(d.join("b.safetensors"))
        .env("ACTLAB_TEST_HOOK", "abort@checkpoint:2")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the hook aborts the run");
    let ck = actlab::checkpoint::Checkpoint::load(&cut).unwrap();
    assert_eq!(ck.history.len(), 2);
    assert!(
        ck.stats.iter().all(|s| s.batches_tracked == 24),
        "12 batches x 2"
    );
    // A --save outside the run folder is only written when given again.
    run_ok_with_stderr(
        actlab()
            .args(["train", "--resume"])
            .arg(&cut)
            .arg("--save")
            .arg(d.join("b.safetensors")),
    );
    assert_eq!(
        common::record_without_timings(&cut.join("record.json")),
        common::record_without_timings(&straight.join("record.json")),
        "resumed record differs from the straight run"
    );
    let (a, b) = (d.join("a.safetensors"), d.join("b.safetensors"));
    let (fa, fb) = (read_tensors(&a).unwrap(), read_tensors(&b).unwrap());
    let arch = load_model(&a, None).unwrap().0.arch;
    assert_eq!(
        stats_from(&fa, &a, &arch, "").unwrap(),
        stats_from(&fb, &b, &arch, "").unwrap()
    );
    let mut names: Vec<_> = fa.tensors.keys().collect();
    names.sort();
    for name in names {
        assert_eq!(fa.tensors[name], fb.tensors[name], "{name}");
    }
}

#[test]
fn a_batch_of_one_image_is_skipped_with_one_warning() {
    let d = TempDir::new("bn-one");
    let model = d.join("m.safetensors");
    let mut c = actlab();
    c.args(["train", "--norm", "batch", "--hidden", "16"])
        .args(["--limit-train", "17", "--batch-size", "8", "--epochs", "2"])
        .args(["--limit-test", "50", "--out"])
        .arg(d.join("run"))
        .arg("--save")
        .arg(&model);
    let (_, err) = run_ok_with_stderr(&mut c);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("last batch has 1 image"), "{err}");
    let r = json_of(&d.join("run").join("record.json"));
    for e in r["history"].as_array().unwrap() {
        let loss = e["train"]["loss"].as_f64().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{e}");
    }
    let (m, _) = load_model(&model, None).unwrap();
    assert_eq!(m.stats[0].batches_tracked, 4, "2 batches of 8 per epoch");
    assert!(m.stats[0].var.iter().all(|v| v.is_finite()));
    fails(
        actlab()
            .args(["train", "--norm", "batch", "--batch-size", "1"])
            .args(["--limit-train", "5", "--out"])
            .arg(d.join("bad")),
        &["--batch-size 1 with --norm batch", "--batch-size 2"],
    );
}

#[test]
fn two_threads_with_batch_norm_train_as_one_and_say_so() {
    let d = TempDir::new("bn-threads");
    let (one, two) = (d.join("one"), d.join("two"));
    let limit = ["--limit-test", "300", "--threads"];
    run_ok_with_stderr(bn_train(&one, 300, 1).args(limit).arg("1"));
    let (_, err) = run_ok_with_stderr(bn_train(&two, 300, 1).args(limit).arg("2"));
    assert!(err.contains("--threads 2 with --norm batch"), "{err}");
    assert_eq!(
        common::record_without_timings(&one.join("record.json")).history,
        common::record_without_timings(&two.join("record.json")).history,
    );
}
