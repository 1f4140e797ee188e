//! The first layer on mostly-zero inputs: only the non-zero pixels are multiplied.
//!
//! 81% of MNIST's pixels are 0 and the first layer holds ~92% of the model's
//! multiply-adds, so for such batches the batch is kept per input column (pixel) as
//! the list of (row, value) pairs where it is non-zero, and with weights stored
//! input-major (W^T, [in, out]) every non-zero pixel costs one contiguous `out`-wide
//! multiply-add. Going column by column, each weight row is read once per batch (held
//! in registers) instead of once per image: the batch's outputs stay in L1, the
//! weights are streamed once.
//!
//! Evaluation, which computes no weight gradient, skips sorting the batch into
//! columns: each row's outputs are summed in registers over its non-zero columns (the
//! same terms in the same order, so the same bits), each weight row read from cache.
//!
//! Shapes: x [n, in] dense rows; W [in, out]; b [out]; y, dy [n, out]; dW [in, out].
//! Each output sums its non-zero terms in increasing column order (forward) or row
//! order (weight gradient) with one rounding per term (FMA), then adds the bias:
//! deterministic, and for the weight gradient bit for bit the dense product's running
//! sum (a skipped zero adds exactly nothing); the forward sum is ordered differently
//! from the dense product's blocks, so it may differ in the last bits.

/// Above this share of non-zero inputs the dense matrix product is faster (measured
/// with `actlab bench` on AVX2: sparse wins clearly at MNIST's 19%, loses at 50%).
pub const DENSE_ABOVE: f32 = 0.35;

pub use crate::data::nonzero::RowLists;

/// Output columns handled per pass: 64 floats stay in eight AVX registers.
const BLOCK: usize = 64;

/// Output columns the row-by-row forward pass sums per pass over a row's pairs.
const ROW_BLOCK: usize = 128;

/// Which kernel the first layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstLayer {
    /// Sparse when the batch's share of non-zero inputs is at most [`DENSE_ABOVE`].
    #[default]
    Auto,
    /// Always the dense matrix product (the reference the bench compares against).
    Dense,
    /// Always the sparse kernels.
    Sparse,
}

/// A batch given as picked rows of listed non-zero inputs: row r of the batch is
/// row `pick[r]` of `lists`, a byte meaning `values[byte]`.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    /// Every row's non-zero inputs.
    pub lists: RowLists<'a>,
    /// The rows of the batch.
    pub pick: &'a [u32],
    /// What each byte stands for.
    pub values: &'a [f32; 256],
}

impl Listed<'_> {
    /// The share of the batch's `pick.len() * width` inputs that are non-zero.
    pub fn share(&self, width: usize) -> f32 {
        let nnz: usize = self
            .pick
            .iter()
            .map(|&i| self.lists.range(i as usize).len())
            .sum();
        nnz as f32 / (self.pick.len() * width).max(1) as f32
    }

    /// y = x W + b straight from the lists, row by row (the same terms in the same
    /// order as [`SparseColumns::forward`], so the same bits), for a pass no backward
    /// pass follows: nothing is copied.
    pub fn forward(&self, w: &[f32], b: &[f32], out: usize, y: &mut [f32]) {
        touch_lists(self.lists, self.pick);
        let x = self;
        crate::simd_dispatch!((x: &Listed, w: &[f32], b: &[f32], out: usize, y: &mut [f32]) {
            forward_listed_portable(x, w, b, out, y)
        })
    }
}

/// A batch kept per input column: the rows where each column is non-zero, in order.
#[derive(Debug, Clone, Default)]
pub struct SparseColumns {
    /// Rows of the batch.
    rows: usize,
    /// Column c's pairs are `row_of[starts[c]..starts[c + 1]]`, `vals[...]`.
    starts: Vec<usize>,
    row_of: Vec<u32>,
    vals: Vec<f32>,
    /// (column, value) pairs row by row, in column order within a row.
    by_row: Vec<(u32, f32)>,
    /// Where each row's pairs end in `by_row`.
    row_ends: Vec<usize>,
    /// Input columns.
    cols: usize,
    /// Whether the column lists hold this batch (sorted only when the weight gradient
    /// needs them: the forward pass reads the rows).
    sorted: bool,
    /// Whether `starts[2..]` holds each column's count (the sort needs them).
    counted: bool,
}

