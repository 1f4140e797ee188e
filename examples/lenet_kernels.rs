//! Time the conv, pool and linear kernels through one LeNet-5 (ReLU, max pooling)
//! forward and backward pass over a batch of 64, one thread, and print where the time
//! goes, in CPU time of the thread (on a shared machine wall time also counts the time
//! other processes held the core). A hand measurement until the network runs conv
//! layers; then `actlab bench --model lenet5` measures whole epochs:
//!
//!     cargo run --release --example lenet_kernels [batches]

use std::time::Instant;

use actlab::nn::conv::ConvShape;
use actlab::nn::linear::LinearShape;
use actlab::nn::pool::{PoolKind, PoolShape};
use actlab::nn::{Activation, Loss, OutputFn};

const N: usize = 64;
const RELU: Activation = Activation::Relu;

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// This thread's CPU time in seconds.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// CPU seconds spent per named stage, over all batches.
#[derive(Default)]
struct Clock(Vec<(&'static str, f64)>);

impl Clock {
    fn time<T>(&mut self, stage: &'static str, f: impl FnOnce() -> T) -> T {
        let t = cpu_seconds();
        let out = f();
        let dt = cpu_seconds() - t;
        match self.0.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, total)) => *total += dt,
            None => self.0.push((stage, dt)),
        }
        out
    }
}

/// A conv stage: conv, ReLU, 2x2 max pool, with its weights and buffers.
struct ConvStage {
    conv: ConvShape,
    pool: PoolShape,
    w: Vec<f32>,
    b: Vec<f32>,
    /// Pre-activation, activation, pooled, and their gradients; dw, db.
    z: Vec<f32>,
    a: Vec<f32>,
    q: Vec<f32>,
    idx: Vec<u8>,
    grads: [Vec<f32>; 5],
    col: (Vec<f32>, Vec<f32>),
    /// The columns the forward pass keeps for the backward pass.
    kept: Vec<f32>,
}

impl ConvStage {
    fn new(layer: usize, dims: (usize, usize, usize), c_out: usize) -> ConvStage {
        let conv =
            ConvShape::new(layer, dims, c_out, 5, 1, if layer == 1 { 2 } else { 0 }).expect("conv");
        let pool = PoolShape::new(layer, PoolKind::Max, conv.out_dims()).expect("pool");
        let (ol, pl) = (N * conv.out_len(), N * pool.out_len());
        let grads = [
            vec![0.0; ol],
            vec![0.0; ol],
            vec![0.0; pl],
            vec![0.0; conv.weights()],
            vec![0.0; c_out],
        ];
        ConvStage {
            w: values(conv.weights(), layer as u64, 0.2 / layer as f32),
            b: values(c_out, 10 + layer as u64, 0.1),
            z: vec![0.0; ol],
            a: vec![0.0; ol],
            q: vec![0.0; pl],
            idx: vec![0; pl],
            grads,
            col: (vec![0.0; conv.col_len()], vec![0.0; conv.tmp_len(true)]),
            kept: vec![0.0; N * conv.image_col_len()],
            conv,
            pool,
        }
    }

    fn forward(&mut self, x: &[f32], clock: &mut Clock, name: &'static str) {
        let scratch = (&mut self.col.0[..], &mut self.col.1[..]);
        let keep = Some(&mut self.kept[..]);
        clock.time(name, || {
            self.conv
                .forward(&self.w, Some(&self.b), x, N, &mut self.z, scratch, keep)
        });
        clock.time("activations", || RELU.forward(&self.z, &mut self.a));
        clock.time("pool forward", || {
            self.pool.forward(&self.a, N, &mut self.q, &mut self.idx)
        });
    }

    /// From the gradient of the pooled output (grads[2]) to dw, db and dx if given.
    fn backward(
        &mut self,
        x: &[f32],
        dx: Option<&mut [f32]>,
        clock: &mut Clock,
        name: &'static str,
    ) {
        let [da, dz, dq, dw, db] = &mut self.grads;
        clock.time("pool backward", || self.pool.backward(dq, &self.idx, N, da));
        clock.time("activations", || RELU.backward(&self.z, &self.a, da, dz));
        let scratch = (&mut self.col.0[..], &mut self.col.1[..]);
        clock.time(name, || {
            self.conv.backward(
                &self.w,
                x,
                dz,
                N,
                dw,
                Some(db),
                dx,
                scratch,
                Some(&self.kept),
            )
        });
    }
}

