//! Normalisation layers, forward and backward: batch norm (torch.nn.BatchNorm1d /
//! BatchNorm2d) and per-sample layer norm (torch.nn.LayerNorm over the last dim, and
//! GroupNorm(1, C)), eps 1e-5, affine, with PyTorch's CPU arithmetic where it shows.
//!
//! Shapes: x and y [n, c, s] row-major, s = h * w values per channel: s = 1 is a
//! [n, c] batch of rows (BatchNorm1d, LayerNorm(c)), s = h * w an NCHW batch
//! (BatchNorm2d(c), GroupNorm(1, c)). weight (gamma) and bias (beta) [c]. Batch norm
//! keeps [`Moments`] per channel (over n * s values) and [`RunningStats`] [c]; layer
//! norm keeps [`Moments`] per sample (over c * s values). Backward takes dy [n, c, s]
//! and gives dweight, dbias [c] (overwritten) and dx [n, c, s], in train mode.

mod shared;

pub use shared::{Exchange, Seat};

/// PyTorch's default epsilon (a double there, added in f64 where PyTorch does).
pub const EPS: f64 = 1e-5;
/// PyTorch's default momentum of the running statistics.
pub const MOMENTUM: f64 = 0.1;

/// Batch norm cannot train on one value per channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormError {
    /// PyTorch: "Expected more than 1 value per channel when training".
    #[error(
        "batch norm needs more than 1 value per channel when training, and this batch has \
         {values}; skip the batch or use a larger batch size"
    )]
    OneValuePerChannel {
        /// Values per channel in the batch (n * s).
        values: usize,
    },
}

/// Mean and 1 / sqrt(var + eps) of each group a forward pass normalised (a channel for
/// batch norm, a sample for layer norm), kept for the backward pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Moments {
    /// Means.
    pub mean: Vec<f32>,
    /// Inverse standard deviations.
    pub invstd: Vec<f32>,
}

/// Batch norm's buffers, as PyTorch's `running_mean`, `running_var` and
/// `num_batches_tracked`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningStats {
    /// Running mean per channel (starts at 0).
    pub mean: Vec<f32>,
    /// Running unbiased variance per channel (starts at 1).
    pub var: Vec<f32>,
    /// Training batches seen.
    pub batches_tracked: i64,
}

impl RunningStats {
    /// PyTorch's initial buffers for `c` channels.
    pub fn new(c: usize) -> Self {
        RunningStats {
            mean: vec![0.0; c],
            var: vec![1.0; c],
            batches_tracked: 0,
        }
    }
}

/// Batch norm over channels of [n, c, s].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchNorm {
    /// Channels (features).
    pub c: usize,
    /// Values per channel per sample: 1 for BatchNorm1d, h * w for BatchNorm2d.
    pub s: usize,
}

/// Channels of BatchNorm2d summed side by side: their f64 chains are independent, so
/// the adder's latency is hidden while each channel's terms are still added one by one
/// in sample order (the bits of a channel-at-a-time loop).
const GROUP: usize = 16;
/// Features of BatchNorm1d's [n, c] rows summed per sweep (accumulators on the stack).
const BLOCK: usize = 64;

/// The group sizes channels are taken in: 16, then 8, 6, 4, 2 and 1 for the rest.
fn groups(c: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut ch0 = 0;
    std::iter::from_fn(move || {
        let k = [GROUP, 8, 6, 4, 2, 1].into_iter().find(|&k| ch0 + k <= c)?;
        ch0 += k;
        Some((ch0 - k, k))
    })
}

/// One channel's f32 results of the forward pass from its f64 sums.
#[derive(Clone, Copy)]
struct Channel {
    mean: f32,
    invstd: f32,
}

impl BatchNorm {
    /// Channel `ch`'s values of sample `i`.
    #[inline(always)]
    fn span(&self, i: usize, ch: usize) -> std::ops::Range<usize> {
        (i * self.c + ch) * self.s..(i * self.c + ch + 1) * self.s
    }

