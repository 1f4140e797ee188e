//! Why activations differ: per-layer gradient norms, pre-activation and activation
//! statistics, saturated and dead units, recorded during training.
//!
//! Definitions (documented in the README):
//! - gradient norm: L2 norm of a layer's weight gradient, sampled every `grad_every` steps;
//! - saturated (sigmoid, tanh): the unit's derivative is below 19% of its peak, i.e. a
//!   sigmoid output outside [0.05, 0.95] or a tanh output outside [-0.9, 0.9];
//! - dead (ReLU): the unit outputs 0 for every image of the held sample.
//!
//! A conv layer counts as one layer whose units are its channels: its gradient norm is
//! its kernel's, a channel is dead when it outputs 0 at every pixel of every sample
//! image, and its saturated share counts (channel, pixel, image) triples.

use serde::{Deserialize, Serialize};

use crate::data::batch::images_range;
use crate::data::Dataset;
use crate::nn::layer::Layer;
use crate::nn::{Activation, Mlp, Workspace};

/// Steps between gradient-norm samples.
pub const GRAD_EVERY: usize = 10;
/// Images in the held sample used for activation statistics.
pub const SAMPLE: usize = 1000;
/// A unit is saturated when its derivative is below this share of the peak derivative.
pub const SATURATION: f32 = 0.19;

/// One epoch's layer statistics (one entry per conv or linear layer; hidden-only fields are
/// `None` for the output layer or where the activation has no such notion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochDiag {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean over the epoch's samples of each layer's weight-gradient norm; None for an
    /// epoch too short to hold a sample (not measured is not 0).
    pub grad_norm: Vec<Option<f64>>,
    /// Mean of each layer's pre-activations on the held sample.
    pub pre_mean: Vec<f64>,
    /// Standard deviation of the pre-activations.
    pub pre_std: Vec<f64>,
    /// Mean of each hidden layer's activations (None for the output layer).
    pub act_mean: Vec<Option<f64>>,
    /// Standard deviation of the activations.
    pub act_std: Vec<Option<f64>>,
    /// Share of (unit, image) pairs in the saturated region (sigmoid, tanh).
    pub saturated: Vec<Option<f64>>,
    /// Share of units that are dead on the held sample (ReLU).
    pub dead: Vec<Option<f64>>,
}

/// Everything diagnostic about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Diagnostics {
    /// Layer names: conv1..convK (if any), then fc1..fcL.
    pub layers: Vec<String>,
    /// Steps between gradient samples.
    pub grad_every: usize,
    /// Global step (1-based) of each gradient sample.
    pub grad_steps: Vec<usize>,
    /// Gradient norm per layer at each sampled step.
    pub grad_norms: Vec<Vec<f64>>,
    /// Per-epoch layer statistics.
    pub epochs: Vec<EpochDiag>,
    /// Validation accuracy per class at the end.
    pub per_class_acc: Vec<f64>,
    /// Most frequent (true, predicted, count) validation mistakes at the end.
    pub most_confused: Vec<(usize, usize, u32)>,
    /// Up to 24 misclassified validation images from the most confused pairs:
    /// (test index, true class, predicted class).
    #[serde(default)]
    pub mistakes: Vec<(usize, usize, usize)>,
}

/// Misclassified examples of the most confused pairs, 8 per pair, 24 at most.
pub fn pick_mistakes(
    all: &[(usize, usize, usize)],
    pairs: &[(usize, usize, u32)],
) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for &(t, p, _) in pairs.iter().take(3) {
        out.extend(all.iter().filter(|m| m.1 == t && m.2 == p).take(8).copied());
    }
    out
}

/// Whether an activation has a saturated region we report: the bounded ones, whose
/// gradient fades (sigmoid, tanh, softsign, logsigmoid) or stops (the hard ones) at
/// the ends.
pub fn saturates(a: &Activation) -> bool {
    matches!(
        a,
        Activation::Sigmoid
            | Activation::Tanh
            | Activation::Softsign
            | Activation::Logsigmoid
            | Activation::Hardsigmoid
            | Activation::Hardtanh { .. }
            | Activation::Relu6
    )
}

