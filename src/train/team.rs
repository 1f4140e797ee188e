//! An epoch on several threads with hand-offs of a fraction of a microsecond.
//!
//! A split step has three phases (see `split_layer`), each needing every thread. A
//! thread pool hands each phase over as a job, and a thread that found no work for a
//! few microseconds goes to sleep: waking it costs more than a phase's work is worth,
//! and when it wakes late the first thread runs its share too. Here the threads stay
//! for the whole epoch, thread k always on part k and worker k, and meet at a
//! barrier between phases that spins, then sleeps after a while, so a busy machine is
//! not starved (`crate::barrier`). Thread 0 also does the step's serial work between them.
//!
//! Each part and worker sits behind its own lock, taken once per phase without
//! contention (the barrier orders the phases): safe code, no shared mutation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::split_layer::{rest_start, update_rest, Part, Plan, SplitFirst};
use super::worker::{add_grads, check, sample_masks, worker_rows, Run, Worker};
use super::{Divergence, Progress};
use crate::barrier::Barrier;
use crate::nn::norm::{Exchange, Seat};
use crate::nn::sparse::SparseColumns;
use crate::nn::StepScalars;

/// Spins before a waiting thread goes to sleep (about 100 µs).
const SPINS: u32 = 1 << 16;

/// A barrier for the threads of one run, with the step's orders from thread 0.
struct Team {
    barrier: Barrier,
    /// Set by thread 0 before the barrier after phase A when the epoch ends early.
    stop: AtomicBool,
    /// This step's update, or None when it diverged (no update, then stop).
    update: Mutex<Option<StepScalars>>,
}

impl Team {
    fn new(threads: usize) -> Team {
        Team {
            barrier: Barrier::new(threads, SPINS, "run"),
            stop: AtomicBool::new(false),
            update: Mutex::new(None),
        }
    }

    /// Wait until every thread arrives (what each did before is then seen by all).
    fn wait(&self) {
        self.barrier.wait();
    }