    /// Train mode: normalise with the batch's statistics (biased variance), keep them
    /// in `saved`, and move `running` towards them (unbiased variance, n/(n-1)).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_train(
        &self,
        x: &[f32],
        n: usize,
        (weight, bias): (&[f32], &[f32]),
        running: &mut RunningStats,
        saved: &mut Moments,
        y: &mut [f32],
    ) -> Result<(), NormError> {
        let count = n * self.s;
        if count <= 1 {
            return Err(NormError::OneValuePerChannel { values: count });
        }
        saved.mean.resize(self.c, 0.0);
        saved.invstd.resize(self.c, 0.0);
        let (bn, saved) = (*self, (&mut saved.mean[..], &mut saved.invstd[..]));
        let data = (&x[..n * self.c * self.s], &mut y[..n * self.c * self.s]);
        train_kernel(bn, data, n, (weight, bias), running, saved);
        running.batches_tracked += 1;
        Ok(())
    }

    /// The train-mode pass at this thread's SIMD tier: per group of channels (per block
    /// of features for BatchNorm1d), the two sums, the statistics, then y.
    #[inline(always)]
    fn train_pass(
        &self,
        (x, y): (&[f32], &mut [f32]),
        n: usize,
        affine: (&[f32], &[f32]),
        running: &mut RunningStats,
        (mean, invstd): (&mut [f32], &mut [f32]),
    ) {
        let count = n * self.s;
        if self.s == 1 {
            for col in (0..self.c).step_by(BLOCK) {
                let w = BLOCK.min(self.c - col);
                let (mut sums, mut sq) = ([0.0f64; BLOCK], [0.0f64; BLOCK]);
                for row in x.chunks_exact(self.c) {
                    let acc = sums[..w].iter_mut().zip(&row[col..col + w]);
                    acc.for_each(|(a, &v)| *a += v as f64);
                }
                for (m, &s) in mean[col..col + w].iter_mut().zip(&sums) {
                    *m = (s / count as f64) as f32;
                }
                for row in x.chunks_exact(self.c) {
                    let acc = sq[..w].iter_mut().zip(&row[col..col + w]);
                    for ((a, &v), &m) in acc.zip(&mean[col..col + w]) {
                        *a += ((v - m) * (v - m)) as f64;
                    }
                }
                for ch in col..col + w {
                    let ch_sq = sq[ch - col] as f32;
                    invstd[ch] = finish(count, mean[ch], ch_sq, running, ch);
                }
            }
            return apply_rows(self.c, x, affine, (mean, invstd), y);
        }
        for (ch0, k) in groups(self.c) {
            let (mut sums, mut sq) = ([0.0f64; GROUP], [0.0f64; GROUP]);
            self.sweep(k, (x, x), n, ch0, &mut |j, v, _| sums[j] += v as f64);
            let m: [f32; GROUP] = std::array::from_fn(|j| (sums[j] / count as f64) as f32);
            self.sweep(k, (x, x), n, ch0, &mut |j, v, _| {
                sq[j] += ((v - m[j]) * (v - m[j])) as f64;
            });
            for j in 0..k {
                let is = finish(count, m[j], sq[j] as f32, running, ch0 + j);
                (mean[ch0 + j], invstd[ch0 + j]) = (m[j], is);
                let at = Channel {
                    mean: m[j],
                    invstd: is,
                };
                self.apply_planes(x, n, ch0 + j, affine, at, y);
            }
        }
    }

    /// Calls `f(j, a, b)` with the values of channels ch0..ch0 + k (a size of [`groups`]) of
    /// `a` and `b` [n, c, s], channel ch0 + j's in sample order, the k channels
    /// interleaved position by position.
    #[inline(always)]
    fn sweep(
        &self,
        k: usize,
        ab: (&[f32], &[f32]),
        n: usize,
        ch0: usize,
        f: &mut impl FnMut(usize, f32, f32),
    ) {
        match k {
            GROUP => self.sweep_k::<GROUP>(ab, n, ch0, f),
            8 => self.sweep_k::<8>(ab, n, ch0, f),
            6 => self.sweep_k::<6>(ab, n, ch0, f),
            4 => self.sweep_k::<4>(ab, n, ch0, f),
            2 => self.sweep_k::<2>(ab, n, ch0, f),
            _ => self.sweep_k::<1>(ab, n, ch0, f),
        }
    }

    /// [`Self::sweep`] for a group of `K` channels.
    #[inline(always)]
    fn sweep_k<const K: usize>(
        &self,
        (a, b): (&[f32], &[f32]),
        n: usize,
        ch0: usize,
        f: &mut impl FnMut(usize, f32, f32),
    ) {
        let s = self.s;
        for i in 0..n {
            let at = (i * self.c + ch0) * s;
            let (a, b) = (&a[at..at + K * s], &b[at..at + K * s]);
            for pos in 0..s {
                for j in 0..K {
                    // SAFETY: j < K and pos < s, so j * s + pos < K * s, the length of
                    // both slices (checked by the indexing above).
                    let (u, v) = unsafe {
                        let at = j * s + pos;
                        (*a.get_unchecked(at), *b.get_unchecked(at))
                    };
                    f(j, u, v);
                }
            }
        }
    }

    /// y = x * alpha + beta on channel `ch`'s planes, alpha = invstd * weight,
    /// beta = bias - mean * alpha.
    #[inline(always)]
    fn apply_planes(
        &self,
        x: &[f32],
        n: usize,
        ch: usize,
        (weight, bias): (&[f32], &[f32]),
        at: Channel,
        y: &mut [f32],
    ) {
        let alpha = at.invstd * weight[ch];
        let beta = bias[ch] - at.mean * alpha;
        for i in 0..n {
            let r = self.span(i, ch);
            for (o, &v) in y[r.clone()].iter_mut().zip(&x[r]) {
                *o = v * alpha + beta;
            }
        }
    }

    /// Eval mode: normalise with the running statistics.
    pub fn forward_eval(
        &self,
        x: &[f32],
        n: usize,
        affine: (&[f32], &[f32]),
        running: &RunningStats,
        y: &mut [f32],
    ) {
        let data = (&x[..n * self.c * self.s], &mut y[..n * self.c * self.s]);
        eval_kernel(*self, data, affine, running);
    }

    /// The eval-mode pass at this thread's SIMD tier.
    #[inline(always)]
    fn eval_pass(
        &self,
        (x, y): (&[f32], &mut [f32]),
        affine: (&[f32], &[f32]),
        running: &RunningStats,
    ) {
        // In f32, as PyTorch computes the eval-mode scale.
        let invstd = |v: f32| 1.0 / (v + EPS as f32).sqrt();
        if self.s == 1 {
            let mut is = [0.0f32; BLOCK];
            for col in (0..self.c).step_by(BLOCK) {
                let w = BLOCK.min(self.c - col);
                let var = &running.var[col..col + w];
                is.iter_mut().zip(var).for_each(|(i, &v)| *i = invstd(v));
                let stats = (&running.mean[col..col + w], &is[..w]);
                apply_block(self.c, col, x, affine, stats, y);
            }
            return;
        }
        if self.s == 0 {
            return; // no values (a map the spec check refuses to build)
        }
        // Sample by sample: one stream through x and y (eval batches are large).
        let (weight, bias) = affine;
        let planes = x.chunks_exact(self.s).zip(y.chunks_exact_mut(self.s));
        for (p, (x, y)) in planes.enumerate() {
            let ch = p % self.c;
            let alpha = invstd(running.var[ch]) * weight[ch];
            let beta = bias[ch] - running.mean[ch] * alpha;
            for (o, &v) in y.iter_mut().zip(x) {
                *o = v * alpha + beta;
            }
        }
    }

    /// Train-mode backward from the `saved` statistics of the forward pass:
    /// dx = (dy - mean(dy) - (x - mean) * dot / count * invstd^2) * invstd * weight,
    /// dweight = dot * invstd, dbias = sum(dy), with dot = sum((x - mean) * dy).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x: &[f32],
        dy: &[f32],
        n: usize,
        weight: &[f32],
        saved: &Moments,
        grads: (&mut [f32], &mut [f32]),
        dx: &mut [f32],
    ) {
        let len = n * self.c * self.s;
        let data = (&x[..len], &dy[..len], &mut dx[..len]);
        backward_kernel(*self, data, n, weight, saved, grads);
    }

    /// The backward pass at this thread's SIMD tier: per group of channels (block of
    /// features), sum(dy) and sum((x - mean) * dy) in f64, then dx.
    #[inline(always)]
    fn backward_pass(
        &self,
        (x, dy, dx): (&[f32], &[f32], &mut [f32]),
        n: usize,
        weight: &[f32],
        saved: &Moments,
        (dweight, dbias): (&mut [f32], &mut [f32]),
    ) {
        let count = (n * self.s) as f64;
        let mut terms = [Terms::default(); BLOCK];
        let mut term = |ch: usize, sum: f64, dot: f64| {
            let (mean, invstd) = (saved.mean[ch], saved.invstd[ch]);
            dweight[ch] = (dot * invstd as f64) as f32;
            dbias[ch] = sum as f32;
            Terms {
                mean,
                k: (dot * invstd as f64 * invstd as f64 / count) as f32,
                grad_mean: (sum / count) as f32,
                scale: invstd * weight[ch],
            }
        };
        if self.s == 1 {
            for col in (0..self.c).step_by(BLOCK) {
                let w = BLOCK.min(self.c - col);
                let (sums, dots) = block_grad_sums(self.c, col, w, (x, dy), &saved.mean);
                for j in 0..w {
                    terms[j] = term(col + j, sums[j], dots[j]);
                }
                dx_block(self.c, col, (x, dy), &terms[..w], dx);
            }
            return;
        }
        for (ch0, k) in groups(self.c) {
            let (mut sums, mut dots) = ([0.0f64; GROUP], [0.0f64; GROUP]);
            let m: [f32; GROUP] =
                std::array::from_fn(|j| saved.mean.get(ch0 + j).map_or(0.0, |&m| m));
            self.sweep(k, (x, dy), n, ch0, &mut |j, v, g| {
                sums[j] += g as f64;
                dots[j] += ((v - m[j]) * g) as f64;
            });
            for j in 0..k {
                let t = term(ch0 + j, sums[j], dots[j]);
                for i in 0..n {
                    let r = self.span(i, ch0 + j);
                    let src = x[r.clone()].iter().zip(&dy[r.clone()]);
                    for (d, (&v, &g)) in dx[r].iter_mut().zip(src) {
                        *d = t.dx(g, v);
                    }
                }
            }
        }
    }
}

