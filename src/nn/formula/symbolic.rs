//! Symbolic derivatives of formulas, and formulas written back as text: what
//! `actlab activations NAME` shows, and an independent check of the tape's
//! forward-mode derivatives.

use std::fmt;

use super::parse::{Cmp, Expr};
use super::Func;

fn num(v: f64) -> Expr {
    Expr::Num(v)
}

fn is(e: &Expr, v: f64) -> bool {
    matches!(e, Expr::Num(n) if *n == v)
}

fn neg(a: Expr) -> Expr {
    match a {
        Expr::Num(v) => num(-v),
        Expr::Neg(inner) => *inner,
        a => Expr::Neg(Box::new(a)),
    }
}

fn add(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (Expr::Num(x), Expr::Num(y)) => num(x + y),
        (a, b) if is(&a, 0.0) => b,
        (a, b) if is(&b, 0.0) => a,
        (a, Expr::Neg(b)) => Expr::Sub(Box::new(a), b),
        (a, b) => Expr::Add(Box::new(a), Box::new(b)),
    }
}

fn sub(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (Expr::Num(x), Expr::Num(y)) => num(x - y),
        (a, b) if is(&b, 0.0) => a,
        (a, b) if is(&a, 0.0) => neg(b),
        (a, b) => Expr::Sub(Box::new(a), Box::new(b)),
    }
}

fn mul(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (Expr::Num(x), Expr::Num(y)) => num(x * y),
        (a, b) if is(&a, 0.0) || is(&b, 0.0) => num(0.0),
        (a, b) if is(&a, 1.0) => b,
        (a, b) if is(&b, 1.0) => a,
        (a, b) if is(&a, -1.0) => neg(b),
        (a, b) if is(&b, -1.0) => neg(a),
        // Constants first: "2 * x", not "x * 2".
        (a, Expr::Num(y)) => Expr::Mul(Box::new(num(y)), Box::new(a)),
        (a, b) => Expr::Mul(Box::new(a), Box::new(b)),
    }
}

fn div(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (a, _) if is(&a, 0.0) => num(0.0),
        (a, b) if is(&b, 1.0) => a,
        (a, b) => Expr::Div(Box::new(a), Box::new(b)),
    }
}

fn pow(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (_, b) if is(&b, 0.0) => num(1.0),
        (a, b) if is(&b, 1.0) => a,
        (a, b) => Expr::Pow(Box::new(a), Box::new(b)),
    }
}

fn call(f: Func, a: Expr) -> Expr {
    Expr::Call(f, vec![a])
}

fn has_x(e: &Expr) -> bool {
    match e {
        Expr::Num(_) => false,
        Expr::X => true,
        Expr::Neg(a) => has_x(a),
        Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Mul(a, b) | Expr::Div(a, b) | Expr::Pow(a, b) => {
            has_x(a) || has_x(b)
        }
        Expr::Call(_, args) => args.iter().any(has_x),
        Expr::Where(_, p) => p.iter().any(has_x),
    }
}

/// f'(a) for a one-argument function, as a formula of a.
fn outer(f: Func, a: &Expr) -> Expr {
    let a1 = || a.clone();
    match f {
        Func::Exp | Func::Expm1 => call(Func::Exp, a1()),
        Func::Log => div(num(1.0), a1()),
        Func::Log1p => div(num(1.0), add(num(1.0), a1())),
        Func::Sqrt => div(num(1.0), mul(num(2.0), call(Func::Sqrt, a1()))),
        Func::Abs => Expr::Where(
            Cmp::Gt,
            Box::new([
                a1(),
                num(0.0),
                num(1.0),
                Expr::Where(Cmp::Lt, Box::new([a1(), num(0.0), num(-1.0), num(0.0)])),
            ]),
        ),
        Func::Sin => call(Func::Cos, a1()),
        Func::Cos => neg(call(Func::Sin, a1())),
        Func::Tanh => sub(num(1.0), pow(call(Func::Tanh, a1()), num(2.0))),
        Func::Sinh => call(Func::Cosh, a1()),
        Func::Cosh => call(Func::Sinh, a1()),
        Func::Sigmoid => mul(
            call(Func::Sigmoid, a1()),
            sub(num(1.0), call(Func::Sigmoid, a1())),
        ),
        Func::Softplus => call(Func::Sigmoid, a1()),
        Func::Erf => mul(
            num(std::f64::consts::FRAC_2_SQRT_PI),
            call(Func::Exp, neg(pow(a1(), num(2.0)))),
        ),
        Func::Min | Func::Max => num(1.0),
    }
}

