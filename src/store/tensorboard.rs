//! TensorBoard event files (`--tensorboard DIR`): per run, a folder `DIR/<variant>/seed-<n>`
//! holding one `events.out.tfevents.*` file per process that wrote to it.
//!
//! The format is TFRecord framing (u64 length, masked CRC-32C of it, an `Event`
//! protobuf, masked CRC-32C of that) around TensorFlow's `Event` / `Summary` /
//! `HistogramProto` messages. The messages are encoded with `prost` from the few fields
//! written here (declared below with their TensorFlow field numbers) and checksummed
//! with the `crc32c` crate; only the framing is hand-written. The `tensorboard-rs`
//! crate was not used: its last release (2022) pins protobuf 2 and image 0.23.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::StoreError;
use crate::data::Dataset;
use crate::nn::Mlp;
use crate::train::EpochFigures;

/// `tensorflow/core/util/event.proto`: Event (the fields written here).
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow/core/framework/summary.proto`: Summary.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<Value>,
}

/// Summary.Value: a tag with a scalar or a histogram.
#[derive(Clone, PartialEq, prost::Message)]
struct Value {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(oneof = "Kind", tags = "2, 5")]
    kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "5")]
    Histo(Histogram),
}

/// `HistogramProto`: bucket i counts values in (bucket_limit[i-1], bucket_limit[i]].
#[derive(Clone, PartialEq, prost::Message)]
struct Histogram {
    #[prost(double, tag = "1")]
    min: f64,
    #[prost(double, tag = "2")]
    max: f64,
    #[prost(double, tag = "3")]
    num: f64,
    #[prost(double, tag = "4")]
    sum: f64,
    #[prost(double, tag = "5")]
    sum_squares: f64,
    #[prost(double, repeated, tag = "6")]
    bucket_limit: Vec<f64>,
    #[prost(double, repeated, tag = "7")]
    bucket: Vec<f64>,
}

/// Buckets per histogram.
const BUCKETS: usize = 30;

/// TFRecord's checksum: CRC-32C, rotated and offset so that checksums of data holding
/// checksums stay well spread.
fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord around `data`.
fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

fn histogram(values: &[f32]) -> Histogram {
    let finite = values.iter().filter(|v| v.is_finite()).map(|&v| v as f64);
    let (mut min, mut max, mut num, mut sum, mut sq) =
        (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0, 0.0);
    for v in finite.clone() {
        (min, max) = (min.min(v), max.max(v));
        (num, sum, sq) = (num + 1.0, sum + v, sq + v * v);
    }
    if num == 0.0 {
        (min, max) = (0.0, 0.0);
    }
    let width = ((max - min) / BUCKETS as f64).max(f64::MIN_POSITIVE);
    let limits: Vec<f64> = (1..=BUCKETS)
        .map(|i| {
            if i == BUCKETS {
                max
            } else {
                min + width * i as f64
            }
        })
        .collect();
    let mut bucket = vec![0.0; BUCKETS];
    for v in finite {
        let i = (((v - min) / width).ceil() as usize)
            .saturating_sub(1)
            .min(BUCKETS - 1);
        bucket[i] += 1.0;
    }
    Histogram {
        min,
        max,
        num,
        sum,
        sum_squares: sq,
        bucket_limit: limits,
        bucket,
    }
}

/// One run's event file, appended to as epochs end.
pub struct EventWriter {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    /// Gradient samples already written (the diagnostics hold them all).
    grads_written: usize,
    /// Training images whose activations are histogrammed (the diagnostics' sample).
    sample: Dataset,
}

/// The file naming, inside a run's event folder, the output folder of the run that
/// owns it.
const OWNER: &str = ".actlab-run";

/// The folder of a run's event files under `root`, the run name TensorBoard shows:
/// `<variant>/seed-<n>`, or `<variant>/seed-<n>-2`, `-3`, ... when that one belongs
/// to another run (one with another output folder `owner`), so unrelated runs never
/// replace each other's events; the run of `owner` gets its own folder back.
pub fn run_dir(
    root: &Path,
    variant_slug: &str,
    seed: u64,
    owner: &Path,
) -> Result<PathBuf, StoreError> {
    super::paths::output_dir(root, "--tensorboard")?;
    let parent = root.join(variant_slug);
    super::create_dir(&parent)?;
    let me = owner.to_string_lossy();
    for k in 1u32..=1000 {
        let dir = match k {
            1 => parent.join(format!("seed-{seed}")),
            k => parent.join(format!("seed-{seed}-{k}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                super::write_file(&dir.join(OWNER), me.as_bytes())?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let theirs = std::fs::read_to_string(dir.join(OWNER)).unwrap_or_default();
                if theirs == me && dir.is_dir() {
                    return Ok(dir);
                }
            }
            Err(source) => return Err(StoreError::Create { path: dir, source }),
        }
    }
    Err(StoreError::Refused(format!(
        "{}: 1000 runs of seed {seed} already; choose another --tensorboard folder",
        parent.display()
    )))
}

impl EventWriter {
    /// A new event file in `dir` (created if needed); `train` supplies the sample of
    /// images whose activations are histogrammed.
    fn create(dir: &Path, train: &Dataset) -> Result<Self, StoreError> {
        super::create_dir(dir)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_else(|_| "actlab".into());
        let name = format!(
            "events.out.tfevents.{}.{}.{}",
            now.as_secs(),
            host.trim(),
            std::process::id()
        );
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| StoreError::Write {
                path: path.clone(),
                source,
            })?;
        let mut w = EventWriter {
            path,
            file: std::io::BufWriter::new(file),
            grads_written: 0,
            sample: train.first(Some(crate::diagnostics::SAMPLE.min(train.len()))),
        };
        w.event(0, What::FileVersion("brain.Event:2".into()))?;
        w.flush()?;
        Ok(w)
    }

    /// The writer of a run in `dir` (from [`run_dir`], so the folder is this run's
    /// own): continuing a resumed run (whose first `resumed` gradient samples an
    /// earlier process wrote) in a new file beside the earlier ones, or, for a run
    /// started afresh, replacing the event files its own earlier attempt left (e.g.
    /// before `--overwrite`), which TensorBoard would otherwise draw over this one.
    pub fn start(dir: &Path, train: &Dataset, resumed: Option<usize>) -> Result<Self, StoreError> {
        if resumed.is_none() {
            for old in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if old
                    .file_name()
                    .to_string_lossy()
                    .starts_with("events.out.tfevents.")
                {
                    let path = old.path();
                    std::fs::remove_file(&path)
                        .map_err(|source| StoreError::Write { path, source })?;
                }
            }
        }
        let mut w = Self::create(dir, train)?;
        w.grads_written = resumed.unwrap_or(0);
        Ok(w)
    }

    fn event(&mut self, step: i64, what: What) -> Result<(), StoreError> {
        let wall_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let e = Event {
            wall_time,
            step,
            what: Some(what),
        };
        let bytes = frame(&prost::Message::encode_to_vec(&e));
        self.file
            .write_all(&bytes)
            .map_err(|source| StoreError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn values(&mut self, step: i64, value: Vec<Value>) -> Result<(), StoreError> {
        if value.is_empty() {
            return Ok(());
        }
        self.event(step, What::Summary(Summary { value }))
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.file.flush().map_err(|source| StoreError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// Write everything about the epoch that just ended: scalars at step = epoch,
    /// gradient norms at their global steps, unit shares and histograms.
    pub fn epoch(
        &mut self,
        stats: &EpochFigures,
        model: &Mlp,
        diag: Option<&crate::diagnostics::Diagnostics>,
    ) -> Result<(), StoreError> {
        let step = stats.epoch as i64;
        let mut v = vec![
            scalar("train/loss", stats.train.loss),
            scalar("train/accuracy", stats.train.acc),
            scalar("test/loss", stats.test.loss),
            scalar("test/accuracy", stats.test.acc),
            scalar("time/epoch_seconds", stats.seconds),
        ];
        if let Some(m) = stats.val {
            v.extend([scalar("val/loss", m.loss), scalar("val/accuracy", m.acc)]);
        }
        self.values(step, v)?;
        if let Some(d) = diag {
            self.diagnostics(step, d)?;
        }
        self.histograms(step, model)?;
        self.flush()
    }

    fn diagnostics(
        &mut self,
        step: i64,
        d: &crate::diagnostics::Diagnostics,
    ) -> Result<(), StoreError> {
        let from = self.grads_written.min(d.grad_norms.len());
        for (s, norms) in d.grad_steps[from..].iter().zip(&d.grad_norms[from..]) {
            let v = d
                .layers
                .iter()
                .zip(norms)
                .map(|(name, &n)| scalar(&format!("grad_norm/{name}"), n))
                .collect();
            self.values(*s as i64, v)?;
        }
        self.grads_written = d.grad_norms.len();
        let Some(e) = d.epochs.last() else {
            return Ok(());
        };
        let mut v = Vec::new();
        for (l, name) in d.layers.iter().enumerate() {
            if let Some(Some(s)) = e.saturated.get(l) {
                v.push(scalar(&format!("units/saturated/{name}"), *s));
            }
            if let Some(Some(s)) = e.dead.get(l) {
                v.push(scalar(&format!("units/dead/{name}"), *s));
            }
        }
        self.values(step, v)
    }

    fn histograms(&mut self, step: i64, model: &Mlp) -> Result<(), StoreError> {
        let offsets = model.arch.offsets();
        let mut v = Vec::new();
        for (l, &(w, b)) in offsets.iter().enumerate() {
            v.push(Value {
                tag: format!("weights/fc{}", l + 1),
                kind: Some(Kind::Histo(histogram(&model.params[w..b]))),
            });
        }
        let acts = crate::diagnostics::activations_on(model, &self.sample);
        for (l, a) in acts.iter().enumerate() {
            v.push(Value {
                tag: format!("activations/hidden{}", l + 1),
                kind: Some(Kind::Histo(histogram(a))),
            });
        }
        self.values(step, v)
    }
}

fn scalar(tag: &str, v: f64) -> Value {
    Value {
        tag: tag.to_string(),
        kind: Some(Kind::SimpleValue(v as f32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_and_frames_follow_tfrecord() {
        // CRC-32C's check value, then TFRecord's mask of it.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let masked = 0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc(b"123456789"), masked);
        let f = frame(b"abc");
        assert_eq!(f.len(), 3 + 16);
        assert_eq!(&f[..8], &3u64.to_le_bytes());
        assert_eq!(&f[12..15], b"abc");
    }

    #[test]
    fn histograms_count_every_finite_value_once() {
        let h = histogram(&[-1.0, 0.0, 0.5, 1.0, f32::NAN]);
        assert_eq!((h.min, h.max, h.num), (-1.0, 1.0, 4.0));
        assert_eq!(h.bucket.iter().sum::<f64>(), 4.0);
        assert_eq!(h.bucket_limit.len(), BUCKETS);
        assert_eq!(h.bucket[0], 1.0, "the minimum falls in the first bucket");
        assert_eq!(*h.bucket.last().unwrap(), 1.0);
        let flat = histogram(&[2.0; 5]);
        assert_eq!(flat.bucket.iter().sum::<f64>(), 5.0);
    }
}
