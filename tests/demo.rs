//! `actlab demo` in a real browser (headless Chromium): the page loads without console
//! errors; its own preparation and forward pass give `actlab predict`'s probabilities
//! (within 1e-4) for 50 test images and for a stroke drawn with pointer events; and
//! the drawn page is not blank.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use common::{actlab, data_dir, mnist_dir, run_ok, TempDir};
use serde_json::Value;

/// Open `url` in headless Chromium with `extra` flags; what it printed.
fn browse(profile: &Path, url: &str, extra: &[String]) -> String {
    common::run_chromium(profile, "1500,1100", extra, url)
}

/// The text of `<pre id="ID">` in a dumped DOM, as JSON.
fn pre_json(dom: &str, id: &str) -> Value {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let text = &dom[dom[start..].find('>').unwrap() + start + 1..];
    let text = &text[..text.find("</pre>").unwrap()];
    let text = text
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("#{id}: {e}: {text:.200}"))
}

/// `actlab predict --json` probabilities of each image, for `model`.
fn predict(model: &Path, images: &[PathBuf]) -> Vec<Vec<f64>> {
    let out = run_ok(
        actlab()
            .arg("predict")
            .arg(model)
            .args(images)
            .arg("--json"),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["probabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// Check ten probabilities against predict's; the largest difference.
fn assert_close(page: &Value, want: &[f64], what: &str) -> f64 {
    let got: Vec<f64> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!((got.len(), want.len()), (10, 10), "{what}");
    let mut worst = 0.0f64;
    for (c, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4,
            "{what}, class {c}: page {g} vs predict {w}"
        );
        worst = worst.max((g - w).abs());
    }
    worst
}

/// Four models trained briefly: sigmoid everywhere, a formula + PReLU net, and two
/// conv nets (LeNet-5 with max pooling; layer norm with average pooling).
fn models(dir: &TempDir) -> Vec<PathBuf> {
    let specs: [&[&str]; 4] = [
        &[
            "--activation",
            "sigmoid",
            "--output",
            "sigmoid",
            "--loss",
            "cross_entropy",
        ],
        &[
            "--define",
            "qg=x * sigmoid(1.702 * x)",
            "--activation",
            "qg,prelu",
        ],
        &["--model", "lenet5"],
        &[
            "--conv",
            "4:5:1:2,6:3",
            "--pool",
            "avg",
            "--norm",
            "layer",
            "--hidden",
            "32",
            "--activation",
            "tanh",
        ],
    ];
    specs
        .iter()
        .enumerate()
        .map(|(i, args)| {
            let path = dir.join(&format!("m{i}.safetensors"));
            run_ok(
                actlab()
                    .arg("train")
                    .args(*args)
                    .args([
                        "--epochs",
                        "1",
                        "--limit-train",
                        "3000",
                        "--limit-test",
                        "100",
                    ])
                    .arg("--data-dir")
                    .arg(data_dir())
                    .arg("--out")
                    .arg(dir.join(&format!("run{i}")))
                    .arg("--save")
                    .arg(&path),
            );
            path
        })
        .collect()
}

#[test]
#[ignore = "needs chromium (.ci/run installs it and runs ignored tests)"]
fn the_page_predicts_as_actlab_predict_does() {
    let dir = TempDir::new("demo");
    let models = models(&dir);
    let page = dir.join("demo.html");
    run_ok(
        actlab()
            .arg("demo")
            .args(&models)
            .arg("--out")
            .arg(&page)
            .arg("--data-dir")
            .arg(data_dir()),
    );
    let url = format!("file://{}", page.display());

    // 50 test images, enlarged 10x as the page enlarges them, through predict.
    let split = actlab::data::load_dir(actlab::data::DatasetName::Mnist, &mnist_dir()).unwrap();
    let files: Vec<PathBuf> = (0..50)
        .map(|i| {
            let img = image::GrayImage::from_fn(280, 280, |x, y| {
                image::Luma([split.test.image(i)[(y / 10) as usize * 28 + (x / 10) as usize]])
            });
            let f = dir.join(&format!("t{i}.png"));
            img.save(&f).unwrap();
            f
        })
        .collect();
    let dom = browse(
        &dir.join("p1"),
        &format!("{url}#selftest"),
        &["--dump-dom".into()],
    );
    let page_probs = pre_json(&dom, "selftest");
    assert_eq!(page_probs.as_array().unwrap().len(), 50);
    let mut worst = 0.0f64;
    for (m, model) in models.iter().enumerate() {
        for (i, want) in predict(model, &files).iter().enumerate() {
            let what = format!("model {m}, test image {i}");
            worst = worst.max(assert_close(&page_probs[i][m], want, &what));
        }
    }
    eprintln!("largest probability difference, page vs predict: {worst:.1e}");

    // A 7 drawn with pointer events; the pad's PNG through predict.
    let dom = browse(
        &dir.join("p2"),
        &format!("{url}#stroke"),
        &["--dump-dom".into()],
    );
    let stroke = pre_json(&dom, "stroke");
    let png = stroke["png"]
        .as_str()
        .unwrap()
        .trim_start_matches("data:image/png;base64,");
    let drawn = dir.join("drawn.png");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png)
        .unwrap();
    std::fs::write(&drawn, bytes).unwrap();
    for (m, model) in models.iter().enumerate() {
        let want = &predict(model, std::slice::from_ref(&drawn))[0];
        assert_close(
            &stroke["preds"][m]["probs"],
            want,
            &format!("model {m}, the stroke"),
        );
    }

    // Every conv layer's maps are drawn: LeNet-5's 6 + 16 and the other net's 4 + 6.
    assert_eq!(stroke["maps"], 32, "{}", stroke["maps"]);
    assert!(
        stroke["shown"].as_u64().unwrap() > 16,
        "{}",
        stroke["shown"]
    );

    // The drawn page, as a screenshot: the pad's ink, bars and strips, not a blank page.
    let shot = dir.join("shot.png");
    browse(
        &dir.join("p3"),
        &format!("{url}#stroke"),
        &[format!("--screenshot={}", shot.display())],
    );
    let img = image::open(&shot).unwrap().to_rgb8();
    let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count();
    assert!(dark > 5000, "screenshot nearly blank ({dark} dark pixels)");
}

#[test]
fn experiments_with_saved_models_write_a_demo_of_each_variants_best_seed() {
    let out = TempDir::new("demo-compare");
    let text = run_ok(
        actlab()
            .args([
                "compare",
                "--activation",
                "relu,tanh",
                "--seeds",
                "2",
                "--epochs",
                "1",
            ])
            .args([
                "--limit-train",
                "1500",
                "--limit-test",
                "300",
                "--save-models",
            ])
            .arg("--data-dir")
            .arg(data_dir())
            .arg("--out")
            .arg(&out.0),
    );
    assert!(text.contains("demo: "), "{text}");
    let page = std::fs::read_to_string(out.join("demo.html")).unwrap();
    assert!(page.contains("id=\"model-1\"") && !page.contains("id=\"model-2\""));
    for v in ["relu_log_softmax_nll", "tanh_log_softmax_nll"] {
        let acc = |seed: u64| {
            let r = common::json_of(&out.join(&format!("runs/{v}/seed-{seed}.json")));
            r["final_test"]["acc"].as_f64().unwrap()
        };
        let best = if acc(1) > acc(0) { 1 } else { 0 };
        let label = format!(
            "{}, seed {best}, test acc",
            v.replace("_log_softmax_nll", "/log_softmax/nll")
        );
        assert!(page.contains(&label), "{label}");
        for seed in 0..2 {
            assert!(out
                .join(&format!("models/{v}/seed-{seed}.safetensors"))
                .is_file());
        }
    }
    // Without --save-models: no models, no page.
    let plain = TempDir::new("demo-none");
    run_ok(
        actlab()
            .args(["compare", "--activation", "relu", "--epochs", "1"])
            .args(["--limit-train", "1000", "--limit-test", "100"])
            .arg("--data-dir")
            .arg(data_dir())
            .arg("--out")
            .arg(&plain.0),
    );
    assert!(!plain.join("demo.html").exists() && !plain.join("models").exists());
}

#[test]
#[ignore = "needs chromium (.ci/run installs it and runs ignored tests)"]
fn hostile_names_and_nan_sides_do_not_break_the_page() {
    let dir = TempDir::new("demo-hostile");
    // max(x, log(x)): log is NaN for x < 0, where the engine keeps x.
    let model = dir.join("<!--<script>m.safetensors");
    run_ok(
        actlab()
            .args([
                "train",
                "--define",
                "ml=max(x, log(x))",
                "--activation",
                "ml",
            ])
            .args([
                "--epochs",
                "1",
                "--limit-train",
                "2000",
                "--limit-test",
                "100",
            ])
            .arg("--data-dir")
            .arg(data_dir())
            .arg("--out")
            .arg(dir.join("run"))
            .arg("--save")
            .arg(&model),
    );
    let page = dir.join("demo.html");
    run_ok(
        actlab()
            .arg("demo")
            .arg(&model)
            .arg("--out")
            .arg(&page)
            .arg("--data-dir")
            .arg(data_dir()),
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(
        html.matches("<script").count(),
        3,
        "only the page's own tags"
    );
    let split = actlab::data::load_dir(actlab::data::DatasetName::Mnist, &mnist_dir()).unwrap();
    let files: Vec<PathBuf> = (0..50)
        .map(|i| {
            let img = image::GrayImage::from_fn(280, 280, |x, y| {
                image::Luma([split.test.image(i)[(y / 10) as usize * 28 + (x / 10) as usize]])
            });
            let f = dir.join(&format!("t{i}.png"));
            img.save(&f).unwrap();
            f
        })
        .collect();
    let url = format!("file://{}#selftest", page.display());
    let dom = browse(&dir.join("p"), &url, &["--dump-dom".into()]);
    let page_probs = pre_json(&dom, "selftest");
    for (i, want) in predict(&model, &files).iter().enumerate() {
        assert_close(&page_probs[i][0], want, &format!("test image {i}"));
    }
}
