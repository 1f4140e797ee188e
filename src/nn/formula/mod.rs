//! Activations defined by a formula of x (`--define NAME=FORMULA`): parsed once,
//! compiled to a tape evaluated a chunk at a time at engine speed, with exact
//! derivatives by forward-mode differentiation.
//!
//! A definition is held by what uses it: an activation carries its compiled formula
//! (`Activation::Formula(Arc<Formula>)`), and a configuration's names are resolved
//! against the [`Formulas`] it defines (`--define`, an experiment file's `[define]`).
//! Every stored activation list writes `NAME=FORMULA`, so records and saved models
//! carry their own definitions.

pub mod parse;
pub mod symbolic;

/// `$each!(Func::X)` in a match over the one-argument functions, so each loop is
/// compiled with its function inlined (see `tape`).
macro_rules! per_func {
    ($f:expr, $each:ident) => {
        match $f {
            Func::Exp => $each!(Func::Exp),
            Func::Log => $each!(Func::Log),
            Func::Log1p => $each!(Func::Log1p),
            Func::Expm1 => $each!(Func::Expm1),
            Func::Sqrt => $each!(Func::Sqrt),
            Func::Abs => $each!(Func::Abs),
            Func::Sin => $each!(Func::Sin),
            Func::Cos => $each!(Func::Cos),
            Func::Tanh => $each!(Func::Tanh),
            Func::Sinh => $each!(Func::Sinh),
            Func::Cosh => $each!(Func::Cosh),
            Func::Sigmoid => $each!(Func::Sigmoid),
            Func::Softplus => $each!(Func::Softplus),
            Func::Erf => $each!(Func::Erf),
            Func::Min => $each!(Func::Min),
            Func::Max => $each!(Func::Max),
        }
    };
}

pub mod tape;

use std::sync::Arc;

use parse::Expr;
use tape::Tape;

/// A function a formula may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    /// e^a.
    Exp,
    /// ln a.
    Log,
    /// ln(1 + a).
    Log1p,
    /// e^a - 1.
    Expm1,
    /// √a.
    Sqrt,
    /// |a|.
    Abs,
    /// sin a.
    Sin,
    /// cos a.
    Cos,
    /// tanh a.
    Tanh,
    /// sinh a.
    Sinh,
    /// cosh a.
    Cosh,
    /// 1 / (1 + e^-a).
    Sigmoid,
    /// ln(1 + e^a), a beyond 20 (PyTorch's threshold).
    Softplus,
    /// The error function.
    Erf,
    /// The smaller of two.
    Min,
    /// The larger of two.
    Max,
}

impl Func {
    /// Every function, in the order the help lists them.
    pub const ALL: [Func; 16] = [
        Func::Exp,
        Func::Log,
        Func::Log1p,
        Func::Expm1,
        Func::Sqrt,
        Func::Abs,
        Func::Sin,
        Func::Cos,
        Func::Tanh,
        Func::Sinh,
        Func::Cosh,
        Func::Sigmoid,
        Func::Softplus,
        Func::Erf,
        Func::Min,
        Func::Max,
    ];

    /// The name in formulas.
    pub fn name(self) -> &'static str {
        match self {
            Func::Exp => "exp",
            Func::Log => "log",
            Func::Log1p => "log1p",
            Func::Expm1 => "expm1",
            Func::Sqrt => "sqrt",
            Func::Abs => "abs",
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Tanh => "tanh",
            Func::Sinh => "sinh",
            Func::Cosh => "cosh",
            Func::Sigmoid => "sigmoid",
            Func::Softplus => "softplus",
            Func::Erf => "erf",
            Func::Min => "min",
            Func::Max => "max",
        }
    }

    /// The function with this name.
    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    /// How many arguments it takes.
    pub fn arity(self) -> usize {
        match self {
            Func::Min | Func::Max => 2,
            _ => 1,
        }
    }
}

/// Why a definition was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct FormulaError(String);

impl FormulaError {
    /// An error with this one-line message.
    pub fn new(message: String) -> FormulaError {
        FormulaError(message)
    }
}

/// A defined activation, compiled and measured once, shared by every layer using it.
#[derive(Debug)]
pub struct Formula {
    /// Its name.
    pub name: String,
    /// The formula as given.
    pub text: String,
    /// The parsed formula.
    pub expr: Expr,
    /// The compiled form the engine runs.
    pub tape: Tape,
    /// The symbolic derivative, written out.
    pub derivative: String,
    /// The measured output range over [-20, 20].
    pub range: String,
    /// Where its derivative fades or stops, measured.
    pub saturation: String,
    /// Whether f' is exactly 0 somewhere in [-20, 20], so a unit can die.
    pub can_die: bool,
    /// The largest |f'| over [-20, 20].
    pub peak: f32,
    /// Inputs in [-20, 20] where f or f' is NaN or infinite, if any.
    pub warning: Option<String>,
}

/// Inputs the checks sample: [-20, 20] in steps of 0.01 (0 and the integers included).
const SAMPLES: i32 = 2000;

impl PartialEq for Formula {
    /// The same name for the same parsed formula (spacing aside).
    fn eq(&self, other: &Formula) -> bool {
        self.name == other.name && self.expr == other.expr
    }
}

/// The formulas one configuration defines, by name (`--define`, an experiment file's
/// `[define]`); a name keeps one formula.
#[derive(Debug, Clone, Default)]
pub struct Formulas(Vec<Arc<Formula>>);