/// One channel's constants of dx's formula.
#[derive(Debug, Clone, Copy, Default)]
struct Terms {
    mean: f32,
    k: f32,
    grad_mean: f32,
    scale: f32,
}

impl Terms {
    /// dx of one value v with gradient g.
    #[inline(always)]
    fn dx(self, g: f32, v: f32) -> f32 {
        (g - self.grad_mean - (v - self.mean) * self.k) * self.scale
    }
}

/// One channel's 1 / sqrt(var + eps) from its sum of squared deviations, as PyTorch
/// computes it (f64), and the running statistics moved towards the batch's.
#[inline(always)]
fn finish(count: usize, mean: f32, sq: f32, running: &mut RunningStats, ch: usize) -> f32 {
    let (rm, rv) = (&mut running.mean[ch], &mut running.var[ch]);
    *rm = (MOMENTUM * mean as f64 + (1.0 - MOMENTUM) * *rm as f64) as f32;
    let unbiased = sq as f64 / (count - 1) as f64;
    *rv = (MOMENTUM * unbiased + (1.0 - MOMENTUM) * *rv as f64) as f32;
    (1.0 / (sq as f64 / count as f64 + EPS).sqrt()) as f32
}

/// BatchNorm1d's y = x * alpha + beta on [n, c] rows, per feature.
#[inline(always)]
fn apply_rows(
    c: usize,
    x: &[f32],
    affine: (&[f32], &[f32]),
    (mean, invstd): (&[f32], &[f32]),
    y: &mut [f32],
) {
    for col in (0..c).step_by(BLOCK) {
        let w = BLOCK.min(c - col);
        let stats = (&mean[col..col + w], &invstd[col..col + w]);
        apply_block(c, col, x, affine, stats, y);
    }
}

