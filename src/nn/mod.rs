//! The native engine: a network is an ordered list of layers (`layer`), built from
//! its architecture (`arch`) and run by `network`; one file per concern, forward and
//! backward side by side.

pub mod activation;
pub mod arch;
pub mod conv;
pub mod fastmath;
pub mod formula;
pub mod init;
pub mod input;
pub mod layer;
pub mod linear;
pub mod loss;
pub mod names;
pub mod network;
pub mod norm;
pub mod optim;
pub mod output;
pub mod pool;
pub mod portable;
pub mod sparse;
pub mod spec;
#[cfg(test)]
mod tiers;
pub mod workspace;

/// The one seeded generator a run draws init, shuffling and dropout from.
pub type Rng = rand_pcg::Pcg64Mcg;

pub use activation::Activation;
pub use arch::Arch;
pub use init::Init;
pub use input::{ByteRows, Input, InputBuf, RowSource, TrainInput};
pub use loss::Loss;
pub use network::{Mlp, Trace};
pub use optim::{OptimConfig, OptimKind, Optimizer, StepScalars};
pub use output::OutputFn;
pub use sparse::FirstLayer;
pub use workspace::Workspace;
