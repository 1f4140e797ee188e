//! Experiments read back from output folders: shards merged into one, or any folder
//! written by `train`, `compare`, `exercise` or `run` for a report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Experiment, ExperimentError, ReportKind, Variant};
use crate::store::records::{read_record, read_run_records, read_spec, RECORD};
use crate::train::RunRecord;

/// Every run record under `dirs` and the experiment they belong to; all folders must
/// hold shards of the same experiment.
pub fn collect(dirs: &[PathBuf]) -> Result<(Experiment, Vec<RunRecord>), ExperimentError> {
    let mut spec: Option<Experiment> = None;
    let mut records: HashMap<(usize, u64), RunRecord> = HashMap::new();
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
        for r in read_run_records(dir)? {
            records.insert((r.variant_index, r.config.seed), r);
        }
    }
    let spec =
        spec.ok_or_else(|| ExperimentError::Invalid("merge needs at least one folder".into()))?;
    let mut records: Vec<RunRecord> = records.into_values().collect();
    records.sort_by_key(|r| (r.variant_index, r.config.seed));
    Ok((spec, records))
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
        }],
        seeds: vec![r.config.seed],
        report: ReportKind::Compare,
    };
    Ok((exp, vec![r]))
}
