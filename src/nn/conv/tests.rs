//! Tests of the conv kernels: both paths against a direct loop and finite
//! differences, groups, kept columns and SIMD tiers.

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
                                if yy < 0 || xx < 0 || yy >= s.h as isize || xx >= s.w as isize {
                                    continue;
                                }
                                let xi =
                                    ((img * s.c_in + c) * s.h + yy as usize) * s.w + xx as usize;
                                acc += (w[((o * s.c_in + c) * s.k + i) * s.k + j] * x[xi]) as f64;
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
        let (mut dw, mut db, mut dx) = (vec![9.0; w.len()], vec![9.0; b.len()], vec![9.0; x.len()]);
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
