//! Using a saved model: `actlab eval` (test-set metrics) and `actlab predict` (images
//! or test-set indices).

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::data::{self, DatasetName, Split};
use crate::eval::{argmax, evaluate};
use crate::model_io::{load_model, ModelMeta};
use crate::nn::{Activation, Loss, Mlp, OutputFn, Workspace};
use crate::predict::{load_gray, parse_indices, prepare};
use crate::report::pct;
use crate::report::table::Table;

/// Settings used when a weights file carries no actlab metadata (e.g. a PyTorch export).
#[derive(Debug, Clone, Default)]
pub struct Fallback {
    /// Hidden activation(s).
    pub activation: Option<Vec<Activation>>,
    /// Output function.
    pub output: Option<OutputFn>,
    /// Loss for reporting.
    pub loss: Option<Loss>,
}

impl Fallback {
    fn meta(&self) -> ModelMeta {
        let mut m = ModelMeta::of(&crate::config::TrainConfig::default());
        if let Some(a) = &self.activation {
            m.activations = a.clone();
        }
        if let Some(o) = self.output {
            m.output = o;
        }
        if let Some(l) = self.loss {
            m.loss = l;
        }
        m
    }
}

pub(crate) fn load(path: &Path, fb: &Fallback) -> Result<(Mlp, ModelMeta)> {
    let (model, meta) = load_model(path, Some(&fb.meta()))?;
    let shape = meta.data_shape();
    if model.arch.sizes[0] != shape.width || model.arch.classes() != shape.classes {
        anyhow::bail!(
            "{}: the model maps {} inputs to {} classes but its data has {} inputs and {} classes; save the model again with actlab train --save",
            path.display(),
            model.arch.sizes[0],
            model.arch.classes(),
            shape.width,
            shape.classes
        );
    }
    Ok((model, meta))
}

/// The test data for a model: `dataset` when given, else the data it was trained
/// on (its `--data-file` or named dataset); refused when its shape is not the model's.
fn data_for(
    path: &Path,
    meta: &ModelMeta,
    dataset: Option<DatasetName>,
    data_dir: Option<&Path>,
) -> Result<Split> {
    let file = meta.config.as_ref().and_then(|c| c.data_file.clone());
    let split = match (dataset, file) {
        (None, Some(f)) => data::npz::load(&f)?,
        (d, _) => data::load(d.unwrap_or(meta.dataset), data_dir)?,
    };
    let (want, have) = (meta.data_shape(), split.shape);
    if want.width != have.width || want.classes < have.classes {
        anyhow::bail!(
            "{}: the model reads {} inputs for {} classes but {} has {} inputs and {} classes; evaluate it on the data it was trained on",
            path.display(),
            want.width,
            want.classes,
            split.name,
            have.width,
            have.classes
        );
    }
    Ok(split)
}

#[derive(Serialize)]
struct EvalJson<'a> {
    model: String,
    dataset: String,
    images: usize,
    accuracy: f64,
    loss: f64,
    loss_fn: String,
    per_class_accuracy: Vec<f64>,
    /// Left out (null) above `CONFUSION_MAX_CLASSES` classes.
    confusion: Option<&'a [Vec<u32>]>,
    most_confused: Vec<(usize, usize, u32)>,
}

