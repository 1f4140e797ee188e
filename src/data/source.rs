//! Where a dataset's files come from: `--data-dir`, `ACTLAB_DATA_DIR`, the cache, the
//! copy bundled in the source tree, a system folder, or a verified download into the
//! cache (first match wins).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{hex, idx, DataError, DatasetName, FILES};
use crate::atomic::write_atomic;

/// Environment variable naming a data folder (used when `--data-dir` is not given).
pub const DATA_DIR_ENV: &str = "ACTLAB_DATA_DIR";
/// Environment variable overriding the download mirrors (comma-separated base URLs).
pub const MIRRORS_ENV: &str = "ACTLAB_MIRRORS";

/// Environment variable that hides the data bundled in the source tree.
pub const NO_BUNDLED_ENV: &str = "ACTLAB_NO_BUNDLED_DATA";

/// Largest download accepted for one file.
const MAX_DOWNLOAD: u64 = 128 * 1024 * 1024;

/// The public mirrors tried in turn for a dataset's `<stem>.gz` files.
pub fn default_mirrors(name: DatasetName) -> Vec<String> {
    let m: &[&str] = match name {
        DatasetName::Mnist => &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ],
        DatasetName::FashionMnist => &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ],
        DatasetName::File => &[],
    };
    m.iter().map(|s| s.to_string()).collect()
}

/// Folders outside the cache where a system package installs the dataset.
fn system_dirs(name: DatasetName) -> Vec<PathBuf> {
    match name {
        DatasetName::Mnist => vec![PathBuf::from("/usr/share/datasets/mnist")],
        DatasetName::FashionMnist => vec![PathBuf::from("/usr/share/datasets/fashion-mnist")],
        DatasetName::File => vec![],
    }
}

/// The repository's `data/<dataset>` folder, fixed at build time so that `cargo run`
/// finds the bundled MNIST from any working folder (absent once the clone is deleted).
/// `ACTLAB_NO_BUNDLED_DATA=1` hides it, to exercise the cache and download paths.
pub fn bundled_dir(name: DatasetName) -> Option<PathBuf> {
    if std::env::var_os(NO_BUNDLED_ENV).is_some_and(|v| !v.is_empty()) {
        return None;
    }
    Some(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data")
            .join(name.as_str()),
    )
}

/// `$XDG_CACHE_HOME/actlab/<dataset>` or `~/.cache/actlab/<dataset>`.
pub fn cache_dir(name: DatasetName) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("actlab").join(name.as_str()))
}

fn candidates(dir: &Path, stem: &str) -> [PathBuf; 4] {
    let dotted = stem.replacen("-idx", ".idx", 1);
    [
        dir.join(format!("{stem}.gz")),
        dir.join(stem),
        dir.join(format!("{dotted}.gz")),
        dir.join(dotted),
    ]
}

/// The file for `stem` in `dir` (`stem.gz`, `stem`, or the `.idx` spelling).
pub fn file_in(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    candidates(dir, stem)
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| {
            DataError::NotFound(format!(
                "{}: missing {stem}.gz (or {stem}); put the four IDX files there or pass --data-dir DIR",
                dir.display()
            ))
        })
}

fn has_all(dir: &Path) -> bool {
    FILES.iter().all(|s| file_in(dir, s).is_ok())
}

/// A folder given by the user: the files themselves, or a `<dataset>` subfolder.
fn user_dir(dir: &Path, name: DatasetName, how: &str) -> Result<PathBuf, DataError> {
    if !dir.is_dir() {
        return Err(DataError::NotFound(format!(
            "{how} {}: no such folder; point it at the folder holding the four {name} IDX files",
            dir.display()
        )));
    }
    let sub = dir.join(name.as_str());
    if !has_all(dir) && sub.is_dir() && has_all(&sub) {
        return Ok(sub);
    }
    // Report the first missing file in the folder the user named.
    for stem in FILES {
        file_in(dir, stem).map_err(|_| {
            DataError::NotFound(format!(
                "{how} {}: missing {stem}.gz (or {stem}, or a {name}/ subfolder with the four files); \
                 point it at the folder holding the four {name} IDX files",
                dir.display()
            ))
        })?;
    }
    Ok(dir.to_path_buf())
}

/// Find the folder holding `name`'s four files, downloading into the cache if needed.
pub fn locate(name: DatasetName, data_dir: Option<&Path>) -> Result<PathBuf, DataError> {
    if let Some(d) = data_dir {
        return user_dir(d, name, "--data-dir");
    }
    if let Some(d) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        return user_dir(Path::new(&d), name, DATA_DIR_ENV);
    }
    let cache = cache_dir(name);
    if let Some(c) = cache.as_ref().filter(|c| has_all(c)) {
        return Ok(c.clone());
    }
    if let Some(b) = bundled_dir(name).filter(|b| has_all(b)) {
        return Ok(b);
    }
    if let Some(s) = system_dirs(name).into_iter().find(|d| has_all(d)) {
        return Ok(s);
    }
    let cache = cache.ok_or_else(|| {
        DataError::NotFound(
            "no cache folder (neither XDG_CACHE_HOME nor HOME is set); pass --data-dir DIR".into(),
        )
    })?;
    let mirrors = match std::env::var(MIRRORS_ENV) {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().to_string()).collect(),
        _ => default_mirrors(name),
    };
    download(name, &cache, &mirrors)?;
    Ok(cache)
}

/// Download each missing file from the first mirror that serves a copy whose
/// decompressed SHA-256 matches, then rename it into `dir`; bad copies leave nothing.
pub fn download(name: DatasetName, dir: &Path, mirrors: &[String]) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        DataError::Download(format!(
            "{}: cannot create the cache folder ({e}); pass --data-dir DIR",
            dir.display()
        ))
    })?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    for (stem, want) in FILES.iter().zip(name.checksums()) {
        if file_in(dir, stem).is_ok() {
            continue;
        }
        let mut tried = Vec::new();
        let mut done = false;
        for base in mirrors {
            let url = format!("{}/{stem}.gz", base.trim_end_matches('/'));
            eprintln!("downloading {url}");
            match fetch_verified(&agent, &url, want) {
                Ok(bytes) => {
                    write_atomic(&dir.join(format!("{stem}.gz")), &bytes).map_err(|e| {
                        DataError::Download(format!("{}: cannot write ({e})", dir.display()))
                    })?;
                    done = true;
                    break;
                }
                Err(e) => tried.push(format!("{url} ({e})")),
            }
        }
        if !done {
            return Err(DataError::Download(format!(
                "could not download {name} {stem}.gz; tried {}; without internet, pass --data-dir DIR \
                 (or set {DATA_DIR_ENV}) to a folder holding the four IDX files",
                tried.join(", ")
            )));
        }
    }
    Ok(())
}

fn fetch_verified(agent: &ureq::Agent, url: &str, want: &str) -> Result<Vec<u8>, String> {
    let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(MAX_DOWNLOAD)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    let plain = idx::maybe_gunzip(bytes.clone()).map_err(|e| e.to_string())?;
    let got = hex(&Sha256::digest(&plain));
    if got != want {
        return Err(format!("checksum mismatch: got {got}, expected {want}"));
    }
    Ok(bytes)
}
