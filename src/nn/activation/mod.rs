//! Hidden-layer activation functions, each with its derivative, defined exactly as PyTorch's.
//!
//! Shapes: z (pre-activation) and a = f(z) are [batch, width], row-major;
//! `forward` writes a from z, `backward` writes dz = da * f'(z).

use std::sync::Arc;

use super::fastmath::{erf, exp, expm1, log1p, tanh};
use super::formula;
use super::names::unknown_name;

/// SELU's fixed constants (Klambauer et al., as in `torch.nn.SELU`).
const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;
/// sqrt(2/pi), the GELU tanh-approximation's inner scale (PyTorch's kBeta).
const GELU_TANH_BETA: f32 = 0.797_884_6;
const GELU_TANH_KAPPA: f32 = 0.044_715;
/// 1/sqrt(2) and 1/sqrt(2*pi), for exact GELU.
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// An elementwise activation for hidden layers.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// tanh(x).
    Tanh,
    /// x if x > 0 else slope * x (default slope 0.01).
    LeakyRelu(f32),
    /// x if x > 0 else alpha * (e^x - 1) (default alpha 1).
    Elu(f32),
    /// scale * elu(x, alpha) with the fixed self-normalising constants.
    Selu,
    /// x * Phi(x) with the exact normal CDF (erf).
    Gelu,
    /// GELU's tanh approximation.
    GeluTanh,
    /// x * sigmoid(x) (a.k.a. swish).
    Silu,
    /// x * tanh(softplus(x)).
    Mish,
    /// log(1 + e^(beta x)) / beta, linear above the threshold (defaults beta 1, threshold 20).
    Softplus {
        /// Sharpness.
        beta: f32,
        /// Above beta x > threshold, f is x.
        threshold: f32,
    },
    /// x.
    Identity,
    /// x if |x| > lambda else 0 (default lambda 0.5).
    Hardshrink(f32),
    /// x - lambda if x > lambda, x + lambda if x < -lambda, else 0 (default 0.5).
    Softshrink(f32),
    /// x clamped to [min, max] (defaults -1, 1).
    Hardtanh {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// relu6(x + 3) / 6.
    Hardsigmoid,
    /// x relu6(x + 3) / 6.
    Hardswish,
    /// log(sigmoid(x)).
    Logsigmoid,
    /// min(max(0, x), 6).
    Relu6,
    /// max(0, x) + min(0, alpha (e^(x/alpha) - 1)) (default alpha 1).
    Celu(f32),
    /// x / (1 + |x|).
    Softsign,
    /// x - tanh(x).
    Tanhshrink,
    /// x if x > 0 else a * x with a learnable slope a per layer (initial value given,
    /// default 0.25), like torch.nn.PReLU(); the trained slope lives with the model's
    /// parameters (`act{i}.weight`), this value only starts it.
    Prelu(f32),
    /// A formula of x defined with `--define NAME=FORMULA`, compiled once and shared
    /// by every layer and run using it (see [`crate::nn::formula`]).
    Formula(Arc<formula::Formula>),
}

/// What `actlab activations` says about a function.
#[derive(Debug, Clone, Copy)]
pub struct Info<'a> {
    /// f(x).
    pub formula: &'a str,
    /// f'(x).
    pub derivative: &'a str,
    /// Output range.
    pub range: &'a str,
    /// Where and how it saturates.
    pub saturation: &'a str,
}

/// Every activation name accepted on the command line, in a stable order.
pub const NAMES: [&str; 23] = [
    "relu",
    "sigmoid",
    "tanh",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "gelu_tanh",
    "silu",
    "mish",
    "softplus",
    "identity",
    "hardshrink",
    "softshrink",
    "hardtanh",
    "hardsigmoid",
    "hardswish",
    "logsigmoid",
    "relu6",
    "celu",
    "softsign",
    "tanhshrink",
    "prelu",
];

