//! Parity with PyTorch for conv nets and normalisation: the cases of
//! tests/fixtures/torch-parity-3 (see its manifest.json and reference_net.py), each
//! assembled here from the conv, pool and norm kernels plus the existing linear,
//! activation, output and loss code; output, loss, every gradient, the state after 3
//! Adam and 3 SGD steps (running statistics included) and the eval-mode output.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use actlab::model_io::{read_tensors, TensorFile};
use actlab::nn::conv::ConvShape;
use actlab::nn::linear::LinearShape;
use actlab::nn::norm::{BatchNorm, LayerNorm, Moments, RunningStats};
use actlab::nn::pool::{PoolKind, PoolShape};
use actlab::nn::{Activation, Loss, OptimConfig, OptimKind, Optimizer, OutputFn};
use serde_json::Value;

/// One step of a case's network, in order.
enum Op {
    Conv(ConvShape, String, bool),
    Linear(LinearShape, String, bool),
    Batch(BatchNorm, String),
    Layer(LayerNorm, String),
    /// The activation, and for PReLU the name of its slope (`act{i}`).
    Act(Activation, Option<String>),
    Pool(PoolShape),
    Output(OutputFn),
}

/// What a forward step keeps for its backward step.
enum Aux {
    None,
    Moments(Moments),
    Argmax(Vec<u32>),
}

/// A case's network: its steps, parameters (PyTorch's names and layouts) and buffers.
struct Net {
    ops: Vec<Op>,
    params: BTreeMap<String, Vec<f32>>,
    buffers: BTreeMap<String, RunningStats>,
}

/// Gradients by tensor name.
type Grads = BTreeMap<String, Vec<f32>>;

/// The values flowing through a forward pass: vals[i] is step i's input.
struct Trace {
    vals: Vec<Vec<f32>>,
    aux: Vec<Aux>,
}

/// C:K[:S[:P]] as (channels, kernel, stride, padding).
fn conv_spec(spec: &str) -> (usize, usize, usize, usize) {
    let v: Vec<usize> = spec.split(':').map(|p| p.parse().unwrap()).collect();
    (v[0], v[1], *v.get(2).unwrap_or(&1), *v.get(3).unwrap_or(&0))
}

/// The norm and activation that follow hidden layer `i` (1-based) of `c` channels of
/// `s` values each.
fn hidden_tail(ops: &mut Vec<Op>, case: &Value, i: usize, (c, s): (usize, usize)) {
    let name = format!("norm{i}");
    match case["norm"].as_str().unwrap() {
        "batch" => ops.push(Op::Batch(BatchNorm { c, s }, name)),
        "layer" => ops.push(Op::Layer(LayerNorm { c, s }, name)),
        _ => {}
    }
    let act = Activation::parse_with(case["act"][i - 1].as_str().unwrap(), formulas()).unwrap();
    let slope = matches!(act, Activation::Prelu(_)).then(|| format!("act{i}"));
    ops.push(Op::Act(act, slope));
}

