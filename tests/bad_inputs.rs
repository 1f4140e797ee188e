//! Every bad input gets one clear line naming the problem (and file), exit code 2,
//! no panic; killed runs leave only whole files and can be resumed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{actlab, data_dir, write_small_mnist, TempDir};

/// Run actlab and demand: exit 2, one line on stderr starting with "error: ", no panic,
/// containing every `needles` item. Returns the line.
fn fails(cmd: &mut Command, needles: &[&str]) -> String {
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "expected exit 2, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("warning:")).collect();
    assert_eq!(lines.len(), 1, "not one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' missing from: {}", lines[0]);
    }
    lines[0].to_string()
}

fn train_on(dir: &Path) -> Command {
    let mut c = actlab();
    c.args(["train", "--epochs", "1", "--batch-size", "10", "--data-dir"])
        .arg(dir)
        .arg("--out")
        .arg(dir.join("out"));
    c
}

fn small() -> TempDir {
    let d = TempDir::new("bad");
    write_small_mnist(&d.0, 100, 20);
    d
}

const IMG: &str = "train-images-idx3-ubyte";
const LAB: &str = "t10k-labels-idx1-ubyte";

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn damaged_data_files() {
    let mut seen = Vec::new();
    // Each case: damage the folder, then the words the error must contain.
    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Damage, Vec<&str>)> = vec![
        (
            "missing",
            Box::new(|d: &Path| std::fs::remove_file(d.join(LAB)).unwrap()),
            vec![LAB, "missing"],
        ),
        (
            "empty",
            Box::new(|d: &Path| std::fs::write(d.join(IMG), b"").unwrap()),
            vec![IMG, "empty"],
        ),
        (
            "bad magic",
            Box::new(|d: &Path| patch(d, IMG, 2, 0x09)),
            vec![IMG, "bad magic"],
        ),
        (
            "wrong dims",
            Box::new(|d: &Path| patch(d, IMG, 11, 27)),
            vec![IMG, "27x28", "28x28"],
        ),
        (
            "three dims for labels",
            Box::new(|d: &Path| patch(d, LAB, 3, 3)),
            vec![LAB, "dimensions"],
        ),
        (
            "label out of range",
            Box::new(|d: &Path| patch(d, LAB, 8 + 5, 10)),
            vec![LAB, "label 10", "0-9"],
        ),
        (
            "count mismatch",
            Box::new(|d: &Path| {
                let p = d.join(LAB);
                let mut b = std::fs::read(&p).unwrap();
                b[7] = 19;
                b.pop();
                std::fs::write(p, b).unwrap();
            }),
            vec!["t10k-images-idx3-ubyte", LAB, "20 images but 19 labels"],
        ),
        (
            "trailing bytes",
            Box::new(|d: &Path| {
                let p = d.join(IMG);
                let mut b = std::fs::read(&p).unwrap();
                b.extend_from_slice(&[0; 5]);
                std::fs::write(p, b).unwrap();
            }),
            vec![IMG, "trailing"],
        ),
        (
            "truncated data",
            Box::new(|d: &Path| {
                let p = d.join(IMG);
                let b = std::fs::read(&p).unwrap();
                std::fs::write(p, &b[..b.len() - 100]).unwrap();
            }),
            vec![IMG, "truncated"],
        ),
        (
            "corrupt gzip",
            Box::new(|d: &Path| {
                let p = d.join(IMG);
                let mut z = gz(&std::fs::read(&p).unwrap());
                let n = z.len();
                for b in &mut z[n / 3..n / 3 + 40] {
                    *b ^= 0x5a;
                }
                std::fs::remove_file(&p).unwrap();
                std::fs::write(d.join(format!("{IMG}.gz")), z).unwrap();
            }),
            vec![IMG, "gzip"],
        ),
        (
            "truncated gzip",
            Box::new(|d: &Path| {
                let p = d.join(IMG);
                let z = gz(&std::fs::read(&p).unwrap());
                std::fs::remove_file(&p).unwrap();
                std::fs::write(d.join(format!("{IMG}.gz")), &z[..z.len() / 2]).unwrap();
            }),
            vec![IMG, "gzip"],
        ),
        (
            "directory",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join(IMG)).unwrap();
                std::fs::create_dir(d.join(IMG)).unwrap();
            }),
            vec![IMG, "directory"],
        ),
        (
            // 5 GB of trailing zeros (a sparse file: no disk used); only the promised
            // bytes plus one may be read, so this fails at once, in little memory.
            "huge trailing data",
            Box::new(|d: &Path| {
                let f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(d.join(IMG))
                    .unwrap();
                f.set_len(5 << 30).unwrap();
            }),
            vec![IMG, "trailing"],
        ),
        (
            "header promising terabytes",
            Box::new(|d: &Path| {
                patch(d, IMG, 4, 0xff);
                patch(d, IMG, 5, 0xff);
            }),
            vec![IMG, "promises more than"],
        ),
        (
            "a device that never ends",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join(IMG)).unwrap();
                std::os::unix::fs::symlink("/dev/zero", d.join(IMG)).unwrap();
            }),
            vec![IMG, "not a regular file"],
        ),
    ];
    for (name, damage, needles) in cases {
        let d = small();
        damage(&d.0);
        let line = fails(&mut train_on(&d.0), &needles);
        seen.push(format!("{name}: {line}"));
    }
    // Truncated at every byte offset of both headers.
    for (file, header) in [(IMG, 16), ("train-labels-idx1-ubyte", 8)] {
        for cut in 0..header {
            let d = small();
            let p = d.join(file);
            let b = std::fs::read(&p).unwrap();
            std::fs::write(&p, &b[..cut]).unwrap();
            fails(&mut train_on(&d.0), &[file]);
        }
    }
    // No read permission: meaningful only when not running as root (root reads anyway).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let d = small();
        std::fs::set_permissions(d.join(IMG), std::fs::Permissions::from_mode(0o000)).unwrap();
        fails(&mut train_on(&d.0), &[IMG, "permission"]);
    } else {
        eprintln!("running as root: the no-permission case cannot be produced here");
    }
    eprintln!("{}", seen.join("\n"));
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn patch(d: &Path, file: &str, at: usize, value: u8) {
    let p = d.join(file);
    let mut b = std::fs::read(&p).unwrap();
    b[at] = value;
    std::fs::write(p, b).unwrap();
}

