//! One layer of a network, forward and backward side by side, by kind.
//!
//! Shapes (n = rows of the batch): every layer maps x [n, in] to y [n, out]; its
//! backward pass takes dy [n, out] and gives dx [n, in] (when asked) and its
//! parameters' gradients, written into a vector shaped like the parameters.
//!   Linear      out = fan_out; y = x W + b with W [in, out] at `w`, b [out] at `b`
//!   Activation  out = in; y = f(x) element-wise (a PReLU's slope at `slope`)
//!   Dropout     out = in; y = x * mask, mask 0 or 1/(1-p) (training only)
//!   Output      out = in; y = log_softmax / softmax / sigmoid / identity of rows
//!   Conv        x [n, c_in, h, w] -> y [n, c_out, oh, ow] (NCHW rows; see `conv`)
//!   Pool        x [n, c, h, w] -> y [n, c, h/2, w/2]
//!   Norm        out = in; batch norm over channels, or layer norm per sample
//! A row of a conv layer's output is its (C, H, W) flattening, so a linear layer
//! after it reads it as `torch.flatten(x, 1)` would give it.
//!
//! A new kind is one more arm here and in [`crate::nn::Arch::build`]; the network and
//! the training step walk the list and need no change.

use std::borrow::Cow;

use super::activation::Activation;
use super::conv::ConvShape;
use super::linear::LinearShape;
use super::norm::{BatchNorm, LayerNorm, Moments, RunningStats, Seat};
use super::output::OutputFn;
use super::pool::PoolShape;

/// One layer: its kind and where its parameters sit in the flat vector.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// y = x W + b.
    Linear {
        /// Input and output widths.
        shape: LinearShape,
        /// Where the weight [in, out] starts in the parameters.
        w: usize,
        /// Where the bias [out] starts (None: no bias, before batch norm).
        b: Option<usize>,
    },
    /// A 2-D convolution.
    Conv {
        /// Its shape on its input.
        shape: ConvShape,
        /// Where the weight [c_out, c_in, k, k] starts.
        w: usize,
        /// Where the bias [c_out] starts (None before batch norm).
        b: Option<usize>,
    },
    /// 2x2 pooling with stride 2.
    Pool(PoolShape),
    /// Batch or layer normalisation, weight [c] at `w` and bias [c] after it.
    Norm {
        /// Which, and its shape.
        kind: NormKind,
        /// Where the weight starts.
        w: usize,
        /// Batch norm: which of the network's running statistics it keeps.
        stats: Option<usize>,
    },
    /// An element-wise activation.
    Activation {
        /// The function (a PReLU's initial slope inside).
        f: Activation,
        /// Where a PReLU's learned slope sits in the parameters.
        slope: Option<usize>,
    },
    /// Inverted dropout with probability `p`.
    Dropout {
        /// Probability of zeroing a unit.
        p: f32,
    },
    /// The output function over the logits.
    Output(OutputFn),
}

/// A normalisation kernel and its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// BatchNorm1d (s = 1) or BatchNorm2d.
    Batch(BatchNorm),
    /// LayerNorm (s = 1) or GroupNorm(1, c).
    Layer(LayerNorm),
}

impl NormKind {
    /// Channels.
    pub fn channels(&self) -> usize {
        match self {
            NormKind::Batch(b) => b.c,
            NormKind::Layer(l) => l.c,
        }
    }
}

/// What a layer keeps from its forward pass for its backward pass.
#[derive(Debug, Clone, Default)]
pub struct LayerAux {
    /// A norm's moments (per channel or per sample).
    pub moments: Moments,
    /// A max pool's choice in each window, 0-3 in row-major order [n, out].
    pub argmax: Vec<u8>,
    /// A batch norm's running statistics, as the pass starts (the network's) and as
    /// a training pass leaves them.
    pub running: Option<RunningStats>,
    /// A conv layer's columns of a training pass's images, for its backward pass
    /// (empty after an evaluation pass).
    pub cols: Vec<f32>,
}

/// What one layer's forward or backward pass reads and writes besides its data.
pub struct Ctx<'a> {
    /// The network's parameters.
    pub params: &'a [f32],
    /// Rows of the batch.
    pub n: usize,
    /// The layer's dropout mask [n, width] (empty for other kinds).
    pub mask: &'a [f32],
    /// Training mode (batch norm normalises by the batch's statistics).
    pub train: bool,
    /// What the layer keeps between its passes.
    pub aux: &'a mut LayerAux,
    /// Scratch for a conv layer's columns and their gradient.
    pub col: (&'a mut [f32], &'a mut [f32]),
    /// Where batch norm meets the other workers of a split batch (None: the batch is
    /// all here).
    pub seat: Option<&'a mut Seat>,
}

