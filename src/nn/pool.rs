//! 2x2 pooling with stride 2 (F.max_pool2d(x, 2) and F.avg_pool2d(x, 2)), forward
//! and backward.
//!
//! Shapes: x [n, c, h, w] (NCHW); y [n, c, h / 2, w / 2], floored as in PyTorch (an odd
//! last row or column is never read and gets no gradient). Max pooling records, for
//! each output, the index within its input plane (y * w + x) of the window's FIRST
//! maximum in row-major order (PyTorch's rule for ties; a NaN wins, the last one, as in PyTorch) and
//! sends the whole gradient there; average pooling spreads dy / 4 over the window.

use super::conv::ShapeError;

/// Which reduction over each 2x2 window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// The window's maximum.
    Max,
    /// The window's mean.
    Avg,
}

/// One pooling layer on its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// Max or average.
    pub kind: PoolKind,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
}

impl PoolShape {
    /// Checked pooling of a c x h x w map after conv layer `layer` (1-based, for messages).
    pub fn new(
        layer: usize,
        kind: PoolKind,
        (c, h, w): (usize, usize, usize),
    ) -> Result<Self, ShapeError> {
        if h < 2 || w < 2 {
            return Err(ShapeError::PoolShrinks { layer, h, w });
        }
        Ok(PoolShape { kind, c, h, w })
    }

    /// Output (channels, height, width).
    pub fn out_dims(&self) -> (usize, usize, usize) {
        (self.c, self.h / 2, self.w / 2)
    }

    /// Values in one input image.
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Values in one output image (also the argmax entries per image for max pooling).
    pub fn out_len(&self) -> usize {
        self.c * (self.h / 2) * (self.w / 2)
    }

    /// y = pool(x) over `n` images; for max pooling `argmax` (at least n * out_len()
    /// entries) receives each maximum's position, for average pooling it is unused.
    pub fn forward(&self, x: &[f32], n: usize, y: &mut [f32], argmax: &mut [u32]) {
        let (h, w, oh, ow) = (self.h, self.w, self.h / 2, self.w / 2);
        let planes = x[..n * self.in_len()].chunks_exact(h * w);
        let outs = y[..n * self.out_len()].chunks_exact_mut(oh * ow);
        for (p, (plane, out)) in planes.zip(outs).enumerate() {
            for oy in 0..oh {
                for ox in 0..ow {
                    let at = [
                        (2 * oy) * w + 2 * ox,
                        (2 * oy) * w + 2 * ox + 1,
                        (2 * oy + 1) * w + 2 * ox,
                        (2 * oy + 1) * w + 2 * ox + 1,
                    ];
                    let o = oy * ow + ox;
                    match self.kind {
                        PoolKind::Max => {
                            let mut best = at[0];
                            for &i in &at[1..] {
                                // PyTorch's test: greater, or NaN.
                                if plane[i] > plane[best] || plane[i].is_nan() {
                                    best = i;
                                }
                            }
                            out[o] = plane[best];
                            argmax[p * oh * ow + o] = best as u32;
                        }
                        // Summed in window order, then divided, as PyTorch does.
                        PoolKind::Avg => {
                            out[o] =
                                (plane[at[0]] + plane[at[1]] + plane[at[2]] + plane[at[3]]) / 4.0
                        }
                    }
                }
            }
        }
    }