/// The steps of a case, as reference_net.py builds them.
fn build(case: &Value) -> Vec<Op> {
    let bias = case["norm"] != "batch";
    let (mut ops, mut i, mut dims) = (Vec::new(), 0, (1, 28, 28));
    for (k, spec) in case["conv"].as_array().unwrap().iter().enumerate() {
        let (c, kernel, s, p) = conv_spec(spec.as_str().unwrap());
        let shape = ConvShape::new(k + 1, dims, c, kernel, s, p).unwrap();
        ops.push(Op::Conv(shape, format!("conv{}", k + 1), bias));
        dims = shape.out_dims();
        i += 1;
        hidden_tail(&mut ops, case, i, (c, dims.1 * dims.2));
        let kind = match case["pool"].as_str().unwrap() {
            "max" => PoolKind::Max,
            "avg" => PoolKind::Avg,
            _ => continue,
        };
        let pool = PoolShape::new(k + 1, kind, dims).unwrap();
        ops.push(Op::Pool(pool));
        dims = pool.out_dims();
    }
    let mut width = dims.0 * dims.1 * dims.2;
    let hidden: Vec<usize> = case["hidden"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    for (j, &w) in hidden.iter().chain([&10]).enumerate() {
        let shape = LinearShape {
            fan_in: width,
            fan_out: w,
        };
        let last = j == hidden.len();
        ops.push(Op::Linear(shape, format!("fc{}", j + 1), bias || last));
        width = w;
        if !last {
            i += 1;
            hidden_tail(&mut ops, case, i, (w, 1));
        }
    }
    ops.push(Op::Output(
        case["output"].as_str().unwrap().parse().unwrap(),
    ));
    ops
}

/// [rows, cols] row-major into [cols, rows].
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols * rows)
        .map(|i| v[(i % rows) * cols + i / rows])
        .collect()
}

