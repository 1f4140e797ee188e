//! The training loop: epochs of shuffled mini-batches, validation after each epoch,
//! divergence detection, and the figures each epoch measured.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::Split;
use crate::diagnostics::Recorder;
use crate::eval::{Evaluation, Evaluator};
use crate::nn::{Mlp, Optimizer, Rng};
use step::Crew;
use worker::Run;

mod figures;
mod split_layer;
mod split_norm;
mod step;
mod team;
mod worker;

pub use figures::{EpochFigures, FinalFigures};

/// Where and how a run diverged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based step within the epoch.
    pub step: usize,
    /// The non-finite loss, as text ("NaN", "inf").
    pub loss: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "training diverged at epoch {}, step {}: loss is {}; try a lower --lr, another --init, or a loss that matches the output",
            self.epoch, self.step, self.loss
        )
    }
}

/// Per-step callbacks, for progress bars (Send: with `--threads` > 1 the steps run
/// on the run's own threads).
pub trait Progress: Send {
    /// An epoch with `steps` steps begins.
    fn epoch_start(&mut self, _epoch: usize, _steps: usize) {}
    /// `done` steps of the current epoch are finished.
    fn step(&mut self, _done: usize) {}
    /// An epoch ended with these figures.
    fn epoch_end(&mut self, _stats: &EpochFigures) {}
}

/// Progress that shows nothing.
pub struct Silent;
impl Progress for Silent {}

/// Test images a model got wrong: (index, true class, predicted class).
type Mistakes = Vec<(usize, usize, usize)>;

/// Training state: everything needed to continue a run exactly where it stopped.
pub struct Trainer<'a> {
    /// The run's settings.
    pub cfg: TrainConfig,
    /// The network being trained.
    pub model: Mlp,
    /// Optimiser and its moments.
    pub opt: Optimizer,
    /// The run's only source of randomness.
    pub rng: Rng,
    /// Completed epochs.
    pub history: Vec<EpochFigures>,
    /// Set when a step produced a non-finite loss.
    pub diverged: Option<Divergence>,
    /// Diagnostics collector (None with `diagnostics = false`).
    pub recorder: Option<Recorder>,
    split: &'a Split,
    /// The workers and the strategies that run the steps.
    crew: Crew,
    /// The last epoch's test evaluation and mistakes, for the final figures.
    last_test: Option<(usize, Evaluation, Mistakes)>,
    order: Vec<u32>,
}

impl<'a> Trainer<'a> {
    /// A fresh run: initialises the model from the seed.
    pub fn new(cfg: TrainConfig, split: &'a Split) -> Self {
        let mut rng = Rng::seed_from_u64(cfg.seed);
        let model = Mlp::new(cfg.arch(), cfg.init, &mut rng);
        Self::with_state(cfg, split, model, rng)
    }

    /// A run starting from given parameters and RNG state.
    pub fn with_state(cfg: TrainConfig, split: &'a Split, model: Mlp, rng: Rng) -> Self {
        let opt = Optimizer::new(cfg.optim(), model.params.len());
        let recorder = cfg.diagnostics.then(|| Recorder::new(&model, &split.train));
        Trainer {
            recorder,
            crew: Crew::new(&model, &cfg),
            last_test: None,
            order: (0..split.train.len() as u32).collect(),
            cfg,
            model,
            opt,
            rng,
            history: Vec::new(),
            diverged: None,
            split,
        }
    }

