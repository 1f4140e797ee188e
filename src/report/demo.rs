//! `demo.html`: one self-contained page (no network, scripts inline) with a drawing
//! pad and, per model side by side, the 28x28 input it sees, its ten probabilities,
//! each conv layer's feature maps and each fully connected hidden layer's activations,
//! updated as you draw (conv, pooling and norm layers run as in evaluation mode).
//!
//! The page's script (`assets/demo.js`) prepares the drawing exactly as `actlab
//! predict` does and runs the forward pass on the embedded weights; activations travel
//! as formula trees ([`crate::nn::portable`]), never as code.

use std::path::Path;

use base64::Engine;
use serde_json::{json, Value};

use super::markup::esc;
use super::ReportError;
use crate::data::Dataset;
use crate::nn::arch::Arch;
use crate::nn::pool::PoolKind;
use crate::nn::spec::Norm;
use crate::nn::{portable, Mlp};

const SCRIPT: &str = include_str!("../../assets/demo.js");

/// Test images embedded for the page's self-test (`demo.html#selftest`).
pub const SAMPLES: usize = 50;

const CSS: &str = r#"
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.5rem; margin: 0 0 .3rem; } .sub { color: #666; margin: 0 0 1rem; }
.main { display: flex; gap: 1.5rem; align-items: flex-start; flex-wrap: wrap; }
.padbox { position: sticky; top: 1rem; }
#pad { width: 280px; height: 280px; border: 2px solid #333; border-radius: 6px; background: #fff; touch-action: none; cursor: crosshair; }
button { margin-top: .5rem; font-size: 1rem; padding: .3rem 1.2rem; }
.models { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 1rem; flex: 1 1 600px; align-items: stretch; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: .6rem .8rem; min-width: 0; box-sizing: border-box; }
.card.blank .bars { opacity: .35; }
.card h2 { font-size: 1.05rem; margin: 0; } .label { color: #666; font-size: .8rem; margin: .1rem 0 .5rem; }
.top { display: flex; align-items: center; gap: 1rem; }
canvas.input { width: 84px; height: 84px; image-rendering: pixelated; border: 1px solid #999; }
.digit { font-size: 3.2rem; font-weight: bold; min-width: 2.5rem; text-align: center; }
.bar { display: flex; align-items: center; gap: .3rem; font-size: .75rem; height: 14px; }
.bar span { width: 5.5rem; text-align: right; overflow: hidden; white-space: nowrap; }
.track { flex: 1; background: #eee; height: 10px; } .track i { display: block; height: 10px; background: #7a8ca3; width: 0; }
.bar b { width: 3rem; font-weight: normal; } .bar.top i { background: #1a7f37; } .bar.top span { font-weight: bold; }
.layer { font-size: .75rem; margin-top: .5rem; display: flex; justify-content: space-between; } .layer em { color: #a33; font-style: normal; }
.strip { display: flex; height: 18px; border: 1px solid #ccc; }
.strip span { flex: 1; min-width: 1px; }
.strip span.sat { box-shadow: inset 0 -6px 0 #d62728; } .strip span.off { box-shadow: inset 0 -6px 0 #333; }
.legend { font-size: .75rem; color: #555; max-width: 280px; }
.maps { display: flex; flex-wrap: wrap; gap: 2px; }
canvas.fmap { width: 32px; height: 32px; image-rendering: pixelated; border: 1px solid #ccc; }
.legend i { display: inline-block; width: 12px; height: 10px; vertical-align: middle; }
"#;

/// One model shown on the page.
pub struct DemoModel<'a> {
    /// Heading, e.g. the variant ("after").
    pub name: String,
    /// What it is, e.g. "relu/log_softmax/nll, seed 2, val acc 97.6%".
    pub label: String,
    /// The network.
    pub model: &'a Mlp,
    /// Names of the ten classes.
    pub class_names: Vec<String>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn f32_b64(v: &[f32]) -> String {
    b64(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

/// A model as the page's script reads it: weights [out, in] per layer, and per hidden
/// layer its activation as a formula tree with how its units saturate or die.
fn model_json(d: &DemoModel<'_>) -> Value {
    let arch = &d.model.arch;
    let named = crate::model_io::named_params(arch, &d.model.params);
    let tensor = |name: String| {
        named
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, v)| f32_b64(v))
            .unwrap_or_default()
    };
    let layers: Vec<Value> = (1..=arch.layers())
        .map(|l| json!({"w": tensor(format!("fc{l}.weight")), "b": tensor(format!("fc{l}.bias"))}))
        .collect();
    let acts: Vec<Value> = (0..arch.hidden())
        .map(|l| {
            // A PReLU runs with its trained slope.
            let a = d.model.activation(l);
            json!({
                "name": arch.activations[l].to_string(),
                "expr": portable::to_json(&portable::expr(&a)),
                "saturates": crate::diagnostics::saturates(&a),
                "can_die": a.can_die(),
                "peak": a.peak_derivative(),
            })
        })
        .collect();
    json!({
        "name": d.name,
        "convs": convs_json(arch, &tensor),
        "norms": norms_json(d.model, &tensor),
        "sizes": arch.sizes,
        "output": arch.output.to_string(),
        "class_names": d.class_names,
        "layers": layers,
        "acts": acts,
    })
}

/// Each conv layer's weight [c_out, c_in, k, k], bias (empty before batch norm), shape
/// on its input and the pool after it ("max", "avg" or null).
fn convs_json(arch: &Arch, tensor: &dyn Fn(String) -> String) -> Vec<Value> {
    let plan = arch.conv_plan().map(|p| p.layers).unwrap_or_default();
    plan.iter()
        .enumerate()
        .map(|(k, (s, pool))| {
            json!({
                "w": tensor(format!("conv{}.weight", k + 1)),
                "b": tensor(format!("conv{}.bias", k + 1)),
                "c_in": s.c_in, "c_out": s.c_out, "k": s.k, "stride": s.stride, "pad": s.pad,
                "h": s.h, "iw": s.w, "oh": s.out_h(), "ow": s.out_w(),
                "pool": pool.map(|p| match p.kind {
                    PoolKind::Max => "max",
                    PoolKind::Avg => "avg",
                }),
            })
        })
        .collect()
}

/// Each hidden layer's norm in evaluation mode, or null: its kind, weight and bias,
/// and for batch norm the running mean and variance it normalises with.
fn norms_json(model: &Mlp, tensor: &dyn Fn(String) -> String) -> Vec<Value> {
    let kind = match model.arch.norm {
        Norm::None => return vec![Value::Null; model.arch.hidden()],
        Norm::Layer => "layer",
        Norm::Batch => "batch",
    };
    (0..model.arch.hidden())
        .map(|i| {
            // Every hidden layer has the norm, so batch norm i keeps stats i.
            let stats = model.stats.get(i);
            json!({
                "kind": kind,
                "w": tensor(format!("norm{}.weight", i + 1)),
                "b": tensor(format!("norm{}.bias", i + 1)),
                "mean": stats.map(|s| f32_b64(&s.mean)),
                "var": stats.map(|s| f32_b64(&s.var)),
            })
        })
        .collect()
}

/// JSON safe inside a <script> element: `<`, `>` and `&` (which only occur inside
/// JSON strings) written as \u escapes, so no text in a name can end the element or
/// switch the HTML parser into its escaped-script states (`<!--`, `<script`,
/// `</script>`); U+2028 and U+2029 too, for older script parsers.
fn script_json(v: &Value) -> String {
    let mut out = String::new();
    for c in v.to_string().chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn card(k: usize, d: &DemoModel<'_>) -> String {
    let arch = &d.model.arch;
    let mut h = format!(
        "<section class=\"card\" id=\"model-{k}\"><h2>{}</h2><p class=\"label\">{}</p><div class=\"top\"><canvas class=\"input\" width=\"28\" height=\"28\" title=\"what the model sees\"></canvas><div class=\"digit\">–</div></div><div class=\"bars\">",
        esc(&d.name),
        esc(&d.label)
    );
    for c in &d.class_names {
        h.push_str(&format!(
            "<div class=\"bar\"><span>{}</span><div class=\"track\"><i></i></div><b></b></div>",
            esc(c)
        ));
    }
    h.push_str("</div>");
    let plan = arch.conv_plan().map(|p| p.layers).unwrap_or_default();
    for (k, (s, _)) in plan.iter().enumerate() {
        let map = format!(
            "<canvas class=\"fmap\" width=\"{}\" height=\"{}\"></canvas>",
            s.out_w(),
            s.out_h()
        );
        h.push_str(&format!(
            "<div class=\"layer\"><span>conv {} ({} maps {}×{}, {})</span></div><div class=\"maps\">{}</div>",
            k + 1,
            s.c_out,
            s.out_h(),
            s.out_w(),
            esc(&arch.activations[k].to_string()),
            map.repeat(s.c_out)
        ));
    }
    for l in 0..arch.layers() - 1 {
        let width = arch.sizes[l + 1];
        let hidden = arch.conv.len() + l;
        h.push_str(&format!(
            "<div class=\"layer\"><span>hidden {} ({width} units, {})</span><em></em></div><div class=\"strip\">{}</div>",
            hidden + 1,
            esc(&arch.activations[hidden].to_string()),
            "<span></span>".repeat(width)
        ));
    }
    h.push_str("</section>");
    h
}

/// The whole page for `models`, with `samples` (the first test images) for its
/// self-test.
pub fn page(models: &[DemoModel<'_>], samples: Option<&Dataset>) -> String {
    let json_models = Value::Array(models.iter().map(model_json).collect());
    let (count, images) = match samples {
        Some(d) => {
            let n = SAMPLES.min(d.len());
            (n, b64(&d.images()[..n * crate::data::PIXELS]))
        }
        None => (0, String::new()),
    };
    let cards: String = models.iter().enumerate().map(|(k, d)| card(k, d)).collect();
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>actlab demo</title><style>{CSS}</style></head><body>\
         <h1>Draw a digit</h1><p class=\"sub\">Each model sees your drawing as <code>actlab predict</code> prepares an image (cropped, fitted to 20×20, centred by mass in 28×28) and shows its ten probabilities, each conv layer's feature maps and every hidden unit, coloured by its activation (blue positive, red negative).</p>\
         <div class=\"main\"><div class=\"padbox\"><canvas id=\"pad\" width=\"280\" height=\"280\"></canvas><br><button id=\"clear\">Clear</button>\
         <p class=\"legend\"><i style=\"box-shadow: inset 0 -6px 0 #d62728\"></i> saturated: derivative below 19% of its peak (sigmoid, tanh, ...); <i style=\"box-shadow: inset 0 -6px 0 #333\"></i> inactive: zero derivative (ReLU off, ...).</p></div>\
         <div class=\"models\">{cards}</div></div><pre id=\"selftest\" hidden></pre><pre id=\"stroke\" hidden></pre>\
         <script type=\"application/json\" id=\"models\">{}</script><script type=\"application/json\" id=\"samples\">{}</script><script>{SCRIPT}</script></body></html>\n",
        script_json(&json_models),
        script_json(&json!({"count": count, "images": images})),
    )
}

/// Write the page to `path` (atomically).
pub fn write(
    path: &Path,
    models: &[DemoModel<'_>],
    samples: Option<&Dataset>,
) -> Result<(), ReportError> {
    Ok(crate::store::write_file(
        path,
        page(models, samples).as_bytes(),
    )?)
}
