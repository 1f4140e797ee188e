//! Training on real MNIST slices: it learns, it is deterministic, it reports divergence.

mod common;

use std::sync::atomic::AtomicBool;

use actlab::config::TrainConfig;
use actlab::data::Split;
use actlab::nn::{Loss, OutputFn};
use actlab::store::records::{train, RunRecord};
use actlab::train::Silent;

fn go(cfg: &TrainConfig, split: &Split) -> (RunRecord, Vec<f32>) {
    let (r, m) = train(cfg, split, &mut Silent, &AtomicBool::new(false));
    (r, m.params)
}

/// Each value's bits, so equal means the same length and the same bits.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Records equal in everything but timings.
fn same_results(a: &RunRecord, b: &RunRecord) -> bool {
    a.without_timings() == b.without_timings()
}

#[test]
fn one_epoch_on_6000_images_learns() {
    let split = common::mnist_slice(6000, 1000);
    let cfg = TrainConfig {
        epochs: 1,
        ..Default::default()
    };
    let (r, _) = go(&cfg, &split);
    let test = r.final_test.unwrap();
    assert!(test.acc > 0.85, "test acc {}", test.acc);
    assert!(r.final_val.is_none(), "no validation split was held out");
    assert!(r.complete && r.diverged.is_none());
    assert_eq!(r.history.len(), 1);
    assert_eq!(r.dataset.n_train, 6000);
}

#[test]
fn same_seed_is_bit_identical_and_seeds_differ() {
    let split = common::mnist_slice(2000, 500);
    for threads in [1, 2] {
        let cfg = TrainConfig {
            epochs: 2,
            dropout: 0.2,
            threads,
            ..Default::default()
        };
        let (a, pa) = go(&cfg, &split);
        let (b, pb) = go(&cfg, &split);
        assert!(same_results(&a, &b), "threads {threads}");
        assert_eq!(bits(&pa), bits(&pb), "threads {threads}");
        let (c, pc) = go(&TrainConfig { seed: 1, ..cfg }, &split);
        assert!(!same_results(&a, &c));
        assert_ne!(pa, pc);
    }
}

#[test]
fn divergence_is_recorded_not_a_panic() {
    let split = common::mnist_slice(500, 100);
    // BCE on raw logits takes the log of negative numbers: NaN at once.
    let cfg = TrainConfig {
        output: OutputFn::Identity,
        loss: Loss::Bce,
        epochs: 2,
        ..Default::default()
    };
    let (r, _) = go(&cfg, &split);
    let d = r.diverged.clone().expect("diverged");
    assert_eq!((d.epoch, d.step), (1, 1));
    assert!(d.loss == "NaN" || d.loss.contains("inf"), "{}", d.loss);
    assert!(r.complete, "a diverged run is complete: it will not go on");
    assert!(r.history.is_empty(), "no epoch finished");
    assert!(r.final_test.is_none() && r.final_val.is_none());
    assert!(d.to_string().contains("--lr"));
}

#[test]
fn every_pairing_trains_without_panicking() {
    let split = common::mnist_slice(640, 100);
    for (out, loss) in [
        (OutputFn::Sigmoid, Loss::CrossEntropy),
        (OutputFn::Identity, Loss::CrossEntropy),
        (OutputFn::Softmax, Loss::Mse),
        (OutputFn::Sigmoid, Loss::Bce),
        (OutputFn::Softmax, Loss::Nll),
    ] {
        let cfg = TrainConfig {
            output: out,
            loss,
            epochs: 1,
            activation: vec!["sigmoid".parse().unwrap()],
            ..Default::default()
        };
        let (r, _) = go(&cfg, &split);
        assert!(r.complete, "{out}/{loss}");
        assert!(r.diverged.is_none(), "{out}/{loss}: {:?}", r.diverged);
        assert!(
            r.final_test.is_some_and(|v| v.loss.is_finite()),
            "{out}/{loss}"
        );
        assert_eq!(r.history.len(), 1, "{out}/{loss}");
    }
}

#[test]
fn two_threads_learn_what_one_thread_learns() {
    let split = common::mnist_slice(6000, 1000);
    let acc = |threads| {
        let cfg = TrainConfig {
            epochs: 1,
            threads,
            ..Default::default()
        };
        go(&cfg, &split).0.final_test.unwrap().acc
    };
    let (one, two) = (acc(1), acc(2));
    assert!(
        (one - two).abs() <= 0.001,
        "1 epoch: {one} with one thread, {two} with two"
    );
}

/// Two threads on their persistent pool, run twice (with dropout, whose masks are
/// drawn before the threads start): the same parameters, bit for bit.
#[test]
fn two_thread_runs_are_bit_identical() {
    let split = common::mnist_slice(3000, 100);
    let cfg = TrainConfig {
        epochs: 1,
        threads: 2,
        dropout: 0.2,
        diagnostics: false,
        ..Default::default()
    };
    let (a, b) = (go(&cfg, &split).1, go(&cfg, &split).1);
    assert_eq!(bits(&a), bits(&b));
}
