//! A cache of decoded datasets: raw u8 arrays that load in milliseconds instead of
//! gunzip + SHA-256 each time. Only canonical datasets are cached, keyed by each source
//! file's path, size and a fast checksum of its bytes, so a changed file is never
//! served stale.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{hex, Dataset, DatasetName, Label, Split, PIXELS};
use crate::atomic::write_atomic;

/// Set to any value to neither read nor write the decoded cache.
pub const DISABLE_ENV: &str = "ACTLAB_NO_DECODED_CACHE";
const MAGIC: &[u8; 8] = b"ACTLABD2";

#[derive(Serialize, Deserialize, PartialEq)]
struct Header {
    key: String,
    dataset: DatasetName,
    sha256: [String; 4],
    n_train: usize,
    n_test: usize,
    /// CRC-32 of the four arrays in file order: a copy damaged in place is caught.
    crc32: u32,
}

/// CRC-32 of the decoded arrays, in the order they are stored.
fn crc(train: &Dataset, test: &Dataset) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for d in [train, test] {
        h.update(d.images());
        h.update(&label_bytes(d));
    }
    h.finalize()
}

/// The labels as stored in the cache: one byte each (only MNIST-shaped splits with
/// labels 0..9 are cached, so the file format is the one written before labels widened).
fn label_bytes(d: &Dataset) -> Vec<u8> {
    d.labels.iter().map(|&l| l as u8).collect()
}

/// Identity of the four source files: path, size and two fast checksums (CRC-32C and
/// CRC-32) of each one's bytes. The content, not the modification time, decides: a
/// file changed in place with its size and time kept (`cp -p`, `rsync -a`) is never
/// served from the cache.
pub fn source_key(paths: &[PathBuf]) -> Option<String> {
    let mut h = Sha256::new();
    for p in paths {
        let canon = std::fs::canonicalize(p).ok()?;
        let (len, c, k) = content_sums(&canon)?;
        h.update(canon.to_string_lossy().as_bytes());
        h.update(len.to_le_bytes());
        h.update(c.to_le_bytes());
        h.update(k.to_le_bytes());
    }
    Some(hex(&h.finalize()))
}

/// A file's length, CRC-32C and CRC-32, read in blocks (a few ms for MNIST's 11 MB).
fn content_sums(path: &Path) -> Option<(u64, u32, u32)> {
    use std::io::Read;
    // Only regular files of a sane size: a FIFO or device is refused by the loader,
    // and must not be read here first.
    let mut f = std::fs::File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > 1 << 30 {
        return None;
    }
    let mut buf = vec![0u8; 1 << 20];
    let (mut len, mut c, mut k) = (0u64, 0u32, crc32fast::Hasher::new());
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            return Some((len, c, k.finalize()));
        }
        len += n as u64;
        c = crc32c::crc32c_append(c, &buf[..n]);
        k.update(&buf[..n]);
    }
}

fn cache_file(name: DatasetName, key: &str) -> Option<PathBuf> {
    if std::env::var_os(DISABLE_ENV).is_some() {
        return None;
    }
    let dir = super::source::cache_dir(name)?;
    Some(
        dir.parent()?
            .join("decoded")
            .join(format!("{name}-{}.bin", &key[..16])),
    )
}

/// The cached split for these sources, if present and matching.
pub fn read(name: DatasetName, dir: &Path, key: &str) -> Option<Split> {
    use std::io::Read;
    let path = cache_file(name, key)?;
    // Read section by section straight into the final vectors: no second copy in memory.
    let mut f = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    let mut head = [0u8; 12];
    f.read_exact(&mut head).ok()?;
    if &head[..8] != MAGIC {
        return None;
    }
    let hlen = u32::from_le_bytes(head[8..12].try_into().ok()?) as usize;
    if hlen > 1 << 20 {
        return None;
    }
    let mut hbytes = vec![0u8; hlen];
    f.read_exact(&mut hbytes).ok()?;
    let header: Header = serde_json::from_slice(&hbytes).ok()?;
    if header.key != key
        || header.dataset != name
        || header.n_train > 1 << 24
        || header.n_test > 1 << 24
    {
        return None;
    }
    let mut take = |n: usize| -> Option<Vec<u8>> {
        let mut v = vec![0u8; n];
        f.read_exact(&mut v).ok()?;
        Some(v)
    };
    let widen = |v: Vec<u8>| v.into_iter().map(Label::from).collect();
    let train = Dataset::new(take(header.n_train * PIXELS)?, widen(take(header.n_train)?));
    let test = Dataset::new(take(header.n_test * PIXELS)?, widen(take(header.n_test)?));
    if crc(&train, &test) != header.crc32 || train.labels.iter().chain(&test.labels).any(|&l| l > 9)
    {
        eprintln!("warning: the decoded-data cache for {name} is damaged; rebuilding it from the source files");
        return None;
    }
    Some(Split {
        name,
        train,
        test,
        val: None,
        dir: dir.to_path_buf(),
        sha256: header.sha256.to_vec(),
        shape: name.shape(),
    })
}

/// Store a canonical split (best effort: a failure only means no speed-up next time).
pub fn write(split: &Split, key: &str) {
    if !split.is_canonical() {
        return;
    }
    let Some(path) = cache_file(split.name, key) else {
        return;
    };
    let Ok(sha256) = <[String; 4]>::try_from(split.sha256.clone()) else {
        return;
    };
    let header = Header {
        key: key.to_string(),
        dataset: split.name,
        sha256,
        n_train: split.train.len(),
        n_test: split.test.len(),
        crc32: crc(&split.train, &split.test),
    };
    let Ok(h) = serde_json::to_vec(&header) else {
        return;
    };
    let mut out = Vec::with_capacity(
        12 + h.len() + split.train.images().len() + split.test.images().len() + 70_000,
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    out.extend_from_slice(&h);
    for d in [&split.train, &split.test] {
        out.extend_from_slice(d.images());
        out.extend_from_slice(&label_bytes(d));
    }
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = write_atomic(&path, &out);
}
