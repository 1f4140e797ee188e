//! Reading and writing tensors as safetensors, with PyTorch's names and layouts.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::nn::{Arch, Mlp};

mod buffers;
pub use buffers::{buffer_tensors, stats_from};

/// A model or checkpoint file that cannot be read, written or used, in one line
/// naming the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// What is wrong and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// The file could not be written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The model's description could not be encoded.
    #[error("cannot encode the model description: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Results of model and checkpoint files.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// A [`ModelError::Invalid`] from a format string.
macro_rules! invalid {
    ($($t:tt)*) => { $crate::model_io::ModelError::Invalid(format!($($t)*)) };
}
pub(crate) use invalid;

/// Return a [`ModelError::Invalid`] from a format string.
macro_rules! bail {
    ($($t:tt)*) => { return Err($crate::model_io::invalid!($($t)*)) };
}
pub(crate) use bail;

/// A tensor read from a file: shape and f32 values (integer tensors are converted).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
    /// An integer tensor's exact values (empty for float dtypes): `data` rounds
    /// beyond 2^24.
    pub ints: Vec<i64>,
}

/// Everything in a safetensors file: tensors by name and the string metadata.
#[derive(Debug, Clone, Default)]
pub struct TensorFile {
    /// Tensors by name.
    pub tensors: HashMap<String, Tensor>,
    /// The file's `__metadata__` map.
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    /// The tensor called `name`, or an error naming the file and the missing tensor.
    pub fn get(&self, path: &Path, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| {
            let mut have: Vec<&str> = self.tensors.keys().map(|s| s.as_str()).collect();
            have.sort();
            invalid!(
                "{}: no tensor '{name}' (it has: {}); is this a model saved by actlab or a PyTorch state dict of the same Net?",
                path.display(),
                have.join(", ")
            )
        })
    }
}

/// An integer tensor's exact values; empty for float dtypes.
fn to_i64(view: &TensorView<'_>) -> Vec<i64> {
    let d = view.data();
    match view.dtype() {
        Dtype::I64 => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        Dtype::I32 => d
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
            .collect(),
        _ => Vec::new(),
    }
}

fn to_f32(view: &TensorView<'_>) -> Option<Vec<f32>> {
    let d = view.data();
    Some(match view.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => d
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        Dtype::I64 => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        Dtype::I32 => d
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        _ => return None,
    })
}

/// Parse safetensors bytes; `path` only names the source in errors.
pub fn parse_tensors(bytes: &[u8], path: &Path) -> Result<TensorFile> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        let why = offset_problem(bytes).unwrap_or_else(|| e.to_string());
        invalid!(
            "{}: not a valid safetensors file ({why}); pass a model written by `actlab train --save` or safetensors.torch.save_file",
            path.display()
        )
    })?;
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| invalid!("{}: bad safetensors header ({e})", path.display()))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let data = to_f32(&view).ok_or_else(|| {
            invalid!(
                "{}: tensor '{name}' has dtype {:?}; actlab reads f32, f64, i32 and i64",
                path.display(),
                view.dtype()
            )
        })?;
        tensors.insert(
            name,
            Tensor {
                shape: view.shape().to_vec(),
                data,
                ints: to_i64(&view),
            },
        );
    }
    Ok(TensorFile {
        tensors,
        metadata: meta.metadata().clone().unwrap_or_default(),
    })
}

/// Which tensors' byte ranges overlap or leave a gap, read from the header itself:
/// the library names only one tensor, which need not be the one at fault.
fn offset_problem(bytes: &[u8]) -> Option<String> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    let mut ranges: Vec<(u64, u64, &str)> = header
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(k, v)| {
            let o = v.get("data_offsets")?.as_array()?;
            Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?, k.as_str()))
        })
        .collect();
    ranges.sort();
    let mut end = 0;
    let mut prev: Option<(u64, u64, &str)> = None;
    for r in ranges {
        if r.0 != end {
            let what = if r.0 < end { "overlap" } else { "leave a gap" };
            return Some(match prev {
                Some(p) => format!(
                    "tensors '{}' (bytes {}..{}) and '{}' (bytes {}..{}) {what}",
                    p.2, p.0, p.1, r.2, r.0, r.1
                ),
                None => format!("tensor '{}' starts at byte {}, not 0", r.2, r.0),
            });
        }
        end = r.1;
        prev = Some(r);
    }
    None
}