impl SparseColumns {
    /// Rebuild from `n` dense rows of `width` if at most `max_share` of the values are
    /// non-zero (counted first); returns the share, or None without building.
    pub fn build(&mut self, x: &[f32], n: usize, width: usize, max_share: f32) -> Option<f32> {
        let total = n * width;
        let x = &x[..total];
        let share = count_nonzero_f32(x) as f32 / total.max(1) as f32;
        if share > max_share {
            return None;
        }
        self.fill(n, width, |pairs, counts, row_ends| {
            scan(x, width, pairs, counts, row_ends)
        });
        Some(share)
    }

    /// Rebuild from rows of bytes (`images[i * width..]` for each i in `pick`), each
    /// byte standing for `values[byte]`, if at most `max_share` of them are non-zero
    /// (counted first, so a dense batch costs only the count); returns the share, or
    /// None without building. The same as [`SparseColumns::build`] on the rows
    /// converted through `values`, without converting the zeros.
    pub fn build_from_bytes(
        &mut self,
        images: &[u8],
        pick: &[u32],
        width: usize,
        values: &[f32; 256],
        max_share: f32,
    ) -> Option<f32> {
        let total = pick.len() * width;
        touch_rows(images, pick, width);
        let nnz: usize = pick
            .iter()
            .map(|&i| count_nonzero(&images[i as usize * width..(i as usize + 1) * width]))
            .sum();
        let share = nnz as f32 / total.max(1) as f32;
        if share > max_share {
            return None;
        }
        self.fill(pick.len(), width, |pairs, counts, row_ends| {
            let mut len = 0;
            for &i in pick {
                let row = &images[i as usize * width..(i as usize + 1) * width];
                len = scan_bytes(row, len, pairs, counts, values);
                row_ends.push(len);
            }
        });
        Some(share)
    }

    /// The same as [`SparseColumns::build_from_bytes`] from the rows' lists: only
    /// copies (the lists hold the rows `pick` points at, of `width` columns). Counts
    /// each column's pairs only if `count` (a batch that will be sorted into columns
    /// for training; evaluation never is).
    pub fn build_from_lists(
        &mut self,
        lists: RowLists,
        pick: &[u32],
        width: usize,
        values: &[f32; 256],
        max_share: f32,
        count: bool,
    ) -> Option<f32> {
        let total = pick.len() * width;
        let nnz: usize = pick.iter().map(|&i| lists.range(i as usize).len()).sum();
        touch_lists(lists, pick);
        let share = nnz as f32 / total.max(1) as f32;
        if share > max_share {
            return None;
        }
        self.fill(pick.len(), width, |pairs, counts, row_ends| {
            let mut len = 0;
            for &i in pick {
                let r = lists.range(i as usize);
                let (cols, bytes) = (&lists.cols[r.clone()], &lists.bytes[r]);
                for ((p, &c), &b) in pairs[len..len + cols.len()].iter_mut().zip(cols).zip(bytes) {
                    *p = (u32::from(c), values[b as usize]);
                }
                if count {
                    cols.iter().for_each(|&c| counts[c as usize] += 1);
                }
                len += cols.len();
                row_ends.push(len);
            }
        });
        self.counted = count;
        Some(share)
    }

    /// Rebuild for `n` rows of `width`: `scan` writes the row-ordered (column, value)
    /// pairs, counts each column's and records where each row ends.
    fn fill(
        &mut self,
        n: usize,
        width: usize,
        scan: impl FnOnce(&mut [(u32, f32)], &mut [usize], &mut Vec<usize>),
    ) {
        self.rows = n;
        self.cols = width;
        if self.by_row.len() < n * width {
            self.by_row.resize(n * width, (0, 0.0));
        }
        self.row_ends.clear();
        self.starts.clear();
        self.starts.resize(width + 2, 0);
        scan(&mut self.by_row, &mut self.starts[2..], &mut self.row_ends);
        self.sorted = false;
        self.counted = true;
    }