impl Layer {
    /// Width of the output for an input of `width`.
    pub fn width(&self, width: usize) -> usize {
        match self {
            Layer::Linear { shape, .. } => shape.fan_out,
            Layer::Conv { shape, .. } => shape.out_len(),
            Layer::Pool(p) => p.out_len(),
            _ => width,
        }
    }

    /// Whether the layer only acts in training (dropout): in evaluation it passes its
    /// input on untouched, and the next layer reads that input directly.
    pub fn training_only(&self) -> bool {
        matches!(self, Layer::Dropout { .. })
    }

    /// The activation as it computes now: a PReLU is a leaky ReLU with its current
    /// learned slope.
    pub fn activation<'f>(
        f: &'f Activation,
        slope: Option<usize>,
        params: &[f32],
    ) -> Cow<'f, Activation> {
        match (f, slope) {
            (Activation::Prelu(_), Some(o)) => Cow::Owned(Activation::LeakyRelu(params[o])),
            (f, _) => Cow::Borrowed(f),
        }
    }

    /// y = layer(x) over `c.n` rows (x [n, in], y [n, out]).
    pub fn forward(&self, c: &mut Ctx, x: &[f32], y: &mut [f32]) {
        match self {
            &Layer::Linear { shape, w, b } => linear_forward(c, shape, (w, b), x, y),
            &Layer::Conv { shape, w, b } => conv_forward(c, shape, (w, b), x, y),
            Layer::Pool(p) => {
                c.aux.argmax.resize(c.n * p.out_len(), 0);
                p.forward(x, c.n, y, &mut c.aux.argmax)
            }
            &Layer::Norm { kind, w, .. } => norm_forward(c, kind, w, x, y),
            Layer::Activation { f, slope } => Self::activation(f, *slope, c.params).forward(x, y),
            Layer::Dropout { .. } => {
                for ((d, &v), &m) in y.iter_mut().zip(x).zip(c.mask) {
                    *d = v * m;
                }
            }
            Layer::Output(out) => {
                let width = x.len() / c.n.max(1);
                out.forward(x, y, width);
            }
        }
    }

    /// The backward pass: dx (the gradient at the input, [n, in]) from dy (at the
    /// output, [n, out]); the parameters' gradients into `grads`. `x` and `y` are what
    /// the forward pass read and wrote. An empty `dx` asks for no input gradient (a
    /// conv layer on the network's input).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        c: &mut Ctx,
        x: &[f32],
        y: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        grads: &mut [f32],
    ) {
        match self {
            &Layer::Linear { shape, w, b } => linear_backward(c, shape, (w, b), (x, dy, dx), grads),
            &Layer::Conv { shape, w, b } => conv_backward(c, shape, (w, b), (x, dy, dx), grads),
            Layer::Pool(p) => p.backward(dy, &c.aux.argmax, c.n, dx),
            &Layer::Norm { kind, w, .. } => norm_backward(c, kind, w, (x, dy, dx), grads),
            Layer::Activation { f, slope } => {
                if let Some(o) = *slope {
                    grads[o] = slope_gradient(x, dy);
                }
                Self::activation(f, *slope, c.params).backward(x, y, dy, dx);
            }
            Layer::Dropout { .. } => {
                for ((d, &g), &m) in dx.iter_mut().zip(dy).zip(c.mask) {
                    *d = g * m;
                }
            }
            Layer::Output(out) => {
                let width = y.len() / c.n.max(1);
                out.backward(y, dy, dx, width);
            }
        }
    }
}

/// A PReLU slope's gradient: d/da of a*min(x, 0), summed over the batch (PyTorch:
/// inputs above 0 contribute nothing).
fn slope_gradient(z: &[f32], da: &[f32]) -> f32 {
    let g: f64 = z
        .iter()
        .zip(da)
        .filter(|(&x, _)| x <= 0.0)
        .map(|(&x, &d)| (x * d) as f64)
        .sum();
    g as f32
}

// The glue between the kernels (conv, norm, linear) and a layer's buffers in `Ctx`:
// the parameter slices, the norm's moments and running statistics, the im2col
// scratch.

/// The bias slice at `b` of `len` values, or an empty one (no bias is added).
fn bias(params: &[f32], b: Option<usize>, len: usize) -> &[f32] {
    b.map_or(&[][..], |b| &params[b..b + len])
}

/// y = x W (+ b).
pub(super) fn linear_forward(
    c: &mut Ctx,
    shape: LinearShape,
    (w, b): (usize, Option<usize>),
    x: &[f32],
    y: &mut [f32],
) {
    let weight = &c.params[w..w + shape.fan_in * shape.fan_out];
    shape.forward(weight, bias(c.params, b, shape.fan_out), x, c.n, y);
}

