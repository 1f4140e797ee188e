//! Running one training command: data, checks, progress, record on disk.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::atomic::write_atomic;
use crate::config::TrainConfig;
use crate::data::{self, Dataset, Split};
use crate::train::{self, EpochStats, Progress, RunRecord};

/// The split a config asks for: the loaded one, or its first N train/test images.
pub fn split_for<'a>(cfg: &TrainConfig, full: &'a Split) -> Cow<'a, Split> {
    if cfg.limit_train.is_none() && cfg.limit_test.is_none() {
        return Cow::Borrowed(full);
    }
    let cut = |d: &Dataset, n: Option<usize>| match n {
        Some(n) => d.clone().truncated(n),
        None => d.clone(),
    };
    Cow::Owned(Split {
        train: cut(&full.train, cfg.limit_train),
        test: cut(&full.test, cfg.limit_test),
        ..full.clone()
    })
}

/// Load the dataset a config names, checking the config against it.
pub fn load_for(cfg: &TrainConfig, data_dir: Option<&Path>) -> Result<Split> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    let split = data::load(cfg.dataset, data_dir)?;
    if !split.is_canonical() {
        eprintln!(
            "warning: {} files in {} differ from the canonical {} release (checksums recorded in the run record)",
            cfg.dataset,
            split.dir.display(),
            cfg.dataset
        );
    }
    let n = cfg.limit_train.unwrap_or(usize::MAX).min(split.train.len());
    cfg.validate_against(n).map_err(anyhow::Error::msg)?;
    Ok(split)
}

/// UTC timestamp like 20261128-144012, for default output folders.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Remove temporary files a killed process left behind (the targets themselves are
/// always whole: they are only ever replaced by rename).
pub fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Create `dir` and prove it is writable now, not after an hour of training.
pub fn prepare_out_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "{}: cannot create the output folder; pass --out DIR somewhere writable",
            dir.display()
        )
    })?;
    let probe = dir.join(".actlab-write-test");
    write_atomic(&probe, &[0u8; 4096]).with_context(|| {
        format!(
            "{}: cannot write into the output folder (full disk or no permission); pass --out DIR somewhere writable",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    remove_stale_temps(dir);
    Ok(())
}

/// Write a record as pretty JSON, atomically.
pub fn write_record(path: &Path, record: &RunRecord) -> Result<()> {
    let text = serde_json::to_string_pretty(record)?;
    write_atomic(path, text.as_bytes()).with_context(|| format!("{}: cannot write", path.display()))
}

/// "97.53%".
pub fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// One line per epoch on stdout, and a progress bar on stderr when it is a terminal.
pub struct EpochPrinter {
    epochs: usize,
    bar: Option<ProgressBar>,
}

impl EpochPrinter {
    /// A printer for a run of `epochs` epochs.
    pub fn new(epochs: usize) -> Self {
        EpochPrinter { epochs, bar: None }
    }
}

impl Progress for EpochPrinter {
    fn epoch_start(&mut self, epoch: usize, steps: usize) {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(steps as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "epoch {msg} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(format!("{epoch}/{}", self.epochs));
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, done: usize) {
        if let Some(b) = &self.bar {
            if done.is_multiple_of(16) {
                b.set_position(done as u64);
            }
        }
    }

    fn epoch_end(&mut self, s: &EpochStats) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        println!(
            "epoch {}/{}  train loss {:.4} acc {}  val loss {:.4} acc {}  {:.2}s",
            s.epoch,
            self.epochs,
            s.train_loss,
            pct(s.train_acc),
            s.val_loss,
            pct(s.val_acc),
            s.seconds
        );
    }
}

/// Raised by Ctrl-C: the command stops cleanly and says how to continue.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// Set by Ctrl-C; training loops stop at the next step.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Make Ctrl-C raise [`STOP`] instead of killing the process (once per process).
pub fn install_ctrlc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| STOP.store(true, std::sync::atomic::Ordering::SeqCst));
    });
}

/// Extra inputs and outputs of `actlab train`.
#[derive(Debug, Default, Clone)]
pub struct TrainIo {
    /// Data folder.
    pub data_dir: Option<PathBuf>,
    /// Run folder (record, checkpoint).
    pub out: Option<PathBuf>,
    /// Save the final model here.
    pub save: Option<PathBuf>,
    /// Start from these weights.
    pub init_from: Option<PathBuf>,
    /// Continue the run in this folder.
    pub resume: Option<PathBuf>,
}