impl Formulas {
    /// Add a definition; the same definition again is kept once, another formula
    /// under a name already defined is refused.
    pub fn add(&mut self, f: Arc<Formula>) -> Result<(), FormulaError> {
        match self.get(&f.name) {
            Some(old) if old.expr == f.expr => Ok(()),
            Some(old) => Err(FormulaError(format!(
                "--define {}={}: '{}' is already defined as '{}'; give this formula another name",
                f.name, f.text, f.name, old.text
            ))),
            None => {
                self.0.push(f);
                Ok(())
            }
        }
    }

    /// The formula named `name`, if defined.
    pub fn get(&self, name: &str) -> Option<&Arc<Formula>> {
        self.0.iter().find(|f| f.name == name)
    }

    /// Names of all definitions, in the order given.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|f| f.name.as_str()).collect()
    }

    /// Every definition, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Formula>> {
        self.0.iter()
    }
}

/// A formula name: lowercase letters, digits and _, starting with a letter or _ (the
/// activation layer also refuses the names of built-ins).
fn check_name(name: &str) -> Result<(), String> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(format!(
            "'{name}' is not a valid name: use lowercase letters, digits and _, starting with a letter"
        ));
    }
    Ok(())
}

/// Parse, compile and measure `name` = `text`. Errors name the problem and, for
/// syntax, the column in `name=text`. Use [`crate::nn::activation::define`], which
/// also refuses the names of built-ins.
pub fn compile(name: &str, text: &str) -> Result<Formula, FormulaError> {
    let spec = format!("{name}={text}");
    // A refused formula may be thousands of characters: quote its start only.
    let shown = match spec.char_indices().nth(80) {
        Some((at, _)) => format!("{}...", &spec[..at]),
        None => spec.clone(),
    };
    let fail = |msg: String| FormulaError(format!("--define {shown}: {msg}"));
    check_name(name).map_err(fail)?;
    let expr = parse::parse(text).map_err(|e| {
        fail(format!(
            "{} at column {}",
            e.message,
            name.chars().count() + 1 + e.column
        ))
    })?;
    build(name, text.trim(), expr).map_err(fail)
}

/// Compile and measure a new formula.
fn build(name: &str, text: &str, expr: Expr) -> Result<Formula, String> {
    let tape = Tape::compile(&expr)?;
    let xs: Vec<f32> = (-SAMPLES..=SAMPLES).map(|i| i as f32 * 0.01).collect();
    let mut ys = vec![0.0; xs.len()];
    let mut ds = vec![0.0; xs.len()];
    tape.forward(&xs, &mut ys);
    tape.backward(&xs, &vec![1.0; xs.len()], &mut ds);
    let bad = |v: &[f32]| v.iter().position(|y| !y.is_finite());
    let warning = match (bad(&ys), bad(&ds)) {
        (Some(i), _) => Some(format!(
            "{name}={text} gives {} at x = {} (and {} of {} inputs in [-20, 20] are not finite)",
            ys[i],
            xs[i],
            ys.iter().filter(|y| !y.is_finite()).count(),
            xs.len()
        )),
        (None, Some(i)) => Some(format!(
            "{name}={text} has derivative {} at x = {}",
            ds[i], xs[i]
        )),
        (None, None) => None,
    };
    let finite = |v: &[f32]| {
        v.iter()
            .copied()
            .filter(|y| y.is_finite())
            .collect::<Vec<_>>()
    };
    let (fy, fd) = (finite(&ys), finite(&ds));
    let lo = fy.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = fy.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let peak = fd.iter().map(|d| d.abs()).fold(0.0f32, f32::max);
    let can_die = ds.contains(&0.0);
    Ok(Formula {
        name: name.to_string(),
        text: text.to_string(),
        derivative: symbolic::derivative(&expr).to_string(),
        range: if fy.is_empty() {
            "none: not finite anywhere in [-20, 20] (measured)".to_string()
        } else {
            format!("[{lo:.4}, {hi:.4}] for x in [-20, 20] (measured)")
        },
        saturation: saturation(&xs, &ds, peak, can_die),
        can_die,
        peak,
        warning,
        expr,
        tape,
    })
}

/// Where the derivative stops or fades, from the sampled f'.
fn saturation(xs: &[f32], ds: &[f32], peak: f32, can_die: bool) -> String {
    let faded = |d: f32| d.abs() < 0.19 * peak;
    let (left, right) = (faded(ds[0]), faded(ds[ds.len() - 1]));
    let mut s = match (left, right) {
        (true, true) => "f' fades below 19% of its peak on both sides".to_string(),
        (true, false) => "f' fades below 19% of its peak for very negative x".to_string(),
        (false, true) => "f' fades below 19% of its peak for large x".to_string(),
        (false, false) => "f' does not fade at either end of [-20, 20]".to_string(),
    };
    if can_die {
        let zero: Vec<f32> = xs
            .iter()
            .zip(ds)
            .filter(|(_, d)| **d == 0.0)
            .map(|(x, _)| *x)
            .collect();
        let (a, b) = (zero[0], zero[zero.len() - 1]);
        s.push_str(&format!(
            "; f' is exactly 0 for some x in [{a}, {b}] (units can die)"
        ));
    }
    s
}

#[cfg(test)]
mod tests;
