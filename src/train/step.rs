//! One training step, and its strategies.
//!
//! Every step does the same things in the same order, whichever strategy runs it:
//!   1. draw the dropout masks, worker after worker, from the run's generator;
//!   2. each worker runs its rows of the batch forward and back (`pass`);
//!   3. the loss of the batch is summed in worker order and checked (`check`);
//!   4. the workers' gradients are summed in worker order (`add_grads`);
//!   5. the diagnostics sample the gradient; the optimiser updates every parameter.
//!
//! Strategies (chosen per epoch by `Trainer::run_epoch`):
//! - serial: one worker, every phase in turn (the plain reference path);
//! - pool: one worker per thread on rayon's pool, sums and updates by ranges of
//!   parameters (each element gets exactly the serial arithmetic);
//! - team (`team.rs`): the first layer split by outputs across threads
//!   (`split_layer.rs`), each phase on every thread between barriers.
//!
//! Shapes: a batch of n rows is split into workers of `rows = ceil(n / workers)`
//! rows (the last may be short or empty); gradients are shaped like the parameters.

use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::Arc;

use super::split_layer::SplitFirst;
use super::{Divergence, Progress};
use crate::config::TrainConfig;
use crate::data::{batch, Dataset};
use crate::diagnostics::Recorder;
use crate::nn::{InputBuf, Loss, Mlp, Optimizer, Rng, TrainInput, Workspace};

/// One slice of each batch: its own buffers and gradients, so threads never share writes.
pub(super) struct Worker {
    pub(super) ws: Workspace,
    /// Where its rows' first-layer input is built.
    pub(super) input: InputBuf,
    pub(super) grads: Vec<f32>,
    /// Labels of the worker's rows.
    pub(super) y: Vec<u8>,
    /// (loss sum, correct count) of its rows in the current step.
    pub(super) result: (f64, usize),
}

impl Worker {
    /// Buffers for `rows` rows of `model`.
    pub(super) fn new(model: &Mlp, rows: usize) -> Worker {
        Worker {
            ws: Workspace::new(model, rows, true),
            input: model.input_buf(),
            grads: vec![0.0; model.params.len()],
            y: vec![0; rows],
            result: (0.0, 0),
        }
    }

    /// Step 2 for the worker's rows `pick` of a batch of `n` rows of `data`, the
    /// whole network (its first layer's input built here).
    pub(super) fn rows(
        &mut self,
        model: &Mlp,
        data: &crate::data::Dataset,
        pick: &[u32],
        n: usize,
        loss: Loss,
    ) {
        let m = pick.len();
        if m == 0 {
            self.grads.fill(0.0);
            self.result = (0.0, 0);
            return;
        }
        batch::labels(data, pick, &mut self.y[..m]);
        let source = crate::eval::byte_rows(data);
        let x = self
            .input
            .train(source, pick, |x| batch::images(data, pick, x));
        self.result = pass(
            model,
            &mut self.ws,
            Some(x),
            &self.y[..m],
            n,
            loss,
            &mut self.grads,
        );
    }

    /// Step 2 for the worker's rows `pick` of a batch of `n` rows of `data`, above a
    /// first layer whose outputs for them are already in the workspace.
    pub(super) fn rows_above_first(
        &mut self,
        model: &Mlp,
        data: &crate::data::Dataset,
        pick: &[u32],
        n: usize,
        loss: Loss,
    ) {
        let m = pick.len();
        if m == 0 {
            self.grads.fill(0.0);
            self.result = (0.0, 0);
            return;
        }
        batch::labels(data, pick, &mut self.y[..m]);
        self.result = pass(
            model,
            &mut self.ws,
            None,
            &self.y[..m],
            n,
            loss,
            &mut self.grads,
        );
    }
}

