use super::*;

/// The formulas of PyTorch's second fixture set, and references written in f64.
/// A name, its formula, and the formula written in f64.
type Case = (&'static str, &'static str, fn(f64) -> f64);

fn cases() -> Vec<Case> {
    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }
    vec![
        ("t_quick_gelu", "x * sigmoid(1.702 * x)", |x| {
            x * sig(1.702 * x)
        }),
        ("t_squareplus", "(x + sqrt(x^2 + 4)) / 2", |x| {
            (x + (x * x + 4.0).sqrt()) / 2.0
        }),
        ("t_mish", "x * tanh(softplus(x))", |x| {
            x * (x.exp().ln_1p()).tanh()
        }),
        ("t_leaky", "max(x, 0.1 * x)", |x| x.max(0.1 * x)),
        ("t_softsign", "x / (1 + abs(x))", |x| x / (1.0 + x.abs())),
        ("t_sine", "sin(x)", f64::sin),
        (
            "t_mix",
            "where(x > 0, x^3 - e, cosh(x) * erf(x) - log1p(x^2)) / pi",
            |x| {
                let v = if x > 0.0 {
                    x.powi(3) - std::f64::consts::E
                } else {
                    x.cosh() * erf64(x) - (x * x).ln_1p()
                };
                v / std::f64::consts::PI
            },
        ),
        (
            "t_pow",
            "2^-x + expm1(-x^2) - sinh(x) / (3 + exp(x))",
            |x| 2f64.powf(-x) + (-(x * x)).exp_m1() - x.sinh() / (3.0 + x.exp()),
        ),
    ]
}

fn erf64(x: f64) -> f64 {
    // Abramowitz-Stegun 7.1.26 is only 1e-7 accurate; sum the Taylor series instead.
    let mut term = x;
    let mut sum = x;
    for n in 1..60 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * std::f64::consts::FRAC_2_SQRT_PI
}

fn inputs() -> Vec<f32> {
    (-300..=300).map(|i| i as f32 * 0.0137 + 0.003).collect()
}

