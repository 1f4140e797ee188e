//! Running an experiment's jobs: one single-threaded run per worker (one per core by
//! default), each writing its record atomically, skipping finished ones on --resume.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{Experiment, Job};
use crate::atomic::write_atomic;
use crate::data::{DatasetName, Split};
use crate::run::{pct, split_for, write_record};
use crate::train::{train, Progress, RunRecord};

/// How to run the jobs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Runs at once.
    pub jobs: usize,
    /// Reuse complete records already in the output folder.
    pub resume: bool,
}

/// The number of cores, the default for `--jobs`.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Steps of one run, as a bar under the overall one.
struct RunBar {
    bar: Option<ProgressBar>,
    epochs: usize,
    steps: usize,
}

impl Progress for RunBar {
    fn epoch_start(&mut self, epoch: usize, steps: usize) {
        self.steps = steps;
        if let Some(b) = &self.bar {
            b.set_length((self.epochs * steps) as u64);
            b.set_position(((epoch - 1) * steps) as u64);
        }
    }

    fn step(&mut self, done: usize) {
        if let Some(b) = &self.bar {
            if done.is_multiple_of(32) {
                b.inc(32);
            }
        }
    }

    fn epoch_end(&mut self, s: &crate::train::EpochStats) {
        if let Some(b) = &self.bar {
            b.set_position((s.epoch * self.steps) as u64);
        }
    }
}

/// A record in `path` that already holds this job's finished run.
fn reusable(path: &Path, job: &Job) -> Option<RunRecord> {
    let text = std::fs::read_to_string(path).ok()?;
    let r: RunRecord = serde_json::from_str(&text).ok()?;
    (r.complete && r.config == job.config).then_some(r)
}

/// Save the experiment spec beside its runs, so `merge` and `--resume` know what it was.
pub fn write_spec(out: &Path, exp: &Experiment, resume: bool) -> Result<()> {
    let path = out.join("experiment.json");
    if resume {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let old: Experiment = serde_json::from_str(&text)
                .with_context(|| format!("{}: not an actlab experiment file", path.display()))?;
            if old.variants != exp.variants {
                anyhow::bail!(
                    "{}: this folder holds a different experiment; --resume needs the same variants (or use another --out)",
                    out.display()
                );
            }
        }
    }
    let text = serde_json::to_string_pretty(exp)?;
    write_atomic(&path, text.as_bytes())
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Run `jobs` (all of `exp`, or one shard of it), writing records under `out`.
/// Returns the records in job order; runs stopped by `stop` are left out.
pub fn execute(
    exp: &Experiment,
    jobs: &[Job],
    out: &Path,
    splits: &HashMap<DatasetName, Split>,
    opts: Options,
    stop: &AtomicBool,
) -> Result<Vec<RunRecord>> {
    write_spec(out, exp, opts.resume)?;
    let total = jobs.len();
    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::new();
    let overall = tty.then(|| {
        let b = multi.add(ProgressBar::new(total as u64));
        if let Ok(s) =
            ProgressStyle::with_template("runs {pos}/{len} [{bar:30}] elapsed {elapsed} eta {eta}")
        {
            b.set_style(s.progress_chars("=> "));
        }
        b
    });
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RunRecord>>> = Mutex::new(vec![None; total]);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let t0 = Instant::now();
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        if i >= total || stop.load(Ordering::Relaxed) {
            break;
        }
        let job = &jobs[i];
        let path = out.join(job.record_path());
        let outcome: Result<(RunRecord, bool)> = (|| {
            if opts.resume {
                if let Some(r) = reusable(&path, job) {
                    return Ok((r, true));
                }
            }
            let full = splits
                .get(&job.config.dataset)
                .with_context(|| format!("dataset {} was not loaded", job.config.dataset))?;
            let split = split_for(&job.config, full);
            let bar = tty.then(|| {
                let b = multi.add(ProgressBar::new(1));
                if let Ok(s) = ProgressStyle::with_template("  {msg:<40} [{bar:20}] {percent:>3}%")
                {
                    b.set_style(s.progress_chars("=> "));
                }
                b.set_message(format!("{} seed {}", job.name, job.config.seed));
                b
            });
            let mut progress = RunBar {
                bar: bar.clone(),
                epochs: job.config.epochs,
                steps: 0,
            };
            let (mut record, _) = train(&job.config, &split, &mut progress, stop);
            if let Some(b) = bar {
                b.finish_and_clear();
                multi.remove(&b);
            }
            record.variant = job.name.clone();
            record.variant_index = job.variant;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("{}: cannot create", dir.display()))?;
            }
            if record.complete {
                write_record(&path, &record)?;
            }
            Ok((record, false))
        })();
        match outcome {
            Ok((record, reused)) => {
                let k = done.fetch_add(1, Ordering::SeqCst) + 1;
                let what = match (&record.diverged, record.final_val) {
                    (Some(d), _) => format!("diverged at epoch {} step {}", d.epoch, d.step),
                    (None, Some(v)) => format!("val acc {}", pct(v.acc)),
                    (None, None) => "stopped".into(),
                };
                let line = format!(
                    "[{k}/{total}] {} seed {}: {what}{}",
                    job.name,
                    job.config.seed,
                    if reused {
                        " (already done, reused)".to_string()
                    } else {
                        format!(" in {:.1}s", record.wall_seconds)
                    }
                );
                match &overall {
                    Some(b) => {
                        b.println(line);
                        b.inc(1);
                    }
                    None => eprintln!("{line}"),
                }
                if record.complete {
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(record);
                    }
                }
            }
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                if let Ok(mut f) = first_error.lock() {
                    f.get_or_insert(e);
                }
            }
        }
    };
    let workers = opts.jobs.clamp(1, total.max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(worker);
        }
    });
    if let Some(b) = overall {
        b.finish_and_clear();
    }
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let records: Vec<RunRecord> = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a run panicked"))?
        .into_iter()
        .flatten()
        .collect();
    eprintln!(
        "{} of {total} runs finished in {:.1}s with {workers} job(s)",
        records.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(records)
}