    /// Counting sort of the row-ordered pairs into columns (rows stay in order), once
    /// per batch: the weight gradient needs them (evaluation, with no gradient to
    /// compute, never sorts).
    pub fn sort_columns(&mut self) {
        if self.sorted {
            return;
        }
        self.sorted = true;
        let (width, nnz) = (self.cols, self.row_ends.last().copied().unwrap_or(0));
        let row_ends = std::mem::take(&mut self.row_ends);
        if !self.counted {
            for &(c, _) in &self.by_row[..nnz] {
                self.starts[c as usize + 2] += 1;
            }
            self.counted = true;
        }
        // starts[c + 2] holds column c's count: prefix sums make starts[c + 1] its
        // first slot, advanced while filling, after which it is column c's end.
        for c in 2..width + 2 {
            self.starts[c] += self.starts[c - 1];
        }
        self.row_of.resize(nnz, 0);
        self.vals.resize(nnz, 0.0);
        let mut begin = 0;
        for (r, &end) in row_ends.iter().enumerate() {
            for &(c, v) in &self.by_row[begin..end] {
                let slot = &mut self.starts[c as usize + 1];
                self.row_of[*slot] = r as u32;
                self.vals[*slot] = v;
                *slot += 1;
            }
            begin = end;
        }
        self.starts.truncate(width + 1);
        self.row_ends = row_ends;
    }

    /// Number of rows of the batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn column(&self, c: usize) -> (&[u32], &[f32]) {
        let (s, e) = (self.starts[c], self.starts[c + 1]);
        (&self.row_of[s..e], &self.vals[s..e])
    }

    /// Number of input columns.
    fn width(&self) -> usize {
        self.cols
    }

    /// Row r's (column, value) pairs, in column order.
    fn row(&self, r: usize) -> &[(u32, f32)] {
        let begin = if r == 0 { 0 } else { self.row_ends[r - 1] };
        &self.by_row[begin..self.row_ends[r]]
    }

    /// y = x W + b, with W input-major [in, out] (fast where [`available`]).
    pub fn forward(&self, w: &[f32], b: &[f32], out: usize, y: &mut [f32]) {
        // Sixteen 256-bit registers cannot hold a row's outputs and a weight: with the
        // columns sorted (training), column by column keeps the outputs in L1 instead.
        // In 512-bit registers a row's 128 outputs fit in eight, so each non-zero input
        // is one pass over its weight row: measured with `actlab bench`, row by row is
        // faster there even when the columns are sorted. Both give the same bits.
        let columns = self.sorted && crate::simd::tier() < crate::simd::Tier::Avx512;
        let x = self;
        crate::simd_dispatch!((x: &SparseColumns, w: &[f32], b: &[f32], out: usize, y: &mut [f32], columns: bool) {
            forward_portable(x, w, b, out, y, columns)
        })
    }

    /// dW = x^T dy (input-major [in, out], overwritten) and db = column sums of dy
    /// (fast where [`available`]).
    pub fn weight_grad(&mut self, dy: &[f32], out: usize, dw: &mut [f32], db: &mut [f32]) {
        self.sort_columns();
        self.weight_grad_sorted(dy, out, dw, db, false)
    }

    /// The same once [`SparseColumns::sort_columns`] ran; with `add`, added to `dw`
    /// and `db` as they are: for a batch kept as consecutive blocks of rows, the first
    /// block without and each next one with `add` gives the bits of the whole batch at
    /// once (every sum goes on in row order from the stored f32, which is exactly the
    /// running sum). Panics if the columns are not sorted.
    pub fn weight_grad_sorted(
        &self,
        dy: &[f32],
        out: usize,
        dw: &mut [f32],
        db: &mut [f32],
        add: bool,
    ) {
        assert!(self.sorted, "the weight gradient needs the columns sorted");
        self.weight_grad_sum(dy, out, dw, db, add)
    }

    fn weight_grad_sum(&self, dy: &[f32], out: usize, dw: &mut [f32], db: &mut [f32], add: bool) {
        // A block of outputs is eight 256-bit or four 512-bit registers.
        let x = self;
        crate::simd_dispatch!((x: &SparseColumns, dy: &[f32], out: usize, dw: &mut [f32], db: &mut [f32], add: bool) {
            weight_grad_portable(x, dy, out, dw, db, add)
        })
    }
}