#[test]
fn values_match_f64_references() {
    for (name, text, reference) in cases() {
        let tape = &compile(name, text).unwrap().tape;
        for x in inputs() {
            let (got, want) = (tape.value(x) as f64, reference(x as f64));
            assert!(
                (got - want).abs() <= 2e-6 * (1.0 + want.abs()),
                "{text} at {x}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn derivatives_match_symbolic_ones_and_finite_differences() {
    for (name, text, reference) in cases() {
        let f = compile(name, text).unwrap();
        let symbolic = Tape::compile(&symbolic::derivative(&f.expr)).unwrap();
        for x in inputs() {
            let dual = f.tape.derivative(x) as f64;
            let sym = symbolic.value(x) as f64;
            let h = 1e-4;
            let numeric = (reference(x as f64 + h) - reference(x as f64 - h)) / (2.0 * h);
            let tol = 1e-5 * (1.0 + numeric.abs());
            assert!(
                (dual - sym).abs() <= tol,
                "{text} at {x}: dual {dual} vs symbolic {sym}"
            );
            assert!(
                (dual - numeric).abs() <= tol,
                "{text} at {x}: dual {dual} vs numeric {numeric}"
            );
        }
    }
}

#[test]
fn whole_buffers_equal_one_value_at_a_time() {
    let f = compile("t_buffers", "x * sigmoid(x) + where(x < 1, x^2, 1)").unwrap();
    // 200 elements: three full chunks and a partial one.
    let z: Vec<f32> = (0..200).map(|i| (i as f32 - 100.0) * 0.05).collect();
    let da: Vec<f32> = (0..200).map(|i| 1.0 + i as f32 * 0.01).collect();
    let (mut a, mut dz) = (vec![0.0; 200], vec![0.0; 200]);
    f.tape.forward(&z, &mut a);
    f.tape.backward(&z, &da, &mut dz);
    for i in 0..200 {
        assert_eq!(a[i], f.tape.value(z[i]));
        assert_eq!(dz[i], da[i] * f.tape.derivative(z[i]));
    }
}

#[test]
fn max_splits_its_gradient_on_ties_as_pytorch_does() {
    let f = compile("t_tie", "max(x, 0.1 * x)").unwrap();
    assert_eq!(f.tape.derivative(0.0), 0.55);
    assert_eq!(f.tape.derivative(-1.0), 0.1);
    assert_eq!(f.tape.derivative(2.0), 1.0);
    assert!(f.can_die.eq(&false));
    let relu = compile("t_relu_like", "where(x > 0, x, 0)").unwrap();
    assert!(relu.can_die);
    assert!(
        relu.saturation.contains("units can die"),
        "{}",
        relu.saturation
    );
}

#[test]
fn definitions_are_checked_with_one_clear_line() {
    let err = |name: &str, text: &str| compile(name, text).unwrap_err().to_string();
    assert_eq!(
        err("quick_gelu_bad", "x * sigmoid(1.702 *)"),
        "--define quick_gelu_bad=x * sigmoid(1.702 *): expected a number, x, or '(' at column 35"
    );
    let builtin = |name: &str| {
        crate::nn::activation::define(name, "x")
            .unwrap_err()
            .to_string()
    };
    assert!(builtin("relu").contains("built-in"));
    assert!(builtin("swish").contains("built-in"));
    assert!(err("Big", "x").contains("not a valid name"));
    assert!(err("t_typo", "x * sigmod(x)").contains("did you mean 'sigmoid'"));
    assert!(err("t_var", "x * y").contains("unknown variable 'y'"));
    assert!(crate::nn::activation::define_spec("no_equals_sign").is_err());
    // A name keeps one formula; the same formula again is the same activation.
    let mut table = Formulas::default();
    let once = |text: &str| Arc::new(compile("t_once", text).unwrap());
    table.add(once("x * sigmoid(x)")).unwrap();
    table.add(once(" x*sigmoid( x ) ")).unwrap();
    assert_eq!(table.names(), ["t_once"]);
    let again = table.add(once("x * tanh(x)")).unwrap_err().to_string();
    assert!(again.contains("already defined"), "{again}");
    assert_eq!(
        table.get("t_once").map(|f| f.text.as_str()),
        Some("x * sigmoid(x)")
    );
}

#[test]
fn formulas_with_non_finite_values_are_flagged_with_an_input() {
    let f = compile("t_log", "log(x)").unwrap();
    let w = f.warning.as_deref().unwrap_or_default();
    assert!(w.contains("NaN at x = -20"), "{w}");
    let g = compile("t_inv", "1 / x").unwrap();
    assert!(
        g.warning
            .as_deref()
            .unwrap_or_default()
            .contains("inf at x = 0"),
        "{:?}",
        g.warning
    );
    assert!(compile("t_fine", "x / (1 + abs(x))")
        .unwrap()
        .warning
        .is_none());
}

#[test]
fn a_formula_nan_everywhere_has_no_range_and_deep_ones_build() {
    let f = compile("t_nowhere", "log(-1 - x^2)").unwrap();
    assert!(f.range.starts_with("none"), "{}", f.range);
    assert!(!f.range.contains("inf"), "{}", f.range);
    // A formula at the depth limit compiles, differentiates and prints on a test
    // thread's stack.
    let deep = format!("{}x{}", "sin(".repeat(190), ")".repeat(190));
    let f = compile("t_deep", &deep).unwrap();
    assert!(f.derivative.len() > deep.len());
}

#[test]
fn max_and_min_keep_the_first_side_when_the_other_is_nan() {
    // The rule demo.html's script follows too (assets/demo.js `ev`).
    let f = compile("t_maxlog", "max(x, log(x))").unwrap();
    let xs = [-2.0f32, -0.5, 0.5, 3.0];
    let mut ys = [0.0; 4];
    f.tape.forward(&xs, &mut ys);
    assert_eq!(ys[..2], [-2.0, -0.5], "log(x) is NaN there: x is kept");
    assert_eq!(ys[2..], [0.5, 3.0]);
    let g = compile("t_minnan", "min(log(-1), x)").unwrap();
    g.tape.forward(&xs, &mut ys);
    assert!(ys.iter().all(|y| y.is_nan()), "a NaN first side stays NaN");
}
