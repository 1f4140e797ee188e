//! The multi-layer perceptron: parameters, forward pass and backward pass.
//!
//! Shapes (n = rows in the batch, L = number of linear layers, d_0 = 784 ... d_L = 10):
//!   x        [n, d_0]         input pixels in [0, 1]
//!   z[l]     [n, d_{l+1}]     pre-activation of layer l (logits for l = L-1)
//!   h[l]     [n, d_{l+1}]     f(z[l]) for hidden layers, before dropout
//!   hd[l]    [n, d_{l+1}]     h[l] * mask[l] (only with dropout)
//!   y        [n, d_L]         output function of the logits
//!   g[l]     [n, d_{l+1}]     dLoss/dz[l]
//! Parameters are one flat vector: W1 [d_0, d_1], fc1.bias [d_1], W2 [d_1, d_2], ...,
//! then PReLU slopes. Weights are input-major, the transpose of PyTorch's
//! `fc{l}.weight` [out, in]: the sparse first layer reads one contiguous row per
//! non-zero input. Files and fixtures use PyTorch's layout; [`Arch::to_files`] and
//! [`Arch::from_files`] convert at that boundary.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::activation::Activation;
use super::init::Init;
use super::layer::LinearShape;
use super::loss::Loss;
use super::output::OutputFn;
use super::sparse::{FirstLayer, Listed, RowLists, SparseColumns, DENSE_ABOVE};
use super::Rng;

/// Architecture: layer widths and the functions between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// Widths from input to output, e.g. [784, 128, 64, 10].
    pub sizes: Vec<usize>,
    /// One activation per hidden layer (sizes.len() - 2 of them).
    pub activations: Vec<Activation>,
    /// Function applied to the logits.
    pub output: OutputFn,
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
}

/// A network: its architecture and its parameters.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// Layer sizes and functions.
    pub arch: Arch,
    /// All weights and biases, laid out as [`Arch::offsets`] says.
    pub params: Vec<f32>,
    offsets: Vec<(usize, usize)>,
}

impl Mlp {
    /// A freshly initialised network: the same draws, in the same order, as PyTorch's
    /// layout would take them, then stored input-major.
    pub fn new(arch: Arch, init: Init, rng: &mut Rng) -> Self {
        let mut params = vec![0.0; arch.n_params()];
        let offsets = arch.offsets();
        for (l, &(w, b)) in offsets.iter().enumerate() {
            let s = arch.shape(l);
            let (ws, bs) = params[w..].split_at_mut(b - w);
            init.fill(rng, s.fan_in, s.fan_out, ws, &mut bs[..s.fan_out]);
        }
        for l in arch.prelu_layers().collect::<Vec<_>>() {
            if let (Some(o), Activation::Prelu(a)) = (arch.slope_offset(l), arch.activations[l]) {
                params[o] = a;
            }
        }
        let params = arch.from_files(&params);
        Mlp {
            arch,
            params,
            offsets,
        }
    }

    /// A network with the given parameters (engine layout, see the module docs) (length must equal `arch.n_params()`).
    pub fn from_params(arch: Arch, params: Vec<f32>) -> Self {
        assert_eq!(params.len(), arch.n_params());
        let offsets = arch.offsets();
        Mlp {
            arch,
            params,
            offsets,
        }
    }

    /// Where layer `l`'s weight [in, out] and bias [out] start in the parameters.
    pub fn offsets_of(&self, l: usize) -> (usize, usize) {
        self.offsets[l]
    }

