//! The conv-net part of an architecture as options give it: conv layers
//! (`C:K[:S[:P]]`), the pooling after each and the normalisation of hidden layers;
//! parsing and printing of each, and the chain of shapes they make on an image.
//!
//! Shapes: an image c x h x w (NCHW rows); each conv layer k maps it to
//! c_out x oh x ow, pooling halves h and w (floored); the last map flattens in
//! (C, H, W) order, which is the row-major order it already has.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::conv::{ConvShape, ShapeError};
use super::pool::{PoolKind, PoolShape};

/// A bad conv, pool or norm option, as one line naming the part and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A conv spec that is not C:K[:S[:P]] of whole numbers.
    #[error("conv layer {layer}: '{text}' is not C:K[:S[:P]] (out channels, kernel, stride, padding), e.g. 6:5:1:2")]
    Conv {
        /// 1-based conv layer.
        layer: usize,
        /// What was given.
        text: String,
    },
    /// An unknown pooling or normalisation name.
    #[error("unknown {what} '{text}'; use one of {choices}")]
    Choice {
        /// "pool" or "norm".
        what: &'static str,
        /// What was given.
        text: String,
        /// The names accepted.
        choices: &'static str,
    },
}

/// One conv layer as the options give it (written "C:K:S:P" in files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConvSpec {
    /// Output channels.
    pub channels: usize,
    /// Kernel size (square).
    pub kernel: usize,
    /// Stride (1 by default).
    pub stride: usize,
    /// Zero padding on each side (0 by default).
    pub pad: usize,
}

impl ConvSpec {
    /// Parse a comma-separated list of specs ("" or "none": no conv layers).
    pub fn parse_list(text: &str) -> Result<Vec<ConvSpec>, SpecError> {
        let text = text.trim();
        if text.is_empty() || text == "none" {
            return Ok(Vec::new());
        }
        text.split(',')
            .enumerate()
            .map(|(i, s)| Self::parse_one(i + 1, s.trim()))
            .collect()
    }

    /// One spec C:K[:S[:P]] of conv layer `layer` (1-based).
    pub fn parse_one(layer: usize, text: &str) -> Result<ConvSpec, SpecError> {
        let bad = || SpecError::Conv {
            layer,
            text: text.to_string(),
        };
        let v: Vec<usize> = text
            .split(':')
            .map(|p| p.trim().parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        if !(2..=4).contains(&v.len()) {
            return Err(bad());
        }
        Ok(ConvSpec {
            channels: v[0],
            kernel: v[1],
            stride: v.get(2).copied().unwrap_or(1),
            pad: v.get(3).copied().unwrap_or(0),
        })
    }

    /// The specs as the options write them, comma-separated.
    pub fn list_to_string(specs: &[ConvSpec]) -> String {
        let parts: Vec<String> = specs.iter().map(ToString::to_string).collect();
        parts.join(",")
    }
}

/// The models that have a name (`--model`, Python's `model=`).
pub const NAMED_MODELS: &str = "lenet5";

/// A named model's conv layers and hidden widths: lenet5 is
/// `--conv 6:5:1:2,16:5 --pool max --hidden 120,84` (max pooling is the default).
pub fn named_model(name: &str) -> Result<(Vec<ConvSpec>, Vec<usize>), SpecError> {
    match name {
        "lenet5" => Ok((ConvSpec::parse_list("6:5:1:2,16:5")?, vec![120, 84])),
        other => Err(SpecError::Choice {
            what: "model",
            text: other.to_string(),
            choices: NAMED_MODELS,
        }),
    }
}

impl TryFrom<String> for ConvSpec {
    type Error = SpecError;
    fn try_from(s: String) -> Result<Self, SpecError> {
        ConvSpec::parse_one(1, &s)
    }
}

impl From<ConvSpec> for String {
    fn from(s: ConvSpec) -> String {
        s.to_string()
    }
}

impl fmt::Display for ConvSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.channels, self.kernel, self.stride, self.pad
        )
    }
}

/// The 2x2 pooling after each conv layer's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// Max pooling (the default).
    #[default]
    Max,
    /// Average pooling.
    Avg,
    /// No pooling.
    None,
}

impl Pool {
    /// The kernel's kind, or None for no pooling.
    pub fn kind(self) -> Option<PoolKind> {
        match self {
            Pool::Max => Some(PoolKind::Max),
            Pool::Avg => Some(PoolKind::Avg),
            Pool::None => None,
        }
    }

    /// Whether this is the default (max): records of MLPs leave it out.
    pub fn is_default(&self) -> bool {
        *self == Pool::Max
    }
}