impl Net {
    /// The network of `case` with the tensors of `file` under `prefix` ("" = initial).
    fn load(case: &Value, file: &TensorFile, path: &Path, prefix: &str) -> Net {
        let ops = build(case);
        let (mut params, mut buffers) = (BTreeMap::new(), BTreeMap::new());
        for name in case["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
        {
            let (module, what) = name.rsplit_once('.').unwrap();
            if what.starts_with("running") || what == "num_batches_tracked" {
                continue;
            }
            params.insert(
                name.to_string(),
                file.get(path, &format!("{prefix}{name}"))
                    .unwrap()
                    .data
                    .clone(),
            );
            if module.starts_with("norm") && what == "weight" && case["norm"] == "batch" {
                let get = |b: &str| {
                    file.get(path, &format!("{prefix}{module}.{b}"))
                        .unwrap()
                        .data
                        .clone()
                };
                let stats = RunningStats {
                    mean: get("running_mean"),
                    var: get("running_var"),
                    batches_tracked: get("num_batches_tracked")[0] as i64,
                };
                buffers.insert(module.to_string(), stats);
            }
        }
        Net {
            ops,
            params,
            buffers,
        }
    }

    fn param(&self, name: &str, what: &str) -> &[f32] {
        &self.params[&format!("{name}.{what}")]
    }

    /// The network's output for `n` images, in train or eval mode.
    fn forward(&mut self, x: &[f32], n: usize, train: bool) -> Trace {
        let mut trace = Trace {
            vals: vec![x.to_vec()],
            aux: Vec::new(),
        };
        for k in 0..self.ops.len() {
            let (y, aux) = self.forward_op(k, trace.vals.last().unwrap(), n, train);
            trace.vals.push(y);
            trace.aux.push(aux);
        }
        trace
    }

    fn forward_op(&mut self, k: usize, x: &[f32], n: usize, train: bool) -> (Vec<f32>, Aux) {
        let mut y = vec![0.0; x.len()];
        let aux = match &self.ops[k] {
            Op::Conv(..) | Op::Linear(..) => return (self.forward_affine(k, x, n), Aux::None),
            Op::Batch(norm, name) => {
                let (norm, name) = (*norm, name.clone());
                let w = self.param(&name, "weight").to_vec();
                let b = self.param(&name, "bias").to_vec();
                let stats = self.buffers.get_mut(&name).unwrap();
                if !train {
                    norm.forward_eval(x, n, (&w, &b), stats, &mut y);
                    return (y, Aux::None);
                }
                let mut m = Moments::default();
                norm.forward_train(x, n, (&w, &b), stats, &mut m, &mut y)
                    .unwrap();
                Aux::Moments(m)
            }
            Op::Layer(norm, name) => {
                let mut m = Moments::default();
                let affine = (self.param(name, "weight"), self.param(name, "bias"));
                norm.forward(x, n, affine, &mut m, &mut y);
                Aux::Moments(m)
            }
            Op::Act(act, slope) => {
                self.activation(act.clone(), slope).forward(x, &mut y);
                Aux::None
            }
            Op::Pool(p) => {
                let mut idx = vec![0; n * p.out_len()];
                y.truncate(n * p.out_len());
                p.forward(x, n, &mut y, &mut idx);
                Aux::Argmax(idx)
            }
            Op::Output(o) => {
                o.forward(x, &mut y, 10);
                Aux::None
            }
        };
        (y, aux)
    }

    /// A conv or linear step's output.
    fn forward_affine(&self, k: usize, x: &[f32], n: usize) -> Vec<f32> {
        match &self.ops[k] {
            Op::Conv(s, name, bias) => {
                let mut y = vec![0.0; n * s.out_len()];
                let b = bias.then(|| self.param(name, "bias"));
                let mut col = vec![0.0; s.col_len()];
                s.forward(self.param(name, "weight"), b, x, n, &mut y, &mut col);
                y
            }
            Op::Linear(s, name, bias) => {
                let w = transpose(self.param(name, "weight"), s.fan_out, s.fan_in);
                let zeros = vec![0.0; s.fan_out];
                let b = if *bias {
                    self.param(name, "bias")
                } else {
                    &zeros
                };
                let mut y = vec![0.0; n * s.fan_out];
                s.forward(&w, b, x, n, &mut y);
                y
            }
            _ => unreachable!("only conv and linear steps"),
        }
    }

    /// A PReLU layer computes as a leaky ReLU with its current slope.
    fn activation(&self, act: Activation, slope: &Option<String>) -> Activation {
        match slope {
            Some(name) => Activation::LeakyRelu(self.param(name, "weight")[0]),
            None => act,
        }
    }

    /// Gradients of the batch-mean loss, by tensor name (PyTorch's layouts).
    fn backward(&self, trace: &Trace, t: &[u8], n: usize, loss: Loss) -> Grads {
        let out = trace.vals.last().unwrap();
        let mut dy = vec![0.0; out.len()];
        loss.grad(out, t, 10, n, &mut dy);
        let mut grads = BTreeMap::new();
        for k in (0..self.ops.len()).rev() {
            dy = self.backward_op(k, trace, &dy, n, &mut grads);
        }
        grads
    }

    fn backward_op(
        &self,
        k: usize,
        trace: &Trace,
        dy: &[f32],
        n: usize,
        grads: &mut Grads,
    ) -> Vec<f32> {
        let (x, y) = (&trace.vals[k], &trace.vals[k + 1]);
        let mut dx = vec![0.0; x.len()];
        match (&self.ops[k], &trace.aux[k]) {
            (Op::Conv(..) | Op::Linear(..), _) => self.backward_affine(k, x, dy, n, grads, &mut dx),
            (Op::Batch(norm, name), Aux::Moments(m)) => {
                let (mut dw, mut db) = (vec![0.0; norm.c], vec![0.0; norm.c]);
                norm.backward(
                    x,
                    dy,
                    n,
                    self.param(name, "weight"),
                    m,
                    (&mut dw, &mut db),
                    &mut dx,
                );
                grads.insert(format!("{name}.weight"), dw);
                grads.insert(format!("{name}.bias"), db);
            }
            (Op::Layer(norm, name), Aux::Moments(m)) => {
                let (mut dw, mut db) = (vec![0.0; norm.c], vec![0.0; norm.c]);
                norm.backward(
                    x,
                    dy,
                    n,
                    self.param(name, "weight"),
                    m,
                    (&mut dw, &mut db),
                    &mut dx,
                );
                grads.insert(format!("{name}.weight"), dw);
                grads.insert(format!("{name}.bias"), db);
            }
            (Op::Act(act, slope), _) => {
                self.activation(act.clone(), slope)
                    .backward(x, y, dy, &mut dx);
                if let Some(name) = slope {
                    // d/da of a * min(x, 0), summed (inputs above 0 contribute nothing).
                    let g: f64 = x
                        .iter()
                        .zip(dy)
                        .filter(|(&v, _)| v <= 0.0)
                        .map(|(&v, &d)| (v * d) as f64)
                        .sum();
                    grads.insert(format!("{name}.weight"), vec![g as f32]);
                }
            }
            (Op::Pool(p), Aux::Argmax(idx)) => p.backward(dy, idx, n, &mut dx),
            (Op::Output(o), _) => o.backward(y, dy, &mut dx, 10),
            _ => unreachable!("a norm step keeps its moments, a pool its argmax"),
        }
        dx
    }

    /// A conv or linear step's gradients, and dx unless it is the first step.
    fn backward_affine(
        &self,
        k: usize,
        x: &[f32],
        dy: &[f32],
        n: usize,
        grads: &mut Grads,
        dx: &mut [f32],
    ) {
        let dx = (k > 0).then_some(dx);
        let (name, bias, dw, db) = match &self.ops[k] {
            Op::Conv(s, name, bias) => {
                let (mut dw, mut db) = (vec![0.0; s.weights()], vec![0.0; s.c_out]);
                let mut scratch = (vec![0.0; s.col_len()], vec![0.0; s.col_len()]);
                let scratch = (&mut scratch.0[..], &mut scratch.1[..]);
                let w = self.param(name, "weight");
                s.backward(
                    w,
                    x,
                    dy,
                    n,
                    &mut dw,
                    bias.then_some(&mut db[..]),
                    dx,
                    scratch,
                );
                (name, *bias, dw, db)
            }
            Op::Linear(s, name, bias) => {
                let w = transpose(self.param(name, "weight"), s.fan_out, s.fan_in);
                let (mut dw, mut db) = (vec![0.0; s.fan_in * s.fan_out], vec![0.0; s.fan_out]);
                s.backward(&w, x, dy, n, &mut dw, &mut db, dx);
                (name, *bias, transpose(&dw, s.fan_in, s.fan_out), db)
            }
            _ => unreachable!("only conv and linear steps"),
        };
        grads.insert(format!("{name}.weight"), dw);
        if bias {
            grads.insert(format!("{name}.bias"), db);
        }
    }
}

/// Every element within `rel` of its reference value plus an absolute `floor`;
/// the first element that is not, as a message (the rule of tests/parity.rs).
fn check_close(what: &str, got: &[f32], want: &[f32], rel: f32, floor: f32) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} vs {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (err, allowed) = ((g - w).abs(), rel * w.abs() + floor);
        if err.is_nan() || err > allowed {
            return Err(format!(
                "{what}[{i}]: got {g}, PyTorch {w} (error {err:e} > allowed {allowed:e})"
            ));
        }
    }
    Ok(())
}