/// [`apply_rows`] on features col..col + mean.len() (at most [`BLOCK`]).
#[inline(always)]
fn apply_block(
    c: usize,
    col: usize,
    x: &[f32],
    (weight, bias): (&[f32], &[f32]),
    (mean, invstd): (&[f32], &[f32]),
    y: &mut [f32],
) {
    let w = mean.len();
    let (mut alpha, mut beta) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    for j in 0..w {
        alpha[j] = invstd[j] * weight[col + j];
        beta[j] = bias[col + j] - mean[j] * alpha[j];
    }
    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        let ab = alpha[..w].iter().zip(&beta[..w]);
        let rows = yr[col..col + w].iter_mut().zip(&xr[col..col + w]);
        for ((o, &v), (&a, &b)) in rows.zip(ab) {
            *o = v * a + b;
        }
    }
}

/// BatchNorm1d's sum(dy) and sum((x - mean) * dy) of features col..col + w (at most
/// [`BLOCK`]) in f64, row by row.
#[inline(always)]
fn block_grad_sums(
    c: usize,
    col: usize,
    w: usize,
    (x, dy): (&[f32], &[f32]),
    mean: &[f32],
) -> ([f64; BLOCK], [f64; BLOCK]) {
    let (mut sums, mut dots) = ([0.0f64; BLOCK], [0.0f64; BLOCK]);
    let mean = &mean[col..col + w];
    for (xr, gr) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
        let acc = sums[..w].iter_mut().zip(&mut dots[..w]);
        let vals = xr[col..col + w].iter().zip(&gr[col..col + w]).zip(mean);
        for ((s, d), ((&v, &g), &m)) in acc.zip(vals) {
            *s += g as f64;
            *d += ((v - m) * g) as f64;
        }
    }
    (sums, dots)
}