/// Derivative below 19% of its peak at pre-activation x with output y.
fn is_saturated(a: &Activation, x: f32, y: f32) -> bool {
    match a {
        Activation::Sigmoid => y * (1.0 - y) < SATURATION * 0.25,
        Activation::Tanh => 1.0 - y * y < SATURATION,
        _ => a.derivative(x, y) < SATURATION * a.peak_derivative(),
    }
}

/// Whether unit `u` (a conv layer's channel: `pixels` values per row) of a layer
/// `w` units wide has no gradient for any row: dead.
fn is_dead(a: &Activation, (z, h): (&[f32], &[f32]), w: usize, pixels: usize, u: usize) -> bool {
    let row = w * pixels;
    let (lo, hi) = (u * pixels, (u + 1) * pixels);
    let mut rows = z.chunks_exact(row).zip(h.chunks_exact(row));
    match a {
        Activation::Relu => rows.all(|(_, y)| y[lo..hi].iter().all(|&y| y <= 0.0)),
        _ => rows.all(|(x, y)| {
            let units = x[lo..hi].iter().zip(&y[lo..hi]);
            units.into_iter().all(|(&x, &y)| a.derivative(x, y) == 0.0)
        }),
    }
}

/// A layer the diagnostics report on: a conv or linear layer and the activation (or
/// output function) after it.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagLayer {
    /// "conv1", "fc1", ...
    pub name: String,
    /// Its weight's range in the parameters.
    pub weight: (usize, usize),
    /// Its place in the layer list.
    pub map: usize,
    /// The place of the activation (or output function) after it.
    pub act: usize,
    /// Units: a conv layer's channels, a linear layer's width.
    pub units: usize,
    /// Values per unit and image: a conv layer's output pixels, else 1.
    pub pixels: usize,
}

/// The conv layers, then the linear ones, in order.
pub fn diag_layers(model: &Mlp) -> Vec<DiagLayer> {
    let layers = model.layers();
    let (mut convs, mut fcs) = (0, 0);
    let mut out = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let (name, weight, units, pixels) = match l {
            Layer::Conv { shape, w, .. } => {
                convs += 1;
                let (c, h, wd) = shape.out_dims();
                (format!("conv{convs}"), (*w, w + shape.weights()), c, h * wd)
            }
            Layer::Linear { shape, w, .. } => {
                fcs += 1;
                let end = w + shape.fan_in * shape.fan_out;
                (format!("fc{fcs}"), (*w, end), shape.fan_out, 1)
            }
            _ => continue,
        };
        let act = (layers.iter().enumerate().skip(i + 1))
            .find(|(_, x)| matches!(x, Layer::Activation { .. } | Layer::Output(_)))
            .map_or(i + 1, |(j, _)| j);
        out.push(DiagLayer {
            name,
            weight,
            map: i,
            act,
            units,
            pixels,
        });
    }
    out
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// L2 norm of each layer's weight gradient (conv layers first) in a flat gradient
/// vector.
pub fn grad_norms(model: &Mlp, grads: &[f32]) -> Vec<f64> {
    (diag_layers(model).iter())
        .map(|l| sum_of_squares(&grads[l.weight.0..l.weight.1]).sqrt())
        .collect()
}

/// The sum of squares in f64, over eight running sums (so it vectorises; the
/// order is fixed, so the result is deterministic).
fn sum_of_squares(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for c in chunks.by_ref() {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += (v as f64) * (v as f64);
        }
    }
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum();
    acc.iter().sum::<f64>() + tail
}

