//! Stride-1 convolution without im2col: each image is zero-padded once, and every
//! kernel tap is then a shifted read of the padded planes.
//!
//! Shapes (one image at a time): x [c_in, h, w] is copied into xp [c_in, plane] where
//! a plane holds the padded image [hp, wp] (hp = h + 2p, wp = w + 2p) row after row,
//! then zeros. Outputs are computed on the padded grid: position q = oy * wp + ox for
//! q < qv (a multiple of `STEP`), and
//!   out[o, q] = sum over (c, i, j) of weight[o, c, i, j] * xp[c, q + i * wp + j],
//! which is y[o, oy, ox] wherever ox < ow and oy < oh (the other positions are thrown
//! away). So each tap is a contiguous, unaligned read of `STEP` values, and the
//! products run in SIMD lanes along q with no copies of the image per tap.
//!
//! Backward, dy is laid on the same grid (dyq [c_out, qv], zeros at the thrown-away
//! positions): the weight gradient is a dot product along q of dyq with each shifted
//! plane, and the input gradient is scattered back onto padded planes,
//! dxp[c, q + i * wp + j] += weight[o, c, i, j] * dyq[o, q], whose inside is dx.
//! Every value is summed by fused multiply-adds in a fixed order, so the bits are the
//! same at every SIMD tier; this path needs FMA to be fast, so the portable tier keeps
//! im2col.

use super::ConvShape;