/// d e / dx, simplified a little (no 0 * a, 1 * a, a + 0).
pub fn derivative(e: &Expr) -> Expr {
    match e {
        Expr::Num(_) => num(0.0),
        Expr::X => num(1.0),
        Expr::Neg(a) => neg(derivative(a)),
        Expr::Add(a, b) => add(derivative(a), derivative(b)),
        Expr::Sub(a, b) => sub(derivative(a), derivative(b)),
        Expr::Mul(a, b) => add(
            mul(derivative(a), (**b).clone()),
            mul((**a).clone(), derivative(b)),
        ),
        Expr::Div(a, b) if !has_x(b) => div(derivative(a), (**b).clone()),
        Expr::Div(a, b) => div(
            sub(
                mul(derivative(a), (**b).clone()),
                mul((**a).clone(), derivative(b)),
            ),
            pow((**b).clone(), num(2.0)),
        ),
        Expr::Pow(a, b) if !has_x(b) => mul(
            mul(
                (**b).clone(),
                pow((**a).clone(), sub((**b).clone(), num(1.0))),
            ),
            derivative(a),
        ),
        Expr::Pow(a, b) => mul(
            e.clone(),
            add(
                mul(derivative(b), call(Func::Log, (**a).clone())),
                div(mul((**b).clone(), derivative(a)), (**a).clone()),
            ),
        ),
        Expr::Call(f @ (Func::Min | Func::Max), args) => {
            let cmp = if *f == Func::Min { Cmp::Le } else { Cmp::Ge };
            let parts = [
                args[0].clone(),
                args[1].clone(),
                derivative(&args[0]),
                derivative(&args[1]),
            ];
            Expr::Where(cmp, Box::new(parts))
        }
        Expr::Call(f, args) => mul(outer(*f, &args[0]), derivative(&args[0])),
        Expr::Where(c, p) => Expr::Where(
            *c,
            Box::new([
                p[0].clone(),
                p[1].clone(),
                derivative(&p[2]),
                derivative(&p[3]),
            ]),
        ),
    }
}

/// Binding strength when written: sums 1, products 2, negation 3, powers 4, atoms 5.
fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::Add(..) | Expr::Sub(..) => 1,
        Expr::Mul(..) | Expr::Div(..) => 2,
        Expr::Neg(_) => 3,
        Expr::Num(v) if *v < 0.0 => 3,
        Expr::Pow(..) => 4,
        _ => 5,
    }
}

struct Paren<'a>(&'a Expr, u8);

impl fmt::Display for Paren<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if precedence(self.0) < self.1 {
            write!(f, "({})", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Num(v) if *v == std::f64::consts::PI => f.write_str("pi"),
            Expr::Num(v) if *v == std::f64::consts::E => f.write_str("e"),
            Expr::Num(v) => write!(f, "{}", *v as f32),
            Expr::X => f.write_str("x"),
            Expr::Neg(a) => write!(f, "-{}", Paren(a, 3)),
            Expr::Add(a, b) => write!(f, "{} + {}", Paren(a, 1), Paren(b, 1)),
            Expr::Sub(a, b) => write!(f, "{} - {}", Paren(a, 1), Paren(b, 2)),
            Expr::Mul(a, b) => write!(f, "{} * {}", Paren(a, 2), Paren(b, 2)),
            Expr::Div(a, b) => write!(f, "{} / {}", Paren(a, 2), Paren(b, 3)),
            Expr::Pow(a, b) => write!(f, "{}^{}", Paren(a, 5), Paren(b, 3)),
            Expr::Call(func, args) => {
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                write!(f, "{}({})", func.name(), args.join(", "))
            }
            Expr::Where(c, p) => write!(
                f,
                "where({} {} {}, {}, {})",
                p[0],
                c.symbol(),
                p[1],
                p[2],
                p[3]
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;

    fn d(text: &str) -> String {
        derivative(&parse(text).unwrap()).to_string()
    }

    #[test]
    fn derivatives_read_as_a_person_would_write_them() {
        assert_eq!(d("x^2"), "2 * x");
        assert_eq!(d("3 * x + 1"), "3");
        assert_eq!(d("sin(x)"), "cos(x)");
        assert_eq!(
            d("x * sigmoid(x)"),
            "sigmoid(x) + x * sigmoid(x) * (1 - sigmoid(x))"
        );
        assert_eq!(d("max(x, 0.1 * x)"), "where(x >= 0.1 * x, 1, 0.1)");
    }

    #[test]
    fn written_text_parses_back_to_the_same_formula() {
        for text in [
            "-x^2",
            "(x + sqrt(x^2 + 4)) / 2",
            "x / (1 + abs(x))",
            "2^-x",
            "x - (1 - x)",
            "x / (2 * x)",
            "(-x)^2",
            "where(x > 0, x, 0.01 * x)",
            "e^x * pi",
        ] {
            let e = parse(text).unwrap();
            assert_eq!(parse(&e.to_string()).unwrap(), e, "{text} -> {e}");
        }
    }
}