/// Read every run record under `dirs` (their runs/ folders) and the experiment spec
/// of the first folder that has one.
pub fn collect(dirs: &[std::path::PathBuf]) -> Result<(Experiment, Vec<RunRecord>)> {
    let mut spec: Option<Experiment> = None;
    let mut records: HashMap<(usize, u64), RunRecord> = HashMap::new();
    for dir in dirs {
        let path = dir.join("experiment.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: no experiment.json; pass folders written by actlab compare/exercise/run",
                dir.display()
            )
        })?;
        let exp: Experiment = serde_json::from_str(&text)
            .with_context(|| format!("{}: not an actlab experiment file", path.display()))?;
        match &spec {
            None => spec = Some(exp),
            Some(s) if s.variants != exp.variants => anyhow::bail!(
                "{} holds a different experiment from {}; merge only shards of one experiment",
                dir.display(),
                dirs[0].display()
            ),
            Some(_) => {}
        }
        let runs = dir.join("runs");
        let Ok(variants) = std::fs::read_dir(&runs) else {
            continue;
        };
        for v in variants.flatten() {
            let Ok(files) = std::fs::read_dir(v.path()) else {
                continue;
            };
            for f in files.flatten() {
                let p = f.path();
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !(name.starts_with("seed-") && name.ends_with(".json")) {
                    continue;
                }
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("{}: cannot read", p.display()))?;
                let r: RunRecord = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a run record", p.display()))?;
                records.insert((r.variant_index, r.config.seed), r);
            }
        }
    }
    let spec = spec.context("merge needs at least one folder")?;
    let mut records: Vec<RunRecord> = records.into_values().collect();
    records.sort_by_key(|r| (r.variant_index, r.config.seed));
    Ok((spec, records))
}
