//! Experiments read back from output folders: shards merged into one, or any folder
//! written by `train`, `compare`, `exercise` or `run` for a report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Experiment, ExperimentError, ReportKind, Variant};
use crate::store::records::RunRecord;
use crate::store::records::{read_record, read_run_records, read_spec, RECORD};

/// Every run record under `dirs` and the experiment they belong to; all folders must
/// hold shards of the same experiment.
pub fn collect(dirs: &[PathBuf]) -> Result<(Experiment, Vec<RunRecord>), ExperimentError> {
    let mut spec: Option<Experiment> = None;
    let mut records: HashMap<(usize, u64), (PathBuf, RunRecord)> = HashMap::new();
    for dir in dirs {
        let exp: Experiment = read_spec(dir)?.ok_or_else(|| {
            ExperimentError::Invalid(format!(
                "{}: no experiment.json; pass folders written by actlab compare/exercise/run",
                dir.display()
            ))
        })?;
        match &spec {
            None => spec = Some(exp),
            Some(s) if s.variants != exp.variants => {
                return Err(ExperimentError::Invalid(format!(
                    "{} holds a different experiment from {}; merge only shards of one experiment",
                    dir.display(),
                    dirs[0].display()
                )))
            }
            Some(_) => {}
        }
        let exp = spec.as_ref().ok_or("merge needs at least one folder")?;
        for (path, r) in read_run_records(dir)? {
            check_belongs(exp, &path, &r)?;
            if let Some((other, old)) = records.get(&(r.variant_index, r.config.seed)) {
                if old.without_timings() != r.without_timings() {
                    return Err(ExperimentError::Invalid(format!(
                        "{} and {} are two different results for variant '{}' seed {}; keep one of the two folders out of the merge",
                        other.display(),
                        path.display(),
                        r.variant,
                        r.config.seed
                    )));
                }
            }
            records.insert((r.variant_index, r.config.seed), (path, r));
        }
    }
    let spec =
        spec.ok_or_else(|| ExperimentError::Invalid("merge needs at least one folder".into()))?;
    let mut records: Vec<RunRecord> = records.into_values().map(|(_, r)| r).collect();
    records.sort_by_key(|r| (r.variant_index, r.config.seed));
    Ok((spec, records))
}

/// A record must be a run of one of the experiment's variants, with its exact config.
fn check_belongs(exp: &Experiment, path: &Path, r: &RunRecord) -> Result<(), ExperimentError> {
    let fits = exp.variants.get(r.variant_index).is_some_and(|v| {
        v.name == r.variant
            && crate::config::TrainConfig {
                seed: r.config.seed,
                ..v.config.clone()
            } == r.config
    });
    if fits {
        return Ok(());
    }
    Err(ExperimentError::Invalid(format!(
        "{}: this run's configuration is not the one the experiment lists for variant '{}'; merge only folders of one experiment",
        path.display(),
        r.variant
    )))
}

/// Read an output folder: an experiment (experiment.json + runs/) or a single
/// `actlab train` run (record.json), as an experiment with its records.
pub fn load_dir(dir: &Path) -> Result<(Experiment, Vec<RunRecord>), ExperimentError> {
    if dir.join(crate::store::records::SPEC).exists() {
        return collect(&[dir.to_path_buf()]);
    }
    let path = dir.join(RECORD);
    if !path.exists() {
        return Err(ExperimentError::Invalid(format!(
            "{}: neither experiment.json nor record.json; pass a folder written by actlab train/compare/exercise/run",
            dir.display()
        )));
    }
    let r = read_record(&path)?;
    let exp = Experiment {
        name: r.label.clone(),
        variants: vec![Variant {
            name: r.variant.clone(),
            config: r.config.clone(),
            tune: None,
        }],
        seeds: vec![r.config.seed],
        report: ReportKind::Compare,
        tune: Vec::new(),
        tensorboard: None,
    };
    Ok((exp, vec![r]))
}
