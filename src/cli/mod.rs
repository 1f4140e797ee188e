//! The command line: argument definitions and dispatch to the library, nothing else.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

mod args;
mod help;

use args::{
    DataArgs, DataDir, Defines, ExperimentArgs, FallbackArgs, LayerArgs, Limits, Memory, ModelArgs,
};

use crate::config::TrainConfig;
use crate::data::DatasetName;
use crate::nn::Loss;
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

#[derive(Args, Debug)]
struct EvalCmd {
    /// The model (.safetensors).
    model: PathBuf,
    #[command(flatten)]
    data: DataDir,
    /// Dataset (default: the one the model was trained on).
    #[arg(long, value_enum)]
    dataset: Option<DatasetName>,
    #[command(flatten)]
    fallback: FallbackArgs,
    /// Loss to report, if the file does not say (default nll).
    #[arg(long)]
    loss: Option<Loss>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Threads to evaluate on (the figures are the same on any number).
    #[arg(long, default_value_t = 1, value_parser = help::whole)]
    threads: usize,
}

#[derive(Args, Debug)]
struct DemoCmd {
    /// Models (.safetensors) to show side by side.
    #[arg(required = true)]
    models: Vec<PathBuf>,
    /// Where to write the page.
    #[arg(long, value_name = "FILE", default_value = "demo.html")]
    out: PathBuf,
    /// (The page's self-test embeds the first test images.)
    #[command(flatten)]
    data: DataDir,
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
    #[command(flatten)]
    data: DataDir,
    #[command(flatten)]
    fallback: FallbackArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ExerciseCmd {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    exp: ExperimentArgs,
    /// Dropout probability of the bonus variant, in [0, 1).
    #[arg(long, default_value_t = 0.2)]
    dropout: f32,
    /// Passes over the training set.
    #[arg(long, default_value_t = 5, value_parser = help::whole)]
    epochs: usize,
    #[command(flatten)]
    limits: Limits,
    /// Grade your own answer: ACTIVATION/OUTPUT/LOSS (e.g. tanh/log_softmax/nll; missing
    /// parts keep before's; activations may be formulas from --define) runs beside
    /// "before" over the seeds and is graded on the exercise's goals. Repeatable. Only
    /// activations, output and loss may change.
    #[arg(long = "try", value_name = "ACT/OUTPUT/LOSS")]
    tries: Vec<String>,
    #[command(flatten)]
    defines: Defines,
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
    #[command(flatten)]
    data: DataDir,
    #[command(flatten)]
    exp: ExperimentArgs,
    /// Passes over the training set, in every variant (a quick try; recorded in each run).
    #[arg(long, value_name = "N", value_parser = help::whole)]
    epochs: Option<usize>,
    #[command(flatten)]
    limits: Limits,
}

#[derive(Args, Debug)]
struct MergeCmd {
    /// Output folders of the shards.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where to write the merged summary (default: the first folder).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// (For the report's image grids.)
    #[command(flatten)]
    data: DataDir,
}

#[derive(Args, Debug)]
struct ActivationsCmd {
    /// Show only these (e.g. relu sigmoid, or names given with --define); all when omitted.
    names: Vec<String>,
    /// With no names: print every function in full, with plots.
    #[arg(long)]
    full: bool,
    #[command(flatten)]
    defines: Defines,
}

#[derive(Args, Debug)]
struct ReportCmd {
    /// Output folder of actlab train, compare, exercise, run or merge.
    dir: PathBuf,
    /// (For the misclassified-image grids.)
    #[command(flatten)]
    data: DataDir,
}

#[derive(Args, Debug)]
struct TrainCmd {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    memory: Memory,
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
    #[command(flatten)]
    layers: LayerArgs,
    /// Activations to time (comma-separated; see `train --help` for the names).
    #[arg(long, value_delimiter = ',', default_value = "relu")]
    activation: Vec<String>,
    #[command(flatten)]
    defines: Defines,
    /// Training epochs to time per activation (the fastest counts).
    #[arg(long, default_value_t = 2, value_parser = help::whole)]
    epochs: usize,
    /// Threads per run.
    #[arg(long, default_value_t = 1, value_parser = help::whole)]
    threads: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also measure the throughput of N parallel jobs against 1 (runs 2N one-epoch runs each way).
    #[arg(long, value_name = "N", value_parser = help::whole)]
    scaling: Option<usize>,
}

/// Parse the command line and run it.
pub fn main() -> Result<()> {
    let (cli, matches) = parse()?;
    match cli.command {
        Command::Train(c) => train(c, &matches),
        Command::Exercise(c) => exercise(c, &matches),
        Command::Compare(c) => compare(c, &matches),
        Command::Run(c) => run_file(c),
        Command::Merge(c) => {
            run::experiment::merge_command(&c.dirs, c.out, c.data.data_dir.as_deref())
        }
        Command::Activations(c) => activations(&c),
        Command::Report(c) => run::experiment::report_command(&c.dir, c.data.data_dir.as_deref()),
        Command::Eval(c) => run::inference::eval_command(
            &c.model,
            c.dataset,
            c.data.data_dir.as_deref(),
            &c.fallback.get(c.loss),
            c.json,
            c.threads,
        ),
        Command::Predict(c) => run::inference::predict_command(
            &c.model,
            &c.images,
            c.test_index.as_deref(),
            c.data.data_dir.as_deref(),
            &c.fallback.get(None),
            c.json,
        ),
        Command::Demo(c) => run::demo::demo_command(
            &c.models,
            &c.out,
            c.data.data_dir.as_deref(),
            &c.fallback.get(None),
        ),
        Command::Bench(b) => bench(b),
    }
}

/// The command definition: every value may start with '-', so a negative number
/// reaches its parser (which says whether it makes sense) instead of reading as a flag.
fn command() -> clap::Command {
    use clap::CommandFactory;
    fn numbers_may_be_negative(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|a| {
            if a.get_action().takes_values() {
                a.allow_negative_numbers(true)
            } else {
                a
            }
        })
        .mut_subcommands(numbers_may_be_negative)
    }
    numbers_may_be_negative(Cli::command())
}

