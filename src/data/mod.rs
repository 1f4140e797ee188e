//! Datasets: IDX parsing, finding or downloading the files, and batches of u8 -> f32.

pub mod batch;
pub mod decoded;
pub mod holdout;
pub mod idx;
pub mod nonzero;
pub mod npz;
pub mod source;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use idx::{PIXELS, SIDE};

/// Any problem with a dataset, always naming the file and the fix where one is known.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A damaged IDX file.
    #[error("{path}: {problem}")]
    Idx {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: idx::IdxError,
    },
    /// A file that cannot be read.
    #[error("{path}: cannot read ({err}){hint}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
        /// The fix, when one is known ("; ...").
        hint: String,
    },
    /// Images and labels of different counts.
    #[error("{images} and {labels} disagree: {n_images} images but {n_labels} labels")]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// The labels file.
        labels: PathBuf,
        /// Images in it.
        n_images: usize,
        /// Labels in it.
        n_labels: usize,
    },
    /// No folder holds the dataset (the message says where to put it).
    #[error("{0}")]
    NotFound(String),
    /// A download failed everywhere (the message lists the mirrors tried).
    #[error("{0}")]
    Download(String),
}

/// The datasets actlab knows, with their canonical files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// Handwritten digits (LeCun et al.).
    Mnist,
    /// Zalando's clothing images, same format as MNIST.
    FashionMnist,
    /// The user's own data, from `--data-file FILE.npz` (its shape is in the config).
    #[value(skip)]
    File,
}

/// What a dataset's rows are: inputs per row, the image shape when rows are images,
/// and the number of classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    /// Inputs per row (the first layer's width).
    pub width: usize,
    /// Height and width when each row is an image (`width` = H * W).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<[usize; 2]>,
    /// Classes: labels are 0..classes.
    pub classes: usize,
    /// Inputs are bytes read as byte / 255 (images); false: float features as they are.
    pub bytes: bool,
}

/// One row's class number, 0..K-1 (two bytes: K may reach `MAX_CLASSES`).
pub type Label = u16;

/// The most classes a dataset may have (the promise of `--data-file`).
pub const MAX_CLASSES: usize = 1000;

impl DatasetName {
    /// The name as used on the command line, in folders and in records.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::File => "file",
        }
    }

    /// The shape of a named dataset's rows (a file's shape comes from the file).
    pub fn shape(self) -> Shape {
        Shape {
            width: PIXELS,
            image: Some([SIDE, SIDE]),
            classes: 10,
            bytes: true,
        }
    }

    /// Names of `classes` classes, for tables and plots: the named datasets' own
    /// (as many as they have), numbers for the rest.
    pub fn class_names(self, classes: usize) -> Vec<String> {
        let own: &[&str] = match self {
            DatasetName::Mnist | DatasetName::File => &[],
            DatasetName::FashionMnist => &[
                "T-shirt",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        };
        (0..classes)
            .map(|c| own.get(c).map_or_else(|| c.to_string(), |s| s.to_string()))
            .collect()
    }

    /// SHA-256 of each *decompressed* file, in the order of [`FILES`] (none for a file
    /// of the user's).
    pub fn checksums(self) -> &'static [&'static str] {
        match self {
            DatasetName::File => &[],
            DatasetName::Mnist => &[
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ],
            DatasetName::FashionMnist => &[
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ],
        }
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four standard file stems: train images, train labels, test images, test labels.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// A dataset's inputs: image bytes (read through a 256-entry value table) or
/// feature rows used as they are.
#[derive(Debug, Clone)]
pub enum Rows {
    /// `len * width` bytes, row after row.
    Bytes(Vec<u8>),
    /// `len * width` floats, row after row.
    Floats(Vec<f32>),
}

impl Default for Rows {
    fn default() -> Self {
        Rows::Bytes(Vec::new())
    }
}

/// Rows of inputs (image bytes or float features) with their labels.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// The inputs (private: the non-zero lists are built from them once).
    rows: Rows,
    /// Inputs per row.
    width: usize,
    /// One label 0..K-1 per row.
    pub labels: Vec<Label>,
    /// Each image's non-zero pixels, listed at first use (None: too dense to pay).
    nonzero: std::sync::OnceLock<Option<nonzero::NonZero>>,
}

impl Dataset {
    /// MNIST-shaped images (`labels.len() * PIXELS` bytes, row-major) with their labels.
    pub fn new(images: Vec<u8>, labels: Vec<Label>) -> Dataset {
        Dataset::from_rows(Rows::Bytes(images), PIXELS, labels)
    }

    /// Rows of `width` inputs each with their labels.
    pub fn from_rows(rows: Rows, width: usize, labels: Vec<Label>) -> Dataset {
        debug_assert_eq!(
            match &rows {
                Rows::Bytes(b) => b.len(),
                Rows::Floats(f) => f.len(),
            },
            labels.len() * width
        );
        Dataset {
            rows,
            width,
            labels,
            nonzero: std::sync::OnceLock::new(),
        }
    }