/// `actlab eval MODEL`: metrics on the test set, evaluated on `threads` threads.
pub fn eval_command(
    path: &Path,
    dataset: Option<DatasetName>,
    data_dir: Option<&Path>,
    fb: &Fallback,
    json: bool,
    threads: usize,
) -> Result<()> {
    let (model, meta) = load(path, fb)?;
    let name = dataset.unwrap_or(meta.dataset);
    let split = data_for(path, &meta, dataset, data_dir)?;
    super::warn_if_modified(&split);
    super::require_test_images(&split)?;
    let e = evaluate(&model, &split.test, meta.loss, threads);
    if json {
        let j = EvalJson {
            model: path.display().to_string(),
            dataset: name.to_string(),
            images: split.test.len(),
            accuracy: e.metrics.acc,
            loss: e.metrics.loss,
            loss_fn: meta.loss.to_string(),
            per_class_accuracy: e.per_class_acc(),
            confusion: crate::eval::shows_confusion(e.confusion.len()).then_some(&e.confusion[..]),
            most_confused: e.most_confused(10),
        };
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    println!(
        "{}: {} on {} test images: accuracy {}, mean {} loss {:.4}",
        path.display(),
        name,
        split.test.len(),
        pct(e.metrics.acc),
        meta.loss,
        e.metrics.loss
    );
    print_class_tables(&e, &name.class_names(model.arch.classes()));
    Ok(())
}

/// Accuracy per class, the confusion matrix and the most confused pairs.
fn print_class_tables(e: &crate::eval::Evaluation, classes: &[String]) {
    let mut t = Table::new(&["class", "images", "accuracy"]);
    for (c, acc) in e.per_class_acc().iter().enumerate() {
        let n: u32 = e.confusion[c].iter().sum();
        t.row(vec![classes[c].to_string(), n.to_string(), pct(*acc)]);
    }
    print!("\n{}", t.to_text());
    if crate::eval::shows_confusion(classes.len()) {
        print_confusion(e, classes);
    } else {
        println!(
            "\n(no confusion matrix: {} classes, more than {})",
            classes.len(),
            crate::eval::CONFUSION_MAX_CLASSES
        );
    }
    println!("\nmost confused (true -> predicted: count):");
    for (t, p, n) in e.most_confused(5) {
        println!("  {} -> {}: {n}", classes[t], classes[p]);
    }
}

/// The confusion matrix as a text table, rows true, columns predicted.
fn print_confusion(e: &crate::eval::Evaluation, classes: &[String]) {
    let mut headers = vec!["true \\ predicted".to_string()];
    headers.extend((0..classes.len()).map(|c| c.to_string()));
    let hs: Vec<&str> = headers.iter().map(|s| s.as_str()).collect();
    let mut cm = Table::new(&hs);
    for (c, row) in e.confusion.iter().enumerate() {
        let label = if classes[c] == c.to_string() {
            ""
        } else {
            &classes[c]
        };
        let mut cells = vec![format!("{c} {label}")];
        cells.extend(row.iter().map(|v| v.to_string()));
        cm.row(cells);
    }
    print!("\nconfusion matrix\n{}", cm.to_text());
}

/// One prediction.
#[derive(Debug, Serialize)]
pub struct Prediction {
    /// Image file or "test[i]".
    pub input: String,
    /// Predicted class.
    pub predicted: usize,
    /// (class, probability), best first, three of them.
    pub top3: Vec<(usize, f32)>,
    /// Every class's probability, in class order.
    pub probabilities: Vec<f32>,
    /// True label, for test-set indices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<crate::data::Label>,
    /// Whether the image was inverted (light background).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inverted: Option<bool>,
}

/// Predict one 28x28 u8 image: the class, the top three and every probability.
pub fn predict_pixels(
    model: &Mlp,
    ws: &mut Workspace,
    pixels: &[u8],
) -> (usize, Vec<(usize, f32)>, Vec<f32>) {
    let x: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    predict_row(model, ws, &x)
}

/// Predict one row of first-layer inputs: the class, the top three and every probability.
pub fn predict_row(
    model: &Mlp,
    ws: &mut Workspace,
    x: &[f32],
) -> (usize, Vec<(usize, f32)>, Vec<f32>) {
    let out = model.forward_eval(ws, model.input_buf().dense(x, 1, x.len()));
    let probs = model.arch.output.probabilities(out);
    let mut ranked: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(3);
    (argmax(out), ranked, probs)
}

/// `actlab predict MODEL IMAGE... | --test-index A..B`.
pub fn predict_command(
    path: &Path,
    images: &[PathBuf],
    test_index: Option<&str>,
    data_dir: Option<&Path>,
    fb: &Fallback,
    json: bool,
) -> Result<()> {
    if images.is_empty() && test_index.is_none() {
        anyhow::bail!("nothing to predict: pass image files or --test-index 0..20");
    }
    let (model, meta) = load(path, fb)?;
    let mut ws = Workspace::new(&model, 1, false);
    let mut preds = Vec::new();
    if !images.is_empty() && meta.data_shape() != DatasetName::Mnist.shape() {
        anyhow::bail!(
            "{}: image files are read as 28x28 digits but this model reads {} inputs; use --test-index",
            path.display(),
            model.arch.sizes[0]
        );
    }
    for img in images {
        preds.push(predict_image(&model, &mut ws, img)?);
    }
    if let Some(spec) = test_index {
        let split = data_for(path, &meta, None, data_dir)?;
        let mut x = vec![0.0; split.shape.width];
        for i in parse_indices(spec, split.test.len())? {
            data::batch::images(&split.test, &[i as u32], &mut x);
            let (predicted, top3, probabilities) = predict_row(&model, &mut ws, &x);
            preds.push(Prediction {
                input: format!("test[{i}]"),
                predicted,
                top3,
                probabilities,
                label: Some(split.test.labels[i]),
                inverted: None,
            });
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&preds)?);
    } else {
        print_predictions(&preds, &meta.dataset.class_names(model.arch.classes()));
    }
    Ok(())
}

/// Predict one image file (read as a 28x28 digit), warning when it holds no ink.
fn predict_image(model: &Mlp, ws: &mut Workspace, img: &Path) -> Result<Prediction> {
    let p = prepare(&load_gray(img)?);
    if !p.ink {
        eprintln!(
            "warning: {}: the image holds no ink (a blank page); its prediction is a guess",
            img.display()
        );
    }
    let (predicted, top3, probabilities) = predict_pixels(model, ws, &p.pixels);
    Ok(Prediction {
        input: img.display().to_string(),
        predicted,
        top3,
        probabilities,
        label: None,
        inverted: Some(p.inverted),
    })
}

/// One line per prediction: the class, the top three, and the truth when known.
fn print_predictions(preds: &[Prediction], names: &[String]) {
    for p in preds {
        let top: Vec<String> = p
            .top3
            .iter()
            .map(|(c, pr)| format!("{} {:.1}%", names[*c], pr * 100.0))
            .collect();
        let truth = match p.label {
            Some(l) if l as usize == p.predicted => {
                format!("  (true {}: correct)", names[l as usize])
            }
            Some(l) => format!("  (true {}: WRONG)", names[l as usize]),
            None => String::new(),
        };
        println!(
            "{}: {}  [{}]{truth}",
            p.input,
            names[p.predicted],
            top.join(", ")
        );
    }
}
