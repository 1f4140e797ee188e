//! Keyword options to a run configuration, checked key by key with the messages the
//! CLI and experiment files give: an unknown keyword gets the nearest known one.

use std::collections::BTreeMap;

use actlab::config::TrainConfig;
use actlab::experiment::table_to_config;
use actlab::nn::formula::Formulas;
use actlab::nn::spec::named_model;
use actlab::nn::Activation;
use pyo3::exceptions::PyValueError;
use pyo3::PyResult;

fn value_error(e: impl std::fmt::Display) -> pyo3::PyErr {
    PyValueError::new_err(e.to_string())
}

/// The formulas of `define={"name": "formula"}`, each checked as `--define` checks it.
pub fn formulas(define: &BTreeMap<String, String>) -> PyResult<Formulas> {
    let mut table = Formulas::default();
    for (name, text) in define {
        actlab::nn::activation::define(name, text)
            .and_then(|f| table.add(f))
            .map_err(|e| value_error(format!("define[{name:?}]: {e}")))?;
    }
    Ok(table)
}

/// An activation name (built-in, `NAME=FORMULA`, or a name of `formulas`).
pub fn activation(name: &str, formulas: &Formulas) -> PyResult<Activation> {
    Activation::parse_with(name, formulas).map_err(value_error)
}

/// A JSON object of options as a TOML table (None values dropped: they mean the default).
fn table_of(json: &str) -> PyResult<toml::Table> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(value_error)?;
    let mut table = toml::Table::new();
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        let v = toml::Value::try_from(&value)
            .map_err(|e| value_error(format!("{key}={value}: {e}")))?;
        table.insert(key, v);
    }
    Ok(table)
}

/// Check one keyword on its own, so the message names it (and, when unknown, the
/// nearest known keyword).
fn check_key(key: &str, value: &toml::Value, keys: &[String], formulas: &Formulas) -> PyResult<()> {
    if !keys.iter().any(|k| k == key) {
        let known: Vec<&str> = keys.iter().map(String::as_str).collect();
        return Err(value_error(actlab::nn::names::unknown_name(
            "keyword", key, &known,
        )));
    }
    let one = toml::Table::from_iter([(key.to_string(), value.clone())]);
    table_to_config(one, formulas)
        .map(|_| ())
        .map_err(|e| value_error(format!("{key}={value}: {e}")))
}

/// The run configuration of a JSON object of options (TrainConfig's keys), with the
/// formulas it may name; with `validate`, every rule of `TrainConfig::validate` checked
/// (a comparison's base lists several activations and is checked per variant).
pub fn config(json: &str, formulas: &Formulas, validate: bool) -> PyResult<TrainConfig> {
    let mut table = table_of(json)?;
    let model = table.remove("model");
    let explicit_conv = table.contains_key("conv");
    let keys = TrainConfig::keys();
    for (key, value) in &table {
        check_key(key, value, &keys, formulas)?;
    }
    let mut cfg = table_to_config(table, formulas).map_err(value_error)?;
    if let Some(model) = model {
        // As the CLI's --model: the named layers replace hidden; an explicit conv wins.
        let name = model.as_str().ok_or_else(|| {
            value_error(format!("model={model}: give a name, e.g. model=\"lenet5\""))
        })?;
        let (conv, hidden) = named_model(name).map_err(value_error)?;
        cfg.hidden = hidden;
        if !explicit_conv {
            cfg.conv = conv;
        }
    }
    if validate {
        cfg.validate().map_err(value_error)?;
    }
    Ok(cfg)
}

/// A JSON object of tuning lists (`{"lr": [3e-4, 1e-3]}`) as a TOML table.
pub fn tune_table(json: &str) -> PyResult<toml::Table> {
    table_of(json)
}
