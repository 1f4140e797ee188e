//! Files of runs and experiments on disk, on top of [`crate::atomic`]: output folders,
//! run records, experiment specs. Every write is atomic and every failure names the
//! file; what the files mean is decided by the layers above.

pub mod folder;
pub mod paths;
pub mod records;
pub mod tensorboard;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::atomic::write_atomic;

/// A file of a run or experiment that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Writing failed (full disk, no permission, ...).
    #[error("{path}: cannot write")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A refusal with its fix, in one line (a folder in use, results in the way, ...).
    #[error("{0}")]
    Refused(String),
    /// A folder could not be created.
    #[error("{path}: cannot create")]
    Create {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("{path}: cannot read")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what it should be.
    #[error("{path}: not {what}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it should have been ("a run record", ...).
        what: &'static str,
        /// Why it is not.
        #[source]
        source: serde_json::Error,
    },
    /// An output folder that cannot be used.
    #[error("{path}: {why}; pass --out DIR somewhere writable")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What went wrong.
        why: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Write `bytes` to `path` atomically, naming the file if that fails.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomic(path, bytes).map_err(|source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Create `dir` and its parents, naming it if that fails.
pub fn create_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Create {
        path: dir.to_path_buf(),
        source,
    })
}

/// Write `value` as pretty JSON to `path`, atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), StoreError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| StoreError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    write_file(path, text.as_bytes())
}

/// Read `path` as JSON of `what` ("a run record", ...).
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|source| StoreError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| StoreError::Parse {
        path: path.to_path_buf(),
        what,
        source,
    })
}
