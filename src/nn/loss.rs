//! Losses on the network's output, batch-mean reduced like PyTorch's defaults.
//!
//! Shapes: y (outputs) is [batch, classes], targets is [batch] of class indices;
//! mse and bce compare y with the one-hot targets and average over every element.

use std::fmt;
use std::str::FromStr;

use super::names::unknown_name;
use super::output::{log_softmax_row, OutputFn};
use crate::data::Label;

/// Training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Loss {
    /// -y[target] (expects log-probabilities), `nn.NLLLoss`.
    Nll,
    /// log_softmax then NLL, applied to the outputs, `nn.CrossEntropyLoss`.
    CrossEntropy,
    /// mean squared error against one-hot targets, `nn.MSELoss`.
    Mse,
    /// binary cross-entropy against one-hot targets (logs clamped at -100), `nn.BCELoss`.
    Bce,
}

/// Every loss name accepted on the command line.
pub const NAMES: [&str; 4] = ["nll", "cross_entropy", "mse", "bce"];

/// PyTorch's floor for (1 - y) * y in BCE's gradient.
const BCE_EPS: f32 = 1e-12;

/// ln(v) floored at -100 like PyTorch's BCE; NaN stays NaN (f32::max would hide it).
fn clamped_log(v: f32) -> f32 {
    let l = v.ln();
    if l < -100.0 {
        -100.0
    } else {
        l
    }
}

impl Loss {
    /// Sum over the rows of each row's loss (divide by the row count for the mean).
    pub fn sum(self, y: &[f32], targets: &[Label], classes: usize) -> f64 {
        let mut total = 0.0f64;
        let mut scratch = vec![0.0f32; classes];
        for (row, &t) in y.chunks_exact(classes).zip(targets) {
            let t = t as usize;
            let l = match self {
                Loss::Nll => -row[t],
                Loss::CrossEntropy => {
                    log_softmax_row(row, &mut scratch);
                    -scratch[t]
                }
                Loss::Mse => {
                    row.iter()
                        .enumerate()
                        .map(|(j, &v)| {
                            let d = v - f32::from(j == t);
                            d * d
                        })
                        .sum::<f32>()
                        / classes as f32
                }
                Loss::Bce => {
                    row.iter()
                        .enumerate()
                        .map(|(j, &v)| -clamped_log(if j == t { v } else { 1.0 - v }))
                        .sum::<f32>()
                        / classes as f32
                }
            };
            total += l as f64;
        }
        total
    }

    /// dL/dy of the batch-mean loss over `batch` rows, written into `dy`.
    pub fn grad(self, y: &[f32], targets: &[Label], classes: usize, batch: usize, dy: &mut [f32]) {
        let inv_b = 1.0 / batch as f32;
        let inv_bc = 1.0 / (batch * classes) as f32;
        for ((row, d), &t) in y
            .chunks_exact(classes)
            .zip(dy.chunks_exact_mut(classes))
            .zip(targets)
        {
            let t = t as usize;
            match self {
                Loss::Nll => {
                    d.fill(0.0);
                    d[t] = -inv_b;
                }
                Loss::CrossEntropy => {
                    log_softmax_row(row, d);
                    for (j, v) in d.iter_mut().enumerate() {
                        *v = (v.exp() - f32::from(j == t)) * inv_b;
                    }
                }
                Loss::Mse => {
                    for (j, (v, &o)) in d.iter_mut().zip(row).enumerate() {
                        *v = 2.0 * (o - f32::from(j == t)) * inv_bc;
                    }
                }
                Loss::Bce => {
                    for (j, (v, &o)) in d.iter_mut().zip(row).enumerate() {
                        let target = f32::from(j == t);
                        *v = (o - target) / ((1.0 - o) * o).max(BCE_EPS) * inv_bc;
                    }
                }
            }
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Nll => "nll",
            Loss::CrossEntropy => "cross_entropy",
            Loss::Mse => "mse",
            Loss::Bce => "bce",
        }
    }

    /// Why this loss is a questionable partner for `output`, if it is.
    pub fn pairing_warning(self, output: OutputFn) -> Option<String> {
        match (self, output) {
            (Loss::Nll, o) if o != OutputFn::LogSoftmax => Some(format!(
                "nll expects log-probabilities but the output is {o}: the loss is not a likelihood \
                 (use --output log_softmax, or --loss cross_entropy on raw logits)"
            )),
            (Loss::CrossEntropy, o) if o != OutputFn::Identity => Some(format!(
                "cross_entropy applies log_softmax itself, so after {o} it squashes twice and \
                 weakens gradients (use --output identity with cross_entropy)"
            )),
            (Loss::Bce, o) if o != OutputFn::Sigmoid && o != OutputFn::Softmax => Some(format!(
                "bce needs outputs in [0, 1] but {o} can leave that range, giving NaN losses \
                 (use --output sigmoid with bce)"
            )),
            _ => None,
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Loss {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_lowercase().as_str() {
            "nll" | "nllloss" => Loss::Nll,
            "cross_entropy" | "ce" | "crossentropy" => Loss::CrossEntropy,
            "mse" => Loss::Mse,
            "bce" => Loss::Bce,
            other => return Err(unknown_name("loss", other, &NAMES)),
        })
    }
}

crate::serde_via_string!(Loss);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grad_matches_finite_differences() {
        let y = [0.2f32, 0.5, 0.1, 0.7, 0.3, 0.6];
        let targets: [Label; 2] = [1, 2];
        for loss in [Loss::Nll, Loss::CrossEntropy, Loss::Mse, Loss::Bce] {
            let mut dy = [0.0; 6];
            loss.grad(&y, &targets, 3, 2, &mut dy);
            for i in 0..6 {
                let h = 1e-3;
                let mut p = y;
                p[i] += h;
                let mut m = y;
                m[i] -= h;
                let numeric = (loss.sum(&p, &targets, 3) - loss.sum(&m, &targets, 3))
                    / 2.0
                    / (2.0 * h as f64);
                assert!(
                    (numeric - dy[i] as f64).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "{loss}[{i}]: {numeric} vs {}",
                    dy[i]
                );
            }
        }
    }

    #[test]
    fn warns_only_on_odd_pairings() {
        assert!(Loss::Nll.pairing_warning(OutputFn::LogSoftmax).is_none());
        assert!(Loss::Nll.pairing_warning(OutputFn::Softmax).is_some());
        assert!(Loss::CrossEntropy
            .pairing_warning(OutputFn::Identity)
            .is_none());
        assert!(Loss::CrossEntropy
            .pairing_warning(OutputFn::Softmax)
            .is_some());
        assert!(Loss::Bce.pairing_warning(OutputFn::Sigmoid).is_none());
        assert!(Loss::Bce.pairing_warning(OutputFn::Identity).is_some());
        assert!(Loss::Mse.pairing_warning(OutputFn::Softmax).is_none());
    }
}
