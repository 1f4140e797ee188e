//! `compare` and `exercise` for Python: the library's experiments (variants, seeds,
//! tuning, statistics, summary files and report.html) run as `actlab compare` and
//! `actlab exercise` run them, with Ctrl-C and per-run callbacks for Python.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

use actlab::config::TrainConfig;
use actlab::data::{DatasetName, Split};
use actlab::experiment::jobs::{execute, workers, write_spec, Options, Watch};
use actlab::experiment::proposal::is_proposal;
use actlab::experiment::{parse_seeds, tune, Experiment, Job, ReportKind};
use actlab::report::html::{write_report, Page};
use actlab::report::summary::{summarise, ExperimentSummary};
use actlab::store::records::RunRecord;
use actlab::train::{Progress, Silent};
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::options;

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// How the runs are scheduled and where they go (`jobs=`, `out=`, `resume=`, ...).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct How {
    jobs: Option<usize>,
    out: Option<PathBuf>,
    resume: bool,
    overwrite: bool,
    save_models: bool,
}

impl How {
    fn options(&self, save_models: bool) -> PyResult<Options> {
        if self.jobs == Some(0) {
            return Err(value_error(
                "jobs=0: run at least one job at a time (e.g. jobs=2)",
            ));
        }
        if self.resume && self.out.is_none() {
            return Err(value_error(
                "resume=True continues the runs in out=; name the folder",
            ));
        }
        if self.resume && self.overwrite {
            return Err(value_error("resume=True and overwrite=True: choose one"));
        }
        Ok(Options {
            jobs: self
                .jobs
                .unwrap_or_else(actlab::experiment::jobs::default_jobs),
            out: self.out.clone(),
            resume: self.resume,
            overwrite: self.overwrite,
            save_models: self.save_models || save_models,
            ..Options::default()
        })
    }
}

/// What the experiment left: its folder, its summary and the lines under its table.
#[pyclass(module = "actlab._actlab", get_all)]
pub struct Outcome {
    /// The output folder (report.html, summary.csv, runs.csv, ...).
    out: PathBuf,
    /// The exercise's verdicts, as printed under its table (none for a comparison).
    verdicts: Vec<String>,
    /// Notes printed under the table (seeds, intervals, splits, divergences).
    notes: Vec<String>,
    /// The exercise's claims per variant: (name, train acc, val acc, val loss).
    claims: Vec<(String, f64, f64, f64)>,
    /// Each proposal (`try_=`) graded: its variant name and its grade lines (the
    /// first PASS, FAIL or "not shown", then one per goal).
    grades: Vec<(String, Vec<String>)>,
}

/// A finished run, for the Python callback.
struct Ended {
    done: usize,
    variant: String,
    seed: u64,
    test_acc: Option<f64>,
    val_acc: Option<f64>,
    reused: bool,
}

/// Sends each finished run to the thread that holds Python.
struct PyWatch {
    tx: Mutex<Sender<Ended>>,
}

impl Watch for PyWatch {
    fn run_started(&self, _job: &Job) -> Box<dyn Progress + '_> {
        Box::new(Silent)
    }

    fn run_ended(&self, job: &Job, record: &RunRecord, reused: bool, done: usize) {
        let ended = Ended {
            done,
            variant: job.name.clone(),
            seed: job.config.seed,
            test_acc: record.final_test.map(|m| m.acc),
            val_acc: record.final_val.map(|m| m.acc),
            reused,
        };
        if let Ok(tx) = self.tx.lock() {
            // The receiver outlives the runs; a closed channel only loses a progress tick.
            let _ = tx.send(ended);
        }
    }
}

/// Calls `on_run` for finished runs and watches for Ctrl-C, on the calling thread
/// (Python delivers signals only there) while the workers train.
struct Follower {
    on_run: Option<Py<PyAny>>,
    total: usize,
    interrupted: bool,
    error: Option<PyErr>,
}

impl Follower {
    fn tick(&mut self, rx: &Receiver<Ended>, stop: &AtomicBool) {
        let first = rx.recv_timeout(Duration::from_millis(50)).ok();
        Python::attach(|py| {
            for e in first.into_iter().chain(rx.try_iter()) {
                self.call(py, e, stop);
            }
            if py.check_signals().is_err() {
                self.interrupted = true;
                stop.store(true, Ordering::SeqCst);
            }
        });
    }

