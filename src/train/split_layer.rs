//! One run on several threads, the first layer split by its outputs.
//!
//! Split by rows alone, every thread reads all of the first layer's weights (92% of
//! the parameters) each step and one thread writes each of them, so every step the
//! cores trade those cache lines back and forth. Here part k owns outputs
//! `lo..lo + len` of the first layer: a private copy of their weights and Adam moments,
//! their share of the forward pass over the whole batch, of the weight gradient and of
//! the update. The layers above stay split by rows (their gradients are small and are
//! summed in worker order, as before).
//!
//! Per step, each phase on every thread at once (part k and worker k on thread k,
//! `team` runs the threads):
//! - A: each part lists the batch's non-zero pixels and computes its outputs, all rows
//!   (and, when a batch norm follows the first layer, normalises them: `split_norm`);
//! - B: each worker gathers its rows of the parts' outputs, runs the rest of the
//!   network forward and back to the gradient at those outputs;
//! - C: each part gathers its outputs' gradient for all rows (back through its batch
//!   norm to dLoss/dz), sums its weight gradient over them in row order (the same
//!   sums, in the same order, as one thread) and updates its weights; the other
//!   parameters' gradients are summed and updated.
//!
//! Shapes (in = 784, n = batch rows): part weights [in, len] then bias [len] (none
//! before batch norm), with their gradient and moments the same; part z and dz
//! [n, len].

use super::split_norm::{FirstNorm, PartNorm};
use super::worker::{worker_rows, Run, Worker};
use crate::data::{batch, Dataset};
use crate::nn::layer::Layer;
use crate::nn::sparse::{Listed, RowLists, SparseColumns};
use crate::nn::{InputBuf, Mlp, Optimizer, StepScalars};

/// The first layer's outputs `lo..lo + len`, owned by one thread during an epoch.
#[derive(Debug, Default)]
pub(super) struct Part {
    lo: usize,
    len: usize,
    /// Length of the bias: `len`, or 0 before batch norm.
    bias: usize,
    /// Weights [in, len] then bias; while `live`, newer than the model's.
    p: Vec<f32>,
    /// Their gradient, and the optimiser's moments (`v` empty for SGD).
    g: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    /// Pre-activations and their gradient for the whole batch, [n, len].
    z: Vec<f32>,
    dz: Vec<f32>,
    /// The batch norm on these outputs, when one follows the first layer.
    norm: Option<PartNorm>,
}

/// What the parts of a first linear layer compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    fan_in: usize,
    out: usize,
    /// Whether the layer has a bias (not before batch norm).
    bias: bool,
    /// The batch norm right after it, which the parts run too.
    norm: Option<FirstNorm>,
}

impl Plan {
    /// The plan for `model`'s first layer (a linear one: see `Crew::new`).
    pub(super) fn of(model: &Mlp) -> Plan {
        let sizes = &model.arch.sizes;
        Plan {
            fan_in: sizes[0],
            out: sizes[1],
            bias: matches!(model.layers()[0], Layer::Linear { b: Some(_), .. }),
            norm: FirstNorm::of(model),
        }
    }

    /// The first layer of the network the workers run: the one above the parts'.
    pub(super) fn above(&self) -> usize {
        1 + usize::from(self.norm.is_some())
    }
}

/// The parts of the first layer `plan`, one per thread, for batches of `batch` rows:
/// none when there are fewer outputs than threads (the epoch then runs on the pool,
/// every part needing at least one output).
pub(super) fn parts(threads: usize, plan: Plan, batch: usize) -> Vec<Part> {
    let (fan_in, out) = (plan.fan_in, plan.out);
    if out < threads {
        return Vec::new();
    }
    // Outputs spread as evenly as they go: the first `out % threads` parts get one more.
    let (per, extra) = (out / threads, out % threads);
    (0..threads)
        .map(|k| {
            let lo = k * per + k.min(extra);
            let len = per + usize::from(k < extra);
            let bias = if plan.bias { len } else { 0 };
            let size = fan_in * len + bias;
            Part {
                lo,
                len,
                bias,
                p: vec![0.0; size],
                g: vec![0.0; size],
                m: vec![0.0; size],
                v: vec![0.0; size],
                z: vec![0.0; batch * len],
                dz: vec![0.0; batch * len],
                norm: plan.norm.map(|at| PartNorm::new(at, lo, len, batch)),
            }
        })
        .collect()
}

impl Part {
    /// Phase A: this part's outputs for the rows of `block`, which start at row
    /// `first` of the batch.
    pub(super) fn forward_block(&mut self, block: &SparseColumns, first: usize) {
        // No bias (before batch norm): an empty one, which the kernel skips.
        let (w, b) = self.p.split_at(self.p.len() - self.bias);
        let z = &mut self.z[first * self.len..(first + block.rows()) * self.len];
        block.forward(w, b, self.len, z);
    }