/// Layer statistics of `model` on `n` rows already in `ws` after a forward pass.
pub fn layer_stats(
    model: &Mlp,
    ws: &Workspace,
    n: usize,
    epoch: usize,
    grad_norm: Vec<Option<f64>>,
) -> EpochDiag {
    let layers = diag_layers(model);
    let mut d = EpochDiag {
        epoch,
        grad_norm,
        pre_mean: Vec::new(),
        pre_std: Vec::new(),
        act_mean: Vec::new(),
        act_std: Vec::new(),
        saturated: Vec::new(),
        dead: Vec::new(),
    };
    for (l, dl) in layers.iter().enumerate() {
        let (m, s) = mean_std(ws.output_of(dl.map, n));
        d.pre_mean.push(m);
        d.pre_std.push(s);
        if l + 1 == layers.len() {
            d.act_mean.push(None);
            d.act_std.push(None);
            d.saturated.push(None);
            d.dead.push(None);
            continue;
        }
        let act = &model.arch.activations[l];
        // The activation's own input: the map's output, or its norm's.
        let (z, h) = (ws.output_of(dl.act - 1, n), ws.output_of(dl.act, n));
        let (m, s) = mean_std(h);
        d.act_mean.push(Some(m));
        d.act_std.push(Some(s));
        d.saturated.push(saturates(act).then(|| {
            let sat = z.iter().zip(h).filter(|(&x, &y)| is_saturated(act, x, y));
            sat.count() as f64 / h.len().max(1) as f64
        }));
        d.dead.push(act.can_die().then(|| {
            let (w, px) = (dl.units, dl.pixels);
            let dead = (0..w).filter(|&u| is_dead(act, (z, h), w, px, u)).count();
            dead as f64 / w as f64
        }));
    }
    d
}

/// Collects diagnostics during a run.
pub struct Recorder {
    /// What has been recorded so far.
    pub diag: Diagnostics,
    /// The sample as stored (u8), a quarter of its f32 size; scaled when used.
    sample: Dataset,
    n: usize,
    epoch_first_sample: usize,
}

impl Recorder {
    /// A recorder for `model`, holding the first images of `data` as its sample.
    pub fn new(model: &Mlp, data: &Dataset) -> Self {
        let n = SAMPLE.min(data.len());
        Recorder {
            diag: Diagnostics {
                layers: diag_layers(model).into_iter().map(|l| l.name).collect(),
                grad_every: GRAD_EVERY,
                ..Default::default()
            },
            sample: data.first(Some(n)),
            n,
            epoch_first_sample: 0,
        }
    }

    /// Continue from diagnostics restored from a checkpoint.
    pub fn resume(mut self, diag: Diagnostics) -> Self {
        self.epoch_first_sample = diag.grad_norms.len();
        self.diag = diag;
        self
    }

    /// Whether [`Recorder::after_step`] reads the gradients of this global step.
    pub fn samples(&self, global_step: usize) -> bool {
        global_step.is_multiple_of(self.diag.grad_every)
    }

    /// Called after each step's gradients; samples every `grad_every` global steps.
    pub fn after_step(&mut self, model: &Mlp, grads: &[f32], global_step: usize) {
        if global_step.is_multiple_of(self.diag.grad_every) {
            self.diag.grad_steps.push(global_step);
            self.diag.grad_norms.push(grad_norms(model, grads));
        }
    }

    /// Called at the end of each epoch.
    pub fn end_epoch(&mut self, model: &Mlp, epoch: usize) {
        let samples =
            &self.diag.grad_norms[self.epoch_first_sample.min(self.diag.grad_norms.len())..];
        let layers = self.diag.layers.len();
        let grad_norm: Vec<Option<f64>> = (0..layers)
            .map(|l| {
                (!samples.is_empty())
                    .then(|| samples.iter().map(|s| s[l]).sum::<f64>() / samples.len() as f64)
            })
            .collect();
        self.epoch_first_sample = self.diag.grad_norms.len();
        // The scaled sample and its activations live only for this pass: a run holds
        // the sample as u8, and several runs at once stay small.
        let mut ws = Workspace::new(model, self.n.max(1), false);
        if self.n > 0 {
            forward_all(model, &mut ws, &self.sample);
        }
        let stats = layer_stats(model, &ws, self.n, epoch, grad_norm);
        self.diag.epochs.push(stats);
    }
}

/// Each hidden layer's activations on every image of `data` (rows x width, in order).
pub fn activations_on(model: &Mlp, data: &Dataset) -> Vec<Vec<f32>> {
    let n = data.len();
    if n == 0 {
        return Vec::new();
    }
    let mut ws = Workspace::new(model, n, false);
    forward_all(model, &mut ws, data);
    // Conv layers first, as the activations are listed (a conv layer's rows are its
    // maps, C x H x W).
    let layers = diag_layers(model);
    (layers.iter().take(model.arch.activations.len()))
        .map(|l| ws.output_of(l.act, n).to_vec())
        .collect()
}