/// The fully connected part: 400-120-84-10, ReLU, log-softmax and NLL.
struct Dense {
    shapes: [LinearShape; 3],
    w: Vec<Vec<f32>>,
    b: Vec<Vec<f32>>,
    /// Per layer: pre-activation, activation (the output for the last), their gradients.
    z: Vec<Vec<f32>>,
    a: Vec<Vec<f32>>,
    dz: Vec<Vec<f32>>,
    da: Vec<Vec<f32>>,
    dw: Vec<Vec<f32>>,
    db: Vec<Vec<f32>>,
}

impl Dense {
    fn new(fan_in: usize) -> Dense {
        let shapes = [(fan_in, 120), (120, 84), (84, 10)].map(|(i, o)| LinearShape {
            fan_in: i,
            fan_out: o,
        });
        let per = |len: &dyn Fn(&LinearShape) -> usize| {
            shapes.iter().map(|s| vec![0.0; len(s)]).collect::<Vec<_>>()
        };
        let rows = per(&|s| N * s.fan_out);
        Dense {
            w: shapes
                .iter()
                .enumerate()
                .map(|(i, s)| values(s.fan_in * s.fan_out, 5 + i as u64, 0.1))
                .collect(),
            b: per(&|s| s.fan_out),
            z: rows.clone(),
            a: rows.clone(),
            dz: rows.clone(),
            da: rows,
            dw: per(&|s| s.fan_in * s.fan_out),
            db: per(&|s| s.fan_out),
            shapes,
        }
    }

    fn forward(&mut self, x: &[f32], clock: &mut Clock) {
        for l in 0..3 {
            let input = if l == 0 { x } else { &self.a[l - 1] };
            clock.time("linear forward", || {
                self.shapes[l].forward(&self.w[l], &self.b[l], input, N, &mut self.z[l])
            });
            if l < 2 {
                clock.time("activations", || RELU.forward(&self.z[l], &mut self.a[l]));
            } else {
                clock.time("output and loss", || {
                    OutputFn::LogSoftmax.forward(&self.z[l], &mut self.a[l], 10)
                });
            }
        }
    }

    fn backward(
        &mut self,
        x: &[f32],
        t: &[actlab::data::Label],
        dx: &mut [f32],
        clock: &mut Clock,
    ) {
        clock.time("output and loss", || {
            Loss::Nll.grad(&self.a[2], t, 10, N, &mut self.da[2]);
            OutputFn::LogSoftmax.backward(&self.a[2], &self.da[2], &mut self.dz[2], 10);
        });
        for l in (0..3).rev() {
            if l < 2 {
                clock.time("activations", || {
                    RELU.backward(&self.z[l], &self.a[l], &self.da[l], &mut self.dz[l])
                });
            }
            let (input, grad_in) = match l {
                0 => (x, &mut *dx),
                _ => (&self.a[l - 1][..], &mut self.da[l - 1][..]),
            };
            let (s, w, dz) = (self.shapes[l], &self.w[l], &self.dz[l]);
            let (dw, db) = (&mut self.dw[l], &mut self.db[l]);
            clock.time("linear backward", || {
                s.backward(w, input, dz, N, dw, db, Some(grad_in))
            });
        }
    }
}

fn main() {
    let batches: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let mut c1 = ConvStage::new(1, (1, 28, 28), 6);
    let mut c2 = ConvStage::new(2, c1.pool.out_dims(), 16);
    let mut dense = Dense::new(c2.pool.out_len());
    let x: Vec<f32> = values(N * 784, 9, 1.0).iter().map(|v| v.max(0.0)).collect();
    let t: Vec<actlab::data::Label> = (0..N).map(|i| (i % 10) as actlab::data::Label).collect();
    let mut clock = Clock::default();
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    for _ in 0..batches {
        c1.forward(&x, &mut clock, "conv1 forward");
        c2.forward(&c1.q, &mut clock, "conv2 forward");
        dense.forward(&c2.q, &mut clock);
        dense.backward(&c2.q, &t, &mut c2.grads[2], &mut clock);
        c2.backward(&c1.q, Some(&mut c1.grads[2]), &mut clock, "conv2 backward");
        c1.backward(&x, None, &mut clock, "conv1 backward");
    }
    let (wall, total) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
    let per = total / batches as f64 * 1e3;
    println!("LeNet-5 forward + backward, batch {N}, one thread: {per:.3} ms/batch of CPU time ({:.3} wall)", wall / batches as f64 * 1e3);
    println!(
        "  -> {:.2} s per 60,000-image epoch (kernels only; no optimiser step or data)",
        per * 60_000.0 / N as f64 / 1e3
    );
    for (stage, s) in &clock.0 {
        println!(
            "  {stage:<16} {:>7.3} ms/batch  {:>5.1}%",
            s / batches as f64 * 1e3,
            s / total * 100.0
        );
    }
    std::hint::black_box((&c1.grads, &c2.grads, &dense.dw, &dense.db));
}