    /// Phase A, last: the batch norm after the first layer on this part's outputs
    /// for the batch's `n` rows, if there is one.
    pub(super) fn normalize(&mut self, model: &Mlp, n: usize) {
        if let Some(norm) = &mut self.norm {
            norm.forward(model, &self.z, n);
        }
    }

    /// The layer whose outputs the part hands the workers: the first, or the batch
    /// norm after it.
    fn top(&self) -> usize {
        usize::from(self.norm.is_some())
    }

    /// Phase C, first: copy the gradient at this part's outputs (of [`Part::top`])
    /// for worker `k`'s rows of a batch of `n` split `rows` per worker: dLoss/dz, or
    /// the batch norm's output gradient (into its `y`, no longer needed).
    pub(super) fn gather_dz(&mut self, k: usize, w: &Worker, rows: usize, n: usize, out: usize) {
        let (len, lo) = (self.len, self.lo);
        let own = worker_rows(k, rows, n);
        let dy = w.ws.grad_of(self.top(), own.len());
        let to = match &mut self.norm {
            Some(norm) => &mut norm.y,
            None => &mut self.dz,
        };
        for (i, r) in own.enumerate() {
            to[r * len..][..len].copy_from_slice(&dy[i * out + lo..][..len]);
        }
    }

    /// Phase C, next: back through the batch norm after the first layer, if there is
    /// one, to the pre-activations' gradient for the batch's `n` rows.
    pub(super) fn denormalize(&mut self, model: &Mlp, n: usize) {
        if let Some(norm) = &mut self.norm {
            norm.backward(model, &self.z, n, &mut self.dz[..n * self.len]);
        }
    }

    /// Phase C, then: add the rows of `block` (from row `first` of the batch) to this
    /// part's weight gradient; the first block (`add` false) starts it. Block after
    /// block, every sum runs in the batch's row order, as on one thread.
    pub(super) fn gradient_block(&mut self, block: &SparseColumns, first: usize, add: bool) {
        let len = self.len;
        let at = self.g.len() - self.bias;
        let (dw, db) = self.g.split_at_mut(at);
        let dz = &self.dz[first * len..(first + block.rows()) * len];
        block.weight_grad_sorted(dz, len, dw, db, add);
    }

    /// Phase C, last: update this part's weights with `s`.
    pub(super) fn update(&mut self, s: &StepScalars) {
        s.apply(&mut self.p, &self.g, &mut self.m, &mut self.v);
    }

    /// Phase B, first: copy this part's outputs (of [`Part::top`]) for worker
    /// `k`'s rows into the worker's workspace.
    pub(super) fn scatter(&self, k: usize, w: &mut Worker, rows: usize, n: usize, out: usize) {
        let (lo, len) = (self.lo, self.len);
        let from = self.norm.as_ref().map_or(&self.z, |norm| &norm.y);
        let own = worker_rows(k, rows, n);
        let to = w.ws.output_of_mut(self.top(), own.len());
        for (i, r) in own.enumerate() {
            to[i * out + lo..][..len].copy_from_slice(&from[r * len..][..len]);
        }
    }

    /// After the step: the batch norm's gradients into `grads` (shaped like the
    /// parameters) and its running statistics into `model`, if there is one.
    pub(super) fn keep_norm(&self, model: &mut Mlp, grads: &mut [f32]) {
        if let Some(norm) = &self.norm {
            norm.keep(model, grads);
        }
    }

    /// Copy this part's weights, bias and moments between the flat layouts (`flat`:
    /// parameters, first and second moments; weights [fan_in, out] at 0, bias at
    /// `bias`) and the part's: into the part if `load`, else back. Exact either way.
    fn exchange(
        &mut self,
        flat: [&mut [f32]; 3],
        fan_in: usize,
        out: usize,
        bias: usize,
        load: bool,
    ) {
        let (lo, len, bias_len) = (self.lo, self.len, self.bias);
        for (part, flat) in [&mut self.p, &mut self.m, &mut self.v]
            .into_iter()
            .zip(flat)
        {
            if flat.is_empty() {
                part.clear();
                continue;
            }
            part.resize(fan_in * len + bias_len, 0.0);
            let copy = |a: &mut [f32], b: &mut [f32]| {
                if load {
                    a.copy_from_slice(b)
                } else {
                    b.copy_from_slice(a)
                }
            };
            for c in 0..fan_in {
                copy(
                    &mut part[c * len..][..len],
                    &mut flat[c * out + lo..][..len],
                );
            }
            copy(
                &mut part[fan_in * len..],
                &mut flat[bias + lo..][..bias_len],
            );
        }
    }
}

/// Where the layers above the first begin in the parameters (after its bias, or its
/// weights when it has none).
pub(super) fn rest_start(model: &Mlp) -> usize {
    let plan = Plan::of(model);
    model.offsets_of(0).1 + if plan.bias { plan.out } else { 0 }
}

