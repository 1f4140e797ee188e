//! 2-D convolution (torch.nn.Conv2d with a square kernel), forward and backward, by
//! im2col and one matrix product per group of `GROUP` images.
//!
//! Shapes (row-major, NCHW as PyTorch): x [n, c_in, h, w]; weight [c_out, c_in, k, k]
//! (exactly `Conv2d.weight`); bias [c_out]; y [n, c_out, oh, ow] with
//! oh = floor((h + 2p - k) / s) + 1 (ow likewise). One image's columns `col` are
//! [c_in * k * k, oh * ow]: row (c, i, j) holds x[c, oy*s + i - p, ox*s + j - p] (0 in
//! the padding) at column (oy, ox), so y[image] = weight · col. Backward takes
//! dy [n, c_out, oh, ow] and gives dweight [c_out, c_in, k, k], dbias [c_out] and, if
//! asked, dx [n, c_in, h, w].
//! A group of g images puts its columns side by side, [c_in * k * k, g * oh * ow]
//! (image-major within a row), so one product covers the group: weight · col gives
//! [c_out, g * oh * ow], copied into y with the bias.

use super::linear::{gemm, gemm_strided};

/// Images per matrix product: enough columns that the product runs at full speed
/// (one image's are a thin matrix), few enough that a group's columns stay in the
/// L2 cache (8 x 25 x 784 floats for LeNet-5's conv1, 627 KB).
const GROUP: usize = 8;

/// Output channels below which the weight gradient runs as dot products rather than
/// a matrix product: matrixmultiply's tiles are 16 wide, so a thinner product wastes
/// most of each (LeNet-5's conv1, 6 channels: 0.70 against 0.98 ms per batch of 64 in
/// `examples/lenet_kernels.rs`; its conv2, 16 channels: 1.48 against 1.22 ms).
const THIN: usize = 16;

/// A layer spec that cannot run on its input: names the layer and the sizes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// The kernel does not fit in the padded input.
    #[error(
        "conv layer {layer}: a {k}x{k} kernel (stride {s}, padding {p}) does not fit in its \
         {h}x{w} input; use a smaller kernel, more padding or fewer layers"
    )]
    Shrinks {
        /// 1-based conv layer.
        layer: usize,
        /// Input height and width.
        h: usize,
        /// Input width.
        w: usize,
        /// Kernel size.
        k: usize,
        /// Stride.
        s: usize,
        /// Padding.
        p: usize,
    },
    /// A channel count, kernel or stride of 0.
    #[error("conv layer {layer}: {what} is 0; it must be at least 1")]
    Zero {
        /// 1-based conv layer.
        layer: usize,
        /// Which number ("out channels", "kernel", "stride").
        what: &'static str,
    },
    /// Pooling (2x2, stride 2) of a map smaller than 2x2.
    #[error(
        "the pool after conv layer {layer}: its {h}x{w} input pools to nothing (2x2 pooling \
         needs at least 2x2); use --pool none, a smaller kernel or fewer layers"
    )]
    PoolShrinks {
        /// 1-based conv layer the pool follows.
        layer: usize,
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
    },
}

/// Shape of one conv layer on its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel size (square).
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
}

impl ConvShape {
    /// Checked shape of conv layer `layer` (1-based, for messages) on a c_in x h x w input.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        layer: usize,
        (c_in, h, w): (usize, usize, usize),
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Self, ShapeError> {
        for (what, v) in [("out channels", c_out), ("kernel", k), ("stride", stride)] {
            if v == 0 {
                return Err(ShapeError::Zero { layer, what });
            }
        }
        if h + 2 * pad < k || w + 2 * pad < k || c_in == 0 {
            let (s, p) = (stride, pad);
            return Err(ShapeError::Shrinks {
                layer,
                h,
                w,
                k,
                s,
                p,
            });
        }
        Ok(ConvShape {
            c_in,
            c_out,
            k,
            stride,
            pad,
            h,
            w,
        })
    }

