//! The direct kernels with output channels in the SIMD lanes, for layers with a
//! multiple of 16 of them (LeNet-5's conv2: 16 channels on a 10x10 map): every lane
//! does useful work, one image at a time.
//!
//! Shapes: xp [c_in, plane] (one image's padded planes); wt [c_in * k * k, c_out] (the
//! weights transposed: one tap's 16 channels are one vector); y [c_out, oh, ow];
//! dyt [oh * ow, c_out] (dy transposed); dwt [c_in * k * k, c_out] (the weight
//! gradient transposed).
//!
//! Forward, each output is one chain, x * w + acc over the taps in (c, i, j) order
//! from 0, then + bias: the images kernels' chain, so both give the same bits.
//! Backward, each weight's gradient is one chain of multiply-adds over the
//! images in order and, within each, the output positions in row order. That order
//! does not depend on the register blocks, so every tier gives the same bits.

use super::{fma_lanes, lanes, Grid, L};

/// Output positions per block of the forward pass on AVX-512: ten accumulators of 16
/// lanes.
const PB_WIDE: usize = 10;
/// Output positions per block on AVX2 (two registers per 16 lanes).
const PB_NARROW: usize = 5;
/// Kernel columns per block of the weight gradient.
const COLS: usize = 5;

/// Whether these kernels run: whole vectors of channels, at every tier with FMA (the
/// values do not depend on the tier).
pub(super) fn runs(g: &Grid) -> bool {
    g.c_out.is_multiple_of(L)
}

/// wt[tap, o] = weight[o, tap].
pub(super) fn transpose(weight: &[f32], g: &Grid, wt: &mut [f32]) {
    let patch = g.patch();
    for (o, row) in weight.chunks_exact(patch).enumerate().take(g.c_out) {
        for (t, &w) in row.iter().enumerate() {
            wt[t * g.c_out + o] = w;
        }
    }
}

/// y = conv(xp, weight) + bias for one padded image.
pub(super) fn forward(xp: &[f32], wt: &[f32], g: &Grid, bias: Option<&[f32]>, y: &mut [f32]) {
    crate::simd_dispatch!((xp: &[f32], wt: &[f32], g: &Grid, bias: Option<&[f32]>, y: &mut [f32]) {
        if crate::simd::tier() == crate::simd::Tier::Avx512 {
            forward_blocks::<PB_WIDE>(xp, wt, g, bias, y)
        } else {
            forward_blocks::<PB_NARROW>(xp, wt, g, bias, y)
        }
    })
}

/// `forward` in blocks of `PB` output positions along a row.
// Inlined into the calling tier's function, so compiled with its features.
#[inline(always)]
fn forward_blocks<const PB: usize>(
    xp: &[f32],
    wt: &[f32],
    g: &Grid,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let pixels = g.oh * g.ow;
    for o0 in (0..g.c_out).step_by(L) {
        for oy in 0..g.oh {
            for ox0 in (0..g.ow).step_by(PB) {
                // The row's last block ends at its end (recomputing a few outputs of the
                // one before it, the same bits); a row shorter than a block reads the
                // zeros after it and drops those outputs.
                let start = ox0.min(g.ow.saturating_sub(PB));
                let a = block::<PB>(xp, wt, g, o0, oy * g.wp + start);
                for (u, acc) in a.iter().enumerate().take(g.ow - start) {
                    for (l, &v) in acc.iter().enumerate() {
                        let o = o0 + l;
                        y[o * pixels + oy * g.ow + start + u] = v + bias.map_or(0.0, |b| b[o]);
                    }
                }
            }
        }
    }
}

/// The sums of channels o0..o0 + 16 at the `PB` positions from plane position `at`.
// Inlined into the calling tier's function, so compiled with its features.
#[inline(always)]
fn block<const PB: usize>(
    xp: &[f32],
    wt: &[f32],
    g: &Grid,
    o0: usize,
    at: usize,
) -> [[f32; L]; PB] {
    const { assert!(PB <= 16, "each! counts to 16") };
    let plane = g.plane();
    // Named by constant indices only: the compiler keeps them in registers.
    let mut a = [[0.0f32; L]; PB];
    for c in 0..g.c_in {
        for i in 0..g.k {
            // One kernel row's inputs and weights, sliced once so that the taps' reads
            // need no checks.
            let xs = &xp[c * plane + at + i * g.wp..][..g.k - 1 + PB];
            let ws = &wt[(c * g.k + i) * g.k * g.c_out + o0..][..(g.k - 1) * g.c_out + L];
            for j in 0..g.k {
                let x: &[f32; PB] = xs[j..].first_chunk().expect("planes end in zeros");
                let w: &[f32; L] = ws[j * g.c_out..]
                    .first_chunk()
                    .expect("whole vectors of channels");
                each!(PB, |u| fma_lanes(&mut a[u], w, x[u]));
            }
        }
    }
    a
}

