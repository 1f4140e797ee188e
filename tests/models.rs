//! Saved models: round trip, PyTorch-fixture parity through the CLI, resume, predict.

mod common;

use std::sync::atomic::AtomicBool;

use actlab::checkpoint::Checkpoint;
use actlab::config::TrainConfig;
use actlab::data::{load_dir, DatasetName, PIXELS, SIDE};
use actlab::eval::evaluate;
use actlab::model_io::{load_model, params_from, read_tensors, save_model};
use actlab::store::records::train;
use actlab::train::{Silent, Trainer};
use common::{actlab, data_dir, run_ok, TempDir};
use serde_json::Value;

#[test]
fn save_load_round_trip_gives_identical_predictions() {
    let split = common::mnist_slice(2000, 500);
    let cfg = TrainConfig {
        epochs: 1,
        activation: vec!["gelu".parse().unwrap(), "tanh".parse().unwrap()],
        ..Default::default()
    };
    let (_, model) = train(&cfg, &split, &mut Silent, &AtomicBool::new(false));
    let dir = TempDir::new("roundtrip");
    let path = dir.join("m.safetensors");
    save_model(&path, &model, &cfg).unwrap();
    assert!(dir.join("m.json").exists());
    let (loaded, meta) = load_model(&path, None).unwrap();
    assert_eq!(loaded.params, model.params);
    assert_eq!(meta.activations, cfg.activations());
    assert_eq!(
        evaluate(&loaded, &split.test, cfg.loss, 1),
        evaluate(&model, &split.test, cfg.loss, 1)
    );
    // PyTorch names and [out, in] layouts.
    let f = read_tensors(&path).unwrap();
    assert_eq!(f.tensors["fc1.weight"].shape, vec![128, 784]);
    assert_eq!(f.tensors["fc3.bias"].shape, vec![10]);
    assert_eq!(f.tensors.len(), 6);
}

#[test]
fn cli_training_from_fixture_init_matches_pytorch_adam_steps() {
    let fx = common::fixtures();
    let dir = TempDir::new("fixture");
    let model = dir.join("m.safetensors");
    run_ok(
        actlab()
            .args([
                "train",
                "--hidden",
                "32,16",
                "--limit-train",
                "8",
                "--limit-test",
                "100",
            ])
            .args([
                "--batch-size",
                "8",
                "--no-shuffle",
                "--epochs",
                "3",
                "--init-from",
            ])
            .arg(fx.join("init.safetensors"))
            .arg("--data-dir")
            .arg(data_dir())
            .arg("--out")
            .arg(dir.join("run"))
            .arg("--save")
            .arg(&model),
    );
    let (m, _) = load_model(&model, None).unwrap();
    let want_path = fx.join("relu-log_softmax-nll.safetensors");
    let want = params_from(
        &read_tensors(&want_path).unwrap(),
        &want_path,
        &m.arch,
        "adam3.",
    )
    .unwrap();
    assert_eq!(m.params.len(), want.len());
    for (i, (g, w)) in m.params.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-5, "param {i}: {g} vs PyTorch {w}");
    }
    // The initial weights differ from the result (the steps really happened).
    let init_path = fx.join("init.safetensors");
    let init = params_from(&read_tensors(&init_path).unwrap(), &init_path, &m.arch, "").unwrap();
    assert_eq!(init.len(), m.params.len());
    assert!(init
        .iter()
        .zip(&m.params)
        .any(|(a, b)| (a - b).abs() > 1e-4));
}

#[test]
fn resumed_run_equals_a_straight_run() {
    let split = common::mnist_slice(3000, 500);
    let cfg = TrainConfig {
        epochs: 4,
        dropout: 0.1,
        ..Default::default()
    };
    let stop = AtomicBool::new(false);
    let mut straight = Trainer::new(cfg.clone(), &split);
    for _ in 0..4 {
        straight.run_epoch(&mut Silent, &stop).unwrap();
    }
    let dir = TempDir::new("resume-lib");
    let mut first = Trainer::new(cfg.clone(), &split);
    for _ in 0..2 {
        first.run_epoch(&mut Silent, &stop).unwrap();
    }
    Checkpoint::of(&first).save(&dir.0).unwrap();
    drop(first);
    let mut resumed = Checkpoint::load(&dir.0).unwrap().into_trainer(&split);
    assert_eq!(resumed.history.len(), 2);
    for _ in 0..2 {
        resumed.run_epoch(&mut Silent, &stop).unwrap();
    }
    let bits = |p: &[f32]| p.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    assert_eq!(bits(&straight.model.params), bits(&resumed.model.params));
    let strip = |h: &[actlab::train::EpochFigures]| -> Vec<_> {
        h.iter().map(|e| (e.train, e.val, e.test)).collect()
    };
    assert_eq!(strip(&straight.history), strip(&resumed.history));
}

