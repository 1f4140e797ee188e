//! Parameter initialisation schemes.

use rand::RngExt;
use std::fmt;
use std::str::FromStr;

use super::names::unknown_name;
use super::Rng;

/// How weights and biases start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Init {
    /// PyTorch's `nn.Linear` default: weights and biases U(+-1/sqrt(fan_in)).
    Torch,
    /// Glorot uniform: weights U(+-sqrt(6/(fan_in+fan_out))), biases 0.
    Xavier,
    /// He (Kaiming) uniform for ReLU: weights U(+-sqrt(6/fan_in)), biases 0.
    He,
}

/// Every init name accepted on the command line.
pub const NAMES: [&str; 3] = ["torch", "xavier", "he"];

impl Init {
    /// Fill a layer's weights and biases.
    pub fn fill(self, rng: &mut Rng, fan_in: usize, fan_out: usize, w: &mut [f32], b: &mut [f32]) {
        let (wb, bb) = match self {
            Init::Torch => {
                let bound = 1.0 / (fan_in as f32).sqrt();
                (bound, bound)
            }
            Init::Xavier => ((6.0 / (fan_in + fan_out) as f32).sqrt(), 0.0),
            Init::He => ((6.0 / fan_in as f32).sqrt(), 0.0),
        };
        for v in w.iter_mut() {
            *v = rng.random_range(-wb..wb);
        }
        for v in b.iter_mut() {
            *v = if bb > 0.0 {
                rng.random_range(-bb..bb)
            } else {
                0.0
            };
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Init::Torch => "torch",
            Init::Xavier => "xavier",
            Init::He => "he",
        }
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Init {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_lowercase().as_str() {
            "torch" | "default" | "pytorch" => Init::Torch,
            "xavier" | "glorot" => Init::Xavier,
            "he" | "kaiming" => Init::He,
            other => return Err(unknown_name("init", other, &NAMES)),
        })
    }
}

crate::serde_via_string!(Init);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn bounds_are_respected_and_used() {
        let mut rng = Rng::seed_from_u64(3);
        let (mut w, mut b) = (vec![0.0; 784 * 16], vec![0.0; 16]);
        Init::Torch.fill(&mut rng, 784, 16, &mut w, &mut b);
        let bound = 1.0 / 28.0;
        assert!(w.iter().chain(&b).all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > 0.9 * bound));
        Init::He.fill(&mut rng, 784, 16, &mut w, &mut b);
        assert!(b.iter().all(|&v| v == 0.0));
        assert!(w.iter().any(|v| v.abs() > bound * 2.0));
    }
}
