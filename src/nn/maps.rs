//! The glue between [`super::layer::Layer`]'s arms and the kernels of the maps with
//! parameters: linear (bias optional), conv and normalisation layers, forward and
//! backward side by side.
//!
//! Shapes are the kernels' (see `linear`, `conv`, `norm`): x and y [n, ...] rows of
//! the layer's input and output widths; parameters are read at their offsets in
//! `c.params` and their gradients written at the same offsets in `grads`.

use super::conv::ConvShape;
use super::layer::{Ctx, NormKind};
use super::linear::LinearShape;

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
    shape.forward(weight, b, x, c.n, y, c.col.0);
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
    shape.backward(weight, x, dy, c.n, dw, db, dx, scratch);
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
            if bn
                .forward_train(x, c.n, affine, running, &mut aux.moments, y)
                .is_err()
            {
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
        NormKind::Batch(bn) => bn.backward(x, dy, c.n, weight, m, (dw, db), dx),
        NormKind::Layer(l) => l.backward(x, dy, c.n, weight, m, (dw, db), dx),
    }
}
