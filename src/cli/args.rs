//! The command line's arguments: one struct per group of options, each parsed and
//! checked once by clap (numbers, names, seeds, shards) and handed on as it is.

use crate::nn::spec::ConvSpec;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;

use super::help;
use crate::config::TrainConfig;
use crate::data::DatasetName;
use crate::experiment::jobs::Options;
use crate::nn::formula::{Formula, Formulas};
use crate::nn::{Activation, Init, Loss, OptimKind, OutputFn};

/// Formulas defined on the command line, for the activation names it uses.
#[derive(Args, Debug, Clone, Default)]
pub struct Defines {
    #[arg(long = "define", value_name = "NAME=FORMULA", value_parser = help::define_value,
          help = help::define())]
    pub define: Vec<Arc<Formula>>,
}

impl Defines {
    /// The definitions as one table (a name defined twice must mean one formula), with
    /// a warning for each formula that is not finite on [-20, 20].
    pub fn formulas(&self) -> Result<Formulas> {
        let mut table = Formulas::default();
        for f in &self.define {
            table.add(f.clone())?;
            if let Some(w) = &f.warning {
                eprintln!("warning: {w}");
            }
        }
        Ok(table)
    }
}

/// Activation names as given, resolved against `formulas`.
pub fn resolve(names: &[String], formulas: &Formulas) -> Result<Vec<Activation>> {
    names
        .iter()
        .map(|n| {
            Activation::parse_with(n, formulas)
                .map_err(|e| anyhow::anyhow!("--activation {n}: {e}"))
        })
        .collect()
}

/// How much memory runs may use.
#[derive(Args, Debug, Clone, Default)]
pub struct Memory {
    /// Memory runs may use, in MB (default: what the machine has available); runs
    /// that would need more are refused before they start.
    #[arg(long, value_name = "MB", value_parser = help::whole_u64)]
    pub max_memory: Option<u64>,
}

impl Memory {
    /// Apply the limit, if one was given.
    pub fn apply(&self) {
        if let Some(mb) = self.max_memory {
            crate::run::set_memory_limit(mb);
        }
    }
}

/// For weights without actlab metadata (e.g. exported from PyTorch).
#[derive(Args, Debug, Clone)]
pub struct FallbackArgs {
    /// Hidden activation(s), if the file does not say (default relu): a built-in (see
    /// `train --help`) or NAME=FORMULA, comma-separated for one per layer.
    #[arg(long, value_delimiter = ',')]
    pub activation: Option<Vec<Activation>>,
    /// Output function, if the file does not say (default log_softmax).
    #[arg(long)]
    pub output: Option<OutputFn>,
}

impl FallbackArgs {
    /// The fallback, with the loss `eval` reports.
    pub fn get(&self, loss: Option<Loss>) -> crate::run::inference::Fallback {
        crate::run::inference::Fallback {
            activation: self.activation.clone(),
            output: self.output,
            loss,
        }
    }
}

/// Where the data is.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    #[arg(long, value_name = "DIR", help = help::DATA_DIR)]
    pub data_dir: Option<PathBuf>,
    /// Dataset to use.
    #[arg(long, value_enum, default_value_t = DatasetName::Mnist)]
    pub dataset: DatasetName,
    /// Your own data instead: an .npz holding x_train, y_train, x_test, y_test (Keras's
    /// mnist.npz layout); uint8 (N, H, W) images are read as byte / 255, float32/float64
    /// (N, D) features as they are, labels are integers 0..K-1 (K at most 1,000).
    #[arg(long, value_name = "FILE.npz", conflicts_with = "dataset")]
    pub data_file: Option<PathBuf>,
}

/// `--data-dir` alone, for commands that read a dataset named elsewhere.
#[derive(Args, Debug, Clone)]
pub struct DataDir {
    #[arg(long, value_name = "DIR", help = help::DATA_DIR)]
    pub data_dir: Option<PathBuf>,
}

/// How an experiment's runs are scheduled and stored (one struct down to the runner).
#[derive(Args, Debug, Clone)]
pub struct ExperimentArgs {
    #[command(flatten)]
    pub options: Options,
    #[command(flatten)]
    pub memory: Memory,
}

/// The network's layers: the same options in `train`, `compare` and `bench`.
#[derive(Args, Debug, Clone)]
pub struct LayerArgs {
    /// Fully connected hidden layer widths, comma-separated (after flattening the
    /// conv layers' output in (C, H, W) order).
    #[arg(long, value_delimiter = ',', default_value = "128,64", value_parser = help::whole)]
    pub hidden: Vec<usize>,
    /// Conv layers on the 1x28x28 image, C:K[:S[:P]] each (out channels, kernel,
    /// stride 1, padding 0), comma-separated; each is followed by its norm, its
    /// activation and the pool. Default none (an MLP).
    #[arg(long, value_name = "C:K[:S[:P]],...")]
    pub conv: Option<String>,
    /// 2x2 pooling (stride 2) after each conv layer's activation: max, avg or none.
    #[arg(long, value_name = "max|avg|none")]
    pub pool: Option<String>,
    /// Normalisation after each hidden layer's conv/linear map, before its
    /// activation: none, batch (BatchNorm; the map has no bias) or layer (GroupNorm(1, C)
    /// after a conv layer, LayerNorm after a linear one).
    #[arg(long, value_name = "none|batch|layer", default_value = "none")]
    pub norm: String,
    /// A named model: lenet5 = --conv 6:5:1:2,16:5 --pool max --hidden 120,84 (an
    /// explicit --conv or --pool wins).
    #[arg(long, value_name = "lenet5")]
    pub model: Option<String>,
}

