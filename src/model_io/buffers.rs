//! Batch norm's running statistics in files, as PyTorch's buffers: for each batch-norm
//! layer `norm{i}` ([`Arch::buffer_names`]), `norm{i}.running_mean` and
//! `norm{i}.running_var` [c] (f32) and `norm{i}.num_batches_tracked` (an int64 scalar).
//! Models, checkpoints and `--init-from` files carry them; evaluation reads them.

use std::path::Path;

use super::{bail, Result, TensorFile, Values};
use crate::nn::norm::RunningStats;
use crate::nn::Arch;

/// The running statistics `stats` (one per [`Arch::buffer_names`] entry) as named
/// tensors, ready to write beside the parameters.
pub fn buffer_tensors<'a>(
    arch: &Arch,
    stats: &'a [RunningStats],
) -> Vec<(String, Vec<usize>, Values<'a>)> {
    let mut out = Vec::new();
    for ((name, c), s) in arch.buffer_names().into_iter().zip(stats) {
        out.push((
            format!("{name}.running_mean"),
            vec![c],
            Values::F32(&s.mean),
        ));
        out.push((format!("{name}.running_var"), vec![c], Values::F32(&s.var)));
        out.push((
            format!("{name}.num_batches_tracked"),
            Vec::new(),
            Values::I64(std::slice::from_ref(&s.batches_tracked)),
        ));
    }
    out
}

/// Read the running statistics `arch` needs from a tensor file (names under an
/// optional `prefix` such as "train."), checking shapes and values: a mean must be
/// finite, a variance finite and not negative, a batch count a whole number >= 0.
pub fn stats_from(
    file: &TensorFile,
    path: &Path,
    arch: &Arch,
    prefix: &str,
) -> Result<Vec<RunningStats>> {
    let mut out = Vec::new();
    for (name, c) in arch.buffer_names() {
        let mean = channel_tensor(file, path, &format!("{prefix}{name}.running_mean"), c)?;
        let var = channel_tensor(file, path, &format!("{prefix}{name}.running_var"), c)?;
        if let Some(i) = var.iter().position(|&v| v < 0.0) {
            bail!(
                "{}: tensor '{prefix}{name}.running_var' holds {} at index {i}; a variance cannot be negative: the file is damaged, use another",
                path.display(),
                var[i]
            );
        }
        let batches_tracked =
            batch_count(file, path, &format!("{prefix}{name}.num_batches_tracked"))?;
        out.push(RunningStats {
            mean,
            var,
            batches_tracked,
        });
    }
    Ok(out)
}

/// A finite [c] tensor.
fn channel_tensor(file: &TensorFile, path: &Path, full: &str, c: usize) -> Result<Vec<f32>> {
    let t = file.get(path, full)?;
    if t.shape != [c] {
        bail!(
            "{}: tensor '{full}' has shape {:?} but the model's batch norm has {c} channels; give the --conv/--hidden sizes the file was made with",
            path.display(),
            t.shape
        );
    }
    if let Some(i) = super::first_non_finite(&t.data) {
        bail!(
            "{}: tensor '{full}' holds {} at index {i}; the running statistics are damaged (or come from a diverged run): use another file",
            path.display(),
            t.data[i]
        );
    }
    Ok(t.data.clone())
}

/// A scalar batch count: int64 as PyTorch writes it (a float holding a whole number
/// is accepted too).
fn batch_count(file: &TensorFile, path: &Path, full: &str) -> Result<i64> {
    let t = file.get(path, full)?;
    let value = match (t.ints.as_slice(), t.data.as_slice()) {
        ([n], _) => Some(*n),
        ([], [v]) if v.fract() == 0.0 && v.is_finite() => Some(*v as i64),
        _ => None,
    };
    match value {
        Some(n) if n >= 0 => Ok(n),
        _ => bail!(
            "{}: tensor '{full}' must be one whole number >= 0 (int64, as PyTorch saves it), not {:?} of shape {:?}; the file is damaged, use another",
            path.display(),
            t.data,
            t.shape
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_io::{parse_tensors, typed_tensors_to_bytes};
    use crate::nn::spec::Norm;

    fn arch() -> Arch {
        Arch {
            sizes: vec![4, 3, 2],
            activations: vec![crate::nn::Activation::Relu],
            norm: Norm::Batch,
            ..Default::default()
        }
    }

    fn file_of(tensors: &[(String, Vec<usize>, Values<'_>)]) -> TensorFile {
        let bytes = typed_tensors_to_bytes(tensors, &Default::default()).unwrap();
        parse_tensors(&bytes, Path::new("m.safetensors")).unwrap()
    }

    #[test]
    fn running_statistics_round_trip_exactly_with_an_int64_count() {
        let stats = vec![RunningStats {
            mean: vec![0.1, -2.5, 3.0],
            var: vec![1.5, 0.0, 7.25],
            batches_tracked: (1 << 40) + 3,
        }];
        let file = file_of(&buffer_tensors(&arch(), &stats));
        let t = &file.tensors["norm1.num_batches_tracked"];
        assert_eq!(
            (t.shape.as_slice(), t.ints.as_slice()),
            (&[][..], &[(1i64 << 40) + 3][..])
        );
        let back = stats_from(&file, Path::new("m"), &arch(), "").unwrap();
        assert_eq!(back, stats);
    }

    #[test]
    fn damaged_or_missing_statistics_are_refused_naming_the_tensor() {
        let good = RunningStats::new(3);
        let cases: [(RunningStats, &str); 3] = [
            (
                RunningStats {
                    var: vec![1.0, -1.0, 1.0],
                    ..good.clone()
                },
                "running_var' holds -1",
            ),
            (
                RunningStats {
                    mean: vec![f32::NAN, 0.0, 0.0],
                    ..good.clone()
                },
                "running_mean' holds NaN",
            ),
            (
                RunningStats {
                    batches_tracked: -2,
                    ..good.clone()
                },
                "num_batches_tracked' must be one whole number",
            ),
        ];
        for (stats, want) in cases {
            let file = file_of(&buffer_tensors(&arch(), std::slice::from_ref(&stats)));
            let e = stats_from(&file, Path::new("m"), &arch(), "").unwrap_err();
            assert!(e.to_string().contains(want), "{e} lacks {want}");
        }
        let e = stats_from(&TensorFile::default(), Path::new("m"), &arch(), "").unwrap_err();
        assert!(
            e.to_string().contains("no tensor 'norm1.running_mean'"),
            "{e}"
        );
        let wide = Arch {
            sizes: vec![4, 5, 2],
            ..arch()
        };
        let file = file_of(&buffer_tensors(&arch(), &[good]));
        let e = stats_from(&file, Path::new("m"), &wide, "").unwrap_err();
        assert!(e.to_string().contains("has shape [3] but"), "{e}");
    }
}
