//! A network: its architecture, its parameters and the ordered list of layers it
//! runs, with the forward pass (training or evaluation) and the backward pass.
//!
//! Shapes (n = rows in the batch): x [n, d_0] → layer 0 → out[0] → ... → out[L-1]
//! [n, classes]; the backward pass runs the list in reverse from dLoss/d out[L-1].
//! Layer 0 alone reads the batch's input: a first linear map in any of its forms
//! ([`Input`], [`TrainInput`]), a conv layer (or a linear map without a bias) dense
//! rows; every other layer reads the output of the layer before it (in evaluation,
//! dropout layers are skipped).
//!
//! Only a training forward pass returns a [`Trace`], and only a trace runs the
//! backward pass: a backward pass after an evaluation pass does not compile.

use super::arch::{Arch, Slot};
use super::init::Init;
use super::input::{Input, TrainInput};
use super::layer::{Ctx, Layer};
use super::loss::Loss;
use super::norm::RunningStats;
use super::workspace::Workspace;
use super::Rng;
use crate::data::Label;

/// A network: its architecture, its parameters, its buffers and its layers.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// Layer sizes and functions.
    pub arch: Arch,
    /// All weights and biases, laid out as [`Arch::layout`] says.
    pub params: Vec<f32>,
    /// Each batch-norm layer's running statistics, in order ([`Arch::buffer_names`]):
    /// buffers, not parameters (the optimiser never sees them).
    pub stats: Vec<RunningStats>,
    layers: Vec<Layer>,
}

/// A training forward pass, kept for its backward pass.
pub struct Trace<'a> {
    ws: &'a mut Workspace,
    /// The first layer's input; None when the outputs of the layers below `from` were
    /// computed elsewhere (and their gradients are too).
    input: Option<TrainInput<'a>>,
    /// The first layer the pass ran (1 after a first layer run here).
    from: usize,
    n: usize,
}

/// Draw one map's weight and bias (if it has one) as `init` does for PyTorch's
/// layout [out, in].
fn fill_slot(
    (init, rng): (Init, &mut Rng),
    params: &mut [f32],
    slot: Slot,
    (fan_in, fan_out): (usize, usize),
    (weights, bias): (usize, usize),
) {
    let (ws, rest) = params[slot.w..].split_at_mut(weights);
    let bs: &mut [f32] = match slot.b {
        Some(b) => &mut rest[b - slot.w - weights..][..bias],
        None => &mut [],
    };
    init.fill(rng, fan_in, fan_out, ws, bs);
}

impl Mlp {
    /// A freshly initialised network: the same draws, in the same order, as PyTorch's
    /// layout would take them (conv layers, then linear ones), then stored
    /// input-major; norms start at weight 1, bias 0.
    pub fn new(arch: Arch, init: Init, rng: &mut Rng) -> Self {
        let layout = arch.layout();
        let mut params = vec![0.0; layout.total];
        for (s, _, slot) in &layout.convs {
            let fans = (s.c_in * s.k * s.k, s.c_out * s.k * s.k);
            fill_slot(
                (init, rng),
                &mut params,
                *slot,
                fans,
                (s.weights(), s.c_out),
            );
        }
        for (s, slot) in &layout.fcs {
            let sizes = (s.fan_in * s.fan_out, s.fan_out);
            fill_slot(
                (init, rng),
                &mut params,
                *slot,
                (s.fan_in, s.fan_out),
                sizes,
            );
        }
        for n in &layout.norms {
            params[n.w..n.w + n.c].fill(1.0);
        }
        for &(l, o) in &layout.slopes {
            if let super::Activation::Prelu(a) = &arch.activations[l] {
                params[o] = *a;
            }
        }
        let params = arch.from_files(&params);
        Self::from_params(arch, params)
    }

