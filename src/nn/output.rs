//! Output functions applied to the last layer's logits, per row, as PyTorch defines them.
//!
//! Shapes: z (logits) and y = o(z) are [batch, classes]; `backward` maps dL/dy to dL/dz.

use std::fmt;
use std::str::FromStr;

use super::fastmath::exp;
use super::names::unknown_name;

/// What turns logits into the network's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFn {
    /// log(softmax(z)), computed stably.
    LogSoftmax,
    /// e^z / sum(e^z).
    Softmax,
    /// 1 / (1 + e^-z), elementwise.
    Sigmoid,
    /// The raw logits.
    Identity,
}

/// Every output name accepted on the command line.
pub const NAMES: [&str; 4] = ["log_softmax", "softmax", "sigmoid", "identity"];

fn softmax_row(z: &[f32], y: &mut [f32]) {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for (o, &v) in y.iter_mut().zip(z) {
        *o = exp(v - m);
        sum += *o;
    }
    let inv = 1.0 / sum;
    for o in y.iter_mut() {
        *o *= inv;
    }
}

/// log_softmax of one row.
pub fn log_softmax_row(z: &[f32], y: &mut [f32]) {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = z.iter().map(|&v| exp(v - m)).sum();
    let lse = m + sum.ln();
    for (o, &v) in y.iter_mut().zip(z) {
        *o = v - lse;
    }
}

/// log_softmax of every row of a [rows, classes] matrix, eight rows at a time, a row
/// per vector lane: each row gets exactly [`log_softmax_row`]'s operations in its
/// order (so the same bits), and the loops vectorise across rows instead of running
/// one 10-wide row at a time.
fn log_softmax_rows(z: &[f32], y: &mut [f32], classes: usize) {
    const LANES: usize = 8;
    const MAX_CLASSES: usize = 16;
    if classes == 0 || classes > MAX_CLASSES {
        z.chunks_exact(classes.max(1))
            .zip(y.chunks_exact_mut(classes.max(1)))
            .for_each(|(z, y)| log_softmax_row(z, y));
        return;
    }
    crate::simd_dispatch!((z: &[f32], y: &mut [f32], classes: usize) {
        let block = classes * LANES;
        let whole = z.len() / block * block;
        for (zb, yb) in z[..whole].chunks_exact(block).zip(y[..whole].chunks_exact_mut(block)) {
            let mut t = [[0.0f32; LANES]; MAX_CLASSES];
            for (l, row) in zb.chunks_exact(classes).enumerate() {
                for (k, &v) in row.iter().enumerate() {
                    t[k][l] = v;
                }
            }
            let mut m = [f32::NEG_INFINITY; LANES];
            for tk in &t[..classes] {
                for l in 0..LANES {
                    m[l] = m[l].max(tk[l]);
                }
            }
            let mut sum = [0.0f32; LANES];
            for tk in &t[..classes] {
                for l in 0..LANES {
                    sum[l] += exp(tk[l] - m[l]);
                }
            }
            for (l, (zr, yr)) in zb.chunks_exact(classes).zip(yb.chunks_exact_mut(classes)).enumerate() {
                let lse = m[l] + sum[l].ln();
                for (o, &v) in yr.iter_mut().zip(zr) {
                    *o = v - lse;
                }
            }
        }
        z[whole..]
            .chunks_exact(classes)
            .zip(y[whole..].chunks_exact_mut(classes))
            .for_each(|(z, y)| log_softmax_row(z, y));
    })
}

impl OutputFn {
    /// y = o(z) for a [rows, classes] matrix.
    pub fn forward(self, z: &[f32], y: &mut [f32], classes: usize) {
        match self {
            OutputFn::LogSoftmax => log_softmax_rows(z, y, classes),
            OutputFn::Softmax => z
                .chunks_exact(classes)
                .zip(y.chunks_exact_mut(classes))
                .for_each(|(z, y)| softmax_row(z, y)),
            OutputFn::Sigmoid => {
                for (o, &v) in y.iter_mut().zip(z) {
                    *o = 1.0 / (1.0 + exp(-v));
                }
            }
            OutputFn::Identity => y.copy_from_slice(z),
        }
    }