/// `actlab train`: one run, printed, checkpointed every epoch and recorded.
pub fn train_command(cfg: &TrainConfig, io: &TrainIo) -> Result<()> {
    use crate::checkpoint::Checkpoint;
    let (cfg, ckpt, out) = match &io.resume {
        Some(dir) => {
            let c = Checkpoint::load(dir)?;
            (c.cfg.clone(), Some(c), dir.clone())
        }
        None => (
            cfg.clone(),
            None,
            io.out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-train", timestamp()))),
        ),
    };
    let full = load_for(&cfg, io.data_dir.as_deref())?;
    prepare_out_dir(&out)?;
    if let Some(dir) = io
        .save
        .as_deref()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
    {
        prepare_out_dir(dir)?;
    }
    for w in cfg.warnings() {
        eprintln!("warning: {w}");
    }
    let split = split_for(&cfg, &full);
    let mut tr = match ckpt {
        Some(c) => c.into_trainer(&split),
        None => {
            let mut tr = train::Trainer::new(cfg.clone(), &split);
            if let Some(f) = &io.init_from {
                let file = crate::model_io::read_tensors(f)?;
                tr.model.params = crate::model_io::params_from(&file, f, &tr.model.arch, "")?;
            }
            tr
        }
    };
    println!(
        "{} {} on {} ({} train / {} test images), {:?} layers, {} epochs, seed {}",
        if tr.history.is_empty() {
            "training"
        } else {
            "resuming"
        },
        cfg.label(),
        cfg.dataset,
        split.train.len(),
        split.test.len(),
        cfg.arch().sizes,
        cfg.epochs,
        cfg.seed
    );
    if !tr.history.is_empty() {
        println!(
            "continuing after epoch {} of {}",
            tr.history.len(),
            cfg.epochs
        );
    }
    install_ctrlc();
    let t0 = std::time::Instant::now();
    let mut printer = EpochPrinter::new(cfg.epochs);
    let record_path = out.join("record.json");
    if io.resume.is_some() {
        // The checkpoint is the truth: bring a record left behind by a crash up to it.
        write_record(&record_path, &train::finish_partial(&tr, t0))?;
    }
    while tr.history.len() < cfg.epochs {
        if tr.run_epoch(&mut printer, &STOP).is_none() {
            break;
        }
        // Checkpoint first, then the record: a crash in between leaves a record one
        // epoch behind, which a resume rewrites from the checkpoint before it trains.
        let done = tr.history.len();
        Checkpoint::of(&tr).save(&out)?;
        crate::faults::at("checkpoint", done, Some(&STOP));
        write_record(&record_path, &train::finish_partial(&tr, t0))?;
        crate::faults::at("record", done, Some(&STOP));
    }
    if STOP.load(std::sync::atomic::Ordering::SeqCst) && tr.diverged.is_none() {
        return Err(Interrupted(format!(
            "interrupted after {} of {} epochs; the checkpoint of epoch {} is in {}; continue with: actlab train --resume {}",
            tr.history.len(),
            cfg.epochs,
            tr.history.len(),
            out.display(),
            out.display()
        ))
        .into());
    }
    let record = train::finish(&mut tr, t0);
    write_record(&record_path, &record)?;
    if let Some(d) = &record.diverged {
        anyhow::bail!("{d} (record: {})", record_path.display());
    }
    if let (Some(t), Some(v)) = (record.final_train, record.final_val) {
        println!(
            "final  train acc {} loss {:.4}  val acc {} loss {:.4}  (train {:.2}s, total {:.2}s)",
            pct(t.acc),
            t.loss,
            pct(v.acc),
            v.loss,
            record.train_seconds,
            record.wall_seconds
        );
    }
    println!("record: {}", record_path.display());
    if let Some(p) = &io.save {
        crate::model_io::save_model(p, &tr.model, &cfg)?;
        println!(
            "model: {} (+ {})",
            p.display(),
            crate::model_io::meta_path(p).display()
        );
    }
    Ok(())
}

