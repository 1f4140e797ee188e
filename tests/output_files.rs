//! Results are never replaced unasked, runs never share a folder, models never land
//! on a run's files, and merge refuses records that do not belong together.

mod common;

use std::path::Path;

use common::{actlab, fails, TempDir};

#[test]
fn results_are_never_replaced_without_asking() {
    let d = TempDir::new("no-overwrite");
    let out = d.join("run");
    let tiny = [
        "train",
        "--epochs",
        "1",
        "--limit-train",
        "300",
        "--limit-test",
        "50",
    ];
    common::run_ok(actlab().args(tiny).arg("--out").arg(&out));
    let before = std::fs::read(out.join("record.json")).unwrap();
    fails(
        actlab().args(tiny).args(["--seed", "5", "--out"]).arg(&out),
        &["already holds results", "--resume", "--overwrite"],
    );
    assert_eq!(std::fs::read(out.join("record.json")).unwrap(), before);
    // --overwrite clears the folder first: nothing stale survives.
    std::fs::write(out.join("stale.txt"), "old").unwrap();
    common::run_ok(
        actlab()
            .args(tiny)
            .args(["--seed", "5", "--overwrite", "--out"])
            .arg(&out),
    );
    assert!(!out.join("stale.txt").exists());
    assert_ne!(std::fs::read(out.join("record.json")).unwrap(), before);
    // The same for experiments, where stale runs of other variants would mix in.
    let cmp = d.join("cmp");
    let compare = |acts: &str| {
        let mut c = actlab();
        c.args([
            "compare",
            "--activation",
            acts,
            "--epochs",
            "1",
            "--jobs",
            "1",
        ])
        .args(["--limit-train", "300", "--limit-test", "50", "--out"])
        .arg(&cmp);
        c
    };
    common::run_ok(&mut compare("relu,tanh"));
    fails(&mut compare("sigmoid"), &["already holds results"]);
    common::run_ok(compare("sigmoid").arg("--overwrite"));
    assert_eq!(
        common::entries(&cmp.join("runs")),
        1,
        "only the new experiment's runs remain"
    );
}

#[test]
fn two_runs_never_share_a_folder() {
    let d = TempDir::new("lock");
    let out = d.join("run");
    // The first run holds the folder (waiting at a hook) while a second one tries it.
    // Its stderr stays open (bound, not dropped) so its last words do not hit a closed pipe.
    let (mut first, _stderr, _) = common::spawn_held(
        actlab().args(common::SHORT_TRAIN).arg("--out").arg(&out),
        "wait@record:1",
    );
    fails(
        actlab()
            .args(common::SHORT_TRAIN)
            .arg("--overwrite")
            .arg("--out")
            .arg(&out),
        &["another actlab run is writing into this folder"],
    );
    common::signal(&first, "-INT");
    assert_eq!(first.wait().unwrap().code(), Some(130));
    // Default folders: two runs started together get two folders.
    let cwd = d.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let tiny = common::TINY_TRAIN;
    let quiet = || {
        let mut c = actlab();
        c.current_dir(&cwd)
            .args(tiny)
            .stdout(std::process::Stdio::null());
        c
    };
    let (a, b) = (quiet().spawn().unwrap(), quiet().spawn().unwrap());
    for mut c in [a, b] {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(common::entries(&cwd.join("runs")), 2);
}

#[test]
fn a_model_path_never_lands_on_the_run_files() {
    let d = TempDir::new("save-path");
    let out = d.join("run");
    let tiny = common::TINY_TRAIN;
    let save = |p: std::path::PathBuf| {
        let mut c = actlab();
        c.args(tiny).arg("--out").arg(&out).arg("--save").arg(p);
        c
    };
    fails(
        &mut save(d.join("model.json")),
        &["model.json", "end in .safetensors"],
    );
    fails(&mut save(out.join("record.json")), &["end in .safetensors"]);
    fails(
        &mut save(out.join("checkpoint.safetensors")),
        &["checkpoint.safetensors", "overwrite the run's own"],
    );
    fails(
        &mut save(out.join("record.safetensors")),
        &["record.json", "overwrite the run's own"],
    );
    assert!(
        !out.join("record.json").exists(),
        "refused before any training"
    );
    common::run_ok(&mut save(out.join("model.safetensors")));
    assert!(out.join("model.safetensors").exists() && out.join("model.json").exists());
}

#[test]
fn merge_refuses_conflicting_or_foreign_records() {
    let d = TempDir::new("merge-conflict");
    let shard = |k: usize, out: &Path, extra: &[&str]| {
        common::run_ok(
            actlab()
                .args([
                    "compare",
                    "--activation",
                    "relu,tanh",
                    "--seeds",
                    "2",
                    "--epochs",
                    "1",
                ])
                .args(["--limit-train", "300", "--limit-test", "50", "--jobs", "1"])
                .args(["--shard", &format!("{k}/2"), "--out"])
                .arg(out)
                .args(extra),
        );
    };
    let (a, b) = (d.join("a"), d.join("b"));
    shard(1, &a, &[]);
    shard(2, &b, &[]);
    // A copy of shard 1 whose one record holds other results: two answers for one run.
    let c = d.join("c");
    shard(1, &c, &[]);
    let rec = c.join("runs/relu_log_softmax_nll/seed-0.json");
    let mut v = common::json_of(&rec);
    v["final_test"]["acc"] = serde_json::json!(0.123);
    std::fs::write(&rec, serde_json::to_string(&v).unwrap()).unwrap();
    fails(
        actlab()
            .arg("merge")
            .arg(&a)
            .arg(&b)
            .arg(&c)
            .arg("--out")
            .arg(d.join("m1")),
        &[
            "seed-0.json and",
            "two different results",
            "relu/log_softmax/nll",
        ],
    );
    // A record whose config is not the experiment's (here: another learning rate).
    let mut v = common::json_of(&rec);
    v["final_test"] =
        common::json_of(&a.join("runs/relu_log_softmax_nll/seed-0.json"))["final_test"].clone();
    v["config"]["lr"] = serde_json::json!(0.5);
    std::fs::write(&rec, serde_json::to_string(&v).unwrap()).unwrap();
    fails(
        actlab()
            .arg("merge")
            .arg(&a)
            .arg(&b)
            .arg(&c)
            .arg("--out")
            .arg(d.join("m2")),
        &[
            "seed-0.json",
            "configuration is not the one the experiment lists",
        ],
    );
    // The clean shards merge.
    common::run_ok(
        actlab()
            .arg("merge")
            .arg(&a)
            .arg(&b)
            .arg("--out")
            .arg(d.join("m3")),
    );
}
