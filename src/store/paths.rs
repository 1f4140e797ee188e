//! Output paths vetted before any work starts: a file to write must be a regular file
//! (or not exist yet) in an existing folder, a folder must be a folder, and neither
//! may be one of the command's inputs. Devices, FIFOs and sockets are never replaced.

use std::path::{Path, PathBuf};

use super::StoreError;

/// What kind of thing is at `path`, for a refusal ("a character device", ...); `None`
/// for a regular file or a folder (following symbolic links).
fn special_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() || t.is_dir() {
        None
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

fn refused(flag: &str, path: &Path, why: &str, fix: &str) -> StoreError {
    StoreError::Refused(format!("{flag} {}: {why}; {fix}", path.display()))
}

/// `path` may be written as a file (its folder is created if needed): absent or a
/// regular file. `flag` names the option in the refusal ("--json", "--save", ...).
pub fn file_target(path: &Path, flag: &str) -> Result<(), StoreError> {
    let fix = "name a regular file to write";
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Err(refused(flag, path, "ends in / (a folder)", fix));
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_dir() {
            return Err(refused(flag, path, "is a folder", fix));
        }
        if let Some(kind) = special_kind(&meta) {
            return Err(refused(flag, path, &format!("is {kind}"), fix));
        }
    }
    Ok(())
}

/// `path` may be written as a file: absent or a regular file, in an existing folder.
pub fn output_file(path: &Path, flag: &str) -> Result<(), StoreError> {
    file_target(path, flag)?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent {
        if !dir.is_dir() {
            return Err(refused(
                flag,
                path,
                &format!("the folder {} does not exist", dir.display()),
                "create it first or name a file in an existing folder",
            ));
        }
    }
    Ok(())
}

/// `path` may be used as an output folder: absent (it will be created) or a folder.
pub fn output_dir(path: &Path, flag: &str) -> Result<(), StoreError> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => {
            let kind = special_kind(&meta).unwrap_or("a file");
            Err(refused(
                flag,
                path,
                &format!("is {kind}, not a folder"),
                "name a folder",
            ))
        }
        _ => Ok(()),
    }
}

/// Whether `a` and `b` are the same file (same device and inode), however named.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

/// Refuse writing `out` when it is one of `inputs` (read by the same command).
pub fn not_an_input(out: &Path, inputs: &[PathBuf], flag: &str) -> Result<(), StoreError> {
    match inputs.iter().find(|i| same_file(out, i)) {
        Some(i) => Err(refused(
            flag,
            out,
            &format!("it would overwrite the input {}", i.display()),
            "write somewhere else",
        )),
        None => Ok(()),
    }
}

/// Refuse replacing an existing `path` unless the user asked with `--overwrite`.
pub fn not_existing(path: &Path, flag: &str, overwrite: bool) -> Result<(), StoreError> {
    if !overwrite && std::fs::symlink_metadata(path).is_ok() {
        return Err(refused(
            flag,
            path,
            "the file already exists",
            "choose another name, or pass --overwrite to replace it",
        ));
    }
    Ok(())
}

/// The model path a resumed run's checkpoint names, if it may be trusted: only a
/// path inside the run's own folder (a checkpoint is a file anyone can edit, and
/// resuming may write only there or where the user says now). Otherwise the note
/// saying how to save the model.
pub fn stored_save(save: Option<PathBuf>, folder: &Path) -> Result<Option<PathBuf>, String> {
    let Some(save) = save else {
        return Ok(None);
    };
    let inside = save.starts_with(folder)
        && !save
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if inside {
        return Ok(Some(save));
    }
    Err(format!(
        "note: the run was started with --save {}, outside its folder; a resumed run writes there only when told again: add --save {} to save the model",
        save.display(),
        save.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_folders_and_inputs_are_refused() {
        let dev = Path::new("/dev/null");
        let e = output_file(dev, "--json").unwrap_err().to_string();
        assert!(e.contains("character device"), "{e}");
        let e = output_dir(dev, "--out").unwrap_err().to_string();
        assert!(e.contains("not a folder"), "{e}");
        let tmp = std::env::temp_dir();
        assert!(output_file(&tmp, "--json").is_err());
        assert!(output_dir(&tmp, "--out").is_ok());
        let missing = tmp.join("actlab-no-such-folder-x").join("f.json");
        assert!(output_file(&missing, "--json")
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        let file = tmp.join(format!("actlab-paths-{}.txt", std::process::id()));
        std::fs::write(&file, "x").unwrap();
        assert!(output_file(&file, "--json").is_ok());
        let dotted = tmp.join(".").join(file.file_name().unwrap());
        assert!(not_an_input(&dotted, std::slice::from_ref(&file), "--out").is_err());
        assert!(not_existing(&file, "--save", false).is_err());
        assert!(not_existing(&file, "--save", true).is_ok());
        std::fs::remove_file(&file).unwrap();
    }
}
