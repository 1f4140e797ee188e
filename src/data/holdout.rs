//! A held-out validation set: a seeded, class-stratified choice of training images.
//!
//! The choice depends only on the labels and the count (never on a run's seed), so every
//! run of a comparison, whatever its variant or seed, holds out the same images and
//! settings are chosen on one and the same validation set.

use rand::{RngExt, SeedableRng};

/// Seed of the hold-out choice (fixed: see the module comment).
const HOLDOUT_SEED: u64 = 0x7661_6c5f_7370_6c74;

/// Images per class to hold out so the counts sum to `n` and follow the class
/// proportions of `labels` (largest remainder; ties go to the lower class).
pub fn quotas(labels: &[super::Label], n: usize) -> Vec<usize> {
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut count = vec![0usize; classes];
    for &l in labels {
        count[l as usize] += 1;
    }
    let total = labels.len().max(1);
    let mut quota = vec![0usize; classes];
    let mut rest: Vec<(usize, usize)> = Vec::with_capacity(classes);
    for c in 0..classes {
        let exact = n * count[c];
        quota[c] = exact / total;
        rest.push((exact % total, c));
    }
    let short = n.saturating_sub(quota.iter().sum());
    rest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let open: Vec<usize> = rest
        .iter()
        .map(|&(_, c)| c)
        .filter(|&c| quota[c] < count[c])
        .take(short)
        .collect();
    for c in open {
        quota[c] += 1;
    }
    quota
}

/// Indices (ascending) of the `n` images to hold out of a set with these labels.
pub fn stratified(labels: &[super::Label], n: usize) -> Vec<usize> {
    let quota = quotas(labels, n);
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(HOLDOUT_SEED);
    let mut chosen = Vec::with_capacity(n);
    for (class, &q) in quota.iter().enumerate() {
        let mut members: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == class)
            .collect();
        // A partial Fisher-Yates: the first q places get a uniform sample.
        for i in 0..q.min(members.len()) {
            let j = rng.random_range(i..members.len());
            members.swap(i, j);
        }
        chosen.extend_from_slice(&members[..q.min(members.len())]);
    }
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<crate::data::Label> {
        // Uneven classes: class c has roughly (c + 1) shares.
        (0..n)
            .map(|i| {
                let r = (i * 7919) % 55;
                (0..10).find(|&c| r < (c + 1) * (c + 2) / 2).unwrap_or(9) as crate::data::Label
            })
            .collect()
    }

    #[test]
    fn stratification_keeps_class_proportions() {
        let l = labels(6000);
        let held = stratified(&l, 600);
        assert_eq!(held.len(), 600);
        assert!(held.windows(2).all(|w| w[0] < w[1]), "distinct, ascending");
        for c in 0..10 {
            let all = l.iter().filter(|&&x| x == c).count() as f64 / 6000.0;
            let got = held.iter().filter(|&&i| l[i] == c).count() as f64 / 600.0;
            // Largest remainder: off by at most one image per class.
            assert!(
                (all - got).abs() <= 1.0 / 600.0 + 1e-12,
                "class {c}: {all} vs {got}"
            );
        }
    }

    #[test]
    fn quotas_sum_to_the_count_and_never_exceed_a_class() {
        let l = labels(1234);
        for n in [0, 1, 7, 10, 99, 1000, 1233] {
            let q = quotas(&l, n);
            assert_eq!(q.iter().sum::<usize>(), n, "n = {n}");
            for c in 0..10 {
                assert!(q[c as usize] <= l.iter().filter(|&&x| x == c).count());
            }
        }
    }

    #[test]
    fn the_choice_is_fixed_and_differs_from_the_first_images() {
        let l = labels(3000);
        assert_eq!(stratified(&l, 300), stratified(&l, 300));
        assert_ne!(stratified(&l, 300), (0..300).collect::<Vec<_>>());
    }
}
