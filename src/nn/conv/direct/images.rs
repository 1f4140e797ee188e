//! The direct kernels with 16 images in the SIMD lanes: the forward pass and weight
//! gradient of layers whose channels do not fill the lanes (LeNet-5's conv1: 6), and
//! every layer's input gradient. Every lane does useful work, at any channel count
//! and map size; the groups are transposed in and out.
//!
//! Shapes, for a group of up to 16 images (the missing ones zeros), the image m in
//! lane m: xi [c_in, plane, 16] (the padded planes of x); yi [c_out, oh * ow, 16];
//! dyi [c_out, pixels, 16] with pixels = oh * ow rounded up to `P`; dxi [c_in, hp *
//! wp, 16] (the padded planes of dx); lanes [c_out, c_in * k * k, 16] (the weight
//! gradient's sums per image lane); weight [c_out, c_in, k, k].
//!
//! Forward, each output is one chain, x * w + acc over the taps in (c, i, j) order
//! from 0, then + bias (the channel kernels' chain). The weight gradient's lane m is
//! one chain over the groups in order and the positions in row order. For the input
//! gradient, output position p = (oy, ox) sits at q = oy * wp + ox on the padded
//! plane, and
//!   dx[c, q + i * wp + j] += sum over o of weight[o, c, i, j] * dy[o, p],
//! each sum one chain in channel order from 0. The sums are added to the planes by
//! blocks of `P` positions, then by input channel, then tap by tap in (i, j) order,
//! then position by position: an order that no tier changes, so the bits are the same
//! at every tier.

use super::{fma_lanes, Grid, L};

/// Images per group: one per lane.
pub(super) const IMAGES: usize = L;
/// Output positions per block (the same at every tier: the order of the additions
/// depends on it).
const P: usize = 2;
/// Taps per block on AVX-512 (ten accumulators for the input gradient, fifteen for
/// the weight gradient).
const TAPS_WIDE: usize = 5;
/// Taps per block on AVX2 (two registers per 16 lanes) and the portable tier: with
/// three, the input gradient's accumulators spilled.
const TAPS_NARROW: usize = 2;
/// Output channels and positions per block of the forward pass on AVX-512 (18
/// accumulators) and on AVX2 (eight, two registers each).
const FWD_OUTS_WIDE: usize = 6;
/// See `FWD_OUTS_WIDE`.
const FWD_POS_WIDE: usize = 3;
/// See `FWD_OUTS_WIDE`.
const FWD_OUTS_NARROW: usize = 2;
/// See `FWD_OUTS_WIDE`.
const FWD_POS_NARROW: usize = 2;
/// Output channels per block of the weight gradient on AVX-512.
const OUTS_WIDE: usize = 3;
/// Output channels per block of the weight gradient on AVX2 and the portable tier.
const OUTS_NARROW: usize = 2;

/// Output positions of a group's dy, rounded up to whole blocks.
pub(super) fn pixels(g: &Grid) -> usize {
    (g.oh * g.ow).div_ceil(P) * P
}

/// Values of a group's dy, padded dx planes and padded x planes.
pub(super) fn scratch_len(g: &Grid) -> usize {
    (g.c_out * pixels(g) + g.c_in * g.hp * g.wp + g.c_in * g.plane()) * IMAGES
}

/// xi[c, q, m] = the padded planes of the group's images x[m] [c_in, h, w] (zeros
/// around them, after them, and for missing images).
pub(super) fn planes(x: &[f32], (h, w): (usize, usize), pad: usize, g: &Grid, xi: &mut [f32]) {
    let (pl, il) = (g.plane(), g.c_in * h * w);
    let count = x.len() / il;
    let xi = &mut xi[..g.c_in * pl * IMAGES];
    xi.fill(0.0);
    for c in 0..g.c_in {
        for r in 0..h {
            let at = c * pl + (r + pad) * g.wp + pad;
            let dst = &mut xi[at * IMAGES..][..w * IMAGES];
            for (col, lanes) in dst.chunks_exact_mut(IMAGES).enumerate() {
                let from = (c * h + r) * w + col;
                for (m, v) in lanes.iter_mut().enumerate() {
                    *v = if m < count { x[m * il + from] } else { 0.0 };
                }
            }
        }
    }
}

/// dyi[o, p, m] = dy[m, o, p] for the group's images m (zeros for missing images and
/// the positions past the last). Written lane by lane in order: the lanes of one
/// position share a cache line.
pub(super) fn gather(dy: &[f32], g: &Grid, dyi: &mut [f32]) {
    let (px, real) = (pixels(g), g.oh * g.ow);
    let ol = g.c_out * real;
    let count = dy.len() / ol;
    for (o, plane) in dyi[..g.c_out * px * IMAGES]
        .chunks_exact_mut(px * IMAGES)
        .enumerate()
    {
        let (inside, past) = plane.split_at_mut(real * IMAGES);
        for (p, lanes) in inside.chunks_exact_mut(IMAGES).enumerate() {
            let from = o * real + p;
            for (m, v) in lanes.iter_mut().enumerate() {
                *v = if m < count { dy[m * ol + from] } else { 0.0 };
            }
        }
        past.fill(0.0);
    }
}