/// The non-zero (column, value) pairs of each row of `x` into `pairs`, in order,
/// counting each column's in `counts` and each row's end in `row_ends`; returns how
/// many there are.
fn scan(
    x: &[f32],
    width: usize,
    pairs: &mut [(u32, f32)],
    counts: &mut [usize],
    row_ends: &mut Vec<usize>,
) {
    crate::simd_dispatch!((x: &[f32], width: usize, pairs: &mut [(u32, f32)], counts: &mut [usize], row_ends: &mut Vec<usize>) {
        let mut len = 0;
        for row in x.chunks_exact(width) {
            for (i, chunk) in row.chunks(32).enumerate() {
                // One bit per non-zero value; most of an MNIST row is skipped 32 at a time.
                let mut bits = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |m, (k, &v)| m | (u32::from(v != 0.0) << k));
                while bits != 0 {
                    let k = bits.trailing_zeros() as usize;
                    let c = i * 32 + k;
                    pairs[len] = (c as u32, chunk[k]);
                    counts[c] += 1;
                    len += 1;
                    bits &= bits - 1;
                }
            }
            row_ends.push(len);
        }
    })
}

/// Read one byte of every cache line of the picked rows, all loads independent, so
/// the memory system fetches the batch's (randomly placed) images in parallel instead
/// of one row at a time as the scan reaches it.
fn touch_rows(images: &[u8], pick: &[u32], width: usize) {
    let mut sink = 0u8;
    for &i in pick {
        let row = &images[i as usize * width..(i as usize + 1) * width];
        for line in row.chunks(64) {
            sink ^= line[0];
        }
    }
    std::hint::black_box(sink);
}

/// Read one value of every cache line of the picked rows' lists, all loads
/// independent, as [`touch_rows`] does for the images (the lists of a random batch are
/// scattered over tens of megabytes: fetched one after another they stall each copy).
fn touch_lists(lists: RowLists, pick: &[u32]) {
    let mut sink = 0u16;
    for &i in pick {
        let r = lists.range(i as usize);
        for line in lists.cols[r.clone()].chunks(32) {
            sink ^= line[0];
        }
        for line in lists.bytes[r].chunks(64) {
            sink ^= u16::from(line[0]);
        }
    }
    std::hint::black_box(sink);
}

/// How many values of `x` are not 0.
fn count_nonzero_f32(x: &[f32]) -> usize {
    crate::simd_dispatch!((x: &[f32]) -> usize {
        x.iter().map(|&v| u32::from(v != 0.0)).sum::<u32>() as usize
    })
}

/// How many bytes of `row` are not 0.
fn count_nonzero(row: &[u8]) -> usize {
    crate::simd_dispatch!((row: &[u8]) -> usize {
        row.iter().map(|&b| usize::from(b != 0)).sum()
    })
}

/// One row of bytes: append its non-zero (column, value) pairs to `pairs` from `len`
/// on, counting each column's in `counts`; returns the new length.
fn scan_bytes(
    row: &[u8],
    len: usize,
    pairs: &mut [(u32, f32)],
    counts: &mut [usize],
    values: &[f32; 256],
) -> usize {
    let mut len = len;
    let mut words = row.chunks_exact(8);
    for (i, chunk) in words.by_ref().enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        len = scan_word(word, i * 8, len, pairs, counts, values);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        len = scan_word(word, row.len() - tail.len(), len, pairs, counts, values);
    }
    len
}

/// Eight bytes starting at column `first`: their non-zero pairs, as [`scan_bytes`].
#[inline(always)]
fn scan_word(
    word: [u8; 8],
    first: usize,
    mut len: usize,
    pairs: &mut [(u32, f32)],
    counts: &mut [usize],
    values: &[f32; 256],
) -> usize {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let w = u64::from_le_bytes(word);
    // The top bit of each non-zero byte (no carries cross bytes: 0x7f + 0x7f < 0x100).
    let mut bits = (((w & LOW7) + LOW7) | w) & HIGH;
    while bits != 0 {
        let k = bits.trailing_zeros() as usize / 8;
        let c = first + k;
        pairs[len] = (c as u32, values[word[k] as usize]);
        counts[c] += 1;
        len += 1;
        bits &= bits - 1;
    }
    len
}

/// Whether the sparse kernels run at this thread's SIMD tier: they multiply-add with
/// one rounding (FMA), as the dense matrix product does, so that skipping the zeros
/// leaves the weight gradient bit for bit what the dense product's running sum gives.
/// Without FMA (the portable tier) the dense path runs.
pub fn available() -> bool {
    crate::simd::tier() >= crate::simd::Tier::Avx2
}

