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

/// Reusable buffers for evaluating one model architecture, on one or more threads.
pub struct Evaluator {
    /// One per thread: each evaluates its own run of whole batches.
    lanes: Vec<Lane>,
}

/// One thread's buffers.
struct Lane {
    ws: Workspace,
    input: InputBuf,
    /// The model's first layer reads dense rows only (a policy never overrides it).
    dense: bool,
    /// The rows of the current batch.
    pick: Vec<u32>,
}

/// What one lane found: each batch's loss sum (in batch order), the predicted class
/// of each image, and the confusion counts.
struct Tally<'p> {
    sums: &'p mut [f64],
    predicted: &'p mut [u32],
    confusion: Vec<Vec<u32>>,
}

impl Evaluator {
    /// Buffers for `model`'s architecture, for `threads` threads (at least one, at
    /// most the cores: more would only hold more buffers, the figures are the same).
    pub fn new(model: &Mlp, threads: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_lanes(model, threads.clamp(1, cores))
    }

    /// Buffers for exactly `lanes` threads (at least one).
    fn with_lanes(model: &Mlp, lanes: usize) -> Self {
        let lanes = (0..lanes.max(1))
            .map(|_| Lane {
                ws: Workspace::new(model, EVAL_BATCH, false),
                input: model.input_buf(),
                dense: model.dense_input(),
                pick: Vec::with_capacity(EVAL_BATCH),
            })
            .collect();
        Evaluator { lanes }
    }

    /// The same, with the first layer's kernel chosen (default: by each batch).
    pub fn with_first_layer(mut self, policy: crate::nn::FirstLayer) -> Self {
        for lane in self.lanes.iter_mut().filter(|l| !l.dense) {
            lane.input.policy = policy;
        }
        self
    }

    /// Evaluate `model` on all of `data`, optionally calling `each` with every
    /// image's index and predicted class, in image order. The threads take runs of
    /// whole batches and each batch's loss is summed alone, then the sums in batch
    /// order: the figures are the same bits on any number of threads.
    pub fn run(
        &mut self,
        model: &Mlp,
        data: &Dataset,
        loss: Loss,
        mut each: impl FnMut(usize, usize),
    ) -> Evaluation {
        let c = model.arch.classes();
        let batches = data.len().div_ceil(EVAL_BATCH);
        let (mut sums, mut predicted) = (vec![0.0f64; batches], vec![0u32; data.len()]);
        let lanes = self.lanes.len().min(batches).max(1);
        let mut tallies = split(&mut sums, &mut predicted, lanes, c);
        if let Some(((start, tally), rest)) = tallies.split_first_mut() {
            let (mine, others) = self.lanes.split_at_mut(1);
            std::thread::scope(|scope| {
                for (lane, (start, tally)) in others.iter_mut().zip(rest) {
                    scope.spawn(move || lane.run(model, data, loss, *start, tally));
                }
                mine[0].run(model, data, loss, *start, tally);
            });
        }
        let mut confusion = vec![vec![0u32; c]; c];
        for (_, t) in &tallies {
            for (row, add) in confusion.iter_mut().zip(&t.confusion) {
                row.iter_mut().zip(add).for_each(|(a, b)| *a += b);
            }
        }
        drop(tallies);
        for (i, &p) in predicted.iter().enumerate() {
            each(i, p as usize);
        }
        let total: f64 = sums.iter().fold(0.0, |t, &s| t + s);
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

/// Each of `lanes` lanes' first image and tally: runs of whole batches, as even as
/// they come, over the per-batch `sums` and per-image `predicted`.
fn split<'p>(
    mut sums: &'p mut [f64],
    mut predicted: &'p mut [u32],
    lanes: usize,
    classes: usize,
) -> Vec<(usize, Tally<'p>)> {
    let batches = sums.len();
    (0..lanes)
        .map(|k| {
            let first = k * batches / lanes;
            let take = (k + 1) * batches / lanes - first;
            let images = (take * EVAL_BATCH).min(predicted.len());
            let (s, rest) = std::mem::take(&mut sums).split_at_mut(take);
            let (p, more) = std::mem::take(&mut predicted).split_at_mut(images);
            (sums, predicted) = (rest, more);
            let tally = Tally {
                sums: s,
                predicted: p,
                confusion: vec![vec![0u32; classes]; classes],
            };
            (first * EVAL_BATCH, tally)
        })
        .collect()
}

impl Lane {
    /// Evaluate the images from `start` on, a batch per entry of `tally.sums`.
    fn run(&mut self, model: &Mlp, data: &Dataset, loss: Loss, start: usize, tally: &mut Tally) {
        let c = model.arch.classes();
        let mut start = start;
        let mut done = 0;
        for sum in tally.sums.iter_mut() {
            let n = EVAL_BATCH.min(data.len() - start);
            self.pick.clear();
            self.pick.extend(start as u32..(start + n) as u32);
            let labels = &data.labels[start..start + n];
            let dense = |x: &mut [f32]| batch::images_range(data, start, x);
            let x = self.input.eval(byte_rows(data), &self.pick, dense);
            let out = model.forward_eval(&mut self.ws, x);
            *sum = loss.sum(out, labels, c);
            let predicted = &mut tally.predicted[done..done + n];
            for ((row, &t), p) in out.chunks_exact(c).zip(labels).zip(predicted) {
                *p = argmax(row) as u32;
                tally.confusion[t as usize][*p as usize] += 1;
            }
            (start, done) = (start + n, done + n);
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

/// Evaluate `model` on `data` with `threads` threads (a convenience over [`Evaluator`]).
pub fn evaluate(model: &Mlp, data: &Dataset, loss: Loss, threads: usize) -> Evaluation {
    Evaluator::new(model, threads).run(model, data, loss, |_, _| {})
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

    /// Every figure and every prediction are the same bits on 1, 2 and 3 threads,
    /// over batches that do not divide evenly (700 images: 256, 256, 188).
    #[test]
    fn any_number_of_threads_gives_the_same_figures() {
        use crate::config::TrainConfig;
        use rand::SeedableRng;
        let n = 700;
        let images = (0..n * crate::data::PIXELS)
            .map(|i| ((i * 7919 + i / 97 * 31) % 251) as u8)
            .collect();
        let labels = (0..n).map(|i| (i * 7 % 10) as crate::data::Label).collect();
        let data = Dataset::new(images, labels);
        let cfg = TrainConfig::default();
        let model = Mlp::new(cfg.arch(), cfg.init, &mut crate::nn::Rng::seed_from_u64(5));
        let runs: Vec<_> = (1..=3)
            .map(|lanes| {
                let mut seen = Vec::new();
                let e =
                    Evaluator::with_lanes(&model, lanes)
                        .run(&model, &data, cfg.loss, |i, p| seen.push((i, p)));
                (e, seen)
            })
            .collect();
        let (one, seen) = &runs[0];
        assert_eq!(seen.len(), n);
        assert!(seen.iter().enumerate().all(|(k, &(i, _))| k == i));
        assert!(one.metrics.loss > 0.0 && one.confusion.iter().flatten().sum::<u32>() == n as u32);
        for (e, s) in &runs[1..] {
            assert_eq!(e.metrics.loss.to_bits(), one.metrics.loss.to_bits());
            assert_eq!((e, s), (one, seen));
        }
    }
}
