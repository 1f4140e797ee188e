//! An epoch on several threads with hand-offs of a fraction of a microsecond.
//!
//! A split step has three phases (see `split_layer`), each needing every thread. A
//! thread pool hands each phase over as a job, and a thread that found no work for a
//! few microseconds goes to sleep: waking it costs more than a phase's work is worth,
//! and when it wakes late the first thread runs its share too. Here the threads stay
//! for the whole epoch, thread k always on part k and worker k, and meet at a
//! spinning barrier between phases (yielding the core after a while, so a busy
//! machine is not starved). Thread 0 also does the step's serial work between them.
//!
//! Each part and worker sits behind its own lock, taken once per phase without
//! contention (the barrier orders the phases): safe code, no shared mutation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::split_layer::{rest_start, rows_rest, update_rest, worker_rows, Part};
use super::{Divergence, Progress, Trainer, Worker};
use crate::nn::sparse::SparseColumns;
use crate::nn::StepScalars;

/// Spins before a waiting thread starts yielding its core (about 100 µs).
const SPINS: u32 = 1 << 16;

/// A barrier for the threads of one run, with the step's orders from thread 0.
struct Team {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    /// Set when a thread panicked: the others stop waiting and panic too.
    poisoned: AtomicBool,
    /// Set by thread 0 before the barrier after phase A when the epoch ends early.
    stop: AtomicBool,
    /// This step's update, or None when it diverged (no update, then stop).
    update: Mutex<Option<StepScalars>>,
}

impl Team {
    fn new(threads: usize) -> Team {
        Team {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            update: Mutex::new(None),
        }
    }

    /// Wait until every thread arrives (what each did before is then seen by all).
    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0;
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(
                !self.poisoned.load(Ordering::Relaxed),
                "another thread of this run panicked"
            );
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    fn update(&self) -> Option<StepScalars> {
        *self.update.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_update(&self, s: Option<StepScalars>) {
        *self.update.lock().unwrap_or_else(PoisonError::into_inner) = s;
    }
}

/// Poisons the team if its thread unwinds, so no other thread waits for it forever.
struct PoisonOnPanic<'t>(&'t Team);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Relaxed);
        }
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
        let width = crate::data::PIXELS;
        block.build_from_lists(self.lists, pick, width, values, f32::INFINITY, true);
        block.sort_columns();
    }

    /// Phase A, then: thread `k`'s part computes its outputs for every block.
    fn phase_a(&self, k: usize, (_, n): (usize, usize)) {
        let mut part = write(&self.parts[k]);
        for (j, block) in self.blocks.iter().enumerate() {
            part.forward_block(&read(block), self.first(j, n));
        }
    }

    /// Phase B of thread `k`: its worker's rows through the rest of the network.
    fn phase_b(&self, k: usize, (lo, n): (usize, usize)) {
        let (rows, out) = (self.rows(n), self.out);
        let mut w = write(&self.workers[k]);
        for part in &self.parts {
            read(part).scatter_z(k, &mut w, rows, n, out);
        }
        let (loss, dropout) = (self.cfg.loss, self.cfg.dropout > 0.0);
        let model = read(&self.model);
        let pick = &self.order[lo..lo + n];
        w.result = rows_rest(&model, &mut w, self.data, pick, (k, rows), loss, dropout);
    }

    /// Phase C of thread `k`: its part's gradient, block after block, and update.
    fn backward(&self, k: usize, n: usize, s: &StepScalars) {
        let (rows, out) = (self.rows(n), self.out);
        let mut part = write(&self.parts[k]);
        for (j, w) in self.workers.iter().enumerate() {
            part.gather_dz(j, &read(w), rows, n, out);
        }
        for (j, block) in self.blocks.iter().enumerate() {
            part.gradient_block(&read(block), self.first(j, n), j > 0);
        }
        part.update(s);
    }

    /// A helper thread's epoch. Phase A of a step needs nothing thread 0 does
    /// between steps, so it starts at once; thread 0 says after it whether the epoch
    /// goes on.
    fn helper(&self, k: usize, steps: usize) {
        let _poison = PoisonOnPanic(&self.team);
        for step in 0..steps {
            let batch = self.batch(step);
            self.list_block(k, batch);
            self.team.wait();
            if self.team.stop.load(Ordering::Relaxed) {
                return;
            }
            self.phase_a(k, batch);
            self.team.wait();
            self.phase_b(k, batch);
            self.team.wait();
            self.team.wait();
            if let Some(s) = self.team.update() {
                self.backward(k, batch.1, &s);
            }
            self.team.wait();
        }
    }
}