    /// Weight [in, out] and bias [out] of layer `l` within a flat vector shaped like the parameters.
    pub fn split<'a>(&self, flat: &'a [f32], l: usize) -> (&'a [f32], &'a [f32]) {
        let (w, b) = self.offsets[l];
        let out = self.arch.sizes[l + 1];
        (&flat[w..b], &flat[b..b + out])
    }

    fn split_mut<'a>(&self, flat: &'a mut [f32], l: usize) -> (&'a mut [f32], &'a mut [f32]) {
        let (w, b) = self.offsets[l];
        let out = self.arch.sizes[l + 1];
        let (ws, rest) = flat[w..].split_at_mut(b - w);
        (ws, &mut rest[..out])
    }

    /// Hidden layer `l`'s activation as it computes now: a PReLU layer is a leaky ReLU
    /// with its current learned slope.
    pub fn activation(&self, l: usize) -> Activation {
        match (self.arch.activations[l], self.arch.slope_offset(l)) {
            (Activation::Prelu(_), Some(o)) => Activation::LeakyRelu(self.params[o]),
            (a, _) => a,
        }
    }

    /// Forward pass over `n` rows of `x`; with `dropout` the masks in `ws` are used.
    pub fn forward(&self, ws: &mut Workspace, x: &[f32], n: usize, dropout: bool) {
        let s = self.arch.shape(0);
        let (w, b) = self.split(&self.params, 0);
        ws.listed_now = false;
        if ws.use_sparse(x, n, s.fan_in) {
            ws.sparse
                .forward(w, b, s.fan_out, &mut ws.z[0][..n * s.fan_out]);
        } else {
            s.forward(w, b, x, n, &mut ws.z[0][..n * s.fan_out]);
        }
        self.forward_rest(ws, n, dropout);
    }

    /// Forward pass without dropout over the rows of `x`, the first layer straight
    /// from their listed non-zero inputs (see [`Workspace::takes_listed`]). For
    /// evaluation: no backward pass may follow (it would find no input rows).
    pub fn forward_listed(&self, ws: &mut Workspace, x: Listed) {
        let (s, n) = (self.arch.shape(0), x.pick.len());
        let (w, b) = self.split(&self.params, 0);
        x.forward(w, b, s.fan_out, &mut ws.z[0][..n * s.fan_out]);
        (ws.listed_now, ws.sparse_now, ws.prepared) = (true, false, None);
        self.forward_rest(ws, n, false);
    }

    /// The rest of the forward pass once the first layer's pre-activations are in
    /// `ws.z[0]` (a caller that computed them elsewhere, e.g. split across threads).
    pub fn forward_rest(&self, ws: &mut Workspace, n: usize, dropout: bool) {
        let layers = self.arch.layers();
        for l in 0..layers {
            let s = self.arch.shape(l);
            if l > 0 {
                let (w, b) = self.split(&self.params, l);
                let input: &[f32] = if dropout { &ws.hd[l - 1] } else { &ws.h[l - 1] };
                s.forward(w, b, input, n, &mut ws.z[l][..n * s.fan_out]);
            }
            let z = &ws.z[l][..n * s.fan_out];
            if l + 1 < layers {
                let h = &mut ws.h[l][..n * s.fan_out];
                self.activation(l).forward(z, h);
                if dropout {
                    for ((d, &v), &m) in ws.hd[l].iter_mut().zip(h.iter()).zip(&ws.mask[l]) {
                        *d = v * m;
                    }
                }
            } else {
                self.arch
                    .output
                    .forward(z, &mut ws.y[..n * s.fan_out], s.fan_out);
            }
        }
    }

    /// Backward pass after [`Mlp::forward`] on the same rows: writes every parameter's
    /// gradient of the batch-mean loss into `grads` (shaped like the parameters).
    /// `batch` is the full batch size the mean is taken over (n may be a slice of it).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        ws: &mut Workspace,
        x: &[f32],
        targets: &[u8],
        n: usize,
        batch: usize,
        loss: Loss,
        dropout: bool,
        grads: &mut [f32],
    ) {
        self.backward_layers(ws, Some(x), targets, n, batch, loss, dropout, grads)
    }

    /// [`Mlp::backward`] without the first layer's weight and bias gradients (left
    /// untouched in `grads`): `ws.g[0]` ends holding dLoss/dz of the first layer, for a
    /// caller that computes its gradient elsewhere (e.g. split across threads).
    #[allow(clippy::too_many_arguments)]
    pub fn backward_above_first(
        &self,
        ws: &mut Workspace,
        targets: &[u8],
        n: usize,
        batch: usize,
        loss: Loss,
        dropout: bool,
        grads: &mut [f32],
    ) {
        self.backward_layers(ws, None, targets, n, batch, loss, dropout, grads)
    }

    /// The backward pass; the first layer's parameter gradients only with its input `x`.
    #[allow(clippy::too_many_arguments)]
    fn backward_layers(
        &self,
        ws: &mut Workspace,
        x: Option<&[f32]>,
        targets: &[u8],
        n: usize,
        batch: usize,
        loss: Loss,
        dropout: bool,
        grads: &mut [f32],
    ) {
        assert!(
            !ws.listed_now,
            "a backward pass cannot follow Mlp::forward_listed: it keeps no input rows"
        );
        let layers = self.arch.layers();
        let c = self.arch.classes();
        {
            let last = layers - 1;
            let dy = &mut ws.scratch[..n * c];
            loss.grad(&ws.y[..n * c], targets, c, batch, dy);
            self.arch
                .output
                .backward(&ws.y[..n * c], dy, &mut ws.g[last][..n * c], c);
        }
        for l in (0..layers).rev() {
            let s = self.arch.shape(l);
            let input: &[f32] = if l == 0 {
                let Some(x) = x else { break };
                x
            } else if dropout {
                &ws.hd[l - 1]
            } else {
                &ws.h[l - 1]
            };
            let (w, _) = self.split(&self.params, l);
            let (dw, db) = self.split_mut(grads, l);
            let dx = if l > 0 {
                Some(&mut ws.scratch[..n * s.fan_in])
            } else {
                None
            };
            if l == 0 && ws.sparse_now {
                ws.sparse
                    .weight_grad(&ws.g[0][..n * s.fan_out], s.fan_out, dw, db);
            } else {
                s.backward(w, input, &ws.g[l][..n * s.fan_out], n, dw, db, dx);
            }
            if l > 0 {
                let da = &mut ws.scratch[..n * s.fan_in];
                if dropout {
                    for (d, &m) in da.iter_mut().zip(&ws.mask[l - 1]) {
                        *d *= m;
                    }
                }
                let z = &ws.z[l - 1][..n * s.fan_in];
                if let Some(o) = self.arch.slope_offset(l - 1) {
                    grads[o] = slope_gradient(z, da);
                }
                self.activation(l - 1).backward(
                    z,
                    &ws.h[l - 1][..n * s.fan_in],
                    da,
                    &mut ws.g[l - 1][..n * s.fan_in],
                );
            }
        }
    }
}

