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
    /// Memory runs may use, in MB (default: what the machine has available); runs
    /// that would need more are refused before they start.
    #[arg(long, global = true, value_name = "MB")]
    max_memory: Option<u64>,
    /// Define an activation by a formula of x, usable wherever an activation name is
    /// (repeatable), e.g. --define 'quick_gelu=x * sigmoid(1.702 * x)'. Syntax: + - * / ^,
    /// where(x > 0, a, b), exp log log1p expm1 sqrt abs sin cos tanh sinh cosh sigmoid
    /// softplus erf min max, constants pi e.
    #[arg(long, global = true, value_name = "NAME=FORMULA")]
    define: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train one model (default: the exercise's 784-128-64-10 ReLU/LogSoftmax/NLL, Adam 1e-3, 5 epochs).
    Train(TrainCmd),
    /// The exercise's before/after (and dropout bonus) in one table, with verdicts.
    Exercise(ExerciseCmd),
    /// Compare activations (or full variants) over seeds, ranked, with confidence intervals.
    Compare(CompareCmd),
    /// Run an experiment described in a TOML file (see experiments/).
    Run(RunCmd),
    /// Combine the output folders of shards into one summary.
    Merge(MergeCmd),
    /// Write report.html (charts, tables, verdicts) for an output folder.
    Report(ReportCmd),
    /// Explain the activation functions: formula, derivative, range, saturation, and a plot.
    Activations(ActivationsCmd),
    /// Evaluate a saved model on the test set: accuracy, loss, per-class accuracy, confusion matrix.
    Eval(EvalCmd),
    /// Predict digits in images (PNG/JPEG/PGM, any size) or test-set images by index.
    Predict(PredictCmd),
    /// Write demo.html: draw a digit and watch one or more models predict it, layer by layer.
    Demo(DemoCmd),
    /// Measure training and evaluation speed of the engine.
    Bench(BenchCmd),
}

/// For weights without actlab metadata (e.g. exported from PyTorch).
#[derive(Args, Debug, Clone)]
struct FallbackArgs {
    /// Hidden activation(s), if the file does not say (default relu).
    #[arg(long, value_delimiter = ',')]
    activation: Option<Vec<Activation>>,
    /// Output function, if the file does not say (default log_softmax).
    #[arg(long)]
    output: Option<OutputFn>,
    /// Loss to report, if the file does not say (default nll).
    #[arg(long)]
    loss: Option<Loss>,
}

impl FallbackArgs {
    fn get(&self) -> crate::run::inference::Fallback {
        crate::run::inference::Fallback {
            activation: self.activation.clone(),
            output: self.output,
            loss: self.loss,
        }
    }
}

#[derive(Args, Debug)]
struct EvalCmd {
    /// The model (.safetensors).
    model: PathBuf,
    /// Folder with the IDX files (see `train --help`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Dataset (default: the one the model was trained on).
    #[arg(long, value_enum)]
    dataset: Option<DatasetName>,
    #[command(flatten)]
    fallback: FallbackArgs,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct DemoCmd {
    /// Models (.safetensors) to show side by side.
    #[arg(required = true)]
    models: Vec<PathBuf>,
    /// Where to write the page.
    #[arg(long, value_name = "FILE", default_value = "demo.html")]
    out: PathBuf,
    /// Folder with the IDX files (the page's self-test embeds the first test images).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    fallback: FallbackArgs,
}

#[derive(Args, Debug)]
struct PredictCmd {
    /// The model (.safetensors).
    model: PathBuf,
    /// Images of digits: white on black or dark on light, any size.
    images: Vec<PathBuf>,
    /// Test-set images by index: N, A..B (end exclusive) or a comma list.
    #[arg(long, value_name = "RANGE")]
    test_index: Option<String>,
    /// Folder with the IDX files (for --test-index).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    fallback: FallbackArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// How an experiment's runs are scheduled and stored.
#[derive(Args, Debug, Clone)]
pub struct ExperimentArgs {
    /// Seeds: a list (0,1,2) or a count (5 means 0..4).
    #[arg(long)]
    pub seeds: Option<String>,
    /// Runs at once (each run single-threaded; results do not depend on this).
    #[arg(long, default_value_t = crate::experiment::jobs::default_jobs())]
    pub jobs: usize,
    /// Output folder (default: runs/<timestamp>-<name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Skip runs whose complete record is already in --out.
    #[arg(long)]
    pub resume: bool,
    /// Replace the results already in --out (the folder's contents are removed first).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Run only slice K of N of the runs (e.g. 2/8), for batch schedulers; combine with `actlab merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Write TensorBoard event files here, one folder per run (<variant>/seed-<n>):
    /// open with `tensorboard --logdir DIR`.
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// Keep every run's model in models/<variant>/seed-<n>.safetensors and write
    /// demo.html (draw a digit) with the best seed of each variant (exercise: always).
    #[arg(long)]
    pub save_models: bool,
}

impl ExperimentArgs {
    fn seeds_or(&self, default: Vec<u64>) -> Result<Vec<u64>> {
        match &self.seeds {
            Some(s) => crate::experiment::parse_seeds(s).map_err(anyhow::Error::msg),
            None => Ok(default),
        }
    }