    /// Inputs per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The inputs.
    pub fn rows(&self) -> &Rows {
        &self.rows
    }

    /// All pixels, image after image (empty for float features).
    pub fn images(&self) -> &[u8] {
        match &self.rows {
            Rows::Bytes(b) => b,
            Rows::Floats(_) => &[],
        }
    }

    /// Each image's non-zero pixels, listed on the first call (shared by every run
    /// reading this dataset), or None when more than `max_share` of the pixels are
    /// non-zero (or the rows are float features): every caller passes the same
    /// share, the first call decides.
    pub fn nonzero(&self, max_share: f32) -> Option<&nonzero::NonZero> {
        let Rows::Bytes(b) = &self.rows else {
            return None;
        };
        self.nonzero
            .get_or_init(|| nonzero::NonZero::build(b, self.width, max_share))
            .as_ref()
    }

    /// A copy of the first `n` rows (all of them for `None`).
    pub fn first(&self, n: Option<usize>) -> Dataset {
        let n = n.unwrap_or(self.len()).min(self.len());
        let end = n * self.width;
        let rows = match &self.rows {
            Rows::Bytes(b) => Rows::Bytes(b[..end].to_vec()),
            Rows::Floats(f) => Rows::Floats(f[..end].to_vec()),
        };
        Dataset::from_rows(rows, self.width, self.labels[..n].to_vec())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i` (empty for float features).
    pub fn image(&self, i: usize) -> &[u8] {
        match &self.rows {
            Rows::Bytes(b) => &b[i * self.width..(i + 1) * self.width],
            Rows::Floats(_) => &[],
        }
    }

    /// The rows at `keep` (ascending indices) and the rest, in their order.
    pub fn partition(&self, keep: &[usize]) -> (Dataset, Dataset) {
        let mut chosen = vec![false; self.len()];
        keep.iter().for_each(|&i| chosen[i] = true);
        let pick = |want: bool| {
            let at: Vec<usize> = (0..self.len()).filter(|&i| chosen[i] == want).collect();
            let w = self.width;
            let rows = match &self.rows {
                Rows::Bytes(b) => {
                    Rows::Bytes(at.iter().flat_map(|&i| &b[i * w..][..w]).copied().collect())
                }
                Rows::Floats(f) => {
                    Rows::Floats(at.iter().flat_map(|&i| &f[i * w..][..w]).copied().collect())
                }
            };
            let labels = at.iter().map(|&i| self.labels[i]).collect();
            Dataset::from_rows(rows, w, labels)
        };
        (pick(true), pick(false))
    }

    /// The first `n` rows (all of them if `n` is larger).
    pub fn truncated(mut self, n: usize) -> Dataset {
        let n = n.min(self.len());
        match &mut self.rows {
            Rows::Bytes(b) => b.truncate(n * self.width),
            Rows::Floats(f) => f.truncate(n * self.width),
        }
        self.labels.truncate(n);
        self.nonzero = std::sync::OnceLock::new();
        self
    }
}

/// Train and test sets of one dataset, with where they came from.
#[derive(Debug, Clone)]
pub struct Split {
    /// Which dataset.
    pub name: DatasetName,
    /// Training images (60,000 for the full sets).
    pub train: Dataset,
    /// Test images (10,000); also the validation set when none is held out.
    pub test: Dataset,
    /// Training images held out to choose settings on (`--val-split`); never trained on.
    pub val: Option<Dataset>,
    /// The folder the files were read from.
    pub dir: PathBuf,
    /// SHA-256 of each decompressed file, in the order of [`FILES`] (of the one file
    /// for `--data-file`).
    pub sha256: Vec<String>,
    /// Inputs per row, image shape and classes.
    pub shape: Shape,
}

impl Split {
    /// This split, or a copy holding only its first `train` / `test` images (only
    /// those are copied, never the whole set).
    pub fn limited(
        &self,
        train: Option<usize>,
        test: Option<usize>,
    ) -> std::borrow::Cow<'_, Split> {
        if train.is_none() && test.is_none() {
            return std::borrow::Cow::Borrowed(self);
        }
        std::borrow::Cow::Owned(Split {
            name: self.name,
            train: self.train.first(train),
            test: self.test.first(test),
            val: self.val.clone(),
            dir: self.dir.clone(),
            sha256: self.sha256.clone(),
            shape: self.shape,
        })
    }

    /// This split with `n` of its training images moved, class-stratified, into a
    /// validation set (see [`holdout`]); an error says why `n` cannot work.
    pub fn holding_out(&self, n: usize) -> Result<Split, String> {
        let have = self.train.len();
        if n == 0 || n >= have {
            return Err(format!(
                "--val-split {n}: must be between 1 and {} (the training set has {have} images); e.g. --val-split 5000",
                have.saturating_sub(1)
            ));
        }
        let (val, train) = self
            .train
            .partition(&holdout::stratified(&self.train.labels, n));
        Ok(Split {
            name: self.name,
            train,
            test: self.test.clone(),
            val: Some(val),
            dir: self.dir.clone(),
            sha256: self.sha256.clone(),
            shape: self.shape,
        })
    }

    /// The set settings are chosen on: the held-out part, or the test set without one.
    pub fn validation(&self) -> &Dataset {
        self.val.as_ref().unwrap_or(&self.test)
    }

    /// True when every file matches the pinned checksum of this dataset.
    pub fn is_canonical(&self) -> bool {
        let want = self.name.checksums();
        !want.is_empty()
            && self.sha256.len() == want.len()
            && self.sha256.iter().zip(want).all(|(a, b)| a == b)
    }
}

/// Open a regular file for reading, naming it and suggesting a fix if that fails
/// (a folder, a device or a pipe is refused: it may never end).
fn open_regular(path: &Path) -> Result<std::fs::File, DataError> {
    let io = |err: std::io::Error| {
        let hint = match err.kind() {
            std::io::ErrorKind::PermissionDenied => "; check the file's permissions".to_string(),
            std::io::ErrorKind::NotFound => {
                "; pass --data-dir DIR with the four MNIST IDX files".to_string()
            }
            _ => String::new(),
        };
        DataError::Io {
            path: path.to_path_buf(),
            err,
            hint,
        }
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(io(std::io::Error::other("is a directory, not a file")));
    }
    if !meta.is_file() {
        return Err(io(std::io::Error::other(
            "is not a regular file (a device or pipe); copy the data into a file",
        )));
    }
    std::fs::File::open(path).map_err(io)
}

/// Decompressed bytes of one IDX file (read no further than its header promises)
/// with their SHA-256.
fn read_idx(path: &Path) -> Result<(Vec<u8>, String), DataError> {
    let file = open_regular(path)?;
    let bytes = idx::read_bounded(file).map_err(|problem| DataError::Idx {
        path: path.to_path_buf(),
        problem,
    })?;
    let sha = hex(&Sha256::digest(&bytes));
    Ok((bytes, sha))
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn load_pair(images: &Path, labels: &Path) -> Result<(Dataset, [String; 2]), DataError> {
    let (ib, isha) = read_idx(images)?;
    let imgs = idx::parse_images(&ib).map_err(|problem| DataError::Idx {
        path: images.to_path_buf(),
        problem,
    })?;
    drop(ib);
    let (lb, lsha) = read_idx(labels)?;
    let labs = idx::parse_labels(&lb).map_err(|problem| DataError::Idx {
        path: labels.to_path_buf(),
        problem,
    })?;
    if imgs.len() / PIXELS != labs.len() {
        return Err(DataError::CountMismatch {
            images: images.to_path_buf(),
            labels: labels.to_path_buf(),
            n_images: imgs.len() / PIXELS,
            n_labels: labs.len(),
        });
    }
    let labs = labs.into_iter().map(Label::from).collect();
    Ok((Dataset::new(imgs, labs), [isha, lsha]))
}

/// Load the four files of `name` from `dir` (files found by [`source::file_in`]).
pub fn load_dir(name: DatasetName, dir: &Path) -> Result<Split, DataError> {
    let paths: Vec<PathBuf> = FILES
        .iter()
        .map(|stem| source::file_in(dir, stem))
        .collect::<Result<_, _>>()?;
    let key = decoded::source_key(&paths);
    if let Some(s) = key.as_deref().and_then(|k| decoded::read(name, dir, k)) {
        return Ok(s);
    }
    let (train, [a, b]) = load_pair(&paths[0], &paths[1])?;
    let (test, [c, d]) = load_pair(&paths[2], &paths[3])?;
    let split = Split {
        name,
        train,
        test,
        val: None,
        dir: dir.to_path_buf(),
        sha256: vec![a, b, c, d],
        shape: name.shape(),
    };
    if let Some(k) = key {
        decoded::write(&split, &k);
    }
    Ok(split)
}

/// Find the dataset (see [`source::locate`]) and load it.
/// Files that are another known dataset's canonical release are refused, so results
/// are never labelled with the wrong dataset.
pub fn load(name: DatasetName, data_dir: Option<&Path>) -> Result<Split, DataError> {
    let dir = source::locate(name, data_dir)?;
    let split = load_dir(name, &dir)?;
    for other in [DatasetName::Mnist, DatasetName::FashionMnist] {
        if other != name
            && split
                .sha256
                .iter()
                .map(String::as_str)
                .eq(other.checksums().iter().copied())
        {
            return Err(DataError::NotFound(format!(
                "{}: these are the {other} files, not {name}; use --dataset {other} or point --data-dir at {name}",
                dir.display()
            )));
        }
    }
    Ok(split)
}
