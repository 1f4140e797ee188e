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
        let (h, w, plane_out) = (self.h, self.w, (self.h / 2) * (self.w / 2));
        let planes = x[..n * self.in_len()].chunks_exact(h * w);
        let outs = y[..n * self.out_len()].chunks_exact_mut(plane_out);
        for (p, (plane, out)) in planes.zip(outs).enumerate() {
            match self.kind {
                PoolKind::Max => {
                    self.max_plane(plane, out, &mut argmax[p * plane_out..(p + 1) * plane_out])
                }
                PoolKind::Avg => self.avg_plane(plane, out),
            }
        }
    }

    /// One plane's maxima and their positions, row pair by row pair.
    fn max_plane(&self, plane: &[f32], out: &mut [f32], argmax: &mut [u32]) {
        let (w, ow) = (self.w, self.w / 2);
        let rows = out.chunks_exact_mut(ow).zip(argmax.chunks_exact_mut(ow));
        for (oy, (out, idx)) in rows.enumerate() {
            let top = &plane[2 * oy * w..(2 * oy + 1) * w];
            let bottom = &plane[(2 * oy + 1) * w..(2 * oy + 2) * w];
            let (base, wu) = ((2 * oy * w) as u32, w as u32);
            let pairs = top.chunks_exact(2).zip(bottom.chunks_exact(2));
            for (ox, ((t, b), (o, i))) in pairs.zip(out.iter_mut().zip(idx.iter_mut())).enumerate()
            {
                // Selects, not branches: the data would mispredict them.
                let (upper, up_at) = first_max((t[0], 0), (t[1], 1));
                let (lower, low_at) = first_max((b[0], wu), (b[1], wu + 1));
                let (v, at) = first_max((upper, up_at), (lower, low_at));
                (*o, *i) = (v, base + 2 * ox as u32 + at);
            }
        }
    }

    /// One plane's window means: summed in window order, then divided, as PyTorch does.
    fn avg_plane(&self, plane: &[f32], out: &mut [f32]) {
        let (w, ow) = (self.w, self.w / 2);
        for (oy, out) in out.chunks_exact_mut(ow).enumerate() {
            let top = &plane[2 * oy * w..(2 * oy + 1) * w];
            let bottom = &plane[(2 * oy + 1) * w..(2 * oy + 2) * w];
            for (ox, o) in out.iter_mut().enumerate() {
                *o = (top[2 * ox] + top[2 * ox + 1] + bottom[2 * ox] + bottom[2 * ox + 1]) / 4.0;
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

/// The later of two (value, position) pairs if it is greater or NaN, else the
/// earlier: PyTorch's scan over a window, which keeps the first maximum (and the last
/// NaN). Pairs, then the pair winners, give the same result as the scan, without
/// branches the data decides.
#[inline(always)]
fn first_max(a: (f32, u32), b: (f32, u32)) -> (f32, u32) {
    let later = (b.0 > a.0) | b.0.is_nan();
    (if later { b.0 } else { a.0 }, if later { b.1 } else { a.1 })
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
        // A NaN wins over any number, and of two NaNs the later, as PyTorch's scan.
        let nan = [
            f32::NAN,
            1.0,
            5.0,
            2.0,
            2.0,
            9.0,
            f32::NAN,
            0.0,
            3.0,
            3.0,
            3.0,
            3.0,
            3.0,
            3.0,
            3.0,
        ];
        s.forward(&nan, 1, &mut y, &mut idx);
        assert!(
            y[0].is_nan() && idx == [6, 2] && y[1] == 5.0,
            "{y:?} {idx:?}"
        );
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
