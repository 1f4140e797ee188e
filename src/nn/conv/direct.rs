//! Stride-1 convolution without im2col: each image is zero-padded once, and every
//! kernel tap is then a shifted read of the padded planes.
//!
//! Shapes: x [n, c_in, h, w], y and dy [n, c_out, oh, ow]. A padded plane holds one
//! channel of an image [hp, wp] (hp = h + 2p, wp = w + 2p) row after row, then zeros
//! for reads past its end; output (oy, ox) takes tap (i, j) of channel c from plane
//! position (oy + i) * wp + ox + j.
//!
//! Two layouts fill every SIMD lane with useful work:
//! - channels in the lanes (`channels`), for layers with 16, 32, ... output channels
//!   (LeNet-5's conv2): their forward pass and weight gradient, image by image;
//! - 16 images in the lanes (`images`): the forward pass and weight gradient of the
//!   other layers (LeNet-5's conv1), and every layer's input gradient.
//!
//! Every value is a chain of fused multiply-adds in an order no tier changes, so the
//! bits are the same at every SIMD tier (tested, the portable copies included); this
//! path needs FMA to be fast, so the portable tier keeps im2col.

use super::ConvShape;

/// `$body` for u = 0, 1, .. below `$t` (at most 16), each u a constant: loops over
/// blocks of accumulators left them in memory.
macro_rules! each {
    ($t:expr, |$u:ident| $body:expr) => {
        each!(@ $t, $u, $body, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
    };
    (@ $t:expr, $u:ident, $body:expr, $($n:literal)*) => {
        $(
            if $n < $t {
                let $u = $n;
                $body;
            }
        )*
    };
}

mod channels;
mod images;

/// SIMD lanes per vector of the kernels (one AVX-512 register, two AVX2 ones).
const L: usize = 16;
/// Images per pass of the weight gradient: its sums run on over the group's images
/// before they are added to the lanes.
const GROUP: usize = 8;

/// The geometry of one convolution's padded planes.
#[derive(Debug, Clone, Copy)]
struct Grid {
    /// Channels of the padded input.
    c_in: usize,
    /// Channels of the output.
    c_out: usize,
    /// Kernel size.
    k: usize,
    /// Padded input height and width.
    hp: usize,
    /// Padded input width: a plane's row length.
    wp: usize,
    /// Output height.
    oh: usize,
    /// Output width.
    ow: usize,
}

impl Grid {
    /// The planes of `shape` (padding p).
    fn forward(s: &ConvShape) -> Self {
        let (hp, wp) = (s.h + 2 * s.pad, s.w + 2 * s.pad);
        let (c_in, c_out, k, oh, ow) = (s.c_in, s.c_out, s.k, s.out_h(), s.out_w());
        Grid {
            c_in,
            c_out,
            k,
            hp,
            wp,
            oh,
            ow,
        }
    }

    /// Values per padded input plane: the image, then zeros for the reads of the
    /// blocks past its end (up to 16 taps or positions).
    fn plane(&self) -> usize {
        self.hp * self.wp + L
    }

    /// Taps per output channel: c_in * k * k.
    fn patch(&self) -> usize {
        self.c_in * self.k * self.k
    }
}

/// Whether `shape` runs here: stride 1, and a tier with FMA.
pub(super) fn runs(shape: &ConvShape) -> bool {
    shape.stride == 1 && crate::simd::tier() >= crate::simd::Tier::Avx2
}

/// Scratch values the forward (or, with `train`, also the backward) pass needs.
pub(super) fn scratch_len(s: &ConvShape, train: bool) -> usize {
    let f = Grid::forward(s);
    // Forward: the padded image and the transposed weights (channels in the lanes) or
    // a group's x planes (images in the lanes). Backward: the weight gradient's sums,
    // then a group's padded images (channels in the lanes) or a group's dy, dx and x
    // planes (images in the lanes).
    let fwd = (f.c_in * f.plane() + s.weights())
        .max((f.c_in * f.plane() + f.c_out * f.oh * f.ow) * images::IMAGES);
    let group = GROUP * f.c_in * f.plane();
    let bwd = Sums::len(&f) + group.max(images::scratch_len(&f));
    if train {
        fwd.max(bwd)
    } else {
        fwd
    }
}

/// y = conv(x, weight) + bias for `n` images: image by image with channels in the
/// lanes, else 16 images at a time in the lanes.
pub(super) fn forward(
    s: &ConvShape,
    (weight, bias): (&[f32], Option<&[f32]>),
    x: &[f32],
    n: usize,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    let g = Grid::forward(s);
    let (il, ol) = (s.in_len(), s.out_len());
    if channels::runs(&g) {
        let (xp, rest) = scratch.split_at_mut(g.c_in * g.plane());
        let wt = &mut rest[..s.weights()];
        channels::transpose(weight, &g, wt);
        for img in 0..n {
            pad(&x[img * il..(img + 1) * il], (s.h, s.w), s.pad, &g, xp);
            channels::forward(xp, wt, &g, bias, &mut y[img * ol..(img + 1) * ol]);
        }
        return;
    }
    let (xi, yi) = scratch.split_at_mut(g.c_in * g.plane() * images::IMAGES);
    for g0 in (0..n).step_by(images::IMAGES) {
        let gs = images::IMAGES.min(n - g0);
        images::planes(&x[g0 * il..][..gs * il], (s.h, s.w), s.pad, &g, xi);
        images::forward(xi, weight, &g, yi);
        images::unlanes(yi, &g, bias, &mut y[g0 * ol..][..gs * ol]);
    }
}

/// dweight (and dx if given) for `n` images; dweight is overwritten.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    s: &ConvShape,
    weight: &[f32],
    x: &[f32],
    dy: &[f32],
    n: usize,
    dweight: &mut [f32],
    dx: Option<&mut [f32]>,
    scratch: &mut [f32],
) {
    let f = Grid::forward(s);
    let (sums, rest) = scratch.split_at_mut(Sums::len(&f));
    let mut sums = Sums::new(&f, sums);
    let lanes = match &mut sums {
        Sums::Channels { dwt, dyt } => {
            channel_weight_grad((s, &f), (x, dy, n), (dwt, dyt), rest);
            None
        }
        Sums::Lanes(lanes) => Some(&mut **lanes),
    };
    if lanes.is_some() || dx.is_some() {
        image_grads((s, &f), weight, (x, dy, n), (lanes, dx), rest);
    }
    sums.finish(&f, &mut dweight[..s.weights()]);
}

