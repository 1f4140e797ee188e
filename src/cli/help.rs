//! Help text generated from the registries (activations, output functions, losses,
//! initialisations), so it lists exactly what the parsers accept; value parsers for
//! numbers with messages that say what was wrong; clap's errors as one line.

use std::sync::Arc;

use crate::nn::formula::Formula;
use crate::nn::{activation, init, loss, output};

/// `--activation`'s help: every built-in with its parameters, and formulas.
pub fn activation() -> String {
    let names: Vec<String> = activation::NAMES
        .iter()
        .map(|n| activation::syntax(n))
        .collect();
    format!(
        "Hidden activation, one for all layers or one per layer (comma-separated): {}; \
         or a name defined with --define",
        names.join(", ")
    )
}

/// `--output`'s help.
pub fn output() -> String {
    format!(
        "Output function on the logits: {}",
        output::NAMES.join(", ")
    )
}

/// `--loss`'s help.
pub fn loss() -> String {
    format!(
        "Loss: {} (mse and bce against the one-hot label)",
        loss::NAMES.join(", ")
    )
}

/// `--init`'s help.
pub fn init() -> String {
    format!(
        "Initialisation: {} (torch: U(+-1/sqrt(fan_in)), PyTorch's default)",
        init::NAMES.join(", ")
    )
}

/// `--define`'s help: the syntax and every function a formula may call.
pub fn define() -> String {
    let funcs: Vec<&str> = crate::nn::formula::Func::ALL
        .iter()
        .map(|f| f.name())
        .collect();
    format!(
        "Define an activation by a formula of x, usable wherever this command takes an \
         activation name (repeatable), e.g. --define 'quick_gelu=x * sigmoid(1.702 * x)'. \
         Syntax: + - * / ^, where(x > 0, a, b), {}, constants pi e",
        funcs.join(" ")
    )
}

/// `--data-dir`'s help: where data is looked for, in order.
pub const DATA_DIR: &str = "Folder with the four IDX files (or with an mnist/ or \
    fashion-mnist/ subfolder). Default, first found: $ACTLAB_DATA_DIR, the cache \
    ~/.cache/actlab/<dataset>, the copy bundled with the source (data/<dataset>), \
    /usr/share/datasets/<dataset>, then a verified download into the cache";

/// A `--define NAME=FORMULA`, compiled (refusing the names of built-ins).
pub fn define_value(spec: &str) -> Result<Arc<Formula>, String> {
    activation::define_spec(spec).map_err(|e| e.to_string())
}

/// A whole number of 0 or more, saying so when it is negative or not a number.
pub fn whole(s: &str) -> Result<usize, String> {
    whole_u64(s).and_then(|n| usize::try_from(n).map_err(|_| format!("'{s}' is too large")))
}

/// As [`whole`], for 64-bit values (seeds, megabytes).
pub fn whole_u64(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    if t.parse::<f64>().is_ok_and(|v| v < 0.0) {
        return Err(format!("'{s}' is negative: expected a whole number"));
    }
    Err(format!("'{s}' is not a whole number"))
}

/// clap's error as one line: the problem, the valid values and the suggestion, without
/// the usage block (help and version requests print and exit as usual).
pub fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        let line = line.trim_start_matches("error: ");
        match parts.last_mut() {
            Some(last) if line.starts_with('[') => {
                last.push(' ');
                last.push_str(line);
            }
            _ => parts.push(line.to_string()),
        }
    }
    let body = if parts.is_empty() {
        "invalid arguments".to_string()
    } else {
        parts.join("; ")
    };
    format!("{body} (see actlab --help)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_registered_name() {
        let act = activation();
        for n in activation::NAMES {
            assert!(act.contains(n), "{n} missing from {act}");
        }
        assert!(act.contains("softplus[:beta[:threshold]]"), "{act}");
        assert!(output::NAMES.iter().all(|n| output().contains(n)));
        assert!(loss::NAMES.iter().all(|n| loss().contains(n)));
        assert!(init::NAMES.iter().all(|n| init().contains(n)));
        assert!(define().contains("softplus erf min max"));
    }

    #[test]
    fn numbers_say_what_is_wrong() {
        assert_eq!(whole("12"), Ok(12));
        assert!(whole("-1").unwrap_err().contains("is negative"));
        assert!(whole("1.5").unwrap_err().contains("not a whole number"));
        assert!(whole("x").unwrap_err().contains("not a whole number"));
    }
}
