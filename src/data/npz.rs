//! The user's own data from an `.npz` file in Keras's `mnist.npz` layout: `x_train`,
//! `y_train`, `x_test`, `y_test`. Images are `uint8` (N, H, W) read like MNIST's
//! (byte / 255); features are `float32` / `float64` (N, D) used as they are; labels are
//! integers 0..K-1 with K taken from the training labels. Pickled object arrays are
//! refused, never unpickled (npyz cannot unpickle them either).

use std::io::{Cursor, Read};
use std::path::Path;

use npyz::{DType, NpyFile, TypeChar};
use sha2::{Digest, Sha256};

use super::{hex, DataError, Dataset, DatasetName, Label, Rows, Shape, Split, MAX_CLASSES};

/// The four arrays an `.npz` must hold.
pub const KEYS: [&str; 4] = ["x_train", "y_train", "x_test", "y_test"];

/// Largest `.npz` read (the file is hashed and held in memory while it is read).
const MAX_FILE: u64 = 8 << 30;

/// One array as read: its shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T> {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values in C (row-major) order.
    pub values: Vec<T>,
}

/// A features array: image bytes or floats.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    /// `uint8` values, read as byte / 255.
    Bytes(Array<u8>),
    /// `float32` / `float64` values (float64 rounded to f32), used as they are.
    Floats(Array<f32>),
}

impl Inputs {
    fn shape(&self) -> &[usize] {
        match self {
            Inputs::Bytes(a) => &a.shape,
            Inputs::Floats(a) => &a.shape,
        }
    }
}

fn bad(path: &Path, what: String) -> DataError {
    DataError::NotFound(format!("{}: {what}", path.display()))
}

/// Load `path` as a train/test split (see the module comment); every problem is one
/// line naming the file, the array and the fix.
pub fn load(path: &Path) -> Result<Split, DataError> {
    let file = super::open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| DataError::Io {
            path: path.to_path_buf(),
            err,
            hint: String::new(),
        })?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(bad(
            path,
            format!("larger than {} GB; use a smaller file", MAX_FILE >> 30),
        ));
    }
    let sha = hex(&Sha256::digest(&bytes));
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        bad(path, format!("not an .npz file ({e}); save the arrays with numpy.savez(FILE, x_train=..., y_train=..., x_test=..., y_test=...)"))
    })?;
    let mut read_x = |name: &str| read_inputs(&mut zip, name).map_err(|e| bad(path, e));
    let x_train = read_x("x_train")?;
    let x_test = read_x("x_test")?;
    let mut read_y = |name: &str| read_labels(&mut zip, name).map_err(|e| bad(path, e));
    let y_train = read_y("y_train")?;
    let y_test = read_y("y_test")?;
    from_arrays(x_train, y_train, x_test, y_test)
        .map(|mut split| {
            split.dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            split.sha256 = vec![sha];
            split
        })
        .map_err(|e| bad(path, e))
}

/// A split from four arrays (the checks of [`load`], messages without a file name).
pub fn from_arrays(
    x_train: Inputs,
    y_train: Vec<i64>,
    x_test: Inputs,
    y_test: Vec<i64>,
) -> Result<Split, String> {
    let shape = shape_of(&x_train, &x_test)?;
    let classes = classes_of(&y_train, &y_test)?;
    let shape = Shape { classes, ..shape };
    let train = dataset("x_train", "y_train", x_train, &y_train, shape.width)?;
    let test = dataset("x_test", "y_test", x_test, &y_test, shape.width)?;
    Ok(Split {
        name: DatasetName::File,
        train,
        test,
        val: None,
        dir: Default::default(),
        sha256: Vec::new(),
        shape,
    })
}

