//! Every kernel of the model gives the same bits at every SIMD tier this CPU has:
//! element-wise loops compute the same operations at any width, and the sparse
//! kernels' portable copies round each multiply-add once (`mul_add`) as the FMA copies
//! do. Run with `ACTLAB_SIMD` unset to compare all the tiers the CPU has.

use super::formula::{parse::parse, tape::Tape};
use super::sparse::{Listed, RowLists, SparseColumns};
use super::*;
use super::{InputBuf, TrainInput};
use crate::simd::{each_tier, Tier};

/// Inputs over the activations' interesting range, with signed zeros, infinities,
/// huge and tiny values; an odd length so every loop has a tail.
fn inputs() -> Vec<f32> {
    let mut x: Vec<f32> = (0..1031).map(|i| (i as f32 - 515.0) * 0.0173).collect();
    x.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e30,
        -1e30,
        1e-40,
        -1e-40,
    ]);
    x.extend([88.5, -88.5, 100.0, -100.0, 20.0, -20.0, f32::MIN_POSITIVE]);
    x
}

/// Deterministic values in [-1, 1) of length `n`.
fn noise(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let h = i
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(40_503));
            (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// Panics unless every tier's output has the bits of the first (portable) one; NaNs
/// match any NaN.
fn same_at_every_tier(what: &str, outs: Vec<(Tier, Vec<f32>)>) {
    let (first, want) = &outs[0];
    for (tier, got) in &outs[1..] {
        assert_eq!(
            got.len(),
            want.len(),
            "{what}: lengths at {tier} and {first}"
        );
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{what}: element {i} is {g:e} at {tier}, {w:e} at {first}"
            );
        }
    }
}

fn activations() -> Vec<Activation> {
    let named = activation::NAMES
        .iter()
        .map(|n| n.parse().expect("a built-in name"));
    named
        .chain([
            Activation::Prelu(0.25),
            Activation::LeakyRelu(0.2),
            Activation::Elu(0.5),
            Activation::Softplus {
                beta: 2.0,
                threshold: 5.0,
            },
        ])
        .collect()
}

#[test]
fn activations_give_the_same_bits_at_every_tier() {
    let z = inputs();
    let da = noise(z.len(), 1);
    for act in activations() {
        let forward = each_tier(|| {
            let mut a = vec![0.0; z.len()];
            act.forward(&z, &mut a);
            a
        });
        let a = forward[0].1.clone();
        same_at_every_tier(&format!("{act} forward"), forward);
        let backward = each_tier(|| {
            let mut dz = vec![0.0; z.len()];
            act.backward(&z, &a, &da, &mut dz);
            dz
        });
        same_at_every_tier(&format!("{act} backward"), backward);
    }
}

#[test]
fn formula_tapes_give_the_same_bits_at_every_tier() {
    let z = inputs();
    let da = noise(z.len(), 2);
    for text in [
        "0.5 * x * (1 + erf(x / sqrt(2)))",
        "where(x > 0, x, 0.1 * expm1(x)) * sigmoid(x) + max(x, -1) ^ 2",
        "log1p(exp(-abs(x))) / (1 + x * x) + sin(x) * cos(x) + tanh(x)",
    ] {
        let tape = Tape::compile(&parse(text).expect("a valid formula")).expect("compiles");
        let forward = each_tier(|| {
            let mut a = vec![0.0; z.len()];
            tape.forward(&z, &mut a);
            a
        });
        same_at_every_tier(&format!("{text} forward"), forward);
        let backward = each_tier(|| {
            let mut dz = vec![0.0; z.len()];
            tape.backward(&z, &da, &mut dz);
            dz
        });
        same_at_every_tier(&format!("{text} backward"), backward);
    }
}

#[test]
fn output_functions_give_the_same_bits_at_every_tier() {
    // 37 rows: four blocks of eight rows and a tail; 10 and 3 classes.
    for classes in [10, 3] {
        let z: Vec<f32> = noise(37 * classes, 3).iter().map(|v| v * 12.0).collect();
        let dy = noise(z.len(), 4);
        for out in [OutputFn::LogSoftmax, OutputFn::Softmax, OutputFn::Sigmoid] {
            let forward = each_tier(|| {
                let mut y = vec![0.0; z.len()];
                out.forward(&z, &mut y, classes);
                y
            });
            let y = forward[0].1.clone();
            same_at_every_tier(&format!("{out:?} forward, {classes} classes"), forward);
            let backward = each_tier(|| {
                let mut dz = vec![0.0; z.len()];
                out.backward(&y, &dy, &mut dz, classes);
                dz
            });
            same_at_every_tier(&format!("{out:?} backward, {classes} classes"), backward);
        }
    }
}