/// An evaluation pass over all of `data` (dense rows, kept sparse when they are).
fn forward_all(model: &Mlp, ws: &mut Workspace, data: &Dataset) {
    let n = data.len();
    let width = data.width();
    let mut x = vec![0.0; n * width];
    images_range(data, 0, &mut x);
    let mut input = model.input_buf();
    model.forward_eval(ws, input.dense(&x, n, width));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_of_squares_matches_the_plain_sum() {
        let x: Vec<f32> = (0..1003)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 1e-3)
            .collect();
        let plain: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let got = sum_of_squares(&x);
        assert!((got - plain).abs() <= 1e-12 * plain, "{got} vs {plain}");
        assert_eq!(sum_of_squares(&[3.0, 4.0]), 25.0);
    }
    use crate::nn::{Arch, Init, OutputFn, Rng};
    use rand::SeedableRng;

    fn model(act: Activation) -> Mlp {
        let arch = Arch {
            sizes: vec![784, 16, 8, 10],
            activations: vec![act.clone(), act],
            output: OutputFn::LogSoftmax,
            dropout: 0.0,
            ..Default::default()
        };
        Mlp::new(arch, Init::Torch, &mut Rng::seed_from_u64(0))
    }

    fn data(n: usize) -> Dataset {
        Dataset::new(
            (0..n * crate::data::PIXELS)
                .map(|i| (i * 37 % 256) as u8)
                .collect(),
            (0..n).map(|i| (i % 10) as crate::data::Label).collect(),
        )
    }

    /// A conv net: one entry per conv and linear layer, named as in the state dict; a
    /// channel whose bias is far below its inputs' reach is dead, the others are not;
    /// the gradient norms cover the conv kernels.
    #[test]
    fn conv_layers_report_dead_channels_and_kernel_gradients() {
        let cfg = crate::config::TrainConfig {
            conv: crate::nn::spec::ConvSpec::parse_list("4:5:1:2,3:5").unwrap(),
            hidden: vec![12],
            ..Default::default()
        };
        let mut m = Mlp::new(cfg.arch(), Init::Torch, &mut Rng::seed_from_u64(0));
        let Layer::Conv { b: Some(b), .. } = m.layers()[0] else {
            panic!("conv1 first, with a bias")
        };
        m.params[b + 1] = -1000.0;
        let mut r = Recorder::new(&m, &data(20));
        assert_eq!(r.diag.layers, ["conv1", "conv2", "fc1", "fc2"]);
        r.end_epoch(&m, 1);
        let e = &r.diag.epochs[0];
        assert_eq!(e.dead.len(), 4);
        assert_eq!(e.dead[0], Some(0.25), "channel 2 of 4 is dead");
        assert_eq!(e.dead[3], None);
        let grads: Vec<f32> = (0..m.params.len()).map(|i| (i % 7) as f32).collect();
        let norms = grad_norms(&m, &grads);
        let conv1 = &diag_layers(&m)[0];
        assert_eq!(norms.len(), 4);
        assert_eq!((conv1.units, conv1.pixels), (4, 28 * 28));
        let want = sum_of_squares(&grads[conv1.weight.0..conv1.weight.1]).sqrt();
        assert_eq!(norms[0], want);
        assert_eq!(conv1.weight.1 - conv1.weight.0, 4 * 25);
        // The activations TensorBoard draws: each hidden layer's, conv maps included.
        let acts = activations_on(&m, &data(3));
        let widths: Vec<usize> = acts.iter().map(|a| a.len() / 3).collect();
        assert_eq!(widths, [4 * 28 * 28, 3 * 10 * 10, 12]);
    }

    #[test]
    fn all_negative_preactivations_mean_all_relus_dead() {
        let mut m = model(Activation::Relu);
        let off = m.arch.offsets();
        for b in &mut m.params[off[0].1..off[0].1 + 16] {
            *b = -1000.0;
        }
        let mut r = Recorder::new(&m, &data(50));
        r.end_epoch(&m, 1);
        let e = &r.diag.epochs[0];
        assert_eq!(e.dead[0], Some(1.0));
        // Layer 2 sees only zeros, so its units output relu(bias): some alive, some dead.
        let (_, b2) = m.arch.offsets()[1];
        let width = m.arch.sizes[2];
        let off_biases = m.params[b2..b2 + width]
            .iter()
            .filter(|&&b| b <= 0.0)
            .count();
        assert!(off_biases > 0 && off_biases < width, "the seed gives a mix");
        assert_eq!(e.dead[1], Some(off_biases as f64 / width as f64));
        assert_eq!(e.saturated[0], None);
        assert_eq!(e.act_mean[0], Some(0.0));
    }

    #[test]
    fn hard_activations_report_saturated_and_dead_units() {
        // Layer-1 biases of +100 put every hardtanh unit beyond its upper bound: all
        // saturated and all dead (gradient exactly 0); biases of 0 keep hardshrink's
        // units in its dead zone only where |x| <= 0.5.
        let mut m = model(Activation::Hardtanh {
            min: -1.0,
            max: 1.0,
        });
        let off = m.arch.offsets();
        for b in &mut m.params[off[0].1..off[0].1 + 16] {
            *b = 100.0;
        }
        let mut r = Recorder::new(&m, &data(40));
        r.end_epoch(&m, 1);
        assert_eq!(r.diag.epochs[0].saturated[0], Some(1.0));
        assert_eq!(r.diag.epochs[0].dead[0], Some(1.0));
        let mut m = model(Activation::Hardshrink(0.5));
        for w in &mut m.params[..off[0].1] {
            *w = 0.0;
        }
        let mut r = Recorder::new(&m, &data(40));
        r.end_epoch(&m, 1);
        let b = &m.params[off[0].1..off[0].1 + 16];
        let dead = b.iter().filter(|v| v.abs() <= 0.5).count() as f64 / 16.0;
        assert_eq!(r.diag.epochs[0].dead[0], Some(dead));
        assert_eq!(
            r.diag.epochs[0].saturated[0], None,
            "hardshrink has no saturation"
        );
    }

    #[test]
    fn sigmoid_driven_to_large_inputs_is_fully_saturated() {
        let mut m = model(Activation::Sigmoid);
        let off = m.arch.offsets();
        for (i, w) in m.params[..off[0].1].iter_mut().enumerate() {
            *w = if i % 2 == 0 { 50.0 } else { -50.0 };
        }
        for b in &mut m.params[off[0].1..off[0].1 + 16] {
            *b = 100.0;
        }
        let mut r = Recorder::new(&m, &data(40));
        r.end_epoch(&m, 1);
        assert_eq!(r.diag.epochs[0].saturated[0], Some(1.0));
        assert_eq!(r.diag.epochs[0].dead[0], None);
        // A fresh sigmoid layer with small weights is not saturated at all.
        let fresh = model(Activation::Sigmoid);
        let mut r = Recorder::new(&fresh, &data(40));
        r.end_epoch(&fresh, 1);
        assert!(r.diag.epochs[0].saturated[0].unwrap() < 0.2);
    }

    #[test]
    fn gradient_norms_are_sampled_and_averaged() {
        let m = model(Activation::Relu);
        let mut r = Recorder::new(&m, &data(5));
        let mut g = vec![0.0f32; m.params.len()];
        let (w0, _) = m.arch.offsets()[0];
        g[w0] = 3.0;
        g[w0 + 1] = 4.0;
        for step in 1..=25 {
            r.after_step(&m, &g, step);
        }
        assert_eq!(r.diag.grad_steps, vec![10, 20]);
        r.end_epoch(&m, 1);
        assert_eq!(r.diag.epochs[0].grad_norm[0], Some(5.0));
        assert_eq!(r.diag.epochs[0].grad_norm[1], Some(0.0));
        // An epoch with no sampled step measured nothing: None, not 0.
        for step in 26..=29 {
            r.after_step(&m, &g, step);
        }
        r.end_epoch(&m, 2);
        assert_eq!(r.diag.epochs[1].grad_norm, vec![None; m.arch.layers()]);
    }
}
