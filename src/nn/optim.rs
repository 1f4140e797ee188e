//! Optimisers with PyTorch's update rules (torch.optim.Adam, AdamW and SGD).
//!
//! Parameters, gradients and state are flat [n_params] slices: one loop updates
//! every layer, and the state is easy to checkpoint.

use serde::{Deserialize, Serialize};

use super::fastmath::flush_denormal;

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    /// Adam (Kingma & Ba) with L2 weight decay added to the gradient, like torch.optim.Adam.
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter), like torch.optim.AdamW.
    #[value(name = "adamw")]
    #[serde(rename = "adamw")]
    AdamW,
    /// Stochastic gradient descent with optional (heavy-ball) momentum.
    Sgd,
}

/// Optimiser settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// Update rule.
    pub kind: OptimKind,
    /// Learning rate.
    pub lr: f32,
    /// SGD momentum (ignored by Adam).
    pub momentum: f32,
    /// SGD with Nesterov momentum (torch.optim.SGD(nesterov=True)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// Adam's beta1 and beta2.
    pub betas: (f32, f32),
    /// Adam's epsilon.
    pub eps: f32,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            kind: OptimKind::Adam,
            lr: 1e-3,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            betas: (0.9, 0.999),
            eps: 1e-8,
        }
    }
}

impl OptimKind {
    /// Whether the rule keeps second moments (`v`).
    pub fn has_second_moments(self) -> bool {
        matches!(self, OptimKind::Adam | OptimKind::AdamW)
    }
}

/// An optimiser with its state.
#[derive(Debug, Clone)]
pub struct Optimizer {
    /// Settings.
    pub cfg: OptimConfig,
    /// Adam's first moment, or SGD's momentum buffer.
    pub m: Vec<f32>,
    /// Adam's second moment (empty for SGD).
    pub v: Vec<f32>,
    /// Steps taken so far.
    pub t: u64,
}

impl Optimizer {
    /// Fresh state for `n` parameters.
    pub fn new(cfg: OptimConfig, n: usize) -> Self {
        let v = if cfg.kind.has_second_moments() {
            vec![0.0; n]
        } else {
            Vec::new()
        };
        Optimizer {
            cfg,
            m: vec![0.0; n],
            v,
            t: 0,
        }
    }

    /// One update of `params` from `grads` (vectorised at the SIMD tier, see [`crate::simd`]).
    /// Panics if the lengths of parameters, gradients and state disagree: a zip over
    /// a short slice would silently leave the rest of the parameters untouched.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        let n = params.len();
        let v_len = if self.cfg.kind.has_second_moments() {
            n
        } else {
            0
        };
        assert!(
            grads.len() == n && self.m.len() == n && self.v.len() == v_len,
            "optimiser state does not fit: {n} parameters, {} gradients, {} + {} moments",
            grads.len(),
            self.m.len(),
            self.v.len()
        );
        let s = self.begin_step();
        s.apply(params, grads, &mut self.m, &mut self.v);
    }

    /// Count a step and compute its scalars; then [`StepScalars::apply`] updates the
    /// parameters, in one call or range by range (e.g. one range per thread: every
    /// element gets exactly the arithmetic of [`Optimizer::step`]).
    pub fn begin_step(&mut self) -> StepScalars {
        self.t += 1;
        let c = self.cfg;
        let (b1, b2) = c.betas;
        // Scalars in f64 as PyTorch computes them in Python, then used as f32.
        let bc1 = 1.0 - (b1 as f64).powi(self.t as i32);
        let bc2_sqrt = ((1.0 - (b2 as f64).powi(self.t as i32)).sqrt()) as f32;
        StepScalars {
            cfg: c,
            first: self.t == 1,
            step: (c.lr as f64 / bc1) as f32,
            bc2_sqrt,
        }
    }
}

/// One step's scalars, shared by every range of parameters it updates.
#[derive(Debug, Clone, Copy)]
pub struct StepScalars {
    cfg: OptimConfig,
    first: bool,
    step: f32,
    bc2_sqrt: f32,
}