use common::json_of;

/// A checkpoint written before weights were stored input-major (PyTorch's [out, in]
/// layout for the parameters and both moments, no "layout" entry) resumes to the
/// same parameters as one written now.
#[test]
fn checkpoints_in_the_old_layout_resume_the_same() {
    let split = common::mnist_slice(1000, 100);
    let stop = AtomicBool::new(false);
    let mut tr = Trainer::new(TrainConfig::default(), &split);
    tr.run_epoch(&mut Silent, &stop).unwrap();
    let dir = TempDir::new("old-layout");
    let now = dir.join("now.safetensors");
    let ck = Checkpoint::of(&tr);
    ck.save_file(&now).unwrap();
    let f = actlab::model_io::read_tensors(&now).unwrap();
    let arch = tr.model.arch.clone();
    let old: Vec<(String, Vec<usize>, Vec<f32>)> = ["params", "optim.m", "optim.v"]
        .iter()
        .map(|k| {
            let t = f.get(&now, k).unwrap();
            (k.to_string(), t.shape.clone(), arch.to_files(&t.data))
        })
        .collect();
    let views: Vec<(String, Vec<usize>, &[f32])> = old
        .iter()
        .map(|(k, s, d)| (k.clone(), s.clone(), d.as_slice()))
        .collect();
    let mut meta: std::collections::BTreeMap<String, String> =
        f.metadata.clone().into_iter().collect();
    assert_eq!(meta.remove("layout").as_deref(), Some("input-major"));
    let before = dir.join("before.safetensors");
    std::fs::write(
        &before,
        actlab::model_io::tensors_to_bytes(&views, &meta).unwrap(),
    )
    .unwrap();
    assert_ne!(old[0].2, tr.model.params, "the old layout differs");
    let loaded = Checkpoint::load_file(&before).unwrap();
    assert_eq!(loaded.params, tr.model.params);
    assert_eq!(loaded.m, tr.opt.m);
    assert_eq!(loaded.v, tr.opt.v);
}

/// A real process interrupted with Ctrl-C (SIGINT) after epoch 2 of 4, then resumed.
/// A test hook holds the run right after epoch 2's record, so the signal always lands
/// at the same point.
#[test]
fn ctrl_c_then_resume_through_the_cli() {
    let dirs = TempDir::new("sigint");
    let args = common::SHORT_TRAIN;
    run_ok(actlab().args(args).arg("--out").arg(dirs.join("straight")));
    let out = dirs.join("interrupted");
    let (mut child, mut err, seen) =
        common::spawn_held(actlab().args(args).arg("--out").arg(&out), "wait@record:2");
    common::signal(&child, "-INT");
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(
        rest.contains("interrupted after 2 of 4 epochs") && rest.contains("actlab train --resume"),
        "{rest}"
    );
    let record = out.join("record.json");
    assert_eq!(json_of(&record)["history"].as_array().unwrap().len(), 2);
    run_ok(actlab().arg("train").arg("--resume").arg(&out));
    assert_eq!(
        common::record_without_timings(&record),
        common::record_without_timings(&dirs.join("straight/record.json"))
    );
}

#[test]
fn predict_images_like_tensors() {
    let dir = TempDir::new("predict");
    let model = dir.join("m.safetensors");
    let data = data_dir();
    run_ok(
        actlab()
            .args([
                "train",
                "--epochs",
                "1",
                "--limit-train",
                "10000",
                "--limit-test",
                "100",
            ])
            .arg("--data-dir")
            .arg(&data)
            .arg("--out")
            .arg(dir.join("run"))
            .arg("--save")
            .arg(&model),
    );
    let split = load_dir(DatasetName::Mnist, &common::mnist_dir()).unwrap();
    let n = 8;
    let mut files = Vec::new();
    for i in 0..n {
        let img = split.test.image(i);
        let plain = image::GrayImage::from_raw(SIDE as u32, SIDE as u32, img.to_vec()).unwrap();
        let mut inv = plain.clone();
        image::imageops::invert(&mut inv);
        // Scaled up 7x to 196x196 on a 200x200 white page.
        let big = image::imageops::resize(&inv, 196, 196, image::imageops::FilterType::Nearest);
        let mut page = image::GrayImage::from_pixel(200, 200, image::Luma([255]));
        image::imageops::overlay(&mut page, &big, 2, 2);
        for (tag, im) in [("plain", plain), ("inverted", inv), ("page", page)] {
            let p = dir.join(&format!("{i}-{tag}.png"));
            im.save(&p).unwrap();
            files.push((i, tag, p));
        }
    }
    let mut cmd = actlab();
    cmd.arg("predict")
        .arg(&model)
        .arg("--json")
        .arg("--test-index")
        .arg(format!("0..{n}"));
    cmd.arg("--data-dir").arg(&data);
    for (_, _, p) in &files {
        cmd.arg(p);
    }
    let out: Value = serde_json::from_str(&run_ok(&mut cmd)).unwrap();
    let preds = out.as_array().unwrap();
    assert_eq!(preds.len(), files.len() + n);
    let from_tensors: Vec<u64> = preds[files.len()..]
        .iter()
        .map(|p| p["predicted"].as_u64().unwrap())
        .collect();
    for ((i, tag, _), p) in files.iter().zip(preds) {
        assert_eq!(
            p["predicted"].as_u64().unwrap(),
            from_tensors[*i],
            "image {i} ({tag})"
        );
        assert_eq!(p["inverted"].as_bool().unwrap(), *tag != "plain");
    }
    // Not an image: one clear line, exit 2.
    let bogus = dir.join("notes.png");
    std::fs::write(&bogus, b"hello").unwrap();
    let o = actlab()
        .arg("predict")
        .arg(&model)
        .arg(&bogus)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.trim().lines().count() == 1 && err.contains("not a readable PNG"),
        "{err}"
    );
    let _ = PIXELS;
}

