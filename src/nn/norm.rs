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

impl BatchNorm {
    /// Channel `ch`'s values of sample `i`.
    #[inline]
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
        let var_sums = self.moments(x, n, &mut saved.mean);
        for (ch, &var_sum) in var_sums.iter().enumerate() {
            let mean = saved.mean[ch];
            saved.invstd[ch] = (1.0 / (var_sum as f64 / count as f64 + EPS).sqrt()) as f32;
            let (rm, rv) = (&mut running.mean[ch], &mut running.var[ch]);
            *rm = (MOMENTUM * mean as f64 + (1.0 - MOMENTUM) * *rm as f64) as f32;
            let unbiased = var_sum as f64 / (count - 1) as f64;
            *rv = (MOMENTUM * unbiased + (1.0 - MOMENTUM) * *rv as f64) as f32;
        }
        running.batches_tracked += 1;
        self.apply(x, n, (weight, bias), &saved.mean, &saved.invstd, y);
        Ok(())
    }

    /// Each channel's mean (into `mean`) and sum of squared deviations, as PyTorch's
    /// CPU kernel: sums in f64, the mean rounded to f32, then the sum of squared f32
    /// deviations in f64, kept as f32. Each channel's terms are added in sample order
    /// either way; BatchNorm1d's [n, c] rows are read row by row (contiguous).
    fn moments(&self, x: &[f32], n: usize, mean: &mut [f32]) -> Vec<f32> {
        let count = (n * self.s) as f64;
        let mut sums = vec![0.0f64; self.c];
        if self.s == 1 {
            for row in x[..n * self.c].chunks_exact(self.c) {
                sums.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
            }
            mean.iter_mut()
                .zip(&sums)
                .for_each(|(m, &s)| *m = (s / count) as f32);
            sums.fill(0.0);
            for row in x[..n * self.c].chunks_exact(self.c) {
                for ((a, &v), &m) in sums.iter_mut().zip(row).zip(&*mean) {
                    *a += ((v - m) * (v - m)) as f64;
                }
            }
            return sums.iter().map(|&s| s as f32).collect();
        }
        (0..self.c)
            .map(|ch| {
                let values = || (0..n).flat_map(move |i| &x[self.span(i, ch)]);
                let sum: f64 = values().map(|&v| v as f64).sum();
                let m = (sum / count) as f32;
                mean[ch] = m;
                values().map(|&v| ((v - m) * (v - m)) as f64).sum::<f64>() as f32
            })
            .collect()
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
        // In f32, as PyTorch computes the eval-mode scale.
        let invstd: Vec<f32> = running
            .var
            .iter()
            .map(|&v| 1.0 / (v + EPS as f32).sqrt())
            .collect();
        self.apply(x, n, affine, &running.mean, &invstd, y);
    }

    /// y = x * alpha + beta per channel, alpha = invstd * weight, beta = bias - mean * alpha.
    fn apply(
        &self,
        x: &[f32],
        n: usize,
        (weight, bias): (&[f32], &[f32]),
        mean: &[f32],
        invstd: &[f32],
        y: &mut [f32],
    ) {
        if self.s == 1 {
            let alpha: Vec<f32> = invstd.iter().zip(weight).map(|(&i, &w)| i * w).collect();
            let beta: Vec<f32> = (bias.iter().zip(mean).zip(&alpha))
                .map(|((&b, &m), &a)| b - m * a)
                .collect();
            let rows = x[..n * self.c].chunks_exact(self.c);
            for (yr, xr) in y[..n * self.c].chunks_exact_mut(self.c).zip(rows) {
                for (((o, &v), &a), &b) in yr.iter_mut().zip(xr).zip(&alpha).zip(&beta) {
                    *o = v * a + b;
                }
            }
            return;
        }
        for ch in 0..self.c {
            let alpha = invstd[ch] * weight[ch];
            let beta = bias[ch] - mean[ch] * alpha;
            for i in 0..n {
                let r = self.span(i, ch);
                for (o, &v) in y[r.clone()].iter_mut().zip(&x[r]) {
                    *o = v * alpha + beta;
                }
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
        (dweight, dbias): (&mut [f32], &mut [f32]),
        dx: &mut [f32],
    ) {
        let count = (n * self.s) as f64;
        let (sums, dots) = self.grad_sums(x, dy, n, &saved.mean);
        // Per channel: (mean, k, grad_mean, scale) of dx's formula.
        let mut terms = Vec::with_capacity(self.c);
        for ch in 0..self.c {
            let (mean, invstd, sum, dot) = (saved.mean[ch], saved.invstd[ch], sums[ch], dots[ch]);
            dweight[ch] = (dot * invstd as f64) as f32;
            dbias[ch] = sum as f32;
            let k = (dot * invstd as f64 * invstd as f64 / count) as f32;
            let grad_mean = (sum / count) as f32;
            terms.push((mean, k, grad_mean, invstd * weight[ch]));
        }
        let dx_of = |g: f32, v: f32, (mean, k, grad_mean, scale): (f32, f32, f32, f32)| {
            (g - grad_mean - (v - mean) * k) * scale
        };
        if self.s == 1 {
            let rows = x[..n * self.c]
                .chunks_exact(self.c)
                .zip(dy.chunks_exact(self.c));
            for (d, (x, g)) in dx[..n * self.c].chunks_exact_mut(self.c).zip(rows) {
                for (((d, &v), &g), &t) in d.iter_mut().zip(x).zip(g).zip(&terms) {
                    *d = dx_of(g, v, t);
                }
            }
            return;
        }
        for (ch, &t) in terms.iter().enumerate() {
            for i in 0..n {
                let r = self.span(i, ch);
                for ((d, &v), &g) in dx[r.clone()].iter_mut().zip(&x[r.clone()]).zip(&dy[r]) {
                    *d = dx_of(g, v, t);
                }
            }
        }
    }

    /// Per channel, sum(dy) and sum((x - mean) * dy) in f64, each channel's terms in
    /// sample order either way; BatchNorm1d's [n, c] rows row by row (contiguous).
    fn grad_sums(&self, x: &[f32], dy: &[f32], n: usize, mean: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let (mut sums, mut dots) = (vec![0.0f64; self.c], vec![0.0f64; self.c]);
        if self.s == 1 {
            let rows = x[..n * self.c]
                .chunks_exact(self.c)
                .zip(dy.chunks_exact(self.c));
            for (x, g) in rows {
                let acc = sums.iter_mut().zip(dots.iter_mut());
                for (((s, d), (&v, &g)), &m) in acc.zip(x.iter().zip(g)).zip(mean) {
                    *s += g as f64;
                    *d += ((v - m) * g) as f64;
                }
            }
            return (sums, dots);
        }
        for ch in 0..self.c {
            for i in 0..n {
                let r = self.span(i, ch);
                for (&v, &g) in x[r.clone()].iter().zip(&dy[r]) {
                    sums[ch] += g as f64;
                    dots[ch] += ((v - mean[ch]) * g) as f64;
                }
            }
        }
        (sums, dots)
    }
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
