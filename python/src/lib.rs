//! actlab's engine for Python: training, models and activation values, with numpy in
//! and JSON records out. The Python package (`actlab/__init__.py`) wraps these into
//! `train`, `Run`, `Model`, `load` and `activation_values`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use actlab::data::npz::{self, Array, Inputs};
use actlab::data::{DatasetName, Split};
use actlab::model_io::{self, ModelMeta};
use actlab::nn::{Mlp, Workspace};
use actlab::train::{EpochFigures, Progress};
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;

mod experiment;
mod options;

/// Rows per forward pass in `predict_proba`.
const BATCH: usize = 256;

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Features as actlab reads them: uint8 arrays as image bytes, float arrays as floats
/// (any memory order; values are read in C order).
fn inputs(x: &Bound<'_, PyAny>, name: &str) -> PyResult<Inputs> {
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'_, u8>>() {
        let v = a.as_array();
        return Ok(Inputs::Bytes(Array {
            shape: v.shape().to_vec(),
            values: v.iter().copied().collect(),
        }));
    }
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'_, f32>>() {
        let v = a.as_array();
        return Ok(Inputs::Floats(Array {
            shape: v.shape().to_vec(),
            values: v.iter().copied().collect(),
        }));
    }
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'_, f64>>() {
        let v = a.as_array();
        return Ok(Inputs::Floats(Array {
            shape: v.shape().to_vec(),
            values: v.iter().map(|&f| f as f32).collect(),
        }));
    }
    Err(PyTypeError::new_err(format!(
        "{name} must be a numpy array of uint8 images or float32/float64 features"
    )))
}

