//! Tolerances shared by the PyTorch parity tests: every element within a relative
//! error of its reference plus a floor, gradients with the floor scaled per tensor.

use actlab::nn::{OptimConfig, OptimKind};

/// The tolerances of the gradient check: 1e-4 relative, floor 1e-5 of the tensor's largest.
pub const GRAD_TOL: (f32, f32) = (1e-4, 1e-5);

/// Every element within `rel` of its reference value plus an absolute `floor`;
/// the first element that is not, as a message.
pub fn check_close(
    what: &str,
    got: &[f32],
    want: &[f32],
    rel: f32,
    floor: f32,
) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} vs {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let allowed = rel * w.abs() + floor;
        if err.is_nan() || err > allowed {
            return Err(format!(
                "{what}[{i}]: got {g}, PyTorch {w} (error {err:e} > allowed {allowed:e})"
            ));
        }
    }
    Ok(())
}

/// [`check_close`] with the floor scaled per tensor: `floor` times the tensor's
/// largest reference magnitude, so the small elements of a tensor of small values
/// are checked as strictly as the large ones.
pub fn check_scaled(what: &str, got: &[f32], want: &[f32]) -> Result<(), String> {
    let scale = want.iter().fold(0.0f32, |m, w| m.max(w.abs()));
    check_close(what, got, want, GRAD_TOL.0, GRAD_TOL.1 * scale)
}

/// Optimiser settings from a case's "adam" or "sgd" entry (PyTorch's defaults otherwise).
pub fn optim_of(v: &serde_json::Value) -> OptimConfig {
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0) as f32;
    OptimConfig {
        kind: match v["optimizer"].as_str() {
            Some("sgd") => OptimKind::Sgd,
            Some("adamw") => OptimKind::AdamW,
            _ => OptimKind::Adam,
        },
        lr: f("lr"),
        momentum: f("momentum"),
        nesterov: v["nesterov"] == true,
        weight_decay: f("weight_decay"),
        ..OptimConfig::default()
    }
}