    /// A network with the given parameters (engine layout, see [`super::arch`]) and
    /// fresh running statistics; their length must equal `arch.n_params()`.
    pub fn from_params(arch: Arch, params: Vec<f32>) -> Self {
        assert_eq!(
            params.len(),
            arch.n_params(),
            "parameters of the wrong length"
        );
        let layers = arch.build();
        let stats = (arch.buffer_names().iter())
            .map(|(_, c)| RunningStats::new(*c))
            .collect();
        Mlp {
            arch,
            params,
            stats,
            layers,
        }
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Whether the first layer needs its input dense (a conv layer): the sparse
    /// kernels serve a first linear layer, with a bias or without (before batch norm).
    pub fn dense_input(&self) -> bool {
        !matches!(self.layers[0], Layer::Linear { .. })
    }

    /// A buffer for this network's first-layer input: dense rows when the first
    /// layer needs them, else chosen by each batch.
    pub fn input_buf(&self) -> super::InputBuf {
        if self.dense_input() {
            super::InputBuf::new(super::FirstLayer::Dense)
        } else {
            super::InputBuf::default()
        }
    }

    /// Where linear layer `l`'s weight [in, out] and bias [out] start in the parameters.
    pub fn offsets_of(&self, l: usize) -> (usize, usize) {
        self.arch.offsets()[l]
    }

    /// Hidden layer `l`'s activation as it computes now (a PReLU with its learned slope).
    pub fn activation(&self, l: usize) -> super::Activation {
        let slope = self.arch.slope_offset(l);
        Layer::activation(&self.arch.activations[l], slope, &self.params).into_owned()
    }

    /// Where linear layer `l` (0-based, the last one's output is the logits) and the
    /// activation after it (for a hidden layer; else the output function) are in the
    /// layer list.
    pub fn hidden_at(&self, l: usize) -> (usize, usize) {
        let lin = (self.layers.iter().enumerate())
            .filter(|(_, x)| matches!(x, Layer::Linear { .. }))
            .nth(l)
            .map_or(0, |(i, _)| i);
        let act = (self.layers.iter().enumerate().skip(lin + 1))
            .find(|(_, x)| matches!(x, Layer::Activation { .. } | Layer::Output(_)))
            .map_or(lin + 1, |(i, _)| i);
        (lin, act)
    }

    /// Evaluation forward pass (dropout off, batch norm by its running statistics);
    /// returns the outputs [n, classes].
    pub fn forward_eval<'w>(&self, ws: &'w mut Workspace, x: Input<'_>) -> &'w [f32] {
        let n = x.rows();
        self.load_stats(ws);
        self.first_forward(ws, x, n, false);
        self.forward_from(ws, 1, n, false);
        ws.outputs(n)
    }

    /// Training forward pass (dropout on, with the masks sampled in `ws`; batch norm
    /// by the batch's statistics, its running ones updated in `ws`, see
    /// [`Mlp::keep_stats`]).
    pub fn forward_train<'a>(&self, ws: &'a mut Workspace, x: TrainInput<'a>) -> Trace<'a> {
        assert!(ws.trains(), "a training pass needs a training workspace");
        let n = Input::from(x).rows();
        self.load_stats(ws);
        self.first_forward(ws, x.into(), n, true);
        self.forward_from(ws, 1, n, true);
        Trace {
            ws,
            input: Some(x),
            from: 1,
            n,
        }
    }

    /// Training forward pass over `n` rows from layer `from` (at least 1), whose input
    /// (the output of layer `from - 1`) a caller already wrote into `ws`
    /// ([`Workspace::output_of_mut`]); the trace's backward pass stops at that
    /// output's gradient ([`Workspace::grad_of`] of layer `from - 1`).
    pub fn forward_train_above<'a>(
        &self,
        ws: &'a mut Workspace,
        from: usize,
        n: usize,
    ) -> Trace<'a> {
        assert!(ws.trains(), "a training pass needs a training workspace");
        assert!(from >= 1, "layer 0 reads the batch's input");
        self.load_stats(ws);
        self.forward_from(ws, from, n, true);
        Trace {
            ws,
            input: None,
            from,
            n,
        }
    }

    /// A training pass over no rows from layer `from`, for a worker whose share of a
    /// split batch is empty: only the meetings with the other workers of the batch
    /// norms at or above `from`, with zero sums, in the order a pass over rows has
    /// them (forward, then backward). Its gradients stay zero.
    pub fn sit_out(&self, ws: &mut Workspace, from: usize, grads: &mut [f32]) {
        if ws.seat.is_none() {
            return;
        }
        self.load_stats(ws);
        let Workspace { aux, col, seat, .. } = ws;
        let norms: Vec<usize> = (self.layers.iter().enumerate().skip(from))
            .filter(|(_, l)| matches!(l, Layer::Norm { stats: Some(_), .. }))
            .map(|(i, _)| i)
            .collect();
        let backward = norms.iter().rev().map(|&i| (i, true));
        for (i, back) in norms.iter().map(|&i| (i, false)).chain(backward) {
            let mut c = Ctx {
                params: &self.params,
                n: 0,
                mask: &[],
                train: true,
                aux: &mut aux[i],
                col: (&mut col.0, &mut col.1),
                seat: seat.as_mut(),
            };
            match back {
                false => self.layers[i].forward(&mut c, &[], &mut []),
                true => self.layers[i].backward(&mut c, &[], &[], &[], &mut [], grads),
            }
        }
    }

    /// The network's running statistics into the workspace's batch-norm layers, where
    /// a pass reads (and a training pass updates) them.
    fn load_stats(&self, ws: &mut Workspace) {
        for (layer, aux) in self.layers.iter().zip(&mut ws.aux) {
            if let Layer::Norm { stats: Some(k), .. } = layer {
                match &mut aux.running {
                    Some(r) => r.clone_from(&self.stats[*k]),
                    slot => *slot = Some(self.stats[*k].clone()),
                }
            }
        }
    }

    /// Keep the running statistics a training pass in `ws` left (after the step that
    /// ran it: the whole batch must have been that one pass).
    pub fn keep_stats(&mut self, ws: &Workspace) {
        for (layer, aux) in self.layers.iter().zip(&ws.aux) {
            if let (Layer::Norm { stats: Some(k), .. }, Some(r)) = (layer, &aux.running) {
                self.stats[*k].clone_from(r);
            }
        }
    }

    /// Layer 0 on the batch's input: a linear map reads it in any form, any other
    /// layer reads it dense.
    fn first_forward(&self, ws: &mut Workspace, x: Input<'_>, n: usize, train: bool) {
        assert!(n <= ws.cap, "{n} rows for a workspace of {}", ws.cap);
        let width = self.arch.sizes[0];
        if let Layer::Linear { shape, w, b } = self.layers[0] {
            let wt = &self.params[w..w + shape.fan_in * shape.fan_out];
            // No bias (before batch norm): an empty one, which every kernel skips.
            let bias = b.map_or(&[][..], |b| &self.params[b..b + shape.fan_out]);
            let y = ws.output_of_mut(0, n);
            return match x {
                Input::Dense { x, .. } => shape.forward(wt, bias, &x[..n * shape.fan_in], n, y),
                Input::Sparse(c) => c.forward(wt, bias, shape.fan_out, y),
                Input::Listed(l) => l.forward(wt, bias, shape.fan_out, y),
            };
        }
        let Input::Dense { x, .. } = x else {
            panic!("this network's first layer reads dense input (InputBuf policy Dense)")
        };
        let cap = ws.cap.max(1);
        let Workspace {
            out,
            aux,
            col,
            seat,
            ..
        } = ws;
        let y = &mut out[0];
        let len = n * (y.len() / cap);
        let mut c = Ctx {
            params: &self.params,
            n,
            mask: &[],
            train,
            aux: &mut aux[0],
            col: (&mut col.0, &mut col.1),
            seat: seat.as_mut(),
        };
        self.layers[0].forward(&mut c, &x[..n * width], &mut y[..len]);
    }

    /// Layers `from..` in order; in evaluation, dropout layers pass their input on.
    fn forward_from(&self, ws: &mut Workspace, from: usize, n: usize, train: bool) {
        let cap = ws.cap.max(1);
        let rows = |v: &[f32]| n * (v.len() / cap);
        let Workspace {
            out,
            mask,
            aux,
            col,
            seat,
            ..
        } = ws;
        let mut src = from - 1;
        for (i, layer) in self.layers.iter().enumerate().skip(from) {
            if !train && layer.training_only() {
                continue;
            }
            let (before, after) = out.split_at_mut(i);
            let (x, y) = (&before[src], &mut after[0]);
            let (x, len) = (&x[..rows(x)], rows(y));
            let mut c = Ctx {
                params: &self.params,
                n,
                mask: &mask[i][..rows(&mask[i])],
                train,
                aux: &mut aux[i],
                col: (&mut col.0, &mut col.1),
                seat: seat.as_mut(),
            };
            layer.forward(&mut c, x, &mut y[..len]);
            src = i;
        }
    }
}

