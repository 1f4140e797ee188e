//! The direct input gradient with 16 images in the SIMD lanes: every lane does useful
//! work, where the padded grid spends lanes on thrown-away positions (LeNet-5's conv2:
//! 160 for 100 outputs) and stages each tap's sums before adding them.
//!
//! Shapes, for a group of up to 16 images (the missing ones zeros): dyi [c_out,
//! pixels, 16] with pixels = oh * ow rounded up to `P` (dy, the images in the lanes);
//! dxi [c_in, hp * wp, 16] (the padded planes of dx); weight [c_out, c_in, k, k].
//! Output position p = (oy, ox) sits at q = oy * wp + ox on the padded plane, and
//!   dx[c, q + i * wp + j] += sum over o of weight[o, c, i, j] * dy[o, p],
//! each sum one chain in channel order from 0. The sums are added to the planes by
//! blocks of `P` positions, then by input channel, then tap by tap in (i, j) order,
//! then position by position: an order that no tier changes, so the bits are the same
//! at every tier.

use super::{Grid, L};

/// Images per group: one per lane.
pub(super) const IMAGES: usize = L;
/// Output positions per block (the same at every tier: the order of the additions
/// depends on it).
const P: usize = 2;
/// Taps per block on AVX-512: ten accumulators.
const TAPS_WIDE: usize = 5;
/// Taps per block on AVX2 (two registers per 16 lanes) and the portable tier.
const TAPS_NARROW: usize = 2;

/// Output positions of a group's dy, rounded up to whole blocks.
pub(super) fn pixels(g: &Grid) -> usize {
    (g.oh * g.ow).div_ceil(P) * P
}

/// Values of a group's dy and padded dx planes.
pub(super) fn scratch_len(g: &Grid) -> usize {
    (g.c_out * pixels(g) + g.c_in * g.hp * g.wp) * IMAGES
}

/// dyi[o, p, m] = dy[m, o, p] for the group's images m (zeros for missing images and
/// the positions past the last).
pub(super) fn gather(dy: &[f32], g: &Grid, dyi: &mut [f32]) {
    let (px, real) = (pixels(g), g.oh * g.ow);
    let dyi = &mut dyi[..g.c_out * px * IMAGES];
    dyi.fill(0.0);
    for (m, image) in dy.chunks_exact(g.c_out * real).enumerate().take(IMAGES) {
        for (o, plane) in image.chunks_exact(real).enumerate() {
            for (p, &d) in plane.iter().enumerate() {
                dyi[(o * px + p) * IMAGES + m] = d;
            }
        }
    }
}

/// dx[m] = the inside of the padded planes dxi (padding `pad` cut off), for each of
/// the group's images.
pub(super) fn spread(dxi: &[f32], g: &Grid, pad: usize, dx: &mut [f32]) {
    let (h, w) = (g.hp - 2 * pad, g.wp - 2 * pad);
    for (m, image) in dx.chunks_exact_mut(g.c_in * h * w).enumerate().take(IMAGES) {
        for (c, plane) in image.chunks_exact_mut(h * w).enumerate() {
            for (r, row) in plane.chunks_exact_mut(w).enumerate() {
                let at = c * g.hp * g.wp + (r + pad) * g.wp + pad;
                for (x, v) in row.iter_mut().enumerate() {
                    *v = dxi[(at + x) * IMAGES + m];
                }
            }
        }
    }
}

/// dxi = the input gradient's padded planes for the group in dyi.
pub(super) fn scatter(dyi: &[f32], weight: &[f32], g: &Grid, dxi: &mut [f32]) {
    crate::simd_dispatch!((dyi: &[f32], weight: &[f32], g: &Grid, dxi: &mut [f32]) {
        let wide = crate::simd::tier() == crate::simd::Tier::Avx512;
        let real = g.oh * g.ow;
        dxi[..g.c_in * g.hp * g.wp * IMAGES].fill(0.0);
        for p0 in (0..pixels(g)).step_by(P) {
            // Where the block's positions sit on the padded plane (none for the
            // positions past the last).
            let q: [Option<usize>; P] = std::array::from_fn(|v| {
                let p = p0 + v;
                (p < real).then(|| (p / g.ow) * g.wp + p % g.ow)
            });
            let at = Block { p0, q };
            for c in 0..g.c_in {
                for i in 0..g.k {
                    if wide {
                        for j0 in (0..g.k).step_by(TAPS_WIDE) {
                            taps::<TAPS_WIDE>(dyi, weight, g, &at, (c, i, j0), dxi);
                        }
                    } else {
                        for j0 in (0..g.k).step_by(TAPS_NARROW) {
                            taps::<TAPS_NARROW>(dyi, weight, g, &at, (c, i, j0), dxi);
                        }
                    }
                }
            }
        }
    })
}

/// A block of `P` output positions: the first, and each one's place on the padded
/// plane.
struct Block {
    p0: usize,
    q: [Option<usize>; P],
}

/// `scatter` for a block of positions, input channel c and the `T` taps (i, j0..j0 +
/// T) of kernel row i (a block past the row's end repeats its last tap and drops the
/// repeats).
// Inlined into the calling tier's function, so compiled with its features.
#[inline(always)]
fn taps<const T: usize>(
    dyi: &[f32],
    weight: &[f32],
    g: &Grid,
    at: &Block,
    (c, i, j0): (usize, usize, usize),
    dxi: &mut [f32],
) {
    const { assert!(T <= 16 && P <= 16, "each! counts to 16") };
    let (px, patch) = (pixels(g), g.patch());
    let row = (c * g.k + i) * g.k;
    let tap: [usize; T] = std::array::from_fn(|u| row + (j0 + u).min(g.k - 1));
    // Named by constant indices only: the compiler keeps them in registers.
    let mut a = [[[0.0f32; L]; P]; T];
    for o in 0..g.c_out {
        let w = &weight[o * patch..][..patch];
        let d = &dyi[(o * px + at.p0) * IMAGES..][..P * IMAGES];
        each!(P, |v| {
            let d: &[f32; L] = d[v * IMAGES..].first_chunk().expect("whole blocks");
            each!(T, |u| fma_lanes(&mut a[u][v], d, w[tap[u]]));
        });
    }
    let plane = c * g.hp * g.wp + i * g.wp + j0;
    each!(T, |u| if j0 + u < g.k {
        each!(P, |v| if let Some(q) = at.q[v] {
            let dst: &mut [f32; L] = (&mut dxi[(plane + q + u) * IMAGES..])
                .first_chunk_mut()
                .expect("inside the planes");
            for (x, &s) in dst.iter_mut().zip(&a[u][v]) {
                *x += s;
            }
        });
    });
}

/// acc += d * w lane by lane, one rounding each.
#[inline(always)]
fn fma_lanes(acc: &mut [f32; L], d: &[f32; L], w: f32) {
    for l in 0..L {
        acc[l] = d[l].mul_add(w, acc[l]);
    }
}