/// The forward pass from the rows, or from the columns when `columns` (both give the
/// same bits).
#[inline(always)]
fn forward_portable(
    x: &SparseColumns,
    w: &[f32],
    b: &[f32],
    out: usize,
    y: &mut [f32],
    columns: bool,
) {
    if columns {
        forward_columns_portable(x, w, b, out, y)
    } else {
        forward_rows_portable(x, w, b, out, y)
    }
}

/// [`forward_rows_portable`] over the picked rows' lists.
#[inline(always)]
fn forward_listed_portable(x: &Listed, w: &[f32], b: &[f32], out: usize, y: &mut [f32]) {
    let lists = x.lists;
    for (&i, yr) in x.pick.iter().zip(y.chunks_exact_mut(out)) {
        let r = lists.range(i as usize);
        let (cols, bytes) = (&lists.cols[r.clone()], &lists.bytes[r]);
        let pairs = || {
            cols.iter()
                .zip(bytes)
                .map(|(&c, &v)| (u32::from(c), x.values[v as usize]))
        };
        row_outputs(pairs, w, b, out, yr);
    }
}

/// One row's outputs: a block of them summed in registers over the row's non-zero
/// (column, value) pairs in increasing column order, then the bias (as the dense path
/// adds it).
#[inline(always)]
fn row_outputs<I: Iterator<Item = (u32, f32)>>(
    pairs: impl Fn() -> I,
    w: &[f32],
    b: &[f32],
    out: usize,
    yr: &mut [f32],
) {
    let mut start = 0;
    while start < out {
        // Full blocks in registers (128 outputs, then 64 for a half-width layer), the
        // rest summed in place: every output adds the same terms in the same order.
        start += match out - start {
            left if left >= ROW_BLOCK => row_block::<ROW_BLOCK, I>(&pairs, w, out, start, yr),
            left if left >= ROW_BLOCK / 2 => {
                row_block::<{ ROW_BLOCK / 2 }, I>(&pairs, w, out, start, yr)
            }
            left => {
                let acc = &mut yr[start..start + left];
                acc.fill(0.0);
                for (c, v) in pairs() {
                    let wr = &w[c as usize * out + start..][..left];
                    for (o, &wv) in acc.iter_mut().zip(wr) {
                        *o = v.mul_add(wv, *o);
                    }
                }
                left
            }
        };
    }
    for (o, &bias) in yr.iter_mut().zip(b) {
        *o += bias;
    }
}

/// Outputs `start..start + N` of one row summed in registers; returns N.
#[inline(always)]
fn row_block<const N: usize, I: Iterator<Item = (u32, f32)>>(
    pairs: &impl Fn() -> I,
    w: &[f32],
    out: usize,
    start: usize,
    yr: &mut [f32],
) -> usize {
    let mut acc = [0.0f32; N];
    for (c, v) in pairs() {
        let wr = &w[c as usize * out + start..][..N];
        for k in 0..N {
            acc[k] = v.mul_add(wr[k], acc[k]);
        }
    }
    yr[start..start + N].copy_from_slice(&acc);
    N
}

/// Row by row, a block of the output summed in registers over the row's non-zero
/// columns in increasing order (the same terms in the same order as adding column by
/// column into each row), then the bias (as the dense path adds it).
#[inline(always)]
fn forward_rows_portable(x: &SparseColumns, w: &[f32], b: &[f32], out: usize, y: &mut [f32]) {
    for (r, yr) in y[..x.rows * out].chunks_exact_mut(out).enumerate() {
        let pairs = x.row(r);
        row_outputs(|| pairs.iter().copied(), w, b, out, yr);
    }
}

/// Column by column, a block of the weight row held in registers, added into every
/// row where the column is non-zero; then the bias (as the dense path adds it). The
/// same terms in the same order as [`forward_rows_portable`], faster once the columns
/// are sorted (training sorts them for the weight gradient anyway).
#[inline(always)]
fn forward_columns_portable(x: &SparseColumns, w: &[f32], b: &[f32], out: usize, y: &mut [f32]) {
    let y = &mut y[..x.rows * out];
    y.fill(0.0);
    for start in (0..out).step_by(BLOCK) {
        let len = BLOCK.min(out - start);
        for c in 0..x.width() {
            let (rows, vals) = x.column(c);
            if rows.is_empty() {
                continue;
            }
            let wr = &w[c * out + start..][..len];
            if len == BLOCK {
                let mut wb = [0.0f32; BLOCK];
                wb.copy_from_slice(wr);
                for (&r, &v) in rows.iter().zip(vals) {
                    let yr = &mut y[r as usize * out + start..][..BLOCK];
                    for k in 0..BLOCK {
                        yr[k] = v.mul_add(wb[k], yr[k]);
                    }
                }
            } else {
                for (&r, &v) in rows.iter().zip(vals) {
                    let yr = &mut y[r as usize * out + start..][..len];
                    for (o, &wv) in yr.iter_mut().zip(wr) {
                        *o = v.mul_add(wv, *o);
                    }
                }
            }
        }
    }
    for row in y.chunks_exact_mut(out) {
        for (o, &bias) in row.iter_mut().zip(b) {
            *o += bias;
        }
    }
}

