//! Architecture: layer widths, the conv layers before them and the functions
//! between them, as data; the list of layers a network runs is built from it
//! ([`Arch::build`]).
//!
//! Parameters are one flat vector ([`Layout`]): each conv layer's weight
//! [c_out, c_in, k, k] and bias [c_out]; each linear layer's W [d_in, d_out] and bias
//! [d_out]; each normalised hidden layer's weight and bias [c]; then PReLU slopes. A
//! conv or linear map followed by batch norm has no bias. Linear weights are
//! input-major, the transpose of PyTorch's `fc{l}.weight` [out, in]: the sparse
//! first layer reads one contiguous row per non-zero input. Files and fixtures use
//! PyTorch's layout; [`Arch::to_files`] and [`Arch::from_files`] convert at that
//! boundary. A plain MLP's layout is the fc layers' then the slopes', as before.

use serde::{Deserialize, Serialize};

use super::activation::Activation;
use super::conv::{ConvShape, ShapeError};
use super::layer::{Layer, NormKind};
use super::linear::LinearShape;
use super::norm::{BatchNorm, LayerNorm};
use super::output::OutputFn;
use super::pool::PoolShape;
use super::spec::{ConvPlan, ConvSpec, Norm, Pool};

/// Architecture: layer widths and the functions between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// Widths from input to output, e.g. [784, 128, 64, 10]: the input, the fully
    /// connected hidden layers, the classes (with conv layers, the first linear layer
    /// reads the flattened last map instead of the input).
    pub sizes: Vec<usize>,
    /// One activation per hidden layer, conv layers first.
    pub activations: Vec<Activation>,
    /// Function applied to the logits.
    pub output: OutputFn,
    /// Inverted dropout after each fully connected hidden activation (0: none).
    #[serde(default)]
    pub dropout: f32,
    /// Conv layers on the image, before the fully connected ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<ConvSpec>,
    /// Pooling after each conv layer's activation.
    #[serde(default, skip_serializing_if = "Pool::is_default")]
    pub pool: Pool,
    /// Normalisation of every hidden layer.
    #[serde(default, skip_serializing_if = "Norm::is_default")]
    pub norm: Norm,
    /// The input image (channels, height, width); None: 1 x 28 x 28 for 784 inputs,
    /// else one channel of a square (or a 1-row) image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<[usize; 3]>,
}

/// Where one map's (conv or linear) parameters sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The weight's start.
    pub w: usize,
    /// The bias's start (None: no bias, before batch norm).
    pub b: Option<usize>,
}

/// A normalised hidden layer: which, its kernel and where its weight and bias sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormSlot {
    /// Hidden layer (0-based, conv layers first).
    pub hidden: usize,
    /// The kernel and its shape.
    pub kind: NormKind,
    /// Channels.
    pub c: usize,
    /// The weight [c] starts here, the bias [c] right after.
    pub w: usize,
}

/// Every layer's shape and place in the flat parameters, derived from an [`Arch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Conv layers, the pool after each and their parameters.
    pub convs: Vec<(ConvShape, Option<PoolShape>, Slot)>,
    /// Linear layers and their parameters.
    pub fcs: Vec<(LinearShape, Slot)>,
    /// Normalised hidden layers, in order.
    pub norms: Vec<NormSlot>,
    /// PReLU hidden layers and their slope's place.
    pub slopes: Vec<(usize, usize)>,
    /// Number of parameters.
    pub total: usize,
}

impl Default for Arch {
    /// The empty architecture, for struct updates: `Arch { sizes, ..Default::default() }`.
    fn default() -> Self {
        Arch::mlp(Vec::new(), Vec::new(), OutputFn::LogSoftmax, 0.0)
    }
}

impl Arch {
    /// A plain MLP (no conv layers, no normalisation).
    pub fn mlp(
        sizes: Vec<usize>,
        activations: Vec<Activation>,
        output: OutputFn,
        dropout: f32,
    ) -> Self {
        Arch {
            sizes,
            activations,
            output,
            dropout,
            conv: Vec::new(),
            pool: Pool::default(),
            norm: Norm::default(),
            image: None,
        }
    }

    /// Number of linear layers.
    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Number of hidden layers, conv layers first.
    pub fn hidden(&self) -> usize {
        self.conv.len() + self.sizes.len() - 2
    }

    /// The input image (channels, height, width).
    pub fn image_dims(&self) -> (usize, usize, usize) {
        if let Some([c, h, w]) = self.image {
            return (c, h, w);
        }
        let n = self.sizes[0];
        let side = (n as f64).sqrt().round() as usize;
        if side * side == n {
            (1, side, side)
        } else {
            (1, 1, n)
        }
    }

    /// The conv layers' shapes on the image, or the first layer that cannot run.
    pub fn conv_plan(&self) -> Result<ConvPlan, ShapeError> {
        ConvPlan::new(&self.conv, self.pool, self.image_dims())
    }

    /// Whether the conv layers fit the image (plain MLPs always do).
    pub fn check(&self) -> Result<(), ShapeError> {
        self.conv_plan().map(|_| ())
    }

