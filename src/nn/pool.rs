//! 2x2 pooling with stride 2 (F.max_pool2d(x, 2) and F.avg_pool2d(x, 2)), forward
//! and backward.
//!
//! Shapes: x [n, c, h, w] (NCHW); y [n, c, h / 2, w / 2], floored as in PyTorch (an odd
//! last row or column is never read and gets no gradient). Max pooling records, for
//! each output, which of its window's 4 values (row-major) is the window's FIRST
//! maximum (PyTorch's rule for ties; a NaN wins, the last one, as in PyTorch) and
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

    /// y = pool(x) over `n` images; for max pooling `which` (at least n * out_len()
    /// entries) receives which of its window's values each maximum is (0, 1: the top
    /// row's; 2, 3: the bottom row's), for average pooling it is unused.
    pub fn forward(&self, x: &[f32], n: usize, y: &mut [f32], which: &mut [u8]) {
        let (h, w, plane_out) = (self.h, self.w, (self.h / 2) * (self.w / 2));
        let planes = x[..n * self.in_len()].chunks_exact(h * w);
        let outs = y[..n * self.out_len()].chunks_exact_mut(plane_out);
        for (p, (plane, out)) in planes.zip(outs).enumerate() {
            match self.kind {
                PoolKind::Max => max_plane(
                    plane,
                    w,
                    out,
                    &mut which[p * plane_out..(p + 1) * plane_out],
                ),
                PoolKind::Avg => avg_plane(plane, w, out),
            }
        }
    }

    /// dx from dy (dx overwritten); `which` is what `forward` recorded (max pooling).
    pub fn backward(&self, dy: &[f32], which: &[u8], n: usize, dx: &mut [f32]) {
        let (h, w, plane_out) = (self.h, self.w, (self.h / 2) * (self.w / 2));
        let planes = dx[..n * self.in_len()].chunks_exact_mut(h * w);
        let grads = dy[..n * self.out_len()].chunks_exact(plane_out);
        for (p, (plane, g)) in planes.zip(grads).enumerate() {
            match self.kind {
                PoolKind::Max => {
                    max_plane_back(g, &which[p * plane_out..(p + 1) * plane_out], w, plane)
                }
                PoolKind::Avg => avg_plane_back(g, w, plane),
            }
        }
    }
}

// The kernels go a block of outputs at a time (8, or 4 on narrow rows), a row's last
// block overlapping the one before it rather than a scalar tail: rows are short (14
// and 5 outputs in LeNet-5), and a block of fixed size compiles to vector code at
// each tier. Every value is computed by the same operations at any tier and block.

/// The block size for rows of `ow` outputs.
#[inline(always)]
fn block(ow: usize) -> usize {
    match ow {
        8.. => 8,
        4.. => 4,
        _ => 1,
    }
}

/// `f(at)` for the start of each block of `b` over `0..len` (`len` >= `b`), the last
/// block ending at `len`.
#[inline(always)]
fn blocks(len: usize, b: usize, mut f: impl FnMut(usize)) {
    let mut at = 0;
    loop {
        f(at.min(len - b));
        at += b;
        if at >= len {
            break;
        }
    }
}

/// One plane's maxima and which of the window each is, row pair by row pair.
fn max_plane(plane: &[f32], w: usize, out: &mut [f32], which: &mut [u8]) {
    crate::simd_dispatch!((plane: &[f32], w: usize, out: &mut [f32], which: &mut [u8]) {
        let ow = w / 2;
        for (oy, (out, which)) in out.chunks_exact_mut(ow).zip(which.chunks_exact_mut(ow)).enumerate() {
            let top = &plane[2 * oy * w..][..2 * ow];
            let bottom = &plane[(2 * oy + 1) * w..][..2 * ow];
            match block(ow) {
                8 => blocks(ow, 8, |at| max_block::<8>(top, bottom, at, out, which)),
                4 => blocks(ow, 4, |at| max_block::<4>(top, bottom, at, out, which)),
                _ => blocks(ow, 1, |at| max_block::<1>(top, bottom, at, out, which)),
            }
        }
    })
}

/// B outputs from `at` of a row pair: the pairs' winners, then theirs (see `later`).
#[inline(always)]
fn max_block<const B: usize>(
    top: &[f32],
    bottom: &[f32],
    at: usize,
    out: &mut [f32],
    which: &mut [u8],
) {
    let (top, bottom) = (&top[2 * at..][..2 * B], &bottom[2 * at..][..2 * B]);
    let (out, which) = (&mut out[at..][..B], &mut which[at..][..B]);
    for i in 0..B {
        let (t0, t1, b0, b1) = (top[2 * i], top[2 * i + 1], bottom[2 * i], bottom[2 * i + 1]);
        // Selects, not branches: the data would mispredict them.
        let (upper, lower) = (later(t0, t1), later(b0, b1));
        let (u, l) = (if upper { t1 } else { t0 }, if lower { b1 } else { b0 });
        let down = later(u, l);
        out[i] = if down { l } else { u };
        which[i] = if down { 2 + lower as u8 } else { upper as u8 };
    }
}

