//! A run's full configuration: what the CLI, TOML experiments and run records share.

use serde::{Deserialize, Serialize};

use std::path::PathBuf;

use crate::data::{DatasetName, Shape};

/// A setting that cannot work, in one line with the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);
use crate::nn::spec::{ConvSpec, Norm, Pool};
use crate::nn::{Activation, Arch, Init, Loss, OptimConfig, OptimKind, OutputFn};

/// Everything that determines a training run (with the seed, results are bit-identical).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Which dataset.
    pub dataset: DatasetName,
    /// `--data-file`: the user's own `.npz` (the dataset is then `file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_file: Option<PathBuf>,
    /// The data file's shape, recorded once it is read so that a checkpoint or saved
    /// model rebuilds the same network (a named dataset's shape is fixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_shape: Option<Shape>,
    /// Conv layers on the image before the hidden layers ("C:K:S:P" each).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<ConvSpec>,
    /// 2x2 pooling after each conv layer's activation.
    #[serde(skip_serializing_if = "Pool::is_default")]
    pub pool: Pool,
    /// Normalisation of every hidden layer, before its activation.
    #[serde(skip_serializing_if = "Norm::is_default")]
    pub norm: Norm,
    /// Fully connected hidden layer widths.
    pub hidden: Vec<usize>,
    /// One activation for every hidden layer, or one per hidden layer.
    pub activation: Vec<Activation>,
    /// Output function on the logits.
    pub output: OutputFn,
    /// Training loss.
    pub loss: Loss,
    /// Dropout probability after each hidden activation (0 = off).
    pub dropout: f32,
    /// Parameter initialisation.
    pub init: Init,
    /// Update rule.
    pub optimizer: OptimKind,
    /// Learning rate.
    pub lr: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// Nesterov momentum for SGD.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nesterov: bool,
    /// L2 weight decay (decoupled for AdamW).
    pub weight_decay: f32,
    /// Images per step.
    pub batch_size: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Seed of the run's one RNG (init, shuffling, dropout).
    pub seed: u64,
    /// Threads for this run (results are deterministic for a given count).
    pub threads: usize,
    /// Use only the first N training images.
    pub limit_train: Option<usize>,
    /// Use only the first N test images.
    pub limit_test: Option<usize>,
    /// Hold out N training images (class-stratified, the same for every run) as the
    /// validation set; the test set is then only reported, never used to choose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_split: Option<usize>,
    /// Shuffle the training set each epoch.
    pub shuffle: bool,
    /// Record gradient norms, layer statistics, saturated and dead units.
    pub diagnostics: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            dataset: DatasetName::Mnist,
            data_file: None,
            data_shape: None,
            conv: Vec::new(),
            pool: Pool::default(),
            norm: Norm::default(),
            hidden: vec![128, 64],
            activation: vec![Activation::Relu],
            output: OutputFn::LogSoftmax,
            loss: Loss::Nll,
            dropout: 0.0,
            init: Init::Torch,
            optimizer: OptimKind::Adam,
            lr: 1e-3,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            batch_size: 64,
            epochs: 5,
            seed: 0,
            threads: 1,
            limit_train: None,
            limit_test: None,
            val_split: None,
            shuffle: true,
            diagnostics: true,
        }
    }
}

