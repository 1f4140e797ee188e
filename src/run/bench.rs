//! `actlab bench`: seconds per epoch, images/s, GFLOP/s-equivalent, evaluation time,
//! start-up time and peak memory, printed and returned for JSON.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data;
use crate::eval::Evaluator;
use crate::nn::{Activation, FirstLayer};
use crate::train::{Silent, Trainer};

impl std::fmt::Display for ActivationBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<12} {:.3} s/epoch  {:>9.0} images/s  {:>6.1} GFLOP/s-eq  test acc {:.2}%  first layer {}",
            self.activation,
            self.epoch_seconds,
            self.images_per_second,
            self.gflops_equivalent,
            self.test_acc * 100.0,
            self.first_layer
        )
    }
}

/// Figures for one activation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActivationBench {
    /// Activation name.
    pub activation: String,
    /// Fastest epoch, seconds.
    pub epoch_seconds: f64,
    /// Every timed epoch, seconds.
    pub all_epochs: Vec<f64>,
    /// Training images per second in the fastest epoch.
    pub images_per_second: f64,
    /// 6 x parameters x images / seconds, in GFLOP/s (for a conv net far below its
    /// real rate: a conv weight is used at every pixel).
    pub gflops_equivalent: f64,
    /// Test accuracy after the timed epochs (a sanity check that it learned).
    #[serde(alias = "val_acc")]
    pub test_acc: f64,
    /// The first layer's kernel: "sparse", "dense", "dense (reference)" or "conv".
    pub first_layer: String,
}

/// All figures of one bench run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    /// actlab version.
    pub actlab_version: String,
    /// The layers timed: conv layers, pool and norm (when any), hidden widths.
    #[serde(default)]
    pub model: String,
    /// Threads per run.
    pub threads: usize,
    /// Seconds to find, read and decode the dataset.
    pub load_seconds: f64,
    /// Share of non-zero pixels in the training images (the sparse first layer runs at
    /// or below the threshold).
    pub nonzero_share: f64,
    /// Seconds to evaluate all train + test images (70,000 for MNIST), best of 3.
    pub eval_seconds: f64,
    /// The same with the dense first layer (the reference; none for a conv net,
    /// whose first layer has one kernel).
    pub eval_dense_seconds: Option<f64>,
    /// The first activation's epoch with the dense first layer: the reference loop
    /// over matrixmultiply that the sparse path is measured against, in the same run.
    pub reference: Option<ActivationBench>,
    /// Per-activation training figures.
    pub activations: Vec<ActivationBench>,
    /// Peak resident memory while training, MB (from /proc/self/status, before the jobs-scaling runs).
    pub peak_rss_mb: Option<f64>,
    /// Seconds from process start to the first training step (data loaded, model built).
    pub startup_seconds: f64,
    /// Throughput of `--jobs 2` over `--jobs 1` on the same runs, when measured.
    pub jobs_scaling: Option<JobsScaling>,
}

/// Runs per second with 1 job and with N jobs on the same experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobsScaling {
    /// Runs timed each way.
    pub runs: usize,
    /// Parallel jobs compared with one.
    pub jobs: usize,
    /// Wall seconds with one job.
    pub one_job_seconds: f64,
    /// Wall seconds with `jobs` jobs.
    pub n_jobs_seconds: f64,
    /// one_job_seconds / n_jobs_seconds.
    pub speedup: f64,
}