impl Trace<'_> {
    /// The outputs of the pass [n, classes].
    pub fn outputs(&self) -> &[f32] {
        self.ws.outputs(self.n)
    }

    /// The backward pass: every parameter's gradient of the batch-mean loss into
    /// `grads` (shaped like the parameters); `batch` is the size the mean is taken
    /// over (the pass's rows may be a slice of it). A pass from layer `from` (see
    /// [`Mlp::forward_train_above`]) leaves the gradients of the layers below it
    /// untouched and the gradient at its input in the workspace
    /// ([`Workspace::grad_of`] of layer `from - 1`).
    pub fn backward(
        self,
        net: &Mlp,
        targets: &[Label],
        batch: usize,
        loss: Loss,
        grads: &mut [f32],
    ) {
        let (n, from) = (self.n, self.from);
        let Workspace {
            cap,
            out,
            grad,
            mask,
            aux,
            col,
            seat,
            ..
        } = self.ws;
        let rows = |v: &[f32]| n * (v.len() / (*cap).max(1));
        let last = net.layers.len() - 1;
        let y = &out[last][..rows(&out[last])];
        let dy = &mut grad[last];
        let len = rows(dy);
        loss.grad(y, targets, net.arch.classes(), batch, &mut dy[..len]);
        for i in (from..=last).rev() {
            let mut ctx = Ctx {
                params: &net.params,
                n,
                mask: &mask[i][..rows(&mask[i])],
                train: true,
                aux: &mut aux[i],
                col: (&mut col.0, &mut col.1),
                seat: seat.as_mut(),
            };
            let (x, y) = (&out[i - 1], &out[i]);
            let (gb, ga) = grad.split_at_mut(i);
            let (dx, dy) = (&mut gb[i - 1], &ga[0]);
            let (x, y) = (&x[..rows(x)], &y[..rows(y)]);
            let (dx, dy) = (&mut dx[..x.len()], &dy[..y.len()]);
            net.layers[i].backward(&mut ctx, x, y, dy, dx, grads);
        }
        let dy = &grad[0][..rows(&grad[0])];
        let Some(input) = self.input else { return };
        let ctx = Ctx {
            params: &net.params,
            n,
            mask: &[],
            train: true,
            aux: &mut aux[0],
            col: (&mut col.0, &mut col.1),
            seat: seat.as_mut(),
        };
        net.first_backward(ctx, input, &out[0][..dy.len()], dy, grads);
    }
}

