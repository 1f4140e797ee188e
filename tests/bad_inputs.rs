//! Every bad input gets one clear line naming the problem (and file), exit code 2,
//! no panic; killed runs leave only whole files and can be resumed.

mod common;

use std::path::Path;
use std::process::Command;

use common::{actlab, data_dir, fails, small, train_on, write_small_mnist, TempDir};

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
            vec!["3 functions", "2 hidden layers"],
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
            vec![
                "unknown.toml",
                "line 2, column 1",
                "unknown key 'activaton' (did you mean 'activation'?)",
            ],
        ),
        (
            "unknownbase.toml",
            "[base]\nepochs = 1\nlimit_trian = 100\n[[variant]]\nactivation = \"relu\"\n",
            vec![
                "unknownbase.toml",
                "line 3, column 1: [base]",
                "did you mean 'limit_train'",
            ],
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
    // Named before any data is read or any epoch timed.
    fails(
        actlab().args(["bench", "--conv", "6:40", "--data-dir", "/nonexistent"]),
        &["conv layer 1", "40x40", "28x28"],
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
    assert!(o.status.success() && err.contains("with 2 jobs"), "{err}");
}

#[test]
fn exercise_proposals_that_break_its_rule_are_refused() {
    let d = small();
    let rule = "\"architecture unchanged\"";
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--try", "relu/log_softmax/nll+hidden=256"],
            vec![
                "--try 'relu/log_softmax/nll+hidden=256'",
                "+hidden=[256]",
                rule,
            ],
        ),
        (vec!["--try", "tanh+lr=0.01"], vec!["+lr=0.01", rule]),
        (
            vec!["--try", "relu", "--hidden", "256"],
            vec!["--hidden:", rule, "--try"],
        ),
        (vec!["--lr", "0.01"], vec!["--lr:", rule]),
        (
            vec!["--try", "relu", "--dropout", "0.3"],
            vec!["--dropout with --try", rule],
        ),
        (
            vec!["--try", "relu", "--dataset", "fashion-mnist"],
            vec!["--try", "MNIST"],
        ),
        (
            vec!["--try", "rleu"],
            vec!["--try 'rleu'", "did you mean 'relu'"],
        ),
        (
            vec!["--try", "qg"],
            vec!["unknown activation 'qg'", "--define"],
        ),
    ];
    for (args, needles) in cases {
        let mut c = actlab();
        c.arg("exercise").args(&args).arg("--data-dir").arg(&d.0);
        c.arg("--out").arg(d.join("o"));
        fails(&mut c, &needles);
        assert!(!d.join("o").exists(), "{args:?} started training");
    }
}