    /// dx from dy (dx overwritten); `argmax` is what `forward` recorded (max pooling).
    pub fn backward(&self, dy: &[f32], argmax: &[u32], n: usize, dx: &mut [f32]) {
        let (h, w, oh, ow) = (self.h, self.w, self.h / 2, self.w / 2);
        dx[..n * self.in_len()].fill(0.0);
        let planes = dx[..n * self.in_len()].chunks_exact_mut(h * w);
        let grads = dy[..n * self.out_len()].chunks_exact(oh * ow);
        for (p, (plane, g)) in planes.zip(grads).enumerate() {
            match self.kind {
                PoolKind::Max => {
                    for (&g, &i) in g.iter().zip(&argmax[p * oh * ow..(p + 1) * oh * ow]) {
                        plane[i as usize] += g;
                    }
                }
                PoolKind::Avg => {
                    for (o, &g) in g.iter().enumerate() {
                        let (oy, ox) = (o / ow, o % ow);
                        let d = g / 4.0;
                        for i in [(2 * oy) * w + 2 * ox, (2 * oy + 1) * w + 2 * ox] {
                            plane[i] += d;
                            plane[i + 1] += d;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_sizes_floor_and_ties_go_to_the_first_maximum() {
        let s = PoolShape::new(1, PoolKind::Max, (1, 3, 5)).unwrap();
        assert_eq!(s.out_dims(), (1, 1, 2));
        #[rustfmt::skip]
        let x = [
            1.0, 7.0, 2.0, 2.0, 9.0,
            7.0, 3.0, 0.0, 2.0, 9.0,
            9.0, 9.0, 9.0, 9.0, 9.0,
        ];
        let (mut y, mut idx) = ([0.0; 2], [0u32; 2]);
        s.forward(&x, 1, &mut y, &mut idx);
        assert_eq!(y, [7.0, 2.0]);
        // The tie 7 / 7 goes to (0, 1), the tie 2 / 2 / 2 to (0, 2).
        assert_eq!(idx, [1, 2]);
        let mut dx = [5.0; 15];
        s.backward(&[1.0, -2.0], &idx, 1, &mut dx);
        let mut want = [0.0; 15];
        (want[1], want[2]) = (1.0, -2.0);
        assert_eq!(dx, want);
        let a = PoolShape {
            kind: PoolKind::Avg,
            ..s
        };
        a.forward(&x, 1, &mut y, &mut []);
        assert_eq!(y, [4.5, 1.5]);
        assert_eq!(
            PoolShape::new(4, PoolKind::Avg, (3, 1, 6)).unwrap_err(),
            ShapeError::PoolShrinks {
                layer: 4,
                h: 1,
                w: 6
            }
        );
    }

    /// Both kinds against central differences in f64 of the f32 loss sum(coef * y),
    /// on an odd-sized input with a tie in one max window (held apart from the
    /// difference step so the perturbation does not change the winner).
    #[test]
    fn gradients_match_finite_differences() {
        let (n, dims) = (2, (2, 5, 4));
        let mut x = crate::nn::conv::tests::values(n * 40, 11);
        (x[0], x[1], x[4], x[5]) = (0.75, 0.75, -0.5, -0.5);
        let coef = crate::nn::conv::tests::values(n * 2 * 2 * 2, 12);
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let s = PoolShape::new(1, kind, dims).unwrap();
            let mut idx = vec![0u32; n * s.out_len()];
            let loss = |x: &[f32], idx: &mut [u32]| {
                let mut y = vec![0.0; n * s.out_len()];
                s.forward(x, n, &mut y, idx);
                y.iter()
                    .zip(&coef)
                    .map(|(&y, &c)| (y * c) as f64)
                    .sum::<f64>()
            };
            loss(&x, &mut idx);
            let mut dx = vec![9.0; x.len()];
            s.backward(&coef, &idx, n, &mut dx);
            if kind == PoolKind::Max {
                assert_eq!(
                    (dx[0], dx[1]),
                    (coef[0], 0.0),
                    "the tie's gradient goes to the first"
                );
            }
            let h = 1e-3;
            for i in 2..x.len() {
                let o = x[i];
                x[i] = o + h;
                let lp = loss(&x, &mut idx.clone());
                x[i] = o - h;
                let lm = loss(&x, &mut idx.clone());
                x[i] = o;
                let numeric = (lp - lm) / (2.0 * h as f64);
                assert!(
                    (numeric - dx[i] as f64).abs() < 1e-3 * (1.0 + numeric.abs()),
                    "{kind:?} dx[{i}]: numeric {numeric} vs {}",
                    dx[i]
                );
            }
        }
    }
}