    fn how(&self, data_dir: Option<PathBuf>) -> Result<run::ExperimentRun> {
        if self.jobs == 0 {
            bail!("--jobs 0: run at least one job at a time");
        }
        if self.resume && self.out.is_none() {
            bail!("--resume needs --out DIR: the folder of the run to continue");
        }
        let shard = self
            .shard
            .as_deref()
            .map(crate::experiment::parse_shard)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        Ok(run::ExperimentRun {
            data_dir,
            out: self.out.clone(),
            jobs: self.jobs,
            resume: self.resume,
            overwrite: self.overwrite,
            shard,
            tensorboard: self.tensorboard.clone(),
            save_models: self.save_models,
        })
    }
}

#[derive(Args, Debug)]
struct ExerciseCmd {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    exp: ExperimentArgs,
    /// Dropout probability of the bonus variant.
    #[arg(long, default_value_t = 0.2)]
    dropout: f32,
    /// Passes over the training set.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Train on only the first N training images.
    #[arg(long, value_name = "N")]
    limit_train: Option<usize>,
    /// Test on only the first N test images.
    #[arg(long, value_name = "N")]
    limit_test: Option<usize>,
    /// Hold out N training images as a validation set (class-stratified); without it
    /// "val" is the test set, as in the exercise.
    #[arg(long, value_name = "N")]
    val_split: Option<usize>,
}

#[derive(Args, Debug)]
struct CompareCmd {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    exp: ExperimentArgs,
    /// A variant in full: ACTIVATION/OUTPUT/LOSS[+dropout0.2][+key=value...][+name=NAME], e.g.
    /// "sigmoid/sigmoid/cross_entropy" or "relu,tanh/log_softmax/nll+dropout0.2+lr=0.01".
    /// Repeatable; when given, --activation is not used to make variants.
    #[arg(long)]
    variant: Vec<String>,
    /// Tune a training setting per variant: KEY=V1,V2,... (repeatable; any training
    /// option, e.g. lr=3e-4,1e-3,3e-3). Each variant keeps the grid point with the best
    /// mean validation accuracy; needs --val-split.
    #[arg(long, value_name = "KEY=V1,V2")]
    tune: Vec<String>,
}

#[derive(Args, Debug)]
struct RunCmd {
    /// The experiment file (TOML).
    file: PathBuf,
    /// Folder with the IDX files (see `train --help`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    exp: ExperimentArgs,
}

#[derive(Args, Debug)]
struct MergeCmd {
    /// Output folders of the shards.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where to write the merged summary (default: the first folder).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Folder with the IDX files (for the report's image grids).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ActivationsCmd {
    /// Show only these (e.g. relu sigmoid); all when omitted.
    names: Vec<Activation>,
    /// With no names: print every function in full, with plots.
    #[arg(long)]
    full: bool,
}

#[derive(Args, Debug)]
struct ReportCmd {
    /// Output folder of actlab train, compare, exercise, run or merge.
    dir: PathBuf,
    /// Folder with the IDX files (for the misclassified-image grids).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
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
    /// Your own data instead: an .npz holding x_train, y_train, x_test, y_test (Keras's
    /// mnist.npz layout); uint8 (N, H, W) images are read as byte / 255, float32/float64
    /// (N, D) features as they are, labels are integers 0..K-1.
    #[arg(long, value_name = "FILE.npz", conflicts_with = "dataset")]
    pub data_file: Option<PathBuf>,
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
    /// Nesterov momentum (SGD with --momentum only).
    #[arg(long)]
    pub nesterov: bool,
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
    /// Test on only the first N test images.
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// Hold out N training images (class-stratified, the same for every run) as the
    /// validation set; the 10k test set is then reported apart and never used to choose.
    #[arg(long, value_name = "N")]
    pub val_split: Option<usize>,
    /// Keep the training set in file order (no shuffling).
    #[arg(long)]
    pub no_shuffle: bool,
    /// Skip recording gradient norms, layer statistics, saturated and dead units.
    #[arg(long)]
    pub no_diagnostics: bool,
}

impl ModelArgs {
    /// The run configuration these options describe.
    pub fn config(&self, dataset: DatasetName) -> TrainConfig {
        TrainConfig {
            dataset,
            data_file: None,
            data_shape: None,
            hidden: self.hidden.clone(),
            activation: self.activation.clone(),
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
            limit_train: self.limit_train,
            limit_test: self.limit_test,
            val_split: self.val_split,
            shuffle: !self.no_shuffle,
            diagnostics: !self.no_diagnostics,
        }
    }
}

#[derive(Args, Debug)]
struct TrainCmd {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Folder for the run's record.json and per-epoch checkpoint (default: runs/<timestamp>-train).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Replace the results already in --out (the folder's contents are removed first).
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Save the trained model as safetensors with PyTorch names (fc1.weight, ...) plus a JSON beside it.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Start from these weights (actlab's or a PyTorch state dict with the same names and shapes).
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    /// Continue the interrupted run in DIR (its config comes from the checkpoint).
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Write TensorBoard event files into DIR/<label>/seed-<n>: `tensorboard --logdir DIR`.
    #[arg(long, value_name = "DIR")]
    tensorboard: Option<PathBuf>,
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
    /// Also measure the throughput of N parallel jobs against 1 (runs 2N one-epoch runs each way).
    #[arg(long, value_name = "N")]
    scaling: Option<usize>,
}

/// Parse the command line and run it.
pub fn main() -> Result<()> {
    let (cli, matches) = parse()?;
    if let Some(mb) = cli.max_memory {
        run::set_memory_limit(mb);
    }
    match cli.command {
        Command::Train(c) => train(c, &matches),
        Command::Exercise(c) => exercise(c),
        Command::Compare(c) => compare(c),
        Command::Run(c) => run_file(c),
        Command::Merge(c) => run::experiment::merge_command(&c.dirs, c.out, c.data_dir.as_deref()),
        Command::Activations(c) => {
            activations(&c);
            Ok(())
        }
        Command::Report(c) => run::experiment::report_command(&c.dir, c.data_dir.as_deref()),
        Command::Eval(c) => run::inference::eval_command(
            &c.model,
            c.dataset,
            c.data_dir.as_deref(),
            &c.fallback.get(),
            c.json,
        ),
        Command::Predict(c) => run::inference::predict_command(
            &c.model,
            &c.images,
            c.test_index.as_deref(),
            c.data_dir.as_deref(),
            &c.fallback.get(),
            c.json,
        ),
        Command::Demo(c) => {
            run::demo::demo_command(&c.models, &c.out, c.data_dir.as_deref(), &c.fallback.get())
        }
        Command::Bench(b) => bench(b),
    }
}

/// The command line, or one line saying what is wrong with it (help and version
/// requests print and exit as usual).
fn parse() -> Result<(Cli, clap::ArgMatches)> {
    use clap::{CommandFactory, FromArgMatches};
    define_formulas()?;
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, m)));
    match parsed {
        Ok(both) => Ok(both),
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // One line: clap's first line, without the usage block.
            let text = e.to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            let first = first.trim_start_matches("error: ");
            bail!("{first} (see actlab --help)");
        }
    }
}

