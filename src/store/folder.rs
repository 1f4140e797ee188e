//! Output folders: created and proven writable before any work starts.

use std::path::Path;

use super::StoreError;

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