/// The parameters an activation takes after its name (`leaky_relu:0.1`), in order.
pub fn parameters(name: &str) -> &'static [&'static str] {
    match name {
        "leaky_relu" => &["slope"],
        "elu" | "celu" => &["alpha"],
        "hardshrink" | "softshrink" => &["lambda"],
        "prelu" => &["initial slope"],
        "softplus" => &["beta", "threshold"],
        "hardtanh" => &["min", "max"],
        _ => &[],
    }
}

/// How to write an activation with its optional parameters: `softplus[:beta[:threshold]]`.
pub fn syntax(name: &str) -> String {
    let params = parameters(name);
    let mut s = name.to_string();
    for p in params {
        s.push_str(&format!("[:{}", p.replace(' ', "_")));
    }
    s.push_str(&"]".repeat(params.len()));
    s
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn softplus(x: f32, beta: f32, threshold: f32) -> f32 {
    if x * beta > threshold {
        x
    } else {
        log1p(exp(x * beta)) / beta
    }
}

/// tanh(softplus(x)) and sigmoid(x) from a single exp: with e = e^x,
/// tanh(log(1 + e)) = (e^2 + 2e) / (e^2 + 2e + 2). Above softplus' threshold (20)
/// both are 1 in f32, as in PyTorch.
#[inline(always)]
fn mish_tanh_softplus(x: f32) -> (f32, f32) {
    let e = exp(x.min(20.0));
    let n = e * (e + 2.0);
    let t = n / (n + 2.0);
    let s = e / (1.0 + e);
    if x > 20.0 {
        (1.0, 1.0)
    } else {
        (t, s)
    }
}

/// `$each!(activation)` in a match over every activation with its parameters bound,
/// so the loop `$each` writes is compiled once per activation (each one then
/// vectorises with its own function inlined); forward and backward share it.
/// GELU's derivative from x and y = x * cdf(x): the CDF recovered from the stored
/// output instead of a second erf (near 0, where y / x loses precision, its Taylor
/// series).
#[inline(always)]
fn gelu_derivative(x: f32, y: f32) -> f32 {
    let cdf = if x.abs() > 1e-3 {
        y / x
    } else {
        0.5 + x * FRAC_1_SQRT_2PI
    };
    let pdf = exp(-0.5 * x * x) * FRAC_1_SQRT_2PI;
    cdf + x * pdf
}

/// The tanh approximation of GELU's derivative.
#[inline(always)]
fn gelu_tanh_derivative(x: f32) -> f32 {
    let x2 = x * x;
    let inner = GELU_TANH_BETA * (x + GELU_TANH_KAPPA * x2 * x);
    let t = tanh(inner);
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_TANH_BETA * (1.0 + 3.0 * GELU_TANH_KAPPA * x2)
}

macro_rules! per_variant {
    ($a:expr, $each:ident) => {
        match *$a {
            Activation::Relu => $each!(Activation::Relu),
            Activation::Sigmoid => $each!(Activation::Sigmoid),
            Activation::Tanh => $each!(Activation::Tanh),
            Activation::Selu => $each!(Activation::Selu),
            Activation::Gelu => $each!(Activation::Gelu),
            Activation::GeluTanh => $each!(Activation::GeluTanh),
            Activation::Silu => $each!(Activation::Silu),
            Activation::Mish => $each!(Activation::Mish),
            Activation::Elu(alpha) => $each!(Activation::Elu(alpha)),
            Activation::Softplus { beta, threshold } => {
                $each!(Activation::Softplus { beta, threshold })
            }
            Activation::LeakyRelu(s) => $each!(Activation::LeakyRelu(s)),
            Activation::Identity => $each!(Activation::Identity),
            Activation::Hardshrink(l) => $each!(Activation::Hardshrink(l)),
            Activation::Softshrink(l) => $each!(Activation::Softshrink(l)),
            Activation::Hardtanh { min, max } => $each!(Activation::Hardtanh { min, max }),
            Activation::Hardsigmoid => $each!(Activation::Hardsigmoid),
            Activation::Hardswish => $each!(Activation::Hardswish),
            Activation::Logsigmoid => $each!(Activation::Logsigmoid),
            Activation::Relu6 => $each!(Activation::Relu6),
            Activation::Celu(alpha) => $each!(Activation::Celu(alpha)),
            Activation::Softsign => $each!(Activation::Softsign),
            Activation::Tanhshrink => $each!(Activation::Tanhshrink),
            Activation::Prelu(a) => $each!(Activation::LeakyRelu(a)),
            Activation::Formula(ref f) => $each!(Activation::Formula(f.clone())),
        }
    };
}

impl Activation {
    /// f(x) for one value.
    #[inline(always)]
    pub fn value(&self, x: f32) -> f32 {
        match *self {
            Activation::Relu => x.max(0.0),
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => tanh(x),
            Activation::LeakyRelu(s) | Activation::Prelu(s) => {
                if x > 0.0 {
                    x
                } else {
                    x * s
                }
            }
            Activation::Elu(alpha) => {
                if x > 0.0 {
                    x
                } else {
                    alpha * expm1(x)
                }
            }
            Activation::Selu => {
                if x > 0.0 {
                    SELU_SCALE * x
                } else {
                    SELU_SCALE * SELU_ALPHA * expm1(x)
                }
            }
            Activation::Gelu => x * 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2)),
            Activation::GeluTanh => {
                let inner = GELU_TANH_BETA * (x + GELU_TANH_KAPPA * x * x * x);
                0.5 * x * (1.0 + tanh(inner))
            }
            Activation::Silu => x * sigmoid(x),
            Activation::Mish => x * mish_tanh_softplus(x).0,
            Activation::Softplus { beta, threshold } => softplus(x, beta, threshold),
            Activation::Identity => x,
            _ => self.value_piecewise(x),
        }
    }

    /// f'(x) for one value, given x and y = f(x).
    #[inline(always)]
    pub fn derivative(&self, x: f32, y: f32) -> f32 {
        match *self {
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => y * (1.0 - y),
            Activation::Tanh => 1.0 - y * y,
            Activation::LeakyRelu(s) | Activation::Prelu(s) => {
                if x > 0.0 {
                    1.0
                } else {
                    s
                }
            }
            Activation::Elu(alpha) => {
                if x > 0.0 {
                    1.0
                } else {
                    alpha * exp(x)
                }
            }
            Activation::Selu => {
                if x > 0.0 {
                    SELU_SCALE
                } else {
                    SELU_SCALE * SELU_ALPHA * exp(x)
                }
            }
            Activation::Gelu => gelu_derivative(x, y),
            Activation::GeluTanh => gelu_tanh_derivative(x),
            Activation::Silu => {
                let s = sigmoid(x);
                s * (1.0 + x * (1.0 - s))
            }
            Activation::Mish => {
                let (t, s) = mish_tanh_softplus(x);
                t + x * s * (1.0 - t * t)
            }
            Activation::Softplus { beta, threshold } => {
                if x * beta > threshold {
                    1.0
                } else {
                    let z = exp(x * beta);
                    z / (z + 1.0)
                }
            }
            Activation::Identity => 1.0,
            _ => self.derivative_piecewise(x),
        }
    }

    /// f(x) for the activations added to match the rest of PyTorch's (mostly
    /// piecewise: shrinks, hard clamps).
    #[inline(always)]
    fn value_piecewise(&self, x: f32) -> f32 {
        match *self {
            Activation::Hardshrink(l) => {
                if x > l || x < -l {
                    x
                } else {
                    0.0
                }
            }
            Activation::Softshrink(l) => {
                if x > l {
                    x - l
                } else if x < -l {
                    x + l
                } else {
                    0.0
                }
            }
            Activation::Hardtanh { min, max } => x.max(min).min(max),
            Activation::Hardsigmoid => ((x + 3.0).clamp(0.0, 6.0)) / 6.0,
            Activation::Hardswish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            // log(sigmoid(x)) = min(x, 0) - log1p(e^-|x|), stable on both sides.
            Activation::Logsigmoid => x.min(0.0) - log1p(exp(-x.abs())),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Celu(alpha) => {
                if x > 0.0 {
                    x
                } else {
                    alpha * expm1(x / alpha)
                }
            }
            Activation::Softsign => x / (1.0 + x.abs()),
            Activation::Tanhshrink => x - tanh(x),
            Activation::Formula(ref f) => f.tape.value(x),
            _ => x,
        }
    }

    /// f'(x) for the same activations (their derivatives need only x).
    #[inline(always)]
    fn derivative_piecewise(&self, x: f32) -> f32 {
        match *self {
            Activation::Hardshrink(l) | Activation::Softshrink(l) => {
                if x > l || x < -l {
                    1.0
                } else {
                    0.0
                }
            }
            // PyTorch's backward passes the gradient strictly inside the bounds only.
            Activation::Hardtanh { min, max } => {
                if x > min && x < max {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Hardsigmoid => {
                if x > -3.0 && x < 3.0 {
                    1.0 / 6.0
                } else {
                    0.0
                }
            }
            Activation::Hardswish => {
                if x < -3.0 {
                    0.0
                } else if x <= 3.0 {
                    x / 3.0 + 0.5
                } else {
                    1.0
                }
            }
            Activation::Logsigmoid => 1.0 / (1.0 + exp(x)),
            Activation::Relu6 => {
                if x > 0.0 && x < 6.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Celu(alpha) => {
                if x > 0.0 {
                    1.0
                } else {
                    exp(x / alpha)
                }
            }
            Activation::Softsign => {
                let d = 1.0 + x.abs();
                1.0 / (d * d)
            }
            Activation::Tanhshrink => {
                let t = tanh(x);
                t * t
            }
            Activation::Formula(ref f) => f.tape.derivative(x),
            _ => 1.0,
        }
    }

    /// a = f(z), elementwise. One loop per variant so each one vectorises; on x86-64
    /// with AVX2 the same loops are compiled for 8-wide vectors and chosen at run time.
    pub fn forward(&self, z: &[f32], a: &mut [f32]) {
        if let Some(f) = self.formula() {
            return f.tape.forward(z, a);
        }
        let act = self;
        crate::simd_dispatch!((act: &Activation, z: &[f32], a: &mut [f32]) {
            act.forward_portable(z, a)
        })
    }

    /// dz = da * f'(z), elementwise (see [`Activation::forward`] for the dispatch).
    pub fn backward(&self, z: &[f32], a: &[f32], da: &[f32], dz: &mut [f32]) {
        if let Some(f) = self.formula() {
            return f.tape.backward(z, da, dz);
        }
        let act = self;
        crate::simd_dispatch!((act: &Activation, z: &[f32], a: &[f32], da: &[f32], dz: &mut [f32]) {
            act.backward_portable(z, a, da, dz)
        })
    }

    #[inline(always)]
    fn forward_portable(&self, z: &[f32], a: &mut [f32]) {
        if matches!(self, Activation::Identity) {
            return a.copy_from_slice(z);
        }
        macro_rules! each {
            ($act:expr) => {{
                let act = $act;
                for (o, &x) in a.iter_mut().zip(z) {
                    *o = act.value(x);
                }
            }};
        }
        per_variant!(self, each)
    }

    /// dz = da * f'(z), using the stored a = f(z) where that is cheaper.
    #[inline(always)]
    fn backward_portable(&self, z: &[f32], a: &[f32], da: &[f32], dz: &mut [f32]) {
        if matches!(self, Activation::Identity) {
            return dz.copy_from_slice(da);
        }
        macro_rules! each {
            ($act:expr) => {{
                let act = $act;
                for (((o, &x), &y), &g) in dz.iter_mut().zip(z).zip(a).zip(da) {
                    *o = g * act.derivative(x, y);
                }
            }};
        }
        per_variant!(self, each)
    }

    /// The definition of a formula activation.
    pub fn formula(&self) -> Option<&formula::Formula> {
        self.formula_arc().map(|f| &**f)
    }

    /// The shared definition of a formula activation.
    pub fn formula_arc(&self) -> Option<&Arc<formula::Formula>> {
        match self {
            Activation::Formula(f) => Some(f),
            _ => None,
        }
    }

    /// Formula, derivative, output range and where it saturates, for learners.
    pub fn info(&self) -> Info<'_> {
        if let Some(f) = self.formula() {
            return Info {
                formula: &f.text,
                derivative: &f.derivative,
                range: &f.range,
                saturation: &f.saturation,
            };
        }
        let (formula, derivative, range, saturation) = match *self {
            Activation::Relu => ("max(0, x)", "1 if x > 0 else 0", "[0, inf)", "never saturates for x > 0; units with x <= 0 for every input are dead (gradient 0)"),
            Activation::Sigmoid => ("1 / (1 + e^-x)", "s(x) (1 - s(x)), at most 0.25 (at x = 0)", "(0, 1)", "saturates on both sides: |x| > 2.9 gives f' < 0.05; each layer multiplies gradients by at most 0.25"),
            Activation::Tanh => ("(e^x - e^-x) / (e^x + e^-x)", "1 - tanh(x)^2, at most 1", "(-1, 1)", "saturates on both sides: |x| > 1.5 gives |f| > 0.9 and f' < 0.19"),
            Activation::LeakyRelu(_) => ("x if x > 0 else slope * x", "1 if x > 0 else slope", "(-inf, inf)", "never saturates; negative inputs keep a small gradient (slope)"),
            Activation::Elu(_) => ("x if x > 0 else alpha (e^x - 1)", "1 if x > 0 else alpha e^x", "(-alpha, inf)", "saturates for very negative x (f -> -alpha, f' -> 0)"),
            Activation::Selu => ("scale * (x if x > 0 else alpha (e^x - 1)), scale 1.0507, alpha 1.6733", "scale if x > 0 else scale alpha e^x", "(-1.758, inf)", "saturates for very negative x; self-normalising with suitable init"),
            Activation::Gelu => ("x Phi(x), Phi the normal CDF", "Phi(x) + x phi(x)", "[-0.17, inf)", "approaches 0 with f' -> 0 for very negative x"),
            Activation::GeluTanh => ("0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))", "derivative of the tanh approximation", "[-0.17, inf)", "approaches 0 with f' -> 0 for very negative x"),
            Activation::Silu => ("x s(x), s the sigmoid", "s(x) (1 + x (1 - s(x)))", "[-0.28, inf)", "approaches 0 with f' -> 0 for very negative x"),
            Activation::Mish => ("x tanh(softplus(x))", "tanh(sp(x)) + x s(x) (1 - tanh(sp(x))^2)", "[-0.31, inf)", "approaches 0 with f' -> 0 for very negative x"),
            Activation::Softplus { .. } => ("log(1 + e^(beta x)) / beta (x beyond threshold/beta: x)", "e^(beta x) / (1 + e^(beta x)) = s(beta x)", "(0, inf)", "saturates for very negative x (f' -> 0)"),
            Activation::Identity => ("x", "1", "(-inf, inf)", "never saturates, but layers collapse into one linear map"),
            Activation::Hardshrink(_) => ("x if |x| > lambda else 0", "1 if |x| > lambda else 0", "(-inf, -lambda] U {0} U [lambda, inf)", "dead zone [-lambda, lambda]: no gradient there"),
            Activation::Softshrink(_) => ("x - lambda if x > lambda, x + lambda if x < -lambda, else 0", "1 if |x| > lambda else 0", "(-inf, inf)", "dead zone [-lambda, lambda]: no gradient there"),
            Activation::Hardtanh { .. } => ("min(max(x, min), max)", "1 if min < x < max else 0", "[min, max]", "saturates hard outside [min, max]: gradient exactly 0"),
            Activation::Hardsigmoid => ("relu6(x + 3) / 6", "1/6 if -3 < x < 3 else 0", "[0, 1]", "saturates hard outside (-3, 3): gradient exactly 0"),
            Activation::Hardswish => ("x relu6(x + 3) / 6", "0 if x < -3, x/3 + 1/2 if x <= 3, else 1", "[-0.375, inf)", "no gradient below -3 (units can die there)"),
            Activation::Logsigmoid => ("log(1 / (1 + e^-x))", "1 / (1 + e^x)", "(-inf, 0)", "saturates for large x (f -> 0, f' -> 0); linear for very negative x"),
            Activation::Relu6 => ("min(max(0, x), 6)", "1 if 0 < x < 6 else 0", "[0, 6]", "no gradient for x <= 0 (dead) or x >= 6 (saturated)"),
            Activation::Celu(_) => ("x if x > 0 else alpha (e^(x/alpha) - 1)", "1 if x > 0 else e^(x/alpha)", "(-alpha, inf)", "saturates for very negative x (f -> -alpha, f' -> 0)"),
            Activation::Softsign => ("x / (1 + |x|)", "1 / (1 + |x|)^2", "(-1, 1)", "saturates slowly on both sides (polynomially, not exponentially like tanh)"),
            Activation::Prelu(_) => ("x if x > 0 else a x, a learned per layer", "1 if x > 0 else a (and d/da = min(x, 0))", "(-inf, inf)", "never saturates; the negative slope is learned, so no unit has to die"),
            Activation::Tanhshrink => ("x - tanh(x)", "tanh(x)^2", "(-inf, inf)", "flat near 0 (f' -> 0): small inputs get almost no gradient"),
            Activation::Formula(_) => ("(undefined formula)", "", "", ""),
        };
        Info {
            formula,
            derivative,
            range,
            saturation,
        }
    }

    /// True for functions with a region of zero gradient, where a unit can die (its
    /// gradient is 0 for every input).
    pub fn can_die(&self) -> bool {
        if let Some(f) = self.formula() {
            return f.can_die;
        }
        matches!(
            self,
            Activation::Relu
                | Activation::Relu6
                | Activation::Hardtanh { .. }
                | Activation::Hardsigmoid
                | Activation::Hardswish
                | Activation::Hardshrink(_)
                | Activation::Softshrink(_)
        )
    }

    /// The largest value of f', for saturation shares ("below 19% of the peak").
    pub fn peak_derivative(&self) -> f32 {
        match self {
            Activation::Sigmoid => 0.25,
            Activation::Hardsigmoid => 1.0 / 6.0,
            Activation::Formula(f) => f.peak,
            _ => 1.0,
        }
    }

    /// The bare name, without parameters.
    pub fn name(&self) -> &str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Elu(_) => "elu",
            Activation::Selu => "selu",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Silu => "silu",
            Activation::Mish => "mish",
            Activation::Softplus { .. } => "softplus",
            Activation::Identity => "identity",
            Activation::Hardshrink(_) => "hardshrink",
            Activation::Softshrink(_) => "softshrink",
            Activation::Hardtanh { .. } => "hardtanh",
            Activation::Hardsigmoid => "hardsigmoid",
            Activation::Hardswish => "hardswish",
            Activation::Logsigmoid => "logsigmoid",
            Activation::Relu6 => "relu6",
            Activation::Celu(_) => "celu",
            Activation::Softsign => "softsign",
            Activation::Tanhshrink => "tanhshrink",
            Activation::Prelu(_) => "prelu",
            Activation::Formula(f) => f.name.as_str(),
        }
    }
}

