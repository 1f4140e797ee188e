//! Architecture: layer widths and the functions between them, as data; the list of
//! layers a network runs is built from it ([`Arch::build`]).
//!
//! Parameters are one flat vector: W1 [d_0, d_1], fc1.bias [d_1], W2 [d_1, d_2], ...,
//! then PReLU slopes. Weights are input-major, the transpose of PyTorch's
//! `fc{l}.weight` [out, in]: the sparse first layer reads one contiguous row per
//! non-zero input. Files and fixtures use PyTorch's layout; [`Arch::to_files`] and
//! [`Arch::from_files`] convert at that boundary.

use serde::{Deserialize, Serialize};

use super::activation::Activation;
use super::layer::Layer;
use super::linear::LinearShape;
use super::output::OutputFn;

/// Architecture: layer widths and the functions between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// Widths from input to output, e.g. [784, 128, 64, 10].
    pub sizes: Vec<usize>,
    /// One activation per hidden layer (sizes.len() - 2 of them).
    pub activations: Vec<Activation>,
    /// Function applied to the logits.
    pub output: OutputFn,
    /// Inverted dropout after each hidden activation, with this probability (0: none).
    #[serde(default)]
    pub dropout: f32,
}

impl Arch {
    /// Number of linear layers.
    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Shape of linear layer `l`.
    pub fn shape(&self, l: usize) -> LinearShape {
        LinearShape {
            fan_in: self.sizes[l],
            fan_out: self.sizes[l + 1],
        }
    }

    /// Number of output classes.
    pub fn classes(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }

    /// Offsets of each layer's weight and bias in the flat parameter vector.
    pub fn offsets(&self) -> Vec<(usize, usize)> {
        let mut off = 0;
        (0..self.layers())
            .map(|l| {
                let s = self.shape(l);
                let w = off;
                off += s.fan_in * s.fan_out;
                let b = off;
                off += s.fan_out;
                (w, b)
            })
            .collect()
    }

    /// Total number of parameters: the linear layers', then one slope per PReLU layer.
    pub fn n_params(&self) -> usize {
        let linear: usize = (0..self.layers()).map(|l| self.shape(l).params()).sum();
        linear + self.prelu_layers().count()
    }

    /// Hidden layers (0-based) whose activation is PReLU, in order.
    pub fn prelu_layers(&self) -> impl Iterator<Item = usize> + '_ {
        self.activations
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Activation::Prelu(_)))
            .map(|(l, _)| l)
    }

    /// Where hidden layer `l`'s PReLU slope sits in the flat parameters, if it has one:
    /// after every linear layer's weight and bias, in layer order.
    pub fn slope_offset(&self, l: usize) -> Option<usize> {
        let linear: usize = (0..self.layers()).map(|k| self.shape(k).params()).sum();
        self.prelu_layers().position(|k| k == l).map(|i| linear + i)
    }

    /// The engine's parameters (input-major weights) in PyTorch's layout: each weight
    /// transposed to [out, in]; biases and slopes as they are.
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
        for (l, (w, b)) in self.offsets().into_iter().enumerate() {
            let s = self.shape(l);
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
            debug_assert_eq!(b - w, rows * cols);
        }
        out
    }

    /// PyTorch state-dict names with shapes, in parameter order: fc1.weight [out, in],
    /// fc1.bias [out], ..., then act{i}.weight [1] for each PReLU hidden layer i (1-based,
    /// the name of a module attribute `act{i} = nn.PReLU()`).
    pub fn param_names(&self) -> Vec<(String, Vec<usize>)> {
        let linear = (0..self.layers()).flat_map(|l| {
            let s = self.shape(l);
            [
                (format!("fc{}.weight", l + 1), vec![s.fan_out, s.fan_in]),
                (format!("fc{}.bias", l + 1), vec![s.fan_out]),
            ]
        });
        let slopes = self
            .prelu_layers()
            .map(|l| (format!("act{}.weight", l + 1), vec![1]));
        linear.chain(slopes).collect()
    }

    /// The ordered list of layers this architecture runs: for each hidden layer its
    /// linear map, its activation (a PReLU with its slope's place in the parameters)
    /// and, with dropout, a dropout layer; then the last linear map and the output
    /// function.
    pub fn build(&self) -> Vec<Layer> {
        let offsets = self.offsets();
        let mut layers = Vec::new();
        for (l, &(w, b)) in offsets.iter().enumerate() {
            layers.push(Layer::Linear {
                shape: self.shape(l),
                w,
                b,
            });
            if let Some(f) = self.activations.get(l) {
                let slope = self.slope_offset(l);
                let f = f.clone();
                layers.push(Layer::Activation { f, slope });
                if self.dropout > 0.0 {
                    layers.push(Layer::Dropout { p: self.dropout });
                }
            }
        }
        layers.push(Layer::Output(self.output));
        layers
    }
}