/// The weight gradient's sums with channels in the lanes, a group of images at a time.
fn channel_weight_grad(
    (s, f): (&ConvShape, &Grid),
    (x, dy, n): (&[f32], &[f32], usize),
    (dwt, dyt): (&mut [f32], &mut [f32]),
    scratch: &mut [f32],
) {
    let xl = f.c_in * f.plane();
    let xp = &mut scratch[..GROUP * xl];
    let (il, ol) = (s.in_len(), s.out_len());
    for g0 in (0..n).step_by(GROUP) {
        let gs = GROUP.min(n - g0);
        for g in 0..gs {
            let img = g0 + g;
            pad(
                &x[img * il..][..il],
                (s.h, s.w),
                s.pad,
                f,
                &mut xp[g * xl..][..xl],
            );
            channels::transpose_dy(&dy[img * ol..][..ol], f, &mut dyt[g * ol..][..ol]);
        }
        channels::weight_grad(&xp[..gs * xl], &dyt[..gs * ol], f, dwt);
    }
}

/// With 16 images in the lanes (`images`): the weight gradient's sums if `lanes` is
/// given, and dx if given.
fn image_grads(
    (s, f): (&ConvShape, &Grid),
    weight: &[f32],
    (x, dy, n): (&[f32], &[f32], usize),
    (mut lanes, mut dx): (Option<&mut [f32]>, Option<&mut [f32]>),
    scratch: &mut [f32],
) {
    let (dyi, rest) = scratch.split_at_mut(f.c_out * images::pixels(f) * images::IMAGES);
    let (dxi, xi) = rest.split_at_mut(f.c_in * f.hp * f.wp * images::IMAGES);
    let (il, ol) = (s.in_len(), s.out_len());
    for g0 in (0..n).step_by(images::IMAGES) {
        let gs = images::IMAGES.min(n - g0);
        images::gather(&dy[g0 * ol..][..gs * ol], f, dyi);
        if let Some(lanes) = lanes.as_deref_mut() {
            images::planes(&x[g0 * il..][..gs * il], (s.h, s.w), s.pad, f, xi);
            images::weight_sums(xi, dyi, f, lanes);
        }
        if let Some(dx) = dx.as_deref_mut() {
            images::scatter(dyi, weight, f, dxi);
            images::spread(dxi, f, s.pad, &mut dx[g0 * il..][..gs * il]);
        }
    }
}

