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

mod direct;

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

    /// The first scratch `forward` and `backward` need: one group's columns, or the
    /// direct path's padded planes and grids.
    pub fn col_len(&self) -> usize {
        (GROUP * self.image_col_len()).max(direct::scratch_len(self, true))
    }

    /// Whether a training pass keeps its columns for the backward pass (the im2col
    /// path; the direct path pads each image again instead).
    pub fn keeps_columns(&self) -> bool {
        !direct::runs(self)
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
        if direct::runs(self) {
            return direct::forward(self, (weight, bias), x, n, y, col);
        }
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
        if direct::runs(self) {
            direct::backward(self, weight, x, dy, n, dweight, dx, col);
            if let Some(db) = dbias {
                self.bias_gradient(dy, n, db);
            }
            return;
        }
        let (ol, pixels, patch) = (self.out_len(), self.pixels(), self.patch());
        dweight[..self.weights()].fill(0.0);
        let (dyt, dcol) = tmp.split_at_mut(GROUP * pixels * self.c_out);
        for g0 in (0..n).step_by(GROUP) {
            let gs = GROUP.min(n - g0);
            let ld = gs * pixels;
            let col: &[f32] = match kept {
                Some(k) => &k[g0 * patch * pixels..(g0 + gs) * patch * pixels],
                None => self.group_columns(x, g0, gs, col),
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
                self.input_grad(weight, dyt, (g0, gs), dcol, dx);
            }
        }
        if let Some(db) = dbias {
            self.bias_gradient(dy, n, db);
        }
    }

    /// The columns of images g0..g0+gs side by side, built in `col`.
    fn group_columns<'a>(&self, x: &[f32], g0: usize, gs: usize, col: &'a mut [f32]) -> &'a [f32] {
        let (il, pixels) = (self.in_len(), self.pixels());
        let ld = gs * pixels;
        let col = &mut col[..self.patch() * ld];
        for g in 0..gs {
            let img = g0 + g;
            self.im2col(&x[img * il..(img + 1) * il], col, ld, g * pixels);
        }
        col
    }

    /// dx of images g0..g0+gs = col2im(weight^T · dyt), through the scratch `dcol`.
    fn input_grad(
        &self,
        weight: &[f32],
        dyt: &[f32],
        (g0, gs): (usize, usize),
        dcol: &mut [f32],
        dx: &mut [f32],
    ) {
        let (il, pixels, patch) = (self.in_len(), self.pixels(), self.patch());
        let ld = gs * pixels;
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

    /// dbias[o] = the sum of dy over images and pixels of channel o.
    fn bias_gradient(&self, dy: &[f32], n: usize, db: &mut [f32]) {
        // One f32 sum per channel over images and pixels in order: the bias gradient
        // of a conv before GroupNorm is a small difference of large sums, and this is
        // the order whose rounding PyTorch's values show (an f64 sum misses by 1%).
        // Eight channels' sums run side by side in registers, so their chains overlap
        // (a partial block repeats its last channel and drops the repeats).
        let (ol, pixels, c_out) = (self.out_len(), self.pixels(), self.c_out);
        for o0 in (0..c_out).step_by(8) {
            let at: [usize; 8] = std::array::from_fn(|b| (o0 + b).min(c_out - 1) * pixels);
            let mut acc = [0.0f32; 8];
            for img in dy[..n * ol].chunks_exact(ol) {
                for p in 0..pixels {
                    for (a, &at) in acc.iter_mut().zip(&at) {
                        *a += img[at + p];
                    }
                }
            }
            let keep = (c_out - o0).min(8);
            db[o0..o0 + keep].copy_from_slice(&acc[..keep]);
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
pub(crate) mod tests;