    /// Output height: floor((h + 2p - k) / s) + 1.
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }

    /// Output (channels, height, width).
    pub fn out_dims(&self) -> (usize, usize, usize) {
        (self.c_out, self.out_h(), self.out_w())
    }

    /// Values in one input image.
    pub fn in_len(&self) -> usize {
        self.c_in * self.h * self.w
    }

    /// Values in one output image.
    pub fn out_len(&self) -> usize {
        self.c_out * self.out_h() * self.out_w()
    }

    /// Weights (without the bias): c_out * c_in * k * k.
    pub fn weights(&self) -> usize {
        self.c_out * self.patch()
    }

    /// Values in one image's columns.
    pub fn image_col_len(&self) -> usize {
        self.patch() * self.pixels()
    }

    /// Values in one group's columns: the first scratch `forward` and `backward` need.
    pub fn col_len(&self) -> usize {
        GROUP * self.image_col_len()
    }

    /// The second scratch: a group's outputs by channel, and in training also the
    /// gradient of its columns.
    pub fn tmp_len(&self, train: bool) -> usize {
        GROUP * self.pixels() * (self.c_out + if train { self.patch() } else { 0 })
    }

    /// Rows of the columns: c_in * k * k.
    fn patch(&self) -> usize {
        self.c_in * self.k * self.k
    }

    /// Output pixels per channel: oh * ow.
    fn pixels(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// y = conv(x, weight) + bias for `n` images, GROUP images per matrix product.
    /// Scratch: `col` of `col_len()`, `tmp` of `tmp_len(false)`. With `keep` (at
    /// least n * `image_col_len()`), the columns are written there instead of `col`,
    /// group after group, for `backward` to reuse.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        weight: &[f32],
        bias: Option<&[f32]>,
        x: &[f32],
        n: usize,
        y: &mut [f32],
        (col, tmp): (&mut [f32], &mut [f32]),
        mut keep: Option<&mut [f32]>,
    ) {
        let (il, ol, pixels, patch) = (self.in_len(), self.out_len(), self.pixels(), self.patch());
        for g0 in (0..n).step_by(GROUP) {
            let gs = GROUP.min(n - g0);
            let ld = gs * pixels;
            let col: &mut [f32] = match keep.as_deref_mut() {
                Some(k) => &mut k[g0 * patch * pixels..(g0 + gs) * patch * pixels],
                None => &mut col[..patch * ld],
            };
            for g in 0..gs {
                let img = g0 + g;
                self.im2col(&x[img * il..(img + 1) * il], col, ld, g * pixels);
            }
            let tmp = &mut tmp[..self.c_out * ld];
            // tmp[o, (g, p)] = sum_r weight[o, r] col[r, (g, p)], computed as its
            // transpose: the long side (g, p) as the product's rows keeps the packing
            // buffers small (a wide B is packed in 1024-column panels of up to 256
            // rows, over 128 KB, which glibc maps and unmaps on every call).
            let wt = (weight, (1, patch));
            gemm_strided(
                ld,
                patch,
                self.c_out,
                (col, (1, ld)),
                wt,
                (tmp, (1, ld)),
                false,
            );
            for (g, y) in y[g0 * ol..(g0 + gs) * ol].chunks_exact_mut(ol).enumerate() {
                for (o, plane) in y.chunks_exact_mut(pixels).enumerate() {
                    let b = bias.map_or(0.0, |b| b[o]);
                    let src = &tmp[o * ld + g * pixels..o * ld + (g + 1) * pixels];
                    for (v, &t) in plane.iter_mut().zip(src) {
                        *v = t + b;
                    }
                }
            }
        }
    }

    /// dweight = sum over images of dy · col^T and dbias = sums of dy per channel
    /// (overwriting both); dx = col2im(weight^T · dy) if given. Scratch: `col` of
    /// `col_len()` and `tmp` of `tmp_len(true)`; `kept` is what `forward` left in its
    /// `keep` for these images (without it the columns are built again).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        weight: &[f32],
        x: &[f32],
        dy: &[f32],
        n: usize,
        dweight: &mut [f32],
        dbias: Option<&mut [f32]>,
        mut dx: Option<&mut [f32]>,
        (col, tmp): (&mut [f32], &mut [f32]),
        kept: Option<&[f32]>,
    ) {
        let (il, ol, pixels, patch) = (self.in_len(), self.out_len(), self.pixels(), self.patch());
        dweight[..self.weights()].fill(0.0);
        let (dyt, dcol) = tmp.split_at_mut(GROUP * pixels * self.c_out);
        for g0 in (0..n).step_by(GROUP) {
            let gs = GROUP.min(n - g0);
            let ld = gs * pixels;
            let col: &[f32] = match kept {
                Some(k) => &k[g0 * patch * pixels..(g0 + gs) * patch * pixels],
                None => {
                    let col = &mut col[..patch * ld];
                    for g in 0..gs {
                        let img = g0 + g;
                        self.im2col(&x[img * il..(img + 1) * il], col, ld, g * pixels);
                    }
                    col
                }
            };
            // dyt[o, (g, p)] = dy[g0 + g, o, p]: the group's gradient in the columns' order.
            let dyt = &mut dyt[..self.c_out * ld];
            for (g, dy) in dy[g0 * ol..(g0 + gs) * ol].chunks_exact(ol).enumerate() {
                for (o, plane) in dy.chunks_exact(pixels).enumerate() {
                    dyt[o * ld + g * pixels..o * ld + (g + 1) * pixels].copy_from_slice(plane);
                }
            }
            if self.c_out < THIN {
                weight_grad(dyt, col, (self.c_out, patch, ld), dweight);
            } else {
                // dweight[o, r] += sum_(g, p) dyt[o, (g, p)] col[r, (g, p)], as its
                // transpose (patch rows, c_out columns: small packing buffers).
                let (a, b) = ((col, (ld, 1)), (&dyt[..], (1, ld)));
                gemm_strided(patch, ld, self.c_out, a, b, (dweight, (1, patch)), true);
            }
            if let Some(dx) = dx.as_deref_mut() {
                let dcol = &mut dcol[..patch * ld];
                // dcol[r, (g, p)] = sum_o weight[o, r] dyt[o, (g, p)]
                gemm(
                    patch,
                    self.c_out,
                    ld,
                    weight,
                    (1, patch),
                    dyt,
                    (ld, 1),
                    dcol,
                    false,
                );
                for g in 0..gs {
                    let img = g0 + g;
                    self.col2im(dcol, ld, g * pixels, &mut dx[img * il..(img + 1) * il]);
                }
            }
        }
        if let Some(db) = dbias {
            self.bias_gradient(dy, n, db);
        }
    }

    /// dbias[o] = the sum of dy over images and pixels of channel o.
    fn bias_gradient(&self, dy: &[f32], n: usize, db: &mut [f32]) {
        let (ol, pixels) = (self.out_len(), self.pixels());
        for (o, d) in db[..self.c_out].iter_mut().enumerate() {
            // One f32 sum over images and pixels in order: the bias gradient of a conv
            // before GroupNorm is a small difference of large sums, and this is the
            // order whose rounding PyTorch's values show (an f64 sum misses by 1%).
            *d = dy[..n * ol]
                .chunks_exact(ol)
                .flat_map(|img| &img[o * pixels..(o + 1) * pixels])
                .sum();
        }
    }

    /// One image x [c_in, h, w] into its columns: row r (c, i, j) of the image is
    /// col[r * ld + off..][..oh * ow].
    fn im2col(&self, x: &[f32], col: &mut [f32], ld: usize, off: usize) {
        let (oh, ow) = (self.out_h(), self.out_w());
        let mut r = 0;
        for c in 0..self.c_in {
            let plane = &x[c * self.h * self.w..(c + 1) * self.h * self.w];
            for i in 0..self.k {
                for j in 0..self.k {
                    let row = &mut col[r * ld + off..r * ld + off + oh * ow];
                    r += 1;
                    for (oy, out) in row.chunks_exact_mut(ow).enumerate() {
                        match self.source(oy, i, self.h) {
                            Some(y) => self.copy_row(&plane[y * self.w..(y + 1) * self.w], j, out),
                            None => out.fill(0.0),
                        }
                    }
                }
            }
        }
    }

    /// The inverse scatter: adds each of one image's column values (laid out as in
    /// `im2col`) into dx [c_in, h, w] (overwritten first).
    fn col2im(&self, dcol: &[f32], ld: usize, off: usize, dx: &mut [f32]) {
        let (oh, ow) = (self.out_h(), self.out_w());
        dx.fill(0.0);
        let mut r = 0;
        for c in 0..self.c_in {
            let plane = &mut dx[c * self.h * self.w..(c + 1) * self.h * self.w];
            for i in 0..self.k {
                for j in 0..self.k {
                    let row = &dcol[r * ld + off..r * ld + off + oh * ow];
                    r += 1;
                    for (oy, src) in row.chunks_exact(ow).enumerate() {
                        if let Some(y) = self.source(oy, i, self.h) {
                            self.add_row(src, j, &mut plane[y * self.w..(y + 1) * self.w]);
                        }
                    }
                }
            }
        }
    }

    /// The input index oy*s + i - p, if inside 0..len.
    #[inline]
    fn source(&self, o: usize, i: usize, len: usize) -> Option<usize> {
        (o * self.stride + i)
            .checked_sub(self.pad)
            .filter(|&v| v < len)
    }

    /// out[ox] = line[ox*s + j - p], 0 outside the line.
    #[inline]
    fn copy_row(&self, line: &[f32], j: usize, out: &mut [f32]) {
        let (lo, hi) = self.inside(j, out.len());
        out[..lo].fill(0.0);
        out[hi..].fill(0.0);
        if self.stride == 1 {
            let start = lo + j - self.pad;
            out[lo..hi].copy_from_slice(&line[start..start + hi - lo]);
        } else {
            for (ox, v) in out.iter_mut().enumerate().take(hi).skip(lo) {
                *v = line[ox * self.stride + j - self.pad];
            }
        }
    }

    /// line[ox*s + j - p] += src[ox] for the ox that land inside the line.
    #[inline]
    fn add_row(&self, src: &[f32], j: usize, line: &mut [f32]) {
        let (lo, hi) = self.inside(j, src.len());
        if self.stride == 1 {
            // Contiguous on both sides: a loop the compiler vectorises.
            let start = lo + j - self.pad;
            for (d, &g) in line[start..start + hi - lo].iter_mut().zip(&src[lo..hi]) {
                *d += g;
            }
            return;
        }
        for (ox, &g) in src.iter().enumerate().take(hi).skip(lo) {
            line[ox * self.stride + j - self.pad] += g;
        }
    }

    /// The range of output columns ox whose source ox*s + j - p lies in 0..w.
    #[inline]
    fn inside(&self, j: usize, ow: usize) -> (usize, usize) {
        let s = self.stride;
        // First ox with ox*s + j >= p, and one past the last with ox*s + j - p < w.
        let lo = self.pad.saturating_sub(j).div_ceil(s).min(ow);
        let hi = if self.w + self.pad > j {
            (self.w + self.pad - j).div_ceil(s).min(ow)
        } else {
            0
        };
        (lo, hi.max(lo))
    }
}

