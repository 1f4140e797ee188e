//! Evaluation: loss, accuracy and confusion matrix of a model on a dataset (no dropout).

use serde::{Deserialize, Serialize};

use crate::data::{batch, Dataset, Rows};
use crate::nn::sparse::DENSE_ABOVE;
use crate::nn::{ByteRows, InputBuf, Loss, Mlp, RowSource, Workspace};

/// Rows per evaluation batch: large enough for efficient matrix products, small enough for cache.
const EVAL_BATCH: usize = 256;

/// The most classes whose K x K confusion matrix is kept in records, drawn in reports
/// and printed by `eval`: at 1,000 classes it would be a million cells per run (megabytes
/// of JSON, an unreadable chart). Above it per-class accuracy and the most confused
/// pairs still are kept and shown.
pub const CONFUSION_MAX_CLASSES: usize = 100;

/// Whether a `classes`-class confusion matrix is small enough to keep and show.
pub fn shows_confusion(classes: usize) -> bool {
    classes <= CONFUSION_MAX_CLASSES
}

/// Loss and accuracy over a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean loss per image.
    pub loss: f64,
    /// Share of images classified correctly, 0-1.
    pub acc: f64,
}

/// Metrics plus the confusion matrix (rows: true class, columns: predicted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Loss and accuracy.
    pub metrics: Metrics,
    /// counts[true][predicted].
    pub confusion: Vec<Vec<u32>>,
}

impl Evaluation {
    /// Accuracy of each true class (NaN-free: classes with no images get 0).
    pub fn per_class_acc(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let n: u32 = row.iter().sum();
                if n == 0 {
                    0.0
                } else {
                    row[c] as f64 / n as f64
                }
            })
            .collect()
    }

    /// Off-diagonal (true, predicted, count) triples, most frequent first.
    pub fn most_confused(&self, k: usize) -> Vec<(usize, usize, u32)> {
        let mut pairs: Vec<(usize, usize, u32)> = self
            .confusion
            .iter()
            .enumerate()
            .flat_map(|(t, row)| {
                row.iter()
                    .enumerate()
                    .filter(move |&(p, &c)| p != t && c > 0)
                    .map(move |(p, &c)| (t, p, c))
            })
            .collect();
        pairs.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        pairs.truncate(k);
        pairs
    }
}

/// Index of the largest value (first one on ties), as `argmax` does.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Reusable buffers for evaluating one model architecture.
pub struct Evaluator {
    ws: Workspace,
    input: InputBuf,
    /// The model's first layer reads dense rows only (a policy never overrides it).
    dense: bool,
    /// The rows of the current batch.
    pick: Vec<u32>,
}

impl Evaluator {
    /// Buffers for `model`'s architecture.
    pub fn new(model: &Mlp) -> Self {
        Evaluator {
            ws: Workspace::new(model, EVAL_BATCH, false),
            input: model.input_buf(),
            dense: model.dense_input(),
            pick: Vec::with_capacity(EVAL_BATCH),
        }
    }

    /// The same, with the first layer's kernel chosen (default: by each batch).
    pub fn with_first_layer(mut self, policy: crate::nn::FirstLayer) -> Self {
        if !self.dense {
            self.input.policy = policy;
        }
        self
    }

    /// Evaluate `model` on all of `data`, optionally calling `each` with every row's outputs.
    pub fn run(
        &mut self,
        model: &Mlp,
        data: &Dataset,
        loss: Loss,
        mut each: impl FnMut(usize, &[f32]),
    ) -> Evaluation {
        let c = model.arch.classes();
        let mut confusion = vec![vec![0u32; c]; c];
        let mut total = 0.0f64;
        let mut start = 0;
        while start < data.len() {
            let n = EVAL_BATCH.min(data.len() - start);
            self.pick.clear();
            self.pick.extend(start as u32..(start + n) as u32);
            let labels = &data.labels[start..start + n];
            let dense = |x: &mut [f32]| batch::images_range(data, start, x);
            let x = self.input.eval(byte_rows(data), &self.pick, dense);
            let out = model.forward_eval(&mut self.ws, x);
            total += loss.sum(out, labels, c);
            for (i, (row, &t)) in out.chunks_exact(c).zip(labels).enumerate() {
                confusion[t as usize][argmax(row)] += 1;
                each(start + i, row);
            }
            start += n;
        }
        let correct: u32 = (0..c).map(|i| confusion[i][i]).sum();
        let n = data.len().max(1) as f64;
        Evaluation {
            metrics: Metrics {
                loss: total / n,
                acc: correct as f64 / n,
            },
            confusion,
        }
    }
}

/// `data`'s rows as the first layer reads them: image bytes through the pixel table,
/// with their non-zero lists when `data` is mostly zeros (listed on first use, then
/// shared), or float features as they are.
pub fn byte_rows(data: &Dataset) -> RowSource<'_> {
    match data.rows() {
        Rows::Bytes(images) => RowSource::Bytes(ByteRows {
            images,
            lists: data.nonzero(DENSE_ABOVE).map(|z| z.lists()),
            width: data.width(),
            values: &batch::PIXEL_VALUES,
        }),
        Rows::Floats(_) => RowSource::Floats {
            width: data.width(),
        },
    }
}

/// Evaluate `model` on `data` (a convenience over [`Evaluator`]).
pub fn evaluate(model: &Mlp, data: &Dataset, loss: Loss) -> Evaluation {
    Evaluator::new(model).run(model, data, loss, |_, _| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_helpers() {
        let e = Evaluation {
            metrics: Metrics {
                loss: 0.0,
                acc: 0.0,
            },
            confusion: vec![vec![5, 1, 0], vec![3, 7, 0], vec![0, 0, 0]],
        };
        assert_eq!(e.per_class_acc(), vec![5.0 / 6.0, 0.7, 0.0]);
        assert_eq!(e.most_confused(5), vec![(1, 0, 3), (0, 1, 1)]);
        assert_eq!(argmax(&[0.1, 0.5, 0.5, -1.0]), 1);
    }
}