/// Register every `--define NAME=FORMULA` before clap parses the activation names
/// that use them; warn about formulas that are not finite on [-20, 20].
fn define_formulas() -> Result<()> {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .collect();
    let mut specs = args
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a.strip_prefix("--define") {
            Some("") => args.get(i + 1),
            Some(rest) => rest.strip_prefix('=').map(|_| a),
            None => None,
        });
    specs.try_for_each(|spec| {
        let spec = spec.strip_prefix("--define=").unwrap_or(spec);
        let a = crate::nn::activation::define_spec(spec)?;
        if let Some(w) = a.formula().and_then(|f| f.warning.as_ref()) {
            eprintln!("warning: {w}");
        }
        Ok(())
    })
}

/// The run-setting flags (model, optimiser, data selection) given on the command line
/// of `actlab train`, as "--name"; `--epochs` is reported on its own.
fn explicit_settings(matches: &clap::ArgMatches) -> (Vec<String>, bool) {
    use clap::parser::ValueSource;
    let Some(sub) = matches.subcommand_matches("train") else {
        return (Vec::new(), false);
    };
    let given = |id: &str| sub.value_source(id) == Some(ValueSource::CommandLine);
    let model = <ModelArgs as clap::Args>::augment_args(clap::Command::new("model"));
    let ids = model
        .get_arguments()
        .map(|a| a.get_id().as_str().to_string())
        .chain(["dataset", "data_file", "init_from"].map(String::from));
    let changed = ids
        .filter(|id| id != "epochs" && given(id))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    (changed, given("epochs"))
}