/// Thread 0's share of the epoch besides its phases: the step's serial work.
struct Lead<'l> {
    opt: &'l mut crate::nn::Optimizer,
    rng: &'l mut crate::nn::Rng,
    diverged: &'l mut Option<Divergence>,
    recorder: &'l mut Option<crate::diagnostics::Recorder>,
    progress: &'l mut dyn Progress,
    stop: &'l AtomicBool,
}

impl Shared<'_, '_> {
    /// Thread 0's epoch: publish each batch, run its phases, sum the step's loss,
    /// update the layers above the first; then release the helpers. (loss sum,
    /// correct count), or None if the run diverged or was stopped.
    fn lead(
        &self,
        mut lead: Lead,
        epoch: usize,
        steps: usize,
        per_epoch: usize,
    ) -> Option<(f64, usize)> {
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let mut outcome = None;
        for step in 0..steps {
            let batch = self.batch(step);
            if lead.stop.load(Ordering::Relaxed) || lead.diverged.is_some() {
                // The helpers are listing this step's blocks: release them.
                self.team.stop.store(true, Ordering::Relaxed);
                self.team.wait();
                break;
            }
            let n = batch.1;
            self.sample_masks(lead.rng, n);
            self.list_block(0, batch);
            self.team.wait();
            self.phase_a(0, batch);
            self.team.wait();
            self.phase_b(0, batch);
            self.team.wait();
            let (l, c) = self.workers.iter().fold((0.0, 0), |(l, c), w| {
                let r = read(w).result;
                (l + r.0, c + r.1)
            });
            let s = l.is_finite().then(|| lead.opt.begin_step());
            self.team.set_update(s);
            self.team.wait();
            if let Some(s) = &s {
                self.backward(0, n, s);
            }
            self.team.wait();
            let Some(s) = s else {
                *lead.diverged = Some(Divergence {
                    epoch,
                    step: step + 1,
                    loss: format!("{}", l / n as f64),
                });
                continue;
            };
            // The helpers already run the next step's phase A meanwhile.
            self.finish_step(&mut lead, &s, (epoch - 1) * per_epoch + step + 1);
            (loss_sum, correct) = (loss_sum + l, correct + c);
            lead.progress.step(step + 1);
            if step + 1 == steps {
                outcome = Some((loss_sum, correct));
            }
        }
        outcome
    }

    /// Dropout masks for every worker's rows of a batch of `n`, in worker order from
    /// the run's generator, as one thread draws them.
    fn sample_masks(&self, rng: &mut crate::nn::Rng, n: usize) {
        let p = self.cfg.dropout;
        if p <= 0.0 {
            return;
        }
        let rows = self.rows(n);
        let model = read(&self.model);
        let widths = &model.arch.sizes[1..model.arch.sizes.len() - 1];
        for (k, w) in self.workers.iter().enumerate() {
            let m = worker_rows(k, rows, n).len();
            write(w).ws.sample_dropout(rng, p, m, widths);
        }
    }

    /// After the phases: sum and update the layers above the first; give the
    /// diagnostics the step's gradient when they sample it.
    fn finish_step(&self, lead: &mut Lead, s: &StepScalars, global_step: usize) {
        let mut model = write(&self.model);
        let mut w0 = write(&self.workers[0]);
        let rest = rest_start(&model);
        for w in &self.workers[1..] {
            for (a, &b) in w0.grads[rest..].iter_mut().zip(&read(w).grads[rest..]) {
                *a += b;
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

impl Trainer<'_> {
    /// The steps of an epoch whose batches all split (see `epoch_splits`), one thread
    /// per part and worker: (loss sum, correct count), or None if it diverged or was
    /// stopped.
    pub(super) fn team_steps(
        &mut self,
        epoch: usize,
        steps: usize,
        progress: &mut dyn Progress,
        stop: &AtomicBool,
    ) -> Option<(f64, usize)> {
        self.load_parts();
        let (lists, per_epoch) = (self.lists(), self.steps_per_epoch());
        let Trainer {
            cfg,
            model,
            opt,
            rng,
            diverged,
            recorder,
            split,
            workers,
            parts,
            blocks,
            order,
            ..
        } = self;
        let out = model.arch.sizes[1];
        let shared = Shared {
            team: Team::new(workers.len()),
            parts: parts.iter_mut().map(RwLock::new).collect(),
            blocks: blocks.iter_mut().map(RwLock::new).collect(),
            workers: workers.iter_mut().map(RwLock::new).collect(),
            model: RwLock::new(model),
            order,
            lists,
            data: &split.train,
            cfg,
            out,
        };
        let lead = Lead {
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
                scope.spawn(move || shared.helper(k, steps));
            }
            let _poison = PoisonOnPanic(&shared.team);
            shared.lead(lead, epoch, steps, per_epoch)
        })
    }
}