mod text;

pub use text::{define, define_spec};

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Activation> {
        NAMES.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn derivative_matches_finite_differences() {
        for act in all().into_iter().chain([
            Activation::LeakyRelu(0.2),
            Activation::Elu(0.5),
            Activation::Softplus {
                beta: 2.0,
                threshold: 5.0,
            },
            Activation::Hardtanh {
                min: -2.0,
                max: 2.0,
            },
            Activation::Softshrink(0.2),
            Activation::Hardshrink(1.0),
            Activation::Celu(0.5),
        ]) {
            for i in -40..=40 {
                let x = i as f64 * 0.1 + 0.0137; // avoid kinks exactly at 0
                let h = 1e-3f64;
                let f = |v: f64| act.value(v as f32) as f64;
                let numeric = (f(x + h) - f(x - h)) / (2.0 * h);
                let y = act.value(x as f32);
                let analytic = act.derivative(x as f32, y) as f64;
                assert!(
                    (numeric - analytic).abs() < 2e-3 * (1.0 + analytic.abs()),
                    "{act} at {x}: numeric {numeric} vs analytic {analytic}"
                );
            }
        }
    }

    #[test]
    fn known_values() {
        let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
        assert!(close(Activation::Sigmoid.value(0.0), 0.5));
        assert!(close(Activation::Gelu.value(1.0), 0.841_344_7));
        assert!(close(Activation::GeluTanh.value(1.0), 0.841_192));
        assert!(close(Activation::Selu.value(-1.0), -1.111_330_7));
        assert!(close(Activation::Silu.value(1.0), 0.731_058_6));
        assert!(close(Activation::Mish.value(1.0), 0.865_098_4));
        assert!(close(Activation::Elu(1.0).value(-1.0), -0.632_120_56));
        assert_eq!(Activation::LeakyRelu(0.1).value(-2.0), -0.2);
        assert_eq!("softplus".parse::<Activation>().unwrap().value(30.0), 30.0);
        // PyTorch's values for the rest of its element-wise activations.
        assert!(close(Activation::Hardswish.value(1.0), 0.666_666_7));
        assert!(close(Activation::Hardsigmoid.value(1.0), 0.666_666_7));
        assert!(close(
            Activation::Logsigmoid.value(0.0),
            -std::f32::consts::LN_2
        ));
        assert!(close(Activation::Logsigmoid.value(-100.0), -100.0));
        assert!(close(Activation::Softsign.value(1.0), 0.5));
        assert!(close(Activation::Tanhshrink.value(1.0), 0.238_405_84));
        assert!(close(Activation::Celu(1.0).value(-1.0), -0.632_120_56));
        assert!(close(Activation::Celu(0.5).value(-1.0), -0.432_332_36));
        assert_eq!(Activation::Relu6.value(7.0), 6.0);
        assert_eq!("hardtanh".parse::<Activation>().unwrap().value(-2.0), -1.0);
        assert!(close(
            "softshrink".parse::<Activation>().unwrap().value(0.7),
            0.2
        ));
        assert_eq!("hardshrink".parse::<Activation>().unwrap().value(0.4), 0.0);
        assert_eq!(
            "hardshrink:0.3".parse::<Activation>().unwrap().value(0.4),
            0.4
        );
        assert!("hardtanh:2:1".parse::<Activation>().is_err());
        assert!("celu:0".parse::<Activation>().is_err());
    }

    #[test]
    fn slice_kernels_agree_with_scalar_definitions() {
        let z: Vec<f32> = (-50..50).map(|i| i as f32 * 0.13).collect();
        let da: Vec<f32> = (0..100).map(|i| 1.0 + i as f32 * 0.01).collect();
        for act in all() {
            let mut a = vec![0.0; z.len()];
            let mut dz = vec![0.0; z.len()];
            act.forward(&z, &mut a);
            act.backward(&z, &a, &da, &mut dz);
            for i in 0..z.len() {
                assert_eq!(a[i], act.value(z[i]), "{act}");
                assert_eq!(dz[i], da[i] * act.derivative(z[i], a[i]), "{act}");
            }
        }
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "relu",
            "leaky_relu:0.1",
            "elu:0.5",
            "softplus:2:10",
            "gelu_tanh",
        ] {
            let a: Activation = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert_eq!(
            "leaky_relu".parse::<Activation>().unwrap(),
            Activation::LeakyRelu(0.01)
        );
        let err = "rleu".parse::<Activation>().unwrap_err();
        assert!(err.contains("did you mean 'relu'"), "{err}");
        assert!("relu:3".parse::<Activation>().is_err());
        assert!("leaky_relu:x".parse::<Activation>().is_err());
    }
}