impl Mlp {
    /// Layer 0's parameter gradients from its output gradient `dy`: a linear map
    /// reads its input in any form, any other first layer dense rows.
    fn first_backward(
        &self,
        mut ctx: Ctx,
        input: TrainInput,
        y: &[f32],
        dy: &[f32],
        grads: &mut [f32],
    ) {
        let n = ctx.n;
        if let Layer::Linear { shape, w, b } = self.layers[0] {
            let end = w + shape.fan_in * shape.fan_out;
            let (dw, rest) = grads[w..].split_at_mut(end - w);
            let db = match b {
                Some(b) => &mut rest[b - end..b - end + shape.fan_out],
                None => &mut [][..],
            };
            return match input {
                TrainInput::Dense { x, .. } => {
                    let x = &x[..n * shape.fan_in];
                    shape.backward(&self.params[w..end], x, dy, n, dw, db, None)
                }
                TrainInput::Sparse(cols) => {
                    cols.weight_grad_sorted(dy, shape.fan_out, dw, db, false)
                }
            };
        }
        let TrainInput::Dense { x, .. } = input else {
            panic!("this network's first layer reads dense input (InputBuf policy Dense)")
        };
        let x = &x[..n * self.arch.sizes[0]];
        self.layers[0].backward(&mut ctx, x, y, dy, &mut [], grads);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::nonzero::RowLists;
    use crate::nn::input::{ByteRows, InputBuf};
    use crate::nn::sparse::FirstLayer;
    use crate::nn::{Activation, OutputFn};
    use rand::SeedableRng;

    fn arch(sizes: Vec<usize>, act: Activation, output: OutputFn, dropout: f32) -> Arch {
        let activations = vec![act; sizes.len() - 2];
        Arch::mlp(sizes, activations, output, dropout)
    }

    fn net(act: Activation, output: OutputFn, dropout: f32) -> Mlp {
        let a = arch(vec![5, 4, 3, 3], act, output, dropout);
        Mlp::new(a, Init::Torch, &mut Rng::seed_from_u64(7))
    }

    /// The batch-mean loss of a training pass with the masks already in `ws`.
    fn loss_of(m: &Mlp, ws: &mut Workspace, x: &[f32], t: &[Label], loss: Loss) -> f64 {
        let trace = m.forward_train(ws, TrainInput::Dense { x, n: 2 });
        loss.sum(trace.outputs(), t, 3) / 2.0
    }

    /// Every parameter's gradient against central differences in f64 of the f32 loss,
    /// with and without dropout (the masks held fixed).
    #[allow(clippy::needless_range_loop)] // the loop perturbs m.params[i] in place
    #[test]
    fn gradients_match_finite_differences() {
        let x = [0.1, 0.9, 0.3, 0.0, 0.7, 0.5, 0.2, 0.8, 1.0, 0.4];
        let t: [Label; 2] = [2, 0];
        let cases = [
            (Activation::Relu, OutputFn::LogSoftmax, Loss::Nll, 0.0),
            (
                Activation::Tanh,
                OutputFn::Identity,
                Loss::CrossEntropy,
                0.0,
            ),
            (Activation::Sigmoid, OutputFn::Softmax, Loss::Mse, 0.0),
            (Activation::Gelu, OutputFn::Sigmoid, Loss::Bce, 0.0),
            (Activation::Silu, OutputFn::Sigmoid, Loss::CrossEntropy, 0.3),
            (Activation::Tanh, OutputFn::LogSoftmax, Loss::Nll, 0.5),
            // Slopes of 0.25 learned: the last parameters are the two PReLU slopes.
            (
                Activation::Prelu(0.25),
                OutputFn::LogSoftmax,
                Loss::Nll,
                0.0,
            ),
        ];
        for (act, out, loss, p) in cases {
            let mut m = net(act.clone(), out, p);
            if let Activation::Prelu(_) = act {
                assert_eq!(m.arch.prelu_layers().count(), 2, "one slope per layer");
                // Push some pre-activations negative so the slopes get a gradient.
                let (_, b) = m.arch.offsets()[0];
                m.params[b] -= 2.0;
            }
            let mut ws = Workspace::new(&m, 2, true);
            ws.sample_dropout(&mut Rng::seed_from_u64(5), 2);
            let mut grads = vec![0.0; m.params.len()];
            let trace = m.forward_train(&mut ws, TrainInput::Dense { x: &x, n: 2 });
            trace.backward(&m, &t, 2, loss, &mut grads);
            for i in 0..m.params.len() {
                let orig = m.params[i];
                let h = 1e-2;
                m.params[i] = orig + h;
                let lp = loss_of(&m, &mut ws, &x, &t, loss);
                m.params[i] = orig - h;
                let lm = loss_of(&m, &mut ws, &x, &t, loss);
                m.params[i] = orig;
                let numeric = (lp - lm) / (2.0 * h as f64);
                assert!(
                    (numeric - grads[i] as f64).abs() < 1e-3 * (1.0 + numeric.abs()),
                    "{act}/{out}/{loss}/p={p} param {i}: numeric {numeric} vs {}",
                    grads[i]
                );
            }
        }
    }

    /// Dropout layers sit after each hidden activation; their masks are 0 or 1/(1-p);
    /// evaluation skips them.
    #[test]
    fn dropout_layers_mask_in_training_and_pass_through_in_evaluation() {
        let m = net(Activation::Relu, OutputFn::LogSoftmax, 0.5);
        let kinds: Vec<_> = m.layers().iter().map(std::mem::discriminant).collect();
        assert_eq!(kinds.len(), 8, "{:?}", m.layers());
        assert!(matches!(m.layers()[2], Layer::Dropout { p } if p == 0.5));
        let mut ws = Workspace::new(&m, 2, true);
        ws.sample_dropout(&mut Rng::seed_from_u64(1), 2);
        let masks: Vec<f32> = ws.mask.iter().flatten().copied().collect();
        assert_eq!(masks.len(), 2 * (4 + 3));
        assert!(masks.iter().all(|&v| v == 0.0 || v == 2.0));
        assert!(masks.contains(&0.0) && masks.contains(&2.0));
        let x = [0.1, 0.9, 0.3, 0.0, 0.7, 0.5, 0.2, 0.8, 1.0, 0.4];
        let plain = net(Activation::Relu, OutputFn::LogSoftmax, 0.0);
        let mut ev = Workspace::new(&plain, 2, false);
        let want = plain
            .forward_eval(&mut ev, Input::Dense { x: &x, n: 2 })
            .to_vec();
        let got = m.forward_eval(&mut ws, Input::Dense { x: &x, n: 2 });
        assert_eq!(got, &want[..], "evaluation ignores dropout");
    }

    /// Six rows of 40 bytes, 1 in 5 non-zero; the same listed as a dataset lists them;
    /// the same as dense rows; a small network to run them through.
    struct Fixture {
        m: Mlp,
        bytes: Vec<u8>,
        lists: (Vec<u32>, Vec<u16>, Vec<u8>),
        x: Vec<f32>,
        table: [f32; 256],
        rows: Vec<u32>,
    }

    impl Fixture {
        fn new() -> Fixture {
            Self::with(crate::nn::spec::Norm::None)
        }

        /// With `norm` after each hidden layer (batch norm: a first layer without a bias).
        fn with(norm: crate::nn::spec::Norm) -> Fixture {
            let (n, width) = (6, 40);
            let a = arch(
                vec![width, 70, 8, 3],
                Activation::Relu,
                OutputFn::LogSoftmax,
                0.0,
            );
            let a = crate::nn::Arch { norm, ..a };
            let bytes: Vec<u8> = (0..n * width)
                .map(|i| if i % 5 == 0 { (i % 251) as u8 } else { 0 })
                .collect();
            let (mut ends, mut cols, mut nz) = (Vec::new(), Vec::new(), Vec::new());
            for row in bytes.chunks(width) {
                for (c, &b) in row.iter().enumerate().filter(|p| *p.1 != 0) {
                    cols.push(c as u16);
                    nz.push(b);
                }
                ends.push(cols.len() as u32);
            }
            let table: [f32; 256] = std::array::from_fn(|b| b as f32 / 255.0);
            Fixture {
                m: Mlp::new(a, Init::Torch, &mut Rng::seed_from_u64(3)),
                x: bytes.iter().map(|&b| table[b as usize]).collect(),
                bytes,
                lists: (ends, cols, nz),
                table,
                rows: (0..n as u32).collect(),
            }
        }

        /// The bytes as the first layer reads them, with or without their lists.
        fn source(&self, listed: bool) -> ByteRows<'_> {
            let (ends, cols, bytes) = &self.lists;
            ByteRows {
                images: &self.bytes,
                lists: listed.then_some(RowLists { ends, cols, bytes }),
                width: 40,
                values: &self.table,
            }
        }

        /// A training pass from input 0 (dense rows), 1 (bytes) or 2 (listed bytes):
        /// outputs, gradients and whether the first layer ran sparse.
        fn train(&self, policy: FirstLayer, input: u8) -> (Vec<f32>, Vec<f32>, bool) {
            let (m, n) = (&self.m, self.rows.len());
            let mut buf = InputBuf::new(policy);
            let fill = |d: &mut [f32]| d.copy_from_slice(&self.x);
            let x = match input {
                0 => buf.dense_train(&self.x, n, 40),
                1 => buf.train(self.source(false), &self.rows, fill),
                _ => buf.train(self.source(true), &self.rows, fill),
            };
            let used = matches!(x, TrainInput::Sparse(_));
            let mut ws = Workspace::new(m, n, true);
            let mut grads = vec![0.0; m.params.len()];
            let trace = m.forward_train(&mut ws, x);
            let out = trace.outputs().to_vec();
            trace.backward(m, &[0, 1, 2, 0, 1, 2], n, Loss::Nll, &mut grads);
            (out, grads, used)
        }
    }

