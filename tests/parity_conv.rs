//! Parity with PyTorch for conv nets and normalisation through the engine: the cases
//! of tests/fixtures/torch-parity-3 (see its manifest.json and reference_net.py), each
//! built as an [`Arch`] and run by [`Mlp`] with its real workspace, layers and
//! optimiser; output, loss, every gradient (by the PyTorch names of
//! `Arch::param_names`), the state after 3 Adam and 3 SGD steps (running statistics
//! included) and the eval-mode output.

mod common;

use std::path::Path;

use common::tolerance::{check_close, check_scaled, optim_of};

use actlab::model_io::{params_from, read_tensors, stats_from, TensorFile};
use actlab::nn::spec::ConvSpec;
use actlab::nn::{
    Activation, Arch, Input, Loss, Mlp, OptimConfig, Optimizer, TrainInput, Workspace,
};
use serde_json::Value;

/// The architecture of a case, as reference_net.py builds it.
fn arch_of(case: &Value) -> Arch {
    let convs: Vec<&str> = (case["conv"].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut sizes = vec![784];
    sizes.extend((case["hidden"].as_array().unwrap().iter()).map(|v| v.as_u64().unwrap() as usize));
    sizes.push(10);
    let activations = (case["act"].as_array().unwrap().iter())
        .map(|a| Activation::parse_with(a.as_str().unwrap(), formulas()).unwrap())
        .collect();
    Arch {
        sizes,
        activations,
        output: case["output"].as_str().unwrap().parse().unwrap(),
        conv: ConvSpec::parse_list(&convs.join(",")).unwrap(),
        pool: case["pool"].as_str().unwrap().parse().unwrap(),
        norm: case["norm"].as_str().unwrap().parse().unwrap(),
        ..Default::default()
    }
}

/// The network of `case` with the tensors of `file` under `prefix` ("" = initial):
/// parameters by `Arch::param_names`, running statistics by `Arch::buffer_names`.
fn load(case: &Value, file: &TensorFile, path: &Path, prefix: &str) -> Mlp {
    let arch = arch_of(case);
    let mut names: Vec<String> = arch.param_names().into_iter().map(|n| n.0).collect();
    let buffers = arch.buffer_names();
    for (b, _) in &buffers {
        names.extend(
            ["running_mean", "running_var", "num_batches_tracked"].map(|w| format!("{b}.{w}")),
        );
    }
    let mut want: Vec<String> = (case["tensors"].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    names.sort();
    want.sort();
    assert_eq!(
        names, want,
        "{}: the engine's names are PyTorch's",
        case["name"]
    );
    let params = params_from(file, path, &arch, prefix).unwrap();
    let stats = stats_from(file, path, &arch, prefix).unwrap();
    let mut m = Mlp::from_params(arch, params);
    m.stats = stats;
    m
}

/// One training pass: (outputs, gradients in PyTorch's layout); the running
/// statistics it moved are kept in `m`.
fn train_pass(
    m: &mut Mlp,
    x: &[f32],
    t: &[actlab::data::Label],
    loss: Loss,
) -> (Vec<f32>, Vec<f32>) {
    let n = t.len();
    let mut ws = Workspace::new(m, n, true);
    let mut grads = vec![f32::NAN; m.params.len()];
    let trace = m.forward_train(&mut ws, TrainInput::Dense { x, n });
    let out = trace.outputs().to_vec();
    trace.backward(m, t, n, loss, &mut grads);
    m.keep_stats(&ws);
    (out, grads)
}

/// [`check_scaled`] for one gradient tensor, and proof that a 1% error in its
/// 90th-percentile non-zero element would fail.
fn assert_gradient(what: &str, got: &[f32], want: &[f32]) {
    check_scaled(what, got, want).unwrap_or_else(|e| panic!("{e}"));
    let mut order: Vec<usize> = (0..want.len()).filter(|&i| want[i] != 0.0).collect();
    if order.is_empty() {
        return;
    }
    order.sort_by(|&a, &b| want[a].abs().total_cmp(&want[b].abs()));
    let k = order[order.len() * 9 / 10];
    let mut wrong = want.to_vec();
    wrong[k] *= 1.01;
    assert!(
        check_scaled(what, &wrong, want).is_err(),
        "{what}: a 1% error at [{k}] would pass"
    );
}

/// `steps` optimiser steps on the batch through the engine's optimiser.
fn run_steps(
    m: &mut Mlp,
    x: &[f32],
    t: &[actlab::data::Label],
    loss: Loss,
    cfg: OptimConfig,
    steps: usize,
) {
    let mut opt = Optimizer::new(cfg, m.params.len());
    for _ in 0..steps {
        let (_, grads) = train_pass(m, x, t, loss);
        opt.step(&mut m.params, &grads);
    }
}

/// The state after the steps against the fixture's `prefix` tensors: parameters
/// within 1e-5 (1% of an Adam step), running statistics likewise, batch counts exactly.
fn assert_state(what: &str, got: &Mlp, want: &Mlp) {
    let (g, w) = (
        got.arch.to_files(&got.params),
        want.arch.to_files(&want.params),
    );
    let mut off = 0;
    for (name, shape) in got.arch.param_names() {
        let len: usize = shape.iter().product();
        let r = off..off + len;
        check_close(&format!("{what} {name}"), &g[r.clone()], &w[r], 0.0, 1e-5)
            .unwrap_or_else(|e| panic!("{e}"));
        off += len;
    }
    for ((name, _), (s, w)) in got
        .arch
        .buffer_names()
        .iter()
        .zip(got.stats.iter().zip(&want.stats))
    {
        check_close(
            &format!("{what} {name}.running_mean"),
            &s.mean,
            &w.mean,
            0.0,
            1e-5,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        check_close(
            &format!("{what} {name}.running_var"),
            &s.var,
            &w.var,
            1e-5,
            1e-6,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.batches_tracked, w.batches_tracked,
            "{what} {name}.num_batches_tracked"
        );
    }
}

/// One case: output and loss, every gradient, 3 Adam and 3 SGD steps, eval3.output.
fn check_case(case: &Value, dir: &Path) {
    let name = case["name"].as_str().unwrap();
    let path = dir.join(case["file"].as_str().unwrap());
    let f = read_tensors(&path).unwrap();
    let x = f.get(&path, "input").unwrap().data.clone();
    let t: Vec<actlab::data::Label> = (f.get(&path, "target").unwrap().data.iter())
        .map(|&v| v as actlab::data::Label)
        .collect();
    let (n, loss): (usize, Loss) = (t.len(), case["loss"].as_str().unwrap().parse().unwrap());
    let mut net = load(case, &f, &path, "");
    let (out, grads) = train_pass(&mut net, &x, &t, loss);
    let want = |k: &str| f.get(&path, k).unwrap().data.clone();
    check_close(&format!("{name} output"), &out, &want("output"), 1e-4, 1e-6)
        .unwrap_or_else(|e| panic!("{e}"));
    let l = (loss.sum(&out, &t, 10) / n as f64) as f32;
    check_close(&format!("{name} loss"), &[l], &want("loss"), 1e-4, 1e-6)
        .unwrap_or_else(|e| panic!("{e}"));
    let files = net.arch.to_files(&grads);
    let mut off = 0;
    for (k, shape) in net.arch.param_names() {
        let len: usize = shape.iter().product();
        let g = &files[off..off + len];
        assert_gradient(
            &format!("{name} gradient {k}"),
            g,
            &want(&format!("grad.{k}")),
        );
        off += len;
    }
    assert_eq!(off, grads.len(), "{name}: a gradient for every parameter");
    check_steps(case, (&f, &path), (&x, &t));
}

/// 3 Adam and 3 SGD steps from the initial state against adam3.* and sgd3.*, and the
/// eval-mode output after the Adam steps against eval3.output.
fn check_steps(
    case: &Value,
    (f, path): (&TensorFile, &Path),
    (x, t): (&[f32], &[actlab::data::Label]),
) {
    let name = case["name"].as_str().unwrap();
    let loss: Loss = case["loss"].as_str().unwrap().parse().unwrap();
    for (prefix, key) in [("adam3.", "adam"), ("sgd3.", "sgd")] {
        let mut stepped = load(case, f, path, "");
        run_steps(&mut stepped, x, t, loss, optim_of(&case[key]), 3);
        assert_state(
            &format!("{name} {prefix}"),
            &stepped,
            &load(case, f, path, prefix),
        );
        if prefix == "adam3." {
            let mut ws = Workspace::new(&stepped, t.len(), false);
            let got = stepped.forward_eval(&mut ws, Input::Dense { x, n: t.len() });
            let want = &f.get(path, "eval3.output").unwrap().data;
            check_close(&format!("{name} eval3.output"), got, want, 1e-4, 1e-6)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// The formulas the manifest defines (`quick_gelu`).
fn formulas() -> &'static actlab::nn::formula::Formulas {
    static DEFINED: std::sync::OnceLock<actlab::nn::formula::Formulas> = std::sync::OnceLock::new();
    DEFINED.get_or_init(|| {
        let dir = common::fixtures_of("torch-parity-3");
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        let mut f = actlab::nn::formula::Formulas::default();
        for (name, text) in m["define"].as_object().unwrap() {
            f.add(actlab::nn::activation::define(name, text.as_str().unwrap()).unwrap())
                .unwrap();
        }
        f
    })
}

/// Every case but the two trainer ones (those run through the command line).
#[test]
fn conv_and_norm_cases_match_pytorch() {
    let dir = common::fixtures_of("torch-parity-3");
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let mut checked = Vec::new();
    for case in m["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["train"].is_null())
    {
        check_case(case, &dir);
        checked.push(case["name"].as_str().unwrap().to_string());
    }
    assert_eq!(checked.len(), 14, "cases checked: {checked:?}");
}

/// The two trainer cases through the command line: the case's initial state
/// (`--init-from`, running statistics included), the first 13 MNIST training images in
/// order, batches of 8 with a final partial batch, 2 epochs of Adam; the saved model
/// (parameters, running statistics, batch counts) must equal PyTorch's `train.*`.
#[test]
fn cli_training_runs_with_conv_and_norm_layers_match_pytorch() {
    let dir = common::fixtures_of("torch-parity-3");
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let cases: Vec<&Value> = (m["cases"].as_array().unwrap().iter())
        .filter(|c| !c["train"].is_null())
        .collect();
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["trainer-lenet-bn", "trainer-mlp-ln"]);
    for case in cases {
        cli_trainer_case(case, &dir);
    }
}

/// A case's network as `actlab train` options.
fn cli_options(case: &Value) -> Vec<String> {
    let list = |k: &str| {
        (case[k].as_array().unwrap().iter())
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut args = Vec::new();
    if !case["conv"].as_array().unwrap().is_empty() {
        args.extend(["--conv".to_string(), list("conv")]);
    }
    for (opt, key) in [("--hidden", "hidden"), ("--activation", "act")] {
        args.extend([opt.to_string(), list(key)]);
    }
    for (opt, key) in [("--pool", "pool"), ("--norm", "norm")] {
        args.extend([opt.to_string(), case[key].as_str().unwrap().to_string()]);
    }
    args
}

fn cli_trainer_case(case: &Value, dir: &Path) {
    let name = case["name"].as_str().unwrap();
    let t = &case["train"];
    assert_eq!(
        (t["limit_train"].as_u64(), t["batch_size"].as_u64()),
        (Some(13), Some(8)),
        "{name}"
    );
    assert_eq!(
        (t["epochs"].as_u64(), t["optimizer"].as_str()),
        (Some(2), Some("adam"))
    );
    let path = dir.join(case["file"].as_str().unwrap());
    let out = common::TempDir::new("parity-conv-trainer");
    let model = out.join("model.safetensors");
    common::run_ok(
        common::actlab()
            .arg("train")
            .args(cli_options(case))
            .args(["--no-shuffle", "--no-diagnostics", "--limit-train", "13"])
            .args(["--batch-size", "8", "--epochs", "2", "--limit-test", "10"])
            .args(["--lr", &t["lr"].to_string(), "--init-from"])
            .arg(&path)
            .arg("--out")
            .arg(out.join("run"))
            .arg("--save")
            .arg(&model),
    );
    let f = read_tensors(&path).unwrap();
    let got = load(case, &read_tensors(&model).unwrap(), &model, "");
    let want = load(case, &f, &path, "train.");
    assert_state(&format!("{name} train."), &got, &want);
    let init = load(case, &f, &path, "");
    assert_ne!(
        init.params, want.params,
        "{name}: training moved the parameters"
    );
    if let Some(s) = want.stats.first() {
        assert_eq!(
            s.batches_tracked, 4,
            "{name}: 2 batches in each of 2 epochs"
        );
    }
}
