//! `actlab exercise`, `compare`, `run`, `merge` and `report`: an experiment's runs in
//! parallel with a progress display, then its summary, tables and report.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{
    check_against, command_line, data_for_report, install_ctrlc, timestamp, Interrupted, STOP,
};
use crate::data::{DatasetName, Split};
use crate::experiment::jobs::{execute, workers, write_spec, Options, Watch};
use crate::experiment::{Experiment, Job, Shard};
use crate::report::html::{write_report, Page};
use crate::report::pct;
use crate::store::folder::{claim, fresh_dir, prepare_out_dir, Existing, OutDir};
use crate::store::records::RunRecord;
use crate::train::{EpochFigures, Progress};

/// Run an experiment (all of it or one shard) as `how` says, with the data in
/// `data_dir` (`--data-dir` semantics); print and write its summary.
pub fn experiment_command(exp: &Experiment, how: &Options, data_dir: Option<&Path>) -> Result<()> {
    exp.check()?;
    let splits = load_splits(exp, data_dir, workers(how, exp.jobs_count()))?;
    // A data file's shape goes into every variant's config, as in a lone run.
    let mut exp = exp.clone();
    for v in &mut exp.variants {
        v.config = v.config.with_shape_of(&splits[&v.config.dataset]);
    }
    let exp = &exp;
    let held = claim_out(exp, how)?;
    let out = held.path.clone();
    let jobs = match how.shard {
        Some(s) => exp.shard(s.k, s.n),
        None => exp.jobs(),
    };
    announce(exp, how, &jobs, &out);
    install_ctrlc();
    let records = run_jobs(exp, &jobs, &out, &splits, how)?;
    if STOP.load(Ordering::SeqCst) {
        return Err(Interrupted(format!(
            "interrupted: {} of {} runs recorded in {}; finish with the same command plus --resume --out {}",
            records.len(),
            jobs.len(),
            out.display(),
            out.display()
        ))
        .into());
    }
    if let Some(Shard { k, n }) = how.shard {
        println!(
            "shard {k}/{n} done: {} record(s) in {}; when every shard is done: actlab merge DIR1 DIR2 ...",
            records.len(),
            out.display()
        );
        return Ok(());
    }
    let data = splits.get(&exp.variants[0].config.dataset);
    summarise_and_write(exp, &records, &out, &command_line(), data, &[&out])
}

/// Files and folders whose presence means a folder holds an experiment's results.
const EXPERIMENT_RESULTS: [&str; 3] = ["experiment.json", "runs", "summary.json"];

/// The output folder (`--out` or a new `runs/<time>-<name>`), locked and checked for
/// earlier results.
pub fn claim_out(exp: &Experiment, how: &Options) -> Result<OutDir> {
    let existing = match (how.resume, how.overwrite) {
        (true, _) => Existing::Resume,
        (false, true) => Existing::Overwrite,
        (false, false) => Existing::Refuse,
    };
    let out = match &how.out {
        Some(d) => d.clone(),
        None => {
            let name = format!("{}-{}", timestamp(), crate::experiment::slug(&exp.name));
            fresh_dir(Path::new("runs"), &name)?
        }
    };
    Ok(claim(&out, existing, &EXPERIMENT_RESULTS)?)
}

/// Each dataset the variants use, loaded once; every variant checked against it and
/// against the memory `at_once` of its runs need.
fn load_splits(
    exp: &Experiment,
    data_dir: Option<&Path>,
    at_once: usize,
) -> Result<HashMap<DatasetName, Split>> {
    let mut splits = HashMap::new();
    for v in &exp.variants {
        if let std::collections::hash_map::Entry::Vacant(e) = splits.entry(v.config.dataset) {
            e.insert(super::load_config_data(&v.config, data_dir)?);
        }
        check_against(
            &v.config,
            &splits[&v.config.dataset],
            at_once,
            Some(&v.name),
        )?;
        let available = splits[&v.config.dataset].train.len();
        for w in v.config.warnings_for(v.config.train_images(available)) {
            eprintln!("warning: variant '{}': {w}", v.name);
        }
    }
    Ok(splits)
}

/// One line saying what will run, how many at a time, and where results go.
fn announce(exp: &Experiment, how: &Options, jobs: &[Job], out: &Path) {
    let shard = how
        .shard
        .map(|Shard { k, n }| format!(" (shard {k}/{n}: {} of them)", jobs.len()))
        .unwrap_or_default();
    eprintln!(
        "{}: {} x {} = {}{shard}, {} at a time; results in {}",
        exp.name,
        super::count(exp.variants.len(), "variant"),
        super::count(exp.seeds.len(), "seed"),
        super::count(exp.jobs().len(), "run"),
        how.jobs,
        out.display()
    );
}

/// Write the spec, run the jobs under a progress display, and say how long it took.
fn run_jobs(
    exp: &Experiment,
    jobs: &[Job],
    out: &Path,
    splits: &HashMap<DatasetName, Split>,
    how: &Options,
) -> Result<Vec<RunRecord>> {
    write_spec(out, exp, how.resume)?;
    let t0 = Instant::now();
    let bars = Bars::new(jobs.len());
    let at_once = workers(how, jobs.len());
    let records = execute(jobs, out, splits, how, &STOP, &bars);
    bars.finish();
    let records = records?;
    eprintln!(
        "{} of {} finished in {:.1}s with {}",
        records.len(),
        super::count(jobs.len(), "run"),
        t0.elapsed().as_secs_f64(),
        super::count(at_once, "job")
    );
    Ok(records)
}