    fn update(&self) -> Option<StepScalars> {
        *self.update.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_update(&self, s: Option<StepScalars>) {
        *self.update.lock().unwrap_or_else(PoisonError::into_inner) = s;
    }
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// What every thread of the team shares during an epoch.
struct Shared<'e, 'a> {
    team: Team,
    parts: Vec<RwLock<&'e mut Part>>,
    /// Each thread's block of the batch, listed and sorted into columns.
    blocks: Vec<RwLock<&'e mut SparseColumns>>,
    workers: Vec<RwLock<&'e mut Worker>>,
    model: RwLock<&'e mut crate::nn::Mlp>,
    order: &'e [u32],
    lists: crate::nn::sparse::RowLists<'a>,
    data: &'a crate::data::Dataset,
    cfg: &'e crate::config::TrainConfig,
    /// The first layer's outputs.
    out: usize,
    /// The first layer the workers run (above the parts', see `Plan::above`).
    from: usize,
}

impl Shared<'_, '_> {
    /// Rows per worker of a batch of `n`.
    fn rows(&self, n: usize) -> usize {
        n.div_ceil(self.workers.len())
    }

    /// The first row and the rows of batch `step`.
    fn batch(&self, step: usize) -> (usize, usize) {
        let b = self.cfg.batch_size;
        (step * b, b.min(self.order.len() - step * b))
    }

    /// Where block `j` of a batch of `n` rows starts.
    fn first(&self, j: usize, n: usize) -> usize {
        worker_rows(j, self.rows(n), n).start
    }

    /// Phase A, first: thread `k` lists its worker's rows of the batch, sorted into
    /// columns (each thread lists one block; every part reads them all).
    fn list_block(&self, k: usize, (lo, n): (usize, usize)) {
        let own = worker_rows(k, self.rows(n), n);
        let pick = &self.order[lo + own.start..lo + own.end];
        let mut block = write(&self.blocks[k]);
        let values = &crate::data::batch::PIXEL_VALUES;
        let width = self.data.width();
        block.build_from_lists(self.lists, pick, width, values, f32::INFINITY, true);
        block.sort_columns();
    }

    /// Phase A, then: thread `k`'s part computes its outputs for every block, and
    /// normalises them when a batch norm follows.
    fn phase_a(&self, k: usize, (_, n): (usize, usize)) {
        let mut part = write(&self.parts[k]);
        for (j, block) in self.blocks.iter().enumerate() {
            part.forward_block(&read(block), self.first(j, n));
        }
        part.normalize(&read(&self.model), n);
    }

    /// Phase B of thread `k`: its worker's rows through the rest of the network.
    fn phase_b(&self, k: usize, (lo, n): (usize, usize)) {
        let (rows, out) = (self.rows(n), self.out);
        let mut w = write(&self.workers[k]);
        for part in &self.parts {
            read(part).scatter(k, &mut w, rows, n, out);
        }
        let pick = &self.order[lo..lo + n][worker_rows(k, rows, n)];
        let model = read(&self.model);
        w.rows_above(&model, self.data, (pick, self.from), n, self.cfg.loss);
    }

    /// Phase C of thread `k`: its part's gradient, block after block, and update.
    fn backward(&self, k: usize, n: usize, s: &StepScalars) {
        let (rows, out) = (self.rows(n), self.out);
        let mut part = write(&self.parts[k]);
        for (j, w) in self.workers.iter().enumerate() {
            part.gather_dz(j, &read(w), rows, n, out);
        }
        part.denormalize(&read(&self.model), n);
        for (j, block) in self.blocks.iter().enumerate() {
            part.gradient_block(&read(block), self.first(j, n), j > 0);
        }
        part.update(s);
    }
}

/// Thread 0's share of the epoch besides its phases: the step's serial work.
struct Lead<'l> {
    /// The epoch (1-based) and the global number of its first step (1-based).
    epoch: usize,
    first_step: usize,
    opt: &'l mut crate::nn::Optimizer,
    rng: &'l mut crate::nn::Rng,
    diverged: &'l mut Option<Divergence>,
    recorder: &'l mut Option<crate::diagnostics::Recorder>,
    progress: &'l mut dyn Progress,
    stop: &'l AtomicBool,
}

impl Shared<'_, '_> {
    /// One thread's epoch: the step's phases in order, the same sequence on every
    /// thread, which meet between phases; the lead (thread 0, with `lead`) also does
    /// the serial work between them. The lead returns (loss sum, correct count), or
    /// None if the run diverged or was stopped; the others return None.
    fn run(&self, k: usize, steps: usize, mut lead: Option<Lead>) -> Option<(f64, usize)> {
        let _poison = self.team.barrier.poison_on_panic();
        // The batch norms above the parts' meet in phase B at the workers' exchange.
        let exchange = read(&self.workers[k]).ws.seat.as_ref().map(Seat::exchange);
        let _poison_norm = exchange.as_deref().map(Exchange::poison_on_panic);
        let mut total = (0.0f64, 0usize);
        for step in 0..steps {
            let batch = self.batch(step);
            if let Some(lead) = lead.as_mut() {
                self.begin(lead, batch.1);
            }
            // A: list block k; then part k's outputs for every block.
            self.list_block(k, batch);
            self.team.wait();
            if self.team.stop.load(Ordering::Relaxed) {
                return None;
            }
            self.phase_a(k, batch);
            self.team.wait();
            // B: worker k's rows through the rest of the network.
            self.phase_b(k, batch);
            self.team.wait();
            let mut figures = None;
            if let Some(lead) = lead.as_mut() {
                figures = self.decide(lead, batch.1, step);
            }
            self.team.wait();
            // C: part k's gradient, block after block, and its update.
            if let Some(s) = self.team.update() {
                self.backward(k, batch.1, &s);
            }
            self.team.wait();
            // The lead finishes the step while the others list the next one's blocks.
            if let (Some(lead), Some((l, c, s))) = (lead.as_mut(), figures) {
                let global_step = lead.first_step + step;
                self.finish_step(lead, &s, global_step);
                total = (total.0 + l, total.1 + c);
                lead.progress.step(step + 1);
                if step + 1 == steps {
                    return Some(total);
                }
            }
        }
        None
    }