/// Step 2 for `y.len()` rows of a batch of `n`: forward and back from `x`, or from
/// first-layer outputs already in `ws` when `x` is None; (loss sum, correct count).
fn pass(
    model: &Mlp,
    ws: &mut Workspace,
    x: Option<TrainInput>,
    y: &[u8],
    n: usize,
    loss: Loss,
    grads: &mut [f32],
) -> (f64, usize) {
    let trace = match x {
        Some(x) => model.forward_train(ws, x),
        None => model.forward_train_above_first(ws, y.len()),
    };
    let result = score(trace.outputs(), y, loss);
    trace.backward(model, y, n, loss, grads);
    result
}

/// Worker `k`'s rows of a batch of `n` rows split `rows` per worker (the last
/// workers' may be short or empty).
pub(super) fn worker_rows(k: usize, rows: usize, n: usize) -> std::ops::Range<usize> {
    (k * rows).min(n)..((k + 1) * rows).min(n)
}

/// Step 1: each worker's dropout masks for its share of a batch of `n` rows, in
/// worker order from the run's generator, before any thread starts.
pub(super) fn sample_masks<'w>(
    workspaces: impl Iterator<Item = &'w mut Workspace>,
    rng: &mut Rng,
    n: usize,
    rows: usize,
) {
    for (k, ws) in workspaces.enumerate() {
        ws.sample_dropout(rng, worker_rows(k, rows, n).len());
    }
}

/// Step 3: the batch's loss sum and correct count, in worker order, or the
/// divergence (at 1-based `step` of `epoch`) if the loss is not finite.
pub(super) fn check(
    results: impl Iterator<Item = (f64, usize)>,
    n: usize,
    (epoch, step): (usize, usize),
) -> Result<(f64, usize), Divergence> {
    let (l, c) = totals(results);
    if l.is_finite() {
        return Ok((l, c));
    }
    Err(Divergence {
        epoch,
        step,
        loss: format!("{}", l / n as f64),
    })
}

/// The sums of the workers' (loss sum, correct count), in worker order.
fn totals(results: impl Iterator<Item = (f64, usize)>) -> (f64, usize) {
    results.fold((0.0, 0), |(l, c), (l2, c2)| (l + l2, c + c2))
}

/// Step 4 for one range of parameters: add the other workers' gradients to the
/// first's, in worker order.
pub(super) fn add_grads<'g>(sum: &mut [f32], others: impl Iterator<Item = &'g [f32]>) {
    for g in others {
        for (a, &b) in sum.iter_mut().zip(g) {
            *a += b;
        }
    }
}

/// Loss sum and correct count of `out` ([rows, classes]) against labels `y`.
pub(super) fn score(out: &[f32], y: &[u8], loss: Loss) -> (f64, usize) {
    let c = out.len() / y.len().max(1);
    let correct = out
        .chunks_exact(c)
        .zip(y)
        .filter(|(r, &t)| crate::eval::argmax(r) == t as usize)
        .count();
    (loss.sum(out, y, c), correct)
}

/// What a step reads and changes of the run, borrowed from the trainer for an epoch.
pub(super) struct Run<'t> {
    pub(super) cfg: &'t TrainConfig,
    pub(super) data: &'t Dataset,
    /// The epoch's order of the training images.
    pub(super) order: &'t [u32],
    pub(super) model: &'t mut Mlp,
    pub(super) opt: &'t mut Optimizer,
    pub(super) rng: &'t mut Rng,
    pub(super) recorder: &'t mut Option<Recorder>,
    pub(super) diverged: &'t mut Option<Divergence>,
    /// The epoch (1-based).
    pub(super) epoch: usize,
}

impl Run<'_> {
    /// Steps per epoch.
    pub(super) fn per_epoch(&self) -> usize {
        self.order.len().div_ceil(self.cfg.batch_size)
    }

    /// The first row and the rows of batch `step` (0-based) of the epoch.
    pub(super) fn batch(&self, step: usize) -> (usize, usize) {
        let b = self.cfg.batch_size;
        (step * b, b.min(self.order.len() - step * b))
    }

    /// The 1-based number of step `step` (0-based) of this epoch over the whole run.
    pub(super) fn global_step(&self, step: usize) -> usize {
        (self.epoch - 1) * self.per_epoch() + step + 1
    }
}