/// Update the layers above the first with their summed gradient `grads` (shaped like
/// all the parameters) and `s`.
pub(super) fn update_rest(
    model: &mut Mlp,
    opt: &mut crate::nn::Optimizer,
    grads: &[f32],
    s: &StepScalars,
) {
    let rest = rest_start(model);
    let v = if opt.v.is_empty() {
        &mut [][..]
    } else {
        &mut opt.v[rest..]
    };
    s.apply(
        &mut model.params[rest..],
        &grads[rest..],
        &mut opt.m[rest..],
        v,
    );
}

impl Part {
    /// Copy this part's first-layer gradient into `grads` (shaped like the model's
    /// parameters), so that it holds the whole batch's for the diagnostics.
    pub(super) fn copy_grads(&self, model: &Mlp, grads: &mut [f32]) {
        let (_, bias) = model.offsets_of(0);
        let (fan_in, out) = (model.arch.sizes[0], model.arch.sizes[1]);
        let (lo, len) = (self.lo, self.len);
        for c in 0..fan_in {
            grads[c * out + lo..][..len].copy_from_slice(&self.g[c * len..][..len]);
        }
        grads[bias + lo..][..self.bias].copy_from_slice(&self.g[fan_in * len..]);
    }
}

/// The first layer split by outputs across the threads of a run: the parts, each
/// thread's block of the batch, and whether the parts hold the newest weights.
#[derive(Debug, Default)]
pub(super) struct SplitFirst {
    pub(super) parts: Vec<Part>,
    /// Each thread's block of a split batch, listed and sorted into columns.
    pub(super) blocks: Vec<SparseColumns>,
    /// Whether the parts hold the first layer's newest weights (during an epoch).
    pub(super) live: bool,
}

impl SplitFirst {
    /// Parts for `threads` threads of `model`'s first layer, batches of `batch` rows.
    pub(super) fn new(threads: usize, model: &Mlp, batch: usize) -> SplitFirst {
        let plan = Plan::of(model);
        let parts = parts(threads, plan, batch);
        SplitFirst {
            blocks: (0..parts.len()).map(|_| SparseColumns::default()).collect(),
            parts,
            live: false,
        }
    }

    /// Whether every batch of `run`'s epoch can run split: several parts, and a first
    /// layer run sparse (by `input`'s policy) on each batch of listed pixels, none of
    /// them skipped.
    pub(super) fn fits(&self, input: &InputBuf, run: &Run) -> bool {
        if self.parts.len() < 2 {
            return false;
        }
        let (Some(lists), Some(max)) = (lists(run.data), input.sparse_limit()) else {
            return false;
        };
        // A batch the model cannot train on (one image under batch norm) is skipped
        // by the pool's steps; the team's have no skip.
        let arch = &run.model.arch;
        run.order.chunks(run.cfg.batch_size).all(|pick| {
            if !arch.trains_on(pick.len()) {
                return false;
            }
            let listed = Listed {
                lists,
                pick,
                values: &batch::PIXEL_VALUES,
            };
            listed.share(run.data.width()) <= max
        })
    }

    /// Load the parts from the model and optimiser, before an epoch that splits.
    pub(super) fn load(&mut self, model: &mut Mlp, opt: &mut Optimizer) {
        if !self.live {
            self.exchange(model, opt, true);
            self.live = true;
        }
    }

    /// Write the parts back into the model and optimiser after the epoch, so both
    /// always see the newest weights.
    pub(super) fn flush(&mut self, model: &mut Mlp, opt: &mut Optimizer) {
        if self.live {
            self.exchange(model, opt, false);
            self.live = false;
        }
    }

    fn exchange(&mut self, model: &mut Mlp, opt: &mut Optimizer, load: bool) {
        let (_, bias) = model.offsets_of(0);
        let (fan_in, out) = (model.arch.sizes[0], model.arch.sizes[1]);
        for part in &mut self.parts {
            let flat = [&mut model.params[..], &mut opt.m[..], &mut opt.v[..]];
            part.exchange(flat, fan_in, out, bias, load);
        }
    }
}

/// The training images' listed pixels, when the data keeps them.
pub(super) fn lists(data: &Dataset) -> Option<RowLists<'_>> {
    crate::eval::byte_rows(data).lists()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every output belongs to exactly one part, none empty; with fewer outputs than
    /// threads there are no parts (the first layer stays whole).
    #[test]
    fn parts_cover_every_output_once_and_none_is_empty() {
        for (threads, out) in [(2, 128), (5, 8), (33, 128), (3, 3), (2, 1), (33, 8)] {
            let plan = Plan {
                fan_in: 4,
                out,
                bias: true,
                norm: None,
            };
            let p = parts(threads, plan, 2);
            if out < threads {
                assert!(p.is_empty(), "{threads} threads, {out} outputs");
                continue;
            }
            assert_eq!(p.len(), threads);
            let mut next = 0;
            for part in &p {
                assert_eq!(part.lo, next, "{threads} threads, {out} outputs");
                assert!(part.len >= 1 && part.len <= out.div_ceil(threads));
                next += part.len;
            }
            assert_eq!(next, out);
        }
    }
}
