//! A worker's share of a training step, and the step's pieces every strategy
//! shares: dropout masks in worker order, the forward and backward pass of a
//! worker's rows, the loss check and the gradient sums in worker order.
//!
//! Shapes: a batch of n rows is split into workers of `rows = ceil(n / workers)`
//! rows (the last may be short or empty); gradients are shaped like the parameters.

use super::Divergence;
use crate::config::TrainConfig;
use crate::data::{batch, Dataset, Label};
use crate::diagnostics::Recorder;
use crate::nn::{InputBuf, Loss, Mlp, Optimizer, Rng, TrainInput, Workspace};

/// One slice of each batch: its own buffers and gradients, so threads never share writes.
pub(super) struct Worker {
    pub(super) ws: Workspace,
    /// Where its rows' first-layer input is built.
    pub(super) input: InputBuf,
    pub(super) grads: Vec<f32>,
    /// Labels of the worker's rows.
    pub(super) y: Vec<Label>,
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

    /// The labels of rows `pick` of `data`, and how many; None (with no gradient
    /// and no loss) when the worker has no rows in this batch (it still meets the
    /// other workers where the batch norms at or above layer `from` do, see
    /// [`Mlp::sit_out`]).
    fn labels(&mut self, model: &Mlp, data: &Dataset, pick: &[u32], from: usize) -> Option<usize> {
        let m = pick.len();
        if m == 0 {
            self.grads.fill(0.0);
            self.result = (0.0, 0);
            model.sit_out(&mut self.ws, from, &mut self.grads);
            return None;
        }
        batch::labels(data, pick, &mut self.y[..m]);
        Some(m)
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
        let Some(m) = self.labels(model, data, pick, 1) else {
            return;
        };
        let source = crate::eval::byte_rows(data);
        let x = self
            .input
            .train(source, pick, |x| batch::images(data, pick, x));
        self.result = pass(
            model,
            &mut self.ws,
            (Some(x), 1),
            &self.y[..m],
            n,
            loss,
            &mut self.grads,
        );
    }

    /// Step 2 for the worker's rows `pick` of a batch of `n` rows of `data`, from
    /// layer `from`, whose input for them is already in the workspace.
    pub(super) fn rows_above(
        &mut self,
        model: &Mlp,
        data: &crate::data::Dataset,
        (pick, from): (&[u32], usize),
        n: usize,
        loss: Loss,
    ) {
        let Some(m) = self.labels(model, data, pick, from) else {
            return;
        };
        self.result = pass(
            model,
            &mut self.ws,
            (None, from),
            &self.y[..m],
            n,
            loss,
            &mut self.grads,
        );
    }
}

/// Step 2 for `y.len()` rows of a batch of `n`: forward and back from `x`, or from
/// layer `from` (its input already in `ws`) when `x` is None; (loss sum, correct
/// count).
fn pass(
    model: &Mlp,
    ws: &mut Workspace,
    (x, from): (Option<TrainInput>, usize),
    y: &[Label],
    n: usize,
    loss: Loss,
    grads: &mut [f32],
) -> (f64, usize) {
    let trace = match x {
        Some(x) => model.forward_train(ws, x),
        None => model.forward_train_above(ws, from, y.len()),
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
pub(super) fn totals(results: impl Iterator<Item = (f64, usize)>) -> (f64, usize) {
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
pub(super) fn score(out: &[f32], y: &[Label], loss: Loss) -> (f64, usize) {
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

    /// Whether batch `step` is skipped (see [`crate::nn::Arch::trains_on`]).
    pub(super) fn skips(&self, step: usize) -> bool {
        !self.model.arch.trains_on(self.batch(step).1)
    }

    /// Images the epoch trains on: all but those of skipped batches.
    pub(super) fn trained_images(&self) -> usize {
        let skipped: usize = (0..self.per_epoch())
            .filter(|&s| self.skips(s))
            .map(|s| self.batch(s).1)
            .sum();
        self.order.len() - skipped
    }

    /// The 1-based number of step `step` (0-based) of this epoch over the whole run.
    pub(super) fn global_step(&self, step: usize) -> usize {
        (self.epoch - 1) * self.per_epoch() + step + 1
    }
}
