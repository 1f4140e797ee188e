//! Statistics over seeds: mean, sample standard deviation, range, and 95% confidence
//! intervals for differences (paired when both sides ran the same seeds, Welch otherwise).

use serde::{Deserialize, Serialize};

/// Summary of one metric over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for a single value.
    pub std: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Summary {
    /// Summarise `values` (None when empty).
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Summary {
            n,
            mean,
            std: var.sqrt(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// The `p` quantile of Student's t with `df` (possibly fractional, Welch) degrees of
/// freedom; infinite below one degree of freedom.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    if df.is_nan() || df < 1.0 {
        return f64::INFINITY;
    }
    StudentsT::new(0.0, 1.0, df).map_or(f64::INFINITY, |t| t.inverse_cdf(p))
}

/// The t-interval of a mean at `confidence` (None with fewer than two values).
pub fn mean_interval(s: &Summary, confidence: f64) -> Option<(f64, f64)> {
    if s.n < 2 {
        return None;
    }
    let half =
        t_quantile(1.0 - (1.0 - confidence) / 2.0, (s.n - 1) as f64) * s.std / (s.n as f64).sqrt();
    Some((s.mean - half, s.mean + half))
}

/// Two-sided 97.5% quantile of Student's t with `df` degrees of freedom.
pub fn t975(df: f64) -> f64 {
    t_quantile(0.975, df)
}

/// A difference a - b with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// Mean difference.
    pub diff: f64,
    /// Lower end of the interval (-inf when it cannot be computed).
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// True when the interval was computed from per-seed pairs.
    pub paired: bool,
    /// The interval's own confidence level (above 0.95 when adjusted for several
    /// comparisons).
    #[serde(default = "default_confidence")]
    pub confidence: f64,
}

fn default_confidence() -> f64 {
    0.95
}

impl Difference {
    /// True when the interval excludes zero.
    pub fn significant(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }
}

/// Difference of means of `a` and `b` with a 95% CI. `pairs` holds (a, b) values of
/// matching seeds; when every value has a partner the paired interval is used.
pub fn difference(a: &[f64], b: &[f64], pairs: &[(f64, f64)]) -> Option<Difference> {
    difference_at(a, b, pairs, 0.95)
}

/// The same with a CI at `confidence` (e.g. 1 - 0.05 / m for one of m comparisons).
pub fn difference_at(
    a: &[f64],
    b: &[f64],
    pairs: &[(f64, f64)],
    confidence: f64,
) -> Option<Difference> {
    let sa = Summary::of(a)?;
    let sb = Summary::of(b)?;
    let diff = sa.mean - sb.mean;
    let q = 1.0 - (1.0 - confidence) / 2.0;
    let interval = |mean: f64, half: f64, paired: bool| Difference {
        diff: mean,
        lo: mean - half,
        hi: mean + half,
        paired,
        confidence,
    };
    if pairs.len() == a.len() && pairs.len() == b.len() && pairs.len() >= 2 {
        let d: Vec<f64> = pairs.iter().map(|(x, y)| x - y).collect();
        let s = Summary::of(&d)?;
        let half = t_quantile(q, (s.n - 1) as f64) * s.std / (s.n as f64).sqrt();
        return Some(interval(s.mean, half, true));
    }
    if sa.n < 2 || sb.n < 2 {
        return Some(interval(diff, f64::INFINITY, false));
    }
    let (va, vb) = (sa.std.powi(2) / sa.n as f64, sb.std.powi(2) / sb.n as f64);
    let se = (va + vb).sqrt();
    let df = if se > 0.0 {
        (va + vb).powi(2) / (va.powi(2) / (sa.n - 1) as f64 + vb.powi(2) / (sb.n - 1) as f64)
    } else {
        (sa.n + sb.n - 2) as f64
    };
    Some(interval(diff, t_quantile(q, df) * se, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_hand_computation() {
        let s = Summary::of(&[0.97, 0.975, 0.98]).unwrap();
        assert!((s.mean - 0.975).abs() < 1e-12);
        // deviations -0.005, 0, 0.005: var = 5e-5 / 2 = 2.5e-5
        assert!((s.std - 0.005).abs() < 1e-12);
        assert_eq!((s.min, s.max, s.n), (0.97, 0.98, 3));
        assert_eq!(Summary::of(&[2.0]).unwrap().std, 0.0);
        assert!(Summary::of(&[]).is_none());
        // 4.303 * 0.005 / sqrt(3) either side of the mean.
        let (lo, hi) = mean_interval(&s, 0.95).unwrap();
        assert!((hi - s.mean - 4.303 * 0.005 / 3f64.sqrt()).abs() < 1e-5 && lo < s.mean);
        assert!(mean_interval(&Summary::of(&[1.0]).unwrap(), 0.95).is_none());
    }

    #[test]
    fn intervals() {
        assert!((t975(1.0) - 12.706).abs() < 1e-3);
        assert!((t975(2.0) - 4.303).abs() < 1e-3);
        assert!((t975(1000.0) - 1.962).abs() < 1e-3);
        // Bonferroni for 26 comparisons at 3 seeds: the 1 - 0.025/26 quantile, df 2.
        assert!((t_quantile(1.0 - 0.025 / 26.0, 2.0) - 22.78).abs() < 0.05);
        // Paired: differences 0.02, 0.03, 0.04 -> mean 0.03, sd 0.01, half = 4.303*0.01/sqrt(3) = 0.0248
        let a = [0.98, 0.99, 1.0];
        let b = [0.96, 0.96, 0.96];
        let pairs: Vec<_> = a.iter().copied().zip(b.iter().copied()).collect();
        let d = difference(&a, &b, &pairs).unwrap();
        let half = 4.303 * 0.01 / 3f64.sqrt();
        assert!(d.paired && (d.diff - 0.03).abs() < 1e-9);
        assert!((d.hi - d.lo - 2.0 * half).abs() < 1e-5);
        assert!(d.significant());
        // Unpaired with one seed each: no interval.
        let d = difference(&[0.9], &[0.8], &[]).unwrap();
        assert!(!d.significant() && d.lo.is_infinite());
        // Welch with equal variances and sizes: df = 2(n-1) = 4.
        let d = difference(&[1.0, 2.0, 3.0], &[0.0, 1.0, 2.0], &[]).unwrap();
        let se = (1.0f64 / 3.0 + 1.0 / 3.0).sqrt();
        assert!((d.hi - 1.0 - 2.776 * se).abs() < 1e-3);
        // At a higher confidence the same data give a wider interval.
        let wide = difference_at(&a, &b, &pairs, 1.0 - 0.05 / 26.0).unwrap();
        assert!(wide.hi - wide.lo > 5.0 * (2.0 * half) && wide.confidence > 0.99);
    }
}