fn train(c: TrainCmd, matches: &clap::ArgMatches) -> Result<()> {
    let (changed, epochs_given) = explicit_settings(matches);
    let cfg = c
        .model
        .config(c.data.dataset)
        .with_data_file(c.data.data_file);
    let io = run::TrainIo {
        data_dir: c.data.data_dir,
        out: c.out,
        save: c.save,
        init_from: c.init_from,
        resume: c.resume,
        overwrite: c.overwrite,
        tensorboard: c.tensorboard,
        changed,
        epochs: epochs_given.then_some(cfg.epochs),
    };
    run::train_command(&cfg, &io)
}

fn exercise(c: ExerciseCmd) -> Result<()> {
    let base = TrainConfig {
        dataset: c.data.dataset,
        epochs: c.epochs,
        limit_train: c.limit_train,
        limit_test: c.limit_test,
        val_split: c.val_split,
        ..TrainConfig::default()
    }
    .with_data_file(c.data.data_file.clone());
    let probe = TrainConfig {
        dropout: c.dropout,
        ..base.clone()
    };
    probe.validate()?;
    let seeds = c.exp.seeds_or(vec![0])?;
    let exp = crate::experiment::Experiment::exercise(&base, c.dropout, seeds);
    let mut how = c.exp.how(c.data.data_dir)?;
    // The exercise's few models are kept for demo.html: sigmoid and ReLU side by side.
    how.save_models = true;
    run::experiment_command(&exp, &how)
}

fn compare(c: CompareCmd) -> Result<()> {
    let base = c
        .model
        .config(c.data.dataset)
        .with_data_file(c.data.data_file.clone());
    let seeds = c.exp.seeds_or(vec![base.seed])?;
    let axes = c
        .tune
        .iter()
        .map(|t| crate::experiment::tune::parse_axis(t))
        .collect::<Result<Vec<_>, _>>()?;
    let exp = crate::experiment::Experiment::compare(&base, &c.variant, seeds)?.tuned(axes)?;
    run::experiment_command(&exp, &c.exp.how(c.data.data_dir)?)
}

fn run_file(c: RunCmd) -> Result<()> {
    let text = std::fs::read_to_string(&c.file)
        .with_context(|| format!("{}: cannot read the experiment file", c.file.display()))?;
    let mut exp = crate::experiment::Experiment::from_toml(&text, &c.file.display().to_string())?;
    let mut warned = std::collections::BTreeSet::new();
    for a in exp.variants.iter().flat_map(|v| &v.config.activation) {
        if let Some(w) = a.formula().and_then(|f| f.warning.as_ref()) {
            if warned.insert(w) {
                eprintln!("warning: {w}");
            }
        }
    }
    exp.seeds = c.exp.seeds_or(exp.seeds.clone())?;
    let mut how = c.exp.how(c.data_dir)?;
    // Like --out, a relative folder is taken from where actlab runs.
    how.tensorboard = how.tensorboard.or(exp.tensorboard.clone());
    // A refusal of what the file asks for (memory, ...) names the file.
    run::experiment_command(&exp, &how).with_context(|| c.file.display().to_string())
}

fn activations(c: &ActivationsCmd) {
    if c.names.is_empty() {
        print!("{}", crate::report::activations::describe_all(c.full));
        if !c.full {
            println!("\n`actlab activations NAME` shows one in full with a plot of f and f'; --full shows all.");
        }
    } else {
        for a in &c.names {
            println!("{}", crate::report::activations::describe(*a, true));
        }
    }
}

fn bench(b: BenchCmd) -> Result<()> {
    if b.epochs == 0 {
        bail!("--epochs 0: time at least one epoch");
    }
    if let Some(n) = b.scaling.filter(|&n| n < 2) {
        bail!("--scaling {n}: it compares N parallel jobs with one; use 2 or more");
    }
    let plan = run::bench::BenchPlan {
        dataset: b.data.dataset,
        data_dir: b.data.data_dir.as_deref(),
        activations: &b.activation,
        epochs: b.epochs,
        threads: b.threads,
        scaling_jobs: b.scaling,
    };
    let report = run::bench::run(&plan)?;
    if let Some(path) = b.json {
        crate::store::write_json(&path, &report)?;
    }
    Ok(())
}
