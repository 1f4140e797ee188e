//! The command layer: each command end to end (data, checks, progress display,
//! files, Ctrl-C), over the library layers below. Errors become `anyhow` here.

pub mod bench;
pub mod demo;
pub mod experiment;
pub mod inference;
pub mod train;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::Result;

use crate::config::TrainConfig;
use crate::data::{self, Split};
use crate::store::records::RunRecord;

pub use experiment::experiment_command;
pub use train::{train_command, TrainIo};

/// Load the dataset a config names, checking the config (settings, then against the
/// data and the memory one run needs).
pub fn load_for(cfg: &TrainConfig, data_dir: Option<&Path>) -> Result<Split> {
    cfg.validate()?;
    let split = load_config_data(cfg, data_dir)?;
    check_against(cfg, &split, 1, None)?;
    Ok(split)
}

/// The data a config names: its `--data-file`, else the named dataset.
pub fn load_config_data(cfg: &TrainConfig, data_dir: Option<&Path>) -> Result<Split> {
    match &cfg.data_file {
        Some(path) => {
            let split = data::npz::load(path)?;
            require_test_images(&split)?;
            Ok(split)
        }
        None => load_data(cfg.dataset, data_dir),
    }
}

/// Load a dataset, warning when it is not the canonical release and refusing one
/// without test images.
pub fn load_data(name: data::DatasetName, data_dir: Option<&Path>) -> Result<Split> {
    let split = data::load(name, data_dir)?;
    warn_if_modified(&split);
    require_test_images(&split)?;
    Ok(split)
}

/// The checks that need the data: `cfg` against the images of `split` it uses, and
/// the memory `at_once` such runs need together; `variant` names them in messages.
pub fn check_against(
    cfg: &TrainConfig,
    split: &Split,
    at_once: usize,
    variant: Option<&str>,
) -> Result<()> {
    let n = cfg.limit_train.unwrap_or(usize::MAX).min(split.train.len());
    let what = variant.map_or("this run".to_string(), |v| format!("variant '{v}'"));
    cfg.validate_against(n).map_err(|e| match variant {
        Some(_) => anyhow::anyhow!("{what}: {e}"),
        None => anyhow::anyhow!(e),
    })?;
    check_memory(&cfg.with_shape_of(split), split.train.len(), at_once, &what)
}

/// The memory limit set with `--max-memory` (MB), if any.
static MAX_MEMORY_MB: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Set the memory runs may use, in MB, instead of what the machine has available.
pub fn set_memory_limit(mb: u64) {
    let _ = MAX_MEMORY_MB.set(mb);
}

/// A field of /proc/meminfo, in bytes.
fn meminfo(field: &str) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Memory available for new work, in bytes: `--max-memory` (never more than the
/// machine has installed), else the kernel's MemAvailable; `None` where unknown.
fn memory_available() -> Option<u64> {
    let total = meminfo("MemTotal:");
    match MAX_MEMORY_MB.get() {
        Some(mb) => {
            let want = mb.saturating_mul(1 << 20);
            Some(total.map_or(want, |t| want.min(t)))
        }
        None => meminfo("MemAvailable:"),
    }
}

/// "2.4 GB" or "310 MB".
fn bytes_text(b: u64) -> String {
    if b >= 1_000_000_000 {
        format!("{:.1} GB", b as f64 / 1e9)
    } else {
        format!("{:.0} MB", b as f64 / 1e6)
    }
}

/// Refuse `at_once` runs of `cfg` together that would need more memory than there
/// is, before anything is allocated.
pub fn check_memory(cfg: &TrainConfig, n_train: usize, at_once: usize, what: &str) -> Result<()> {
    let need = cfg
        .memory_estimate(n_train)
        .saturating_mul(at_once.max(1) as u64);
    let Some(have) = memory_available() else {
        return Ok(());
    };
    if need > have {
        anyhow::bail!(
            "{what} needs about {} of memory ({at_once} run(s) at once, layers {:?}) but {} is available; use smaller --hidden layers, fewer --threads or fewer --jobs (or set the limit with --max-memory MB, at most the installed memory)",
            bytes_text(need),
            cfg.hidden,
            bytes_text(have)
        );
    }
    Ok(())
}

/// Warn when the files are not the canonical release (results are then not comparable).
pub fn warn_if_modified(split: &Split) {
    if !split.is_canonical() && split.name != data::DatasetName::File {
        eprintln!(
            "warning: {} files in {} differ from the canonical {} release (checksums recorded in the run record)",
            split.name,
            split.dir.display(),
            split.name
        );
    }
}

/// Refuse a dataset without test images: its accuracy and loss would be made up.
pub fn require_test_images(split: &Split) -> Result<()> {
    if split.test.is_empty() {
        anyhow::bail!(
            "{}: the test set has 0 images, so nothing can be measured; point --data-dir at files that hold some",
            split.dir.display()
        );
    }
    Ok(())
}

/// "1 run", "2 runs": a count with its noun, plural when it is not 1.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// UTC timestamp like 20261128-144012, for default output folders.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Raised by Ctrl-C: the command stops cleanly and says how to continue.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// Set by Ctrl-C (SIGINT) or SIGTERM (what schedulers send before they stop a job);
/// training loops stop at the next step.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Make Ctrl-C and SIGTERM raise [`STOP`] instead of killing the process (once per
/// process).
pub fn install_ctrlc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| STOP.store(true, std::sync::atomic::Ordering::SeqCst));
    });
}

/// The command line as typed, for reports.
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut parts = vec!["actlab".to_string()];
    parts.extend(args.into_iter().skip(1).map(|a| {
        if a.contains(' ') || a.is_empty() {
            format!("'{a}'")
        } else {
            a
        }
    }));
    parts.join(" ")
}

/// Load the dataset for a report's image grids, or explain why not (grids are skipped).
pub fn data_for_report(records: &[RunRecord], data_dir: Option<&Path>) -> Option<Split> {
    let cfg = &records.first()?.config;
    if cfg.shape() != data::DatasetName::Mnist.shape() {
        eprintln!("note: no misclassified-image grids (drawn for 28x28 images only)");
        return None;
    }
    match load_config_data(cfg, data_dir) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("note: no misclassified-image grids ({e})");
            None
        }
    }
}
