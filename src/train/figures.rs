//! What a trainer measured: each epoch's figures and, at the end, the final
//! evaluation. The serialised run record is built from these in the store layer.

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