    /// The sparse first layer (from dense rows or from bytes) gives the dense path's
    /// outputs and gradients, with a bias and without (before batch norm); Auto picks
    /// it for mostly-zero batches only.
    #[test]
    fn sparse_and_dense_first_layers_agree() {
        use crate::nn::spec::Norm;
        // The sparse kernels need AVX2+FMA: at the CPU's tier whatever ACTLAB_SIMD says.
        let _tier = crate::simd::force(crate::simd::detected());
        for norm in [Norm::None, Norm::Batch] {
            sparse_and_dense_agree(&Fixture::with(norm));
        }
        let mut buf = InputBuf::default();
        let dense = vec![0.5; 6 * 40];
        assert!(
            matches!(buf.dense_train(&dense, 6, 40), TrainInput::Dense { .. }),
            "a dense batch runs dense"
        );
    }

    fn sparse_and_dense_agree(f: &Fixture) {
        let (dense_out, dense_grads, used) = f.train(FirstLayer::Dense, 0);
        assert!(!used);
        for (policy, input) in [(FirstLayer::Sparse, 0), (FirstLayer::Auto, 1)] {
            let (out, grads, used) = f.train(policy, input);
            let sparse = policy == FirstLayer::Sparse || crate::nn::sparse::available();
            assert_eq!(used, sparse);
            assert_eq!(
                (out.len(), grads.len()),
                (dense_out.len(), dense_grads.len())
            );
            for (a, b) in (out.iter().zip(&dense_out)).chain(grads.iter().zip(&dense_grads)) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    /// Lists give the bytes' bits in training; evaluation reads the lists directly
    /// and gives the same outputs.
    #[test]
    fn listed_rows_give_the_bytes_bits() {
        let _tier = crate::simd::force(crate::simd::detected());
        let f = Fixture::new();
        let from_bytes = f.train(FirstLayer::Auto, 1);
        assert_eq!(
            f.train(FirstLayer::Auto, 2),
            from_bytes,
            "lists give the bytes' bits"
        );
        let mut buf = InputBuf::default();
        let fill = |d: &mut [f32]| d.copy_from_slice(&f.x);
        let x_eval = buf.eval(f.source(true), &f.rows, fill);
        let listed = matches!(x_eval, Input::Listed(_));
        assert_eq!(listed, crate::nn::sparse::available());
        let mut ws = Workspace::new(&f.m, f.rows.len(), false);
        let out = f.m.forward_eval(&mut ws, x_eval);
        let close = out
            .iter()
            .zip(&from_bytes.0)
            .all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs()));
        assert!(out.len() == from_bytes.0.len() && close);
        if listed {
            assert_eq!(out, &from_bytes.0[..], "the same terms in the same order");
        }
    }
}
