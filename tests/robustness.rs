//! Hostile inputs, round 3: nothing outside what the user named is written or
//! replaced (devices, FIFOs, inputs, existing models, other runs' TensorBoard events,
//! folders a variant name points at), and an interrupted run says what it can resume.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{actlab, data_dir, fails, TempDir, TINY_TRAIN};

/// A tiny training run into `out` on the bundled data.
fn tiny(out: &Path) -> Command {
    let mut c = actlab();
    c.args(TINY_TRAIN)
        .arg("--data-dir")
        .arg(data_dir())
        .arg("--out")
        .arg(out);
    c
}

/// A FIFO at `path` (a stand-in for a device: writing must never replace it).
fn fifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// A saved tiny model `dir/m.safetensors` (+ m.json).
fn model(dir: &Path) -> PathBuf {
    let m = dir.join("m.safetensors");
    common::run_ok(tiny(&dir.join("model-run")).arg("--save").arg(&m));
    m
}

#[test]
fn outputs_that_are_not_regular_files_are_refused_before_any_work() {
    let d = TempDir::new("special-outputs");
    let node = d.join("node");
    fifo(&node);
    let m = model(&d.0);
    fails(
        actlab().arg("demo").arg(&m).arg("--out").arg(&node),
        &["--out", "is a FIFO"],
    );
    // Refused at once, not after the benchmark.
    let t0 = std::time::Instant::now();
    fails(
        actlab()
            .args(["bench", "--epochs", "1", "--json"])
            .arg(&node),
        &["--json", "is a FIFO"],
    );
    fails(
        actlab()
            .args(["bench", "--epochs", "1", "--json"])
            .arg(&d.0),
        &["--json", "is a folder"],
    );
    assert!(t0.elapsed().as_secs() < 20, "the benchmark ran first");
    fails(
        tiny(&d.join("r1"))
            .arg("--save")
            .arg(d.join("dir.safetensors/")),
        &["--save"],
    );
    std::fs::create_dir(d.join("m2.safetensors")).unwrap();
    fails(
        tiny(&d.join("r2"))
            .arg("--save")
            .arg(d.join("m2.safetensors")),
        &["--save", "is a folder"],
    );
    assert!(
        !d.join("r2/record.json").exists(),
        "trained before refusing"
    );
    fails(&mut tiny(&node), &["--out", "is a FIFO, not a folder"]);
    fails(
        tiny(&d.join("r3")).arg("--tensorboard").arg(&node),
        &["--tensorboard", "not a folder"],
    );
    assert!(is_fifo(&node), "the FIFO was replaced");
}

#[test]
fn inputs_and_existing_models_are_never_overwritten_unasked() {
    let d = TempDir::new("no-overwrite");
    let m = model(&d.0);
    let meta = d.join("m.json");
    let before = std::fs::read(&meta).unwrap();
    for target in [&m, &meta] {
        fails(
            actlab().arg("demo").arg(&m).arg("--out").arg(target),
            &["--out", "would overwrite the input"],
        );
    }
    assert_eq!(std::fs::read(&meta).unwrap(), before);
    // --save onto an existing model, or onto an unrelated x.json beside it.
    fails(
        tiny(&d.join("r1")).arg("--save").arg(&m),
        &["--save", "already exists", "--overwrite"],
    );
    std::fs::write(d.join("notes.json"), "{\"mine\": 1}").unwrap();
    fails(
        tiny(&d.join("r2"))
            .arg("--save")
            .arg(d.join("notes.safetensors")),
        &["notes.json", "already exists"],
    );
    assert_eq!(
        std::fs::read_to_string(d.join("notes.json")).unwrap(),
        "{\"mine\": 1}"
    );
    // Asked: replaced.
    common::run_ok(tiny(&d.join("r3")).arg("--save").arg(&m).arg("--overwrite"));
}

#[test]
fn a_checkpoint_cannot_say_where_a_resumed_run_writes() {
    let d = TempDir::new("crafted-save");
    let out = d.join("run");
    let o = actlab()
        .args(["train", "--epochs", "2", "--limit-train", "200"])
        .args(["--limit-test", "20", "--data-dir"])
        .arg(data_dir())
        .arg("--out")
        .arg(&out)
        .env("ACTLAB_TEST_HOOK", "abort@record:1")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let victim = d.join("victim.safetensors");
    let mut ck = actlab::checkpoint::Checkpoint::load(&out).unwrap();
    let origin = ck.origin.as_mut().expect("the run's origin is recorded");
    origin.save = Some(std::path::absolute(&victim).unwrap());
    ck.save(&out).unwrap();
    let (_, err) = common::run_ok_with_stderr(actlab().args(["train", "--resume"]).arg(&out));
    assert!(err.contains("add --save"), "{err}");
    assert!(!victim.exists() && !d.join("victim.json").exists());
}

