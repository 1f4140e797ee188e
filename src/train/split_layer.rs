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
//! Per step, each phase on every thread at once (part k and worker k on thread k):
//! - A: each part lists the batch's non-zero pixels and computes its outputs, all rows;
//! - B: each worker gathers its rows' pre-activations from the parts, runs the rest of
//!   the network forward and back to dLoss/dz of the first layer;
//! - C: each part gathers its outputs' dLoss/dz for all rows, sums its weight gradient
//!   over them in row order (the same sums, in the same order, as one thread) and
//!   updates its weights; the other parameters' gradients are summed and updated.
//!
//! Shapes (in = 784, n = batch rows): part weights [in, len] then bias [len], with
//! their gradient and moments the same; part z and dz [n, len].

use super::{score, Trainer};
use crate::data::{batch, PIXELS};
use crate::nn::sparse::{Listed, SparseColumns};
use crate::nn::StepScalars;

/// The first layer's outputs `lo..lo + len`, owned by one thread during an epoch.
#[derive(Debug, Default)]
pub(super) struct Part {
    lo: usize,
    len: usize,
    /// Weights [in, len] then bias [len]; while `live`, newer than the model's.
    p: Vec<f32>,
    /// Their gradient, and the optimiser's moments (`v` empty for SGD).
    g: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    /// The batch's non-zero pixels (every part lists the whole batch).
    sparse: SparseColumns,
    /// Pre-activations and their gradient for the whole batch, [n, len].
    z: Vec<f32>,
    dz: Vec<f32>,
}

/// The parts of a first layer with `out` outputs and `fan_in` inputs, one per thread,
/// for batches of `batch` rows.
pub(super) fn parts(threads: usize, fan_in: usize, out: usize, batch: usize) -> Vec<Part> {
    let per = out.div_ceil(threads);
    (0..threads)
        .map(|k| {
            let lo = (k * per).min(out);
            let len = per.min(out - lo);
            let size = fan_in * len + len;
            Part {
                lo,
                len,
                p: vec![0.0; size],
                g: vec![0.0; size],
                m: vec![0.0; size],
                v: vec![0.0; size],
                sparse: SparseColumns::default(),
                z: vec![0.0; batch * len],
                dz: vec![0.0; batch * len],
            }
        })
        .collect()
}

impl Part {
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
        let (lo, len) = (self.lo, self.len);
        for (part, flat) in [&mut self.p, &mut self.m, &mut self.v]
            .into_iter()
            .zip(flat)
        {
            if flat.is_empty() {
                part.clear();
                continue;
            }
            part.resize(fan_in * len + len, 0.0);
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
            copy(&mut part[fan_in * len..], &mut flat[bias + lo..][..len]);
        }
    }
}

