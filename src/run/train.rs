//! `actlab train`: one run, printed epoch by epoch, checkpointed every epoch,
//! recorded, optionally saved as a model; Ctrl-C stops it cleanly.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use super::{install_ctrlc, load_for, timestamp, Interrupted, STOP};
use crate::checkpoint::Checkpoint;
use crate::config::TrainConfig;
use crate::data::Split;
use crate::report::pct;
use crate::store::folder::prepare_out_dir;
use crate::store::records::{write_record, RECORD};
use crate::train::{self, EpochStats, Progress, RunRecord, Trainer};

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
    let (cfg, ckpt, out) = settings(cfg, io)?;
    let full = load_for(&cfg, io.data_dir.as_deref())?;
    prepare_folders(&out, io.save.as_deref())?;
    for w in cfg.warnings() {
        eprintln!("warning: {w}");
    }
    let split = cfg.split_of(&full);
    let mut tr = trainer(&cfg, &split, ckpt, io.init_from.as_deref())?;
    print_start(&tr, &split);
    install_ctrlc();
    let t0 = Instant::now();
    let record_path = out.join(RECORD);
    if io.resume.is_some() {
        // The checkpoint is the truth: bring a record left behind by a crash up to it.
        write_record(&record_path, &train::finish_partial(&tr, t0))?;
    }
    run_epochs(&mut tr, &out, t0)?;
    if STOP.load(Ordering::SeqCst) && tr.diverged.is_none() {
        let done = tr.history.len();
        return Err(Interrupted(format!(
            "interrupted after {done} of {} epochs; the checkpoint of epoch {done} is in {}; continue with: actlab train --resume {}",
            cfg.epochs,
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
    print_final(&record, &record_path);
    if let Some(p) = &io.save {
        crate::model_io::save_model(p, &tr.model, &cfg)?;
        let meta = crate::model_io::meta_path(p);
        println!("model: {} (+ {})", p.display(), meta.display());
    }
    Ok(())
}

/// The run's settings, its checkpoint when resuming, and its folder.
fn settings(cfg: &TrainConfig, io: &TrainIo) -> Result<(TrainConfig, Option<Checkpoint>, PathBuf)> {
    Ok(match &io.resume {
        Some(dir) => {
            let c = Checkpoint::load(dir)?;
            (c.cfg.clone(), Some(c), dir.clone())
        }
        None => {
            let out = io
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-train", timestamp())));
            (cfg.clone(), None, out)
        }
    })
}

/// Create the run folder and the model's folder, proving both writable.
fn prepare_folders(out: &Path, save: Option<&Path>) -> Result<()> {
    prepare_out_dir(out)?;
    if let Some(dir) = save
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
    {
        prepare_out_dir(dir)?;
    }
    Ok(())
}

/// A trainer from the checkpoint, from `--init-from` weights, or fresh.
fn trainer<'a>(
    cfg: &TrainConfig,
    split: &'a Split,
    ckpt: Option<Checkpoint>,
    init_from: Option<&Path>,
) -> Result<Trainer<'a>> {
    if let Some(c) = ckpt {
        return Ok(c.into_trainer(split));
    }
    let mut tr = Trainer::new(cfg.clone(), split);
    if let Some(f) = init_from {
        let file = crate::model_io::read_tensors(f)?;
        tr.model.params = crate::model_io::params_from(&file, f, &tr.model.arch, "")?;
    }
    Ok(tr)
}

/// What is about to run.
fn print_start(tr: &Trainer<'_>, split: &Split) {
    let cfg = &tr.cfg;
    let verb = if tr.history.is_empty() {
        "training"
    } else {
        "resuming"
    };
    println!(
        "{verb} {} on {} ({} train / {} test images), {:?} layers, {} epochs, seed {}",
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
}

/// Train the remaining epochs, writing the checkpoint and then the record after each.
fn run_epochs(tr: &mut Trainer<'_>, out: &Path, t0: Instant) -> Result<()> {
    let mut printer = EpochPrinter::new(tr.cfg.epochs);
    let record_path = out.join(RECORD);
    while tr.history.len() < tr.cfg.epochs {
        if tr.run_epoch(&mut printer, &STOP).is_none() {
            break;
        }
        // Checkpoint first, then the record: a crash in between leaves a record one
        // epoch behind, which a resume rewrites from the checkpoint before it trains.
        let done = tr.history.len();
        Checkpoint::of(tr).save(out)?;
        crate::faults::at("checkpoint", done, Some(&STOP));
        write_record(&record_path, &train::finish_partial(tr, t0))?;
        crate::faults::at("record", done, Some(&STOP));
    }
    Ok(())
}

/// The final figures and where the record is.
fn print_final(record: &RunRecord, record_path: &Path) {
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
}
