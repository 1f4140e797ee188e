//! TensorBoard's HParams dashboard: per run a `session_start_info` (the run's options)
//! and a `session_end_info` (its status), and for the log folder an `experiment` (the
//! options and the final metrics to tabulate). Each is a summary value tagged
//! `_hparams_/...` with plugin name "hparams" and an `HParamsPluginData` message as
//! content, as `tensorboard/plugins/hparams/summary_v2.py` writes them (messages from
//! `plugin_data.proto` and `api.proto`, fields declared below with their numbers).

use std::collections::BTreeMap;
use std::path::Path;

use super::{frame, Event, Kind, Summary, Value, What};
use crate::config::TrainConfig;
use crate::store::StoreError;

/// `HParamsPluginData`.
#[derive(Clone, PartialEq, prost::Message)]
struct PluginData {
    #[prost(int32, tag = "1")]
    version: i32,
    #[prost(oneof = "Data", tags = "2, 3, 4")]
    data: Option<Data>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Data {
    #[prost(message, tag = "2")]
    Experiment(Experiment),
    #[prost(message, tag = "3")]
    SessionStart(SessionStartInfo),
    #[prost(message, tag = "4")]
    SessionEnd(SessionEndInfo),
}

/// `SessionStartInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionStartInfo {
    #[prost(btree_map = "string, message", tag = "1")]
    hparams: BTreeMap<String, PbValue>,
    #[prost(string, tag = "4")]
    group_name: String,
    #[prost(double, tag = "5")]
    start_time_secs: f64,
}

/// `SessionEndInfo`; status 1 is STATUS_SUCCESS, 2 STATUS_FAILURE.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionEndInfo {
    #[prost(int32, tag = "1")]
    status: i32,
    #[prost(double, tag = "2")]
    end_time_secs: f64,
}

/// `Experiment`.
#[derive(Clone, PartialEq, prost::Message)]
struct Experiment {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(message, repeated, tag = "4")]
    hparam_infos: Vec<HParamInfo>,
    #[prost(message, repeated, tag = "5")]
    metric_infos: Vec<MetricInfo>,
    #[prost(string, tag = "6")]
    name: String,
}

/// `HParamInfo`; type 1 is DATA_TYPE_STRING, 2 BOOL, 3 FLOAT64.
#[derive(Clone, PartialEq, prost::Message)]
struct HParamInfo {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, tag = "4")]
    r#type: i32,
}

/// `MetricInfo`; dataset type 1 is training, 2 validation.
#[derive(Clone, PartialEq, prost::Message)]
struct MetricInfo {
    #[prost(message, optional, tag = "1")]
    name: Option<MetricName>,
    #[prost(string, tag = "3")]
    display_name: String,
    #[prost(int32, tag = "5")]
    dataset_type: i32,
}

/// `MetricName`: a scalar tag in the session's own run (empty group).
#[derive(Clone, PartialEq, prost::Message)]
struct MetricName {
    #[prost(string, tag = "1")]
    group: String,
    #[prost(string, tag = "2")]
    tag: String,
}

/// `google.protobuf.Value` (the kinds written here).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct PbValue {
    #[prost(oneof = "PbKind", tags = "2, 3, 4")]
    kind: Option<PbKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum PbKind {
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    Text(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
}

/// `SummaryMetadata` with its `PluginData` (plugin name and content).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginDataField>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PluginDataField {
    #[prost(string, tag = "1")]
    plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    content: Vec<u8>,
}

/// `TensorProto`: the empty float vector the hparams summaries carry as their value.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct TensorProto {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    tensor_shape: Option<TensorShape>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorShape {
    #[prost(message, repeated, tag = "2")]
    dim: Vec<Dim>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Dim {
    #[prost(int64, tag = "1")]
    size: i64,
}

/// The final metrics the dashboard tabulates: (tag, shown as, dataset type).
const METRICS: [(&str, &str, i32); 6] = [
    ("val/accuracy", "val accuracy", 2),
    ("val/loss", "val loss", 2),
    ("test/accuracy", "test accuracy", 0),
    ("test/loss", "test loss", 0),
    ("train/accuracy", "train accuracy (running)", 1),
    ("train/loss", "train loss (running)", 1),
];

/// The file in the log folder holding the experiment (a fixed name: every run writes
/// the same bytes, and a rerun replaces it). TensorBoard reads any file whose name
/// holds "tfevents"; this one is not an `events.*` file of a run's own.
pub const EXPERIMENT_FILE: &str = "actlab-hparams.tfevents";