/// The record as text with timings removed: a resumed run must write the very same
/// bytes as an uninterrupted one (floats round-trip exactly through the checkpoint).
fn record_text_without_timings(path: &std::path::Path) -> String {
    let mut v = json_of(path);
    for k in ["train_seconds", "wall_seconds"] {
        v[k] = Value::Null;
    }
    for e in v["history"].as_array_mut().unwrap() {
        e["seconds"] = Value::Null;
    }
    serde_json::to_string_pretty(&v).unwrap()
}

/// SIGTERM (what Slurm and Kubernetes send) stops as cleanly as Ctrl-C, and the
/// resumed record is byte-identical to a straight run's, timings aside.
#[test]
fn sigterm_stops_cleanly_and_resume_is_byte_identical() {
    let dirs = TempDir::new("sigterm");
    run_ok(
        actlab()
            .args(common::SHORT_TRAIN)
            .arg("--out")
            .arg(dirs.join("straight")),
    );
    let out = dirs.join("stopped");
    let (mut child, mut err, _) = common::spawn_held(
        actlab().args(common::SHORT_TRAIN).arg("--out").arg(&out),
        "wait@record:3",
    );
    common::signal(&child, "-TERM");
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("interrupted after 3 of 4 epochs"), "{rest}");
    run_ok(actlab().arg("train").arg("--resume").arg(&out));
    assert_eq!(
        record_text_without_timings(&out.join("record.json")),
        record_text_without_timings(&dirs.join("straight/record.json"))
    );
}

/// A PReLU model round-trips: saved with PyTorch's names (`act1.weight`, `act2.weight`
/// beside `fc*`), evaluated and used for prediction with no flags, and a bare weights
/// file (as PyTorch's `save_file(net.state_dict())` writes) is read as PReLU too.
#[test]
fn prelu_models_round_trip_with_pytorch_names() {
    let d = TempDir::new("prelu");
    let model = d.join("prelu.safetensors");
    run_ok(
        actlab()
            .args(common::TINY_TRAIN)
            .args(["--activation", "prelu:0.1", "--out"])
            .arg(d.join("run"))
            .arg("--save")
            .arg(&model),
    );
    let f = read_tensors(&model).unwrap();
    let mut names: Vec<&String> = f.tensors.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "act1.weight",
            "act2.weight",
            "fc1.bias",
            "fc1.weight",
            "fc2.bias",
            "fc2.weight",
            "fc3.bias",
            "fc3.weight"
        ]
    );
    let slope = f.get(&model, "act1.weight").unwrap();
    assert_eq!(slope.shape, vec![1]);
    assert_ne!(slope.data[0], 0.1, "the slope was trained");
    let eval = |m: &std::path::Path| -> Value {
        serde_json::from_str(&run_ok(actlab().arg("eval").arg(m).arg("--json"))).unwrap()
    };
    let with_meta = eval(&model);
    // The same weights without actlab's metadata or JSON description.
    let bare = d.join("bare.safetensors");
    let views: Vec<(String, Vec<usize>, &[f32])> = f
        .tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone(), t.data.as_slice()))
        .collect();
    let bytes = actlab::model_io::tensors_to_bytes(&views, &Default::default()).unwrap();
    std::fs::write(&bare, bytes).unwrap();
    let without = eval(&bare);
    assert_eq!(with_meta["accuracy"], without["accuracy"]);
    assert_eq!(with_meta["loss"], without["loss"]);
    let p = run_ok(
        actlab()
            .arg("predict")
            .arg(&model)
            .args(["--test-index", "0..3"]),
    );
    assert_eq!(p.lines().count(), 3, "{p}");
}