/// The gradient tolerance of tests/parity.rs: 1e-4 relative, floor 1e-5 of the
/// tensor's largest reference magnitude.
fn check_scaled(what: &str, got: &[f32], want: &[f32]) -> Result<(), String> {
    let scale = want.iter().fold(0.0f32, |m, w| m.max(w.abs()));
    check_close(what, got, want, 1e-4, 1e-5 * scale)
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

/// Optimiser settings from a case's "adam" or "sgd" entry (PyTorch's defaults otherwise).
fn optim_of(v: &Value) -> OptimConfig {
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0) as f32;
    OptimConfig {
        kind: match v["optimizer"].as_str() {
            Some("sgd") => OptimKind::Sgd,
            Some("adamw") => OptimKind::AdamW,
            _ => OptimKind::Adam,
        },
        lr: f("lr"),
        momentum: f("momentum"),
        nesterov: v["nesterov"] == true,
        weight_decay: f("weight_decay"),
        ..OptimConfig::default()
    }
}

/// `steps` optimiser steps on the batch, every parameter in one flat vector (in name
/// order, as one PyTorch parameter group).
fn run_steps(net: &mut Net, x: &[f32], t: &[u8], loss: Loss, cfg: OptimConfig, steps: usize) {
    let total: usize = net.params.values().map(Vec::len).sum();
    let mut opt = Optimizer::new(cfg, total);
    for _ in 0..steps {
        let trace = net.forward(x, t.len(), true);
        let grads = net.backward(&trace, t, t.len(), loss);
        assert!(
            grads.keys().eq(net.params.keys()),
            "a gradient for every parameter"
        );
        let mut flat: Vec<f32> = net.params.values().flatten().copied().collect();
        let g: Vec<f32> = grads.values().flatten().copied().collect();
        opt.step(&mut flat, &g);
        let mut rest = &flat[..];
        for v in net.params.values_mut() {
            let (head, tail) = rest.split_at(v.len());
            v.copy_from_slice(head);
            rest = tail;
        }
    }
}