/// A PReLU slope's gradient: d/da of a*min(x, 0), summed over the batch (PyTorch:
/// inputs above 0 contribute nothing).
fn slope_gradient(z: &[f32], da: &[f32]) -> f32 {
    let g: f64 = z
        .iter()
        .zip(da)
        .filter(|(&x, _)| x <= 0.0)
        .map(|(&x, &d)| (x * d) as f64)
        .sum();
    g as f32
}

/// Buffers for one batch of up to `cap` rows, reused across steps (no allocation in the loop).
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Largest number of rows this workspace holds.
    pub cap: usize,
    /// Pre-activations per layer.
    pub z: Vec<Vec<f32>>,
    /// Hidden activations per hidden layer.
    pub h: Vec<Vec<f32>>,
    /// Hidden activations after dropout (empty without dropout).
    pub hd: Vec<Vec<f32>>,
    /// Dropout multipliers (0 or 1/(1-p)) per hidden layer (empty without dropout).
    pub mask: Vec<Vec<f32>>,
    /// Network outputs.
    pub y: Vec<f32>,
    /// Gradients with respect to each layer's pre-activation.
    pub g: Vec<Vec<f32>>,
    /// Scratch for dLoss/dy and for gradients flowing into a layer's input.
    pub scratch: Vec<f32>,
    /// Which first-layer kernel to use.
    pub first_layer: FirstLayer,
    /// The last batch's non-zero inputs, when the sparse kernel ran.
    sparse: SparseColumns,
    /// Whether the last forward pass used the sparse first layer (backward follows it).
    sparse_now: bool,
    /// The choice [`Workspace::prepare_sparse`] made for the next forward pass over
    /// `n` rows: Some((n, true)) with its input in `sparse`, Some((n, false)) dense.
    prepared: Option<(usize, bool)>,
    /// Whether the last forward pass read listed inputs (no backward pass may follow).
    listed_now: bool,
    /// Random draws for one layer's dropout mask.
    draws: Vec<u32>,
}