/// dW, db (if the layer has a bias) and dx (unless `dx` is empty).
pub(super) fn linear_backward(
    c: &mut Ctx,
    shape: LinearShape,
    (w, b): (usize, Option<usize>),
    (x, dy, dx): (&[f32], &[f32], &mut [f32]),
    grads: &mut [f32],
) {
    let end = w + shape.fan_in * shape.fan_out;
    let (dw, rest) = grads[w..].split_at_mut(end - w);
    let db = match b {
        Some(b) => &mut rest[b - end..b - end + shape.fan_out],
        None => &mut [][..],
    };
    let dx = (!dx.is_empty()).then_some(dx);
    shape.backward(&c.params[w..end], x, dy, c.n, dw, db, dx);
}

/// y = conv(x) (+ b).
pub(super) fn conv_forward(
    c: &mut Ctx,
    shape: ConvShape,
    (w, b): (usize, Option<usize>),
    x: &[f32],
    y: &mut [f32],
) {
    let weight = &c.params[w..w + shape.weights()];
    let b = b.map(|b| &c.params[b..b + shape.c_out]);
    let keep = if c.train && shape.keeps_columns() {
        // Kept for the backward pass, which would otherwise build them again.
        c.aux.cols.resize(c.n * shape.image_col_len(), 0.0);
        Some(&mut c.aux.cols[..])
    } else {
        c.aux.cols.clear();
        None
    };
    let scratch = (&mut *c.col.0, &mut *c.col.1);
    shape.forward(weight, b, x, c.n, y, scratch, keep);
}

/// dweight, dbias (if any) and dx (unless `dx` is empty).
pub(super) fn conv_backward(
    c: &mut Ctx,
    shape: ConvShape,
    (w, b): (usize, Option<usize>),
    (x, dy, dx): (&[f32], &[f32], &mut [f32]),
    grads: &mut [f32],
) {
    let end = w + shape.weights();
    let (dw, rest) = grads[w..].split_at_mut(end - w);
    let db = b.map(|b| &mut rest[b - end..b - end + shape.c_out]);
    let dx = (!dx.is_empty()).then_some(dx);
    let weight = &c.params[w..end];
    let scratch = (&mut *c.col.0, &mut *c.col.1);
    let kept = (c.aux.cols.len() == c.n * shape.image_col_len()).then_some(&c.aux.cols[..]);
    shape.backward(weight, x, dy, c.n, dw, db, dx, scratch, kept);
}

/// Batch norm (train mode: the batch's statistics, the running ones updated; eval:
/// the running ones) or layer norm.
pub(super) fn norm_forward(c: &mut Ctx, kind: NormKind, w: usize, x: &[f32], y: &mut [f32]) {
    let ch = kind.channels();
    let affine = (&c.params[w..w + ch], &c.params[w + ch..w + 2 * ch]);
    let aux = &mut *c.aux;
    match kind {
        NormKind::Layer(l) => l.forward(x, c.n, affine, &mut aux.moments, y),
        NormKind::Batch(bn) => {
            let running = aux
                .running
                .get_or_insert_with(|| super::norm::RunningStats::new(ch));
            if !c.train {
                return bn.forward_eval(x, c.n, affine, running, y);
            }
            // One value per channel cannot train (the trainer skips such batches);
            // evaluation mode is the one defined output left.
            let moments = &mut aux.moments;
            let trained = match c.seat.as_deref_mut() {
                None => bn.forward_train(x, c.n, affine, running, moments, y),
                Some(seat) => bn.forward_train_shared(x, c.n, affine, running, moments, y, seat),
            };
            if trained.is_err() {
                bn.forward_eval(x, c.n, affine, running, y);
            }
        }
    }
}

/// A norm's dweight, dbias and dx (train mode, from the forward pass's moments).
pub(super) fn norm_backward(
    c: &mut Ctx,
    kind: NormKind,
    w: usize,
    (x, dy, dx): (&[f32], &[f32], &mut [f32]),
    grads: &mut [f32],
) {
    let ch = kind.channels();
    let (dw, db) = grads[w..w + 2 * ch].split_at_mut(ch);
    let weight = &c.params[w..w + ch];
    let m = &c.aux.moments;
    match kind {
        NormKind::Batch(bn) => match c.seat.as_deref_mut() {
            None => bn.backward(x, dy, c.n, weight, m, (dw, db), dx),
            Some(seat) => bn.backward_shared((x, dy, dx), c.n, weight, m, (dw, db), seat),
        },
        NormKind::Layer(l) => l.backward(x, dy, c.n, weight, m, (dw, db), dx),
    }
}
