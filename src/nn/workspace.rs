//! Buffers for one batch of up to `cap` rows, reused across steps (no allocation in
//! the loop): each layer's output and, for training, the gradient at it and the
//! dropout masks.
//!
//! Shapes (n ≤ cap rows, w_i = layer i's output width):
//!   out[i]   [n, w_i]   layer i's output (the last is the network's output)
//!   grad[i]  [n, w_i]   dLoss/d out[i] (training workspaces only)
//!   mask[i]  [n, w_i]   dropout multipliers, 0 or 1/(1-p) (dropout layers only)
//!   aux[i]              what layer i keeps for its backward pass (norm moments, max
//!                       pool positions, batch norm running statistics)
//!   col                 a group's conv columns [c_in k k, g oh ow], and its outputs
//!                       by channel (+ in training the columns' gradient)

use rand::Rng as _;

use super::layer::{Layer, LayerAux};
use super::norm::Seat;
use super::{Mlp, Rng};

/// Buffers for one batch; a training workspace also holds gradients and masks.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Largest number of rows this workspace holds.
    pub cap: usize,
    /// Each layer's output.
    pub(super) out: Vec<Vec<f32>>,
    /// The gradient at each layer's output (empty in an evaluation workspace).
    pub(super) grad: Vec<Vec<f32>>,
    /// Each dropout layer's mask (empty for the other layers, and for evaluation).
    pub(super) mask: Vec<Vec<f32>>,
    /// What each layer keeps between its passes.
    pub(super) aux: Vec<LayerAux>,
    /// Conv scratch: a group's columns, and its outputs (+ the columns' gradient).
    pub(super) col: (Vec<f32>, Vec<f32>),
    /// Random draws for one layer's dropout mask.
    draws: Vec<u32>,
    /// Probability of each dropout layer (None for other layers).
    dropout: Vec<Option<f32>>,
    /// Where batch norm meets the other workers when a training batch is split
    /// across threads (None: every batch is all in this workspace).
    pub seat: Option<Seat>,
}

impl Workspace {
    /// Buffers for `cap` rows of `model`'s layers; `train`: also gradients and masks.
    pub fn new(model: &Mlp, cap: usize, train: bool) -> Self {
        let layers = model.layers();
        let mut widths = Vec::with_capacity(layers.len());
        let mut width = model.arch.sizes[0];
        for l in layers {
            width = l.width(width);
            widths.push(width);
        }
        let dropout: Vec<Option<f32>> = layers
            .iter()
            .map(|l| match l {
                Layer::Dropout { p } => Some(*p),
                _ => None,
            })
            .collect();
        let buf = |w: usize, keep: bool| {
            if keep {
                vec![0.0f32; cap * w]
            } else {
                Vec::new()
            }
        };
        let widest = widths.iter().copied().max().unwrap_or(0);
        let has_dropout = train && dropout.iter().any(Option::is_some);
        let (col, tmp) = (layers.iter())
            .map(|l| match l {
                Layer::Conv { shape, .. } => (shape.col_len(), shape.tmp_len(train)),
                _ => (0, 0),
            })
            .fold((0, 0), |(c, t), (c2, t2)| (c.max(c2), t.max(t2)));
        Workspace {
            cap,
            out: (layers.iter().zip(&widths))
                .map(|(l, &w)| buf(w, train || !l.training_only()))
                .collect(),
            grad: widths.iter().map(|&w| buf(w, train)).collect(),
            mask: (dropout.iter().zip(&widths))
                .map(|(p, &w)| buf(w, train && p.is_some()))
                .collect(),
            aux: vec![LayerAux::default(); layers.len()],
            col: (vec![0.0; col], vec![0.0; tmp]),
            draws: vec![0; if has_dropout { cap * widest } else { 0 }],
            dropout,
            seat: None,
        }
    }

    /// Whether this workspace holds what a training pass needs (gradients, masks).
    pub fn trains(&self) -> bool {
        self.grad.iter().any(|g| !g.is_empty())
    }

    /// Draw fresh inverted-dropout masks for `n` rows, layer by layer: each unit kept
    /// with probability 1-p.
    pub fn sample_dropout(&mut self, rng: &mut Rng, n: usize) {
        for (mask, p) in self.mask.iter_mut().zip(&self.dropout) {
            let Some(p) = *p else { continue };
            let keep = 1.0 / (1.0 - p);
            let w = mask.len() / self.cap.max(1);
            let mask = &mut mask[..n * w];
            // The draws first (a serial chain through the generator's state), then the
            // comparisons without a branch: the same numbers as `rng.random::<f32>()`
            // each time, whose uniform f32 is the top 24 bits times 2^-24.
            let draws = &mut self.draws[..mask.len()];
            draws.iter_mut().for_each(|d| *d = rng.next_u32());
            let scale = 1.0 / (1u32 << 24) as f32;
            for (m, &d) in mask.iter_mut().zip(draws.iter()) {
                let u = scale * (d >> 8) as f32;
                *m = if u < p { 0.0 } else { keep };
            }
        }
    }

    /// The network's outputs for the last forward pass of `n` rows.
    pub fn outputs(&self, n: usize) -> &[f32] {
        let y = self.out.last().map_or(&[][..], |y| &y[..]);
        &y[..n * (y.len() / self.cap.max(1))]
    }

    /// Layer `i`'s output for the last forward pass of `n` rows.
    pub fn output_of(&self, i: usize, n: usize) -> &[f32] {
        let w = self.out[i].len() / self.cap.max(1);
        &self.out[i][..n * w]
    }

    /// Layer `i`'s output, to be written by a caller that computes it elsewhere (the
    /// first layer split across threads).
    pub fn output_of_mut(&mut self, i: usize, n: usize) -> &mut [f32] {
        let w = self.out[i].len() / self.cap.max(1);
        &mut self.out[i][..n * w]
    }

    /// The gradient at layer `i`'s output after a backward pass over `n` rows.
    pub fn grad_of(&self, i: usize, n: usize) -> &[f32] {
        let w = self.grad[i].len() / self.cap.max(1);
        &self.grad[i][..n * w]
    }
}
