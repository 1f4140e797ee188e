//! Activations defined by a formula, end to end: `--define` on the command line and
//! `[define]` in experiment files, models that carry their formulas, and the one-line
//! errors for bad definitions.

mod common;

use common::{actlab, json_of, run_ok, run_ok_with_stderr, TempDir};
use serde_json::Value;

const QUICK_GELU: &str = "quick_gelu=x * sigmoid(1.702 * x)";

/// A model trained with a formula (next to PReLU) is evaluated and used for prediction
/// with no --define: the saved metadata and the record carry the formula.
#[test]
fn formula_models_need_no_flags_to_be_read_back() {
    let d = TempDir::new("formula-model");
    let model = d.join("m.safetensors");
    // The whole test set, so the record's accuracy is what eval measures.
    run_ok(
        actlab()
            .args(["train", "--epochs", "1", "--limit-train", "200"])
            .args(["--define", QUICK_GELU, "--activation", "prelu,quick_gelu"])
            .arg("--out")
            .arg(d.join("run"))
            .arg("--save")
            .arg(&model),
    );
    let record = json_of(&d.join("run/record.json"));
    assert_eq!(
        record["config"]["activation"][1], "quick_gelu=x * sigmoid(1.702 * x)",
        "the record keeps the definition"
    );
    let eval: Value =
        serde_json::from_str(&run_ok(actlab().arg("eval").arg(&model).arg("--json"))).unwrap();
    let test = record["final_test"]["acc"].as_f64().unwrap();
    assert!(
        (eval["accuracy"].as_f64().unwrap() - test).abs() < 1e-9,
        "{eval} vs {test}"
    );
    let p = run_ok(
        actlab()
            .arg("predict")
            .arg(&model)
            .args(["--test-index", "0..3"]),
    );
    assert_eq!(p.lines().count(), 3, "{p}");
    // A different formula under the same name is refused, not silently mixed.
    let o = actlab()
        .args([
            "train",
            "--define",
            "quick_gelu=x * tanh(x)",
            "--define",
            QUICK_GELU,
        ])
        .args(["--activation", "quick_gelu"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already defined"));
}

/// A formula trains exactly as the built-in it spells out: silu and x * sigmoid(x)
/// give the same accuracy after an epoch.
#[test]
fn a_formula_trains_like_the_builtin_it_spells_out() {
    let d = TempDir::new("formula-vs-builtin");
    let run = |act: &str, out: &str| -> Value {
        run_ok(
            actlab()
                .args(common::TINY_TRAIN)
                .args(["--define", "swish_f=x * sigmoid(x)", "--activation", act])
                .arg("--out")
                .arg(d.join(out)),
        );
        json_of(&d.join(out).join("record.json"))
    };
    let (builtin, formula) = (run("silu", "a"), run("swish_f", "b"));
    for key in ["final_train", "final_test"] {
        let a = builtin[key]["loss"].as_f64().unwrap();
        let b = formula[key]["loss"].as_f64().unwrap();
        assert!(
            (a - b).abs() < 1e-4 * a.abs(),
            "{key}: silu {a} vs formula {b}"
        );
    }
}

/// An experiment file's [define] table names formulas its variants use.
#[test]
fn experiment_files_define_formulas() {
    let d = TempDir::new("formula-toml");
    let file = d.join("exp.toml");
    std::fs::write(
        &file,
        "name = \"formulas\"\nseeds = 1\n[define]\nsquareplus = \"(x + sqrt(x^2 + 4)) / 2\"\n\
         [base]\nepochs = 1\nlimit_train = 200\nlimit_test = 20\n\
         [[variant]]\nactivation = \"relu\"\n[[variant]]\nactivation = \"squareplus\"\n",
    )
    .unwrap();
    let out = d.join("out");
    run_ok(actlab().arg("run").arg(&file).arg("--out").arg(&out));
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("squareplus"), "{summary}");
    // Merging or re-reading the folder needs no definition either.
    std::fs::remove_file(out.join("report.html")).unwrap();
    run_ok(actlab().arg("report").arg(&out));
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    for needle in ["squareplus", "relu/log_softmax/nll", "test acc", "<svg"] {
        assert!(page.contains(needle), "the report lacks {needle}");
    }
    let bad = d.join("bad.toml");
    std::fs::write(
        &bad,
        "[define]\nsq = \"x^\"\n[[variant]]\nactivation = \"sq\"\n",
    )
    .unwrap();
    let o = actlab().arg("run").arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("[define] --define sq=x^: expected a number, x, or '(' at column 6"),
        "{err}"
    );
}

/// Bad definitions: exit 2 and one line naming the problem; formulas that are not
/// finite on [-20, 20] are accepted with a warning naming an input.
#[test]
fn bad_definitions_get_one_line_and_doubtful_ones_a_warning() {
    for (spec, needle) in [
        (
            "quick_gelu=x * sigmoid(1.702 *)",
            "expected a number, x, or '(' at column 31",
        ),
        ("relu=max(x, 0)", "'relu' is a built-in activation"),
        ("f=x * sigmod(x)", "did you mean 'sigmoid'"),
        ("f=x * y", "unknown variable 'y'"),
        ("f", "expected NAME=FORMULA"),
    ] {
        let o = actlab()
            .args(["activations", "--define", spec])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{spec}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{spec}: {err}");
    }
    let (out, err) = run_ok_with_stderr(actlab().args(["activations", "lg", "--define=lg=log(x)"]));
    assert!(
        err.contains("warning: lg=log(x) gives NaN at x = -20"),
        "{err}"
    );
    assert!(out.contains("f'(x)  = 1 / x"), "{out}");
}
