//! Run records (`record.json`, `runs/<variant>/seed-<n>.json`) and the experiment spec
//! (`experiment.json`) of an output folder.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{read_json, write_json, StoreError};
use crate::config::TrainConfig;
use crate::train::RunRecord;

/// File name of a single run's record (`actlab train`).
pub const RECORD: &str = "record.json";
/// File name of an experiment's spec.
pub const SPEC: &str = "experiment.json";
/// Folder of an experiment's run records.
pub const RUNS: &str = "runs";

/// Write a record as pretty JSON, atomically.
pub fn write_record(path: &Path, record: &RunRecord) -> Result<(), StoreError> {
    write_json(path, record)
}

/// Read one run record.
pub fn read_record(path: &Path) -> Result<RunRecord, StoreError> {
    read_json(path, "a run record")
}

/// The record in `path` if it holds a finished run of exactly `config`.
pub fn reusable(path: &Path, config: &TrainConfig) -> Option<RunRecord> {
    let r = read_record(path).ok()?;
    (r.complete && r.config == *config).then_some(r)
}

/// Write an experiment's spec into its folder.
pub fn write_spec<T: Serialize>(dir: &Path, spec: &T) -> Result<(), StoreError> {
    write_json(&dir.join(SPEC), spec)
}

/// The spec in `dir`, or `None` if there is none.
pub fn read_spec<T: DeserializeOwned>(dir: &Path) -> Result<Option<T>, StoreError> {
    let path = dir.join(SPEC);
    if !path.exists() {
        return Ok(None);
    }
    read_json(&path, "an actlab experiment file").map(Some)
}

/// Every run record under `dir/runs/<variant>/seed-<n>.json` with its path, in no
/// particular order.
pub fn read_run_records(dir: &Path) -> Result<Vec<(std::path::PathBuf, RunRecord)>, StoreError> {
    let mut out = Vec::new();
    let Ok(variants) = std::fs::read_dir(dir.join(RUNS)) else {
        return Ok(out);
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
            if name.starts_with("seed-") && name.ends_with(".json") {
                let r = read_record(&p)?;
                out.push((p, r));
            }
        }
    }
    Ok(out)
}