#[test]
fn bad_options_fail_before_training() {
    let d = small();
    let data = |c: &mut Command| {
        c.arg("--data-dir").arg(&d.0).arg("--out").arg(d.join("o"));
    };
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--activation", "rleu"],
            vec!["unknown activation 'rleu'", "did you mean 'relu'", "valid:"],
        ),
        (
            vec!["--output", "logsoftmx"],
            vec!["unknown output", "log_softmax"],
        ),
        (vec!["--loss", "nl"], vec!["unknown loss", "nll"]),
        (vec!["--init", "kaim"], vec!["unknown init"]),
        (vec!["--hidden", "128,0"], vec!["--hidden", "at least 1"]),
        (vec!["--nesterov"], vec!["--nesterov", "--optimizer sgd"]),
        (
            vec!["--optimizer", "sgd", "--nesterov"],
            vec!["--nesterov", "--momentum above 0"],
        ),
        (
            vec!["--optimizer", "adamw", "--momentum", "0.9"],
            vec!["--momentum applies to --optimizer sgd"],
        ),
        (vec!["--batch-size", "0"], vec!["--batch-size 0"]),
        (
            vec!["--batch-size", "500"],
            vec!["--batch-size 500", "larger than the 100 training images"],
        ),
        (vec!["--dropout", "1"], vec!["--dropout 1", "[0, 1)"]),
        (vec!["--dropout=-0.1"], vec!["--dropout -0.1"]),
        (vec!["--lr", "0"], vec!["--lr 0", "positive"]),
        (vec!["--lr", "NaN"], vec!["--lr NaN", "positive"]),
        (vec!["--epochs", "0"], vec!["--epochs 0"]),
        (
            vec!["--activation", "relu,tanh,gelu"],
            vec!["3 functions", "2 layers"],
        ),
        (vec!["--momentum", "0.9"], vec!["--momentum", "sgd"]),
    ];
    for (args, needles) in cases {
        let mut c = actlab();
        c.arg("train").args(&args);
        data(&mut c);
        fails(&mut c, &needles);
        assert!(
            !d.join("o/record.json").exists(),
            "{args:?} started training"
        );
    }
    let mut c = actlab();
    c.args([
        "train",
        "--out",
        "/dev/null/sub",
        "--epochs",
        "1",
        "--data-dir",
    ])
    .arg(&d.0);
    fails(&mut c, &["/dev/null/sub", "output folder"]);
    fails(
        actlab()
            .args(["compare", "--seeds", "0", "--data-dir"])
            .arg(&d.0),
        &["--seeds 0"],
    );
    fails(
        actlab()
            .args(["compare", "--shard", "3/2", "--data-dir"])
            .arg(&d.0),
        &["--shard"],
    );
    fails(
        actlab()
            .args([
                "compare",
                "--variant",
                "relu/softmax/nll+bogus=1",
                "--data-dir",
            ])
            .arg(&d.0),
        &["unknown field `bogus`"],
    );
}