#[test]
fn unrelated_runs_keep_their_own_tensorboard_events() {
    let d = TempDir::new("tb-owners");
    let tb = d.join("tb");
    let events = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("events."))
                    .count()
            })
            .unwrap_or(0)
    };
    common::run_ok(tiny(&d.join("a")).arg("--tensorboard").arg(&tb));
    common::run_ok(
        tiny(&d.join("b"))
            .args(["--lr", "0.01", "--tensorboard"])
            .arg(&tb),
    );
    let runs = tb.join("relu_log_softmax_nll");
    assert_eq!(events(&runs.join("seed-0")), 1);
    assert_eq!(events(&runs.join("seed-0-2")), 1);
    // The same run again (--overwrite) replaces only its own events.
    common::run_ok(
        tiny(&d.join("a"))
            .args(["--overwrite", "--tensorboard"])
            .arg(&tb),
    );
    assert_eq!(events(&runs.join("seed-0")), 1);
    assert_eq!(events(&runs.join("seed-0-2")), 1);
    assert!(!runs.join("seed-0-3").exists());
}

#[test]
fn variant_names_never_escape_their_folders() {
    let d = TempDir::new("dotdot");
    let (out, tb) = (d.join("logs/out"), d.join("logs/tb"));
    std::fs::create_dir_all(d.join("logs")).unwrap();
    std::fs::write(d.join("logs/keep.txt"), "mine").unwrap();
    let spec = "[base]\nepochs = 1\nlimit_train = 200\nlimit_test = 20\n\
                [[variant]]\nname = \"..\"\n[[variant]]\nname = \"a/../../b\"\nactivation = \"tanh\"\n";
    let file = d.join("e.toml");
    std::fs::write(&file, spec).unwrap();
    common::run_ok(
        actlab()
            .arg("run")
            .arg(&file)
            .arg("--data-dir")
            .arg(data_dir())
            .arg("--out")
            .arg(&out)
            .arg("--tensorboard")
            .arg(&tb)
            .arg("--save-models"),
    );
    let mut top: Vec<String> = std::fs::read_dir(d.join("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["keep.txt", "out", "tb"]);
    assert!(out.join("runs/unnamed/seed-0.json").exists());
    assert!(out.join("models/unnamed/seed-0.safetensors").exists());
    assert!(tb.join("unnamed/seed-0").is_dir());
    let r = common::json_of(&out.join("runs/unnamed/seed-0.json"));
    assert_eq!(r["variant"], "..", "the display name is kept in the record");
    for l in std::fs::read_dir(&out).unwrap().flatten() {
        let name = l.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with("seed-"),
            "{name} landed in the experiment folder"
        );
    }
}

#[test]
fn an_experiment_never_takes_over_a_train_run_folder() {
    let d = TempDir::new("kinds");
    let run = d.join("run");
    common::run_ok(&mut tiny(&run));
    let before = std::fs::read(run.join("record.json")).unwrap();
    fails(
        actlab()
            .args(["compare", "--epochs", "1", "--limit-train", "200"])
            .args(["--resume", "--out"])
            .arg(&run),
        &["holds a single run of actlab train", "another --out"],
    );
    assert!(!run.join("experiment.json").exists());
    assert_eq!(std::fs::read(run.join("record.json")).unwrap(), before);
}

#[test]
fn stopped_before_the_first_checkpoint_says_there_is_nothing_to_resume() {
    let d = TempDir::new("early-stop");
    let out = d.join("run");
    let (mut child, mut err, _) = common::spawn_held(&mut tiny(&out), "wait@start:0");
    common::signal(&child, "-INT");
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("nothing to resume"), "{rest}");
    assert!(!rest.contains("--resume"), "{rest}");
    assert!(!out.join("checkpoint.safetensors").exists());
}

#[test]
fn the_decoded_cache_follows_content_not_modification_times() {
    let (cache, data, out) = (
        TempDir::new("cache-content"),
        TempDir::new("cache-content-data"),
        TempDir::new("cache-content-out"),
    );
    for stem in actlab::data::FILES {
        let gz = std::fs::read(common::mnist_dir().join(format!("{stem}.gz"))).unwrap();
        let plain = actlab::data::idx::maybe_gunzip(gz).unwrap();
        std::fs::write(data.join(stem), plain).unwrap();
    }
    let run = || {
        let (_, err) = common::run_ok_with_stderr(
            actlab()
                .args(TINY_TRAIN)
                .arg("--overwrite")
                .arg("--data-dir")
                .arg(&data.0)
                .arg("--out")
                .arg(&out.0)
                .env("XDG_CACHE_HOME", &cache.0),
        );
        (
            common::json_of(&out.join("record.json"))["dataset"].clone(),
            err,
        )
    };
    let (first, _) = run();
    assert_eq!(first["canonical"], true);
    assert_eq!(common::entries(&cache.join("actlab/decoded")), 1);
    // One label changed in place, size and modification time kept (as `cp -p` does).
    let labels = data.join("t10k-labels-idx1-ubyte");
    let mtime = std::fs::metadata(&labels).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&labels).unwrap();
    bytes[8] = (bytes[8] + 1) % 10;
    std::fs::write(&labels, &bytes).unwrap();
    let f = std::fs::File::options().write(true).open(&labels).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let (changed, err) = run();
    assert_eq!(changed["canonical"], false, "{err}");
    assert_ne!(changed["sha256"][3], first["sha256"][3]);
    assert!(err.contains("differ from the canonical"), "{err}");
}