impl TrainConfig {
    /// The part of `full` this run uses (`limit_train` / `limit_test`), with the
    /// validation images of `val_split` held out of the training part.
    pub fn split_of<'a>(
        &self,
        full: &'a crate::data::Split,
    ) -> Result<std::borrow::Cow<'a, crate::data::Split>, ConfigError> {
        let limited = full.limited(self.limit_train, self.limit_test);
        match self.val_split {
            None => Ok(limited),
            Some(n) => limited
                .holding_out(n)
                .map(std::borrow::Cow::Owned)
                .map_err(ConfigError),
        }
    }

    /// Number of hidden layers, conv layers first.
    pub fn hidden_layers(&self) -> usize {
        self.conv.len() + self.hidden.len()
    }

    /// The activation of each hidden layer, conv layers first (a single one is
    /// repeated).
    pub fn activations(&self) -> Vec<Activation> {
        if self.activation.len() == 1 {
            vec![self.activation[0].clone(); self.hidden_layers()]
        } else {
            self.activation.clone()
        }
    }

    /// Train on the `.npz` at `path` instead of a named dataset.
    pub fn with_data_file(mut self, path: Option<PathBuf>) -> Self {
        if let Some(p) = path {
            self.dataset = DatasetName::File;
            self.data_file = Some(p);
        }
        self
    }

    /// This config with the shape of `split` recorded when it is a data file's.
    pub fn with_shape_of(&self, split: &crate::data::Split) -> Self {
        TrainConfig {
            data_shape: (self.dataset == DatasetName::File).then_some(split.shape),
            ..self.clone()
        }
    }

    /// Inputs per row, image shape and classes of the data this config trains on.
    pub fn shape(&self) -> Shape {
        self.data_shape.unwrap_or(self.dataset.shape())
    }

    /// Layer sizes and functions: input width and class count from the data.
    pub fn arch(&self) -> Arch {
        let shape = self.shape();
        let mut sizes = vec![shape.width];
        sizes.extend(&self.hidden);
        sizes.push(shape.classes);
        Arch {
            sizes,
            activations: self.activations(),
            output: self.output,
            dropout: self.dropout,
            conv: self.conv.clone(),
            pool: self.pool,
            norm: self.norm,
            image: None,
        }
    }

    /// Optimiser settings.
    pub fn optim(&self) -> OptimConfig {
        OptimConfig {
            kind: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            ..OptimConfig::default()
        }
    }

    /// Every key of a config as experiment files and `--variant` write it, derived
    /// from its serialized form (with the optional fields set, so none is left out).
    pub fn keys() -> Vec<String> {
        // Every optional field set, so that keys left out of default records count too.
        let full = TrainConfig {
            conv: vec![ConvSpec {
                channels: 1,
                kernel: 1,
                stride: 1,
                pad: 0,
            }],
            pool: Pool::Avg,
            norm: Norm::Layer,
            nesterov: true,
            limit_train: Some(1),
            limit_test: Some(1),
            val_split: Some(1),
            ..TrainConfig::default()
        };
        toml::Table::try_from(full)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A short label such as "relu/log_softmax/nll+dropout0.2".
    pub fn label(&self) -> String {
        let acts: Vec<String> = self.activation.iter().map(|a| a.to_string()).collect();
        let mut s = format!("{}/{}/{}", acts.join(","), self.output, self.loss);
        if self.dropout > 0.0 {
            s.push_str(&format!("+dropout{}", self.dropout));
        }
        s
    }

    /// Reject impossible settings before any work starts, with the fix in the message.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_layers()?;
        self.validate_optimiser()?;
        self.validate_schedule()
    }

    /// Layer widths and the activations that go with them.
    fn validate_layers(&self) -> Result<(), ConfigError> {
        if self.hidden.contains(&0) {
            return Err(ConfigError(format!(
                "--hidden {:?}: layer widths must be at least 1 (e.g. --hidden 128,64)",
                self.hidden
            )));
        }
        if self.activation.is_empty() {
            return Err(ConfigError(
                "--activation: give at least one activation (e.g. relu)".into(),
            ));
        }
        if self.activation.len() != 1 && self.activation.len() != self.hidden_layers() {
            return Err(ConfigError(format!(
                "--activation lists {} functions but the net has {} hidden layers (--conv layers, then --hidden); give one for all or one per layer",
                self.activation.len(),
                self.hidden_layers()
            )));
        }
        self.arch()
            .check()
            .map_err(|e| ConfigError(e.to_string()))?;
        if self.hidden_layers() == 0 && self.activation.len() > 1 {
            return Err(ConfigError(
                "--activation: no hidden layers to apply it to".into(),
            ));
        }
        Ok(())
    }

    /// Dropout and the optimiser's settings.
    fn validate_optimiser(&self) -> Result<(), ConfigError> {
        if !(0.0..1.0).contains(&self.dropout) || self.dropout.is_nan() {
            return Err(ConfigError(format!(
                "--dropout {}: must be in [0, 1) (e.g. 0.2)",
                self.dropout
            )));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(ConfigError(format!(
                "--lr {}: the learning rate must be a positive number (e.g. 0.001)",
                self.lr
            )));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(ConfigError(format!(
                "--momentum {}: must be in [0, 1)",
                self.momentum
            )));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(ConfigError(format!(
                "--weight-decay {}: must be >= 0",
                self.weight_decay
            )));
        }
        if self.nesterov && (self.optimizer != OptimKind::Sgd || self.momentum == 0.0) {
            return Err(ConfigError(
                "--nesterov needs --optimizer sgd with a --momentum above 0 (as torch.optim.SGD)"
                    .into(),
            ));
        }
        if self.momentum != 0.0 && self.optimizer != OptimKind::Sgd {
            return Err(ConfigError(
                "--momentum applies to --optimizer sgd; Adam's momentum is its beta1 (drop --momentum or use --optimizer sgd)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Batch size, epochs, threads and image limits.
    fn validate_schedule(&self) -> Result<(), ConfigError> {
        if self.batch_size == 0 {
            return Err(ConfigError(
                "--batch-size 0: must be at least 1 (e.g. 64)".into(),
            ));
        }
        // Every batch would be skipped (see the trainer's one-image batches).
        if !self.arch().trains_on(self.batch_size) {
            return Err(ConfigError(
                "--batch-size 1 with --norm batch: batch norm on a linear layer needs at least 2 images per batch; use --batch-size 2 or more, or --norm layer".into(),
            ));
        }
        if self.epochs == 0 {
            return Err(ConfigError("--epochs 0: must be at least 1".into()));
        }
        if self.threads == 0 {
            return Err(ConfigError("--threads 0: must be at least 1".into()));
        }
        if self.limit_train == Some(0) || self.limit_test == Some(0) {
            return Err(ConfigError(
                "--limit-train/--limit-test 0: use at least 1 image".into(),
            ));
        }
        Ok(())
    }

    /// Checks that need the data: batch size against the number of training images.
    pub fn validate_against(&self, n_train: usize) -> Result<(), ConfigError> {
        if n_train == 0 {
            return Err(ConfigError(
                "the training set has 0 images; point --data-dir at files that hold some".into(),
            ));
        }
        if let Some(v) = self.val_split {
            if v == 0 || v >= n_train {
                return Err(ConfigError(format!(
                    "--val-split {v}: must be between 1 and {} (the training set has {n_train} images); e.g. --val-split 5000",
                    n_train - 1
                )));
            }
        }
        let n_train = n_train - self.val_split.unwrap_or(0);
        if self.batch_size > n_train {
            return Err(ConfigError(format!(
                "--batch-size {} is larger than the {n_train} training images; use a smaller batch",
                self.batch_size
            )));
        }
        Ok(())
    }

    /// Bytes one run of this config needs at its peak, roughly (within a few MB):
    /// parameters with gradients (one set per thread), optimiser moments and a
    /// checkpoint's copies; training, evaluation and diagnostic buffers; and the run's
    /// own copy of `n_train` limited training images. Saturates instead of overflowing.
    pub fn memory_estimate(&self, n_train: usize) -> u64 {
        let sizes: Vec<u128> = self.arch().sizes.iter().map(|&s| s as u128).collect();
        let params: u128 = sizes.windows(2).map(|w| w[1] * (w[0] + 1)).sum();
        let widths: u128 = sizes[1..].iter().sum();
        let threads = self.threads.max(1) as u128;
        let batch = self.batch_size as u128;
        // The training batch, an evaluation batch per thread (256 rows, with room; see
        // `eval`), and the diagnostics' sample.
        let rows = batch + 500 * threads + 1000;
        let copies = 4 + threads + 3; // params, grads per thread, m, v, checkpoint
        let width = self.shape().width as u128;
        let floats = params * copies + rows * (widths * 5 + width) + self.conv_floats(rows);
        let n_train = self.limit_train.unwrap_or(n_train).min(n_train) as u128;
        let data = self.limit_train.map_or(0, |_| n_train * (width + 1));
        let order = n_train * 4;
        (floats * 4 + data + order).min(u64::MAX as u128) as u64
    }

    /// The conv layers' share of `memory_estimate`, in floats, for `rows` images
    /// (training, evaluation and diagnostic batches): their weights (as many copies as
    /// the linear ones), each image's maps (conv, norm, activation and pool outputs,
    /// with gradients, in the training and evaluation workspaces), the training batch's
    /// kept im2col columns (layers on the im2col path), and each thread's scratch.
    fn conv_floats(&self, rows: u128) -> u128 {
        let Ok(plan) = self.arch().conv_plan() else {
            return 0;
        };
        let threads = self.threads.max(1) as u128;
        let copies = 4 + threads + 3;
        let batch = self.batch_size as u128;
        let norm = u128::from(self.norm != Norm::None);
        (plan.layers.iter())
            .map(|(conv, pool)| {
                let params = (conv.weights() + 2 * conv.c_out) as u128;
                let pooled = pool.map_or(0, |p| p.out_len()) as u128;
                let maps = conv.out_len() as u128 * (2 + norm) + pooled;
                let kept = u128::from(conv.keeps_columns());
                let cols = kept * batch * conv.image_col_len() as u128;
                let scratch = threads * (conv.col_len() + conv.tmp_len(true)) as u128;
                params * copies + rows * maps * 3 + cols + scratch
            })
            .sum()
    }

    /// One-line warnings about pairings that run but make little sense, or settings
    /// that cannot take effect.
    pub fn warnings(&self) -> Vec<String> {
        self.loss.pairing_warning(self.output).into_iter().collect()
    }

    /// [`TrainConfig::warnings`], and for a run on `n_train` training images a last
    /// batch of each epoch that cannot train (see [`crate::nn::Arch::trains_on`]).
    pub fn warnings_for(&self, n_train: usize) -> Vec<String> {
        let mut w = self.warnings();
        let last = n_train % self.batch_size.max(1);
        if last > 0 && !self.arch().trains_on(last) {
            w.push(format!(
                "each epoch's last batch has {last} image, which batch norm on a linear layer cannot train on (PyTorch: \"Expected more than 1 value per channel when training\"); it is skipped and left out of the train figures. Change --batch-size or --limit-train to train on it"
            ));
        }
        w
    }

    /// The training images a run uses out of `available`: `--limit-train`, less the
    /// held-out `--val-split`.
    pub fn train_images(&self, available: usize) -> usize {
        let n = self.limit_train.unwrap_or(usize::MAX).min(available);
        n.saturating_sub(self.val_split.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_exercise_model() {
        let c = TrainConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.arch().sizes, vec![784, 128, 64, 10]);
        assert_eq!(c.arch().n_params(), 109_386);
        assert_eq!(c.label(), "relu/log_softmax/nll");
        assert!(c.warnings().is_empty());
    }

    /// Batch norm on a linear layer: a last batch of one image is warned about, a
    /// batch size of 1 refused, two threads without a warning; conv-only batch
    /// norm (BatchNorm2d) trains on one image.
    #[test]
    fn batch_norm_warnings_and_refusals() {
        let bn = TrainConfig {
            norm: crate::nn::spec::Norm::Batch,
            batch_size: 8,
            ..Default::default()
        };
        assert!(bn.validate().is_ok() && bn.warnings().is_empty());
        assert!(bn.warnings_for(16).is_empty() && bn.warnings_for(18).is_empty());
        let w = bn.warnings_for(17);
        assert!(
            w.len() == 1 && w[0].contains("last batch has 1 image"),
            "{w:?}"
        );
        let conv_only = TrainConfig {
            conv: crate::nn::spec::ConvSpec::parse_list("4:5").unwrap(),
            hidden: Vec::new(),
            ..bn.clone()
        };
        assert!(conv_only.warnings_for(17).is_empty());
        let one = TrainConfig {
            batch_size: 1,
            ..bn.clone()
        };
        assert!(one
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--batch-size 1"));
        let two = TrainConfig {
            threads: 2,
            ..bn.clone()
        };
        assert!(
            two.warnings().is_empty(),
            "batch norm trains on every thread"
        );
        let limited = TrainConfig {
            limit_train: Some(100),
            val_split: Some(10),
            ..bn
        };
        assert_eq!(
            (limited.train_images(60000), limited.train_images(50)),
            (90, 40)
        );
    }

    #[test]
    fn the_memory_estimate_counts_conv_maps_and_columns() {
        let mlp = TrainConfig {
            hidden: vec![120, 84],
            ..Default::default()
        };
        let lenet = TrainConfig {
            conv: ConvSpec::parse_list("6:5:1:2,16:5").unwrap(),
            ..mlp.clone()
        };
        let big = TrainConfig {
            batch_size: 4096,
            ..lenet.clone()
        };
        let estimates = || {
            (
                mlp.memory_estimate(60_000),
                lenet.memory_estimate(60_000),
                big.memory_estimate(60_000),
            )
        };
        let all = crate::simd::each_tier(estimates);
        let (_, (_, l0, b0)) = all[0];
        // The kept columns of conv1: 25 x 784 floats per image of the batch.
        let columns = 4000 * 25 * 784 * 4;
        assert!(
            b0 > l0 + columns,
            "{b0} vs {l0} on the portable tier (im2col)"
        );
        for (tier, (m, l, b)) in all {
            // conv1's outputs alone: 6 x 28 x 28 floats per image of the 1,500 rows.
            assert!(l > m + 1500 * 6 * 28 * 28 * 4, "{l} vs {m} at {tier}");
            // The direct path (from avx2 on) keeps no columns.
            if tier >= crate::simd::Tier::Avx2 {
                assert!(b - l + columns < b0 - l0, "{b} vs {l} at {tier}");
            }
        }
        // Each thread evaluates a batch of 256 images in its own buffers.
        let two = TrainConfig {
            threads: 2,
            ..lenet.clone()
        }
        .memory_estimate(60_000);
        assert!(two > l0 + 256 * 6 * 28 * 28 * 4, "{two} vs {l0}");
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = [
            TrainConfig {
                hidden: vec![128, 0],
                ..Default::default()
            },
            TrainConfig {
                dropout: 1.0,
                ..Default::default()
            },
            TrainConfig {
                lr: f32::NAN,
                ..Default::default()
            },
            TrainConfig {
                lr: 0.0,
                ..Default::default()
            },
            TrainConfig {
                epochs: 0,
                ..Default::default()
            },
            TrainConfig {
                batch_size: 0,
                ..Default::default()
            },
            TrainConfig {
                activation: vec![Activation::Relu; 3],
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
        assert!(TrainConfig::default().validate_against(10).is_err());
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = TrainConfig {
            activation: vec!["leaky_relu:0.1".parse().unwrap()],
            dropout: 0.2,
            ..Default::default()
        };
        let text = toml::to_string(&c).unwrap();
        let back: TrainConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        let err = toml::from_str::<TrainConfig>("learning_rate = 0.1").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let keys = TrainConfig::keys();
        assert_eq!(keys.len(), 24, "{keys:?}");
        for k in ["val_split", "nesterov", "conv", "pool", "norm"] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }
}