/// The model and how to train it.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    #[command(flatten)]
    pub layers: LayerArgs,
    #[arg(long, value_delimiter = ',', default_value = "relu", help = help::activation())]
    pub activation: Vec<String>,
    #[command(flatten)]
    pub defines: Defines,
    #[arg(long, default_value = "log_softmax", help = help::output())]
    pub output: OutputFn,
    #[arg(long, default_value = "nll", help = help::loss())]
    pub loss: Loss,
    /// Dropout probability after each hidden activation, in [0, 1) (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f32,
    #[arg(long, default_value = "torch", help = help::init())]
    pub init: Init,
    /// Optimiser.
    #[arg(long, value_enum, default_value_t = OptimKind::Adam)]
    pub optimizer: OptimKind,
    /// Learning rate (above 0).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Momentum, in [0, 1) (SGD only).
    #[arg(long, default_value_t = 0.0)]
    pub momentum: f32,
    /// Nesterov momentum (SGD with --momentum only).
    #[arg(long)]
    pub nesterov: bool,
    /// L2 weight decay added to the gradient, 0 or more (as torch.optim does).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Images per training step.
    #[arg(long, default_value_t = 64, value_parser = help::whole)]
    pub batch_size: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = 5, value_parser = help::whole)]
    pub epochs: usize,
    /// Seed of the run's RNG (init, shuffling, dropout): same seed, bit-identical
    /// results (compare: the one seed when --seeds is not given).
    #[arg(long, default_value_t = 0, value_parser = help::whole_u64)]
    pub seed: u64,
    /// Threads for one run (results are deterministic for a given count).
    #[arg(long, default_value_t = 1, value_parser = help::whole)]
    pub threads: usize,
    #[command(flatten)]
    pub limits: Limits,
    /// Keep the training set in file order (no shuffling).
    #[arg(long)]
    pub no_shuffle: bool,
    /// Skip recording gradient norms, layer statistics, saturated and dead units.
    #[arg(long)]
    pub no_diagnostics: bool,
}

/// Which images a run uses.
#[derive(Args, Debug, Clone)]
pub struct Limits {
    /// Train on only the first N training images.
    #[arg(long, value_name = "N", value_parser = help::whole)]
    pub limit_train: Option<usize>,
    /// Test on only the first N test images.
    #[arg(long, value_name = "N", value_parser = help::whole)]
    pub limit_test: Option<usize>,
    /// Hold out N training images (class-stratified, the same for every run) as the
    /// validation set; the test set is then reported apart and never used to choose.
    /// Without it "val" is the test set, as in the exercise.
    #[arg(long, value_name = "N", value_parser = help::whole)]
    pub val_split: Option<usize>,
}

impl LayerArgs {
    /// The conv layers and hidden widths, from --model, --conv and --hidden.
    fn widths(&self) -> Result<(Vec<ConvSpec>, Vec<usize>)> {
        let (mut conv, mut hidden) = (Vec::new(), self.hidden.clone());
        if let Some(name) = &self.model {
            (conv, hidden) = crate::nn::spec::named_model(name)?;
        }
        if let Some(spec) = &self.conv {
            conv = ConvSpec::parse_list(spec)?;
        }
        Ok((conv, hidden))
    }

    /// `base` with these layers: conv layers, pool, norm and hidden widths.
    pub fn apply(&self, base: TrainConfig) -> Result<TrainConfig> {
        let (conv, hidden) = self.widths()?;
        Ok(TrainConfig {
            conv,
            pool: self.pool.as_deref().unwrap_or("max").parse()?,
            norm: self.norm.parse()?,
            hidden,
            ..base
        })
    }
}

impl ModelArgs {
    /// The run configuration these options describe, with the formulas they define.
    pub fn config(&self, dataset: DatasetName) -> Result<(TrainConfig, Formulas)> {
        let formulas = self.defines.formulas()?;
        let layers = self.layers.apply(TrainConfig::default())?;
        let config = TrainConfig {
            dataset,
            data_file: None,
            data_shape: None,
            conv: layers.conv,
            pool: layers.pool,
            norm: layers.norm,
            hidden: layers.hidden,
            activation: resolve(&self.activation, &formulas)?,
            output: self.output,
            loss: self.loss,
            dropout: self.dropout,
            init: self.init,
            optimizer: self.optimizer,
            nesterov: self.nesterov,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            epochs: self.epochs,
            seed: self.seed,
            threads: self.threads,
            limit_train: self.limits.limit_train,
            limit_test: self.limits.limit_test,
            val_split: self.limits.val_split,
            shuffle: !self.no_shuffle,
            diagnostics: !self.no_diagnostics,
        };
        Ok((config, formulas))
    }
}
