//! What a trainer measured: each epoch's figures and, at the end, the final
//! evaluation. The serialised run record is built from these in the store layer.

use super::Trainer;
use crate::eval::{Evaluation, Metrics};

/// One epoch's figures. Train figures are running means over the epoch's batches (in
/// training mode, with dropout); val and test are full passes after the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochFigures {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss and accuracy over the epoch's batches.
    pub train: Metrics,
    /// The held-out validation split after the epoch (only with `val_split`).
    pub val: Option<Metrics>,
    /// The test set after the epoch.
    pub test: Metrics,
    /// Seconds spent training this epoch (evaluation excluded).
    pub seconds: f64,
}

/// The final evaluation of a run that did not diverge.
pub struct FinalFigures {
    /// The whole training set, in evaluation mode.
    pub train: Metrics,
    /// The held-out validation split (only with `val_split`).
    pub val: Option<Metrics>,
    /// The test set, with its confusion matrix and per-class counts.
    pub test: Evaluation,
    /// Test images the model got wrong: (index, true class, predicted class).
    pub mistakes: Vec<(usize, usize, usize)>,
}

impl Trainer<'_> {
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
}