/// The state after the steps against the fixture's `prefix` tensors: parameters
/// within 1e-5 (1% of an Adam step), running statistics likewise, batch counts exactly.
fn assert_state(what: &str, got: &Net, want: &Net) {
    for (name, v) in &got.params {
        check_close(&format!("{what} {name}"), v, &want.params[name], 0.0, 1e-5)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for (name, s) in &got.buffers {
        let w = &want.buffers[name];
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
    let t: Vec<u8> = f
        .get(&path, "target")
        .unwrap()
        .data
        .iter()
        .map(|&v| v as u8)
        .collect();
    let (n, loss): (usize, Loss) = (t.len(), case["loss"].as_str().unwrap().parse().unwrap());
    let mut net = Net::load(case, &f, &path, "");
    let initial = Net::load(case, &f, &path, "");
    let trace = net.forward(&x, n, true);
    let out = trace.vals.last().unwrap();
    let want = |k: &str| f.get(&path, k).unwrap().data.clone();
    check_close(&format!("{name} output"), out, &want("output"), 1e-4, 1e-6)
        .unwrap_or_else(|e| panic!("{e}"));
    let l = (loss.sum(out, &t, 10) / n as f64) as f32;
    check_close(&format!("{name} loss"), &[l], &want("loss"), 1e-4, 1e-6)
        .unwrap_or_else(|e| panic!("{e}"));
    let grads = net.backward(&trace, &t, n, loss);
    assert!(
        grads.keys().eq(net.params.keys()),
        "{name}: a gradient for every parameter"
    );
    for (k, g) in &grads {
        assert_gradient(
            &format!("{name} gradient {k}"),
            g,
            &want(&format!("grad.{k}")),
        );
    }
    check_steps(case, (&f, &path), &initial, (&x, &t));
}

/// 3 Adam and 3 SGD steps from the initial state against adam3.* and sgd3.*, and the
/// eval-mode output after the Adam steps against eval3.output.
fn check_steps(
    case: &Value,
    (f, path): (&TensorFile, &Path),
    initial: &Net,
    (x, t): (&[f32], &[u8]),
) {
    let name = case["name"].as_str().unwrap();
    let loss: Loss = case["loss"].as_str().unwrap().parse().unwrap();
    for (prefix, key) in [("adam3.", "adam"), ("sgd3.", "sgd")] {
        let (params, buffers) = (initial.params.clone(), initial.buffers.clone());
        let mut stepped = Net {
            ops: build(case),
            params,
            buffers,
        };
        run_steps(&mut stepped, x, t, loss, optim_of(&case[key]), 3);
        assert_state(
            &format!("{name} {prefix}"),
            &stepped,
            &Net::load(case, f, path, prefix),
        );
        if prefix == "adam3." {
            let got = stepped.forward(x, t.len(), false).vals.pop().unwrap();
            let want = &f.get(path, "eval3.output").unwrap().data;
            check_close(&format!("{name} eval3.output"), &got, want, 1e-4, 1e-6)
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