/// Read a safetensors file.
pub fn read_tensors(path: &Path) -> Result<TensorFile> {
    let bytes =
        std::fs::read(path).map_err(|e| invalid!("{}: cannot read ({e})", path.display()))?;
    parse_tensors(&bytes, path)
}

/// A tensor's values to write: f32, or int64 (PyTorch's dtype of `num_batches_tracked`).
#[derive(Debug, Clone, Copy)]
pub enum Values<'a> {
    /// 32-bit floats.
    F32(&'a [f32]),
    /// 64-bit integers.
    I64(&'a [i64]),
}

impl Values<'_> {
    fn dtype_and_bytes(&self) -> (Dtype, Vec<u8>) {
        match self {
            Values::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Values::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        }
    }
}

/// Serialise f32 tensors (name, shape, values) with metadata into safetensors bytes.
pub fn tensors_to_bytes(
    tensors: &[(String, Vec<usize>, &[f32])],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let typed: Vec<_> = (tensors.iter())
        .map(|(n, s, v)| (n.clone(), s.clone(), Values::F32(v)))
        .collect();
    typed_tensors_to_bytes(&typed, metadata)
}

/// Serialise tensors of any [`Values`] type with metadata into safetensors bytes.
pub fn typed_tensors_to_bytes(
    tensors: &[(String, Vec<usize>, Values<'_>)],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let bytes: Vec<(Dtype, Vec<u8>)> = tensors.iter().map(|t| t.2.dtype_and_bytes()).collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), (dtype, b))| {
            TensorView::new(*dtype, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| invalid!("tensor {name}: {e}"))
        })
        .collect::<Result<_>>()?;
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    safetensors::serialize(views, Some(meta))
        .map_err(|e| invalid!("cannot serialise tensors ({e})"))
}

/// The engine's parameters `flat` per PyTorch name and layout, in [`Arch::param_names`] order.
pub fn named_params(arch: &Arch, flat: &[f32]) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let files = arch.to_files(flat);
    let mut off = 0;
    arch.param_names()
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let s = files[off..off + n].to_vec();
            off += n;
            (name, shape, s)
        })
        .collect()
}

/// Write a model's weights (fc1.weight [out, in], fc1.bias, ...) and batch norm's
/// running statistics (norm{i}.running_mean, ...) atomically: PyTorch's state dict.
pub fn save_weights(path: &Path, model: &Mlp, metadata: &BTreeMap<String, String>) -> Result<()> {
    let named = named_params(&model.arch, &model.params);
    let mut views: Vec<(String, Vec<usize>, Values<'_>)> = named
        .iter()
        .map(|(n, shape, v)| (n.clone(), shape.clone(), Values::F32(v)))
        .collect();
    views.extend(buffer_tensors(&model.arch, &model.stats));
    let bytes = typed_tensors_to_bytes(&views, metadata)?;
    Ok(crate::store::write_file(path, &bytes)?)
}

/// Gather the parameters named by `arch` from a tensor file (with an optional name
/// prefix such as "adam3."), checking every shape against the architecture; returned
/// in the engine's layout.
pub fn params_from(file: &TensorFile, path: &Path, arch: &Arch, prefix: &str) -> Result<Vec<f32>> {
    let mut flat = Vec::with_capacity(arch.n_params());
    for (name, shape) in arch.param_names() {
        let full = format!("{prefix}{name}");
        let t = file.get(path, &full)?;
        if t.shape != shape {
            bail!(
                "{}: tensor '{full}' has shape {:?} but the model needs {:?} (layer sizes {:?}); for train --init-from, give the file's --hidden sizes",
                path.display(),
                t.shape,
                shape,
                arch.sizes
            );
        }
        if let Some(i) = first_non_finite(&t.data) {
            bail!(
                "{}: tensor '{full}' holds {} at index {i}; the weights are damaged (or come from a diverged run): use another file",
                path.display(),
                t.data[i]
            );
        }
        flat.extend_from_slice(&t.data);
    }
    Ok(arch.from_files(&flat))
}

/// The index of the first NaN or infinite value, if any.
pub fn first_non_finite(v: &[f32]) -> Option<usize> {
    v.iter().position(|x| !x.is_finite())
}

/// What a saved model says about itself (safetensors metadata and the JSON beside it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelMeta {
    /// Always "actlab-mlp".
    pub format: String,
    /// actlab version that wrote it.
    pub actlab_version: String,
    /// Layer widths, input first.
    pub sizes: Vec<usize>,
    /// Hidden activation per layer.
    pub activations: Vec<crate::nn::Activation>,
    /// Output function.
    pub output: crate::nn::OutputFn,
    /// Training loss.
    pub loss: crate::nn::Loss,
    /// Dataset trained on.
    pub dataset: crate::data::DatasetName,
    /// Input scaling: pixels are u8 / 255, no mean/std normalisation.
    pub normalisation: String,
    /// The training configuration, when the model came from `actlab train`.
    pub config: Option<crate::config::TrainConfig>,
    /// Inputs per row, image shape, classes and input kind of the training data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<crate::data::Shape>,
}