#[test]
fn optimisers_give_the_same_bits_at_every_tier() {
    let n = 1003;
    let configs = [
        OptimConfig::default(),
        OptimConfig {
            kind: OptimKind::AdamW,
            weight_decay: 0.01,
            ..Default::default()
        },
        OptimConfig {
            weight_decay: 1e-4,
            ..Default::default()
        },
        OptimConfig {
            kind: OptimKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-4,
            ..Default::default()
        },
    ];
    for cfg in configs {
        let params = each_tier(|| {
            let mut p = noise(n, 5);
            let mut opt = Optimizer::new(cfg, n);
            for step in 0..3 {
                opt.step(&mut p, &noise(n, 6 + step));
            }
            p
        });
        same_at_every_tier(&format!("{:?}", cfg.kind), params);
    }
}

/// Batch norm's train-mode output, statistics, running statistics and gradients and
/// its eval-mode output, for BatchNorm1d (blocks of features with a tail) and
/// BatchNorm2d (groups of channels with the rest), concatenated.
#[test]
fn batch_norm_gives_the_same_bits_at_every_tier() {
    use super::norm::{BatchNorm, Moments, RunningStats};
    for (n, c, s) in [(7, 131, 1), (5, 23, 9), (3, 6, 49)] {
        let bn = BatchNorm { c, s };
        let len = n * c * s;
        let x: Vec<f32> = noise(len, 7).iter().map(|v| v * 3.0 + 0.5).collect();
        let (dy, w, b) = (noise(len, 8), noise(c, 9), noise(c, 10));
        let outs = each_tier(|| {
            let (mut run, mut saved) = (RunningStats::new(c), Moments::default());
            let mut y = vec![0.0; len];
            bn.forward_train(&x, n, (&w, &b), &mut run, &mut saved, &mut y)
                .expect("more than one value per channel");
            let (mut dw, mut db, mut dx) = (vec![0.0; c], vec![0.0; c], vec![0.0; len]);
            bn.backward(&x, &dy, n, &w, &saved, (&mut dw, &mut db), &mut dx);
            let mut eval = vec![0.0; len];
            bn.forward_eval(&x, n, (&w, &b), &run, &mut eval);
            let parts = [
                y,
                saved.mean,
                saved.invstd,
                run.mean,
                run.var,
                dw,
                db,
                dx,
                eval,
            ];
            parts.concat()
        });
        same_at_every_tier(&format!("batch norm {n}x{c}x{s}"), outs);
    }
}

/// A batch of `n` rows of `width` with about one value in five non-zero, as bytes.
fn sparse_bytes(n: usize, width: usize) -> Vec<u8> {
    (0..n * width)
        .map(|i| {
            if (i * 13 + i / 7) % 5 == 0 {
                (i * 31 % 255 + 1) as u8
            } else {
                0
            }
        })
        .collect()
}

#[test]
fn sparse_first_layer_gives_the_same_bits_at_every_tier() {
    let (n, width, out) = (19, 70, 128);
    let values: [f32; 256] = std::array::from_fn(|b| b as f32 / 255.0);
    let bytes = sparse_bytes(n, width);
    let x: Vec<f32> = bytes.iter().map(|&b| values[b as usize]).collect();
    let (w, b, dy) = (noise(width * out, 7), noise(out, 8), noise(n * out, 9));
    // Forward before and after sorting into columns, then the weight gradient.
    let results = each_tier(|| {
        let mut cols = SparseColumns::default();
        assert!(cols.build(&x, n, width, 1.0).is_some(), "built");
        let mut all = vec![0.0; n * out];
        cols.forward(&w, &b, out, &mut all);
        let mut sorted = vec![0.0; n * out];
        let (mut dw, mut db) = (vec![0.0; width * out], vec![0.0; out]);
        cols.weight_grad(&dy, out, &mut dw, &mut db);
        cols.forward(&w, &b, out, &mut sorted);
        all.extend(sorted);
        all.extend(dw);
        all.extend(db);
        all
    });
    same_at_every_tier("sparse columns", results);
}

#[test]
fn listed_rows_give_the_same_bits_at_every_tier() {
    let (n, width, out) = (23, 70, 128);
    let values: [f32; 256] = std::array::from_fn(|b| b as f32 / 255.0);
    let bytes = sparse_bytes(n, width);
    let (mut ends, mut cols, mut nz) = (vec![], vec![], vec![]);
    for row in bytes.chunks_exact(width) {
        for (c, &v) in row.iter().enumerate().filter(|(_, &v)| v != 0) {
            cols.push(c as u16);
            nz.push(v);
        }
        ends.push(cols.len() as u32);
    }
    let lists = RowLists {
        ends: &ends,
        cols: &cols,
        bytes: &nz,
    };
    let pick: Vec<u32> = (0..n as u32).rev().step_by(2).collect();
    let (w, b) = (noise(width * out, 10), noise(out, 11));
    let listed = Listed {
        lists,
        pick: &pick,
        values: &values,
    };
    let results = each_tier(|| {
        let mut y = vec![0.0; pick.len() * out];
        listed.forward(&w, &b, out, &mut y);
        let mut from_bytes = SparseColumns::default();
        let built = from_bytes.build_from_bytes(&bytes, &pick, width, &values, 1.0);
        assert!(built.is_some(), "built");
        let mut y2 = vec![0.0; pick.len() * out];
        from_bytes.forward(&w, &b, out, &mut y2);
        y.extend(y2);
        y
    });
    same_at_every_tier("listed rows", results);
}