    fn call(&mut self, py: Python<'_>, e: Ended, stop: &AtomicBool) {
        let Some(f) = &self.on_run else { return };
        if self.error.is_some() {
            return;
        }
        let json = serde_json::json!({
            "done": e.done, "total": self.total, "variant": e.variant, "seed": e.seed,
            "test_acc": e.test_acc, "val_acc": e.val_acc, "reused": e.reused,
        })
        .to_string();
        if let Err(err) = f.call1(py, (json,)) {
            self.error = Some(err);
            stop.store(true, Ordering::SeqCst);
        }
    }
}

/// Run `jobs` on worker threads while the calling thread follows them.
fn run_jobs(
    jobs: &[Job],
    out: &std::path::Path,
    splits: &HashMap<DatasetName, Split>,
    how: &Options,
    follower: &mut Follower,
) -> (
    Result<Vec<RunRecord>, actlab::experiment::ExperimentError>,
    bool,
) {
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    let watch = PyWatch { tx: Mutex::new(tx) };
    let records = std::thread::scope(|s| {
        let worker = s.spawn(|| execute(jobs, out, splits, how, &stop, &watch));
        while !worker.is_finished() {
            follower.tick(&rx, &stop);
        }
        worker.join()
    });
    // Runs that ended after the last tick still reach the callback.
    Python::attach(|py| {
        for e in rx.try_iter() {
            follower.call(py, e, &stop);
        }
    });
    match records {
        Ok(r) => (r, stop.load(Ordering::SeqCst)),
        Err(_) => (Err("a run panicked".to_string().into()), true),
    }
}

/// Run `exp` on `split` as `how` says; write summary files and report.html.
fn run(
    py: Python<'_>,
    exp: Experiment,
    split: Split,
    how: Options,
    command: &str,
    on_run: Option<Py<PyAny>>,
) -> PyResult<(PathBuf, ExperimentSummary, Vec<RunRecord>, Experiment)> {
    exp.check().map_err(value_error)?;
    let at_once = workers(&how, exp.jobs_count());
    let mut exp = exp;
    for v in &mut exp.variants {
        actlab::run::check_against(&v.config, &split, at_once, Some(&v.name))
            .map_err(|e| value_error(format!("{e:#}")))?;
        v.config = v.config.with_shape_of(&split);
    }
    let held = actlab::run::experiment::claim_out(&exp, &how)
        .map_err(|e| PyOSError::new_err(format!("{e:#}")))?;
    let out = held.path.clone();
    write_spec(&out, &exp, how.resume).map_err(|e| PyOSError::new_err(e.to_string()))?;
    let jobs = exp.jobs();
    let splits = HashMap::from([(exp.variants[0].config.dataset, split)]);
    let mut follower = Follower {
        on_run,
        total: jobs.len(),
        interrupted: false,
        error: None,
    };
    let (records, stopped) = py.detach(|| run_jobs(&jobs, &out, &splits, &how, &mut follower));
    if let Some(e) = follower.error {
        return Err(e);
    }
    let records = records.map_err(value_error)?;
    if follower.interrupted || stopped {
        return Err(PyKeyboardInterrupt::new_err(format!(
            "stopped: {} of {} runs recorded in {}; finish them with the same call plus out={:?}, resume=True",
            records.len(),
            jobs.len(),
            out.display(),
            out.display().to_string()
        )));
    }
    let summary = summarise(&exp, &records);
    let data = splits.values().next();
    actlab::report::write_summary(&out, &summary, &records, command)
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
    let page = Page {
        exp: &exp,
        summary: &summary,
        records: &records,
        command,
        data,
    };
    write_report(&out, &page).map_err(|e| PyOSError::new_err(format!("{e:#}")))?;
    if how.save_models {
        actlab::run::demo::experiment_demo(&exp, &summary, &records, &[&out], &out, data)
            .map_err(|e| PyOSError::new_err(format!("{e:#}")))?;
    }
    Ok((out, summary, records, exp))
}