/// Time the same small experiment (`runs` one-epoch runs) with 1 job and with `jobs`.
fn jobs_scaling(split: crate::data::Split, runs: usize, jobs: usize) -> Result<JobsScaling> {
    use crate::experiment::jobs::{execute, Options, Unwatched};
    use crate::experiment::{Experiment, ReportKind, Variant};
    let cfg = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    let exp = Experiment {
        name: "bench-jobs".into(),
        variants: vec![Variant {
            name: "relu".into(),
            config: cfg.clone(),
            tune: None,
        }],
        seeds: (0..runs as u64).collect(),
        report: ReportKind::Compare,
        tune: Vec::new(),
        tensorboard: None,
    };
    let mut splits = std::collections::HashMap::new();
    splits.insert(split.name, split);
    let stop = AtomicBool::new(false);
    let mut times = Vec::new();
    for j in [1, jobs] {
        let dir =
            std::env::temp_dir().join(format!("actlab-bench-jobs-{}-{j}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let t = Instant::now();
        let opts = Options {
            jobs: j,
            ..Options::default()
        };
        execute(&exp.jobs(), &dir, &splits, &opts, &stop, &Unwatched)?;
        times.push(t.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(JobsScaling {
        runs,
        jobs,
        one_job_seconds: times[0],
        n_jobs_seconds: times[1],
        speedup: times[0] / times[1],
    })
}

/// Peak resident set size in MB, where the OS reports it.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// What `actlab bench` measures.
#[derive(Debug, Clone)]
pub struct BenchPlan<'a> {
    /// The dataset and layers to train (conv, pool, norm, hidden); the activation,
    /// epochs and threads come from the fields below.
    pub model: TrainConfig,
    /// Folder with --data-dir semantics.
    pub data_dir: Option<&'a Path>,
    /// Activations to time.
    pub activations: &'a [Activation],
    /// Epochs per activation (the fastest counts).
    pub epochs: usize,
    /// Threads per run.
    pub threads: usize,
    /// Also compare N parallel jobs with one.
    pub scaling_jobs: Option<usize>,
}

/// Time the default model with each activation.
pub fn run(plan: &BenchPlan<'_>) -> Result<BenchReport> {
    let t0 = Instant::now();
    let split = data::load(plan.model.dataset, plan.data_dir)?;
    let load_seconds = t0.elapsed().as_secs_f64();
    let _first = Trainer::new(plan.model.clone(), &split);
    let startup_seconds = crate::process_seconds();
    let nonzero_share = describe(plan, &split, load_seconds);
    let timed = time_activations(plan, &split)?;
    let (results, reference, (eval_seconds, eval_dense_seconds)) = timed;
    // Peak memory of the training above, before the scaling runs add their own.
    let peak = peak_rss_mb();
    let n_images = split.train.len() + split.test.len();
    let jobs_scaling = plan
        .scaling_jobs
        .map(|j| jobs_scaling(split, 2 * j, j))
        .transpose()?;
    if let Some(s) = &jobs_scaling {
        println!(
            "{} one-epoch runs: {:.2}s with 1 job, {:.2}s with {} jobs: {:.2}x the throughput",
            s.runs, s.one_job_seconds, s.n_jobs_seconds, s.jobs, s.speedup
        );
    }
    let report = BenchReport {
        actlab_version: env!("CARGO_PKG_VERSION").into(),
        model: model_name(&plan.model),
        threads: plan.threads,
        load_seconds,
        nonzero_share,
        eval_seconds,
        eval_dense_seconds,
        reference,
        activations: results,
        peak_rss_mb: peak,
        startup_seconds,
        jobs_scaling,
    };
    let dense = (report.eval_dense_seconds)
        .map(|d| format!(" ({d:.3}s with the dense first layer)"))
        .unwrap_or_default();
    println!(
        "evaluation of {} images: {:.3}s{dense}; start-up to the first step {:.3}s; peak memory {:.0} MB",
        n_images,
        report.eval_seconds,
        report.startup_seconds,
        report.peak_rss_mb.unwrap_or(f64::NAN)
    );
    Ok(report)
}

/// Say what was loaded and which first layer and SIMD tier will run; the share of
/// non-zero training pixels.
fn describe(plan: &BenchPlan<'_>, split: &data::Split, load_seconds: f64) -> f64 {
    println!(
        "loaded {} ({} + {} images) in {load_seconds:.3}s",
        plan.model.dataset,
        split.train.len(),
        split.test.len()
    );
    let nonzero_share = nonzero_share(split.train.images());
    println!("model: {}", model_name(&plan.model));
    if !plan.model.conv.is_empty() {
        println!("SIMD tier: {} (ACTLAB_SIMD lowers it)", crate::simd::tier());
        return nonzero_share;
    }
    println!(
        "{:.1}% of the training pixels are non-zero; the first layer runs sparse at or below {:.0}%{}",
        nonzero_share * 100.0,
        crate::nn::sparse::DENSE_ABOVE * 100.0,
        if crate::nn::sparse::available() { "" } else { " (not at this SIMD tier: it needs AVX2+FMA)" }
    );
    println!("SIMD tier: {} (ACTLAB_SIMD lowers it)", crate::simd::tier());
    nonzero_share
}

/// The layers of `cfg` in words: "conv 6:5:1:2,16:5, pool max, hidden 120,84".
fn model_name(cfg: &TrainConfig) -> String {
    let hidden = cfg.hidden.iter().map(|h| h.to_string()).collect::<Vec<_>>();
    let mut parts = Vec::new();
    if !cfg.conv.is_empty() {
        let conv = crate::nn::spec::ConvSpec::list_to_string(&cfg.conv);
        parts.push(format!("conv {conv}, pool {}", cfg.pool));
    }
    if !cfg.norm.is_default() {
        parts.push(format!("norm {}", cfg.norm));
    }
    parts.push(format!("hidden {}", hidden.join(",")));
    parts.join(", ")
}

/// Each activation's epoch (the first also with the dense first layer, the
/// reference, for an MLP) and the evaluation time (with either first layer).
type Timed = (
    Vec<ActivationBench>,
    Option<ActivationBench>,
    (f64, Option<f64>),
);

fn time_activations(plan: &BenchPlan<'_>, split: &data::Split) -> Result<Timed> {
    let mut results = Vec::new();
    let (mut eval_seconds, mut eval_dense_seconds) = (f64::INFINITY, None);
    let mut reference = None;
    // A conv net's first layer is a conv layer: no sparse kernel to compare.
    let mlp = plan.model.conv.is_empty();
    for act in plan.activations {
        if reference.is_none() && mlp {
            let (r, _) = time_activation(plan, act, split, FirstLayer::Dense)?;
            println!("{r}");
            reference = Some(r);
        }
        let (r, tr) = time_activation(plan, act, split, FirstLayer::Auto)?;
        if results.is_empty() {
            eval_seconds = time_evaluation(
                &tr.model,
                split,
                tr.cfg.loss,
                FirstLayer::Auto,
                plan.threads,
            );
            eval_dense_seconds = mlp.then(|| {
                time_evaluation(
                    &tr.model,
                    split,
                    tr.cfg.loss,
                    FirstLayer::Dense,
                    plan.threads,
                )
            });
        }
        match &reference {
            Some(d) if d.activation == r.activation => println!(
                "{r}  ({:.2}x the reference's time)",
                r.epoch_seconds / d.epoch_seconds
            ),
            _ => println!("{r}"),
        }
        results.push(r);
    }
    Ok((results, reference, (eval_seconds, eval_dense_seconds)))
}

/// The share of non-zero bytes.
fn nonzero_share(images: &[u8]) -> f64 {
    images.iter().filter(|&&b| b != 0).count() as f64 / images.len().max(1) as f64
}

/// Train `plan.epochs` epochs with `act`; the figures of the fastest epoch.
fn time_activation<'a>(
    plan: &BenchPlan<'_>,
    act: &Activation,
    split: &'a crate::data::Split,
    first_layer: FirstLayer,
) -> Result<(ActivationBench, Trainer<'a>)> {
    let cfg = TrainConfig {
        activation: vec![act.clone()],
        threads: plan.threads,
        epochs: plan.epochs,
        ..plan.model.clone()
    };
    cfg.validate()?;
    let stop = AtomicBool::new(false);
    let mut tr = Trainer::new(cfg, split);
    tr.set_first_layer(first_layer);
    let sparse = first_layer == FirstLayer::Auto
        && crate::nn::sparse::available()
        && nonzero_share(split.train.images()) <= crate::nn::sparse::DENSE_ABOVE as f64;
    let mut all = Vec::new();
    let mut test_acc = 0.0;
    for _ in 0..plan.epochs {
        let s = tr
            .run_epoch(&mut Silent, &stop)
            .ok_or_else(|| anyhow::anyhow!("{act}: training diverged during the benchmark"))?;
        all.push(s.seconds);
        test_acc = s.test.acc;
    }
    let best = all.iter().copied().fold(f64::INFINITY, f64::min);
    let n = split.train.len() as f64;
    let r = ActivationBench {
        activation: act.to_string(),
        epoch_seconds: best,
        all_epochs: all,
        images_per_second: n / best,
        gflops_equivalent: 6.0 * tr.model.params.len() as f64 * n / best / 1e9,
        test_acc,
        first_layer: match (first_layer, sparse) {
            _ if !plan.model.conv.is_empty() => "conv",
            (FirstLayer::Dense, _) => "dense (reference)",
            (_, true) => "sparse",
            (_, false) => "dense",
        }
        .into(),
    };
    Ok((r, tr))
}

/// The fastest of 3 evaluations of all training and test images on `threads` threads.
fn time_evaluation(
    model: &crate::nn::Mlp,
    split: &crate::data::Split,
    loss: crate::nn::Loss,
    first_layer: FirstLayer,
    threads: usize,
) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let mut e = Evaluator::new(model, threads).with_first_layer(first_layer);
            let a = e.run(model, &split.train, loss, |_, _| {});
            let b = e.run(model, &split.test, loss, |_, _| {});
            std::hint::black_box((a, b));
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