/// Whether the later of two values wins: it is greater or NaN. PyTorch's scan over a
/// window keeps the first maximum (and the last NaN); pairs, then the pair winners,
/// give the same result as the scan.
#[inline(always)]
fn later(a: f32, b: f32) -> bool {
    (b > a) | b.is_nan()
}

/// One plane's window means: summed in window order, then divided, as PyTorch does.
fn avg_plane(plane: &[f32], w: usize, out: &mut [f32]) {
    crate::simd_dispatch!((plane: &[f32], w: usize, out: &mut [f32]) {
        let ow = w / 2;
        for (oy, out) in out.chunks_exact_mut(ow).enumerate() {
            let top = &plane[2 * oy * w..][..2 * ow];
            let bottom = &plane[(2 * oy + 1) * w..][..2 * ow];
            match block(ow) {
                8 => blocks(ow, 8, |at| avg_block::<8>(top, bottom, at, out)),
                4 => blocks(ow, 4, |at| avg_block::<4>(top, bottom, at, out)),
                _ => blocks(ow, 1, |at| avg_block::<1>(top, bottom, at, out)),
            }
        }
    })
}

/// B window means from `at` of a row pair.
#[inline(always)]
fn avg_block<const B: usize>(top: &[f32], bottom: &[f32], at: usize, out: &mut [f32]) {
    let (top, bottom) = (&top[2 * at..][..2 * B], &bottom[2 * at..][..2 * B]);
    let out = &mut out[at..][..B];
    for i in 0..B {
        out[i] = (top[2 * i] + top[2 * i + 1] + bottom[2 * i] + bottom[2 * i + 1]) / 4.0;
    }
}

/// Calls `f(oy, top, bottom)` with each row pair of a plane's gradient and zeroes the
/// rows and the column no window reads (an odd size's last).
#[inline(always)]
fn row_pairs(plane: &mut [f32], w: usize, mut f: impl FnMut(usize, &mut [f32], &mut [f32])) {
    let pairs = plane.len() / w / 2;
    let (windows, rest) = plane.split_at_mut(pairs * 2 * w);
    rest.fill(0.0);
    for (oy, pair) in windows.chunks_exact_mut(2 * w).enumerate() {
        let (top, bottom) = pair.split_at_mut(w);
        if w % 2 == 1 {
            (top[w - 1], bottom[w - 1]) = (0.0, 0.0);
        }
        f(oy, top, bottom);
    }
}

/// A max pool's gradient for one plane: each dy to the value its window chose, zero
/// elsewhere. `0.0 + g` as the sum into a zeroed buffer gave (a -0.0 becomes 0.0).
fn max_plane_back(dy: &[f32], which: &[u8], w: usize, plane: &mut [f32]) {
    crate::simd_dispatch!((dy: &[f32], which: &[u8], w: usize, plane: &mut [f32]) {
        let ow = w / 2;
        row_pairs(plane, w, |oy, top, bottom| {
            let (g, k) = (&dy[oy * ow..][..ow], &which[oy * ow..][..ow]);
            match block(ow) {
                8 => blocks(ow, 8, |at| max_block_back::<8>(g, k, at, top, bottom)),
                4 => blocks(ow, 4, |at| max_block_back::<4>(g, k, at, top, bottom)),
                _ => blocks(ow, 1, |at| max_block_back::<1>(g, k, at, top, bottom)),
            }
        })
    })
}

/// B windows' gradients from `at` of a row pair (max pooling).
#[inline(always)]
fn max_block_back<const B: usize>(
    g: &[f32],
    k: &[u8],
    at: usize,
    top: &mut [f32],
    bottom: &mut [f32],
) {
    let (g, k) = (&g[at..][..B], &k[at..][..B]);
    let (top, bottom) = (&mut top[2 * at..][..2 * B], &mut bottom[2 * at..][..2 * B]);
    for i in 0..B {
        let (g, k) = (0.0 + g[i], k[i]);
        top[2 * i] = if k == 0 { g } else { 0.0 };
        top[2 * i + 1] = if k == 1 { g } else { 0.0 };
        bottom[2 * i] = if k == 2 { g } else { 0.0 };
        bottom[2 * i + 1] = if k == 3 { g } else { 0.0 };
    }
}

