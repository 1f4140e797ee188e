//! `actlab train`: one run, printed epoch by epoch, checkpointed every epoch,
//! recorded, optionally saved as a model; Ctrl-C stops it cleanly.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use super::{install_ctrlc, load_for, timestamp, Interrupted, STOP};

use crate::checkpoint::{Checkpoint, RunOrigin};
use crate::config::TrainConfig;
use crate::data::Split;
use crate::report::pct;
use crate::store::folder::{claim, fresh_dir, prepare_out_dir, Existing, OutDir};
use crate::store::records::RunRecord;
use crate::store::records::{write_record, RECORD};
use crate::store::tensorboard::EventWriter;
use crate::train::{EpochFigures, Progress, Trainer};

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
                "epoch {msg} [{bar:30}] {pos}/{len} steps {rate} eta {eta}",
            ) {
                // Whole steps per second: indicatif's own {per_sec} prints "214.0757/s".
                let rate = |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} steps/s", s.per_sec());
                };
                bar.set_style(style.with_key("rate", rate).progress_chars("=> "));
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

    fn epoch_end(&mut self, s: &EpochFigures) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let val = s
            .val
            .map(|v| format!("  val loss {:.4} acc {}", v.loss, pct(v.acc)))
            .unwrap_or_default();
        println!(
            "epoch {}/{}  train loss {:.4} acc {}{val}  test loss {:.4} acc {}  {:.2}s",
            s.epoch,
            self.epochs,
            s.train.loss,
            pct(s.train.acc),
            s.test.loss,
            pct(s.test.acc),
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
    /// Clear `out` first if it holds results.
    pub overwrite: bool,
    /// TensorBoard event files under this folder.
    pub tensorboard: Option<PathBuf>,
    /// Flags given on the command line that set the run's settings (e.g. "--lr"):
    /// a resumed run refuses them, since they would change the run it continues.
    pub changed: Vec<String>,
    /// `--epochs` as given on the command line: on resume, extends the run.
    pub epochs: Option<usize>,
}

/// Files whose presence means a folder holds a run's results.
const RUN_RESULTS: [&str; 2] = [RECORD, crate::checkpoint::FILE];