/// Inputs per row and image shape, the same for both feature arrays.
fn shape_of(train: &Inputs, test: &Inputs) -> Result<Shape, String> {
    let row = |name: &str, x: &Inputs| -> Result<Vec<usize>, String> {
        let s = x.shape();
        if s.len() < 2 || s.len() > 3 {
            return Err(format!(
                "{name} has shape {s:?}; it must be (N, D) features or (N, H, W) images"
            ));
        }
        if s.contains(&0) {
            return Err(format!("{name} is empty (shape {s:?}); every array needs at least one row of at least one value"));
        }
        Ok(s[1..].to_vec())
    };
    let (a, b) = (row("x_train", train)?, row("x_test", test)?);
    if a != b {
        return Err(format!(
            "x_train rows have shape {a:?} but x_test rows {b:?}; both sets need the same width"
        ));
    }
    let floats = matches!(train, Inputs::Floats(_));
    if floats != matches!(test, Inputs::Floats(_)) {
        return Err("x_train and x_test have different dtypes; use uint8 (images) or float32 (features) for both".into());
    }
    Ok(Shape {
        width: a.iter().product(),
        image: (a.len() == 2).then(|| [a[0], a[1]]),
        classes: 0,
        bytes: !floats,
    })
}

/// K = the largest training label + 1; every label must lie in 0..K.
fn classes_of(y_train: &[i64], y_test: &[i64]) -> Result<usize, String> {
    for (name, y) in [("y_train", y_train), ("y_test", y_test)] {
        if y.is_empty() {
            return Err(format!(
                "{name} is empty; every array needs at least one row"
            ));
        }
        if let Some(i) = y.iter().position(|&l| l < 0 || l >= MAX_CLASSES as i64) {
            return Err(format!(
                "{name}[{i}] = {}: labels must be class numbers 0..K-1 with K at most {MAX_CLASSES}",
                y[i]
            ));
        }
    }
    let k = y_train.iter().max().map_or(0, |&m| m as usize + 1);
    if k < 2 {
        return Err("y_train holds only class 0; at least two classes are needed".into());
    }
    if let Some(i) = y_test.iter().position(|&l| l as usize >= k) {
        return Err(format!(
            "y_test[{i}] = {} but y_train's labels are 0..{}: a test class never seen in training; relabel the classes 0..K-1",
            y_test[i],
            k - 1
        ));
    }
    Ok(k)
}

/// One set: rows and labels of the same count, every value finite.
fn dataset(xn: &str, yn: &str, x: Inputs, y: &[i64], width: usize) -> Result<Dataset, String> {
    let n = x.shape()[0];
    if n != y.len() {
        return Err(format!(
            "{xn} has {n} rows but {yn} {} labels; they must match",
            y.len()
        ));
    }
    let rows = match x {
        Inputs::Bytes(a) => Rows::Bytes(a.values),
        Inputs::Floats(a) => {
            if let Some(i) = a.values.iter().position(|v| !v.is_finite()) {
                let what = if a.values[i].is_nan() {
                    "NaN"
                } else {
                    "infinite"
                };
                return Err(format!(
                    "{xn}[{}, {}] is {what}; replace or drop non-finite values",
                    i / width,
                    i % width
                ));
            }
            Rows::Floats(a.values)
        }
    };
    // In range: checked against MAX_CLASSES above, which fits in a Label.
    let labels = y.iter().map(|&l| l as Label).collect();
    Ok(Dataset::from_rows(rows, width, labels))
}

/// One named array's header, refusing pickled object arrays before any data is read.
fn open<'a, R: Read + std::io::Seek>(
    zip: &'a mut zip::ZipArchive<R>,
    name: &str,
) -> Result<NpyFile<zip::read::ZipFile<'a, R>>, String> {
    let missing = || {
        format!("no array '{name}'; an .npz for actlab holds x_train, y_train, x_test and y_test (numpy.savez(FILE, x_train=..., ...))")
    };
    let entry = zip.by_name(&format!("{name}.npy")).map_err(|_| missing())?;
    let npy = NpyFile::new(entry).map_err(|e| format!("{name}: not a valid .npy array ({e})"))?;
    if npy.uses_pickled_array() {
        return Err(format!(
            "{name} holds Python objects (a pickled object array), which actlab never unpickles; save a numeric array, e.g. np.asarray({name}, dtype=np.float32)"
        ));
    }
    Ok(npy)
}