/// Where the results are, and the lines under the table: verdicts and notes.
fn outcome(out: PathBuf, summary: &ExperimentSummary) -> Outcome {
    let claims = summary
        .variants
        .iter()
        .filter_map(|v| {
            actlab::report::exercise::claim(&v.name).map(|(a, b, c)| (v.name.clone(), a, b, c))
        })
        .collect();
    let before = summary.variants.iter().find(|v| v.name == "before");
    let grades = before
        .map(|b| {
            summary
                .variants
                .iter()
                .filter(|v| is_proposal(&v.name))
                .map(|v| {
                    (
                        v.name.clone(),
                        actlab::report::grade::proposal(summary, b, v),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Outcome {
        out,
        grades,
        verdicts: match summary.report {
            ReportKind::Exercise => actlab::report::exercise::verdicts(summary),
            ReportKind::Compare => Vec::new(),
        },
        notes: summary.notes(),
        claims,
    }
}

/// The data of a call, put into `base`: its dataset (or file) and the split itself.
fn with_data(
    mut base: TrainConfig,
    data: &Bound<'_, PyAny>,
    data_dir: Option<PathBuf>,
) -> PyResult<(TrainConfig, Split)> {
    let (split, file) = crate::load_data(data, data_dir)?;
    base.dataset = split.name;
    if split.name == DatasetName::File {
        base.data_file = file;
    }
    Ok((base, split))
}

/// Seeds as the CLI's `--seeds` reads them: a count ("3": 0..2) or a list ("0,4").
fn seeds(spec: &str) -> PyResult<Vec<u64>> {
    parse_seeds(spec).map_err(|e| value_error(format!("seeds={spec}: {e}")))
}

/// `actlab compare`: one variant per activation of `base` (or per `variants` spec),
/// over `seeds`, optionally tuned; returns where the results are.
#[pyfunction]
#[pyo3(signature = (base, define, variants, seed_spec, tune_json, data, data_dir, how, command, on_run=None))]
#[allow(clippy::too_many_arguments)]
pub fn compare(
    py: Python<'_>,
    base: &str,
    define: BTreeMap<String, String>,
    variants: Vec<String>,
    seed_spec: &str,
    tune_json: &str,
    data: &Bound<'_, PyAny>,
    data_dir: Option<PathBuf>,
    how: How,
    command: &str,
    on_run: Option<Py<PyAny>>,
) -> PyResult<Outcome> {
    let formulas = options::formulas(&define)?;
    let cfg = options::config(base, &formulas, false)?;
    let (cfg, split) = with_data(cfg, data, data_dir)?;
    let axes =
        tune::axes_from_toml(&options::tune_table(tune_json)?, "tune").map_err(value_error)?;
    let exp = Experiment::compare(&cfg, &variants, &formulas, seeds(seed_spec)?)
        .and_then(|e| e.tuned(axes))
        .map_err(value_error)?;
    let (out, summary, _, _) = run(py, exp, split, how.options(false)?, command, on_run)?;
    Ok(outcome(out, &summary))
}

/// `actlab exercise`: the before/after (and dropout bonus) over `seeds`.
#[pyfunction]
#[pyo3(signature = (base, dropout, tries, define, seed_spec, data, data_dir, how, command, on_run=None))]
#[allow(clippy::too_many_arguments)]
pub fn exercise(
    py: Python<'_>,
    base: &str,
    dropout: Option<f32>,
    tries: Vec<String>,
    define: BTreeMap<String, String>,
    seed_spec: &str,
    data: &Bound<'_, PyAny>,
    data_dir: Option<PathBuf>,
    how: How,
    command: &str,
    on_run: Option<Py<PyAny>>,
) -> PyResult<Outcome> {
    if dropout.is_some() && !tries.is_empty() {
        // As the CLI: the bonus's dropout is part of the exercise as posed.
        return Err(value_error(format!(
            "dropout with try_: {}; drop dropout",
            actlab::experiment::proposal::RULE
        )));
    }
    let formulas = options::formulas(&define)?;
    let cfg = options::config(base, &formulas, true)?;
    let (cfg, split) = with_data(cfg, data, data_dir)?;
    let exp = Experiment::exercise(&cfg, dropout.unwrap_or(0.2), seeds(seed_spec)?)
        .with_proposals(&tries, &formulas)
        .map_err(value_error)?;
    // As the CLI does: the exercise's few models are kept for demo.html.
    let (out, summary, _, _) = run(py, exp, split, how.options(true)?, command, on_run)?;
    Ok(outcome(out, &summary))
}