/// BatchNorm1d's dx of features col..col + terms.len(), row by row.
#[inline(always)]
fn dx_block(c: usize, col: usize, (x, dy): (&[f32], &[f32]), terms: &[Terms], dx: &mut [f32]) {
    let w = terms.len();
    let rows = x.chunks_exact(c).zip(dy.chunks_exact(c));
    for (d, (xr, gr)) in dx.chunks_exact_mut(c).zip(rows) {
        let vals = xr[col..col + w].iter().zip(&gr[col..col + w]).zip(terms);
        for (d, ((&v, &g), &t)) in d[col..col + w].iter_mut().zip(vals) {
            *d = t.dx(g, v);
        }
    }
}

/// [`BatchNorm::train_pass`] compiled for each SIMD tier.
fn train_kernel(
    bn: BatchNorm,
    data: (&[f32], &mut [f32]),
    n: usize,
    affine: (&[f32], &[f32]),
    running: &mut RunningStats,
    saved: (&mut [f32], &mut [f32]),
) {
    crate::simd_dispatch!((bn: BatchNorm, data: (&[f32], &mut [f32]), n: usize, affine: (&[f32], &[f32]), running: &mut RunningStats, saved: (&mut [f32], &mut [f32])) {
        bn.train_pass(data, n, affine, running, saved)
    })
}