impl StepScalars {
    /// Update a range of parameters with their gradients and moments (`v` empty for SGD).
    /// Adam is bound by its square roots and divisions, which the avx512 tier does 16
    /// floats at a time (the same correctly rounded operations, so the same bits).
    pub fn apply(&self, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) {
        let s = self;
        crate::simd_dispatch!((s: &StepScalars, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) {
            s.apply_portable(params, grads, m, v)
        })
    }

    #[inline(always)]
    fn apply_portable(&self, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) {
        let c = self.cfg;
        let wd = c.weight_decay;
        match c.kind {
            OptimKind::Adam | OptimKind::AdamW => {
                let (b1, b2) = c.betas;
                let (step, bc2_sqrt) = (self.step, self.bc2_sqrt);
                // Adam adds the L2 term to the gradient; AdamW shrinks the weight first.
                let (wd, shrink) = match c.kind {
                    OptimKind::AdamW => (0.0, 1.0 - c.lr * c.weight_decay),
                    _ => (wd, 1.0),
                };
                for (((p, &g), m), v) in params
                    .iter_mut()
                    .zip(grads)
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                {
                    *p *= shrink;
                    let g = g + wd * *p;
                    *m = flush_denormal(*m + (g - *m) * (1.0 - b1));
                    *v = flush_denormal(*v * b2 + g * g * (1.0 - b2));
                    let denom = v.sqrt() / bc2_sqrt + c.eps;
                    *p -= step * (*m / denom);
                }
            }
            OptimKind::Sgd => {
                for ((p, &g), buf) in params.iter_mut().zip(grads).zip(m.iter_mut()) {
                    let g = g + wd * *p;
                    let d = if c.momentum != 0.0 {
                        *buf = if self.first { g } else { c.momentum * *buf + g };
                        if c.nesterov {
                            g + c.momentum * *buf
                        } else {
                            *buf
                        }
                    } else {
                        g
                    };
                    *p -= c.lr * d;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_first_step_moves_each_param_by_lr() {
        let mut o = Optimizer::new(OptimConfig::default(), 3);
        let mut p = vec![1.0, 2.0, 3.0];
        o.step(&mut p, &[0.5, -2.0, 1e-3]);
        // m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps) ~ lr * sign(g).
        assert_eq!(p.len(), 3);
        for (got, want) in p.iter().zip([0.999, 2.001, 2.999]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    #[should_panic(expected = "optimiser state does not fit")]
    fn short_moments_are_refused_not_skipped() {
        let mut o = Optimizer::new(OptimConfig::default(), 3);
        o.v.truncate(2);
        o.step(&mut [1.0, 2.0, 3.0], &[0.1, 0.1, 0.1]);
    }

    #[test]
    fn adam_flushes_denormal_moments_to_zero() {
        let mut o = Optimizer::new(OptimConfig::default(), 2);
        o.m = vec![1e-37, 0.5];
        o.v = vec![1e-37, 0.25];
        let mut p = vec![0.0, 0.0];
        // With zero gradients, m decays by 0.9 a step: 1e-37 * 0.9^30 = 4e-39 would be
        // denormal; v decays by 0.999 and stays normal (9.7e-38).
        for _ in 0..30 {
            o.step(&mut p, &[0.0, 0.0]);
        }
        assert_eq!(o.m[0], 0.0, "a denormal first moment is flushed");
        assert!(o.v[0].is_normal(), "{}", o.v[0]);
        assert!(o.m[1].is_normal() && o.v[1].is_normal());
    }

    #[test]
    fn sgd_momentum_accumulates() {
        let cfg = OptimConfig {
            kind: OptimKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            ..Default::default()
        };
        let mut o = Optimizer::new(cfg, 1);
        let mut p = vec![0.0];
        o.step(&mut p, &[1.0]);
        assert!((p[0] + 0.1).abs() < 1e-7);
        o.step(&mut p, &[1.0]);
        assert!((p[0] + 0.1 + 0.19).abs() < 1e-6);
    }
}