/// A summary value `_hparams_/<what>` holding `data`.
fn value(what: &str, data: Data) -> Value {
    let content = prost::Message::encode_to_vec(&PluginData {
        version: 0,
        data: Some(data),
    });
    Value {
        tag: format!("_hparams_/{what}"),
        kind: Some(Kind::Tensor(TensorProto {
            dtype: 1,
            tensor_shape: Some(TensorShape {
                dim: vec![Dim { size: 0 }],
            }),
        })),
        metadata: Some(SummaryMetadata {
            plugin_data: Some(PluginDataField {
                plugin_name: "hparams".into(),
                content,
            }),
        }),
    }
}

/// A run's options as hparams: the variant, and every setting of its config (lists
/// such as the hidden sizes as text "128,64"; unset options left out).
fn hparams(cfg: &TrainConfig, variant: &str) -> BTreeMap<String, PbValue> {
    let mut out = BTreeMap::new();
    out.insert("variant".to_string(), text(variant));
    // Through JSON text, so an f32 option reads as written (0.001, not 0.0010000000475).
    let json = serde_json::to_string(cfg).unwrap_or_default();
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&json) else {
        return out;
    };
    for (k, v) in map {
        let kind = match v {
            serde_json::Value::Number(n) => n.as_f64().map(PbKind::Number),
            serde_json::Value::Bool(b) => Some(PbKind::Bool(b)),
            serde_json::Value::String(s) => Some(PbKind::Text(s)),
            serde_json::Value::Array(a) => Some(PbKind::Text(
                a.iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(","),
            )),
            _ => None,
        };
        if let Some(kind) = kind {
            out.insert(k, PbValue { kind: Some(kind) });
        }
    }
    out
}

fn text(s: &str) -> PbValue {
    PbValue {
        kind: Some(PbKind::Text(s.to_string())),
    }
}

/// The session-start value of a run of `cfg` named `group` (its run folder).
pub(super) fn session_start(cfg: &TrainConfig, variant: &str, group: &str, now: f64) -> Value {
    value(
        "session_start_info",
        Data::SessionStart(SessionStartInfo {
            hparams: hparams(cfg, variant),
            group_name: group.to_string(),
            start_time_secs: now,
        }),
    )
}

/// The session-end value: success, or failure for a diverged run.
pub(super) fn session_end(diverged: bool, now: f64) -> Value {
    value(
        "session_end_info",
        Data::SessionEnd(SessionEndInfo {
            status: if diverged { 2 } else { 1 },
            end_time_secs: now,
        }),
    )
}

/// Write the experiment (the hparams of `cfg`'s runs and the metrics) into `root`.
pub(super) fn write_experiment(root: &Path, cfg: &TrainConfig) -> Result<(), StoreError> {
    let hparam_infos = hparams(cfg, "")
        .into_iter()
        .map(|(name, v)| HParamInfo {
            name,
            r#type: match v.kind {
                Some(PbKind::Bool(_)) => 2,
                Some(PbKind::Number(_)) => 3,
                _ => 1,
            },
        })
        .collect();
    let metric_infos = METRICS
        .iter()
        .map(|(tag, shown, kind)| MetricInfo {
            name: Some(MetricName {
                group: String::new(),
                tag: tag.to_string(),
            }),
            display_name: shown.to_string(),
            dataset_type: *kind,
        })
        .collect();
    let experiment = value(
        "experiment",
        Data::Experiment(Experiment {
            description: "actlab runs: options and final metrics".into(),
            hparam_infos,
            metric_infos,
            name: String::new(),
        }),
    );
    write_fixed(&root.join(EXPERIMENT_FILE), experiment)
}

/// The file in a run's folder holding its session start: named to sort before the
/// run's own `events.out.tfevents.*` files, so TensorBoard reads it first, and
/// rewritten when a run starts again (with the options it now runs under).
pub const SESSION_FILE: &str = "actlab-session.tfevents";

/// Write a whole event file holding `value` at `path`. Runs write these in parallel:
/// each through a temporary file of its own, renamed into place, so no reader sees
/// half a file.
pub(super) fn write_fixed(path: &Path, value: Value) -> Result<(), StoreError> {
    let mut bytes = Vec::new();
    for what in [
        What::FileVersion("brain.Event:2".into()),
        What::Summary(Summary { value: vec![value] }),
    ] {
        let e = Event {
            wall_time: 0.0,
            step: 0,
            what: Some(what),
        };
        bytes.extend(frame(&prost::Message::encode_to_vec(&e)));
    }
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.{n}", std::process::id()));
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            StoreError::Write {
                path: path.to_path_buf(),
                source,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_typed_hparams() {
        let h = hparams(&TrainConfig::default(), "relu");
        assert_eq!(h["variant"], text("relu"));
        assert_eq!(h["hidden"], text("128,64"));
        assert_eq!(h["lr"].kind, Some(PbKind::Number(0.001)));
        assert!(matches!(h["shuffle"].kind, Some(PbKind::Bool(true))));
    }
}