/// On the portable tier the first layer has no sparse kernels (they need FMA), so
/// the workspace's choice falls back to the dense product.
#[test]
fn the_portable_tier_has_no_sparse_first_layer() {
    assert!(!crate::simd::with_tier(Tier::Portable, sparse::available));
    for (tier, has) in each_tier(sparse::available) {
        assert_eq!(has, tier >= Tier::Avx2, "at {tier}");
    }
}

/// The first layer on the portable tier: Auto runs the dense product (with Dense's
/// bits), Sparse still the sparse kernels (through `mul_add`); from avx2 on, Auto runs
/// the sparse kernels on a mostly-zero batch. Dense has the same bits at every tier.
#[test]
fn the_portable_tier_runs_the_dense_first_layer() {
    let arch = Arch {
        sizes: vec![40, 70, 8, 3],
        activations: vec![Activation::Relu; 2],
        output: OutputFn::LogSoftmax,
        dropout: 0.0,
        ..Default::default()
    };
    let m = Mlp::new(
        arch,
        Init::Torch,
        &mut <Rng as rand::SeedableRng>::seed_from_u64(3),
    );
    let n = 6;
    let x: Vec<f32> = (0..n * 40)
        .map(|i| {
            if i % 5 == 0 {
                (i % 251) as f32 / 255.0
            } else {
                0.0
            }
        })
        .collect();
    let t: [crate::data::Label; 6] = [0, 1, 2, 0, 1, 2];
    let run = |policy: FirstLayer| {
        let mut ws = Workspace::new(&m, n, true);
        let mut input = InputBuf::new(policy);
        let x = input.dense_train(&x, n, 40);
        let used = matches!(x, TrainInput::Sparse(_));
        let trace = m.forward_train(&mut ws, x);
        let out = trace.outputs().to_vec();
        let mut grads = vec![0.0; m.params.len()];
        trace.backward(&m, &t, n, Loss::Nll, &mut grads);
        (out, grads, used)
    };
    let tiers = each_tier(|| [FirstLayer::Dense, FirstLayer::Auto, FirstLayer::Sparse].map(run));
    let portable_dense = tiers[0].1[0].clone();
    for (tier, [dense, auto, sparse]) in tiers {
        assert_eq!(dense, portable_dense, "the dense path's bits at {tier}");
        assert!(!dense.2 && sparse.2, "Dense and Sparse as asked at {tier}");
        assert_eq!(auto.2, tier >= Tier::Avx2, "Auto's choice at {tier}");
        if tier == Tier::Portable {
            assert_eq!(auto, dense, "Auto is the dense product at {tier}");
        }
        let close = |a: &[f32], b: &[f32]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + y.abs()))
        };
        assert!(
            close(&sparse.0, &dense.0) && close(&sparse.1, &dense.1),
            "Sparse ~ Dense at {tier}"
        );
    }
}

/// Both pools on LeNet-5's maps (6 x 28 x 28 and 16 x 10 x 10; and an odd 5 x 9
/// one), forward and backward, with ties from the rounding of the noise to steps.
#[test]
fn pooling_gives_the_same_bits_at_every_tier() {
    use super::pool::{PoolKind, PoolShape};
    for dims in [(6, 28, 28), (16, 10, 10), (2, 5, 9)] {
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let (n, s) = (3, PoolShape::new(1, kind, dims).expect("a valid pool"));
            let x: Vec<f32> = noise(n * s.in_len(), 7)
                .iter()
                .map(|v| (v * 8.0).round())
                .collect();
            let dy = noise(n * s.out_len(), 8);
            let outs = each_tier(|| {
                let (mut y, mut which) = (vec![0.0; n * s.out_len()], vec![0; n * s.out_len()]);
                let mut dx = vec![1.0; n * s.in_len()];
                s.forward(&x, n, &mut y, &mut which);
                s.backward(&dy, &which, n, &mut dx);
                y.extend(dx);
                y
            });
            same_at_every_tier(&format!("{kind:?} pool on {dims:?}"), outs);
        }
    }
}