/// `actlab train`: one run, printed, checkpointed every epoch and recorded.
pub fn train_command(cfg: &TrainConfig, io: &TrainIo) -> Result<()> {
    let (cfg, ckpt, io) = settings(cfg, io)?;
    let io = &io;
    let full = load_for(&cfg, io.data_dir.as_deref())?;
    let cfg = cfg.with_shape_of(&full);
    let split = cfg.split_of(&full)?;
    let held = claim_folders(io)?;
    let out = held.path.clone();
    let origin = RunOrigin {
        folder: absolute(&out),
        data_dir: Some(absolute(&full.dir)),
        save: io.save.as_deref().map(absolute),
    };
    for w in cfg.warnings_for(split.train.len()) {
        eprintln!("warning: {w}");
    }
    if let Some(note) = untrusted_save(ckpt.as_ref(), io) {
        eprintln!("{note}");
    }
    let mut tr = trainer(&cfg, &split, ckpt, io.init_from.as_deref())?;
    print_start(&tr, &split);
    install_ctrlc();
    crate::faults::at("start", 0, Some(&STOP));
    let t0 = Instant::now();
    let record_path = out.join(RECORD);
    if io.resume.is_some() {
        // The checkpoint is the truth: bring a record left behind by a crash up to it.
        write_record(&record_path, &RunRecord::partial(&tr, t0))?;
    }
    run_epochs(&mut tr, &origin, t0, io.tensorboard.as_deref())?;
    if STOP.load(Ordering::SeqCst) && tr.diverged.is_none() {
        return Err(interrupted(&tr, &out, io).into());
    }
    let record = RunRecord::finish(&mut tr, t0);
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

/// The note that a resumed run's checkpoint names a model path it may not write to
/// (outside the run folder) and none was given now.
fn untrusted_save(ckpt: Option<&Checkpoint>, io: &TrainIo) -> Option<String> {
    let origin = ckpt?.origin.as_ref()?;
    if io.save.is_some() {
        return None;
    }
    crate::store::paths::stored_save(origin.save.clone(), &origin.folder).err()
}

/// What to say when Ctrl-C stopped the run: how to continue it, or, before the
/// first checkpoint, that there is nothing to continue.
fn interrupted(tr: &Trainer<'_>, out: &Path, io: &TrainIo) -> Interrupted {
    let done = tr.history.len();
    if done == 0 {
        return Interrupted(format!(
            "interrupted before the first epoch ended: there is no checkpoint in {} and nothing to resume; start the run again (the same command plus --overwrite)",
            out.display()
        ));
    }
    let save = io
        .save
        .as_ref()
        .map(|p| format!(" --save {}", p.display()))
        .unwrap_or_default();
    Interrupted(format!(
        "interrupted after {done} of {} epochs; the checkpoint of epoch {done} is in {}; continue with: actlab train --resume {}{save}",
        tr.cfg.epochs,
        out.display(),
        out.display()
    ))
}

/// The run's settings, its checkpoint when resuming, and the inputs and outputs to
/// use: on resume, those the run was started with unless given again.
fn settings(cfg: &TrainConfig, io: &TrainIo) -> Result<(TrainConfig, Option<Checkpoint>, TrainIo)> {
    let Some(dir) = &io.resume else {
        return Ok((cfg.clone(), None, io.clone()));
    };
    if io.overwrite {
        anyhow::bail!(
            "--resume and --overwrite contradict each other: continue the run, or replace it"
        );
    }
    if let Some(flag) = io.changed.first() {
        anyhow::bail!(
            "{flag}: --resume continues the run with its own settings; to change them, start a new run (--out DIR)"
        );
    }
    let mut c = Checkpoint::load(dir)?;
    let mut io = io.clone();
    if let Some(o) = c.origin.clone() {
        if o.folder != absolute(dir) {
            anyhow::bail!(
                "{}: this checkpoint belongs to the run in {}; resume that folder (a checkpoint is not moved between runs)",
                dir.join(crate::checkpoint::FILE).display(),
                o.folder.display()
            );
        }
        io.data_dir = io.data_dir.or(o.data_dir);
        if io.save.is_none() {
            io.save = crate::store::paths::stored_save(o.save, &o.folder).unwrap_or(None);
        }
    }
    if let Some(n) = io.epochs {
        if n < c.cfg.epochs {
            anyhow::bail!(
                "--epochs {n}: the run already has {} epochs; --epochs on --resume can only extend it",
                c.cfg.epochs
            );
        }
        c.cfg.epochs = n;
    }
    Ok((c.cfg.clone(), Some(c), io))
}

/// `p` made absolute (as given, if that fails), so a stored path means the same from
/// any working folder.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The run folder (the resumed one, `--out`, or a new `runs/<time>-train`), locked and
/// checked for earlier results; the model's folder too, and that the model's files
/// cannot land on the run's own.
fn claim_folders(io: &TrainIo) -> Result<OutDir> {
    let existing = match (&io.resume, io.overwrite) {
        (Some(_), _) => Existing::Resume,
        (None, true) => Existing::Overwrite,
        (None, false) => Existing::Refuse,
    };
    let out = match io.resume.as_ref().or(io.out.as_ref()) {
        Some(d) => d.clone(),
        None => fresh_dir(Path::new("runs"), &format!("{}-train", timestamp()))?,
    };
    if let Some(save) = &io.save {
        check_save_path(save, &out, io.overwrite)?;
    }
    let held = claim(&out, existing, &RUN_RESULTS)?;
    if let Some(dir) = io
        .save
        .as_deref()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
    {
        prepare_out_dir(dir)?;
    }
    Ok(held)
}

/// `--save` must name a .safetensors file that is neither the run's record or
/// checkpoint nor has its JSON description land on one of them, and (without
/// `--overwrite`) replaces neither an existing model nor an existing JSON file.
fn check_save_path(save: &Path, out: &Path, overwrite: bool) -> Result<()> {
    if save.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        anyhow::bail!(
            "--save {}: a model file must end in .safetensors (its description goes beside it as .json)",
            save.display()
        );
    }
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let sidecar = crate::model_io::meta_path(save);
    for own in RUN_RESULTS {
        let own = abs(&out.join(own));
        if abs(save) == own || abs(&sidecar) == own {
            anyhow::bail!(
                "--save {}: it would overwrite the run's own {}; save the model elsewhere",
                save.display(),
                own.display()
            );
        }
    }
    for file in [save, sidecar.as_path()] {
        crate::store::paths::file_target(file, "--save")?;
        crate::store::paths::not_existing(file, "--save", overwrite)?;
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
        tr.model.stats = crate::model_io::stats_from(&file, f, &tr.model.arch, "")?;
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
    let val = split
        .val
        .as_ref()
        .map(|v| format!(" / {} held-out val", v.len()))
        .unwrap_or_default();
    println!(
        "{verb} {} on {} ({} train{val} / {} test images), {:?} layers, {}, seed {}",
        cfg.label(),
        cfg.dataset,
        split.train.len(),
        split.test.len(),
        cfg.arch().sizes,
        super::count(cfg.epochs, "epoch"),
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
fn run_epochs(
    tr: &mut Trainer<'_>,
    origin: &RunOrigin,
    t0: Instant,
    tensorboard: Option<&Path>,
) -> Result<()> {
    let mut printer = EpochPrinter::new(tr.cfg.epochs);
    let out = origin.folder.as_path();
    let record_path = out.join(RECORD);
    let mut events = match tensorboard {
        Some(root) => {
            let name = crate::experiment::slug(&tr.cfg.label());
            let dir = crate::store::tensorboard::run_dir(root, &name, tr.cfg.seed, out)?;
            let resumed = (!tr.history.is_empty())
                .then(|| tr.recorder.as_ref().map_or(0, |r| r.diag.grad_norms.len()));
            let w = EventWriter::start(&dir, &tr.split().train, resumed)?;
            Some(w.with_session(root, &tr.cfg, &tr.cfg.label())?)
        }
        None => None,
    };
    tr.run_remaining(&mut printer, &STOP, |tr| {
        if let (Some(w), Some(stats)) = (&mut events, tr.history.last()) {
            w.epoch(stats, &tr.model, tr.recorder.as_ref().map(|r| &r.diag))?;
        }
        // Checkpoint first, then the record: a crash in between leaves a record one
        // epoch behind, which a resume rewrites from the checkpoint before it trains.
        let done = tr.history.len();
        Checkpoint::of(tr).with_origin(origin.clone()).save(out)?;
        crate::faults::at("checkpoint", done, Some(&STOP));
        write_record(&record_path, &RunRecord::partial(tr, t0))?;
        crate::faults::at("record", done, Some(&STOP));
        Ok::<(), anyhow::Error>(())
    })?;
    let finished = tr.history.len() == tr.cfg.epochs || tr.diverged.is_some();
    if let Some(w) = events.as_mut().filter(|_| finished) {
        w.end_session(tr.diverged.is_some())?;
    }
    Ok(())
}

/// "train 4.98s, total 5.40s"; after a resume the training time covers every epoch
/// while the wall time is this process's, so both are said as such.
fn timings(record: &RunRecord) -> String {
    if record.wall_seconds < record.train_seconds {
        format!(
            "train {:.2}s over all epochs, {:.2}s in this resumed session",
            record.train_seconds, record.wall_seconds
        )
    } else {
        format!(
            "train {:.2}s, total {:.2}s",
            record.train_seconds, record.wall_seconds
        )
    }
}

/// The final figures and where the record is.
fn print_final(record: &RunRecord, record_path: &Path) {
    if let (Some(t), Some(test)) = (record.final_train, record.final_test) {
        let val = record
            .final_val
            .map(|m| format!("  val acc {} loss {:.4}", pct(m.acc), m.loss))
            .unwrap_or_default();
        println!(
            "final  train acc {} loss {:.4}{val}  test acc {} loss {:.4}  ({})",
            pct(t.acc),
            t.loss,
            pct(test.acc),
            test.loss,
            timings(record)
        );
    }
    println!("record: {}", record_path.display());
}