impl FromStr for Pool {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s.trim() {
            "max" => Ok(Pool::Max),
            "avg" => Ok(Pool::Avg),
            "none" => Ok(Pool::None),
            other => Err(SpecError::Choice {
                what: "pool",
                text: other.to_string(),
                choices: "max, avg, none",
            }),
        }
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pool::Max => "max",
            Pool::Avg => "avg",
            Pool::None => "none",
        })
    }
}

/// Normalisation after each hidden layer's conv/linear map, before its activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// None (the default).
    #[default]
    None,
    /// BatchNorm2d / BatchNorm1d; the map before it has no bias.
    Batch,
    /// GroupNorm(1, C) after a conv layer, LayerNorm(width) after a linear one.
    Layer,
}

impl Norm {
    /// Whether this is the default (none): records of plain MLPs leave it out.
    pub fn is_default(&self) -> bool {
        *self == Norm::None
    }
}

impl FromStr for Norm {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s.trim() {
            "none" => Ok(Norm::None),
            "batch" => Ok(Norm::Batch),
            "layer" => Ok(Norm::Layer),
            other => Err(SpecError::Choice {
                what: "norm",
                text: other.to_string(),
                choices: "none, batch, layer",
            }),
        }
    }
}

impl fmt::Display for Norm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Norm::None => "none",
            Norm::Batch => "batch",
            Norm::Layer => "layer",
        })
    }
}

/// The checked shapes of the conv layers and their pools on an image, and the
/// width of the flattened last map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvPlan {
    /// Each conv layer and the pool after it.
    pub layers: Vec<(ConvShape, Option<PoolShape>)>,
    /// Values per image after the last conv layer (and pool): the first linear
    /// layer's input width.
    pub flat: usize,
}

impl ConvPlan {
    /// The chain of `specs` with `pool` on a c x h x w image; an error names the
    /// first layer that shrinks the image to nothing.
    pub fn new(
        specs: &[ConvSpec],
        pool: Pool,
        image: (usize, usize, usize),
    ) -> Result<ConvPlan, ShapeError> {
        let (mut layers, mut dims) = (Vec::new(), image);
        for (k, s) in specs.iter().enumerate() {
            let conv = ConvShape::new(k + 1, dims, s.channels, s.kernel, s.stride, s.pad)?;
            dims = conv.out_dims();
            let pool = match pool.kind() {
                Some(kind) => {
                    let p = PoolShape::new(k + 1, kind, dims)?;
                    dims = p.out_dims();
                    Some(p)
                }
                None => None,
            };
            layers.push((conv, pool));
        }
        Ok(ConvPlan {
            layers,
            flat: dims.0 * dims.1 * dims.2,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_defaults_and_name_the_bad_layer() {
        let v = ConvSpec::parse_list("6:5:1:2, 16:5").unwrap();
        assert_eq!(v[1], ConvSpec::parse_one(2, "16:5:1:0").unwrap());
        assert_eq!(ConvSpec::list_to_string(&v), "6:5:1:2,16:5:1:0");
        assert!(ConvSpec::parse_list("none").unwrap().is_empty());
        let e = ConvSpec::parse_list("6:5,16").unwrap_err().to_string();
        assert!(e.starts_with("conv layer 2: '16'"), "{e}");
        assert!(ConvSpec::parse_list("6:5:1:2:3").is_err());
        assert_eq!("avg".parse::<Pool>().unwrap(), Pool::Avg);
        assert!("mean".parse::<Norm>().is_err());
    }

    /// LeNet-5 flattens to 16 x 5 x 5; a net that shrinks the image names the layer.
    #[test]
    fn plans_chain_shapes_and_reject_shrinking_specs() {
        let specs = ConvSpec::parse_list("6:5:1:2,16:5").unwrap();
        let p = ConvPlan::new(&specs, Pool::Max, (1, 28, 28)).unwrap();
        assert_eq!(p.flat, 400);
        let p = ConvPlan::new(&specs, Pool::None, (1, 28, 28)).unwrap();
        assert_eq!(p.flat, 16 * 24 * 24);
        let deep = ConvSpec::parse_list("4:5,4:5,4:4").unwrap();
        let e = ConvPlan::new(&deep, Pool::Max, (1, 28, 28)).unwrap_err();
        assert!(
            e.to_string().starts_with("the pool after conv layer 3"),
            "{e}"
        );
        let e = ConvPlan::new(
            &ConvSpec::parse_list("4:30").unwrap(),
            Pool::Max,
            (1, 28, 28),
        );
        assert!(e
            .unwrap_err()
            .to_string()
            .starts_with("conv layer 1: a 30x30"));
    }
}
