//! Running an experiment's jobs: one single-threaded run per worker (one per core by
//! default), each writing its record atomically, skipping finished ones on --resume.
//! What the user sees of it (bars, lines) is the caller's [`Watch`].

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{Experiment, ExperimentError, Job};
use crate::checkpoint::Checkpoint;
use crate::data::{DatasetName, Split};
use crate::store::records::RunRecord;
use crate::store::records::{read_record, reusable, write_record};
use crate::store::tensorboard::EventWriter;
use crate::train::{Progress, Trainer};

/// How an experiment's runs are scheduled and stored: the command line's options,
/// checked as they are parsed, as the job runner uses them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {
    /// Seeds: a count (5 means 0..4) or a list (0,1,2). Default: one seed (exercise: 0;
    /// compare: --seed; run: the file's `seeds`).
    #[arg(long, value_name = "N|LIST")]
    pub seeds: Option<super::Seeds>,
    /// Runs at once (each run single-threaded; results do not depend on this).
    #[arg(long, default_value_t = default_jobs(), value_parser = at_least_one_job)]
    pub jobs: usize,
    /// Output folder (default: runs/<timestamp>-<name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Skip runs whose complete record is already in --out (needs --out).
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Replace the results already in --out (the folder's contents are removed first).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Run only slice K of N of the runs (e.g. 2/8), for batch schedulers; combine with
    /// `actlab merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<super::Shard>,
    /// Write TensorBoard event files here, one folder per run (<variant>/seed-<n>):
    /// open with `tensorboard --logdir DIR`.
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// Keep every run's model in models/<variant>/seed-<n>.safetensors and write
    /// demo.html (draw a digit) with the best seed of each variant (exercise: always).
    #[arg(long)]
    pub save_models: bool,
}

/// `--jobs`: a whole number of at least 1.
fn at_least_one_job(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("run at least one job at a time (e.g. --jobs 2)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of runs at once, at least 1 (e.g. --jobs 2)".into()),
    }
}

/// The number of cores, the default for `--jobs`.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// How a caller follows the runs (a progress display, or nothing); shared by workers.
pub trait Watch: Sync {
    /// A run starts; its per-step progress goes to the returned sink.
    fn run_started(&self, job: &Job) -> Box<dyn Progress + '_>;
    /// A run ended, or its finished record was `reused`; `done` runs of all are over.
    fn run_ended(&self, job: &Job, record: &RunRecord, reused: bool, done: usize);
    /// An unfinished run continues from its checkpoint after `epochs` epochs.
    fn run_resumed(&self, _job: &Job, _epochs: usize) {}
}

/// A watch that shows nothing.
pub struct Unwatched;

impl Watch for Unwatched {
    fn run_started(&self, _job: &Job) -> Box<dyn Progress + '_> {
        Box::new(crate::train::Silent)
    }
    fn run_ended(&self, _: &Job, _: &RunRecord, _: bool, _: usize) {}
}

/// Which images a run uses: its dataset and its train / test limits.
type DataKey = (DatasetName, Option<usize>, Option<usize>, Option<usize>);

fn data_key(job: &Job) -> DataKey {
    let c = &job.config;
    (c.dataset, c.limit_train, c.limit_test, c.val_split)
}

/// Everything the workers share.
struct Shared<'a> {
    jobs: &'a [Job],
    out: &'a Path,
    /// One read-only copy of the images per distinct [`DataKey`], for all workers.
    data: HashMap<DataKey, Cow<'a, Split>>,
    opts: &'a Options,
    stop: &'a AtomicBool,
    watch: &'a dyn Watch,
    next: AtomicUsize,
    done: AtomicUsize,
    /// Which jobs finished with a complete record (kept on disk, not in memory).
    finished: Mutex<Vec<bool>>,
    first_error: Mutex<Option<ExperimentError>>,
}

/// Run `jobs` (all of an experiment, or one shard of it), writing records under `out`.
/// Returns the complete records in job order; runs stopped by `stop` are left out.
pub fn execute(
    jobs: &[Job],
    out: &Path,
    splits: &HashMap<DatasetName, Split>,
    opts: &Options,
    stop: &AtomicBool,
    watch: &dyn Watch,
) -> Result<Vec<RunRecord>, ExperimentError> {
    let mut data = HashMap::new();
    for job in jobs {
        if let Entry::Vacant(e) = data.entry(data_key(job)) {
            let full = splits.get(&job.config.dataset).ok_or_else(|| {
                ExperimentError::Invalid(format!("dataset {} was not loaded", job.config.dataset))
            })?;
            let split = job.config.split_of(full);
            e.insert(split.map_err(|err| ExperimentError::Invalid(err.0))?);
        }
    }
    let sh = Shared {
        jobs,
        out,
        data,
        opts,
        stop,
        watch,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        finished: Mutex::new(vec![false; jobs.len()]),
        first_error: Mutex::new(None),
    };
    std::thread::scope(|s| {
        for _ in 0..workers(sh.opts, jobs.len()) {
            s.spawn(|| work(&sh));
        }
    });
    if let Some(e) = sh.first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let finished = sh
        .finished
        .into_inner()
        .map_err(|_| ExperimentError::Invalid("a run panicked".into()))?;
    // Records are read back from disk: holding each in memory as it finished grew a
    // long sweep by ~0.1 MB a run (allocator fragmentation), 20 GB over 100,000 runs.
    jobs.iter()
        .zip(finished)
        .filter(|(_, done)| *done)
        .map(|(job, _)| Ok(read_record(&out.join(job.record_path()))?))
        .collect()
}