/// Where the weight gradient is summed until the batch is done.
enum Sums<'a> {
    /// With images in the lanes: 16 lanes per weight (`images::weight_sums`).
    Lanes(&'a mut [f32]),
    /// With channels in the lanes (`channels::weight_grad`): the gradient transposed,
    /// and a group's dy transposed.
    Channels {
        dwt: &'a mut [f32],
        dyt: &'a mut [f32],
    },
}

impl<'a> Sums<'a> {
    /// Values the sums take for `g`, the larger of the two kinds.
    fn len(g: &Grid) -> usize {
        let weights = g.c_out * g.patch();
        (weights * L).max(weights + GROUP * g.c_out * g.oh * g.ow)
    }

    /// Zeroed sums of the kind `g` runs, in `scratch`.
    fn new(g: &Grid, scratch: &'a mut [f32]) -> Self {
        let weights = g.c_out * g.patch();
        let scratch = &mut scratch[..Self::len(g)];
        scratch.fill(0.0);
        if channels::runs(g) {
            let (dwt, dyt) = scratch.split_at_mut(weights);
            Sums::Channels { dwt, dyt }
        } else {
            Sums::Lanes(&mut scratch[..weights * L])
        }
    }

    /// The weight gradient [c_out, patch] from the sums.
    fn finish(&self, g: &Grid, dweight: &mut [f32]) {
        match self {
            Sums::Lanes(lanes) => {
                for (d, lane) in dweight.iter_mut().zip(lanes.chunks_exact(L)) {
                    *d = sum_lanes(lane);
                }
            }
            Sums::Channels { dwt, .. } => channels::untranspose(dwt, g, dweight),
        }
    }
}

/// A [c, h, w] image into its padded planes (zeros around and after).
fn pad(x: &[f32], (h, w): (usize, usize), p: usize, g: &Grid, xp: &mut [f32]) {
    let plane = g.plane();
    xp[..g.c_in * plane].fill(0.0);
    for (c, src) in x.chunks_exact(h * w).enumerate() {
        let dst = &mut xp[c * plane..(c + 1) * plane];
        for (r, row) in src.chunks_exact(w).enumerate() {
            let at = (r + p) * g.wp + p;
            dst[at..at + w].copy_from_slice(row);
        }
    }
}

/// The `L` values at the start of `v`.
#[inline(always)]
fn lanes(v: &[f32]) -> [f32; L] {
    *v.first_chunk().expect("whole vectors")
}

/// acc += v * s lane by lane, one rounding each.
#[inline(always)]
fn fma_lanes(acc: &mut [f32; L], v: &[f32; L], s: f32) {
    for l in 0..L {
        acc[l] = v[l].mul_add(s, acc[l]);
    }
}

