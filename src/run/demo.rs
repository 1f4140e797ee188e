//! `actlab demo`, and the demo.html an experiment writes beside its report: the best
//! seed of each variant, drawn side by side.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::inference::{load, Fallback};
use crate::data::{self, Dataset, DatasetName, Split};
use crate::experiment::{Experiment, ReportKind};
use crate::model_io::{load_model, ModelMeta};
use crate::nn::Mlp;
use crate::report::demo::{self, DemoModel};
use crate::report::pct;
use crate::report::summary::ExperimentSummary;
use crate::store::records::RunRecord;

/// Most models one experiment's page shows (the best-ranked variants).
const MAX_MODELS: usize = 12;

/// `actlab demo MODEL... --out FILE`: the drawing page for these models.
pub fn demo_command(
    paths: &[PathBuf],
    out: &Path,
    data_dir: Option<&Path>,
    fb: &Fallback,
) -> Result<()> {
    crate::store::paths::output_file(out, "--out")?;
    let inputs: Vec<PathBuf> = paths
        .iter()
        .flat_map(|p| [p.clone(), crate::model_io::meta_path(p)])
        .collect();
    crate::store::paths::not_an_input(out, &inputs, "--out")?;
    let loaded = paths
        .iter()
        .map(|p| load(p, fb))
        .collect::<Result<Vec<_>>>()?;
    for (p, (_, meta)) in paths.iter().zip(&loaded) {
        if !draws(meta) {
            anyhow::bail!(
                "{}: the demo page draws 28x28 digits but this model reads {} inputs; use actlab predict --test-index",
                p.display(),
                meta.data_shape().width
            );
        }
    }
    let shown: Vec<DemoModel<'_>> = paths
        .iter()
        .zip(&loaded)
        .map(|(p, (model, meta))| DemoModel {
            name: p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            label: describe(model, meta),
            model,
            class_names: class_names(meta.dataset),
        })
        .collect();
    let samples = samples_for(loaded[0].1.dataset, data_dir);
    demo::write(out, &shown, samples.as_ref())?;
    println!(
        "demo: {} (open it in a browser and draw a digit)",
        out.display()
    );
    Ok(())
}

/// Whether the drawing page can feed this model: 28x28 byte images.
fn draws(meta: &ModelMeta) -> bool {
    meta.data_shape() == DatasetName::Mnist.shape()
}

fn class_names(d: DatasetName) -> Vec<String> {
    d.class_names(d.shape().classes)
}

/// "[784, 128, 64, 10] relu/log_softmax on mnist" (with "conv 6:5:1:2,16:5 pool max
/// norm none + " before it for a conv net): what a model is, for its card.
fn describe(model: &Mlp, meta: &ModelMeta) -> String {
    let mut acts: Vec<String> = model
        .arch
        .activations
        .iter()
        .map(|a| a.to_string())
        .collect();
    acts.dedup();
    let arch = &model.arch;
    // A conv net: its conv layers, pool and norm before the fully connected widths.
    let conv = if arch.conv.is_empty() {
        String::new()
    } else {
        format!(
            "conv {} pool {} norm {} + ",
            crate::nn::spec::ConvSpec::list_to_string(&arch.conv),
            arch.pool,
            arch.norm
        )
    };
    format!(
        "{conv}{:?} {}/{} on {}",
        model.arch.sizes,
        acts.join(","),
        model.arch.output,
        meta.dataset
    )
}

/// The first test images of `dataset` for the page's self-test, or None (with a
/// warning saying what is lost) when the dataset cannot be read.
fn samples_for(dataset: DatasetName, data_dir: Option<&Path>) -> Option<Dataset> {
    match data::load(dataset, data_dir) {
        Ok(split) => Some(split.test.first(Some(demo::SAMPLES))),
        Err(e) => {
            eprintln!("warning: {e}; the page works, but its #selftest has no images");
            None
        }
    }
}

/// The run of `variant` with the best final accuracy on the split runs are compared
/// on (the held-out validation split, else the test set; the lower seed on a tie) whose model was saved in one of `dirs`, with that model's file.
fn best_saved<'a>(
    records: &'a [RunRecord],
    variant: &str,
    dirs: &[&Path],
) -> Option<(&'a RunRecord, PathBuf)> {
    let mut runs: Vec<&RunRecord> = records
        .iter()
        .filter(|r| r.variant == variant && r.diverged.is_none() && r.compared().is_some())
        .collect();
    runs.sort_by(|a, b| {
        let acc = |r: &RunRecord| r.compared().map_or(0.0, |m| m.acc);
        acc(b)
            .total_cmp(&acc(a))
            .then(a.config.seed.cmp(&b.config.seed))
    });
    runs.into_iter().find_map(|r| {
        let rel = crate::experiment::model_path(variant, r.config.seed);
        dirs.iter()
            .map(|d| d.join(&rel))
            .find(|p| p.is_file())
            .map(|p| (r, p))
    })
}

/// Write `out/demo.html` with the best seed of each variant whose models were saved
/// under `dirs` (the exercise in its own order, others by rank); None if none were.
pub fn experiment_demo(
    exp: &Experiment,
    summary: &ExperimentSummary,
    records: &[RunRecord],
    dirs: &[&Path],
    out: &Path,
    data: Option<&Split>,
) -> Result<Option<PathBuf>> {
    let mut variants: Vec<_> = summary.variants.iter().collect();
    if exp.report == ReportKind::Exercise {
        variants.sort_by_key(|v| v.index);
    }
    let mut loaded = Vec::new();
    for v in variants {
        let runs_of = v.point.as_deref().unwrap_or(&v.name);
        if let Some((r, file)) = best_saved(records, runs_of, dirs) {
            let (model, meta) = load_model(&file, None)?;
            let acc = r.final_test.map_or(0.0, |m| m.acc);
            let label = format!("{}, seed {}, test acc {}", r.label, r.config.seed, pct(acc));
            loaded.push((v.name.clone(), label, model, meta));
        }
    }
    if loaded.is_empty() || !loaded.iter().all(|l| draws(&l.3)) {
        return Ok(None);
    }
    if loaded.len() > MAX_MODELS {
        eprintln!(
            "demo.html shows the {MAX_MODELS} best-ranked of {} variants",
            loaded.len()
        );
        loaded.truncate(MAX_MODELS);
    }
    let shown: Vec<DemoModel<'_>> = loaded
        .iter()
        .map(|(name, label, model, meta)| DemoModel {
            name: name.clone(),
            label: label.clone(),
            model,
            class_names: class_names(meta.dataset),
        })
        .collect();
    let samples = data.map(|s| s.test.first(Some(demo::SAMPLES)));
    let path = out.join("demo.html");
    demo::write(&path, &shown, samples.as_ref())?;
    Ok(Some(path))
}