    /// dz from dy (vector-Jacobian product), given the outputs y.
    pub fn backward(self, y: &[f32], dy: &[f32], dz: &mut [f32], classes: usize) {
        match self {
            OutputFn::LogSoftmax => {
                for ((y, g), d) in y
                    .chunks_exact(classes)
                    .zip(dy.chunks_exact(classes))
                    .zip(dz.chunks_exact_mut(classes))
                {
                    let sum: f32 = g.iter().sum();
                    for ((d, &y), &g) in d.iter_mut().zip(y).zip(g) {
                        *d = g - exp(y) * sum;
                    }
                }
            }
            OutputFn::Softmax => {
                for ((y, g), d) in y
                    .chunks_exact(classes)
                    .zip(dy.chunks_exact(classes))
                    .zip(dz.chunks_exact_mut(classes))
                {
                    let dot: f32 = g.iter().zip(y).map(|(a, b)| a * b).sum();
                    for ((d, &y), &g) in d.iter_mut().zip(y).zip(g) {
                        *d = y * (g - dot);
                    }
                }
            }
            OutputFn::Sigmoid => {
                for ((d, &y), &g) in dz.iter_mut().zip(y).zip(dy) {
                    *d = g * y * (1.0 - y);
                }
            }
            OutputFn::Identity => dz.copy_from_slice(dy),
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            OutputFn::LogSoftmax => "log_softmax",
            OutputFn::Softmax => "softmax",
            OutputFn::Sigmoid => "sigmoid",
            OutputFn::Identity => "identity",
        }
    }

    /// Turn one row of outputs into class probabilities (for prediction display).
    pub fn probabilities(self, y: &[f32]) -> Vec<f32> {
        let mut p = vec![0.0; y.len()];
        match self {
            OutputFn::LogSoftmax => {
                for (o, &v) in p.iter_mut().zip(y) {
                    *o = v.exp();
                }
            }
            OutputFn::Softmax => p.copy_from_slice(y),
            OutputFn::Sigmoid => {
                let s: f32 = y.iter().sum();
                for (o, &v) in p.iter_mut().zip(y) {
                    *o = if s > 0.0 { v / s } else { 1.0 / y.len() as f32 };
                }
            }
            OutputFn::Identity => softmax_row(y, &mut p),
        }
        p
    }
}

impl fmt::Display for OutputFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OutputFn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_lowercase().as_str() {
            "log_softmax" | "logsoftmax" => OutputFn::LogSoftmax,
            "softmax" => OutputFn::Softmax,
            "sigmoid" => OutputFn::Sigmoid,
            "identity" | "none" | "logits" | "linear" => OutputFn::Identity,
            other => return Err(unknown_name("output", other, &NAMES)),
        })
    }
}

crate::serde_via_string!(OutputFn);

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows at a time give each row's own bits, with a remainder of rows, extreme
    /// logits and more classes than a block holds.
    #[test]
    fn log_softmax_by_blocks_is_row_by_row() {
        for classes in [10, 3, 16, 20] {
            let rows = 8 * 3 + 5;
            let z: Vec<f32> = (0..rows * classes)
                .map(|i| match i % 37 {
                    0 => 80.0,
                    1 => -90.0,
                    _ => ((i * 7919) % 1000) as f32 * 0.013 - 6.0,
                })
                .collect();
            let mut by_rows = vec![0.0; z.len()];
            log_softmax_rows(&z, &mut by_rows, classes);
            let mut one = vec![0.0; classes];
            for (r, row) in z.chunks_exact(classes).enumerate() {
                log_softmax_row(row, &mut one);
                let got = &by_rows[r * classes..(r + 1) * classes];
                let same = one.iter().zip(got).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{classes} classes, row {r}: {one:?} vs {got:?}");
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let z = [0.3f32, -1.2, 2.0, 0.1];
        let w = [0.7f32, -0.4, 1.3, 0.2]; // L = sum(w * o(z))
        for o in [
            OutputFn::LogSoftmax,
            OutputFn::Softmax,
            OutputFn::Sigmoid,
            OutputFn::Identity,
        ] {
            let loss = |z: &[f32]| {
                let mut y = [0.0; 4];
                o.forward(z, &mut y, 4);
                y.iter().zip(&w).map(|(a, b)| (a * b) as f64).sum::<f64>()
            };
            let mut y = [0.0; 4];
            o.forward(&z, &mut y, 4);
            let mut dz = [0.0; 4];
            o.backward(&y, &w, &mut dz, 4);
            for i in 0..4 {
                let h = 1e-2;
                let mut zp = z;
                zp[i] += h;
                let mut zm = z;
                zm[i] -= h;
                let numeric = (loss(&zp) - loss(&zm)) / (2.0 * h as f64);
                assert!(
                    (numeric - dz[i] as f64).abs() < 1e-3,
                    "{o} [{i}]: {numeric} vs {}",
                    dz[i]
                );
            }
        }
    }

    #[test]
    fn probabilities_sum_to_one() {
        let z = [0.5f32, 1.5, -0.5];
        for o in [OutputFn::LogSoftmax, OutputFn::Softmax, OutputFn::Identity] {
            let mut y = [0.0; 3];
            o.forward(&z, &mut y, 3);
            let p = o.probabilities(&y);
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }
}
