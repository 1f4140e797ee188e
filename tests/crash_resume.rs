//! Killed runs leave only whole files and resume exactly where they stopped; a
//! resumed run refuses changed settings.

mod common;

use std::path::{Path, PathBuf};

use common::{actlab, fails, write_small_mnist, TempDir};

/// Files a run folder holds must always parse, whatever moment the process dies.
fn all_files_parse(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p: PathBuf = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // a temporary file of an interrupted write, never a result
        }
        if name.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{name} is torn: {e}"));
        } else if name.ends_with(".safetensors") {
            actlab::model_io::read_tensors(&p).unwrap_or_else(|e| panic!("{name} is torn: {e}"));
        }
    }
}

/// `actlab train` of 4 short epochs into `out`, optionally with a test hook.
fn short_train(out: &Path, hook: Option<&str>) -> std::process::Output {
    let mut c = actlab();
    c.args(common::SHORT_TRAIN).arg("--out").arg(out);
    if let Some(h) = hook {
        c.env("ACTLAB_TEST_HOOK", h);
    }
    c.output().unwrap()
}

/// The process ended by SIGABRT, as the `abort` hook ends it.
fn aborted(o: &std::process::Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    o.status.signal() == Some(libc::SIGABRT)
}

fn record_epochs(dir: &Path) -> usize {
    common::json_of(&dir.join("record.json"))["history"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn a_crash_at_any_write_leaves_whole_files_and_resume_matches_a_straight_run() {
    let d = TempDir::new("crash");
    let straight = d.join("straight");
    let o = short_train(&straight, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // (point, epoch, epochs in the record after the crash, in the checkpoint)
    for (point, epoch, in_record, in_checkpoint) in [
        ("checkpoint", 2, 1, 2),
        ("record", 2, 2, 2),
        ("record", 4, 4, 4),
    ] {
        let out = d.join(&format!("{point}-{epoch}"));
        let o = short_train(&out, Some(&format!("abort@{point}:{epoch}")));
        assert!(aborted(&o), "{point}:{epoch}: {:?}", o.status);
        all_files_parse(&out);
        assert_eq!(record_epochs(&out), in_record, "{point}:{epoch}");
        let ck = actlab::checkpoint::Checkpoint::load(&out).unwrap();
        assert_eq!(ck.history.len(), in_checkpoint, "{point}:{epoch}");
        let o = actlab()
            .arg("train")
            .arg("--resume")
            .arg(&out)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            text.contains(&format!("continuing after epoch {in_checkpoint} of 4")),
            "{text}"
        );
        all_files_parse(&out);
        assert_eq!(
            common::record_without_timings(&out.join("record.json")),
            common::record_without_timings(&straight.join("record.json")),
            "{point}:{epoch}: resumed record differs from the straight run"
        );
    }
}

#[test]
fn a_resume_first_brings_a_lagging_record_up_to_the_checkpoint() {
    let d = TempDir::new("lagging");
    let out = d.join("run");
    let o = short_train(&out, Some("abort@checkpoint:3"));
    assert!(aborted(&o));
    assert_eq!(record_epochs(&out), 2);
    // The resume itself crashes right after its first checkpoint: by then the record
    // must already agree with the checkpoint it resumed from, or be newer.
    let o = actlab()
        .arg("train")
        .arg("--resume")
        .arg(&out)
        .env("ACTLAB_TEST_HOOK", "abort@checkpoint:4")
        .output()
        .unwrap();
    assert!(aborted(&o));
    assert_eq!(
        record_epochs(&out),
        3,
        "record rewritten from the checkpoint"
    );
}

#[test]
fn a_crash_between_summary_files_is_repaired_by_resume() {
    let d = TempDir::new("summary-crash");
    let out = d.join("cmp");
    let cmp = |hook: Option<&str>, resume: bool| {
        let mut c = actlab();
        c.args([
            "compare",
            "--activation",
            "relu,tanh",
            "--seeds",
            "1",
            "--epochs",
            "1",
        ])
        .args([
            "--limit-train",
            "1000",
            "--limit-test",
            "200",
            "--jobs",
            "1",
            "--out",
        ])
        .arg(&out);
        if resume {
            c.arg("--resume");
        }
        if let Some(h) = hook {
            c.env("ACTLAB_TEST_HOOK", h);
        }
        c.output().unwrap()
    };
    let o = cmp(Some("abort@summary:1"), false);
    assert!(aborted(&o), "{:?}", o.status);
    all_files_parse(&out);
    assert!(out.join("summary.json").exists());
    assert!(
        !out.join("summary.md").exists(),
        "crashed before the later files"
    );
    let o = cmp(None, true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    all_files_parse(&out);
    for f in ["summary.json", "summary.csv", "summary.md", "report.html"] {
        assert!(out.join(f).exists(), "{f} missing after resume");
    }
}

#[test]
fn an_adam_checkpoint_without_its_second_moments_is_refused() {
    let d = TempDir::new("moments");
    let out = d.join("run");
    let o = short_train(&out, Some("abort@record:1"));
    assert!(aborted(&o));
    let mut ck = actlab::checkpoint::Checkpoint::load(&out).unwrap();
    ck.v.clear();
    ck.save(&out).unwrap();
    fails(
        actlab().arg("train").arg("--resume").arg(&out),
        &[
            "checkpoint.safetensors",
            "optimiser moments",
            "start the run again",
        ],
    );
}

#[test]
fn resume_continues_the_run_as_started_and_refuses_changes() {
    let d = TempDir::new("resume-as-started");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_small_mnist(&data, 3000, 200);
    let out = d.join("run");
    let model = d.join("m.safetensors");
    let o = actlab()
        .args(["train", "--epochs", "4", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--save")
        .arg(&model)
        .env("ACTLAB_TEST_HOOK", "abort@record:2")
        .output()
        .unwrap();
    assert!(aborted(&o));
    fails(
        actlab()
            .args(["train", "--lr", "0.1", "--resume"])
            .arg(&out),
        &["--lr", "--resume continues the run with its own settings"],
    );
    fails(
        actlab()
            .args(["train", "--epochs", "3", "--resume"])
            .arg(&out),
        &["--epochs 3", "already has 4 epochs"],
    );
    // The hint's command: same data folder, model saved where asked again (a
    // checkpoint's own --save outside the run folder is not trusted), and --epochs
    // extends the run.
    common::run_ok(
        actlab()
            .args(["train", "--epochs", "5", "--resume"])
            .arg(&out)
            .arg("--save")
            .arg(&model),
    );
    let r = common::json_of(&out.join("record.json"));
    assert_eq!(r["dataset"]["n_train"], 3000, "the run's own data folder");
    assert_eq!(r["history"].as_array().unwrap().len(), 5);
    assert_eq!(r["config"]["epochs"], 5);
    assert!(model.exists(), "the model is saved where the run was told");
    // A checkpoint copied into another folder is not that folder's run.
    let other = d.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(
        out.join("checkpoint.safetensors"),
        other.join("checkpoint.safetensors"),
    )
    .unwrap();
    fails(
        actlab().args(["train", "--resume"]).arg(&other),
        &["checkpoint.safetensors", "belongs to the run in"],
    );
    // A history longer than the run's epochs.
    let mut ck = actlab::checkpoint::Checkpoint::load(&out).unwrap();
    ck.cfg.epochs = 2;
    ck.save(&out).unwrap();
    fails(
        actlab().args(["train", "--resume"]).arg(&out),
        &["records 5 epochs but its run has only 2"],
    );
}

#[test]
fn an_interrupted_experiment_run_loses_at_most_its_epoch() {
    let d = TempDir::new("exp-epochs");
    let compare = |out: &Path, resume: bool, hook: Option<&str>| {
        let mut c = actlab();
        c.args([
            "compare",
            "--activation",
            "relu",
            "--epochs",
            "3",
            "--jobs",
            "1",
        ])
        .args(["--limit-train", "2000", "--limit-test", "200", "--out"])
        .arg(out);
        if resume {
            c.arg("--resume");
        }
        if let Some(h) = hook {
            c.env("ACTLAB_TEST_HOOK", h);
        }
        c.output().unwrap()
    };
    let straight = d.join("straight");
    assert!(compare(&straight, false, None).status.success());
    let out = d.join("cut");
    assert!(aborted(&compare(&out, false, Some("abort@epoch:2"))));
    let run = "runs/relu_log_softmax_nll/seed-0";
    assert!(out.join(format!("{run}.checkpoint.safetensors")).exists());
    assert!(!out.join(format!("{run}.json")).exists());
    let o = compare(&out, true, None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("seed 0: continuing after epoch 2 of 3"),
        "{err}"
    );
    assert_eq!(
        common::record_without_timings(&out.join(format!("{run}.json"))),
        common::record_without_timings(&straight.join(format!("{run}.json")))
    );
    assert!(
        !out.join(format!("{run}.checkpoint.safetensors")).exists(),
        "a finished run's checkpoint is removed"
    );
}

#[test]
fn a_checkpoint_of_nan_parameters_is_invalid_not_diverged() {
    let d = TempDir::new("nan-ckpt");
    let out = d.join("run");
    let o = short_train(&out, Some("abort@record:1"));
    assert!(aborted(&o));
    let mut ck = actlab::checkpoint::Checkpoint::load(&out).unwrap();
    ck.params[123] = f32::NAN;
    ck.save(&out).unwrap();
    let line = fails(
        actlab().arg("train").arg("--resume").arg(&out),
        &["checkpoint", "invalid", "'params'", "index 123"],
    );
    assert!(!line.contains("--lr"), "{line}");
}