    /// The lead, before a step of `n` rows: stop the team if the run was stopped or
    /// diverged, else draw the step's dropout masks.
    fn begin(&self, lead: &mut Lead, n: usize) {
        if lead.stop.load(Ordering::Relaxed) || lead.diverged.is_some() {
            self.team.stop.store(true, Ordering::Relaxed);
        } else if self.cfg.dropout > 0.0 {
            let mut workers: Vec<_> = self.workers.iter().map(write).collect();
            let workspaces = workers.iter_mut().map(|w| &mut w.ws);
            sample_masks(workspaces, lead.rng, n, self.rows(n));
        }
    }

    /// The lead, after phase B: the step's loss in worker order, and the update the
    /// parts apply in phase C (none when the loss diverged).
    fn decide(&self, lead: &mut Lead, n: usize, step: usize) -> Option<(f64, usize, StepScalars)> {
        let results = self.workers.iter().map(|w| read(w).result);
        match check(results, n, (lead.epoch, step + 1)) {
            Ok((l, c)) => {
                let s = lead.opt.begin_step();
                self.team.set_update(Some(s));
                Some((l, c, s))
            }
            Err(d) => {
                self.team.set_update(None);
                *lead.diverged = Some(d);
                None
            }
        }
    }

    /// After the phases: sum and update the layers above the first (with the parts'
    /// batch norm, whose gradients and running statistics they hand over); give the
    /// diagnostics the step's gradient when they sample it.
    fn finish_step(&self, lead: &mut Lead, s: &StepScalars, global_step: usize) {
        let mut model = write(&self.model);
        let mut w0 = write(&self.workers[0]);
        let rest = rest_start(&model);
        let others: Vec<_> = self.workers[1..].iter().map(read).collect();
        add_grads(
            &mut w0.grads[rest..],
            others.iter().map(|w| &w.grads[rest..]),
        );
        drop(others);
        if model.arch.batch_norm() {
            // The workers' statistics first: theirs of the parts' norm are unmoved.
            model.keep_stats(&w0.ws);
            for part in &self.parts {
                read(part).keep_norm(&mut model, &mut w0.grads);
            }
        }
        update_rest(&mut model, lead.opt, &w0.grads, s);
        if let Some(r) = lead.recorder.as_mut().filter(|r| r.samples(global_step)) {
            for part in &self.parts {
                read(part).copy_grads(&model, &mut w0.grads);
            }
            r.after_step(&model, &w0.grads, global_step);
        }
    }
}

/// The steps of an epoch whose batches all split (see `SplitFirst::fits`), one
/// thread per part and worker: (loss sum, correct count), or None if it diverged or
/// was stopped.
pub(super) fn steps(
    workers: &mut [Worker],
    split: &mut SplitFirst,
    run: &mut Run,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Option<(f64, usize)> {
    split.load(run.model, run.opt);
    let (steps, first_step) = (run.per_epoch(), run.global_step(0));
    let lists = super::split_layer::lists(run.data)?;
    let Run {
        cfg,
        data,
        order,
        model,
        opt,
        rng,
        recorder,
        diverged,
        epoch,
    } = run;
    let shared = Shared {
        team: Team::new(workers.len()),
        out: model.arch.sizes[1],
        from: Plan::of(model).above(),
        parts: split.parts.iter_mut().map(RwLock::new).collect(),
        blocks: split.blocks.iter_mut().map(RwLock::new).collect(),
        workers: workers.iter_mut().map(RwLock::new).collect(),
        model: RwLock::new(model),
        order,
        lists,
        data,
        cfg,
    };
    let lead = Lead {
        epoch: *epoch,
        first_step,
        opt,
        rng,
        diverged,
        recorder,
        progress,
        stop,
    };
    std::thread::scope(|scope| {
        let shared = &shared;
        for k in 1..shared.workers.len() {
            scope.spawn(move || shared.run(k, steps, None));
        }
        shared.run(0, steps, Some(lead))
    })
}