/// [`BatchNorm::eval_pass`] compiled for each SIMD tier.
fn eval_kernel(
    bn: BatchNorm,
    data: (&[f32], &mut [f32]),
    affine: (&[f32], &[f32]),
    running: &RunningStats,
) {
    crate::simd_dispatch!((bn: BatchNorm, data: (&[f32], &mut [f32]), affine: (&[f32], &[f32]), running: &RunningStats) {
        bn.eval_pass(data, affine, running)
    })
}

/// [`BatchNorm::backward_pass`] compiled for each SIMD tier.
fn backward_kernel(
    bn: BatchNorm,
    data: (&[f32], &[f32], &mut [f32]),
    n: usize,
    weight: &[f32],
    saved: &Moments,
    grads: (&mut [f32], &mut [f32]),
) {
    crate::simd_dispatch!((bn: BatchNorm, data: (&[f32], &[f32], &mut [f32]), n: usize, weight: &[f32], saved: &Moments, grads: (&mut [f32], &mut [f32])) {
        bn.backward_pass(data, n, weight, saved, grads)
    })
}

/// Per-sample normalisation over all c * s values of a sample, with a weight and bias
/// per channel: LayerNorm(c) when s = 1, GroupNorm(1, c) on c x h x w when s = h * w.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerNorm {
    /// Channels (the width for LayerNorm).
    pub c: usize,
    /// Values per channel: 1 for LayerNorm, h * w for GroupNorm(1, c).
    pub s: usize,
}