/// How an experiment command runs its jobs and where results go.
pub struct ExperimentRun {
    /// Folder with --data-dir semantics.
    pub data_dir: Option<PathBuf>,
    /// Output folder (default runs/<timestamp>-<name>).
    pub out: Option<PathBuf>,
    /// Parallel runs.
    pub jobs: usize,
    /// Reuse finished records in `out`.
    pub resume: bool,
    /// Only shard K of N (1-based).
    pub shard: Option<(usize, usize)>,
}

/// The command line as typed, for reports.
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut parts = vec!["actlab".to_string()];
    parts.extend(args.into_iter().skip(1).map(|a| {
        if a.contains(' ') || a.is_empty() {
            format!("'{a}'")
        } else {
            a
        }
    }));
    parts.join(" ")
}

/// Run an experiment (all of it or one shard), print and write its summary.
pub fn experiment_command(exp: &crate::experiment::Experiment, how: &ExperimentRun) -> Result<()> {
    use crate::experiment::jobs::{execute, Options};
    use std::collections::HashMap;
    exp.check().map_err(anyhow::Error::msg)?;
    let mut splits = HashMap::new();
    for v in &exp.variants {
        if let std::collections::hash_map::Entry::Vacant(e) = splits.entry(v.config.dataset) {
            e.insert(load_for(&v.config, how.data_dir.as_deref())?);
        }
        let n = splits[&v.config.dataset].train.len();
        let n = v.config.limit_train.unwrap_or(n).min(n);
        v.config
            .validate_against(n)
            .map_err(|e| anyhow::anyhow!("variant '{}': {e}", v.name))?;
        for w in v.config.warnings() {
            eprintln!("warning: variant '{}': {w}", v.name);
        }
    }
    let out = how.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{}-{}",
            timestamp(),
            crate::experiment::slug(&exp.name)
        ))
    });
    prepare_out_dir(&out)?;
    let jobs = match how.shard {
        Some((k, n)) => exp.shard(k, n),
        None => exp.jobs(),
    };
    eprintln!(
        "{}: {} variant(s) x {} seed(s) = {} runs{}, {} at a time; results in {}",
        exp.name,
        exp.variants.len(),
        exp.seeds.len(),
        exp.jobs().len(),
        how.shard
            .map(|(k, n)| format!(" (shard {k}/{n}: {} of them)", jobs.len()))
            .unwrap_or_default(),
        how.jobs,
        out.display()
    );
    install_ctrlc();
    let opts = Options {
        jobs: how.jobs,
        resume: how.resume,
    };
    let records = execute(exp, &jobs, &out, &splits, opts, &STOP)?;
    if STOP.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Interrupted(format!(
            "interrupted: {} of {} runs recorded in {}; finish with the same command plus --resume --out {}",
            records.len(),
            jobs.len(),
            out.display(),
            out.display()
        ))
        .into());
    }
    if let Some((k, n)) = how.shard {
        println!(
            "shard {k}/{n} done: {} record(s) in {}; when every shard is done: actlab merge DIR1 DIR2 ...",
            records.len(),
            out.display()
        );
        return Ok(());
    }
    let data = splits.get(&exp.variants[0].config.dataset);
    summarise_and_write(exp, &records, &out, &command_line(), data)
}

/// Print the summary table of `records` and write summary.{json,csv,md} into `out`.
pub fn summarise_and_write(
    exp: &crate::experiment::Experiment,
    records: &[RunRecord],
    out: &Path,
    command: &str,
    data: Option<&Split>,
) -> Result<()> {
    let summary = crate::report::summary::summarise(exp, records);
    print!("{}", crate::report::render_text(&summary));
    crate::report::write_summary(out, &summary, command)?;
    println!("summary: {}", out.join("summary.md").display());
    let html = crate::report::html::write_report(out, exp, records, command, data)?;
    println!("report: {}", html.display());
    Ok(())
}

/// Load the dataset for a report's image grids, or explain why not (grids are skipped).
pub fn data_for_report(records: &[RunRecord], data_dir: Option<&Path>) -> Option<Split> {
    let name = records.first()?.config.dataset;
    match data::load(name, data_dir) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("note: no misclassified-image grids ({e})");
            None
        }
    }
}
