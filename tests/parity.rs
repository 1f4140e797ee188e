//! Parity with PyTorch: outputs, losses, gradients and optimiser steps against the
//! reference values in ../shared/fixtures/torch-parity (see its manifest.json).

mod common;

use std::path::Path;

use actlab::model_io::{params_from, read_tensors};
use actlab::nn::{
    Activation, Arch, Loss, Mlp, OptimConfig, OptimKind, Optimizer, OutputFn, Workspace,
};

struct Case {
    name: String,
    hidden: Activation,
    output: OutputFn,
    loss: Loss,
    file: String,
    loss_value: f64,
}

fn manifest(dir: &Path) -> (serde_json::Value, Vec<Case>) {
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = m["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().into(),
            hidden: c["hidden"].as_str().unwrap().parse().unwrap(),
            output: c["output"].as_str().unwrap().parse().unwrap(),
            loss: c["loss"].as_str().unwrap().parse().unwrap(),
            file: c["file"].as_str().unwrap().into(),
            loss_value: c["loss_value"].as_f64().unwrap(),
        })
        .collect();
    (m, cases)
}

fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32, abs: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0f32, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let allowed = rel * w.abs() + abs;
        assert!(
            err <= allowed,
            "{what}[{i}]: got {g}, PyTorch {w} (error {err:e} > allowed {allowed:e})"
        );
        if err > worst.0 {
            worst = (err, i);
        }
    }
}

fn run_steps(
    model: &Mlp,
    case: &Case,
    x: &[f32],
    t: &[u8],
    cfg: OptimConfig,
    steps: usize,
) -> Vec<f32> {
    let mut m = model.clone();
    let mut ws = Workspace::new(&m.arch, t.len(), false);
    let mut grads = vec![0.0; m.params.len()];
    let mut opt = Optimizer::new(cfg, m.params.len());
    for _ in 0..steps {
        m.forward(&mut ws, x, t.len(), false);
        m.backward(
            &mut ws,
            x,
            t,
            t.len(),
            t.len(),
            case.loss,
            false,
            &mut grads,
        );
        opt.step(&mut m.params, &grads);
    }
    m.params
}

#[test]
fn all_cases_match_pytorch() {
    let dir = common::fixtures();
    let (m, cases) = manifest(&dir);
    assert_eq!(cases.len(), 18, "the manifest lists 18 cases");
    let dims: Vec<usize> = m["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let init_path = dir.join("init.safetensors");
    let init = read_tensors(&init_path).unwrap();
    let x = init.get(&init_path, "input").unwrap().data.clone();
    let t: Vec<u8> = init
        .get(&init_path, "target")
        .unwrap()
        .data
        .iter()
        .map(|&v| v as u8)
        .collect();
    let n = t.len();
    let adam = &m["adam"];
    let sgd = &m["sgd"];
    let adam_cfg = OptimConfig {
        kind: OptimKind::Adam,
        lr: adam["lr"].as_f64().unwrap() as f32,
        betas: (
            adam["betas"][0].as_f64().unwrap() as f32,
            adam["betas"][1].as_f64().unwrap() as f32,
        ),
        eps: adam["eps"].as_f64().unwrap() as f32,
        weight_decay: adam["weight_decay"].as_f64().unwrap() as f32,
        momentum: 0.0,
    };
    let sgd_cfg = OptimConfig {
        kind: OptimKind::Sgd,
        lr: sgd["lr"].as_f64().unwrap() as f32,
        momentum: sgd["momentum"].as_f64().unwrap() as f32,
        weight_decay: sgd["weight_decay"].as_f64().unwrap() as f32,
        ..OptimConfig::default()
    };
    for case in &cases {
        let arch = Arch {
            sizes: dims.clone(),
            activations: vec![case.hidden; dims.len() - 2],
            output: case.output,
        };
        let params = params_from(&init, &init_path, &arch, "").unwrap();
        let model = Mlp::from_params(arch, params);
        let path = dir.join(&case.file);
        let want = read_tensors(&path).unwrap();

        let mut ws = Workspace::new(&model.arch, n, false);
        model.forward(&mut ws, &x, n, false);
        let out = ws.outputs(n).to_vec();
        assert_close(
            &format!("{} output", case.name),
            &out,
            &want.get(&path, "output").unwrap().data,
            1e-4,
            1e-6,
        );
        let loss = (case.loss.sum(&out, &t, 10) / n as f64) as f32;
        assert_close(
            &format!("{} loss", case.name),
            &[loss],
            &want.get(&path, "loss").unwrap().data,
            1e-4,
            1e-6,
        );
        assert!(((loss as f64 - case.loss_value) / case.loss_value).abs() < 1e-4);

        let mut grads = vec![0.0; model.params.len()];
        model.backward(&mut ws, &x, &t, n, n, case.loss, false, &mut grads);
        let want_grads = params_from(&want, &path, &model.arch, "grad.").unwrap();
        assert_close(
            &format!("{} gradients", case.name),
            &grads,
            &want_grads,
            1e-4,
            1e-6,
        );

        for (prefix, cfg) in [("adam3.", adam_cfg), ("sgd3.", sgd_cfg)] {
            let got = run_steps(&model, case, &x, &t, cfg, 3);
            let expect = params_from(&want, &path, &model.arch, prefix).unwrap();
            assert_close(
                &format!("{} {prefix}params", case.name),
                &got,
                &expect,
                0.0,
                1e-5,
            );
        }
    }
}