impl Workspace {
    /// Buffers for `cap` rows of `arch`, with dropout masks if `dropout`.
    pub fn new(arch: &Arch, cap: usize, dropout: bool) -> Self {
        let widths = &arch.sizes[1..];
        let hidden = &widths[..widths.len() - 1];
        let buf = |w: &usize| vec![0.0f32; cap * w];
        let widest = arch.sizes.iter().copied().max().unwrap_or(0);
        Workspace {
            cap,
            z: widths.iter().map(buf).collect(),
            h: hidden.iter().map(buf).collect(),
            hd: if dropout {
                hidden.iter().map(buf).collect()
            } else {
                Vec::new()
            },
            mask: if dropout {
                hidden.iter().map(buf).collect()
            } else {
                Vec::new()
            },
            y: vec![0.0; cap * arch.classes()],
            g: widths.iter().map(buf).collect(),
            scratch: vec![0.0; cap * widest],
            first_layer: FirstLayer::Auto,
            sparse: SparseColumns::default(),
            sparse_now: false,
            prepared: None,
            listed_now: false,
            draws: if dropout {
                vec![0; cap * widest]
            } else {
                Vec::new()
            },
        }
    }

    /// The largest share of non-zero inputs the first layer runs sparse at (None:
    /// never, by policy or for want of FMA).
    pub fn sparse_limit(&self) -> Option<f32> {
        match self.first_layer {
            FirstLayer::Dense => None,
            FirstLayer::Sparse => Some(f32::INFINITY),
            FirstLayer::Auto => super::sparse::available().then_some(DENSE_ABOVE),
        }
    }

    /// Whether the first layer runs sparse on this batch of listed rows of `width`
    /// inputs, so that [`Mlp::forward_listed`] may evaluate it.
    pub fn takes_listed(&self, x: &Listed, width: usize) -> bool {
        !x.pick.is_empty()
            && x.pick.len() <= self.cap
            && self.sparse_limit().is_some_and(|max| x.share(width) <= max)
    }

    /// Give the next forward pass its input as rows of bytes (rows `pick` of
    /// `images`, `width` bytes each, a byte meaning `values[byte]`, with their
    /// non-zero entries in `lists` when listed beforehand) if the first layer will run
    /// sparse on them: that pass then reads no dense input. `train`: the batch will
    /// also be trained on. Returns whether it did; if not, the caller passes the dense
    /// rows as usual.
    pub fn prepare_sparse(
        &mut self,
        images: &[u8],
        lists: Option<RowLists>,
        pick: &[u32],
        width: usize,
        values: &[f32; 256],
        train: bool,
    ) -> bool {
        let max_share = self.sparse_limit().filter(|_| !pick.is_empty());
        let sparse = max_share.is_some_and(|max| {
            let built = match lists {
                Some(l) => self
                    .sparse
                    .build_from_lists(l, pick, width, values, max, train),
                None => self
                    .sparse
                    .build_from_bytes(images, pick, width, values, max),
            };
            built.is_some()
        });
        if sparse && train {
            // Sorted now, the forward pass can run from the columns too.
            self.sparse.sort_columns();
        }
        self.prepared = Some((pick.len(), sparse));
        sparse
    }

    /// Decide the first layer's kernel for this batch (building its sparse rows if
    /// the sparse one may run) and remember the choice for the backward pass.
    fn use_sparse(&mut self, x: &[f32], n: usize, width: usize) -> bool {
        // A prepared choice counts only for a pass over exactly its rows.
        if let Some((rows, sparse)) = self.prepared.take().filter(|p| p.0 == n) {
            self.sparse_now = sparse && self.sparse.rows() == rows;
            return self.sparse_now;
        }
        self.sparse_now = match self.first_layer {
            FirstLayer::Dense => false,
            FirstLayer::Sparse => self.sparse.build(x, n, width, f32::INFINITY).is_some(),
            FirstLayer::Auto => {
                super::sparse::available() && self.sparse.build(x, n, width, DENSE_ABOVE).is_some()
            }
        };
        self.sparse_now
    }

    /// Whether the last forward pass ran the sparse first layer.
    pub fn used_sparse(&self) -> bool {
        self.sparse_now
    }