/// The 16 lanes of one weight's gradient summed in a fixed order (pairwise).
fn sum_lanes(lane: &[f32]) -> f32 {
    let mut v = [0.0f32; L];
    v.copy_from_slice(lane);
    let mut w = L;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            v[i] += v[i + w];
        }
    }
    v[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv::tests::values;
    use crate::simd::{each_tier, with_tier, Tier};

    /// Stride-1 shapes around the blocks: channel counts of 1, 3, 4, 6, 16 and 32 (every
    /// block size, and channels in lanes), padding 0 to beyond the kernel, grids
    /// shorter and longer than one block, kernels of 1 to 7 (rows and columns in
    /// whole and partial blocks).
    fn shapes() -> Vec<ConvShape> {
        [
            ((1, 28, 28), 6, 5, 2),
            ((6, 14, 14), 16, 5, 0),
            ((2, 7, 6), 3, 3, 2),
            ((3, 5, 9), 4, 2, 1),
            ((16, 3, 3), 1, 1, 0),
            ((2, 4, 5), 5, 2, 3),
            ((3, 7, 23), 32, 3, 1),
            ((2, 9, 8), 16, 7, 3),
        ]
        .into_iter()
        .map(|(i, o, k, p)| ConvShape::new(1, i, o, k, 1, p).unwrap())
        .collect()
    }

    /// y, dweight and dx of the direct path for 3 images.
    fn run(s: &ConvShape) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let n = 3;
        let (w, b) = (values(s.weights(), 21), values(s.c_out, 22));
        let (x, dy) = (values(n * s.in_len(), 23), values(n * s.out_len(), 24));
        let mut scratch = vec![f32::NAN; scratch_len(s, true)];
        let mut y = vec![f32::NAN; n * s.out_len()];
        forward(s, (&w, Some(&b)), &x, n, &mut y, &mut scratch);
        let (mut dw, mut dx) = (vec![f32::NAN; w.len()], vec![f32::NAN; x.len()]);
        backward(s, &w, &x, &dy, n, &mut dw, Some(&mut dx), &mut scratch);
        (y, dw, dx)
    }

    /// The same bits at every tier (the portable copies round each multiply-add once
    /// too), and the im2col path's values (portable tier) within rounding.
    #[test]
    fn the_same_bits_at_every_tier_and_the_values_of_im2col() {
        for s in shapes() {
            let all = each_tier(|| run(&s));
            for (tier, got) in &all {
                assert!(got == &all[0].1, "{s:?}: {tier} differs from portable");
            }
            let n = 3;
            let (w, b) = (values(s.weights(), 21), values(s.c_out, 22));
            let (x, dy) = (values(n * s.in_len(), 23), values(n * s.out_len(), 24));
            let want = with_tier(Tier::Portable, || {
                assert!(!runs(&s), "the portable tier keeps im2col");
                let (mut col, mut tmp) = (vec![0.0; s.col_len()], vec![0.0; s.tmp_len(true)]);
                let mut y = vec![0.0; n * s.out_len()];
                s.forward(&w, Some(&b), &x, n, &mut y, (&mut col, &mut tmp), None);
                let (mut dw, mut dx) = (vec![0.0; w.len()], vec![0.0; x.len()]);
                let scratch = (&mut col[..], &mut tmp[..]);
                s.backward(&w, &x, &dy, n, &mut dw, None, Some(&mut dx), scratch, None);
                (y, dw, dx)
            });
            let got = &all[0].1;
            // A weight's gradient sums n * oh * ow products of values near 1 in
            // another order: its rounding grows with that count.
            let terms = (n * s.out_h() * s.out_w()) as f32;
            for (what, g, e, tol) in [
                ("y", &got.0, &want.0, 1e-5),
                ("dw", &got.1, &want.1, 1e-7 * terms + 1e-5),
                ("dx", &got.2, &want.2, 1e-5),
            ] {
                for (i, (g, e)) in g.iter().zip(e).enumerate() {
                    assert!(
                        (g - e).abs() <= tol * (1.0 + e.abs()),
                        "{s:?} {what}[{i}]: {g} vs {e}"
                    );
                }
            }
        }
    }

    /// The two layouts' forward passes give the same bits at every tier: the same
    /// chain per output.
    #[test]
    fn channel_lanes_and_image_lanes_give_the_same_bits() {
        for (i, o, k, p) in [
            ((6, 14, 14), 16, 5, 0),
            ((3, 7, 23), 32, 3, 1),
            ((2, 5, 4), 16, 2, 2),
        ] {
            let (s, n) = (ConvShape::new(1, i, o, k, 1, p).unwrap(), 3);
            let g = Grid::forward(&s);
            let (w, b) = (values(s.weights(), 31), values(o, 32));
            let x = values(n * s.in_len(), 33);
            let (il, ol) = (s.in_len(), s.out_len());
            for (tier, (by_channels, by_images)) in each_tier(|| {
                let mut xp = vec![0.0; g.c_in * g.plane()];
                let mut wt = vec![0.0; s.weights()];
                channels::transpose(&w, &g, &mut wt);
                let mut y = vec![f32::NAN; n * ol];
                for m in 0..n {
                    pad(&x[m * il..][..il], (s.h, s.w), s.pad, &g, &mut xp);
                    channels::forward(&xp, &wt, &g, Some(&b), &mut y[m * ol..][..ol]);
                }
                let mut xi = vec![f32::NAN; g.c_in * g.plane() * images::IMAGES];
                let mut yi = vec![f32::NAN; ol * images::IMAGES];
                images::planes(&x, (s.h, s.w), s.pad, &g, &mut xi);
                images::forward(&xi, &w, &g, &mut yi);
                let mut y2 = vec![f32::NAN; n * ol];
                images::unlanes(&yi, &g, Some(&b), &mut y2);
                (y, y2)
            }) {
                assert!(by_channels == by_images, "{s:?} at {tier}");
            }
        }
    }

    /// Only stride 1 runs here (any padding), and only with FMA.
    #[test]
    fn strides_keep_im2col() {
        let strided = ConvShape::new(1, (1, 8, 8), 2, 3, 2, 1).unwrap();
        let wide_pad = ConvShape::new(1, (1, 8, 8), 2, 3, 1, 3).unwrap();
        for (tier, (a, b)) in each_tier(|| (runs(&strided), runs(&wide_pad))) {
            assert!(!a, "at {tier}");
            assert_eq!(b, tier >= Tier::Avx2, "at {tier}");
        }
    }
}
