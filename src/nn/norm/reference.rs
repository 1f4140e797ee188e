//! The batch norm kernels as they were before they summed channels side by side, kept
//! to check that the faster ones give the same bits (train and eval forward, backward,
//! running statistics) on BatchNorm1d and BatchNorm2d shapes.

use super::*;
use crate::nn::conv::tests::values;

/// The earlier kernels, channel by channel.
#[derive(Debug, Clone, Copy)]
struct Old {
    c: usize,
    s: usize,
}

impl Old {
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

/// Panics unless `got` and `want` have the same bits.
fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}[{i}]: {g:e} vs {w:e}");
    }
}

/// Inputs with an offset per channel (so the means matter) and a wide range.
fn inputs(len: usize, seed: u32) -> Vec<f32> {
    let v = values(len, seed);
    v.iter()
        .enumerate()
        .map(|(i, &v)| v * (1.0 + (i % 7) as f32) + (i % 5) as f32 * 0.37)
        .collect()
}

#[test]
fn batch_norm_gives_the_bits_of_the_channel_by_channel_kernels() {
    // BatchNorm1d blocks of 64 features with a tail, BatchNorm2d groups of 8, 4, 2, 1.
    let shapes = [
        (5, 6, 7),
        (3, 16, 100),
        (4, 15, 9),
        (9, 130, 1),
        (2, 3, 1),
        (1, 3, 4),
    ];
    for (n, c, s) in shapes {
        let (new, old) = (BatchNorm { c, s }, Old { c, s });
        let len = n * c * s;
        let (x, dy) = (inputs(len, 31), values(len, 32));
        let (w, b) = (inputs(c, 33), values(c, 34));
        let mut runs = [RunningStats::new(c), RunningStats::new(c)];
        runs.iter_mut()
            .for_each(|r| r.var.iter_mut().for_each(|v| *v = 0.7));
        let mut saved = [Moments::default(), Moments::default()];
        let mut y = [vec![0.0; len], vec![0.0; len]];
        let [r0, r1] = &mut runs;
        let [s0, s1] = &mut saved;
        let [y0, y1] = &mut y;
        new.forward_train(&x, n, (&w, &b), r0, s0, y0).unwrap();
        old.forward_train(&x, n, (&w, &b), r1, s1, y1).unwrap();
        let what = format!("{n}x{c}x{s}");
        same_bits(&format!("{what} y"), y0, y1);
        same_bits(&format!("{what} mean"), &s0.mean, &s1.mean);
        same_bits(&format!("{what} invstd"), &s0.invstd, &s1.invstd);
        same_bits(&format!("{what} running mean"), &r0.mean, &r1.mean);
        same_bits(&format!("{what} running var"), &r0.var, &r1.var);
        assert_eq!(r0.batches_tracked, r1.batches_tracked);
        let mut grads = [
            (vec![0.0; c], vec![0.0; c], vec![0.0; len]),
            (vec![1.0; c], vec![1.0; c], vec![1.0; len]),
        ];
        let [(dw0, db0, dx0), (dw1, db1, dx1)] = &mut grads;
        new.backward(&x, &dy, n, &w, s0, (dw0, db0), dx0);
        old.backward(&x, &dy, n, &w, s1, (dw1, db1), dx1);
        same_bits(&format!("{what} dx"), dx0, dx1);
        same_bits(&format!("{what} dweight"), dw0, dw1);
        same_bits(&format!("{what} dbias"), db0, db1);
        new.forward_eval(&x, n, (&w, &b), r0, y0);
        old.forward_eval(&x, n, (&w, &b), r1, y1);
        same_bits(&format!("{what} eval y"), y0, y1);
    }
}