/// The command line, or one line saying what is wrong with it, with the valid values
/// and the nearest name where clap knows them (help and version requests print and
/// exit as usual).
fn parse() -> Result<(Cli, clap::ArgMatches)> {
    use clap::FromArgMatches;
    let parsed = command()
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
            if let Some(line) = fixed_by_the_exercise(&e) {
                bail!("{line}");
            }
            bail!("{}", help::one_line(&e));
        }
    }
}

/// For `actlab exercise` given a model or training flag (--hidden, --lr, ...): the
/// exercise's rule and where activations, output and loss go instead.
fn fixed_by_the_exercise(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument
        || std::env::args().nth(1).as_deref() != Some("exercise")
    {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split('=').next().unwrap_or(arg);
    let model = <ModelArgs as clap::Args>::augment_args(clap::Command::new("model"));
    let known = model
        .get_arguments()
        .filter_map(|a| a.get_long())
        // How a run is executed or recorded is not the exercise's to fix.
        .filter(|l| !["seed", "threads", "no-diagnostics"].contains(l))
        .any(|l| flag == format!("--{l}"));
    known.then(|| {
        format!(
            "{flag}: {}; give activations, output and loss as --try ACT/OUTPUT/LOSS, or change other settings with actlab compare",
            crate::experiment::proposal::RULE
        )
    })
}

/// The run-setting flags (model, optimiser, data selection) given on the command line
/// of `actlab train`, as "--name"; `--epochs` is reported on its own.
fn explicit_settings(matches: &clap::ArgMatches) -> (Vec<String>, bool) {
    let Some(sub) = matches.subcommand_matches("train") else {
        return (Vec::new(), false);
    };
    let model = <ModelArgs as clap::Args>::augment_args(clap::Command::new("model"));
    let ids = model
        .get_arguments()
        .map(|a| a.get_id().as_str().to_string())
        .chain(["dataset", "data_file", "init_from"].map(String::from));
    // A definition alone changes nothing: only the activations that use it do.
    let changed = ids
        .filter(|id| id != "epochs" && id != "define" && given(sub, id))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    (changed, given(sub, "epochs"))
}

/// Whether option `id` was typed on the command line (not a default).
fn given(matches: &clap::ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
}

fn train(c: TrainCmd, matches: &clap::ArgMatches) -> Result<()> {
    c.memory.apply();
    let (changed, epochs_given) = explicit_settings(matches);
    let (cfg, _) = c.model.config(c.data.dataset)?;
    let cfg = cfg.with_data_file(c.data.data_file);
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

/// Settings a graded proposal (`exercise --try`) must not change, given on the command
/// line: the bonus's dropout, and another dataset (the 90% goal is MNIST's).
fn refuse_with_try(c: &ExerciseCmd, matches: &clap::ArgMatches) -> Result<()> {
    let Some(sub) = matches.subcommand_matches("exercise") else {
        return Ok(());
    };
    if c.tries.is_empty() {
        return Ok(());
    }
    let rule = crate::experiment::proposal::RULE;
    if given(sub, "dropout") {
        bail!("--dropout with --try: {rule}; drop --dropout");
    }
    Ok(())
}

fn exercise(c: ExerciseCmd, matches: &clap::ArgMatches) -> Result<()> {
    refuse_with_try(&c, matches)?;
    c.exp.memory.apply();
    let base = TrainConfig {
        dataset: c.data.dataset,
        epochs: c.epochs,
        limit_train: c.limits.limit_train,
        limit_test: c.limits.limit_test,
        val_split: c.limits.val_split,
        ..TrainConfig::default()
    }
    .with_data_file(c.data.data_file.clone());
    let mut how = c.exp.options;
    let seeds = how.seeds.take().map_or(vec![0], |s| s.0);
    let exp = crate::experiment::Experiment::exercise(&base, c.dropout, seeds)
        .with_proposals(&c.tries, &c.defines.formulas()?)?;
    // The exercise's few models are kept for demo.html: sigmoid and ReLU side by side.
    how.save_models = true;
    run::experiment_command(&exp, &how, c.data.data_dir.as_deref())
}

fn compare(c: CompareCmd, matches: &clap::ArgMatches) -> Result<()> {
    c.exp.memory.apply();
    let sub = matches.subcommand_matches("compare");
    if c.exp.options.seeds.is_some() && sub.is_some_and(|m| given(m, "seed")) {
        bail!("--seed and --seeds: --seeds lists every seed to run (e.g. --seeds 7 or --seeds 3,4); drop --seed");
    }
    let (base, formulas) = c.model.config(c.data.dataset)?;
    let base = base.with_data_file(c.data.data_file.clone());
    let seeds = c.exp.options.seeds.clone().map_or(vec![base.seed], |s| s.0);
    let axes = c
        .tune
        .iter()
        .map(|t| crate::experiment::tune::parse_axis(t))
        .collect::<Result<Vec<_>, _>>()?;
    let exp =
        crate::experiment::Experiment::compare(&base, &c.variant, &formulas, seeds)?.tuned(axes)?;
    run::experiment_command(&exp, &c.exp.options, c.data.data_dir.as_deref())
}

fn run_file(c: RunCmd) -> Result<()> {
    c.exp.memory.apply();
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
    let mut how = c.exp.options;
    if let Some(s) = how.seeds.take() {
        exp.seeds = s.0;
    }
    let quick = crate::experiment::Overrides {
        epochs: c.epochs,
        limit_train: c.limits.limit_train,
        limit_test: c.limits.limit_test,
        val_split: c.limits.val_split,
    };
    quick
        .apply(&mut exp)
        .with_context(|| c.file.display().to_string())?;
    // Like --out, a relative folder is taken from where actlab runs.
    how.tensorboard = how.tensorboard.or(exp.tensorboard.clone());
    // A refusal of what the file asks for (memory, ...) names the file.
    run::experiment_command(&exp, &how, c.data.data_dir.as_deref())
        .with_context(|| c.file.display().to_string())
}

fn activations(c: &ActivationsCmd) -> Result<()> {
    let formulas = c.defines.formulas()?;
    if c.names.is_empty() {
        print!(
            "{}",
            crate::report::activations::describe_all(c.full, &formulas)
        );
        if !c.full {
            println!("\n`actlab activations NAME` shows one in full with a plot of f and f'; --full shows all.");
        }
    } else {
        for a in args::resolve(&c.names, &formulas)? {
            println!("{}", crate::report::activations::describe(&a, true));
        }
    }
    Ok(())
}

fn bench(b: BenchCmd) -> Result<()> {
    if b.epochs == 0 {
        bail!("--epochs 0: time at least one epoch");
    }
    if let Some(n) = b.scaling.filter(|&n| n < 2) {
        bail!("--scaling {n}: it compares N parallel jobs with one; use 2 or more");
    }
    let activations = args::resolve(&b.activation, &b.defines.formulas()?)?;
    let model = b.layers.apply(crate::config::TrainConfig {
        dataset: b.data.dataset,
        ..Default::default()
    })?;
    // A bad layer spec is named before the data is loaded.
    model.validate()?;
    let plan = run::bench::BenchPlan {
        model,
        data_dir: b.data.data_dir.as_deref(),
        activations: &activations,
        epochs: b.epochs,
        threads: b.threads,
        scaling_jobs: b.scaling,
    };
    if let Some(path) = &b.json {
        crate::store::paths::output_file(path, "--json")?;
    }
    let report = run::bench::run(&plan)?;
    if let Some(path) = b.json {
        crate::store::write_json(&path, &report)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The help of `sub` as `actlab sub --help` prints it.
    fn help_of(sub: &str) -> String {
        let mut cmd = command();
        cmd.build();
        let sub = cmd.find_subcommand_mut(sub).expect("a subcommand");
        sub.render_long_help().to_string()
    }

    #[test]
    fn the_command_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn help_lists_every_registered_name() {
        use crate::nn::{activation, loss, output};
        for sub in ["train", "compare"] {
            let h = help_of(sub);
            let names = activation::NAMES
                .iter()
                .chain(&output::NAMES)
                .chain(&loss::NAMES);
            for n in names {
                assert!(h.contains(n), "actlab {sub} --help lacks '{n}'");
            }
            assert!(h.contains("--define"), "{h}");
            assert!(h.contains("--max-memory"), "{h}");
        }
        let h = help_of("compare");
        assert!(h.contains("Default: one seed"), "{h}");
        assert!(
            h.contains("/usr/share/datasets") && h.contains("bundled"),
            "{h}"
        );
        for sub in ["eval", "predict", "demo", "report", "merge"] {
            let h = help_of(sub);
            assert!(
                !h.contains("--define") && !h.contains("--max-memory"),
                "{sub}: {h}"
            );
        }
        assert!(!help_of("predict").contains("--loss"));
        assert!(help_of("eval").contains("--loss"));
    }

    /// Parse `args` (after "actlab"), or the one-line error.
    fn try_parse(args: &[&str]) -> Result<Cli, String> {
        use clap::FromArgMatches;
        let argv = std::iter::once("actlab").chain(args.iter().copied());
        command()
            .try_get_matches_from(argv)
            .and_then(|m| Cli::from_arg_matches(&m))
            .map_err(|e| help::one_line(&e))
    }

    #[test]
    fn typos_get_the_nearest_name_and_the_valid_values() {
        let e = try_parse(&["compar"]).unwrap_err();
        assert!(e.contains("'compare'"), "{e}");
        let e = try_parse(&["train", "--activaton", "relu"]).unwrap_err();
        assert!(e.contains("--activation"), "{e}");
        let e = try_parse(&["train", "--optimizer", "adamm"]).unwrap_err();
        assert!(
            e.contains("'adam'") && e.contains("adam, adamw, sgd"),
            "{e}"
        );
        let e = try_parse(&["train", "--dataset", "cifar10"]).unwrap_err();
        assert!(e.contains("mnist") && e.contains("fashion"), "{e}");
        let e = try_parse(&["train", "--loss", "nlll"]).unwrap_err();
        assert!(e.contains("did you mean 'nll'"), "{e}");
        assert_eq!(e.lines().count(), 1);
    }

    /// `bench` reads the layers as `train` does: the same config from the same flags.
    #[test]
    fn bench_takes_the_layers_train_takes() {
        let flags = ["--model", "lenet5", "--pool", "avg", "--norm", "layer"];
        let bench = [&["bench"][..], &flags].concat();
        let Command::Bench(b) = try_parse(&bench).unwrap().command else {
            panic!("not bench");
        };
        let train = [&["train"][..], &flags].concat();
        let Command::Train(t) = try_parse(&train).unwrap().command else {
            panic!("not train");
        };
        let base = crate::config::TrainConfig::default();
        let got = b.layers.apply(base).unwrap();
        let (want, _) = t.model.config(DatasetName::Mnist).unwrap();
        assert_eq!(
            (&got.conv, got.pool, got.norm, &got.hidden),
            (&want.conv, want.pool, want.norm, &want.hidden)
        );
        assert_eq!(got.hidden, [120, 84]);
        assert_eq!(got.conv.len(), 2);
        let Command::Bench(b) = try_parse(&["bench", "--model", "lenet9"]).unwrap().command else {
            panic!("not bench");
        };
        let e = b.layers.apply(Default::default()).unwrap_err().to_string();
        assert_eq!(e, "unknown model 'lenet9'; use one of lenet5");
    }

    #[test]
    fn negative_numbers_reach_their_checks() {
        let Command::Train(t) = try_parse(&["train", "--lr", "-1"]).unwrap().command else {
            panic!("not train");
        };
        let (cfg, _) = t.model.config(DatasetName::Mnist).unwrap();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("--lr -1: the learning rate must be a positive number"),
            "{e}"
        );
        let e = try_parse(&["train", "--epochs", "-1"]).unwrap_err();
        assert!(e.contains("'-1' is negative"), "{e}");
        let e = try_parse(&["compare", "--seeds", "-2"]).unwrap_err();
        assert!(e.contains("--seeds"), "{e}");
    }

    #[test]
    fn formulas_are_defined_by_the_command_that_uses_them() {
        let Command::Train(t) = try_parse(&[
            "train",
            "--activation",
            "qg",
            "--define",
            "qg=x * sigmoid(1.702 * x)",
        ])
        .unwrap()
        .command
        else {
            panic!("not train");
        };
        let (cfg, formulas) = t.model.config(DatasetName::Mnist).unwrap();
        assert_eq!(formulas.names(), ["qg"]);
        assert_eq!(cfg.activation[0].name(), "qg");
        let e = try_parse(&["train", "--define", "relu=x"]).unwrap_err();
        assert!(e.contains("built-in"), "{e}");
        let Command::Train(t) = try_parse(&["train", "--activation", "qgg"])
            .unwrap()
            .command
        else {
            panic!("not train");
        };
        let e = t.model.config(DatasetName::Mnist).unwrap_err().to_string();
        assert!(
            e.contains("unknown activation 'qgg'") && e.contains("--define"),
            "{e}"
        );
    }
}