#[test]
fn bad_experiment_files() {
    let d = TempDir::new("toml");
    let cases = [
        (
            "malformed.toml",
            "name = \"x\"\nseeds = [0, 1\n[[variant]]\n",
            vec!["malformed.toml", "line 3, column 1", "missing comma"],
        ),
        (
            "unknown.toml",
            "[[variant]]\nactivaton = \"relu\"\n",
            vec!["unknown.toml", "unknown field `activaton`"],
        ),
        (
            "badname.toml",
            "[[variant]]\nactivation = \"rleu\"\n",
            vec!["badname.toml", "did you mean 'relu'"],
        ),
        (
            "novariant.toml",
            "name = \"x\"\n",
            vec!["novariant.toml", "[[variant]]"],
        ),
        (
            "dup.toml",
            "[[variant]]\nname = \"a\"\n[[variant]]\nname = \"a\"\n",
            vec!["dup.toml", "both named 'a'"],
        ),
        (
            "badvalue.toml",
            "[[variant]]\ndropout = 2.0\n",
            vec!["badvalue.toml", "--dropout 2"],
        ),
    ];
    for (name, text, needles) in cases {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        fails(
            actlab().arg("run").arg(&p).arg("--out").arg(d.join("o")),
            &needles,
        );
    }
    fails(
        actlab().arg("run").arg(d.join("absent.toml")),
        &["absent.toml", "cannot read"],
    );
}

#[test]
fn bad_model_files() {
    let d = TempDir::new("models");
    let not_st = d.join("junk.safetensors");
    std::fs::write(&not_st, b"this is not a model").unwrap();
    fails(
        actlab()
            .args(["predict"])
            .arg(&not_st)
            .args(["--test-index", "0"]),
        &["junk.safetensors", "not a valid safetensors"],
    );
    fails(
        actlab().args(["eval"]).arg(&not_st),
        &["junk.safetensors", "not a valid safetensors"],
    );
    // Wrong tensor names.
    let bytes = actlab::model_io::tensors_to_bytes(
        &[("w1".into(), vec![2, 2], &[0.0f32; 4])],
        &Default::default(),
    )
    .unwrap();
    let wrong = d.join("wrong.safetensors");
    std::fs::write(&wrong, bytes).unwrap();
    fails(
        actlab().arg("eval").arg(&wrong),
        &["wrong.safetensors", "fc1.weight"],
    );
    // Right names, shapes that do not fit the config.
    let init = common::fixtures().join("init.safetensors");
    let mut c = actlab();
    c.args(["train", "--epochs", "1", "--init-from"])
        .arg(&init)
        .arg("--data-dir")
        .arg(data_dir())
        .arg("--out")
        .arg(d.join("o"));
    fails(
        &mut c,
        &["init.safetensors", "fc1.weight", "[32, 784]", "[128, 784]"],
    );
    // A --resume folder with no checkpoint.
    fails(
        actlab()
            .arg("train")
            .arg("--resume")
            .arg(&d.0)
            .arg("--data-dir")
            .arg(data_dir()),
        &["checkpoint.safetensors", "--resume"],
    );
}

#[test]
fn diverged_variant_is_marked_and_the_rest_go_on() {
    let d = TempDir::new("diverge");
    let o = actlab()
        .args([
            "compare",
            "--variant",
            "relu/identity/bce",
            "--variant",
            "relu",
            "--epochs",
            "1",
        ])
        .args(["--limit-train", "1000", "--limit-test", "200", "--data-dir"])
        .arg(data_dir())
        .arg("--out")
        .arg(&d.0)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        err.contains("relu/identity/bce seed 0: diverged at epoch 1 step 1"),
        "{err}"
    );
    // The diverged variant has no rank and is not "best"; its seeds are counted apart.
    assert!(out.contains("diverged"), "{out}");
    let row = out
        .lines()
        .find(|l| l.contains("relu/identity/bce"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.starts_with("- ") && !row.contains("best"), "{row}");
    assert!(
        out.contains("diverged (NaN/inf loss) with seed(s) [0]"),
        "{out}"
    );
    assert!(
        err.contains("warning: variant 'relu/identity/bce': bce needs outputs in [0, 1]"),
        "{err}"
    );
}

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

