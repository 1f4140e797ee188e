//! The direct forward pass with output channels in the SIMD lanes, for layers with a
//! multiple of 16 of them (LeNet-5's conv2: 16 channels on a 10x10 map): every lane
//! does useful work, where the padded grid computes 160 positions for 100 outputs.
//!
//! Shapes: xp [c_in, plane] as the grid pads it; wt [c_in * k * k, c_out] (the
//! weights transposed: one tap's 16 channels are one vector); y [c_out, oh, ow].
//! Each output is the same chain as `correlate`'s: x * w + acc over the taps in
//! (c, i, j) order from 0, then + bias, so the values are bit for bit those of the
//! grid path.

use super::{Grid, L};

/// Output positions per block: ten accumulators of 16 lanes.
const PB: usize = 10;

/// Whether this path runs: AVX-512 (its 32 registers) and whole vectors of channels.
pub(super) fn runs(g: &Grid) -> bool {
    g.c_out.is_multiple_of(L) && crate::simd::tier() == crate::simd::Tier::Avx512
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
        let pixels = g.oh * g.ow;
        for o0 in (0..g.c_out).step_by(L) {
            for oy in 0..g.oh {
                for ox0 in (0..g.ow).step_by(PB) {
                    // The row's last block ends at its end (recomputing a few outputs
                    // of the one before it, the same bits); a row shorter than a block
                    // reads the zeros after it and drops those outputs.
                    let start = ox0.min(g.ow.saturating_sub(PB));
                    let a = block(xp, wt, g, o0, oy * g.wp + start);
                    for (u, acc) in a.iter().enumerate().take(g.ow - start) {
                        for (l, &v) in acc.iter().enumerate() {
                            let o = o0 + l;
                            y[o * pixels + oy * g.ow + start + u] = v + bias.map_or(0.0, |b| b[o]);
                        }
                    }
                }
            }
        }
    })
}

/// The sums of channels o0..o0 + 16 at the `PB` positions from grid position `at`.
// Inlined into the calling tier's function, so compiled with its features.
#[inline(always)]
fn block(xp: &[f32], wt: &[f32], g: &Grid, o0: usize, at: usize) -> [[f32; L]; PB] {
    let plane = g.plane();
    // Named by constant indices only: the compiler keeps them in registers.
    let mut a = [[0.0f32; L]; PB];
    for c in 0..g.c_in {
        for i in 0..g.k {
            for j in 0..g.k {
                let from = c * plane + at + i * g.wp + j;
                let x: &[f32; PB] = xp[from..].first_chunk().expect("planes end in zeros");
                let tap = (c * g.k + i) * g.k + j;
                let w: &[f32; L] = wt[tap * g.c_out + o0..]
                    .first_chunk()
                    .expect("whole vectors of channels");
                macro_rules! pos {
                    ($u:literal) => {
                        fma_lanes(&mut a[$u], x[$u], w);
                    };
                }
                pos!(0);
                pos!(1);
                pos!(2);
                pos!(3);
                pos!(4);
                pos!(5);
                pos!(6);
                pos!(7);
                pos!(8);
                pos!(9);
            }
        }
    }
    a
}

/// acc += x * w lane by lane, one rounding each.
#[inline(always)]
fn fma_lanes(acc: &mut [f32; L], x: f32, w: &[f32; L]) {
    for l in 0..L {
        acc[l] = x.mul_add(w[l], acc[l]);
    }
}