    /// Draw fresh inverted-dropout masks for `n` rows: each unit kept with probability 1-p.
    pub fn sample_dropout(&mut self, rng: &mut Rng, p: f32, n: usize, widths: &[usize]) {
        let keep = 1.0 / (1.0 - p);
        for (mask, &w) in self.mask.iter_mut().zip(widths) {
            let mask = &mut mask[..n * w];
            // The draws first (a serial chain through the generator's state), then the
            // comparisons without a branch: the same numbers as `rng.random::<f32>()`
            // each time, whose uniform f32 is the top 24 bits times 2^-24.
            let draws = &mut self.draws[..mask.len()];
            draws.iter_mut().for_each(|d| *d = rng.next_u32());
            let scale = 1.0 / (1u32 << 24) as f32;
            for (m, &d) in mask.iter_mut().zip(draws.iter()) {
                let u = scale * (d >> 8) as f32;
                *m = if u < p { 0.0 } else { keep };
            }
        }
    }

    /// The network's outputs for the last forward pass of `n` rows.
    pub fn outputs(&self, n: usize) -> &[f32] {
        &self.y[..n * (self.y.len() / self.cap.max(1))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn net(act: Activation, output: OutputFn) -> Mlp {
        let arch = Arch {
            sizes: vec![5, 4, 3, 3],
            activations: vec![act, act],
            output,
        };
        Mlp::new(arch, Init::Torch, &mut Rng::seed_from_u64(7))
    }

    fn loss_of(m: &Mlp, x: &[f32], t: &[u8], loss: Loss) -> f64 {
        let mut ws = Workspace::new(&m.arch, 2, false);
        m.forward(&mut ws, x, 2, false);
        loss.sum(ws.outputs(2), t, 3) / 2.0
    }

    /// The sparse first layer (from dense rows or from bytes) gives the dense path's
    /// outputs and gradients; Auto picks it for mostly-zero batches only.
    #[test]
    fn sparse_and_dense_first_layers_agree() {
        // The sparse kernels need AVX2+FMA: at the CPU's tier whatever ACTLAB_SIMD says.
        let _tier = crate::simd::force(crate::simd::detected());
        let arch = Arch {
            sizes: vec![40, 70, 8, 3],
            activations: vec![Activation::Relu; 2],
            output: OutputFn::LogSoftmax,
        };
        let m = Mlp::new(arch, Init::Torch, &mut Rng::seed_from_u64(3));
        let n = 6;
        let bytes: Vec<u8> = (0..n * 40)
            .map(|i| if i % 5 == 0 { (i % 251) as u8 } else { 0 })
            .collect();
        let table: [f32; 256] = std::array::from_fn(|b| b as f32 / 255.0);
        let x: Vec<f32> = bytes.iter().map(|&b| table[b as usize]).collect();
        let t = [0u8, 1, 2, 0, 1, 2];
        // The same rows listed beforehand, as a dataset lists its non-zero pixels.
        let (mut ends, mut cols, mut nz) = (Vec::new(), Vec::new(), Vec::new());
        for row in bytes.chunks(40) {
            for (c, &b) in row.iter().enumerate().filter(|p| *p.1 != 0) {
                cols.push(c as u16);
                nz.push(b);
            }
            ends.push(cols.len() as u32);
        }
        let lists = RowLists {
            ends: &ends,
            cols: &cols,
            bytes: &nz,
        };
        // Input 0: dense rows, 1: bytes, 2: listed bytes.
        let run = |policy: FirstLayer, input: u8| {
            let mut ws = Workspace::new(&m.arch, n, false);
            ws.first_layer = policy;
            let rows: Vec<u32> = (0..n as u32).collect();
            if input > 0 {
                let listed = (input == 2).then_some(lists);
                // Listed rows are prepared as for evaluation (not counted, not sorted):
                // the backward pass below must count and sort them itself.
                let train = listed.is_none();
                assert!(ws.prepare_sparse(&bytes, listed, &rows, 40, &table, train));
            }
            let mut grads = vec![0.0; m.params.len()];
            m.forward(&mut ws, if input > 0 { &[] } else { &x }, n, false);
            let used = ws.used_sparse();
            let out = ws.outputs(n).to_vec();
            m.backward(&mut ws, &x, &t, n, n, Loss::Nll, false, &mut grads);
            (out, grads, used)
        };
        let (dense_out, dense_grads, used) = run(FirstLayer::Dense, 0);
        assert!(!used);
        for (policy, input) in [(FirstLayer::Sparse, 0), (FirstLayer::Auto, 1)] {
            let (out, grads, used) = run(policy, input);
            assert!(used);
            for (a, b) in out
                .iter()
                .zip(&dense_out)
                .chain(grads.iter().zip(&dense_grads))
            {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
        let from_bytes = run(FirstLayer::Auto, 1);
        assert_eq!(
            run(FirstLayer::Auto, 2),
            from_bytes,
            "lists give the bytes' bits"
        );
        // Evaluation straight from the lists: the same outputs, and no backward pass.
        let mut ws = Workspace::new(&m.arch, n, false);
        let rows: Vec<u32> = (0..n as u32).collect();
        let listed = Listed {
            lists,
            pick: &rows,
            values: &table,
        };
        assert_eq!(
            ws.takes_listed(&listed, 40),
            super::super::sparse::available()
        );
        m.forward_listed(&mut ws, listed);
        assert_eq!(ws.outputs(n), &from_bytes.0[..]);
        let mut grads = vec![0.0; m.params.len()];
        let backward = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            m.backward(&mut ws, &x, &t, n, n, Loss::Nll, false, &mut grads)
        }));
        assert!(
            backward.is_err(),
            "a backward pass after forward_listed is refused"
        );
        let (_, _, used) = run(FirstLayer::Auto, 0);
        assert_eq!(
            used,
            super::super::sparse::available(),
            "20% non-zero runs sparse"
        );
        let mut ws = Workspace::new(&m.arch, n, false);
        m.forward(&mut ws, &vec![0.5; n * 40], n, false);
        assert!(!ws.used_sparse(), "a dense batch runs dense");
    }

    /// Every parameter's gradient against central differences in f64 of the f32 loss.
    #[allow(clippy::needless_range_loop)] // the loop perturbs m.params[i] in place
    #[test]
    fn gradients_match_finite_differences() {
        let x = [0.1, 0.9, 0.3, 0.0, 0.7, 0.5, 0.2, 0.8, 1.0, 0.4];
        let t = [2u8, 0];
        let cases = [
            (Activation::Relu, OutputFn::LogSoftmax, Loss::Nll),
            (Activation::Tanh, OutputFn::Identity, Loss::CrossEntropy),
            (Activation::Sigmoid, OutputFn::Softmax, Loss::Mse),
            (Activation::Gelu, OutputFn::Sigmoid, Loss::Bce),
            (Activation::Silu, OutputFn::Sigmoid, Loss::CrossEntropy),
            // Slopes of 0.25 learned: the last parameters are the two PReLU slopes.
            (Activation::Prelu(0.25), OutputFn::LogSoftmax, Loss::Nll),
        ];
        for (act, out, loss) in cases {
            let mut m = net(act, out);
            if let Activation::Prelu(_) = act {
                assert_eq!(
                    m.arch.prelu_layers().count(),
                    2,
                    "one slope per hidden layer"
                );
                // Push some pre-activations negative so the slopes get a gradient.
                let (_, b) = m.arch.offsets()[0];
                m.params[b] -= 2.0;
            }
            let mut ws = Workspace::new(&m.arch, 2, false);
            let mut grads = vec![0.0; m.params.len()];
            m.forward(&mut ws, &x, 2, false);
            m.backward(&mut ws, &x, &t, 2, 2, loss, false, &mut grads);
            for i in 0..m.params.len() {
                let orig = m.params[i];
                let h = 1e-2;
                m.params[i] = orig + h;
                let lp = loss_of(&m, &x, &t, loss);
                m.params[i] = orig - h;
                let lm = loss_of(&m, &x, &t, loss);
                m.params[i] = orig;
                let numeric = (lp - lm) / (2.0 * h as f64);
                assert!(
                    (numeric - grads[i] as f64).abs() < 1e-3 * (1.0 + numeric.abs()),
                    "{act}/{out}/{loss} param {i}: numeric {numeric} vs {}",
                    grads[i]
                );
            }
        }
    }

    #[test]
    fn dropout_masks_scale_and_zero() {
        let m = net(Activation::Relu, OutputFn::LogSoftmax);
        let mut ws = Workspace::new(&m.arch, 2, true);
        let mut rng = Rng::seed_from_u64(1);
        ws.sample_dropout(&mut rng, 0.5, 2, &[4, 3]);
        assert!(ws.mask.iter().flatten().all(|&v| v == 0.0 || v == 2.0));
        assert!(ws.mask.iter().flatten().any(|&v| v == 0.0));
        assert!(ws.mask.iter().flatten().any(|&v| v == 2.0));
    }
}
