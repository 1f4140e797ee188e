//! Output folders: created and proven writable before any work starts, held by one
//! run at a time, and never emptied of earlier results unless the user asks.

use std::path::{Path, PathBuf};

use super::StoreError;

/// Name of the lock file inside an output folder.
const LOCK: &str = ".actlab.lock";

/// What to do when the folder already holds results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse: results are never replaced silently.
    Refuse,
    /// Keep them: the command continues the same run or experiment.
    Resume,
    /// Remove the folder's contents first (`--overwrite`).
    Overwrite,
}

/// An output folder this process holds: the lock lasts as long as the value.
#[derive(Debug)]
pub struct OutDir {
    /// The folder.
    pub path: PathBuf,
    _lock: std::fs::File,
}

/// Create (if needed), prove writable and lock `dir`; if it holds any of `results`
/// (file or folder names), refuse, keep or clear them as `existing` says.
pub fn claim(dir: &Path, existing: Existing, results: &[&str]) -> Result<OutDir, StoreError> {
    super::paths::output_dir(dir, "--out")?;
    prepare_out_dir(dir)?;
    let lock = lock(dir)?;
    if existing != Existing::Overwrite {
        other_kind(dir, results)?;
    }
    let found: Vec<&str> = results
        .iter()
        .copied()
        .filter(|r| dir.join(r).exists())
        .collect();
    if !found.is_empty() {
        match existing {
            Existing::Resume => {}
            Existing::Refuse => {
                return Err(StoreError::Refused(format!(
                    "{}: the folder already holds results ({}); continue them with --resume, replace them with --overwrite, or choose another --out",
                    dir.display(),
                    found.join(", ")
                )))
            }
            Existing::Overwrite => clear(dir)?,
        }
    }
    Ok(OutDir {
        path: dir.to_path_buf(),
        _lock: lock,
    })
}

/// Refuse a folder holding the other kind of results: a single run's record in an
/// experiment's folder, or an experiment's spec in a single run's (resuming or
/// adding to it would mix the two).
fn other_kind(dir: &Path, results: &[&str]) -> Result<(), StoreError> {
    use super::records::{RECORD, SPEC};
    let (theirs, what) = if results.contains(&SPEC) {
        (RECORD, "a single run of actlab train")
    } else if results.contains(&RECORD) {
        (SPEC, "an experiment (compare, exercise or run)")
    } else {
        return Ok(());
    };
    if dir.join(theirs).exists() {
        return Err(StoreError::Refused(format!(
            "{}: the folder holds {what} ({theirs}); choose another --out (or replace it with --overwrite)",
            dir.display()
        )));
    }
    Ok(())
}

/// Take the folder's lock, or say which folder is in use.
fn lock(dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = dir.join(LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::Write {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Refused(format!(
            "{}: another actlab run is writing into this folder; wait for it to finish or choose another --out",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Write { path, source }),
    }
}

/// Remove everything in `dir` but its lock.
fn clear(dir: &Path) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|source| StoreError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        if e.file_name() == LOCK {
            continue;
        }
        let p = e.path();
        let gone = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        gone.map_err(|source| StoreError::Write { path: p, source })?;
    }
    Ok(())
}

/// A new folder `parent/name`, or `parent/name-2`, `-3`, ... if that exists: two
/// runs started in the same second never share a default folder.
pub fn fresh_dir(parent: &Path, name: &str) -> Result<PathBuf, StoreError> {
    super::create_dir(parent)?;
    for k in 1u32..=10_000 {
        let p = if k == 1 {
            parent.join(name)
        } else {
            parent.join(format!("{name}-{k}"))
        };
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(StoreError::Create { path: p, source }),
        }
    }
    Err(StoreError::Refused(format!(
        "{}: 10,000 folders named {name}-N already; pass --out DIR",
        parent.display()
    )))
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
pub fn prepare_out_dir(dir: &Path) -> Result<(), StoreError> {
    let unusable = |why: &'static str| {
        move |source: std::io::Error| StoreError::Folder {
            path: dir.to_path_buf(),
            why,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(unusable("cannot create the output folder"))?;
    let probe = dir.join(".actlab-write-test");
    crate::atomic::write_atomic(&probe, &[0u8; 4096]).map_err(unusable(
        "cannot write into the output folder (full disk or no permission)",
    ))?;
    let _ = std::fs::remove_file(probe);
    remove_stale_temps(dir);
    Ok(())
}