/// The workers, one per thread, and the strategies that run a step on them.
pub(super) struct Crew {
    pub(super) workers: Vec<Worker>,
    /// Threads that stay alive across steps for `threads` > 1 (rayon's pool: a job
    /// hand-off, no spawn or allocation per step); None runs the workers in turn.
    pool: Option<Arc<rayon::ThreadPool>>,
    /// The first layer split by outputs, one part per thread (see `split_layer`).
    pub(super) split: SplitFirst,
    /// The model's first layer reads dense rows only (a policy never overrides it).
    dense: bool,
}

impl Crew {
    /// Workers for `cfg.threads` threads of batches of `cfg.batch_size` rows of `model`.
    pub(super) fn new(model: &Mlp, cfg: &TrainConfig) -> Crew {
        // Batch norm needs the whole batch's statistics in one pass: one worker.
        let threads = if model.arch.batch_norm() {
            1
        } else {
            cfg.threads.max(1)
        };
        let rows = cfg.batch_size.div_ceil(threads);
        // Without a pool (one thread, or none could start) the workers run in turn and
        // give the same numbers.
        let pool = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .ok()
            })
            .flatten()
            .map(Arc::new);
        let split = match pool {
            Some(_) if !model.dense_input() => SplitFirst::new(threads, model, cfg.batch_size),
            _ => SplitFirst::default(),
        };
        Crew {
            workers: (0..threads).map(|_| Worker::new(model, rows)).collect(),
            pool,
            split,
            dense: model.dense_input(),
        }
    }

    /// Choose the first layer's kernel for training steps (default: by each batch's
    /// share of non-zero inputs).
    pub(super) fn set_first_layer(&mut self, policy: crate::nn::FirstLayer) {
        if self.dense {
            return;
        }
        for w in &mut self.workers {
            w.input.policy = policy;
        }
    }

    /// The epoch's steps by the fastest strategy that fits it: the team when every
    /// batch can split the first layer, else the pool, else one thread. (loss sum,
    /// correct count), or None if the run diverged (see `run.diverged`) or `stop` was
    /// raised.
    pub(super) fn epoch(
        &mut self,
        run: &mut Run,
        progress: &mut dyn Progress,
        stop: &AtomicBool,
    ) -> Option<(f64, usize)> {
        let done = if self.split.fits(&self.workers[0].input, run) {
            super::team::steps(self, run, progress, stop)
        } else if let Some(pool) = self.pool.clone() {
            // The whole epoch on the pool, so each step's hand-offs stay among its threads.
            pool.install(|| self.steps(run, progress, stop))
        } else {
            self.steps(run, progress, stop)
        };
        self.split.flush(run.model, run.opt);
        done
    }
    /// Steps 1-2 for the `n` rows `lo..lo + n` of the epoch's order, one worker after
    /// another or on the pool's threads.
    fn pass_workers(&mut self, run: &mut Run, (lo, n): (usize, usize)) {
        let rows = n.div_ceil(self.workers.len());
        if run.cfg.dropout > 0.0 {
            let workspaces = self.workers.iter_mut().map(|w| &mut w.ws);
            sample_masks(workspaces, run.rng, n, rows);
        }
        let (model, loss, data) = (&*run.model, run.cfg.loss, run.data);
        let idx = &run.order[lo..lo + n];
        let run = |k: usize, w: &mut Worker| {
            w.rows(model, data, &idx[worker_rows(k, rows, n)], n, loss);
        };
        match &self.pool {
            None => self
                .workers
                .iter_mut()
                .enumerate()
                .for_each(|(k, w)| run(k, w)),
            Some(pool) => pool.install(|| {
                use rayon::prelude::*;
                self.workers
                    .par_iter_mut()
                    .enumerate()
                    .for_each(|(k, w)| run(k, w))
            }),
        }
    }

    /// Step 4: sum the workers' gradients into the first's, by ranges of parameters
    /// (on the pool's threads when there is one).
    fn sum_worker_grads(&mut self) {
        let (first, rest) = self.workers.split_at_mut(1);
        let rest = &*rest;
        let grads = &mut first[0].grads;
        let len = grads.len().div_ceil(rest.len() + 1).max(1);
        let add = |i: usize, chunk: &mut [f32]| {
            add_grads(chunk, rest.iter().map(|w| &w.grads[i * len..]));
        };
        match &self.pool {
            None => grads
                .chunks_mut(len)
                .enumerate()
                .for_each(|(i, c)| add(i, c)),
            Some(pool) => pool.install(|| {
                use rayon::prelude::*;
                grads
                    .par_chunks_mut(len)
                    .enumerate()
                    .for_each(|(i, c)| add(i, c))
            }),
        }
    }

    /// Step 5's update on the summed gradients (by ranges on the pool's threads when
    /// there is one: element by element the same arithmetic).
    fn optimizer_step(&mut self, run: &mut Run) {
        let grads = &self.workers[0].grads;
        let Some(pool) = &self.pool else {
            return run.opt.step(&mut run.model.params, grads);
        };
        let s = run.opt.begin_step();
        let len = grads.len().div_ceil(self.workers.len()).max(1);
        let (params, m, v) = (&mut run.model.params, &mut run.opt.m, &mut run.opt.v);
        pool.install(|| {
            use rayon::prelude::*;
            let ranges = params
                .par_chunks_mut(len)
                .zip(grads.par_chunks(len))
                .zip(m.par_chunks_mut(len));
            if v.is_empty() {
                ranges.for_each(|((p, g), m)| s.apply(p, g, m, &mut []));
            } else {
                ranges
                    .zip(v.par_chunks_mut(len))
                    .for_each(|(((p, g), m), v)| s.apply(p, g, m, v));
            }
        });
    }

    /// Steps 1-4 alone, for the `n` rows `lo..lo + n`: the summed gradient in the
    /// first worker's; (loss sum, correct count).
    #[cfg(test)]
    pub(super) fn batch_gradients(&mut self, run: &mut Run, batch: (usize, usize)) -> (f64, usize) {
        self.pass_workers(run, batch);
        self.sum_worker_grads();
        totals(self.workers.iter().map(|w| w.result))
    }

    /// One step on batch `step` of the epoch: (loss sum, correct count), or the
    /// divergence.
    fn train_step(&mut self, run: &mut Run, step: usize) -> Result<(f64, usize), Divergence> {
        let batch = run.batch(step);
        if batch.1 < 2 && run.model.arch.batch_norm_1d() {
            eprintln!(
                "warning: skipped a training batch of 1 image: batch norm on a linear layer needs more than 1 value per channel"
            );
            return Ok((0.0, 0));
        }
        self.pass_workers(run, batch);
        let results = self.workers.iter().map(|w| w.result);
        let (l, c) = check(results, batch.1, (run.epoch, step + 1))?;
        self.sum_worker_grads();
        let global_step = run.global_step(step);
        if let Some(r) = run.recorder {
            r.after_step(run.model, &self.workers[0].grads, global_step);
        }
        self.optimizer_step(run);
        if run.model.arch.batch_norm() {
            run.model.keep_stats(&self.workers[0].ws);
        }
        Ok((l, c))
    }

    /// The steps of one epoch, serial or on the pool.
    fn steps(
        &mut self,
        run: &mut Run,
        progress: &mut dyn Progress,
        stop: &AtomicBool,
    ) -> Option<(f64, usize)> {
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for step in 0..run.per_epoch() {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            match self.train_step(run, step) {
                Ok((l, c)) => (loss_sum, correct) = (loss_sum + l, correct + c),
                Err(d) => {
                    *run.diverged = Some(d);
                    return None;
                }
            }
            progress.step(step + 1);
        }
        Some((loss_sum, correct))
    }
}