impl LayerNorm {
    /// Normalise each sample by its own mean and biased variance; keep them in `saved`.
    pub fn forward(
        &self,
        x: &[f32],
        n: usize,
        (weight, bias): (&[f32], &[f32]),
        saved: &mut Moments,
        y: &mut [f32],
    ) {
        let d = self.c * self.s;
        saved.mean.resize(n, 0.0);
        saved.invstd.resize(n, 0.0);
        for (i, (x, y)) in x[..n * d]
            .chunks_exact(d)
            .zip(y[..n * d].chunks_exact_mut(d))
            .enumerate()
        {
            let mean = (x.iter().map(|&v| v as f64).sum::<f64>() / d as f64) as f32;
            let var =
                (x.iter().map(|&v| ((v - mean) as f64).powi(2)).sum::<f64>() / d as f64) as f32;
            let rstd = 1.0 / (var.max(0.0) + EPS as f32).sqrt();
            (saved.mean[i], saved.invstd[i]) = (mean, rstd);
            for (ch, (x, y)) in x
                .chunks_exact(self.s)
                .zip(y.chunks_exact_mut(self.s))
                .enumerate()
            {
                // PyTorch's GroupNorm form: y = x * scale + shift per channel.
                let scale = rstd * weight[ch];
                let shift = -scale * mean + bias[ch];
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = v * scale + shift;
                }
            }
        }
    }

    /// Backward from the forward pass's `saved` moments (PyTorch's GroupNorm formulas):
    /// per sample, with ds_c = sum(dy * x), db_c = sum(dy) over a channel's values,
    /// dx = rstd * weight_c * dy + b * x + c2, b = (sum_c db_c w_c * mean - sum_c ds_c w_c)
    /// * rstd^3 / d, c2 = -b * mean - sum_c db_c w_c * rstd / d.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x: &[f32],
        dy: &[f32],
        n: usize,
        weight: &[f32],
        saved: &Moments,
        (dweight, dbias): (&mut [f32], &mut [f32]),
        dx: &mut [f32],
    ) {
        let d = self.c * self.s;
        let mut sums = (vec![0.0f64; self.c], vec![0.0f64; self.c]);
        for i in 0..n {
            let r = i * d..(i + 1) * d;
            let moments = (saved.mean[i], saved.invstd[i]);
            self.sample_backward(
                &x[r.clone()],
                &dy[r.clone()],
                weight,
                moments,
                &mut sums,
                &mut dx[r],
            );
        }
        for (ch, (gw, gb)) in sums.0.iter().zip(&sums.1).enumerate() {
            (dweight[ch], dbias[ch]) = (*gw as f32, *gb as f32);
        }
    }

    /// One sample's dx, and its terms of dweight and dbias added to `sums` (in f64).
    fn sample_backward(
        &self,
        x: &[f32],
        dy: &[f32],
        weight: &[f32],
        (mean, rstd): (f32, f32),
        (gw, gb): &mut (Vec<f64>, Vec<f64>),
        dx: &mut [f32],
    ) {
        let (mut ds_w, mut db_w) = (0.0f64, 0.0f64);
        let channels = x.chunks_exact(self.s).zip(dy.chunks_exact(self.s));
        for (ch, (x, dy)) in channels.enumerate() {
            let (mut ds, mut db, mut centred) = (0.0f64, 0.0f64, 0.0f64);
            for (&v, &g) in x.iter().zip(dy) {
                ds += (g * v) as f64;
                db += g as f64;
                centred += (g * (v - mean)) as f64;
            }
            ds_w += (ds as f32 * weight[ch]) as f64;
            db_w += (db as f32 * weight[ch]) as f64;
            // dweight from the centred values: ds - db * mean would cancel.
            gw[ch] += centred * rstd as f64;
            gb[ch] += db;
        }
        let (ds_w, db_w, inv_d) = (ds_w as f32, db_w as f32, 1.0 / x.len() as f32);
        let b = (db_w * mean - ds_w) * rstd * rstd * rstd * inv_d;
        let c2 = -b * mean - db_w * rstd * inv_d;
        let channels = x.chunks_exact(self.s).zip(dy.chunks_exact(self.s));
        for ((x, dy), (dx, &w)) in channels.zip(dx.chunks_exact_mut(self.s).zip(weight)) {
            let a = rstd * w;
            for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                *o = a * g + b * v + c2;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv::tests::values;

    /// The f32 loss sum(coef * y) and its gradients (dx, dweight, dbias) for one norm.
    type Run<'a> = dyn Fn(&[f32], &[f32], &[f32]) -> (f64, Vec<f32>, Vec<f32>, Vec<f32>) + 'a;

    /// Every input, weight and bias against central differences in f64 of the f32 loss.
    fn check(what: &str, x: &[f32], c: usize, run: &Run<'_>) {
        let (mut w, b) = (values(c, 21), values(c, 22));
        w.iter_mut().for_each(|v| *v += 1.5);
        let mut p = [x.to_vec(), w, b];
        let (_, dx, dw, db) = run(&p[0], &p[1], &p[2]);
        let h = 3e-3;
        for (which, grads) in [dx, dw, db].into_iter().enumerate() {
            for (i, &got) in grads.iter().enumerate() {
                let o = p[which][i];
                p[which][i] = o + h;
                let lp = run(&p[0], &p[1], &p[2]).0;
                p[which][i] = o - h;
                let lm = run(&p[0], &p[1], &p[2]).0;
                p[which][i] = o;
                let numeric = (lp - lm) / (2.0 * h as f64);
                let name = ["dx", "dweight", "dbias"][which];
                assert!(
                    (numeric - got as f64).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "{what} {name}[{i}]: numeric {numeric} vs {got}"
                );
            }
        }
    }

    fn loss(y: &[f32], coef: &[f32]) -> f64 {
        y.iter().zip(coef).map(|(&y, &c)| (y * c) as f64).sum()
    }

    #[test]
    fn batch_norm_gradients_match_finite_differences() {
        for (n, c, s) in [(4, 3, 1), (3, 2, 5)] {
            let norm = BatchNorm { c, s };
            let x = values(n * c * s, 23);
            let coef = values(n * c * s, 24);
            check(
                &format!("batch norm {n}x{c}x{s}"),
                &x,
                c,
                &|x: &[f32], w: &[f32], b: &[f32]| {
                    let (mut y, mut saved) = (vec![0.0; x.len()], Moments::default());
                    norm.forward_train(x, n, (w, b), &mut RunningStats::new(c), &mut saved, &mut y)
                        .unwrap();
                    let (mut dx, mut dw, mut db) = (vec![9.0; x.len()], vec![9.0; c], vec![9.0; c]);
                    norm.backward(x, &coef, n, w, &saved, (&mut dw, &mut db), &mut dx);
                    (loss(&y, &coef), dx, dw, db)
                },
            );
        }
    }

    #[test]
    fn layer_and_group_norm_gradients_match_finite_differences() {
        for (n, c, s) in [(3, 5, 1), (2, 3, 4)] {
            let norm = LayerNorm { c, s };
            let x = values(n * c * s, 25);
            let coef = values(n * c * s, 26);
            check(
                &format!("layer norm {n}x{c}x{s}"),
                &x,
                c,
                &|x: &[f32], w: &[f32], b: &[f32]| {
                    let (mut y, mut saved) = (vec![0.0; x.len()], Moments::default());
                    norm.forward(x, n, (w, b), &mut saved, &mut y);
                    let (mut dx, mut dw, mut db) = (vec![9.0; x.len()], vec![9.0; c], vec![9.0; c]);
                    norm.backward(x, &coef, n, w, &saved, (&mut dw, &mut db), &mut dx);
                    (loss(&y, &coef), dx, dw, db)
                },
            );
        }
    }

    /// Running statistics move by momentum 0.1 towards the batch mean and the unbiased
    /// variance; eval mode normalises with them; one value per channel is an error.
    #[test]
    fn running_statistics_eval_mode_and_a_batch_of_one() {
        let norm = BatchNorm { c: 1, s: 1 };
        let x = [1.0, 2.0, 3.0, 6.0];
        let mut run = RunningStats::new(1);
        let (mut y, mut saved) = ([0.0; 4], Moments::default());
        norm.forward_train(&x, 4, (&[1.0], &[0.0]), &mut run, &mut saved, &mut y)
            .unwrap();
        // mean 3, biased variance 3.5, unbiased 14/3.
        assert_eq!(saved.mean, [3.0]);
        assert!((y[3] - 3.0 / 3.5f32.sqrt()).abs() < 1e-5, "{y:?}");
        assert_eq!(run.mean, [0.3]);
        assert!(
            (run.var[0] - (0.9 + 0.1 * 14.0 / 3.0)).abs() < 1e-6,
            "{:?}",
            run.var
        );
        assert_eq!(run.batches_tracked, 1);
        norm.forward_eval(&x, 4, (&[2.0], &[1.0]), &run, &mut y);
        let want = (6.0 - run.mean[0]) / (run.var[0] + 1e-5).sqrt() * 2.0 + 1.0;
        assert!((y[3] - want).abs() < 1e-5, "{y:?} vs {want}");
        let e = norm.forward_train(&x[..1], 1, (&[1.0], &[0.0]), &mut run, &mut saved, &mut y);
        assert_eq!(e, Err(NormError::OneValuePerChannel { values: 1 }));
        assert_eq!(run.batches_tracked, 1, "a refused batch changes nothing");
        // BatchNorm2d on one image of several pixels trains, as in PyTorch.
        let two_d = BatchNorm { c: 1, s: 4 };
        assert!(two_d
            .forward_train(&x, 1, (&[1.0], &[0.0]), &mut run, &mut saved, &mut y)
            .is_ok());
    }
}

#[cfg(test)]
mod reference;