/// Integer labels, one per row.
fn labels(y: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<i64>> {
    let a = y
        .call_method1("astype", ("int64", "C", "same_kind"))
        .ok()
        .and_then(|c| c.extract::<PyReadonlyArrayDyn<'_, i64>>().ok())
        .ok_or_else(|| {
            PyTypeError::new_err(format!(
                "{name} must be a numpy array of integer class labels (e.g. y.astype(np.int64))"
            ))
        })?;
    if a.ndim() != 1 {
        return Err(value_error(format!(
            "{name} has shape {:?}; labels must be one class number per row, shape (N,)",
            a.shape()
        )));
    }
    Ok(a.as_array().iter().copied().collect())
}

/// The data `train` was given: a dataset name, an .npz path or four arrays.
pub(crate) fn load_data(
    data: &Bound<'_, PyAny>,
    data_dir: Option<PathBuf>,
) -> PyResult<(Split, Option<PathBuf>)> {
    if let Ok(name) = data.extract::<String>() {
        return match name.as_str() {
            "mnist" | "fashion-mnist" => {
                let n = if name == "mnist" {
                    DatasetName::Mnist
                } else {
                    DatasetName::FashionMnist
                };
                let s = actlab::data::load(n, data_dir.as_deref()).map_err(value_error)?;
                Ok((s, None))
            }
            path => {
                let p = PathBuf::from(path);
                if !p.exists() {
                    return Err(PyOSError::new_err(format!(
                        "{path}: no such file; data is \"mnist\", \"fashion-mnist\", a path to an .npz or (x_train, y_train, x_test, y_test)"
                    )));
                }
                Ok((npz::load(&p).map_err(value_error)?, Some(p)))
            }
        };
    }
    if let Ok((a, b, c, d)) =
        data.extract::<(Bound<PyAny>, Bound<PyAny>, Bound<PyAny>, Bound<PyAny>)>()
    {
        let split = npz::from_arrays(
            inputs(&a, "x_train")?,
            labels(&b, "y_train")?,
            inputs(&c, "x_test")?,
            labels(&d, "y_test")?,
        )
        .map_err(value_error)?;
        return Ok((split, None));
    }
    Err(PyTypeError::new_err(
        "data must be \"mnist\", \"fashion-mnist\", a path to an .npz, or a tuple (x_train, y_train, x_test, y_test) of numpy arrays",
    ))
}

/// Progress for Python: Ctrl-C is noticed between batches, `on_epoch` gets each
/// epoch's figures.
struct PyProgress<'a> {
    stop: &'a AtomicBool,
    interrupted: bool,
    on_epoch: Option<Py<PyAny>>,
    error: Option<PyErr>,
}

impl Progress for PyProgress<'_> {
    fn step(&mut self, _done: usize) {
        if Python::attach(|py| py.check_signals()).is_err() {
            self.interrupted = true;
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    fn epoch_end(&mut self, s: &EpochFigures) {
        let Some(f) = &self.on_epoch else { return };
        let json = serde_json::json!({
            "epoch": s.epoch,
            "train_loss": s.train.loss, "train_acc": s.train.acc,
            "val_loss": s.val.map(|m| m.loss), "val_acc": s.val.map(|m| m.acc),
            "test_loss": s.test.loss, "test_acc": s.test.acc,
            "seconds": s.seconds,
        })
        .to_string();
        Python::attach(|py| {
            if let Err(e) = f.call1(py, (json,)) {
                self.error = Some(e);
                self.stop.store(true, Ordering::SeqCst);
            }
        });
    }
}

/// Train one run: `config` is a JSON object of TrainConfig fields. Returns the
/// record (JSON) and the model.
#[pyfunction]
#[pyo3(signature = (config, data, data_dir=None, on_epoch=None, define=Default::default()))]
fn train(
    py: Python<'_>,
    config: &str,
    data: &Bound<'_, PyAny>,
    data_dir: Option<PathBuf>,
    on_epoch: Option<Py<PyAny>>,
    define: std::collections::BTreeMap<String, String>,
) -> PyResult<(String, Model)> {
    let mut cfg = options::config(config, &options::formulas(&define)?, true)?;
    let (full, file) = load_data(data, data_dir)?;
    if full.name == DatasetName::File {
        cfg.dataset = DatasetName::File;
        cfg.data_file = file;
    } else {
        cfg.dataset = full.name;
    }
    cfg.validate().map_err(value_error)?;
    let cfg = cfg.with_shape_of(&full);
    let n = cfg.limit_train.unwrap_or(usize::MAX).min(full.train.len());
    cfg.validate_against(n).map_err(value_error)?;
    let split = cfg.split_of(&full).map_err(value_error)?;
    let stop = AtomicBool::new(false);
    let mut progress = PyProgress {
        stop: &stop,
        interrupted: false,
        on_epoch,
        error: None,
    };
    let (record, mlp) =
        py.detach(|| actlab::store::records::train(&cfg, &split, &mut progress, &stop));
    if let Some(e) = progress.error {
        return Err(e);
    }
    if progress.interrupted {
        return Err(PyKeyboardInterrupt::new_err(format!(
            "stopped after {} of {} epochs",
            record.history.len(),
            cfg.epochs
        )));
    }
    let json = serde_json::to_string(&record).map_err(value_error)?;
    Ok((
        json,
        Model {
            meta: ModelMeta::of(&cfg),
            mlp,
        },
    ))
}

/// One tensor of a state dict: its PyTorch name, shape and flat values.
type NamedArray<'py> = (String, Vec<usize>, Bound<'py, PyAny>);

/// A trained network with what it was trained on.
#[pyclass(module = "actlab._actlab")]
struct Model {
    mlp: Mlp,
    meta: ModelMeta,
}

#[pymethods]
impl Model {
    /// Class probabilities [N, K] of rows `x` ([N, ...] uint8 images or float features).
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let width = self.mlp.arch.sizes[0];
        let rows = match inputs(x, "x")? {
            Inputs::Bytes(a) => (
                a.shape,
                a.values.iter().map(|&b| b as f32 / 255.0).collect(),
            ),
            Inputs::Floats(a) => (a.shape, a.values),
        };
        let (shape, x): (Vec<usize>, Vec<f32>) = rows;
        let n = shape.first().copied().unwrap_or(0);
        if shape.len() < 2 || shape[1..].iter().product::<usize>() != width {
            return Err(value_error(format!(
                "x has shape {shape:?}; the model reads rows of {width} inputs"
            )));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(value_error(format!(
                "x[{}, {}] is not finite; replace or drop non-finite values",
                i / width,
                i % width
            )));
        }
        let k = self.mlp.arch.classes();
        let probs = py.detach(|| {
            let mut ws = Workspace::new(&self.mlp, BATCH, false);
            let mut input = self.mlp.input_buf();
            let mut out = Vec::with_capacity(n * k);
            for chunk in x.chunks(BATCH * width) {
                let m = chunk.len() / width;
                let y = self.mlp.forward_eval(&mut ws, input.dense(chunk, m, width));
                for row in y.chunks_exact(k) {
                    out.extend(self.mlp.arch.output.probabilities(row));
                }
            }
            out
        });
        PyArray1::from_vec(py, probs).reshape(vec![n, k])
    }

    /// Parameters and batch norm's running statistics with PyTorch's names and
    /// shapes: name -> (shape, flat values; float32, or int64 for a batch count).
    fn state_items<'py>(&self, py: Python<'py>) -> PyResult<Vec<NamedArray<'py>>> {
        let params = model_io::named_params(&self.mlp.arch, &self.mlp.params)
            .into_iter()
            .map(|(n, s, v)| (n, s, PyArray1::from_vec(py, v).into_any()));
        let buffers = model_io::buffer_tensors(&self.mlp.arch, &self.mlp.stats)
            .into_iter()
            .map(|(n, s, v)| {
                let values = match v {
                    model_io::Values::F32(v) => PyArray1::from_slice(py, v).into_any(),
                    model_io::Values::I64(v) => PyArray1::from_slice(py, v).into_any(),
                };
                (n, s, values)
            });
        Ok(params.chain(buffers).collect())
    }

    /// Save as safetensors with the model.json beside it, as `actlab train --save` does.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        let cfg = self.meta.config.clone().unwrap_or_default();
        model_io::save_model(&path, &self.mlp, &cfg).map_err(|e| PyOSError::new_err(e.to_string()))
    }

    /// The model's metadata (model.json) as JSON.
    fn meta_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.meta).map_err(value_error)
    }
}

