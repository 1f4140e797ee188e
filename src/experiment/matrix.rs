//! An experiment file's `[matrix]`: lists of values whose every combination is a
//! variant, e.g. `depth = [2, 4, 8, 16]`, `activation = ["sigmoid", "relu"]`, minus
//! the combinations an `exclude` entry names, each named by a `name` template.
//!
//! The first key written varies slowest (like nested loops in the order written), so
//! a matrix lists its variants in the order a hand-written file would.

use toml::Value;

/// One key of the matrix: its values and where the key was written.
pub struct Axis {
    /// The config key (or `depth`).
    pub key: String,
    /// The values it takes, in the order written.
    pub values: Vec<Value>,
}

/// One combination: the value of each axis, in the axes' order.
pub type Point = Vec<(String, Value)>;

/// The keys of the matrix table that are not axes.
pub const NAME: &str = "name";
/// Combinations to leave out: a list of tables, each value a value or a list of values.
pub const EXCLUDE: &str = "exclude";
/// `depth = N`: N hidden layers as wide as the first of the base's `hidden`.
pub const DEPTH: &str = "depth";

/// Every combination of `axes`, first axis slowest, without the excluded ones.
pub fn points(axes: &[Axis], exclude: &[toml::Table]) -> Vec<Point> {
    let mut out: Vec<Point> = vec![Vec::new()];
    for axis in axes {
        out = out
            .into_iter()
            .flat_map(|p| {
                axis.values.iter().map(move |v| {
                    let mut p = p.clone();
                    p.push((axis.key.clone(), v.clone()));
                    p
                })
            })
            .collect();
    }
    out.retain(|p| !exclude.iter().any(|e| matches(p, e)));
    out
}

/// Whether point `p` has, for every key of exclude entry `e`, one of its values.
fn matches(p: &Point, e: &toml::Table) -> bool {
    e.iter().all(|(k, want)| {
        let Some((_, have)) = p.iter().find(|(key, _)| key == k) else {
            return false;
        };
        match want {
            Value::Array(list) => list.contains(have),
            one => one == have,
        }
    })
}

/// A value as it reads in a name: text without quotes, lists joined by commas.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(show).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// The name of point `p`: `template` with each `{key}` replaced by its value, or
/// the values joined by spaces when there is no template. `Err` names an unknown key.
pub fn name(template: Option<&str>, p: &Point) -> Result<String, String> {
    let Some(t) = template else {
        return Ok(p.iter().map(|(_, v)| show(v)).collect::<Vec<_>>().join(" "));
    };
    let mut out = String::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("name = \"{t}\": a '{{' without '}}'"));
        };
        let key = &rest[open + 1..open + close];
        let (_, v) = p.iter().find(|(k, _)| k == key).ok_or_else(|| {
            let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
            format!(
                "name = \"{t}\": {{{key}}} is not a key of the matrix; use one of {{{}}}",
                keys.join("}, {")
            )
        })?;
        out.push_str(&show(v));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The plain config table of point `p` over `base`; `depth` becomes `hidden`.
pub fn table(base: &toml::Table, p: &Point) -> Result<toml::Table, String> {
    let mut t = base.clone();
    for (k, v) in p {
        if k == DEPTH {
            let n = v.as_integer().filter(|&n| n > 0).ok_or_else(|| {
                format!("{v} is not a depth; a depth is a whole number of at least 1")
            })?;
            let width = match base.get("hidden").and_then(Value::as_array) {
                Some(h) => h.first().cloned().unwrap_or(Value::Integer(128)),
                None => Value::Integer(128),
            };
            let layers = vec![width; n as usize];
            t.insert("hidden".into(), Value::Array(layers));
        } else {
            t.insert(k.clone(), v.clone());
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(key: &str, values: &[Value]) -> Axis {
        Axis {
            key: key.into(),
            values: values.to_vec(),
        }
    }

    #[test]
    fn first_axis_is_slowest_and_excludes_take_lists() {
        let s = |x: &str| Value::String(x.into());
        let axes = [
            axis("depth", &[Value::Integer(2), Value::Integer(4)]),
            axis("activation", &[s("relu"), s("tanh")]),
            axis("init", &[s("torch"), s("he")]),
        ];
        let ex: toml::Table = toml::from_str("activation = \"tanh\"\ninit = [\"he\"]").unwrap();
        let names: Vec<String> = points(&axes, &[ex])
            .iter()
            .map(|p| name(Some("{activation} {init} x{depth}"), p).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "relu torch x2",
                "relu he x2",
                "tanh torch x2",
                "relu torch x4",
                "relu he x4",
                "tanh torch x4"
            ]
        );
        let e = name(Some("{act}"), &points(&axes, &[])[0]).unwrap_err();
        assert!(e.contains("{act} is not a key of the matrix"), "{e}");
    }

    #[test]
    fn depth_repeats_the_base_width() {
        let base: toml::Table = toml::from_str("hidden = [64]").unwrap();
        let t = table(&base, &vec![("depth".into(), Value::Integer(3))]).unwrap();
        assert_eq!(t["hidden"].to_string(), "[64, 64, 64]");
        let e = table(&base, &vec![("depth".into(), Value::Integer(0))]).unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
    }
}