/// How inputs are scaled, as recorded in model metadata.
pub const NORMALISATION: &str = "x / 255 (pixels in [0, 1], no mean/std)";

/// How float features are read: as they are.
pub const FEATURES: &str = "float features as they are (no scaling)";

impl ModelMeta {
    /// Metadata for a model trained with `cfg`.
    pub fn of(cfg: &crate::config::TrainConfig) -> Self {
        let arch = cfg.arch();
        ModelMeta {
            format: "actlab-mlp".into(),
            actlab_version: env!("CARGO_PKG_VERSION").into(),
            sizes: arch.sizes,
            activations: arch.activations,
            output: arch.output,
            loss: cfg.loss,
            dataset: cfg.dataset,
            normalisation: if cfg.shape().bytes {
                NORMALISATION
            } else {
                FEATURES
            }
            .into(),
            config: Some(cfg.clone()),
            shape: Some(cfg.shape()),
        }
    }

    /// The shape of the data the model reads: as recorded, else what its layer
    /// sizes say (28x28 images for 784 inputs, as MNIST's; bytes either way).
    pub fn data_shape(&self) -> crate::data::Shape {
        let recorded = self.shape.or(self.config.as_ref().map(|c| c.shape()));
        recorded.unwrap_or_else(|| {
            let width = self.sizes.first().copied().unwrap_or(0);
            let mnist = crate::data::DatasetName::Mnist.shape();
            crate::data::Shape {
                width,
                image: (width == mnist.width).then_some(mnist.image).flatten(),
                classes: self.sizes.last().copied().unwrap_or(0),
                bytes: true,
            }
        })
    }

    /// The architecture it describes (conv layers, pooling and norm from the
    /// training configuration, when there is one).
    pub fn arch(&self) -> Arch {
        let c = self.config.as_ref();
        Arch {
            sizes: self.sizes.clone(),
            activations: self.activations.clone(),
            output: self.output,
            dropout: 0.0,
            conv: c.map_or_else(Vec::new, |c| c.conv.clone()),
            pool: c.map_or_else(Default::default, |c| c.pool),
            norm: c.map_or_else(Default::default, |c| c.norm),
            image: None,
        }
    }
}

/// The JSON file beside a model: `model.safetensors` -> `model.json`.
pub fn meta_path(model: &Path) -> std::path::PathBuf {
    model.with_extension("json")
}

/// Save weights plus metadata (in the file and as JSON beside it), both atomically.
pub fn save_model(path: &Path, model: &Mlp, cfg: &crate::config::TrainConfig) -> Result<()> {
    let meta = ModelMeta::of(cfg);
    let json = serde_json::to_string_pretty(&meta)?;
    let mut m = BTreeMap::new();
    m.insert("actlab".to_string(), serde_json::to_string(&meta)?);
    m.insert("format".to_string(), "pt".to_string());
    save_weights(path, model, &m)?;
    let jp = meta_path(path);
    Ok(crate::store::write_file(&jp, json.as_bytes())?)
}

/// Layer sizes read off fc1.weight, fc2.weight, ... shapes (for files without metadata).
fn infer_sizes(file: &TensorFile, path: &Path) -> Result<Vec<usize>> {
    let mut sizes = Vec::new();
    for l in 1.. {
        let Some(t) = file.tensors.get(&format!("fc{l}.weight")) else {
            break;
        };
        if t.shape.len() != 2 {
            bail!(
                "{}: fc{l}.weight has shape {:?}; expected [out, in]",
                path.display(),
                t.shape
            );
        }
        if sizes.is_empty() {
            sizes.push(t.shape[1]);
        } else if sizes[sizes.len() - 1] != t.shape[1] {
            bail!(
                "{}: fc{l}.weight takes {} inputs but the layer before gives {}",
                path.display(),
                t.shape[1],
                sizes[sizes.len() - 1]
            );
        }
        sizes.push(t.shape[0]);
    }
    if sizes.is_empty() {
        bail!(
            "{}: no fc1.weight tensor; expected PyTorch names fc1.weight, fc1.bias, fc2.weight, ...",
            path.display()
        );
    }
    Ok(sizes)
}