/// dweight[o, r] += sum_q dyt[o, q] col[r, q] over one group (rows of `ld` values):
/// dot products along the contiguous rows, 4 output channels at a time so each
/// column row is read once per 4, in 16 lanes summed in a fixed order (the same bits
/// at every SIMD tier). A matrix product here packs both operands across their
/// contiguous side, which cost more than the products for LeNet-5's thin shapes.
fn weight_grad(dyt: &[f32], col: &[f32], dims: (usize, usize, usize), dweight: &mut [f32]) {
    crate::simd_dispatch!((dyt: &[f32], col: &[f32], dims: (usize, usize, usize), dweight: &mut [f32]) {
        const L: usize = 16;
        const B: usize = 4;
        let (c_out, patch, ld) = dims;
        let full = ld / L * L;
        for r in 0..patch {
            let c = &col[r * ld..(r + 1) * ld];
            for o0 in (0..c_out).step_by(B) {
                // A partial block repeats its last channel and drops the repeats.
                let rows: [&[f32]; B] = std::array::from_fn(|b| {
                    let o = (o0 + b).min(c_out - 1);
                    &dyt[o * ld..(o + 1) * ld]
                });
                let mut acc = [[0.0f32; L]; B];
                for q in (0..full).step_by(L) {
                    let cv = &c[q..q + L];
                    for (acc, d) in acc.iter_mut().zip(&rows) {
                        for ((a, &x), &y) in acc.iter_mut().zip(cv).zip(&d[q..q + L]) {
                            *a += x * y;
                        }
                    }
                }
                for (b, (acc, d)) in acc.iter().zip(&rows).enumerate().take(c_out - o0) {
                    let tail: f32 = (full..ld).map(|q| c[q] * d[q]).sum();
                    dweight[(o0 + b) * patch + r] += acc.iter().sum::<f32>() + tail;
                }
            }
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let v = (i
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(40_503)))
                    >> 8;
                (v % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Direct six-loop convolution.
    fn naive(s: &ConvShape, w: &[f32], b: &[f32], x: &[f32], n: usize) -> Vec<f32> {
        let (oh, ow) = (s.out_h(), s.out_w());
        let mut y = vec![0.0f32; n * s.out_len()];
        for img in 0..n {
            for o in 0..s.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = b[o] as f64;
                        for c in 0..s.c_in {
                            for i in 0..s.k {
                                for j in 0..s.k {
                                    let (yy, xx) = (
                                        (oy * s.stride + i) as isize - s.pad as isize,
                                        (ox * s.stride + j) as isize - s.pad as isize,
                                    );
                                    if yy < 0 || xx < 0 || yy >= s.h as isize || xx >= s.w as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((img * s.c_in + c) * s.h + yy as usize) * s.w
                                        + xx as usize;
                                    acc +=
                                        (w[((o * s.c_in + c) * s.k + i) * s.k + j] * x[xi]) as f64;
                                }
                            }
                        }
                        y[((img * s.c_out + o) * oh + oy) * ow + ox] = acc as f32;
                    }
                }
            }
        }
        y
    }

    fn shapes() -> Vec<ConvShape> {
        [
            ((2, 7, 6), 3, 3, 2, 1),
            ((1, 8, 8), 2, 5, 1, 2),
            ((3, 5, 5), 2, 2, 1, 0),
            ((2, 6, 7), 2, 3, 3, 2),
        ]
        .into_iter()
        .map(|(i, o, k, s, p)| ConvShape::new(1, i, o, k, s, p).unwrap())
        .collect()
    }

    #[test]
    fn forward_matches_a_direct_loop() {
        for (t, s) in shapes().into_iter().enumerate() {
            let n = 2;
            let (w, b, x) = (
                values(s.weights(), 1 + t as u32),
                values(s.c_out, 9),
                values(n * s.in_len(), 3),
            );
            let mut y = vec![f32::NAN; n * s.out_len()];
            let mut col = vec![f32::NAN; s.col_len()];
            let mut tmp = vec![f32::NAN; s.tmp_len(false)];
            s.forward(&w, Some(&b), &x, n, &mut y, (&mut col, &mut tmp), None);
            let want = naive(&s, &w, &b, &x, n);
            for (i, (g, e)) in y.iter().zip(&want).enumerate() {
                assert!((g - e).abs() < 1e-5, "{s:?} y[{i}]: {g} vs {e}");
            }
        }
    }

    /// Weights, bias and input against central differences in f64 of the f32 loss
    /// sum(coef * y), with stride and padding.
    #[test]
    fn gradients_match_finite_differences() {
        for (t, s) in shapes().into_iter().enumerate() {
            let n = 2;
            let w = values(s.weights(), 5 + t as u32);
            let b = values(s.c_out, 6);
            let x = values(n * s.in_len(), 7);
            let coef = values(n * s.out_len(), 8);
            let loss = |w: &[f32], b: &[f32], x: &[f32]| {
                let mut y = vec![0.0; n * s.out_len()];
                let scratch = (
                    &mut vec![0.0; s.col_len()][..],
                    &mut vec![0.0; s.tmp_len(false)][..],
                );
                s.forward(w, Some(b), x, n, &mut y, scratch, None);
                y.iter()
                    .zip(&coef)
                    .map(|(&y, &c)| (y * c) as f64)
                    .sum::<f64>()
            };
            let (mut dw, mut db, mut dx) =
                (vec![9.0; w.len()], vec![9.0; b.len()], vec![9.0; x.len()]);
            let mut scratch = (vec![0.0; s.col_len()], vec![0.0; s.tmp_len(true)]);
            let scratch = (&mut scratch.0[..], &mut scratch.1[..]);
            s.backward(
                &w,
                &x,
                &coef,
                n,
                &mut dw,
                Some(&mut db),
                Some(&mut dx),
                scratch,
                None,
            );
            let mut p = [w, b, x];
            let h = 1e-2;
            for (which, grads) in [dw, db, dx].into_iter().enumerate() {
                for (i, &g) in grads.iter().enumerate() {
                    let o = p[which][i];
                    p[which][i] = o + h;
                    let lp = loss(&p[0], &p[1], &p[2]);
                    p[which][i] = o - h;
                    let lm = loss(&p[0], &p[1], &p[2]);
                    p[which][i] = o;
                    let numeric = (lp - lm) / (2.0 * h as f64);
                    assert!(
                        (numeric - g as f64).abs() < 1e-3 * (1.0 + numeric.abs()),
                        "{s:?} {}[{i}]: numeric {numeric} vs {g}",
                        ["dweight", "dbias", "dx"][which]
                    );
                }
            }
        }
    }

    /// More images than one group (a full group and a partial one): the output as the
    /// direct loop's, the gradients with the forward pass's kept columns exactly as
    /// with columns built again, and the weight gradient as the per-image sum.
    #[test]
    fn groups_and_kept_columns_agree_with_image_by_image() {
        for (t, s) in shapes().into_iter().enumerate() {
            let n = GROUP + 3;
            let (w, b, x) = (
                values(s.weights(), 11 + t as u32),
                values(s.c_out, 12),
                values(n * s.in_len(), 13),
            );
            let dy = values(n * s.out_len(), 14);
            let (mut col, mut tmp) = (vec![0.0; s.col_len()], vec![0.0; s.tmp_len(true)]);
            let mut y = vec![f32::NAN; n * s.out_len()];
            let mut kept = vec![f32::NAN; n * s.image_col_len()];
            s.forward(
                &w,
                Some(&b),
                &x,
                n,
                &mut y,
                (&mut col, &mut tmp),
                Some(&mut kept),
            );
            for (i, (g, e)) in y.iter().zip(&naive(&s, &w, &b, &x, n)).enumerate() {
                assert!((g - e).abs() < 1e-5, "{s:?} y[{i}]: {g} vs {e}");
            }
            let mut grads = |kept: Option<&[f32]>, n: usize, x: &[f32], dy: &[f32]| {
                let (mut dw, mut db, mut dx) = (
                    vec![9.0; w.len()],
                    vec![9.0; b.len()],
                    vec![9.0; n * s.in_len()],
                );
                let scratch = (&mut col[..], &mut tmp[..]);
                let (dbs, dxs) = (Some(&mut db[..]), Some(&mut dx[..]));
                s.backward(&w, x, dy, n, &mut dw, dbs, dxs, scratch, kept);
                (dw, db, dx)
            };
            let with = grads(Some(&kept), n, &x, &dy);
            assert_eq!(with, grads(None, n, &x, &dy), "{s:?}");
            let mut sum = vec![0.0f32; w.len()];
            for img in 0..n {
                let (il, ol) = (s.in_len(), s.out_len());
                let x = &x[img * il..(img + 1) * il];
                let (dw, _, dx) = grads(None, 1, x, &dy[img * ol..(img + 1) * ol]);
                sum.iter_mut().zip(&dw).for_each(|(a, b)| *a += b);
                assert_eq!(
                    dx,
                    with.2[img * il..(img + 1) * il],
                    "{s:?} dx of image {img}"
                );
            }
            for (i, (g, e)) in with.0.iter().zip(&sum).enumerate() {
                assert!(
                    (g - e).abs() < 1e-4 * (1.0 + e.abs()),
                    "{s:?} dw[{i}]: {g} vs {e}"
                );
            }
        }
    }

    /// The weight gradient's dot products: the same bits at every SIMD tier, and the
    /// plain sums within rounding, for channel counts around the block of 4 and row
    /// lengths around the 16 lanes.
    #[test]
    fn weight_gradient_is_the_same_at_every_tier_and_matches_plain_sums() {
        for (c_out, patch, ld) in [(6, 25, 6272), (16, 150, 800), (3, 2, 37), (5, 1, 7)] {
            let (dyt, col) = (values(c_out * ld, 1), values(patch * ld, 2));
            let run = || {
                let mut dw = vec![0.5f32; c_out * patch];
                weight_grad(&dyt, &col, (c_out, patch, ld), &mut dw);
                dw
            };
            let all = crate::simd::each_tier(run);
            for (tier, dw) in &all {
                assert_eq!(dw, &all[0].1, "{tier} vs {}", all[0].0);
            }
            for o in 0..c_out {
                for r in 0..patch {
                    let d = &dyt[o * ld..(o + 1) * ld];
                    let plain: f64 = (col[r * ld..(r + 1) * ld].iter().zip(d))
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum();
                    let got = all[0].1[o * patch + r] as f64 - 0.5;
                    assert!((got - plain).abs() < 1e-3, "{o},{r}: {got} vs {plain}");
                }
            }
        }
    }

    #[test]
    fn output_size_floors_and_a_shape_that_shrinks_to_nothing_is_an_error() {
        let s = ConvShape::new(1, (1, 28, 28), 6, 5, 1, 2).unwrap();
        assert_eq!(s.out_dims(), (6, 28, 28));
        let s = ConvShape::new(2, (5, 14, 14), 7, 3, 2, 1).unwrap();
        assert_eq!(s.out_dims(), (7, 7, 7));
        assert_eq!(ConvShape::new(1, (1, 8, 8), 2, 3, 2, 0).unwrap().out_h(), 3);
        let e = ConvShape::new(3, (16, 2, 2), 8, 5, 1, 1).unwrap_err();
        assert_eq!(
            e,
            ShapeError::Shrinks {
                layer: 3,
                h: 2,
                w: 2,
                k: 5,
                s: 1,
                p: 1
            }
        );
        let text = e.to_string();
        assert!(
            text.contains("conv layer 3") && text.contains("2x2"),
            "{text}"
        );
        let e = ConvShape::new(2, (1, 8, 8), 4, 3, 0, 0).unwrap_err();
        assert_eq!(
            e,
            ShapeError::Zero {
                layer: 2,
                what: "stride"
            }
        );
    }
}