/// Write a copy of the parity fixture's 784-32-16-10 weights with one value replaced.
fn poisoned_weights(dir: &Path, tensor: &str, at: usize, value: f32) -> std::path::PathBuf {
    let src = common::fixtures().join("init.safetensors");
    let f = actlab::model_io::read_tensors(&src).unwrap();
    let names = [
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "fc3.weight",
        "fc3.bias",
    ];
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = names
        .iter()
        .map(|n| {
            let t = f.get(&src, n).unwrap();
            (n.to_string(), t.shape.clone(), t.data.clone())
        })
        .collect();
    let t = tensors.iter_mut().find(|t| t.0 == tensor).unwrap();
    t.2[at] = value;
    let views: Vec<(String, Vec<usize>, &[f32])> = tensors
        .iter()
        .map(|(n, s, d)| (n.clone(), s.clone(), d.as_slice()))
        .collect();
    let bytes = actlab::model_io::tensors_to_bytes(&views, &Default::default()).unwrap();
    let path = dir.join(format!("poisoned-{tensor}.safetensors"));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor_and_index() {
    let d = TempDir::new("nan-weights");
    let nan = poisoned_weights(&d.0, "fc2.weight", 37, f32::NAN);
    let inf = poisoned_weights(&d.0, "fc3.bias", 4, f32::INFINITY);
    let hidden = ["--hidden", "32,16"];
    fails(
        actlab().arg("eval").arg(&nan),
        &["poisoned-fc2.weight", "'fc2.weight'", "NaN at index 37"],
    );
    fails(
        actlab()
            .arg("predict")
            .arg(&inf)
            .args(["--test-index", "0"]),
        &["'fc3.bias'", "inf at index 4"],
    );
    fails(
        actlab()
            .args(common::TINY_TRAIN)
            .args(hidden)
            .arg("--init-from")
            .arg(&nan)
            .arg("--out")
            .arg(d.join("o")),
        &["'fc2.weight'", "NaN at index 37"],
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

#[test]
fn empty_sets_and_wrong_datasets_are_refused_not_measured() {
    let d = TempDir::new("empty-sets");
    let no_test = d.join("no-test");
    std::fs::create_dir_all(&no_test).unwrap();
    write_small_mnist(&no_test, 100, 0);
    fails(
        &mut train_on(&no_test),
        &["no-test", "test set has 0 images"],
    );
    let no_train = d.join("no-train");
    std::fs::create_dir_all(&no_train).unwrap();
    write_small_mnist(&no_train, 0, 20);
    let line = fails(&mut train_on(&no_train), &["training set has 0 images"]);
    assert!(!line.contains("smaller batch"), "{line}");
    // A model to evaluate.
    let model = d.join("m.safetensors");
    let run = d.join("run");
    common::run_ok(
        actlab()
            .args(common::TINY_TRAIN)
            .arg("--out")
            .arg(&run)
            .arg("--save")
            .arg(&model),
    );
    fails(
        actlab()
            .arg("eval")
            .arg(&model)
            .arg("--data-dir")
            .arg(&no_test),
        &["test set has 0 images"],
    );
    // MNIST's files read as Fashion-MNIST: refused, not labelled with the wrong name.
    fails(
        actlab()
            .arg("eval")
            .arg(&model)
            .args(["--dataset", "fashion-mnist", "--data-dir"])
            .arg(common::mnist_dir()),
        &["these are the mnist files, not fashion-mnist"],
    );
    // Modified test files: eval warns as train does.
    let o = actlab()
        .arg("eval")
        .arg(&model)
        .arg("--data-dir")
        .arg(&no_train)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("differ from the canonical mnist release"),
        "{err}"
    );
}

#[test]
fn damaged_images_and_offsets_get_one_correct_line() {
    let d = TempDir::new("images");
    let model = common::fixtures().join("init.safetensors");
    // A truncated JPEG.
    let img = image::GrayImage::from_fn(64, 64, |x, y| {
        image::Luma([if (x as i32 - 32).pow(2) + (y as i32 - 32).pow(2) < 300 {
            0
        } else {
            255
        }])
    });
    let mut jpg = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut jpg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    // Cut in the scan data (the decoder would fill in grey) and in a header (the
    // decoder's message has a line break): one line each.
    for (at, needle) in [(jpg.len() / 2, "truncated"), (100, "not a readable")] {
        let cut = d.join("cut.jpg");
        let mut bytes = jpg[..at].to_vec();
        if at == 100 {
            bytes.extend_from_slice(&[0xff, 0xd9]); // an end marker after a cut header
        }
        std::fs::write(&cut, bytes).unwrap();
        fails(
            actlab().arg("predict").arg(&model).arg(&cut),
            &["cut.jpg", needle],
        );
    }
    // Overlapping tensors: both are named, with their byte ranges.
    let overlap = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions/model_loader/overlapping-offsets.safetensors");
    fails(
        actlab().arg("eval").arg(&overlap),
        &[
            "'fc1.weight' (bytes 0..16)",
            "'fc1.bias' (bytes 8..16)",
            "overlap",
        ],
    );
    fails(
        actlab().args(["bench", "--scaling", "0"]),
        &["--scaling 0", "2 or more"],
    );
}

#[test]
fn transparent_backgrounds_are_composited_and_blank_images_warned() {
    let d = TempDir::new("alpha");
    let model = common::fixtures().join("init.safetensors");
    let ring = |x: u32, y: u32| {
        let r2 = (x as i32 - 40).pow(2) + (y as i32 - 40).pow(2);
        (200..700).contains(&r2)
    };
    // Black ink on a transparent background (a canvas export), and on white paper.
    let clear = image::GrayAlphaImage::from_fn(80, 80, |x, y| {
        image::LumaA(if ring(x, y) { [0, 255] } else { [0, 0] })
    });
    let white = image::GrayImage::from_fn(80, 80, |x, y| {
        image::Luma([if ring(x, y) { 0 } else { 255 }])
    });
    clear.save(d.join("clear.png")).unwrap();
    white.save(d.join("white.png")).unwrap();
    let predict = |f: &str| {
        let o = actlab()
            .args(["predict", "--json"])
            .arg(&model)
            .arg(d.join(f))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["input"] = serde_json::Value::Null;
        (v, String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (a, err) = predict("clear.png");
    assert_eq!(
        a,
        predict("white.png").0,
        "transparent paper reads as white paper"
    );
    assert!(!err.contains("no ink"), "{err}");
    // Nothing drawn at all: a warning, not a silent confident answer.
    let blank = image::GrayAlphaImage::from_pixel(80, 80, image::LumaA([0, 0]));
    blank.save(d.join("blank.png")).unwrap();
    let (_, err) = predict("blank.png");
    assert!(err.contains("blank.png: the image holds no ink"), "{err}");
}

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
    // The hint's command alone: same data folder, model saved where asked, and
    // --epochs extends the run.
    common::run_ok(
        actlab()
            .args(["train", "--epochs", "5", "--resume"])
            .arg(&out),
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
fn memory_is_bounded_before_it_is_spent() {
    let d = TempDir::new("memory");
    let out = |n: &str| d.join(n);
    fails(
        actlab()
            .args(["train", "--hidden", "100000000", "--out"])
            .arg(out("a")),
        &["needs about", "GB of memory", "is available", "--hidden"],
    );
    fails(
        actlab()
            .args([
                "train",
                "--hidden",
                "100000000",
                "--max-memory",
                "999999999999",
                "--out",
            ])
            .arg(out("b")),
        &["needs about", "at most the installed memory"],
    );
    fails(
        actlab()
            .args(["train", "--max-memory", "1", "--out"])
            .arg(out("c")),
        &["needs about", "1 MB is available"],
    );
    fails(
        actlab()
            .args(["compare", "--seeds", "1000000000", "--out"])
            .arg(out("d")),
        &["--seeds 1000000000", "at most 100000 runs"],
    );
    fails(
        actlab()
            .args([
                "compare",
                "--activation",
                "relu,tanh",
                "--seeds",
                "60000",
                "--out",
            ])
            .arg(out("e")),
        &["120000 runs", "at most 100000"],
    );
    for (name, text, needle) in [
        (
            "seeds.toml",
            "seeds = 1000000000\n[[variant]]\n",
            "at most 100000 runs",
        ),
        (
            "hidden.toml",
            "[[variant]]\nhidden = [100000000]\n",
            "GB of memory",
        ),
    ] {
        let f = d.join(name);
        std::fs::write(&f, text).unwrap();
        fails(
            actlab().arg("run").arg(&f).arg("--out").arg(out(name)),
            &[name, needle],
        );
    }
    // --jobs is capped at the number of runs: 64 jobs for 2 runs start 2.
    let o = actlab()
        .args([
            "compare",
            "--activation",
            "relu,tanh",
            "--epochs",
            "1",
            "--jobs",
            "64",
        ])
        .args(["--limit-train", "200", "--limit-test", "20", "--out"])
        .arg(out("f"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("with 2 job(s)"), "{err}");
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