/// Print the summary table of `records` and write summary.{json,csv,md},
/// report.html and (when models were saved in `model_dirs`) demo.html into `out`.
pub fn summarise_and_write(
    exp: &Experiment,
    records: &[RunRecord],
    out: &Path,
    command: &str,
    data: Option<&Split>,
    model_dirs: &[&Path],
) -> Result<()> {
    let summary = crate::report::summary::summarise(exp, records);
    print!("{}", crate::report::render_text(&summary));
    crate::report::write_summary(out, &summary, records, command)?;
    println!("summary: {}", out.join("summary.md").display());
    let page = Page {
        exp,
        summary: &summary,
        records,
        command,
        data,
    };
    let html = write_report(out, &page)?;
    println!("report: {}", html.display());
    print_demo(super::demo::experiment_demo(
        exp, &summary, records, model_dirs, out, data,
    )?);
    Ok(())
}

fn print_demo(path: Option<PathBuf>) {
    if let Some(p) = path {
        println!(
            "demo: {} (draw a digit; the best seed of each variant)",
            p.display()
        );
    }
}

/// `actlab merge`: one summary from the folders of an experiment's shards.
pub fn merge_command(
    dirs: &[PathBuf],
    out: Option<PathBuf>,
    data_dir: Option<&Path>,
) -> Result<()> {
    let (exp, records) = crate::experiment::folders::collect(dirs)?;
    let out = out.unwrap_or_else(|| dirs[0].clone());
    prepare_out_dir(&out)?;
    let data = data_for_report(&records, data_dir);
    let model_dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    summarise_and_write(
        &exp,
        &records,
        &out,
        &command_line(),
        data.as_ref(),
        &model_dirs,
    )
}

/// `actlab report`: (re)write report.html for any output folder.
pub fn report_command(dir: &Path, data_dir: Option<&Path>) -> Result<()> {
    let (exp, records) = crate::experiment::folders::load_dir(dir)?;
    if records.is_empty() {
        anyhow::bail!("{}: no finished runs to report on", dir.display());
    }
    let data = data_for_report(&records, data_dir);
    let summary = crate::report::summary::summarise(&exp, &records);
    let page = Page {
        exp: &exp,
        summary: &summary,
        records: &records,
        command: &command_line(),
        data: data.as_ref(),
    };
    let path = write_report(dir, &page)?;
    println!("report: {}", path.display());
    let demo = super::demo::experiment_demo(&exp, &summary, &records, &[dir], dir, data.as_ref());
    print_demo(demo?);
    Ok(())
}

/// The progress display of an experiment: an overall bar and one bar per running
/// run on a terminal, one line per finished run either way.
struct Bars {
    multi: MultiProgress,
    overall: Option<ProgressBar>,
    total: usize,
}

impl Bars {
    fn new(total: usize) -> Self {
        let multi = MultiProgress::new();
        let overall = std::io::stderr().is_terminal().then(|| {
            let b = multi.add(ProgressBar::new(total as u64));
            if let Ok(s) = ProgressStyle::with_template(
                "runs {pos}/{len} [{bar:30}] elapsed {elapsed} eta {eta}",
            ) {
                b.set_style(s.progress_chars("=> "));
            }
            b
        });
        Bars {
            multi,
            overall,
            total,
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.overall {
            b.finish_and_clear();
        }
    }
}

impl Watch for Bars {
    fn run_started(&self, job: &Job) -> Box<dyn Progress + '_> {
        let bar = self.overall.is_some().then(|| {
            let b = self.multi.add(ProgressBar::new(1));
            if let Ok(s) = ProgressStyle::with_template("  {msg:<40} [{bar:20}] {percent:>3}%") {
                b.set_style(s.progress_chars("=> "));
            }
            b.set_message(format!("{} seed {}", job.name, job.config.seed));
            b
        });
        Box::new(RunBar {
            multi: &self.multi,
            bar,
            epochs: job.config.epochs,
            steps: 0,
        })
    }

    fn run_resumed(&self, job: &Job, epochs: usize) {
        let line = format!(
            "{} seed {}: continuing after epoch {epochs} of {}",
            job.name, job.config.seed, job.config.epochs
        );
        match &self.overall {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn run_ended(&self, job: &Job, record: &RunRecord, reused: bool, done: usize) {
        let what = match (&record.diverged, record.final_test) {
            (Some(d), _) => format!("diverged at epoch {} step {}", d.epoch, d.step),
            (None, Some(t)) => match record.final_val {
                Some(v) => format!("val acc {}, test acc {}", pct(v.acc), pct(t.acc)),
                None => format!("test acc {}", pct(t.acc)),
            },
            (None, None) => "stopped".into(),
        };
        let how = if reused {
            " (already done, reused)".to_string()
        } else {
            format!(" in {:.1}s", record.wall_seconds)
        };
        let line = format!(
            "[{done}/{}] {} seed {}: {what}{how}",
            self.total, job.name, job.config.seed
        );
        match &self.overall {
            Some(b) => {
                b.println(line);
                b.inc(1);
            }
            None => eprintln!("{line}"),
        }
    }
}

/// Steps of one run, as a bar under the overall one; removed when the run ends.
struct RunBar<'a> {
    multi: &'a MultiProgress,
    bar: Option<ProgressBar>,
    epochs: usize,
    steps: usize,
}

impl Progress for RunBar<'_> {
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

    fn epoch_end(&mut self, s: &EpochFigures) {
        if let Some(b) = &self.bar {
            b.set_position((s.epoch * self.steps) as u64);
        }
    }
}

impl Drop for RunBar<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
    }
}