/// Load a model: its metadata from the file (or the JSON beside it), else inferred
/// from tensor shapes with `fallback` for the functions (ReLU/LogSoftmax/NLL by default).
pub fn load_model(path: &Path, fallback: Option<&ModelMeta>) -> Result<(Mlp, ModelMeta)> {
    let file = read_tensors(path)?;
    model_from_file(&file, path, fallback)
}

/// Build a model from parsed tensors (see [`load_model`]); `path` names the source in
/// errors and locates the JSON description beside it.
pub fn model_from_file(
    file: &TensorFile,
    path: &Path,
    fallback: Option<&ModelMeta>,
) -> Result<(Mlp, ModelMeta)> {
    let meta = match embedded_meta(file, path)? {
        Some(m) => m,
        None => match meta_beside(path)? {
            Some(m) => m,
            None => inferred_meta(file, path, fallback)?,
        },
    };
    let convs = meta.config.as_ref().map_or(0, |c| c.conv.len());
    if meta.sizes.len() < 2 || meta.activations.len() != meta.sizes.len() - 2 + convs {
        bail!(
            "{}: metadata lists {} activations for layer sizes {:?}",
            path.display(),
            meta.activations.len(),
            meta.sizes
        );
    }
    if meta.sizes.contains(&0) || meta.sizes.iter().product::<usize>() > 1 << 31 {
        bail!(
            "{}: implausible layer sizes {:?}",
            path.display(),
            meta.sizes
        );
    }
    let arch = meta.arch();
    if let Err(e) = arch.check() {
        bail!("{}: {e}", path.display());
    }
    let params = params_from(file, path, &arch, "")?;
    let stats = stats_from(file, path, &arch, "")?;
    let mut model = Mlp::from_params(arch, params);
    model.stats = stats;
    Ok((model, meta))
}

/// The description actlab stores in the safetensors metadata, if any.
fn embedded_meta(file: &TensorFile, path: &Path) -> Result<Option<ModelMeta>> {
    file.metadata
        .get("actlab")
        .map(|s| serde_json::from_str::<ModelMeta>(s))
        .transpose()
        .map_err(|e| invalid!("{}: bad actlab metadata ({e})", path.display()))
}

/// The JSON sidecar beside the model file, if there is one.
fn meta_beside(path: &Path) -> Result<Option<ModelMeta>> {
    let jp = meta_path(path);
    match std::fs::read_to_string(&jp) {
        Ok(t) => Ok(Some(serde_json::from_str(&t).map_err(|e| {
            invalid!("{}: not an actlab model description ({e})", jp.display())
        })?)),
        Err(_) => Ok(None),
    }
}

/// A description for a bare weights file (a PyTorch export): sizes from the tensors,
/// the rest from `fallback` (or the exercise's defaults).
fn inferred_meta(
    file: &TensorFile,
    path: &Path,
    fallback: Option<&ModelMeta>,
) -> Result<ModelMeta> {
    let sizes = infer_sizes(file, path)?;
    let hidden = sizes.len().saturating_sub(2);
    let base = fallback
        .cloned()
        .unwrap_or_else(|| ModelMeta::of(&crate::config::TrainConfig::default()));
    let mut activations = if base.activations.len() == hidden {
        base.activations.clone()
    } else {
        let first = base.activations.first().cloned();
        vec![first.unwrap_or(crate::nn::Activation::Relu); hidden]
    };
    // A PyTorch net with `act{i} = nn.PReLU()` carries its learned slopes: those
    // layers are PReLU whatever the fallback says, so no slope is silently dropped.
    for (i, a) in activations.iter_mut().enumerate() {
        if file.tensors.contains_key(&format!("act{}.weight", i + 1)) {
            *a = crate::nn::Activation::Prelu(0.25);
        }
    }
    Ok(ModelMeta {
        sizes,
        activations,
        config: None,
        shape: None,
        ..base
    })
}
