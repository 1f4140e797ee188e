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
//! The pieces every strategy shares are in `worker.rs`.

use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::{Arc, Mutex, PoisonError};

use super::split_layer::SplitFirst;
use super::worker::{add_grads, check, sample_masks, worker_rows, Run, Worker};
use super::{Divergence, Progress};
use crate::config::TrainConfig;
use crate::nn::norm::{Exchange, Seat};
use crate::nn::Mlp;

/// How an epoch's steps run (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strategy {
    /// One worker after another on the calling thread.
    Serial,
    /// One worker per thread of the pool, the batch split by rows.
    Pool,
    /// The first layer split by outputs across the threads (`team.rs`).
    Team,
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
        let bn = model.arch.batch_norm();
        let mut threads = cfg.threads.max(1);
        let rows = |threads: usize| cfg.batch_size.div_ceil(threads);
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
        // Batch norm's workers meet mid-pass, so they need a thread each: without the
        // pool, one worker takes the whole batch.
        if bn && pool.is_none() {
            threads = 1;
        }
        // The split first layer needs the sparse kernels of a first linear layer (its
        // batch norm, if any, runs in the parts; those above it meet at the exchange).
        let split = match pool {
            Some(_) if !model.dense_input() => SplitFirst::new(threads, model, cfg.batch_size),
            _ => SplitFirst::default(),
        };
        let exchange = (bn && threads > 1).then(|| Exchange::new(threads));
        let workers = (0..threads).map(|k| {
            let mut w = Worker::new(model, rows(threads));
            w.ws.seat = exchange.clone().map(|e| Seat::new(e, k));
            w
        });
        Crew {
            workers: workers.collect(),
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

    /// The fastest strategy that fits `run`'s epoch: the team when every batch can
    /// split the first layer, else the pool, else one thread.
    pub(super) fn strategy(&self, run: &Run) -> Strategy {
        if self.split.fits(&self.workers[0].input, run) {
            Strategy::Team
        } else if self.pool.is_some() {
            Strategy::Pool
        } else {
            Strategy::Serial
        }
    }

    /// The epoch's steps by [`Crew::strategy`]: (loss sum, correct count), or None if
    /// the run diverged (see `run.diverged`) or `stop` was raised.
    pub(super) fn epoch(
        &mut self,
        run: &mut Run,
        progress: &mut dyn Progress,
        stop: &AtomicBool,
    ) -> Option<(f64, usize)> {
        let done = match (self.strategy(run), self.pool.clone()) {
            (Strategy::Team, _) => {
                super::team::steps(&mut self.workers, &mut self.split, run, progress, stop)
            }
            // The whole epoch on the pool, so each step's hand-offs stay among its threads.
            (Strategy::Pool, Some(pool)) => pool.install(|| self.steps(run, progress, stop)),
            _ => self.steps(run, progress, stop),
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
            // Batch norm's workers wait for each other mid-pass: each on a thread of
            // its own (a broadcast runs once on every thread of the pool; a parallel
            // iterator may run two workers in turn on one thread, and the first would
            // wait for the second forever).
            Some(pool) if self.workers[0].ws.seat.is_some() => {
                let workers: Vec<_> = self.workers.iter_mut().map(Mutex::new).collect();
                pool.broadcast(|ctx| {
                    let k = ctx.index();
                    let mut w = workers[k].lock().unwrap_or_else(PoisonError::into_inner);
                    let seat = w.ws.seat.as_ref().map(Seat::exchange);
                    let _poison = seat.as_deref().map(Exchange::poison_on_panic);
                    run(k, &mut w)
                });
            }
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
        super::worker::totals(self.workers.iter().map(|w| w.result))
    }

    /// One step on batch `step` of the epoch: (loss sum, correct count), or the
    /// divergence.
    fn train_step(&mut self, run: &mut Run, step: usize) -> Result<(f64, usize), Divergence> {
        let batch = run.batch(step);
        if run.skips(step) {
            // The command layer warns once (`Trainer::skipped_images`).
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