/// dx[m] = the inside of the padded planes dxi (padding `pad` cut off), for each of
/// the group's images.
pub(super) fn spread(dxi: &[f32], g: &Grid, pad: usize, dx: &mut [f32]) {
    let (h, w) = (g.hp - 2 * pad, g.wp - 2 * pad);
    let il = g.c_in * h * w;
    let count = dx.len() / il;
    for c in 0..g.c_in {
        for r in 0..h {
            let at = c * g.hp * g.wp + (r + pad) * g.wp + pad;
            let src = &dxi[at * IMAGES..][..w * IMAGES];
            for (col, lanes) in src.chunks_exact(IMAGES).enumerate() {
                let to = (c * h + r) * w + col;
                for (m, &v) in lanes.iter().enumerate().take(count) {
                    dx[m * il + to] = v;
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
            let dst: &mut [f32; L] = dxi[(plane + q + u) * IMAGES..]
                .first_chunk_mut()
                .expect("inside the planes");
            for (x, &s) in dst.iter_mut().zip(&a[u][v]) {
                *x += s;
            }
        });
    });
}

/// yi[o, p, m] = conv(x[m], weight) at output position p, for the group's images m
/// (xi as `planes` lays it); `unlanes` adds the bias. Each output is the chain of the
/// channel kernels' (x * w + acc over the taps in (c, i, j) order from 0, then + bias),
/// so the bits are theirs.
pub(super) fn forward(xi: &[f32], weight: &[f32], g: &Grid, yi: &mut [f32]) {
    crate::simd_dispatch!((xi: &[f32], weight: &[f32], g: &Grid, yi: &mut [f32]) {
        let wide = crate::simd::tier() == crate::simd::Tier::Avx512;
        for o0 in (0..g.c_out).step_by(if wide { FWD_OUTS_WIDE } else { FWD_OUTS_NARROW }) {
            for oy in 0..g.oh {
                for ox0 in (0..g.ow).step_by(if wide { FWD_POS_WIDE } else { FWD_POS_NARROW }) {
                    let at = (o0, oy, ox0);
                    if wide {
                        forward_block::<FWD_OUTS_WIDE, FWD_POS_WIDE>(xi, weight, g, at, yi);
                    } else {
                        forward_block::<FWD_OUTS_NARROW, FWD_POS_NARROW>(xi, weight, g, at, yi);
                    }
                }
            }
        }
    })
}

/// `forward` for output channels o0..o0 + `OB` at the `P` positions of row oy from
/// ox0 (a partial block repeats its last channel and drops the repeats; the row's last
/// block ends at its end, recomputing a few outputs of the one before it, the same
/// bits, and a row shorter than a block reads the zeros after it and drops those).
// Inlined into the calling tier's function, so compiled with its features.
#[inline(always)]
fn forward_block<const OB: usize, const P: usize>(
    xi: &[f32],
    weight: &[f32],
    g: &Grid,
    (o0, oy, ox0): (usize, usize, usize),
    yi: &mut [f32],
) {
    const { assert!(OB <= 16 && P <= 16, "each! counts to 16") };
    let (patch, pixels) = (g.patch(), g.oh * g.ow);
    let start = ox0.min(g.ow.saturating_sub(P));
    let rows: [&[f32]; OB] = std::array::from_fn(|b| {
        let o = (o0 + b).min(g.c_out - 1);
        &weight[o * patch..][..patch]
    });
    // Named by constant indices only: the compiler keeps them in registers.
    let mut a = [[[0.0f32; L]; P]; OB];
    for c in 0..g.c_in {
        for i in 0..g.k {
            let from = c * g.plane() + (oy + i) * g.wp + start;
            let xs = &xi[from * IMAGES..][..(g.k - 1 + P) * IMAGES];
            let taps = (c * g.k + i) * g.k;
            for j in 0..g.k {
                let x: [&[f32; L]; P] = std::array::from_fn(|v| {
                    xs[(j + v) * IMAGES..].first_chunk().expect("sliced to fit")
                });
                each!(OB, |b| {
                    let w = rows[b][taps + j];
                    each!(P, |v| fma_lanes(&mut a[b][v], x[v], w));
                });
            }
        }
    }
    each!(OB, |b| if o0 + b < g.c_out {
        each!(P, |v| if start + v < g.ow {
            let at = ((o0 + b) * pixels + oy * g.ow + start + v) * IMAGES;
            yi[at..][..L].copy_from_slice(&a[b][v]);
        });
    });
}