    /// The data this run trains, validates and tests on.
    pub fn split(&self) -> &'a Split {
        self.split
    }

    /// Choose the first layer's kernel for training steps (default: by each batch's
    /// share of non-zero inputs); the bench times the dense one as its reference.
    pub fn set_first_layer(&mut self, policy: crate::nn::FirstLayer) {
        self.crew.set_first_layer(policy);
    }

    /// Number of optimiser steps per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.split.train.len().div_ceil(self.cfg.batch_size)
    }

    /// The crew and what its steps borrow of the run, for epoch `epoch`.
    fn parts(&mut self, epoch: usize) -> (&mut Crew, Run<'_>) {
        let run = Run {
            cfg: &self.cfg,
            data: &self.split.train,
            order: &self.order,
            model: &mut self.model,
            opt: &mut self.opt,
            rng: &mut self.rng,
            recorder: &mut self.recorder,
            diverged: &mut self.diverged,
            epoch,
        };
        (&mut self.crew, run)
    }

    /// A new random order of the training images (Fisher-Yates from the run's RNG,
    /// from the identity order each epoch).
    fn shuffle(&mut self) {
        for (i, v) in self.order.iter_mut().enumerate() {
            *v = i as u32;
        }
        for i in (1..self.order.len()).rev() {
            let j = self.rng.random_range(0..=i);
            self.order.swap(i, j);
        }
    }

    /// Train one epoch and validate; `None` if the run diverged (see `self.diverged`)
    /// or `stop` was raised (the epoch is then not counted).
    pub fn run_epoch(
        &mut self,
        progress: &mut dyn Progress,
        stop: &AtomicBool,
    ) -> Option<EpochFigures> {
        let epoch = self.history.len() + 1;
        let steps = self.steps_per_epoch();
        if self.cfg.shuffle {
            self.shuffle();
        }
        progress.epoch_start(epoch, steps);
        let t0 = Instant::now();
        let (crew, mut run) = self.parts(epoch);
        // A skipped batch (see `Run::skips`) is not in the epoch's train figures.
        let n_train = run.trained_images().max(1) as f64;
        let (loss_sum, correct) = crew.epoch(&mut run, progress, stop)?;
        let seconds = t0.elapsed().as_secs_f64();
        if let Some(r) = &mut self.recorder {
            r.end_epoch(&self.model, epoch);
        }
        // The test pass is kept (with its mistakes) for the run's final figures: the
        // model does not change before them.
        let (test_eval, wrong) = self.test_pass();
        let val = self.split.val.is_some().then(|| self.validate().metrics);
        let test = test_eval.metrics;
        self.last_test = Some((epoch, test_eval, wrong));
        let stats = EpochFigures {
            epoch,
            train: crate::eval::Metrics {
                loss: loss_sum / n_train,
                acc: correct as f64 / n_train,
            },
            val,
            test,
            seconds,
        };
        progress.epoch_end(&stats);
        self.history.push(stats.clone());
        Some(stats)
    }

    /// Train the remaining epochs, calling `after` with the trainer after each one;
    /// stops early on divergence, on `stop`, or on the first error `after` returns.
    pub fn run_remaining<E>(
        &mut self,
        progress: &mut dyn Progress,
        stop: &AtomicBool,
        mut after: impl FnMut(&Self) -> Result<(), E>,
    ) -> Result<(), E> {
        while self.history.len() < self.cfg.epochs {
            if self.run_epoch(progress, stop).is_none() {
                break;
            }
            after(self)?;
        }
        Ok(())
    }

    /// Evaluate on the validation set (the held-out part, or the test set without
    /// one), on the run's threads. The evaluation buffers live only for the pass, so runs side by side hold
    /// only what training needs.
    pub fn validate(&mut self) -> Evaluation {
        let val = self.split.validation();
        Evaluator::new(&self.model, self.cfg.threads).run(
            &self.model,
            val,
            self.cfg.loss,
            |_, _| {},
        )
    }

    /// Evaluate on the test set.
    pub fn evaluate_test(&mut self) -> Evaluation {
        Evaluator::new(&self.model, self.cfg.threads).run(
            &self.model,
            &self.split.test,
            self.cfg.loss,
            |_, _| {},
        )
    }

    /// Evaluate on the test set, listing the mistakes as (index, true, predicted).
    fn test_pass(&mut self) -> (Evaluation, Mistakes) {
        let mut wrong = Vec::new();
        let labels = &self.split.test.labels;
        let test = Evaluator::new(&self.model, self.cfg.threads).run(
            &self.model,
            &self.split.test,
            self.cfg.loss,
            |i, p| {
                if p != labels[i] as usize {
                    wrong.push((i, labels[i] as usize, p));
                }
            },
        );
        (test, wrong)
    }

    /// Evaluate the model as it stands; `None` if the run diverged or trained no epoch.
    pub fn final_figures(&mut self) -> Option<FinalFigures> {
        let last = self.history.last()?.clone();
        if self.diverged.is_some() {
            return None;
        }
        let train = self.evaluate_train().metrics;
        // The last epoch's test pass saw this very model.
        let (test, mistakes) = match self.last_test.take() {
            Some((epoch, test, wrong)) if epoch == self.history.len() => (test, wrong),
            _ => self.test_pass(),
        };
        Some(FinalFigures {
            train,
            // The last epoch validated this very model: its figures are the final ones.
            val: last.val,
            test,
            mistakes,
        })
    }

    /// Evaluate on the whole training set, in evaluation mode.
    pub fn evaluate_train(&mut self) -> Evaluation {
        Evaluator::new(&self.model, self.cfg.threads).run(
            &self.model,
            &self.split.train,
            self.cfg.loss,
            |_, _| {},
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Dataset, DatasetName, PIXELS};
    use crate::nn::Workspace;

    fn split(n: usize) -> Split {
        // Deterministic pseudo-images: enough structure for non-trivial gradients.
        let images = (0..n * PIXELS)
            .map(|i| ((i * 7919 + i / PIXELS * 31) % 251) as u8)
            .collect();
        let labels = (0..n).map(|i| (i * 3 % 10) as crate::data::Label).collect();
        let d = Dataset::new(images, labels);
        Split {
            name: DatasetName::Mnist,
            train: d.clone(),
            test: d,
            val: None,
            dir: Default::default(),
            sha256: Default::default(),
            shape: DatasetName::Mnist.shape(),
        }
    }

    /// Whether the trainer's next epoch splits the first layer across threads.
    fn epoch_splits(tr: &mut Trainer) -> bool {
        let (crew, run) = tr.parts(1);
        crew.strategy(&run) == step::Strategy::Team
    }

    /// Gradients of one batch with `threads` workers.
    fn one_batch(threads: usize, s: &Split) -> (Vec<f32>, f64, usize) {
        let cfg = TrainConfig {
            threads,
            diagnostics: false,
            ..Default::default()
        };
        let mut tr = Trainer::new(cfg, s);
        let n = tr.cfg.batch_size;
        let (crew, mut run) = tr.parts(1);
        let (l, c) = crew.batch_gradients(&mut run, (0, n));
        (crew.workers[0].grads.clone(), l, c)
    }

    #[test]
    fn two_threads_give_the_gradients_of_one() {
        let s = split(64);
        let (g1, l1, c1) = one_batch(1, &s);
        let (g2, l2, c2) = one_batch(2, &s);
        assert_eq!(c1, c2);
        assert!(((l1 - l2) / l1).abs() < 1e-6, "loss {l1} vs {l2}");
        // Only the order of summation differs: agree to 1e-6 of each tensor's norm
        // (an element-wise relative bound would fail on sums that cancel to near 0).
        let arch = TrainConfig::default().arch();
        for (l, (w, b)) in arch.offsets().into_iter().enumerate() {
            let end = arch.offsets().get(l + 1).map_or(g1.len(), |o| o.0);
            for (what, r) in [("weight", w..b), ("bias", b..end)] {
                let norm = g1[r.clone()].iter().map(|v| v * v).sum::<f32>().sqrt();
                let diff = g1[r.clone()]
                    .iter()
                    .zip(&g2[r.clone()])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
                    .sqrt();
                assert!(norm > 0.0, "layer {l} {what}: zero gradient");
                assert!(
                    diff <= 1e-6 * norm,
                    "layer {l} {what}: {diff} vs norm {norm}"
                );
            }
        }
    }

    /// Mostly-zero pseudo-images (about 15% non-zero), so the first layer runs sparse.
    fn sparse_split(n: usize) -> Split {
        let mut s = split(n);
        let images = s
            .train
            .images()
            .iter()
            .enumerate()
            .map(|(i, &b)| if (i * 13 + i / 7) % 20 < 3 { b } else { 0 })
            .collect();
        let d = Dataset::new(images, s.train.labels.clone());
        (s.train, s.test) = (d.clone(), d);
        s
    }

    /// Two threads split the first layer by outputs: after one step its weights and
    /// moments are bit for bit one thread's (the same sums in the same order), the
    /// layers above agree to rounding; over an epoch of ten full batches and one of 40
    /// the loss and the sampled gradient norms agree closely.
    #[test]
    fn two_threads_split_the_first_layer_exactly() {
        // The split needs the sparse kernels (AVX2+FMA), whatever ACTLAB_SIMD says.
        let _tier = crate::simd::force(crate::simd::detected());
        fn run(s: &Split, threads: usize) -> (Vec<f32>, Vec<f32>, EpochFigures, Trainer<'_>) {
            let cfg = TrainConfig {
                threads,
                epochs: 1,
                ..Default::default()
            };
            let mut tr = Trainer::new(cfg, s);
            assert_eq!(epoch_splits(&mut tr), threads > 1, "{threads} threads");
            let stats = tr.run_epoch(&mut Silent, &AtomicBool::new(false));
            assert!(!tr.crew.split.live, "the epoch wrote the parts back");
            (
                tr.model.params.clone(),
                tr.opt.v.clone(),
                stats.expect("epoch"),
                tr,
            )
        }
        let s = sparse_split(64);
        let ((p1, v1, ..), (p2, v2, ..)) = (run(&s, 1), run(&s, 2));
        let first =
            split_layer::rest_start(&Mlp::from_params(TrainConfig::default().arch(), p1.clone()));
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same(&p1[..first], &p2[..first]), "first-layer weights");
        assert!(same(&v1[..first], &v2[..first]), "second moments");
        let close = |a: &[f32], b: &[f32], tol: f32| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= tol * (1.0 + x.abs()))
        };
        assert!(close(&p1[first..], &p2[first..], 1e-6));
        assert!(
            !same(&p1[first..], &p2[first..]),
            "the layers above are summed by parts"
        );
        let s = sparse_split(680);
        let ((p1, _, a, one), (p2, _, b, two)) = (run(&s, 1), run(&s, 2));
        assert!((a.train.loss - b.train.loss).abs() < 1e-5, "{a:?} vs {b:?}");
        assert!(close(&p1, &p2, 1e-4));
        let norms = |t: &Trainer| t.recorder.as_ref().map(|r| r.diag.grad_norms.clone());
        let (na, nb) = (
            norms(&one).expect("diagnostics"),
            norms(&two).expect("diagnostics"),
        );
        assert!(!na.is_empty() && na.len() == nb.len());
        for (x, y) in na.iter().flatten().zip(nb.iter().flatten()) {
            assert!((x - y).abs() <= 1e-4 * x.abs().max(1e-3), "{x} vs {y}");
        }
    }

    /// Batch norm on two threads splits the first layer (the parts run the norm after
    /// it, the workers meet for the one above), not the pool; after one step the first
    /// norm's running statistics are one thread's bit for bit (the same sums in the
    /// same order), the rest agrees to rounding; over an epoch of ten full batches
    /// and one of 40 the loss, parameters and statistics agree closely.
    #[test]
    fn batch_norm_on_two_threads_splits_the_first_layer() {
        // The split needs the sparse kernels (AVX2+FMA), whatever ACTLAB_SIMD says.
        let _tier = crate::simd::force(crate::simd::detected());
        fn run(s: &Split, threads: usize) -> (Trainer<'_>, EpochFigures) {
            let cfg = TrainConfig {
                threads,
                epochs: 1,
                norm: crate::nn::spec::Norm::Batch,
                diagnostics: false,
                ..Default::default()
            };
            let mut tr = Trainer::new(cfg, s);
            let (crew, run) = tr.parts(1);
            let want = [step::Strategy::Serial, step::Strategy::Team][usize::from(threads > 1)];
            assert_eq!(crew.strategy(&run), want, "{threads} threads");
            let figures = tr.run_epoch(&mut Silent, &AtomicBool::new(false));
            (tr, figures.expect("epoch"))
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let close = |a: &[f32], b: &[f32], tol: f32| {
            a.len() == b.len()
                && (a.iter().zip(b)).all(|(x, y)| (x - y).abs() <= tol * (1.0 + x.abs()))
        };
        let s = sparse_split(64);
        let ((one, a), (two, b)) = (run(&s, 1), run(&s, 2));
        let (s1, s2) = (&one.model.stats, &two.model.stats);
        assert_eq!(s1.len(), 2);
        assert_eq!(bits(&s1[0].mean), bits(&s2[0].mean), "norm1 running mean");
        assert_eq!(bits(&s1[0].var), bits(&s2[0].var), "norm1 running var");
        assert!(close(&s1[1].mean, &s2[1].mean, 1e-6) && close(&s1[1].var, &s2[1].var, 1e-6));
        assert!(s1.iter().chain(s2).all(|r| r.batches_tracked == 1));
        assert!(close(&one.model.params, &two.model.params, 1e-6));
        assert!((a.train.loss - b.train.loss).abs() < 1e-6, "{a:?} vs {b:?}");
        let s = sparse_split(680);
        let ((one, a), (two, b)) = (run(&s, 1), run(&s, 2));
        assert!((a.train.loss - b.train.loss).abs() < 1e-5, "{a:?} vs {b:?}");
        assert!(close(&one.model.params, &two.model.params, 1e-4));
        for (r1, r2) in one.model.stats.iter().zip(&two.model.stats) {
            assert!(close(&r1.mean, &r2.mean, 1e-4) && close(&r1.var, &r2.var, 1e-4));
            assert_eq!((r1.batches_tracked, r2.batches_tracked), (11, 11));
        }
    }

    /// A split epoch that diverges records it and ends; one asked to stop ends
    /// uncounted (neither waits forever at a barrier).
    #[test]
    fn a_split_epoch_diverges_and_stops_cleanly() {
        // The split needs the sparse kernels (AVX2+FMA), whatever ACTLAB_SIMD says.
        let _tier = crate::simd::force(crate::simd::detected());
        let s = sparse_split(640);
        let cfg = TrainConfig {
            threads: 2,
            lr: 1e30,
            diagnostics: false,
            ..Default::default()
        };
        let mut tr = Trainer::new(cfg.clone(), &s);
        assert!(epoch_splits(&mut tr));
        assert!(tr.run_epoch(&mut Silent, &AtomicBool::new(false)).is_none());
        let d = tr.diverged.clone().expect("diverged");
        assert!(d.step > 1 && d.step <= 10, "{d:?}");
        let mut tr = Trainer::new(TrainConfig { lr: 1e-3, ..cfg }, &s);
        assert!(tr.run_epoch(&mut Silent, &AtomicBool::new(true)).is_none());
        assert!(tr.diverged.is_none() && tr.history.is_empty());
    }

    /// A thread of a split epoch that panics ends the epoch with a panic on the
    /// calling thread (not a wait forever at the next barrier).
    /// The split needs the sparse kernels (AVX2+FMA): this thread runs at the CPU's
    /// own tier whatever ACTLAB_SIMD says; a CPU without them fails the test, saying so.
    #[test]
    #[should_panic(expected = "another thread of this run panicked")]
    #[cfg_attr(
        not(target_arch = "x86_64"),
        ignore = "the split needs x86-64's sparse kernels"
    )]
    fn a_panicking_helper_thread_is_a_panic_not_a_hang() {
        crate::simd::with_tier(crate::simd::detected(), || {
            let s = sparse_split(128);
            let cfg = TrainConfig {
                threads: 2,
                diagnostics: false,
                ..Default::default()
            };
            let mut tr = Trainer::new(cfg, &s);
            assert!(
                epoch_splits(&mut tr),
                "the split first layer needs AVX2+FMA"
            );
            // Too small for its 32 rows: the helper's phase B panics.
            tr.crew.workers[1].ws = Workspace::new(&tr.model, 1, true);
            tr.run_epoch(&mut Silent, &AtomicBool::new(false));
        })
    }

    #[test]
    #[should_panic(expected = "rows for a workspace of 1")]
    fn a_panicking_worker_is_a_panic_not_a_diverged_run() {
        let s = split(64);
        let cfg = TrainConfig {
            threads: 2,
            diagnostics: false,
            ..Default::default()
        };
        let mut tr = Trainer::new(cfg, &s);
        // A workspace too small for its 32 rows: the second worker's forward pass panics.
        tr.crew.workers[1].ws = Workspace::new(&tr.model, 1, true);
        let (crew, mut run) = tr.parts(1);
        let (l, _) = crew.batch_gradients(&mut run, (0, 64));
        eprintln!("returned a loss of {l} instead of panicking");
    }
}