/// Column by column, a block of its weight-gradient row summed in registers over the
/// rows where the column is non-zero (in row order), then stored once.
#[inline(always)]
fn weight_grad_portable(
    x: &SparseColumns,
    dy: &[f32],
    out: usize,
    dw: &mut [f32],
    db: &mut [f32],
    add: bool,
) {
    if !add {
        db.fill(0.0);
    }
    for g in dy[..x.rows * out].chunks_exact(out) {
        for (d, &v) in db.iter_mut().zip(g) {
            *d += v;
        }
    }
    // Block by block over all columns: one block of the batch's dy (64 rows x 64
    // floats = 16 KB) stays in L1 for the whole pass instead of the full 32 KB rows.
    for start in (0..out).step_by(BLOCK) {
        let len = BLOCK.min(out - start);
        for c in 0..x.width() {
            let (rows, vals) = x.column(c);
            let row = &mut dw[c * out..][..out];
            if len == BLOCK {
                let mut acc = [0.0f32; BLOCK];
                if add {
                    acc.copy_from_slice(&row[start..start + BLOCK]);
                }
                for (&r, &v) in rows.iter().zip(vals) {
                    let g = &dy[r as usize * out + start..][..BLOCK];
                    for k in 0..BLOCK {
                        acc[k] = v.mul_add(g[k], acc[k]);
                    }
                }
                row[start..start + BLOCK].copy_from_slice(&acc);
            } else {
                let acc = &mut row[start..start + len];
                if !add {
                    acc.fill(0.0);
                }
                for (&r, &v) in rows.iter().zip(vals) {
                    let g = &dy[r as usize * out + start..][..len];
                    for (a, &gv) in acc.iter_mut().zip(g) {
                        *a = v.mul_add(gv, *a);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mostly-zero input of `len` values: every `k`th is `(i % m) * scale` (itself 0
    /// where i % m is), the rest 0.
    fn every_kth(len: usize, k: usize, m: usize, scale: f32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                if i % k == 0 {
                    (i % m) as f32 * scale
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Dense reference: y[r][o] = b[o] + sum_i x[r][i] w[i][o].
    fn dense(x: &[f32], w: &[f32], b: &[f32], n: usize, inp: usize, out: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; n * out];
        for r in 0..n {
            for o in 0..out {
                let mut s = b[o] as f64;
                for i in 0..inp {
                    s += x[r * inp + i] as f64 * w[i * out + o] as f64;
                }
                y[r * out + o] = s as f32;
            }
        }
        y
    }

    #[test]
    fn sparse_kernels_equal_dense_arithmetic() {
        // 70 outputs: one full block of 64 and a remainder of 6.
        let (n, inp, out) = (5, 30, 70);
        let x = every_kth(n * inp, 4, 7, 0.25);
        let w: Vec<f32> = (0..inp * out)
            .map(|i| ((i * 37) % 101) as f32 * 0.01 - 0.5)
            .collect();
        let b: Vec<f32> = (0..out).map(|i| i as f32 * 0.1).collect();
        let mut rows = SparseColumns::default();
        let density = rows.build(&x, n, inp, 1.0).unwrap_or_default();
        assert_eq!(SparseColumns::default().build(&x, n, inp, 0.2), None);
        // Every 4th value, except where i % 7 == 0 too: 32 of 150.
        assert_eq!(density, 32.0 / 150.0);
        let mut y = vec![9.0; n * out];
        rows.forward(&w, &b, out, &mut y);
        for (a, e) in y.iter().zip(dense(&x, &w, &b, n, inp, out)) {
            assert!((a - e).abs() < 1e-5, "{a} vs {e}");
        }
        // The same batch given as bytes through a table builds the same columns.
        let bytes: Vec<u8> = x.iter().map(|&v| (v * 4.0) as u8).collect();
        let table: [f32; 256] = std::array::from_fn(|b| b as f32 * 0.25);
        let mut from_bytes = SparseColumns::default();
        let order: Vec<u32> = (0..n as u32).collect();
        assert_eq!(
            from_bytes.build_from_bytes(&bytes, &order, inp, &table, 0.2),
            None
        );
        let built = from_bytes.build_from_bytes(&bytes, &order, inp, &table, 0.3);
        assert_eq!(built, Some(density));
        let mut y2 = vec![7.0; n * out];
        from_bytes.forward(&w, &b, out, &mut y2);
        assert_eq!(y, y2);
        let dy: Vec<f32> = (0..n * out).map(|i| (i % 9) as f32 - 4.0).collect();
        let (mut dw, mut db) = (vec![9.0; inp * out], vec![9.0; out]);
        rows.weight_grad(&dy, out, &mut dw, &mut db);
        for i in 0..inp {
            for o in 0..out {
                let want: f32 = (0..n).map(|r| x[r * inp + i] * dy[r * out + o]).sum();
                assert!((dw[i * out + o] - want).abs() < 1e-4, "dw[{i}][{o}]");
            }
        }
        for o in 0..out {
            let want: f32 = (0..n).map(|r| dy[r * out + o]).sum();
            assert_eq!(db[o], want);
        }
        // Sorted for the gradient, the forward pass runs column by column: same bits.
        let mut y3 = vec![5.0; n * out];
        rows.forward(&w, &b, out, &mut y3);
        assert_eq!(y, y3);
    }

    /// A batch kept as two blocks of rows, the second's gradient added to the
    /// first's, gives the whole batch's bits.
    #[test]
    fn weight_gradient_by_blocks_is_the_whole_batchs() {
        let (n, inp, out) = (9, 40, 70);
        let x = every_kth(n * inp, 3, 13, 0.07);
        let dy: Vec<f32> = (0..n * out)
            .map(|i| ((i * 17) % 23) as f32 * 0.11 - 1.2)
            .collect();
        let mut whole = SparseColumns::default();
        whole.build(&x, n, inp, 1.0);
        let (mut dw, mut db) = (vec![0.0; inp * out], vec![0.0; out]);
        whole.weight_grad(&dy, out, &mut dw, &mut db);
        let (mut dw2, mut db2) = (vec![7.0; inp * out], vec![7.0; out]);
        for (k, (lo, hi)) in [(0, 4), (4, 9)].into_iter().enumerate() {
            let mut block = SparseColumns::default();
            block.build(&x[lo * inp..hi * inp], hi - lo, inp, 1.0);
            block.sort_columns();
            let g = &dy[lo * out..hi * out];
            block.weight_grad_sorted(g, out, &mut dw2, &mut db2, k > 0);
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&dw), bits(&dw2));
        assert_eq!(bits(&db), bits(&db2));
    }

    /// Row by row (evaluation) and column by column (training) give the same bits,
    /// with full blocks of both kernels and remainders.
    #[test]
    fn rows_and_columns_forward_agree_bit_for_bit() {
        for out in [64, 128, 130, 200] {
            let (n, inp) = (9, 50);
            let x = every_kth(n * inp, 3, 11, 0.1);
            let w: Vec<f32> = (0..inp * out)
                .map(|i| ((i * 31) % 97) as f32 * 0.013 - 0.6)
                .collect();
            let b: Vec<f32> = (0..out).map(|i| i as f32 * 0.01).collect();
            let mut s = SparseColumns::default();
            s.build(&x, n, inp, 1.0);
            let mut unsorted = vec![0.0; n * out];
            s.forward(&w, &b, out, &mut unsorted);
            s.sort_columns();
            let (mut by_rows, mut by_cols) = (vec![1.0; n * out], vec![2.0; n * out]);
            forward_rows_portable(&s, &w, &b, out, &mut by_rows);
            forward_columns_portable(&s, &w, &b, out, &mut by_cols);
            assert_eq!(by_rows, by_cols, "out = {out}");
            let mut dispatched = vec![3.0; n * out];
            s.forward(&w, &b, out, &mut dispatched);
            assert_eq!(dispatched, by_rows, "out = {out}");
            assert_eq!(unsorted, by_rows, "out = {out}");
        }
    }
}
