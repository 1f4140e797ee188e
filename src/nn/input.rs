//! The first layer's input, as one explicit type per form, chosen once per batch by
//! the share of non-zero inputs.
//!
//! Shapes: dense rows x [n, in]; sparse columns and listed rows hold only the
//! non-zero entries of the same [n, in] matrix (see [`super::sparse`]).
//!
//! A training forward pass takes a [`TrainInput`] (dense rows, or columns sorted for
//! the weight gradient) and returns a trace that alone can run the backward pass; an
//! evaluation pass may also read rows straight from a dataset's lists ([`Listed`]),
//! which keep nothing a weight gradient could use, and returns no trace.

use super::sparse::{self, FirstLayer, Listed, SparseColumns, DENSE_ABOVE};
use crate::data::nonzero::RowLists;

/// An evaluation pass's input.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Dense rows [n, in].
    Dense {
        /// The rows.
        x: &'a [f32],
        /// How many.
        n: usize,
    },
    /// The batch kept as its non-zero entries.
    Sparse(&'a SparseColumns),
    /// Rows read straight from a dataset's lists of non-zero entries.
    Listed(Listed<'a>),
}

/// A training pass's input: what the weight gradient can be computed from.
#[derive(Debug, Clone, Copy)]
pub enum TrainInput<'a> {
    /// Dense rows [n, in].
    Dense {
        /// The rows.
        x: &'a [f32],
        /// How many.
        n: usize,
    },
    /// The batch's non-zero entries, sorted into columns.
    Sparse(&'a SparseColumns),
}

impl Input<'_> {
    /// Rows of the batch.
    pub fn rows(&self) -> usize {
        match self {
            Input::Dense { n, .. } => *n,
            Input::Sparse(c) => c.rows(),
            Input::Listed(l) => l.pick.len(),
        }
    }
}

impl<'a> From<TrainInput<'a>> for Input<'a> {
    fn from(x: TrainInput<'a>) -> Self {
        match x {
            TrainInput::Dense { x, n } => Input::Dense { x, n },
            TrainInput::Sparse(c) => Input::Sparse(c),
        }
    }
}

/// Images as rows of bytes, with the rows' non-zero lists when the dataset keeps them.
#[derive(Debug, Clone, Copy)]
pub struct ByteRows<'a> {
    /// Row i is `images[i * width..(i + 1) * width]`.
    pub images: &'a [u8],
    /// Every row's non-zero entries, listed beforehand.
    pub lists: Option<RowLists<'a>>,
    /// Inputs per row.
    pub width: usize,
    /// What each byte stands for.
    pub values: &'a [f32; 256],
}

/// A dataset's rows as the first layer reads them: image bytes (which may run
/// sparse) or float features (always dense rows, filled by the caller).
#[derive(Debug, Clone, Copy)]
pub enum RowSource<'a> {
    /// Image bytes through a value table.
    Bytes(ByteRows<'a>),
    /// Float features of this many inputs per row.
    Floats {
        /// Inputs per row.
        width: usize,
    },
}

impl<'a> RowSource<'a> {
    /// Inputs per row.
    pub fn width(&self) -> usize {
        match self {
            RowSource::Bytes(b) => b.width,
            RowSource::Floats { width } => *width,
        }
    }

    /// Every row's non-zero entries, when they were listed beforehand.
    pub fn lists(&self) -> Option<RowLists<'a>> {
        match self {
            RowSource::Bytes(b) => b.lists,
            RowSource::Floats { .. } => None,
        }
    }
}

impl<'a> From<ByteRows<'a>> for RowSource<'a> {
    fn from(b: ByteRows<'a>) -> Self {
        RowSource::Bytes(b)
    }
}

/// Where a batch's first-layer input is built: dense rows or sparse columns.
#[derive(Debug, Clone, Default)]
pub struct InputBuf {
    /// Which first-layer kernel may run.
    pub policy: FirstLayer,
    x: Vec<f32>,
    cols: SparseColumns,
}

impl InputBuf {
    /// An empty buffer with the given policy.
    pub fn new(policy: FirstLayer) -> Self {
        InputBuf {
            policy,
            ..Default::default()
        }
    }