/// An average pool's gradient for one plane: dy / 4 to each value of its window.
fn avg_plane_back(dy: &[f32], w: usize, plane: &mut [f32]) {
    crate::simd_dispatch!((dy: &[f32], w: usize, plane: &mut [f32]) {
        let ow = w / 2;
        row_pairs(plane, w, |oy, top, bottom| {
            let g = &dy[oy * ow..][..ow];
            match block(ow) {
                8 => blocks(ow, 8, |at| avg_block_back::<8>(g, at, top, bottom)),
                4 => blocks(ow, 4, |at| avg_block_back::<4>(g, at, top, bottom)),
                _ => blocks(ow, 1, |at| avg_block_back::<1>(g, at, top, bottom)),
            }
        })
    })
}

/// B windows' gradients from `at` of a row pair (average pooling).
#[inline(always)]
fn avg_block_back<const B: usize>(g: &[f32], at: usize, top: &mut [f32], bottom: &mut [f32]) {
    let g = &g[at..][..B];
    let (top, bottom) = (&mut top[2 * at..][..2 * B], &mut bottom[2 * at..][..2 * B]);
    for i in 0..B {
        let d = 0.0 + g[i] / 4.0;
        (top[2 * i], top[2 * i + 1], bottom[2 * i], bottom[2 * i + 1]) = (d, d, d, d);
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
        let (mut y, mut idx) = ([0.0; 2], [0u8; 2]);
        s.forward(&x, 1, &mut y, &mut idx);
        assert_eq!(y, [7.0, 2.0]);
        // The tie 7 / 7 goes to (0, 1), the top row's second (1), the tie 2 / 2 / 2 to
        // (0, 2), the first (0).
        assert_eq!(idx, [1, 0]);
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
            y[0].is_nan() && idx == [3, 0] && y[1] == 5.0,
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

    /// Values with many ties, signed zeros and NaNs: `len` of them from `seed`.
    pub(crate) fn tied(len: usize, seed: usize) -> Vec<f32> {
        let pool = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            2.5,
            2.5,
            f32::NAN,
            -3.0,
            1e-40,
            f32::INFINITY,
        ];
        (0..len)
            .map(|i| pool[(i * 7 + seed * 13 + i / 5 * 3) % pool.len()])
            .collect()
    }

    /// PyTorch's scan over each window in row-major order (a later value wins if it
    /// is greater or NaN), its sum into a zeroed gradient, and the window sum / 4.
    fn reference(s: &PoolShape, x: &[f32], dy: &[f32], n: usize) -> (Vec<f32>, Vec<f32>) {
        let (c, h, w, oh, ow) = (s.c, s.h, s.w, s.h / 2, s.w / 2);
        let (mut y, mut dx) = (vec![0.0; n * s.out_len()], vec![0.0f32; n * s.in_len()]);
        for p in 0..n * c {
            for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                let at = [0, 1, w, w + 1].map(|d| p * h * w + 2 * oy * w + 2 * ox + d);
                let o = p * oh * ow + oy * ow + ox;
                if s.kind == PoolKind::Avg {
                    y[o] = (x[at[0]] + x[at[1]] + x[at[2]] + x[at[3]]) / 4.0;
                    at.iter().for_each(|&i| dx[i] += dy[o] / 4.0);
                    continue;
                }
                let mut best = at[0];
                for &i in &at[1..] {
                    if x[i] > x[best] || x[i].is_nan() {
                        best = i;
                    }
                }
                y[o] = x[best];
                dx[best] += dy[o];
            }
        }
        (y, dx)
    }

    /// Both kinds, forward and backward, give the bits of the window-by-window scan on
    /// every size from 2 x 2 to 7 x 19 (every block size, overlapping last blocks,
    /// odd sizes) and at every SIMD tier.
    #[test]
    fn kernels_match_the_scan_at_every_size_and_tier() {
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for (h, w, kind) in (2..8).flat_map(|h| {
            (2..20).flat_map(move |w| [PoolKind::Max, PoolKind::Avg].map(|k| (h, w, k)))
        }) {
            let (n, s) = (2, PoolShape::new(1, kind, (3, h, w)).unwrap());
            let x = tied(n * s.in_len(), h * w);
            let dy = tied(n * s.out_len(), h + w);
            let (want_y, want_dx) = reference(&s, &x, &dy, n);
            for (tier, (y, dx)) in crate::simd::each_tier(|| {
                let (mut y, mut which) = (vec![7.0; n * s.out_len()], vec![9; n * s.out_len()]);
                let mut dx = vec![7.0; n * s.in_len()];
                s.forward(&x, n, &mut y, &mut which);
                s.backward(&dy, &which, n, &mut dx);
                (y, dx)
            }) {
                let at = format!("{kind:?} {h}x{w} at {tier}");
                assert_eq!(bits(&y), bits(&want_y), "forward, {at}");
                assert_eq!(bits(&dx), bits(&want_dx), "backward, {at}");
            }
        }
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
            let mut idx = vec![0u8; n * s.out_len()];
            let loss = |x: &[f32], idx: &mut [u8]| {
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