/// The plain type character and byte size of an array's dtype.
fn plain(npy: &NpyFile<impl Read>, name: &str) -> Result<(TypeChar, u64), String> {
    match npy.dtype() {
        DType::Plain(t) => Ok((t.type_char(), t.size_field())),
        other => Err(format!(
            "{name} has dtype {}; use a plain numeric array",
            other.descr()
        )),
    }
}

/// Values of `npy` in C order (a Fortran-ordered array is transposed).
fn values<T: npyz::Deserialize + Copy>(
    npy: NpyFile<impl Read>,
    name: &str,
) -> Result<Array<T>, String> {
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let fortran = npy.order() == npyz::Order::Fortran;
    let stored = npy
        .into_vec::<T>()
        .map_err(|e| format!("{name}: cannot read its values ({e})"))?;
    let values = if fortran {
        c_order(&stored, &shape)
    } else {
        stored
    };
    Ok(Array { shape, values })
}

/// Column-major values of `shape` in row-major order.
fn c_order<T: Copy>(stored: &[T], shape: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(stored.len());
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..stored.len() {
        // The column-major offset of the row-major index `idx`.
        let (mut at, mut stride) = (0, 1);
        for (i, &d) in idx.iter().zip(shape) {
            at += i * stride;
            stride *= d;
        }
        out.push(stored[at]);
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

fn read_inputs<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
) -> Result<Inputs, String> {
    let npy = open(zip, name)?;
    let descr = npy.dtype().descr();
    match plain(&npy, name)? {
        (TypeChar::Uint, 1) => values::<u8>(npy, name).map(Inputs::Bytes),
        (TypeChar::Float, 4) => values::<f32>(npy, name).map(Inputs::Floats),
        (TypeChar::Float, 8) => {
            let a = values::<f64>(npy, name)?;
            Ok(Inputs::Floats(Array {
                shape: a.shape,
                values: a.values.iter().map(|&v| v as f32).collect(),
            }))
        }
        _ => Err(format!(
            "{name} has dtype {descr}; use uint8 images (0-255) or float32/float64 features"
        )),
    }
}

fn read_labels<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
) -> Result<Vec<i64>, String> {
    let npy = open(zip, name)?;
    let shape: Vec<u64> = npy.shape().to_vec();
    if !(shape.len() == 1 || shape.len() == 2 && shape[1] == 1) {
        return Err(format!(
            "{name} has shape {shape:?}; labels must be one class number per row, shape (N,)"
        ));
    }
    let ints = |v: Result<Array<i64>, String>| v.map(|a| a.values);
    match plain(&npy, name)? {
        (TypeChar::Int, 1) => widen::<i8>(npy, name),
        (TypeChar::Int, 2) => widen::<i16>(npy, name),
        (TypeChar::Int, 4) => widen::<i32>(npy, name),
        (TypeChar::Int, 8) => ints(values::<i64>(npy, name)),
        (TypeChar::Uint, 1) => widen::<u8>(npy, name),
        (TypeChar::Uint, 2) => widen::<u16>(npy, name),
        (TypeChar::Uint, 4) => widen::<u32>(npy, name),
        (TypeChar::Uint, 8) => {
            let a = values::<u64>(npy, name)?;
            Ok(a.values
                .iter()
                .map(|&v| v.min(i64::MAX as u64) as i64)
                .collect())
        }
        (c, s) => Err(format!(
            "{name} has dtype {}{s}; labels must be integers (e.g. y.astype(np.int64))",
            c.to_str()
        )),
    }
}