#[test]
fn long_or_deep_formulas_are_refused_at_every_entry_point() {
    let d = TempDir::new("deep-formulas");
    let deep = format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000));
    let minus = format!("{}x", "-".repeat(20_000));
    let terms = format!("x{}", "+x".repeat(30_000));
    for f in [&deep, &minus, &terms] {
        fails(
            actlab()
                .arg("activations")
                .arg("--define")
                .arg(format!("f={f}")),
            &["--define", "at most 2000"],
        );
    }
    let nested = format!("{}x{}", "sin(".repeat(300), ")".repeat(300));
    let file = d.join("e.toml");
    std::fs::write(
        &file,
        format!("[define]\nf = \"{nested}\"\n[[variant]]\nactivation = \"f\"\n"),
    )
    .unwrap();
    fails(
        actlab().arg("run").arg(&file),
        &["[define]", "nested more than 200"],
    );
    // A saved model whose stored formula was edited.
    let m = d.join("m.safetensors");
    common::run_ok(
        tiny(&d.join("run"))
            .args(["--define", "f=x", "--activation", "f", "--save"])
            .arg(&m),
    );
    // The formula is stored in the safetensors header (8-byte length, then JSON).
    let bytes = std::fs::read(&m).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(header.contains("f=x"), "{header}");
    let mut edited = header.replace("f=x", &format!("f={nested}"));
    while edited.len() % 8 != 0 {
        edited.push(' ');
    }
    let mut out = (edited.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(edited.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&m, out).unwrap();
    fails(
        actlab()
            .arg("predict")
            .arg(&m)
            .args(["--test-index", "0", "--data-dir"])
            .arg(data_dir()),
        &["nested more than 200"],
    );
}

#[test]
fn sizes_are_checked_before_memory_is_spent() {
    let values = |n: usize| {
        (1..=n)
            .map(|i| (i * 8).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let t0 = std::time::Instant::now();
    fails(
        actlab()
            .args(["compare", "--val-split", "100", "--tune"])
            .arg(format!("batch_size={}", values(1000)))
            .arg("--tune")
            .arg(format!("epochs={}", values(1000)))
            .arg("--tune")
            .arg(format!("lr={}", values(1000))),
        &["1000 x 1000 x 1000", "100000 runs"],
    );
    assert!(t0.elapsed().as_secs() < 20, "the grid was built first");
    fails(
        actlab()
            .args(["compare", "--tune", "limit_train=100,200"])
            .args(["--val-split", "100"]),
        &["'limit_train' cannot be tuned"],
    );
    let d = TempDir::new("sizes");
    let m = model(&d.0);
    for range in ["0..18446744073709551615", "0..1000000000"] {
        fails(
            actlab()
                .arg("predict")
                .arg(&m)
                .args(["--test-index", range, "--data-dir"])
                .arg(data_dir()),
            &["--test-index", "indices below"],
        );
    }
    fails(
        actlab().arg("predict").arg(&m).arg("/dev/zero"),
        &["/dev/zero", "larger than 64 MB"],
    );
    let file = d.join("dup.toml");
    std::fs::write(
        &file,
        "seeds = [0, 0, 1]\n[[variant]]\nactivation = \"relu\"\n",
    )
    .unwrap();
    fails(actlab().arg("run").arg(&file), &["seed 0 is listed twice"]);
}

/// Any thread count trains: more threads than the first layer has outputs, or than
/// the batch has rows, leave the first layer whole instead of giving a thread an
/// empty part (that panicked: "chunk size must be non-zero").
#[test]
fn any_thread_count_trains() {
    let d = TempDir::new("threads");
    let counts: [&[&str]; 3] = [
        &["--threads", "33"],
        &["--hidden", "8", "--threads", "5"],
        &["--hidden", "1", "--threads", "2"],
    ];
    for (i, extra) in counts.into_iter().enumerate() {
        common::run_ok(tiny(&d.0.join(format!("run{i}"))).args(extra));
    }
}