impl Trainer<'_> {
    /// Whether the step over `n` rows can run split: several threads, a first layer
    /// run sparse on this batch of listed pixels, and every part within its width.
    pub(super) fn can_split(&self, lo: usize, n: usize) -> bool {
        if self.parts.len() < 2 || self.pool.is_none() {
            return false;
        }
        let Some(lists) = crate::eval::row_lists(&self.split.train) else {
            return false;
        };
        let listed = Listed {
            lists,
            pick: &self.order[lo..lo + n],
            values: &batch::PIXEL_VALUES,
        };
        let limit = self.workers[0].ws.sparse_limit();
        limit.is_some_and(|max| listed.share(PIXELS) <= max)
    }

    /// Load the parts from the model and optimiser (once per epoch, before its first
    /// split step).
    fn load_parts(&mut self) {
        if !self.parts_live {
            self.exchange_parts(true);
            self.parts_live = true;
        }
    }

    /// Write the parts back into the model and optimiser: after every epoch, and
    /// before any step that does not split, so both always see the newest weights.
    pub(super) fn flush_parts(&mut self) {
        if self.parts_live {
            self.exchange_parts(false);
            self.parts_live = false;
        }
    }

    fn exchange_parts(&mut self, load: bool) {
        let (_, bias) = self.model.offsets_of(0);
        let (fan_in, out) = (self.model.arch.sizes[0], self.model.arch.sizes[1]);
        for part in &mut self.parts {
            let flat = [
                &mut self.model.params[..],
                &mut self.opt.m[..],
                &mut self.opt.v[..],
            ];
            part.exchange(flat, fan_in, out, bias, load);
        }
    }

    /// Phases A and B for the `n` rows from `lo` of the epoch's order: (loss sum,
    /// correct count), from the training-mode outputs.
    pub(super) fn split_gradients(&mut self, lo: usize, n: usize) -> (f64, usize) {
        self.load_parts();
        let dropout = self.cfg.dropout > 0.0;
        let rows = n.div_ceil(self.workers.len());
        if dropout {
            self.sample_masks(n, rows);
        }
        let Some(pool) = self.pool.clone() else {
            unreachable!("can_split checked the pool")
        };
        let Some(lists) = crate::eval::row_lists(&self.split.train) else {
            unreachable!("can_split checked the lists")
        };
        let pick = &self.order[lo..lo + n];
        let (model, loss, data) = (&self.model, self.cfg.loss, &self.split.train);
        pool.install(|| {
            use rayon::prelude::*;
            self.parts.par_iter_mut().for_each(|part| {
                let (w, b) = part.p.split_at(part.p.len() - part.len);
                let values = &batch::PIXEL_VALUES;
                part.sparse
                    .build_from_lists(lists, pick, PIXELS, values, f32::INFINITY, true);
                part.sparse.sort_columns();
                part.sparse
                    .forward(w, b, part.len, &mut part.z[..n * part.len]);
            });
        });
        let (parts, out) = (&self.parts, model.arch.sizes[1]);
        let (workers, results, y) = (&mut self.workers, &mut self.results, &mut self.y);
        pool.install(|| {
            use rayon::prelude::*;
            workers
                .par_iter_mut()
                .zip(results.par_iter_mut())
                .zip(y.par_chunks_mut(rows))
                .enumerate()
                .for_each(|(k, ((w, r), y))| {
                    let first = (k * rows).min(n);
                    let m = rows.min(n - first);
                    if m == 0 {
                        w.grads.fill(0.0);
                        *r = (0.0, 0);
                        return;
                    }
                    batch::labels(data, &pick[first..first + m], &mut y[..m]);
                    for part in parts {
                        let (lo, len) = (part.lo, part.len);
                        for i in 0..m {
                            w.ws.z[0][i * out + lo..][..len]
                                .copy_from_slice(&part.z[(first + i) * len..][..len]);
                        }
                    }
                    model.forward_rest(&mut w.ws, m, dropout);
                    let c = model.arch.classes();
                    *r = score(&w.ws.y[..m * c], &y[..m], loss);
                    model.backward_above_first(
                        &mut w.ws,
                        &y[..m],
                        m,
                        n,
                        loss,
                        dropout,
                        &mut w.grads,
                    );
                });
        });
        self.results
            .iter()
            .fold((0.0, 0), |(l, c), &(l2, c2)| (l + l2, c + c2))
    }

    /// Phase C: the first layer's gradient by parts, then every update with `s`;
    /// with `full_grads`, worker 0's gradient then holds the whole batch's, as one
    /// thread computes it (for the diagnostics' gradient norms).
    pub(super) fn split_update(&mut self, n: usize, s: StepScalars, full_grads: bool) {
        let Some(pool) = self.pool.clone() else {
            unreachable!("can_split checked the pool")
        };
        let rows = n.div_ceil(self.workers.len());
        let out = self.model.arch.sizes[1];
        let workers = &self.workers;
        pool.install(|| {
            use rayon::prelude::*;
            self.parts.par_iter_mut().for_each(|part| {
                let len = part.len;
                for (k, w) in workers.iter().enumerate() {
                    let first = (k * rows).min(n);
                    for i in 0..rows.min(n - first) {
                        part.dz[(first + i) * len..][..len]
                            .copy_from_slice(&w.ws.g[0][i * out + part.lo..][..len]);
                    }
                }
                let at = part.g.len() - len;
                let (dw, db) = part.g.split_at_mut(at);
                part.sparse.weight_grad(&part.dz[..n * len], len, dw, db);
                s.apply(&mut part.p, &part.g, &mut part.m, &mut part.v);
            });
        });
        self.update_rest(s, full_grads);
    }

    /// Sum the layers above the first's gradients into worker 0's in worker order,
    /// update them, and with `full_grads` copy the parts' gradients in too.
    fn update_rest(&mut self, s: StepScalars, full_grads: bool) {
        let (_, bias) = self.model.offsets_of(0);
        let rest = bias + self.model.arch.sizes[1];
        let (first, others) = self.workers.split_at_mut(1);
        let grads = &mut first[0].grads;
        for w in others.iter() {
            for (a, &b) in grads[rest..].iter_mut().zip(&w.grads[rest..]) {
                *a += b;
            }
        }
        let v = if self.opt.v.is_empty() {
            &mut [][..]
        } else {
            &mut self.opt.v[rest..]
        };
        s.apply(
            &mut self.model.params[rest..],
            &grads[rest..],
            &mut self.opt.m[rest..],
            v,
        );
        if full_grads {
            let (fan_in, out) = (self.model.arch.sizes[0], self.model.arch.sizes[1]);
            for part in &self.parts {
                let (lo, len) = (part.lo, part.len);
                for c in 0..fan_in {
                    grads[c * out + lo..][..len].copy_from_slice(&part.g[c * len..][..len]);
                }
                grads[bias + lo..][..len].copy_from_slice(&part.g[fan_in * len..]);
            }
        }
    }
}
