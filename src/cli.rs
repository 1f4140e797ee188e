//! The command line: argument definitions and dispatch to the library, nothing else.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::TrainConfig;
use crate::data::DatasetName;
use crate::nn::{Activation, Init, Loss, OptimKind, OutputFn};
use crate::run;

/// Honest, fast experiments on activation functions in small MLPs.
#[derive(Parser, Debug)]
#[command(name = "actlab", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train one model (default: the exercise's 784-128-64-10 ReLU/LogSoftmax/NLL, Adam 1e-3, 5 epochs).
    Train(TrainCmd),
    /// Measure training and evaluation speed of the engine.
    Bench(BenchCmd),
}

/// Where the data is.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Folder with the four IDX files (or with an mnist/ or fashion-mnist/ subfolder).
    /// Default: $ACTLAB_DATA_DIR, then the cache ~/.cache/actlab/<dataset>, then a verified download.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Dataset to use.
    #[arg(long, value_enum, default_value_t = DatasetName::Mnist)]
    pub dataset: DatasetName,
}

/// The model and how to train it.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Hidden layer widths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "128,64")]
    pub hidden: Vec<usize>,
    /// Hidden activation, one for all layers or one per layer (comma-separated):
    /// relu, sigmoid, tanh, leaky_relu[:slope], elu[:alpha], selu, gelu, gelu_tanh, silu, mish,
    /// softplus[:beta[:threshold]], identity.
    #[arg(long, value_delimiter = ',', default_value = "relu")]
    pub activation: Vec<Activation>,
    /// Output function on the logits: log_softmax, softmax, sigmoid, identity.
    #[arg(long, default_value = "log_softmax")]
    pub output: OutputFn,
    /// Loss: nll, cross_entropy, mse (one-hot), bce (one-hot).
    #[arg(long, default_value = "nll")]
    pub loss: Loss,
    /// Dropout probability after each hidden activation (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f32,
    /// Initialisation: torch (U(+-1/sqrt(fan_in)), PyTorch's default), xavier, he.
    #[arg(long, default_value = "torch")]
    pub init: Init,
    /// Optimiser.
    #[arg(long, value_enum, default_value_t = OptimKind::Adam)]
    pub optimizer: OptimKind,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Momentum (SGD only).
    #[arg(long, default_value_t = 0.0)]
    pub momentum: f32,
    /// L2 weight decay added to the gradient (as torch.optim does).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Images per training step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Seed of the run's RNG (init, shuffling, dropout): same seed, bit-identical results.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads for one run (results are deterministic for a given count).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Train on only the first N training images.
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Validate on only the first N test images.
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// Keep the training set in file order (no shuffling).
    #[arg(long)]
    pub no_shuffle: bool,
}

impl ModelArgs {
    /// The run configuration these options describe.
    pub fn config(&self, dataset: DatasetName) -> TrainConfig {
        TrainConfig {
            dataset,
            hidden: self.hidden.clone(),
            activation: self.activation.clone(),
            output: self.output,
            loss: self.loss,
            dropout: self.dropout,
            init: self.init,
            optimizer: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            epochs: self.epochs,
            seed: self.seed,
            threads: self.threads,
            limit_train: self.limit_train,
            limit_test: self.limit_test,
            shuffle: !self.no_shuffle,
        }
    }
}

#[derive(Args, Debug)]
struct TrainCmd {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Folder for the run's record.json (default: runs/<timestamp>-train).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct BenchCmd {
    #[command(flatten)]
    data: DataArgs,
    /// Activations to time (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "relu")]
    activation: Vec<Activation>,
    /// Training epochs to time per activation (the fastest counts).
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Threads per run.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Parse the command line and run it.
pub fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(c) => {
            let cfg = c.model.config(c.data.dataset);
            run::train_command(&cfg, c.data.data_dir.as_deref(), c.out)
        }
        Command::Bench(b) => {
            if b.epochs == 0 {
                bail!("--epochs 0: time at least one epoch");
            }
            let report = crate::bench::run(
                b.data.dataset,
                b.data.data_dir.as_deref(),
                &b.activation,
                b.epochs,
                b.threads,
            )?;
            if let Some(path) = b.json {
                let text = serde_json::to_string_pretty(&report)?;
                crate::atomic::write_atomic(&path, text.as_bytes())
                    .with_context(|| format!("{}: cannot write", path.display()))?;
            }
            Ok(())
        }
    }
}