/// dyt[p, o] = dy[o, p] for one image.
pub(super) fn transpose_dy(dy: &[f32], g: &Grid, dyt: &mut [f32]) {
    let pixels = g.oh * g.ow;
    for (o, plane) in dy.chunks_exact(pixels).enumerate().take(g.c_out) {
        for (p, &d) in plane.iter().enumerate() {
            dyt[p * g.c_out + o] = d;
        }
    }
}

/// weight[o, tap] = wt[tap, o]: `transpose` undone (for the weight gradient).
pub(super) fn untranspose(wt: &[f32], g: &Grid, weight: &mut [f32]) {
    let patch = g.patch();
    for (o, row) in weight.chunks_exact_mut(patch).enumerate().take(g.c_out) {
        for (t, w) in row.iter_mut().enumerate() {
            *w = wt[t * g.c_out + o];
        }
    }
}

/// dwt += the weight gradient of a group of images (xp [images, c_in, plane], dyt
/// [images, oh * ow, c_out]), each lane's chain going on from the value in dwt.
pub(super) fn weight_grad(xp: &[f32], dyt: &[f32], g: &Grid, dwt: &mut [f32]) {
    crate::simd_dispatch!((xp: &[f32], dyt: &[f32], g: &Grid, dwt: &mut [f32]) {
        let wide = crate::simd::tier() == crate::simd::Tier::Avx512;
        for o0 in (0..g.c_out).step_by(L) {
            for c in 0..g.c_in {
                for j0 in (0..g.k).step_by(COLS) {
                    let mut i0 = 0;
                    while i0 < g.k {
                        let at = (c, o0, i0, j0);
                        i0 += match g.k - i0 {
                            _ if !wide => weight_block::<1>(xp, dyt, g, at, dwt),
                            1 => weight_block::<1>(xp, dyt, g, at, dwt),
                            2 => weight_block::<2>(xp, dyt, g, at, dwt),
                            _ => weight_block::<3>(xp, dyt, g, at, dwt),
                        };
                    }
                }
            }
        }
    })
}

/// `weight_grad` for input channel c, output channels o0..o0 + 16 and the taps of
/// kernel rows i0..i0 + R (R <= k - i0) and columns j0..j0 + `COLS` (a partial block
/// computes columns past the kernel and drops them); returns R. AVX-512 takes three
/// rows (15 accumulators) at a time, as with more the compiler spilled them; AVX2's
/// 16 registers (two per 16 lanes) hold one row.
// Inlined into the calling tier's function, so compiled with its features.
#[inline(always)]
fn weight_block<const R: usize>(
    xp: &[f32],
    dyt: &[f32],
    g: &Grid,
    (c, o0, i0, j0): (usize, usize, usize, usize),
    dwt: &mut [f32],
) -> usize {
    const { assert!(R <= 16 && COLS <= 16, "each! counts to 16") };
    let (plane, kk, pixels) = (g.plane(), g.k * g.k, g.oh * g.ow);
    let images = xp.len() / (g.c_in * plane);
    let cols = (g.k - j0).min(COLS);
    let at = |r: usize, u: usize| (c * kk + (i0 + r) * g.k + (j0 + u).min(g.k - 1)) * g.c_out + o0;
    // Named by constant indices only: the compiler keeps them in registers.
    let mut a = [[[0.0f32; L]; COLS]; R];
    each!(R, |r| each!(COLS, |u| a[r][u] = lanes(&dwt[at(r, u)..])));
    for img in 0..images {
        let xc = &xp[(img * g.c_in + c) * plane..][..plane];
        let dimg = &dyt[img * pixels * g.c_out..][..pixels * g.c_out];
        for oy in 0..g.oh {
            // Each row's values for the block's columns at every ox; the plane's
            // zeros cover the columns past the kernel.
            let xs: [&[f32]; R] =
                std::array::from_fn(|r| &xc[(oy + i0 + r) * g.wp + j0..][..g.ow - 1 + COLS]);
            let drow = &dimg[oy * g.ow * g.c_out..][..g.ow * g.c_out];
            for (ox, d) in drow.chunks_exact(g.c_out).enumerate() {
                let d = lanes(&d[o0..]);
                each!(R, |r| {
                    let x: &[f32; COLS] = xs[r][ox..].first_chunk().expect("sliced to fit");
                    each!(COLS, |u| fma_lanes(&mut a[r][u], &d, x[u]));
                });
            }
        }
    }
    each!(R, |r| each!(COLS, |u| if u < cols {
        dwt[at(r, u)..][..L].copy_from_slice(&a[r][u]);
    }));
    R
}
