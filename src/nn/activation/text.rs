//! Activations as text: names and parameters parsed (`relu`, `elu:0.5`, a defined
//! formula), printed back, defined with `--define`, and (de)serialised as that text.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::*;

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Activation::LeakyRelu(s) if s != 0.01 => write!(f, "leaky_relu:{s}"),
            Activation::Elu(a) if a != 1.0 => write!(f, "elu:{a}"),
            Activation::Softplus { beta, threshold } if beta != 1.0 || threshold != 20.0 => {
                write!(f, "softplus:{beta}:{threshold}")
            }
            Activation::Hardshrink(l) if l != 0.5 => write!(f, "hardshrink:{l}"),
            Activation::Softshrink(l) if l != 0.5 => write!(f, "softshrink:{l}"),
            Activation::Hardtanh { min, max } if min != -1.0 || max != 1.0 => {
                write!(f, "hardtanh:{min}:{max}")
            }
            Activation::Celu(a) if a != 1.0 => write!(f, "celu:{a}"),
            Activation::Prelu(a) if a != 0.25 => write!(f, "prelu:{a}"),
            _ => f.write_str(self.name()),
        }
    }
}

/// The activations added to match the rest of PyTorch's, with their parameters.
fn parse_piecewise(
    name: &str,
    num: &dyn Fn(usize, f32) -> Result<f32, String>,
) -> Result<Activation, String> {
    Ok(match name {
        "hardshrink" | "softshrink" => {
            let l = num(0, 0.5)?;
            if l < 0.0 {
                return Err(format!("{name} lambda must be >= 0, got {l}"));
            }
            if name == "hardshrink" {
                Activation::Hardshrink(l)
            } else {
                Activation::Softshrink(l)
            }
        }
        "hardtanh" => {
            let (min, max) = (num(0, -1.0)?, num(1, 1.0)?);
            if min >= max {
                return Err(format!("hardtanh needs min < max, got {min}:{max}"));
            }
            Activation::Hardtanh { min, max }
        }
        "hardsigmoid" => Activation::Hardsigmoid,
        "hardswish" => Activation::Hardswish,
        "logsigmoid" => Activation::Logsigmoid,
        "relu6" => Activation::Relu6,
        "celu" => {
            let alpha = num(0, 1.0)?;
            if alpha == 0.0 {
                return Err("celu alpha must not be 0".into());
            }
            Activation::Celu(alpha)
        }
        "softsign" => Activation::Softsign,
        "tanhshrink" => Activation::Tanhshrink,
        "prelu" => Activation::Prelu(num(0, 0.25)?),
        _ => return Err(unknown_name("activation", name, &NAMES)),
    })
}

impl FromStr for Activation {
    type Err = String;

    /// A built-in with its parameters, or `NAME=FORMULA` (as records and models store
    /// formulas); a bare formula name needs [`Activation::parse_with`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Activation::parse_with(s, &formula::Formulas::default())
    }
}

impl Activation {
    /// A built-in with its parameters, `NAME=FORMULA`, or the name of one of `defined`.
    pub fn parse_with(s: &str, defined: &formula::Formulas) -> Result<Activation, String> {
        // NAME=FORMULA (as stored in records and models) defines it on the way in.
        if s.contains('=') {
            return define_spec(s.trim())
                .map(Activation::Formula)
                .map_err(|e| e.to_string());
        }
        let mut parts = s.trim().split(':');
        let name = parts.next().unwrap_or_default().to_lowercase();
        let params: Vec<&str> = parts.collect();
        let num = |i: usize, default: f32| number(params.get(i).copied(), default, &name);
        let max_params = parameters(&name).len();
        if params.len() > max_params {
            return Err(format!(
                "activation '{name}' takes {max_params} parameter(s), got '{s}'"
            ));
        }
        Ok(match name.as_str() {
            "relu" => Activation::Relu,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "leaky_relu" => Activation::LeakyRelu(num(0, 0.01)?),
            "elu" => Activation::Elu(num(0, 1.0)?),
            "selu" => Activation::Selu,
            "gelu" => Activation::Gelu,
            "gelu_tanh" => Activation::GeluTanh,
            "silu" | "swish" => Activation::Silu,
            "mish" => Activation::Mish,
            "softplus" => {
                let beta = num(0, 1.0)?;
                if beta <= 0.0 {
                    return Err(format!("softplus beta must be > 0, got {beta}"));
                }
                Activation::Softplus {
                    beta,
                    threshold: num(1, 20.0)?,
                }
            }
            "identity" | "linear" | "none" => Activation::Identity,
            "hardshrink" | "softshrink" | "hardtanh" | "hardsigmoid" | "hardswish"
            | "logsigmoid" | "relu6" | "celu" | "softsign" | "tanhshrink" | "prelu" => {
                parse_piecewise(&name, &num)?
            }
            _ => match defined.get(&name) {
                Some(f) if params.is_empty() => Activation::Formula(f.clone()),
                Some(_) => return Err(format!("'{name}' is a formula and takes no parameters")),
                None => return Err(unknown_activation(&name, defined)),
            },
        })
    }
}

/// Names a formula may not take: the built-in activations and their aliases.
const RESERVED: [&str; 3] = ["swish", "linear", "none"];

/// Define the activation `name` by the formula `text` (see [`crate::nn::formula`]),
/// refusing the name of a built-in.
pub fn define(name: &str, text: &str) -> Result<Arc<formula::Formula>, formula::FormulaError> {
    if NAMES.iter().chain(&RESERVED).any(|n| *n == name) {
        return Err(formula::FormulaError::new(format!(
            "--define {name}={text}: '{name}' is a built-in activation; give the formula another name"
        )));
    }
    formula::compile(name, text).map(Arc::new)
}

/// Define from `NAME=FORMULA`, as [`define`].
pub fn define_spec(spec: &str) -> Result<Arc<formula::Formula>, formula::FormulaError> {
    let Some((name, text)) = spec.split_once('=') else {
        return Err(formula::FormulaError::new(format!(
            "--define {spec}: expected NAME=FORMULA, e.g. --define 'quick_gelu=x * sigmoid(1.702 * x)'"
        )));
    };
    define(name.trim(), text)
}

/// "unknown activation" with built-in and defined names, and how to define one.
/// An activation's parameter `p` (`default` when not given), a finite number.
fn number(p: Option<&str>, default: f32, name: &str) -> Result<f32, String> {
    let Some(p) = p else { return Ok(default) };
    let v = p.parse::<f32>().ok().filter(|v| v.is_finite());
    v.ok_or_else(|| format!("bad parameter '{p}' for activation '{name}': expected a number"))
}

fn unknown_activation(name: &str, defined: &formula::Formulas) -> String {
    let mut all: Vec<&str> = NAMES.to_vec();
    all.extend(defined.names());
    format!(
        "{} (or define it: --define '{name}=FORMULA')",
        unknown_name("activation", name, &all)
    )
}

impl serde::Serialize for Activation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Formulas are written with their definition, so what reads them back
        // (records, saved models, shards) needs no --define.
        match self.formula() {
            Some(f) => s.serialize_str(&format!("{}={}", f.name, f.text)),
            None => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Activation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