/// `$body` for u = 0, 1, .. below `$t` (at most 8), each u a constant: loops over
/// blocks of accumulators left them in memory.
macro_rules! each {
    ($t:expr, |$u:ident| $body:expr) => {
        each!(@ $t, $u, $body, 0 1 2 3 4 5 6 7)
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

/// SIMD lanes per vector of the kernels (one AVX-512 register, two AVX2 ones).
const L: usize = 16;
/// Vectors along q per block of the correlation.
const QB: usize = 2;
/// Positions per block of the correlation: grids are rounded up to it.
const STEP: usize = L * QB;
/// Taps per block of the gradients.
const TB: usize = 5;
/// Images per pass of the weight gradient: its sums run on over the group's images
/// before they are added to the lanes.
const GROUP: usize = 8;

/// The padded grid of one correlation.
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
    /// Padded input width: the grid's row length.
    wp: usize,
    /// Output height and width on the grid (valid outputs: ox < ow).
    oh: usize,
    /// Output width.
    ow: usize,
}

impl Grid {
    /// The grid of `shape`'s forward pass (padding p).
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

    /// Grid positions computed per output channel: oh * wp rounded up to `STEP`.
    fn qv(&self) -> usize {
        (self.oh * self.wp).div_ceil(STEP) * STEP
    }

    /// Values per padded input plane: the image, then zeros for the reads of the last
    /// block's thrown-away positions.
    fn plane(&self) -> usize {
        self.hp * self.wp + STEP + self.k
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
    // Forward: the padded image and the transposed weights. Backward: a group's padded
    // images and dy grids, the input gradient's planes and staging, the lanes.
    let fwd = f.c_in * f.plane() + s.weights();
    let group = GROUP * (f.c_in * f.plane() + f.c_out * f.qv());
    let bwd = group + f.c_in * f.plane() + TB * f.qv() + Sums::len(&f);
    if train {
        fwd.max(bwd)
    } else {
        fwd
    }
}

/// y = conv(x, weight) + bias for `n` images, image by image.
pub(super) fn forward(
    s: &ConvShape,
    (weight, bias): (&[f32], Option<&[f32]>),
    x: &[f32],
    n: usize,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    let g = Grid::forward(s);
    let (xp, rest) = scratch.split_at_mut(g.c_in * g.plane());
    let (il, ol) = (s.in_len(), s.out_len());
    if channels::runs(&g) {
        let wt = &mut rest[..s.weights()];
        channels::transpose(weight, &g, wt);
        for img in 0..n {
            pad(&x[img * il..(img + 1) * il], (s.h, s.w), s.pad, &g, xp);
            channels::forward(xp, wt, &g, bias, &mut y[img * ol..(img + 1) * ol]);
        }
        return;
    }
    for img in 0..n {
        pad(&x[img * il..(img + 1) * il], (s.h, s.w), s.pad, &g, xp);
        correlate(xp, weight, &g, bias, &mut y[img * ol..(img + 1) * ol]);
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
    mut dx: Option<&mut [f32]>,
    scratch: &mut [f32],
) {
    let f = Grid::forward(s);
    let (xl, ql) = (f.c_in * f.plane(), f.c_out * f.qv());
    let (xp, rest) = scratch.split_at_mut(GROUP * xl);
    let (dyq, rest) = rest.split_at_mut(GROUP * ql);
    let (dxp, rest) = rest.split_at_mut(xl);
    let (stage, rest) = rest.split_at_mut(TB * f.qv());
    let mut sums = Sums::new(&f, rest);
    let (il, ol) = (s.in_len(), s.out_len());
    for g0 in (0..n).step_by(GROUP) {
        let gs = GROUP.min(n - g0);
        for g in 0..gs {
            let img = g0 + g;
            pad(
                &x[img * il..][..il],
                (s.h, s.w),
                s.pad,
                &f,
                &mut xp[g * xl..][..xl],
            );
            let dy = &dy[img * ol..][..ol];
            on_grid(dy, &f, &mut dyq[g * ql..][..ql]);
            if let Sums::Channels { dyt, .. } = &mut sums {
                channels::transpose_dy(dy, &f, &mut dyt[g * ol..][..ol]);
            }
        }
        match &mut sums {
            Sums::Lanes(lanes) => weight_lanes(&xp[..gs * xl], &dyq[..gs * ql], &f, lanes),
            Sums::Channels { dwt, dyt } => {
                channels::weight_grad(&xp[..gs * xl], &dyt[..gs * ol], &f, dwt)
            }
        }
        let Some(dx) = dx.as_deref_mut() else {
            continue;
        };
        for g in 0..gs {
            input_scatter(&dyq[g * ql..][..ql], weight, &f, dxp, stage);
            interior(dxp, &f, s.pad, &mut dx[(g0 + g) * il..][..il]);
        }
    }
    sums.finish(&f, &mut dweight[..s.weights()]);
}

/// Where the weight gradient is summed until the batch is done.
enum Sums<'a> {
    /// On the grid: 16 lanes per weight (`weight_lanes`).
    Lanes(&'a mut [f32]),
    /// With channels in the lanes (`channels::weight_grad`): the gradient transposed,
    /// and a group's dy transposed.
    Channels {
        dwt: &'a mut [f32],
        dyt: &'a mut [f32],
    },
}

impl<'a> Sums<'a> {
    /// Values the sums take for grid `g`, the larger of the two kinds.
    fn len(g: &Grid) -> usize {
        let weights = g.c_out * g.patch();
        (weights * L).max(weights + GROUP * g.c_out * g.oh * g.ow)
    }

    /// Zeroed sums of the kind `g` runs, in `scratch`.
    fn new(g: &Grid, scratch: &'a mut [f32]) -> Self {
        let weights = g.c_out * g.patch();
        let scratch = &mut scratch[..Self::len(g)];
        scratch.fill(0.0);
        if channels::grads(g) {
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

/// A [c, h, w] image into the grid's padded planes (zeros around and after).
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

/// The outputs of one block of grid positions q0..q0 + STEP into their channel's
/// plane [oh, ow] (the thrown-away positions skipped), adding the bias.
#[inline(always)]
fn store_block(acc: &[f32; STEP], q0: usize, g: &Grid, bias: f32, plane: &mut [f32]) {
    let end = (q0 + STEP).min(g.oh * g.wp);
    let mut q = q0;
    while q < end {
        let (row, col) = (q / g.wp, q % g.wp);
        let stop = ((row + 1) * g.wp).min(end);
        if col < g.ow {
            let n = (g.ow - col).min(stop - q);
            let dst = &mut plane[row * g.ow + col..][..n];
            for (v, &a) in dst.iter_mut().zip(&acc[q - q0..]) {
                *v = a + bias;
            }
        }
        q = stop;
    }
}

/// dy [c_out, oh, ow] laid on the forward grid [c_out, qv], zeros elsewhere.
fn on_grid(dy: &[f32], g: &Grid, dyq: &mut [f32]) {
    let qv = g.qv();
    dyq[..g.c_out * qv].fill(0.0);
    for (o, plane) in dy.chunks_exact(g.oh * g.ow).enumerate() {
        for (r, row) in plane.chunks_exact(g.ow).enumerate() {
            let at = o * qv + r * g.wp;
            dyq[at..at + g.ow].copy_from_slice(row);
        }
    }
}

/// dx [c_in, h, w] = the inside of the padded planes dxp (padding p cut off).
fn interior(dxp: &[f32], g: &Grid, p: usize, dx: &mut [f32]) {
    let (plane, w) = (g.plane(), g.wp - 2 * p);
    for (c, dst) in dx.chunks_exact_mut((g.hp - 2 * p) * w).enumerate() {
        for (r, row) in dst.chunks_exact_mut(w).enumerate() {
            let at = c * plane + (r + p) * g.wp + p;
            row.copy_from_slice(&dxp[at..at + w]);
        }
    }
}

/// dxp[c, q + shift(tap)] += sum over o of weight[o, c, tap] * dyq[o, q]: the input
/// gradient scattered onto the padded planes, five taps at a time (a partial block
/// repeats its last tap and drops it). Each tap's sum over channels is one chain;
/// the planes take the taps in a fixed order.
fn input_scatter(dyq: &[f32], weight: &[f32], g: &Grid, dxp: &mut [f32], stage: &mut [f32]) {
    crate::simd_dispatch!((dyq: &[f32], weight: &[f32], g: &Grid, dxp: &mut [f32], stage: &mut [f32]) {
        let (plane, qv, kk) = (g.plane(), g.qv(), g.k * g.k);
        let wide = crate::simd::tier() == crate::simd::Tier::Avx512;
        dxp[..g.c_in * plane].fill(0.0);
        for c in 0..g.c_in {
            let dxc = &mut dxp[c * plane..(c + 1) * plane];
            for t0 in (0..kk).step_by(TB) {
                let tap: [usize; TB] = std::array::from_fn(|u| c * g.k * g.k + (t0 + u).min(kk - 1));
                let shift = tap.map(|t| (t % kk / g.k) * g.wp + t % g.k);
                for q0 in (0..qv).step_by(STEP) {
                    let mut put = |u0: usize, a: &[[f32; STEP]]| {
                        for (u, acc) in a.iter().enumerate() {
                            stage[(u0 + u) * qv + q0..][..STEP].copy_from_slice(acc);
                        }
                    };
                    // All five taps' accumulators fit AVX-512's registers; AVX2's hold
                    // two at a time. The sums are the same either way.
                    if wide {
                        put(0, &five_tap_sums(dyq, weight, g, q0, tap));
                    } else {
                        put(0, &tap_sums(dyq, weight, g, q0, [tap[0], tap[1]]));
                        put(2, &tap_sums(dyq, weight, g, q0, [tap[2], tap[3]]));
                        put(4, &tap_sums(dyq, weight, g, q0, [tap[4]]));
                    }
                }
                // Added tap by tap over the whole grid, not block by block: the five
                // taps' blocks overlap, and reading a block just written one value
                // over stalls the loads on the stores.
                for (u, &sh) in shift.iter().enumerate().take(kk - t0) {
                    let add = &stage[u * qv..(u + 1) * qv];
                    for (v, &add) in dxc[sh..sh + qv].iter_mut().zip(add) {
                        *v += add;
                    }
                }
            }
        }
    })
}

/// For each of `N` taps, the sum over output channels o of weight[o, tap] * dyq[o,
/// q0..q0 + STEP], one chain per lane in channel order.
// Inlined into the calling tier's function, so compiled with its features.
#[inline(always)]
fn tap_sums<const N: usize>(
    dyq: &[f32],
    weight: &[f32],
    g: &Grid,
    q0: usize,
    tap: [usize; N],
) -> [[f32; STEP]; N] {
    let (qv, patch) = (g.qv(), g.patch());
    let mut a = [[0.0f32; STEP]; N];
    for o in 0..g.c_out {
        let d = block(&dyq[o * qv + q0..]);
        let w = &weight[o * patch..(o + 1) * patch];
        for (acc, &t) in a.iter_mut().zip(&tap) {
            axpy_into(acc, d, w[t]);
        }
    }
    a
}

/// `tap_sums` of five taps written out: a loop over them left the accumulators in
/// memory.
// Inlined into the calling tier's function, so compiled with its features.
#[inline(always)]
fn five_tap_sums(
    dyq: &[f32],
    weight: &[f32],
    g: &Grid,
    q0: usize,
    tap: [usize; 5],
) -> [[f32; STEP]; 5] {
    let (qv, patch) = (g.qv(), g.patch());
    // Named by constant indices only: the compiler keeps them in registers.
    let mut a = [[0.0f32; STEP]; 5];
    for o in 0..g.c_out {
        let d = block(&dyq[o * qv + q0..]);
        let w = &weight[o * patch..(o + 1) * patch];
        macro_rules! tap {
            ($u:literal) => {
                axpy_into(&mut a[$u], d, w[tap[$u]]);
            };
        }
        tap!(0);
        tap!(1);
        tap!(2);
        tap!(3);
        tap!(4);
    }
    a
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

/// out[o, q] = sum over taps of weight[o, tap] * xp[c, q + i * wp + j], for all
/// output channels and q < qv, in blocks of output channels; y [c_out, oh, ow] gets
/// the outputs on the grid, plus the bias.
fn correlate(xp: &[f32], weight: &[f32], g: &Grid, bias: Option<&[f32]>, y: &mut [f32]) {
    crate::simd_dispatch!((xp: &[f32], weight: &[f32], g: &Grid, bias: Option<&[f32]>, y: &mut [f32]) {
        // Enough accumulators to cover the multiply-add's latency, as many as the
        // registers hold: 32 with AVX-512, 16 (half as wide) with AVX2.
        let wide = crate::simd::tier() == crate::simd::Tier::Avx512;
        match g.c_out {
            c if wide && c % 6 == 0 => correlate_blocks::<6>(xp, weight, g, bias, y),
            _ if wide => correlate_blocks::<4>(xp, weight, g, bias, y),
            c if c % 3 == 0 => correlate_blocks::<3>(xp, weight, g, bias, y),
            _ => correlate_blocks::<2>(xp, weight, g, bias, y),
        }
    })
}

/// `correlate` with `OB` output channels per block (a partial block repeats its last
/// channel and drops the repeats).
// Inlined into the calling tier's function, so compiled with its features.
#[inline(always)]
fn correlate_blocks<const OB: usize>(
    xp: &[f32],
    weight: &[f32],
    g: &Grid,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let (plane, qv, patch, pixels) = (g.plane(), g.qv(), g.patch(), g.oh * g.ow);
    const { assert!(OB <= 8, "each! counts to 8") };
    for o0 in (0..g.c_out).step_by(OB) {
        let rows: [&[f32]; OB] = std::array::from_fn(|b| {
            let o = (o0 + b).min(g.c_out - 1);
            &weight[o * patch..(o + 1) * patch]
        });
        for q0 in (0..qv).step_by(STEP) {
            let mut acc = [[0.0f32; STEP]; OB];
            for c in 0..g.c_in {
                let xc = &xp[c * plane..(c + 1) * plane];
                for i in 0..g.k {
                    let (line, taps) = (q0 + i * g.wp, (c * g.k + i) * g.k);
                    for j in 0..g.k {
                        let xs = block(&xc[line + j..]);
                        each!(OB, |b| axpy_into(&mut acc[b], xs, rows[b][taps + j]));
                    }
                }
            }
            each!(OB, |b| if b < g.c_out - o0 {
                let o = o0 + b;
                let bias = bias.map_or(0.0, |b| b[o]);
                store_block(&acc[b], q0, g, bias, &mut y[o * pixels..(o + 1) * pixels]);
            });
        }
    }
}

/// lanes[o, tap, l] += the sum over q = l (mod 16) of dyq[o, q] * xp[c, q + shift]
/// (shift = i * wp + j): the weight gradient of one image, kept in lanes until the
/// batch is done.
/// Two output channels at a time (a partial block repeats its last channel and drops
/// the repeats; AVX2's 16 registers hold their accumulators), each in two vectors
/// along q (two chains, added at the end).
fn weight_lanes(xp: &[f32], dyq: &[f32], g: &Grid, lanes: &mut [f32]) {
    crate::simd_dispatch!((xp: &[f32], dyq: &[f32], g: &Grid, lanes: &mut [f32]) {
        if crate::simd::tier() == crate::simd::Tier::Avx512 {
            return weight_lanes_wide(xp, dyq, g, lanes);
        }
        let (plane, qv, patch, kk) = (g.plane(), g.qv(), g.patch(), g.k * g.k);
        let images = xp.len() / (g.c_in * plane);
        for o0 in (0..g.c_out).step_by(2) {
            let row = |img: usize, b: usize| {
                let o = img * g.c_out + (o0 + b).min(g.c_out - 1);
                &dyq[o * qv..(o + 1) * qv]
            };
            for c in 0..g.c_in {
                for t in 0..kk {
                    let (i, j) = (t / g.k, t % g.k);
                    let shift = i * g.wp + j;
                    // Named accumulators: the compiler keeps them in registers.
                    let (mut a0, mut a1) = ([0.0f32; STEP], [0.0; STEP]);
                    for img in 0..images {
                        let xc = &xp[(img * g.c_in + c) * plane..][..plane];
                        let (r0, r1) = (row(img, 0), row(img, 1));
                        for q0 in (0..qv).step_by(STEP) {
                            let xs = block(&xc[q0 + shift..]);
                            fma_into(&mut a0, xs, block(&r0[q0..]));
                            fma_into(&mut a1, xs, block(&r1[q0..]));
                        }
                    }
                    for (b, acc) in [a0, a1].iter().enumerate().take(g.c_out - o0) {
                        let at = ((o0 + b) * patch + c * kk + t) * L;
                        for (l, lane) in lanes[at..at + L].iter_mut().enumerate() {
                            *lane += acc[l] + acc[L + l];
                        }
                    }
                }
            }
        }
    })
}

/// `weight_lanes` with the 32 registers of AVX-512: two output channels by five taps
/// at a time (partial blocks repeat their last channel or tap and drop the repeats),
/// so each read of dy serves five taps and each shifted read of x two channels. The
/// same sums in the same order as the narrow version.
// Inlined into the calling tier's function, so compiled with its features.
#[inline(always)]
fn weight_lanes_wide(xp: &[f32], dyq: &[f32], g: &Grid, lanes: &mut [f32]) {
    let (plane, qv, patch, kk) = (g.plane(), g.qv(), g.patch(), g.k * g.k);
    let images = xp.len() / (g.c_in * plane);
    for o0 in (0..g.c_out).step_by(2) {
        let o1 = (o0 + 1).min(g.c_out - 1);
        for c in 0..g.c_in {
            for t0 in (0..kk).step_by(TB) {
                let shift: [usize; TB] = std::array::from_fn(|u| {
                    let t = (t0 + u).min(kk - 1);
                    (t / g.k) * g.wp + t % g.k
                });
                // Named by constant indices only: the compiler keeps them in registers.
                let mut a = [[0.0f32; STEP]; 2 * TB];
                for img in 0..images {
                    let xc = &xp[(img * g.c_in + c) * plane..][..plane];
                    let r = |o: usize| &dyq[(img * g.c_out + o) * qv..][..qv];
                    let (r0, r1) = (r(o0), r(o1));
                    for q0 in (0..qv).step_by(STEP) {
                        let (d0, d1) = (block(&r0[q0..]), block(&r1[q0..]));
                        macro_rules! tap {
                            ($u:literal) => {
                                let x = block(&xc[q0 + shift[$u]..]);
                                fma_into(&mut a[2 * $u], x, d0);
                                fma_into(&mut a[2 * $u + 1], x, d1);
                            };
                        }
                        tap!(0);
                        tap!(1);
                        tap!(2);
                        tap!(3);
                        tap!(4);
                    }
                }
                for (u, pair) in a.chunks_exact(2).enumerate().take(kk - t0) {
                    for (b, acc) in pair.iter().enumerate().take(g.c_out - o0) {
                        let at = ((o0 + b) * patch + c * kk + t0 + u) * L;
                        for (l, lane) in lanes[at..at + L].iter_mut().enumerate() {
                            *lane += acc[l] + acc[L + l];
                        }
                    }
                }
            }
        }
    }
}

/// acc += d * w lane by lane, one rounding each.
#[inline(always)]
fn axpy_into(acc: &mut [f32; STEP], d: &[f32; STEP], w: f32) {
    for l in 0..STEP {
        acc[l] = d[l].mul_add(w, acc[l]);
    }
}

/// acc += x * d lane by lane, one rounding each.
#[inline(always)]
fn fma_into(acc: &mut [f32; STEP], x: &[f32; STEP], d: &[f32; STEP]) {
    for l in 0..STEP {
        acc[l] = x[l].mul_add(d[l], acc[l]);
    }
}

/// The `STEP` values at the start of `v` as an array, so the kernels' loops over them
/// have a known length (they vectorise, with no bounds checks).
#[inline(always)]
fn block(v: &[f32]) -> &[f32; STEP] {
    v.first_chunk().expect("the grids hold whole blocks")
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

    /// The channel-lane forward pass (16 or 32 channels on AVX-512) gives the grid's
    /// bits: the same chain per output.
    #[test]
    fn channel_lanes_give_the_grid_bits() {
        for (i, o, k, p) in [
            ((6, 14, 14), 16, 5, 0),
            ((3, 7, 23), 32, 3, 1),
            ((2, 5, 4), 16, 2, 2),
        ] {
            let s = ConvShape::new(1, i, o, k, 1, p).unwrap();
            let g = Grid::forward(&s);
            let (w, b, x) = (
                values(s.weights(), 31),
                values(o, 32),
                values(s.in_len(), 33),
            );
            let mut xp = vec![0.0; g.c_in * g.plane()];
            pad(&x, (s.h, s.w), s.pad, &g, &mut xp);
            let mut want = vec![f32::NAN; s.out_len()];
            correlate(&xp, &w, &g, Some(&b), &mut want);
            let mut wt = vec![0.0; s.weights()];
            channels::transpose(&w, &g, &mut wt);
            for (tier, got) in each_tier(|| {
                let mut y = vec![f32::NAN; s.out_len()];
                channels::forward(&xp, &wt, &g, Some(&b), &mut y);
                y
            }) {
                assert!(got == want, "{s:?} at {tier}");
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