/// Worker threads for `total` runs: `--jobs`, but never more than there are runs.
pub fn workers(opts: &Options, total: usize) -> usize {
    opts.jobs.clamp(1, total.max(1))
}

/// One worker: take the next job until none is left, an error occurred or `stop`.
fn work(sh: &Shared<'_>) {
    loop {
        let i = sh.next.fetch_add(1, Ordering::SeqCst);
        if i >= sh.jobs.len() || sh.stop.load(Ordering::Relaxed) {
            break;
        }
        let job = &sh.jobs[i];
        match run_one(sh, job) {
            Ok((record, reused)) => {
                let done = sh.done.fetch_add(1, Ordering::SeqCst) + 1;
                sh.watch.run_ended(job, &record, reused, done);
                crate::faults::at("run", done, Some(sh.stop));
                if record.complete {
                    if let Ok(mut f) = sh.finished.lock() {
                        f[i] = true;
                    }
                }
            }
            Err(e) => {
                sh.stop.store(true, Ordering::Relaxed);
                if let Ok(mut f) = sh.first_error.lock() {
                    f.get_or_insert(e);
                }
            }
        }
    }
}

/// Train `job` (or reuse its finished record on --resume) and write its record.
fn run_one(sh: &Shared<'_>, job: &Job) -> Result<(RunRecord, bool), ExperimentError> {
    let path = sh.out.join(job.record_path());
    if sh.opts.resume {
        if let Some(r) = reusable(&path, &job.config) {
            return Ok((r, true));
        }
    }
    let split = &sh.data[&data_key(job)];
    if let Some(dir) = path.parent() {
        crate::store::create_dir(dir)?;
    }
    let ckpt = sh.out.join(job.checkpoint_path());
    let (mut record, model) = train_resumable(sh, job, split, &ckpt)?;
    record.variant = job.name.clone();
    record.variant_index = job.variant;
    if record.complete {
        if sh.opts.save_models && record.diverged.is_none() {
            let file = sh.out.join(job.model_path());
            if let Some(dir) = file.parent() {
                crate::store::create_dir(dir)?;
            }
            crate::model_io::save_model(&file, &model, &job.config)?;
        }
        write_record(&path, &record)?;
        let _ = std::fs::remove_file(&ckpt);
    }
    Ok((record, false))
}

/// Train `job`, continuing from its checkpoint on --resume, and checkpointing after
/// every epoch but the last, so an interrupted run loses at most the epoch it was in.
fn train_resumable(
    sh: &Shared<'_>,
    job: &Job,
    split: &Split,
    ckpt: &Path,
) -> Result<(RunRecord, crate::nn::Mlp), ExperimentError> {
    let t0 = std::time::Instant::now();
    let saved = sh
        .opts
        .resume
        .then(|| Checkpoint::load_file(ckpt).ok())
        .flatten()
        .filter(|c| c.cfg == job.config);
    let mut tr = match saved {
        Some(c) => {
            sh.watch.run_resumed(job, c.history.len());
            c.into_trainer(split)
        }
        None => Trainer::new(job.config.clone(), split),
    };
    let mut events = match &sh.opts.tensorboard {
        Some(root) => {
            let owner = std::path::absolute(sh.out).unwrap_or_else(|_| sh.out.to_path_buf());
            let slug = super::slug(&job.name);
            let dir = crate::store::tensorboard::run_dir(root, &slug, job.config.seed, &owner)?;
            let resumed = (!tr.history.is_empty())
                .then(|| tr.recorder.as_ref().map_or(0, |r| r.diag.grad_norms.len()));
            Some(EventWriter::start(&dir, &split.train, resumed)?)
        }
        None => None,
    };
    let mut progress = sh.watch.run_started(job);
    tr.run_remaining(progress.as_mut(), sh.stop, |tr| {
        let done = tr.history.len();
        if let (Some(w), Some(stats)) = (&mut events, tr.history.last()) {
            w.epoch(stats, &tr.model, tr.recorder.as_ref().map(|r| &r.diag))?;
        }
        if done < tr.cfg.epochs {
            Checkpoint::of(tr).save_file(ckpt)?;
            crate::faults::at("epoch", done, Some(sh.stop));
        }
        Ok::<(), ExperimentError>(())
    })?;
    let record = RunRecord::finish(&mut tr, t0);
    Ok((record, tr.model))
}

/// Keep `exp`'s spec beside its runs, so `merge` and `--resume` know what it was; on
/// resume, refuse a folder that holds a different experiment.
pub fn write_spec(out: &Path, exp: &Experiment, resume: bool) -> Result<(), ExperimentError> {
    if resume {
        if let Some(old) = crate::store::records::read_spec::<Experiment>(out)? {
            if old.variants != exp.variants {
                return Err(ExperimentError::Invalid(format!(
                    "{}: this folder holds a different experiment; --resume needs the same variants (or use another --out)",
                    out.display()
                )));
            }
        }
    }
    Ok(crate::store::records::write_spec(out, exp)?)
}
