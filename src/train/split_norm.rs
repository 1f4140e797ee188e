//! Batch norm on the split first layer's outputs, inside each part.
//!
//! A part owns its outputs (channels) for every row of the batch, so the statistics
//! of the batch norm right after the first layer need no other thread: the part
//! normalises its channels in phase A and runs their backward pass in phase C. The
//! kernel sums channel by channel in row order, so these numbers are one thread's
//! bit for bit. Batch norms higher up run on the row-split workers, which meet to add
//! their sums (`nn::norm::Exchange`).
//!
//! Shapes (n = batch rows, c = the first layer's outputs, the part's `lo..lo + len`):
//! z, y and dy [n, len]; the norm's weight, bias, running mean and running variance
//! are the model's [c], of which the part reads and writes `lo..lo + len`.

use crate::nn::layer::{Layer, NormKind};
use crate::nn::norm::{BatchNorm, Moments, RunningStats};
use crate::nn::Mlp;

/// Where the model keeps the batch norm right after its first linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FirstNorm {
    /// Where its weight [c] starts in the parameters (its bias [c] right after).
    w: usize,
    /// Channels (the first layer's outputs).
    c: usize,
    /// Which of the model's running statistics it keeps.
    stats: usize,
}

impl FirstNorm {
    /// The batch norm over features (BatchNorm1d) right after `model`'s first linear
    /// layer, if there is one.
    pub(super) fn of(model: &Mlp) -> Option<FirstNorm> {
        let layers = model.layers();
        if !matches!(layers.first(), Some(Layer::Linear { .. })) {
            return None;
        }
        match *layers.get(1)? {
            Layer::Norm {
                kind: NormKind::Batch(bn),
                w,
                stats: Some(stats),
            } if bn.s == 1 => Some(FirstNorm { w, c: bn.c, stats }),
            _ => None,
        }
    }
}

/// Batch norm of one part's channels `lo..lo + len`, for the whole batch.
#[derive(Debug)]
pub(super) struct PartNorm {
    at: FirstNorm,
    lo: usize,
    /// The kernel on the part's channels alone.
    bn: BatchNorm,
    /// The norm's output for the batch [n, len]; in phase C, that output's gradient.
    pub(super) y: Vec<f32>,
    moments: Moments,
    /// The part's channels of the model's running statistics, during a step.
    running: RunningStats,
    /// The gradients of the norm's weight and bias [len].
    dw: Vec<f32>,
    db: Vec<f32>,
}

impl PartNorm {
    /// Channels `lo..lo + len` of the norm `at`, for batches of up to `batch` rows.
    pub(super) fn new(at: FirstNorm, lo: usize, len: usize, batch: usize) -> PartNorm {
        PartNorm {
            at,
            lo,
            bn: BatchNorm { c: len, s: 1 },
            y: vec![0.0; batch * len],
            moments: Moments::default(),
            running: RunningStats::new(len),
            dw: vec![0.0; len],
            db: vec![0.0; len],
        }
    }

    /// The part's slices of the norm's weight and bias in `params`.
    fn affine<'p>(&self, params: &'p [f32]) -> (&'p [f32], &'p [f32]) {
        let (w, lo, len) = (self.at.w, self.lo, self.bn.c);
        (
            &params[w + lo..][..len],
            &params[w + self.at.c + lo..][..len],
        )
    }

    /// Phase A, last: normalise the part's pre-activations `z` of the batch's `n` rows
    /// into `y` by the batch's statistics, moving the running statistics (read from
    /// `model`; [`PartNorm::keep`] writes them back).
    pub(super) fn forward(&mut self, model: &Mlp, z: &[f32], n: usize) {
        let (lo, len) = (self.lo, self.bn.c);
        let affine = self.affine(&model.params);
        let stats = &model.stats[self.at.stats];
        let r = &mut self.running;
        r.mean.copy_from_slice(&stats.mean[lo..lo + len]);
        r.var.copy_from_slice(&stats.var[lo..lo + len]);
        r.batches_tracked = stats.batches_tracked;
        let (z, y) = (&z[..n * len], &mut self.y[..n * len]);
        let trained = (self.bn).forward_train(z, n, affine, r, &mut self.moments, y);
        // As in the layer list: one value per channel cannot train (the team never
        // gets such a batch, see `SplitFirst::fits`); evaluation mode is defined.
        if trained.is_err() {
            self.bn.forward_eval(z, n, affine, r, y);
        }
    }

    /// Phase C: from the gradient of the norm's output (in `y`), the gradient of the
    /// pre-activations `z` of `n` rows into `dz`, and of the norm's weight and bias.
    pub(super) fn backward(&mut self, model: &Mlp, z: &[f32], n: usize, dz: &mut [f32]) {
        let (weight, _) = self.affine(&model.params);
        let grads = (&mut self.dw[..], &mut self.db[..]);
        (self.bn).backward(z, &self.y, n, weight, &self.moments, grads, dz);
    }

    /// After the step: the norm's gradients into `grads` (shaped like the
    /// parameters), its running statistics into `model`.
    pub(super) fn keep(&self, model: &mut Mlp, grads: &mut [f32]) {
        let (w, c, lo, len) = (self.at.w, self.at.c, self.lo, self.bn.c);
        grads[w + lo..][..len].copy_from_slice(&self.dw);
        grads[w + c + lo..][..len].copy_from_slice(&self.db);
        let stats = &mut model.stats[self.at.stats];
        stats.mean[lo..lo + len].copy_from_slice(&self.running.mean);
        stats.var[lo..lo + len].copy_from_slice(&self.running.var);
        stats.batches_tracked = self.running.batches_tracked;
    }
}