fn widen<T: npyz::Deserialize + Copy + Into<i64>>(
    npy: NpyFile<impl Read>,
    name: &str,
) -> Result<Vec<i64>, String> {
    Ok(values::<T>(npy, name)?
        .values
        .into_iter()
        .map(Into::into)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(shape: &[usize], values: Vec<f32>) -> Inputs {
        Inputs::Floats(Array {
            shape: shape.to_vec(),
            values,
        })
    }

    fn bytes(shape: &[usize]) -> Inputs {
        let n = shape.iter().product();
        Inputs::Bytes(Array {
            shape: shape.to_vec(),
            values: (0..n).map(|i| (i % 256) as u8).collect(),
        })
    }

    #[test]
    fn images_keep_their_shape_and_classes_come_from_the_labels() {
        let s = from_arrays(
            bytes(&[3, 2, 4]),
            vec![0, 4, 1],
            bytes(&[2, 2, 4]),
            vec![4, 0],
        )
        .unwrap();
        assert_eq!(s.shape.width, 8);
        assert_eq!(s.shape.image, Some([2, 4]));
        assert_eq!(s.shape.classes, 5);
        assert!(s.shape.bytes);
        assert_eq!(s.train.labels, [0, 4, 1]);
        assert_eq!(s.test.image(1), &[8, 9, 10, 11, 12, 13, 14, 15]);
    }

    #[test]
    fn every_bad_array_is_named() {
        let ok = || floats(&[2, 3], vec![0.0; 6]);
        let err =
            |x: Inputs, y: Vec<i64>, t: Inputs, yt: Vec<i64>| from_arrays(x, y, t, yt).unwrap_err();
        let e = err(
            floats(&[2, 3], vec![0.0, 1.0, 2.0, 3.0, f32::NAN, 5.0]),
            vec![0, 1],
            ok(),
            vec![0, 1],
        );
        assert!(e.contains("x_train[1, 1] is NaN"), "{e}");
        let e = err(
            ok(),
            vec![0, 1],
            floats(&[2, 3], vec![0.0, 0.0, f32::INFINITY, 0.0, 0.0, 0.0]),
            vec![0, 1],
        );
        assert!(e.contains("x_test[0, 2] is infinite"), "{e}");
        let e = err(ok(), vec![0, 1, 1], ok(), vec![0, 1]);
        assert!(e.contains("x_train has 2 rows but y_train 3 labels"), "{e}");
        let e = err(ok(), vec![0, -1], ok(), vec![0, 1]);
        assert!(e.contains("y_train[1] = -1"), "{e}");
        let e = err(ok(), vec![0, 1], ok(), vec![0, 2]);
        assert!(
            e.contains("y_test[1] = 2") && e.contains("never seen"),
            "{e}"
        );
        let e = err(ok(), vec![0, 1], floats(&[2, 4], vec![0.0; 8]), vec![0, 1]);
        assert!(e.contains("same width"), "{e}");
        let e = err(floats(&[0, 3], vec![]), vec![], ok(), vec![0, 1]);
        assert!(e.contains("x_train is empty"), "{e}");
        let e = err(ok(), vec![0, 1], bytes(&[2, 3]), vec![0, 1]);
        assert!(e.contains("different dtypes"), "{e}");
        let e = err(ok(), vec![0, 0], ok(), vec![0, 0]);
        assert!(e.contains("two classes"), "{e}");
        let e = err(ok(), vec![0, 1000], ok(), vec![0, 1]);
        assert_eq!(
            e,
            "y_train[1] = 1000: labels must be class numbers 0..K-1 with K at most 1000"
        );
    }

    #[test]
    fn fortran_order_is_read_in_c_order() {
        // [[1, 2, 3], [4, 5, 6]] stored column by column.
        assert_eq!(c_order(&[1, 4, 2, 5, 3, 6], &[2, 3]), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn the_digits_fixture_loads_with_its_checksum() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/digits.npz");
        let s = load(&path).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (1437, 360));
        assert_eq!(s.shape.image, Some([8, 8]));
        assert_eq!(s.shape.classes, 10);
        assert_eq!(s.sha256.len(), 1);
        assert_eq!(s.sha256[0].len(), 64);
        let b = load(&path.with_file_name("breast_cancer.npz")).unwrap();
        assert_eq!(
            (b.shape.width, b.shape.image, b.shape.classes, b.shape.bytes),
            (30, None, 2, false)
        );
    }
}
