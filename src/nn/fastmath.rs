//! exp and tanh for f32 written as branch-free arithmetic, so loops over slices
//! vectorise (libm calls do not). Accuracy is within 2 ulp of the correctly rounded
//! result over the whole range, the same class as the SLEEF kernels PyTorch uses on CPU.

/// 1.5 * 2^23: adding it rounds an f32 of magnitude < 2^22 to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two so that n * LN2_HI is exact (Cody-Waite reduction).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Above this exp overflows f32; below the lower bound it is 0 (we skip denormals).
const EXP_HI: f32 = 88.722_83;
const EXP_LO: f32 = -87.336_55;

/// e^x for f32 (Cephes' polynomial on a Cody-Waite reduced argument).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(EXP_LO, EXP_HI);
    let t = xc * LOG2E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.0e-1;
    let y = p * r * r + r + 1.0;
    // n is in [-126, 128]; build 2^n in two halves so n = 128 does not overflow the exponent.
    // t = 1.5 * 2^23 + n exactly, so n sits in t's mantissa bits.
    let ni = t.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32;
    let h = ni >> 1;
    let s1 = f32::from_bits(((h + 127) as u32) << 23);
    let s2 = f32::from_bits(((ni - h + 127) as u32) << 23);
    let v = y * s1 * s2;
    if x > EXP_HI {
        f32::INFINITY
    } else if x < EXP_LO {
        0.0
    } else if x.is_nan() {
        x
    } else {
        v
    }
}

/// tanh(x) for f32: an odd polynomial near 0 (no cancellation), 1 - 2/(e^2|x| + 1) beyond.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let ax = x.abs();
    let z = x * x;
    let small =
        ((((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z
            - 3.333_328e-1)
            * z
            * x
            + x;
    let e = exp(2.0 * ax.min(20.0));
    let large = 1.0 - 2.0 / (e + 1.0);
    let large = if x < 0.0 { -large } else { large };
    if ax < 0.625 {
        small
    } else {
        large
    }
}

/// e^x - 1 without cancellation near 0 (Taylor series there, exp beyond).
#[inline(always)]
pub fn expm1(x: f32) -> f32 {
    let series = x
        * (1.0
            + x * (0.5
                + x * (1.0 / 6.0
                    + x * (1.0 / 24.0
                        + x * (1.0 / 120.0 + x * (1.0 / 720.0 + x * (1.0 / 5040.0)))))));
    if x.abs() < 0.35 {
        series
    } else {
        exp(x) - 1.0
    }
}

/// Natural logarithm for positive finite f32 (Cephes' logf polynomial).
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    // Bring the mantissa into [sqrt(1/2), sqrt(2)) so the polynomial stays accurate.
    let big = m > std::f32::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    e += i32::from(big);
    let f = m - 1.0;
    let z = f * f;
    let ef = e as f32;
    let mut y = ((((((((7.037_683_6e-2 * f - 1.151_461e-1) * f + 1.167_699_9e-1) * f
        - 1.242_014_1e-1)
        * f
        + 1.424_932_3e-1)
        * f
        - 1.666_805_8e-1)
        * f
        + 2.000_071_4e-1)
        * f
        - 2.499_999_4e-1)
        * f
        + 3.333_333e-1)
        * f
        * z;
    y += LN2_LO * ef;
    y -= 0.5 * z;
    let r = f + y + LN2_HI * ef;
    if x == f32::INFINITY {
        x
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else if x < 0.0 || x.is_nan() {
        f32::NAN
    } else {
        r
    }
}

/// ln(1 + y) for y >= 0, accurate for tiny y (the u - 1 correction trick).
#[inline(always)]
pub fn log1p(y: f32) -> f32 {
    let u = 1.0 + y;
    let d = u - 1.0;
    if d == 0.0 {
        y
    } else {
        ln(u) * (y / d)
    }
}

/// erf(x): a series near 0, else through erfc with relative error below 1.2e-7
/// (Numerical Recipes' erfcc).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_2 + t * 0.170_872_77))))))));
    let erfc = t * exp(-z * z + p);
    // Near 0, 1 - erfc cancels: use the Maclaurin series there instead.
    let x2 = x * x;
    let series = std::f32::consts::FRAC_2_SQRT_PI
        * x
        * (1.0
            + x2 * (-1.0 / 3.0
                + x2 * (1.0 / 10.0
                    + x2 * (-1.0 / 42.0 + x2 * (1.0 / 216.0 + x2 * (-1.0 / 1320.0))))));
    if z < 0.5 {
        series
    } else if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

/// `v`, or 0 when `v` is a denormal (|v| < 1.2e-38): branch-free, so loops vectorise.
/// Adam's moments for rarely active inputs decay through the denormal range, where
/// each operation costs ~100x more; flushing them changes values below 1.2e-38 only.
/// This replaces a change of the floating-point environment (MXCSR's FTZ/DAZ bits),
/// which Rust's compiler assumes never happens.
#[inline(always)]
pub fn flush_denormal(v: f32) -> f32 {
    if v.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        if a == b {
            return 0;
        }
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_2_ulp_of_std() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.5 {
            let want = (x as f64).exp() as f32;
            worst = worst.max(ulps(exp(x), want));
            x += 0.000_731;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(-100.0), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn expm1_ln_log1p_erf_are_accurate() {
        let mut x = -20.0f32;
        while x < 20.0 {
            let want = (x as f64).exp_m1();
            let got = expm1(x) as f64;
            assert!(
                (got - want).abs() <= 3e-7 * want.abs() + 1e-30,
                "expm1({x}) = {got}, want {want}"
            );
            let want = libm::erf(x as f64);
            let got = erf(x) as f64;
            assert!((got - want).abs() <= 2e-7, "erf({x}) = {got}, want {want}");
            // 1 + erf(x) in the left tail, as GELU (and PyTorch) computes it in f32:
            // within a few ulp of 1.
            if x < 0.0 && x > -9.0 {
                let want = libm::erfc(-(x as f64));
                let got = (1.0 + erf(x)) as f64;
                assert!(
                    (got - want).abs() <= 2.5e-7,
                    "1+erf({x}) = {got}, want {want}"
                );
            }
            x += 0.000_97;
        }
        let mut v = 1e-30f32;
        while v < 1e30 {
            let want = (v as f64).ln();
            assert!(
                (ln(v) as f64 - want).abs() <= 2e-7 * want.abs().max(1.0),
                "ln({v})"
            );
            let want = (v as f64).ln_1p();
            assert!(
                (log1p(v) as f64 - want).abs() <= 3e-7 * want.abs(),
                "log1p({v})"
            );
            v *= 1.37;
        }
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert_eq!(log1p(0.0), 0.0);
    }

    #[test]
    fn tanh_is_close_to_std() {
        let mut x = -12.0f32;
        while x < 12.0 {
            let want = (x as f64).tanh();
            let got = tanh(x) as f64;
            assert!(
                (got - want).abs() <= 2.5e-7 * want.abs().max(1e-30) + 1e-9,
                "tanh({x}) = {got}, want {want}"
            );
            x += 0.000_37;
        }
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
        assert_eq!(tanh(0.0), 0.0);
    }
}