/// y[m, o, p] = yi[o, p, m] + bias[o] for the group's images m.
pub(super) fn unlanes(yi: &[f32], g: &Grid, bias: Option<&[f32]>, y: &mut [f32]) {
    let pixels = g.oh * g.ow;
    let ol = g.c_out * pixels;
    let count = y.len() / ol;
    for (o, plane) in yi[..ol * IMAGES].chunks_exact(pixels * IMAGES).enumerate() {
        let b = bias.map_or(0.0, |b| b[o]);
        for (p, lanes) in plane.chunks_exact(IMAGES).enumerate() {
            for (m, &v) in lanes.iter().enumerate().take(count) {
                y[m * ol + o * pixels + p] = v + b;
            }
        }
    }
}

/// lanes[o, tap, m] += the sum over output positions of dy[m, o, p] * x[m, c, p +
/// shift(tap)] for the group (xi as `planes` lays it, dyi as `gather` does): the
/// weight gradient of image m in lane m, one chain per lane over the groups in order
/// and the positions in row order, summed over the lanes when the batch is done.
pub(super) fn weight_sums(xi: &[f32], dyi: &[f32], g: &Grid, lanes: &mut [f32]) {
    crate::simd_dispatch!((xi: &[f32], dyi: &[f32], g: &Grid, lanes: &mut [f32]) {
        let wide = crate::simd::tier() == crate::simd::Tier::Avx512;
        for c in 0..g.c_in {
            for i in 0..g.k {
                if wide {
                    for o0 in (0..g.c_out).step_by(OUTS_WIDE) {
                        for j0 in (0..g.k).step_by(TAPS_WIDE) {
                            let at = (o0, c, i, j0);
                            weight_block::<OUTS_WIDE, TAPS_WIDE>(xi, dyi, g, at, lanes);
                        }
                    }
                } else {
                    for o0 in (0..g.c_out).step_by(OUTS_NARROW) {
                        for j0 in (0..g.k).step_by(TAPS_NARROW) {
                            let at = (o0, c, i, j0);
                            weight_block::<OUTS_NARROW, TAPS_NARROW>(xi, dyi, g, at, lanes);
                        }
                    }
                }
            }
        }
    })
}

/// `weight_sums` for output channels o0..o0 + `OB`, input channel c and the `T` taps
/// (i, j0..j0 + T) (partial blocks repeat their last channel and tap, and drop the
/// repeats).
// Inlined into the calling tier's function, so compiled with its features.
#[inline(always)]
fn weight_block<const OB: usize, const T: usize>(
    xi: &[f32],
    dyi: &[f32],
    g: &Grid,
    (o0, c, i, j0): (usize, usize, usize, usize),
    lanes: &mut [f32],
) {
    const { assert!(T <= 16 && OB <= 16, "each! counts to 16") };
    let (px, patch) = (pixels(g), g.patch());
    let at = |b: usize, u: usize| {
        let o = (o0 + b).min(g.c_out - 1);
        (o * patch + (c * g.k + i) * g.k + (j0 + u).min(g.k - 1)) * L
    };
    // Named by constant indices only: the compiler keeps them in registers.
    let mut a = [[[0.0f32; L]; T]; OB];
    each!(OB, |b| each!(T, |u| a[b][u] =
        super::lanes(&lanes[at(b, u)..])));
    for oy in 0..g.oh {
        let xs = &xi[(c * g.plane() + (oy + i) * g.wp + j0) * IMAGES..][..(g.ow - 1 + T) * IMAGES];
        let ds: [&[f32]; OB] = std::array::from_fn(|b| {
            let o = (o0 + b).min(g.c_out - 1);
            &dyi[(o * px + oy * g.ow) * IMAGES..][..g.ow * IMAGES]
        });
        for ox in 0..g.ow {
            let x: [&[f32; L]; T] = std::array::from_fn(|u| {
                xs[(ox + u) * IMAGES..]
                    .first_chunk()
                    .expect("sliced to fit")
            });
            each!(OB, |b| {
                let d: &[f32; L] = ds[b][ox * IMAGES..].first_chunk().expect("sliced to fit");
                each!(T, |u| fma_pairs(&mut a[b][u], x[u], d));
            });
        }
    }
    each!(OB, |b| each!(T, |u| if o0 + b < g.c_out && j0 + u < g.k {
        lanes[at(b, u)..][..L].copy_from_slice(&a[b][u]);
    }));
}

/// acc += x * d lane by lane, one rounding each.
#[inline(always)]
fn fma_pairs(acc: &mut [f32; L], x: &[f32; L], d: &[f32; L]) {
    for l in 0..L {
        acc[l] = x[l].mul_add(d[l], acc[l]);
    }
}
