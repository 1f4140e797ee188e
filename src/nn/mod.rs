//! The native MLP engine: one file per concern, forward and backward side by side.

pub mod activation;
pub mod fastmath;
pub mod formula;
pub mod init;
pub mod layer;
pub mod loss;
pub mod mlp;
pub mod names;
pub mod optim;
pub mod output;
pub mod portable;
pub mod sparse;
#[cfg(test)]
mod tiers;

/// The one seeded generator a run draws init, shuffling and dropout from.
pub type Rng = rand_pcg::Pcg64Mcg;

pub use activation::Activation;
pub use init::Init;
pub use loss::Loss;
pub use mlp::{Arch, Mlp, Workspace};
pub use optim::{OptimConfig, OptimKind, Optimizer, StepScalars};
pub use output::OutputFn;
pub use sparse::FirstLayer;