    /// Whether layer 0 is a linear map on the input (no conv layers).
    pub fn linear_first(&self) -> bool {
        self.conv.is_empty()
    }

    /// Whether any hidden layer has batch norm (its statistics need the whole batch:
    /// a split batch's workers meet, see `norm::Exchange`).
    pub fn batch_norm(&self) -> bool {
        self.norm == Norm::Batch && self.hidden() > 0
    }

    /// Whether a fully connected hidden layer has batch norm (BatchNorm1d: a batch of
    /// one image cannot train).
    pub fn batch_norm_1d(&self) -> bool {
        self.norm == Norm::Batch && self.sizes.len() > 2
    }

    /// Whether a training batch of `rows` images can train: batch norm on a linear
    /// layer cannot normalise one value per channel (PyTorch raises "Expected more
    /// than 1 value per channel when training"), so such a batch is skipped.
    pub fn trains_on(&self, rows: usize) -> bool {
        rows >= 2 || !self.batch_norm_1d()
    }

    /// Shape of linear layer `l` (the first reads the flattened conv output).
    pub fn shape(&self, l: usize) -> LinearShape {
        let fan_in = if l == 0 {
            self.flat_width()
        } else {
            self.sizes[l]
        };
        LinearShape {
            fan_in,
            fan_out: self.sizes[l + 1],
        }
    }

    /// The first linear layer's input width.
    fn flat_width(&self) -> usize {
        if self.conv.is_empty() {
            return self.sizes[0];
        }
        // A plan that fails is caught by `check` before any network is built.
        self.conv_plan().map_or(self.sizes[0], |p| p.flat)
    }

    /// Number of output classes.
    pub fn classes(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }

    /// Whether hidden layer `i`'s map has a bias (not before batch norm).
    fn has_bias(&self, i: usize) -> bool {
        i >= self.hidden() || self.norm != Norm::Batch
    }

    /// The norm of a hidden layer of `c` channels of `s` values each, if any.
    fn norm_kind(&self, c: usize, s: usize) -> Option<NormKind> {
        match self.norm {
            Norm::None => None,
            Norm::Batch => Some(NormKind::Batch(BatchNorm { c, s })),
            Norm::Layer => Some(NormKind::Layer(LayerNorm { c, s })),
        }
    }

    /// Every layer's shape and the place of its parameters.
    pub fn layout(&self) -> Layout {
        let plan = match self.conv_plan() {
            Ok(p) if !self.conv.is_empty() => p.layers,
            _ => Vec::new(),
        };
        let mut off = 0;
        let mut slot = |weights: usize, bias: Option<usize>| {
            let w = off;
            off += weights;
            let b = bias.map(|c| {
                off += c;
                off - c
            });
            Slot { w, b }
        };
        let mut convs = Vec::new();
        for (k, (shape, pool)) in plan.into_iter().enumerate() {
            let bias = self.has_bias(k).then_some(shape.c_out);
            convs.push((shape, pool, slot(shape.weights(), bias)));
        }
        let fcs: Vec<_> = (0..self.layers())
            .map(|l| {
                let s = self.shape(l);
                let bias = self.has_bias(self.conv.len() + l).then_some(s.fan_out);
                (s, slot(s.fan_in * s.fan_out, bias))
            })
            .collect();
        let mut norms = Vec::new();
        let channels = (convs
            .iter()
            .map(|(s, _, _)| (s.c_out, s.out_h() * s.out_w())))
        .chain(
            fcs.iter()
                .take(self.layers() - 1)
                .map(|(s, _)| (s.fan_out, 1)),
        );
        for (hidden, (c, s)) in channels.enumerate() {
            if let Some(kind) = self.norm_kind(c, s) {
                norms.push(NormSlot {
                    hidden,
                    kind,
                    c,
                    w: slot(2 * c, None).w,
                });
            }
        }
        let slopes = (self.prelu_layers().collect::<Vec<_>>().into_iter())
            .map(|l| (l, slot(1, None).w))
            .collect();
        Layout {
            convs,
            fcs,
            norms,
            slopes,
            total: off,
        }
    }

    /// Where each linear layer's weight and bias start (the bias's place is the end
    /// of the weight, also when the layer has none).
    pub fn offsets(&self) -> Vec<(usize, usize)> {
        let l = self.layout();
        let off = |(s, slot): &(LinearShape, Slot)| (slot.w, slot.w + s.fan_in * s.fan_out);
        l.fcs.iter().map(off).collect()
    }

    /// Total number of parameters.
    pub fn n_params(&self) -> usize {
        self.layout().total
    }