    /// The largest share of non-zero inputs the first layer runs sparse at (None:
    /// never, by policy or for want of FMA).
    pub fn sparse_limit(&self) -> Option<f32> {
        match self.policy {
            FirstLayer::Dense => None,
            FirstLayer::Sparse => Some(f32::INFINITY),
            FirstLayer::Auto => sparse::available().then_some(DENSE_ABOVE),
        }
    }

    /// The training input of rows `pick` of `rows`: for float features dense rows,
    /// which `dense` fills ([m, width]); for bytes sparse columns (from the lists
    /// when there are any), sorted for the weight gradient, when the policy allows and
    /// the batch is sparse enough; else dense rows, which `dense` fills ([m, width]).
    pub fn train<'a>(
        &'a mut self,
        rows: impl Into<RowSource<'a>>,
        pick: &[u32],
        dense: impl FnOnce(&mut [f32]),
    ) -> TrainInput<'a> {
        let n = pick.len();
        let source = rows.into();
        let RowSource::Bytes(rows) = source else {
            let x = self.fill(n * source.width(), dense);
            return TrainInput::Dense { x, n };
        };
        let limit = self.sparse_limit().filter(|_| !pick.is_empty());
        let (w, v) = (rows.width, rows.values);
        let built = limit.and_then(|max| match rows.lists {
            Some(l) => self.cols.build_from_lists(l, pick, w, v, max, true),
            None => self.cols.build_from_bytes(rows.images, pick, w, v, max),
        });
        if built.is_some() {
            self.cols.sort_columns();
            return TrainInput::Sparse(&self.cols);
        }
        TrainInput::Dense {
            x: self.fill(n * w, dense),
            n,
        }
    }

    /// The evaluation input of rows `pick` of `rows`: for float features dense rows,
    /// which `dense` fills; for bytes straight from the lists when
    /// the policy allows and the batch is sparse enough, else sparse rows counted from
    /// the bytes, else dense rows, which `dense` fills ([m, width]).
    pub fn eval<'a>(
        &'a mut self,
        rows: impl Into<RowSource<'a>>,
        pick: &'a [u32],
        dense: impl FnOnce(&mut [f32]),
    ) -> Input<'a> {
        let n = pick.len();
        let source = rows.into();
        let RowSource::Bytes(rows) = source else {
            let x = self.fill(n * source.width(), dense);
            return Input::Dense { x, n };
        };
        let limit = self.sparse_limit().filter(|_| !pick.is_empty());
        let (w, values) = (rows.width, rows.values);
        if let (Some(max), Some(lists)) = (limit, rows.lists) {
            let listed = Listed {
                lists,
                pick,
                values,
            };
            if listed.share(w) <= max {
                return Input::Listed(listed);
            }
        }
        let built = limit.and_then(|max| {
            self.cols
                .build_from_bytes(rows.images, pick, w, values, max)
        });
        if built.is_some() {
            return Input::Sparse(&self.cols);
        }
        Input::Dense {
            x: self.fill(n * w, dense),
            n,
        }
    }

    /// `n` dense rows of `width` for evaluation: kept as sparse rows when the policy
    /// allows and they are sparse enough.
    pub fn dense<'a>(&'a mut self, x: &'a [f32], n: usize, width: usize) -> Input<'a> {
        match self.sparse_limit() {
            Some(max) if self.cols.build(x, n, width, max).is_some() => Input::Sparse(&self.cols),
            _ => Input::Dense { x, n },
        }
    }

    /// `n` dense rows of `width` for training: sorted into sparse columns when the
    /// policy allows and they are sparse enough.
    pub fn dense_train<'a>(&'a mut self, x: &'a [f32], n: usize, width: usize) -> TrainInput<'a> {
        match self.sparse_limit() {
            Some(max) if self.cols.build(x, n, width, max).is_some() => {
                self.cols.sort_columns();
                TrainInput::Sparse(&self.cols)
            }
            _ => TrainInput::Dense { x, n },
        }
    }

    fn fill(&mut self, len: usize, dense: impl FnOnce(&mut [f32])) -> &[f32] {
        if self.x.len() < len {
            self.x.resize(len, 0.0);
        }
        dense(&mut self.x[..len]);
        &self.x[..len]
    }
}
