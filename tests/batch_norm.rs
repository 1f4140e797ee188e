//! Batch norm end to end through the command line: running statistics saved with the
//! model and the checkpoint, read back by `eval` and `--resume` (bit-identical to an
//! uninterrupted run), a batch of one image skipped with a warning, `--threads` 2
//! and 3 against one.

mod common;

use std::path::Path;

use actlab::model_io::{load_model, read_tensors, save_model, stats_from};
use actlab::nn::norm::RunningStats;
use common::tolerance::check_close;
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
    resumed_matches_uninterrupted("1");
}

#[test]
fn a_resumed_batch_norm_run_on_two_threads_matches_an_uninterrupted_one() {
    resumed_matches_uninterrupted("2");
}

fn resumed_matches_uninterrupted(threads: &str) {
    let d = TempDir::new("bn-resume");
    let (straight, cut) = (d.join("straight"), d.join("cut"));
    let limit = ["--limit-test", "300", "--threads", threads];
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

/// The losses of two runs' records, epoch by epoch (train, then test).
fn losses(run: &Path) -> Vec<f32> {
    let r = json_of(&run.join("record.json"));
    let history = r["history"].as_array().unwrap();
    let of = |e: &serde_json::Value, k: &str| e[k]["loss"].as_f64().unwrap() as f32;
    history
        .iter()
        .flat_map(|e| [of(e, "train"), of(e, "test")])
        .collect()
}

/// Every tensor of two saved models, bit for bit.
fn same_tensors(a: &Path, b: &Path) {
    let (fa, fb) = (read_tensors(a).unwrap(), read_tensors(b).unwrap());
    let mut names: Vec<_> = fa.tensors.keys().collect();
    names.sort();
    assert_eq!(names.len(), fb.tensors.len());
    for name in names {
        assert_eq!(fa.tensors[name], fb.tensors[name], "{name}");
    }
}

/// Batch norm on 2 and 3 threads (the split batch's statistics added across the
/// workers; a last batch of 4 leaves the third worker no rows) gives the numbers of
/// one thread within the parity tolerance, with no warning, and the same bits on
/// every run with the same thread count.
fn threads_match_one(what: &str, train: impl Fn(&Path) -> std::process::Command) {
    let d = TempDir::new("bn-threads");
    let run = |name: &str, threads: &str| {
        let out = d.join(name);
        let mut c = train(&out);
        c.args(["--limit-test", "100", "--threads", threads, "--save"])
            .arg(d.join(&format!("{name}.safetensors")));
        let (_, err) = run_ok_with_stderr(&mut c);
        assert!(!err.contains("warning"), "{what}: {err}");
        out
    };
    let one = losses(&run("one", "1"));
    for threads in ["2", "3"] {
        let (a, b) = (
            run(&format!("a{threads}"), threads),
            run(&format!("b{threads}"), threads),
        );
        let got = losses(&a);
        let (rel, floor) = (1e-4, 1e-5);
        check_close(
            &format!("{what} --threads {threads}"),
            &got,
            &one,
            rel,
            floor,
        )
        .unwrap();
        assert_eq!(
            common::record_without_timings(&a.join("record.json")),
            common::record_without_timings(&b.join("record.json")),
            "{what}: two runs on {threads} threads differ"
        );
        let file = |name: &str| d.join(&format!("{name}{threads}.safetensors"));
        same_tensors(&file("a"), &file("b"));
    }
}

#[test]
fn an_mlp_with_batch_norm_trains_on_threads_as_on_one() {
    threads_match_one("MLP", |out| bn_train(out, 304, 2));
}

#[test]
fn lenet5_with_batch_norm_trains_on_threads_as_on_one() {
    threads_match_one("LeNet-5", |out| {
        let mut c = actlab();
        c.args(["train", "--model", "lenet5", "--norm", "batch"])
            .args([
                "--limit-train",
                "154",
                "--epochs",
                "1",
                "--batch-size",
                "50",
            ])
            .arg("--out")
            .arg(out);
        c
    });
}