    /// Hidden layers (0-based, conv layers first) whose activation is PReLU, in order.
    pub fn prelu_layers(&self) -> impl Iterator<Item = usize> + '_ {
        self.activations
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Activation::Prelu(_)))
            .map(|(l, _)| l)
    }

    /// Where hidden layer `l`'s PReLU slope sits in the flat parameters, if it has one:
    /// after every other parameter, in layer order.
    pub fn slope_offset(&self, l: usize) -> Option<usize> {
        let layout = self.layout();
        layout.slopes.iter().find(|s| s.0 == l).map(|s| s.1)
    }

    /// The engine's parameters (input-major linear weights) in PyTorch's layout: each
    /// linear weight transposed to [out, in]; everything else as it is.
    pub fn to_files(&self, engine: &[f32]) -> Vec<f32> {
        self.transpose_weights(engine, true)
    }

    /// Parameters in PyTorch's layout (as [`Arch::param_names`] lists them) in the
    /// engine's layout.
    pub fn from_files(&self, files: &[f32]) -> Vec<f32> {
        self.transpose_weights(files, false)
    }

    fn transpose_weights(&self, flat: &[f32], to_files: bool) -> Vec<f32> {
        let mut out = flat.to_vec();
        for (s, slot) in self.layout().fcs {
            let w = slot.w;
            // Engine [in, out] -> files [out, in], or back.
            let (rows, cols) = if to_files {
                (s.fan_in, s.fan_out)
            } else {
                (s.fan_out, s.fan_in)
            };
            for r in 0..rows {
                for c in 0..cols {
                    out[w + c * rows + r] = flat[w + r * cols + c];
                }
            }
        }
        out
    }

    /// PyTorch state-dict names with shapes, in parameter order: conv{k}.weight
    /// [c_out, c_in, k, k], conv{k}.bias; fc{j}.weight [out, in], fc{j}.bias (numbered
    /// from 1 after the conv layers; no bias before batch norm); norm{i}.weight,
    /// norm{i}.bias [c]; act{i}.weight [1] for each PReLU hidden layer i (1-based,
    /// conv layers first).
    pub fn param_names(&self) -> Vec<(String, Vec<usize>)> {
        let l = self.layout();
        let mut names = Vec::new();
        for (k, (s, _, slot)) in l.convs.iter().enumerate() {
            names.push((
                format!("conv{}.weight", k + 1),
                vec![s.c_out, s.c_in, s.k, s.k],
            ));
            if slot.b.is_some() {
                names.push((format!("conv{}.bias", k + 1), vec![s.c_out]));
            }
        }
        for (j, (s, slot)) in l.fcs.iter().enumerate() {
            names.push((format!("fc{}.weight", j + 1), vec![s.fan_out, s.fan_in]));
            if slot.b.is_some() {
                names.push((format!("fc{}.bias", j + 1), vec![s.fan_out]));
            }
        }
        for n in &l.norms {
            for what in ["weight", "bias"] {
                names.push((format!("norm{}.{what}", n.hidden + 1), vec![n.c]));
            }
        }
        let slopes = l
            .slopes
            .iter()
            .map(|(i, _)| (format!("act{}.weight", i + 1), vec![1]));
        names.extend(slopes);
        names
    }

    /// The batch-norm layers' state-dict prefixes (`norm{i}`) and channels, in order:
    /// each has running_mean, running_var [c] and num_batches_tracked (int64).
    pub fn buffer_names(&self) -> Vec<(String, usize)> {
        let l = self.layout();
        let batch = l
            .norms
            .iter()
            .filter(|n| matches!(n.kind, NormKind::Batch(_)));
        batch
            .map(|n| (format!("norm{}", n.hidden + 1), n.c))
            .collect()
    }

    /// The ordered list of layers this architecture runs: for each conv layer its
    /// map, norm, activation and pool; for each fully connected hidden layer its
    /// linear map, norm, activation (a PReLU with its slope's place) and, with
    /// dropout, a dropout layer; then the last linear map and the output function.
    pub fn build(&self) -> Vec<Layer> {
        let l = self.layout();
        let mut layers = Vec::new();
        let mut stats = 0;
        let mut tail = |layers: &mut Vec<Layer>, hidden: usize| {
            if let Some(n) = l.norms.iter().find(|n| n.hidden == hidden) {
                let slot = matches!(n.kind, NormKind::Batch(_)).then(|| {
                    stats += 1;
                    stats - 1
                });
                layers.push(Layer::Norm {
                    kind: n.kind,
                    w: n.w,
                    stats: slot,
                });
            }
            let slope = l.slopes.iter().find(|s| s.0 == hidden).map(|s| s.1);
            let f = self.activations[hidden].clone();
            layers.push(Layer::Activation { f, slope });
        };
        for (k, &(shape, pool, Slot { w, b })) in l.convs.iter().enumerate() {
            layers.push(Layer::Conv { shape, w, b });
            tail(&mut layers, k);
            if let Some(p) = pool {
                layers.push(Layer::Pool(p));
            }
        }
        for (j, &(shape, Slot { w, b })) in l.fcs.iter().enumerate() {
            layers.push(Layer::Linear { shape, w, b });
            if j + 1 < l.fcs.len() {
                tail(&mut layers, l.convs.len() + j);
                if self.dropout > 0.0 {
                    layers.push(Layer::Dropout { p: self.dropout });
                }
            }
        }
        layers.push(Layer::Output(self.output));
        layers
    }
}