/// Load a model saved by actlab (or a PyTorch export with the same layout).
#[pyfunction]
fn load(path: PathBuf) -> PyResult<Model> {
    if !path.exists() {
        return Err(PyOSError::new_err(format!(
            "{}: no such file",
            path.display()
        )));
    }
    let (mlp, meta) = model_io::load_model(&path, None).map_err(value_error)?;
    Ok(Model { mlp, meta })
}

/// f(x) and f'(x) of an activation (a built-in name such as "gelu" or "elu:0.5", or a
/// name of `define`).
#[pyfunction]
#[pyo3(signature = (name, x, define=Default::default()))]
fn activation_values(
    name: &str,
    x: Vec<f32>,
    define: std::collections::BTreeMap<String, String>,
) -> PyResult<(Vec<f32>, Vec<f32>)> {
    let a = options::activation(name, &options::formulas(&define)?)?;
    let f: Vec<f32> = x.iter().map(|&v| a.value(v)).collect();
    let df = x
        .iter()
        .zip(&f)
        .map(|(&v, &y)| a.derivative(v, y))
        .collect();
    Ok((f, df))
}

/// The native part of the `actlab` package.
#[pymodule]
fn _actlab(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(activation_values, m)?)?;
    m.add_function(wrap_pyfunction!(experiment::compare, m)?)?;
    m.add_function(wrap_pyfunction!(experiment::exercise, m)?)?;
    m.add_class::<experiment::Outcome>()?;
    m.add_class::<Model>()?;
    Ok(())
}
