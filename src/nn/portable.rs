//! Every activation written in the formula language, and formulas as JSON trees, so
//! another runtime (the demo page's JavaScript) evaluates the same functions with one
//! small interpreter: nothing user-written is ever evaluated as code there, only the
//! parsed tree.

use serde_json::{json, Value};

use super::formula::parse::{parse, Expr};
use super::Activation;

/// `f` as a formula of x (a PReLU's slope as given: pass the trained one).
pub fn formula_text(a: &Activation) -> String {
    match a {
        Activation::Relu => "max(x, 0)".into(),
        Activation::Sigmoid => "sigmoid(x)".into(),
        Activation::Tanh => "tanh(x)".into(),
        Activation::LeakyRelu(s) | Activation::Prelu(s) => format!("where(x > 0, x, {s:?} * x)"),
        Activation::Elu(al) => format!("where(x > 0, x, {al:?} * expm1(x))"),
        Activation::Selu => {
            "1.0507009873554805 * where(x > 0, x, 1.6732632423543772 * expm1(x))".into()
        }
        Activation::Gelu => "0.5 * x * (1 + erf(x / sqrt(2)))".into(),
        Activation::GeluTanh => {
            "0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))".into()
        }
        Activation::Silu => "x * sigmoid(x)".into(),
        Activation::Mish => "x * tanh(softplus(x))".into(),
        Activation::Softplus { beta, threshold } => {
            format!("where({beta:?} * x > {threshold:?}, x, log1p(exp({beta:?} * x)) / {beta:?})")
        }
        Activation::Identity => "x".into(),
        Activation::Hardshrink(l) => format!("where(abs(x) > {l:?}, x, 0)"),
        Activation::Softshrink(l) => {
            format!("where(x > {l:?}, x - {l:?}, where(x < -{l:?}, x + {l:?}, 0))")
        }
        Activation::Hardtanh { min, max } => format!("min(max(x, {min:?}), {max:?})"),
        Activation::Hardsigmoid => "min(max(x + 3, 0), 6) / 6".into(),
        Activation::Hardswish => "x * min(max(x + 3, 0), 6) / 6".into(),
        Activation::Logsigmoid => "min(x, 0) - log1p(exp(-abs(x)))".into(),
        Activation::Relu6 => "min(max(x, 0), 6)".into(),
        Activation::Celu(al) => format!("where(x > 0, x, {al:?} * expm1(x / {al:?}))"),
        Activation::Softsign => "x / (1 + abs(x))".into(),
        Activation::Tanhshrink => "x - tanh(x)".into(),
        Activation::Formula(_) => a.formula().map_or_else(|| "x".into(), |f| f.text.clone()),
    }
}

/// `f` as a parsed formula.
pub fn expr(a: &Activation) -> Expr {
    // Every text above parses; a formula's own text parsed when it was defined.
    parse(&formula_text(a)).unwrap_or(Expr::X)
}

/// A formula as a JSON tree: `["num", 1.5]`, `["x"]`, `["neg", a]`, `["add", a, b]`
/// (also sub, mul, div, pow), `["call", "sigmoid", a...]`, `["where", "<", l, r, a, b]`.
pub fn to_json(e: &Expr) -> Value {
    let bin = |op: &str, a: &Expr, b: &Expr| json!([op, to_json(a), to_json(b)]);
    match e {
        Expr::Num(v) => json!(["num", v]),
        Expr::X => json!(["x"]),
        Expr::Neg(a) => json!(["neg", to_json(a)]),
        Expr::Add(a, b) => bin("add", a, b),
        Expr::Sub(a, b) => bin("sub", a, b),
        Expr::Mul(a, b) => bin("mul", a, b),
        Expr::Div(a, b) => bin("div", a, b),
        Expr::Pow(a, b) => bin("pow", a, b),
        Expr::Call(f, args) => {
            let mut v = vec![json!("call"), json!(f.name())];
            v.extend(args.iter().map(to_json));
            Value::Array(v)
        }
        Expr::Where(c, parts) => {
            let [l, r, a, b] = parts.as_ref();
            json!([
                "where",
                c.symbol(),
                to_json(l),
                to_json(r),
                to_json(a),
                to_json(b)
            ])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::formula::tape::Tape;

    /// The formula of every built-in computes the built-in, across both sides of every
    /// kink and into the tails.
    #[test]
    fn every_builtin_matches_its_formula() {
        let mut all: Vec<Activation> = crate::nn::activation::NAMES
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        all.extend(
            [
                "leaky_relu:0.2",
                "elu:0.5",
                "softplus:2:10",
                "hardtanh:-2:3",
                "celu:0.7",
                "softshrink:1",
            ]
            .map(|s| s.parse::<Activation>().unwrap()),
        );
        for a in all {
            let text = formula_text(&a);
            let tape = Tape::compile(&parse(&text).unwrap()).unwrap();
            for i in -120..=120 {
                let x = i as f32 / 10.0 + 0.013;
                let (want, got) = (a.value(x), tape.value(x));
                let tol = 2e-6 * (1.0 + want.abs());
                assert!(
                    (want - got).abs() <= tol,
                    "{a} at {x}: {want} vs {got} ({text})"
                );
            }
        }
    }

    #[test]
    fn trees_name_every_node() {
        let e = parse("where(x < 1, -x ^ 2, max(x, 0.5) / e)").unwrap();
        let j = to_json(&e);
        assert_eq!(j[0], "where");
        assert_eq!(j[1], "<");
        assert_eq!(j[4], json!(["neg", ["pow", ["x"], ["num", 2.0]]]));
        assert_eq!(j[5][0], "div");
        assert_eq!(j[5][1], json!(["call", "max", ["x"], ["num", 0.5]]));
    }
}
