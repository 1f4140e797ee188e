//! The fuzz targets' properties on stable Rust (proptest): random and mutated inputs
//! to the IDX parser, the gzip+IDX loader, the experiment TOML parser and the model
//! loader never panic. Inputs that once crashed (tests/fuzz_regressions/<target>/)
//! are replayed on every run. The coverage-guided versions are in fuzz/ (scripts/fuzz.sh).

mod common;

use std::path::Path;

use actlab::data::idx::{maybe_gunzip, parse_images, parse_labels};
use actlab::experiment::Experiment;
use actlab::model_io::{model_from_file, parse_tensors};
use proptest::prelude::*;

fn idx(data: &[u8]) {
    let _ = parse_images(data);
    let _ = parse_labels(data);
}

fn gzip_idx(data: &[u8]) {
    if let Ok(plain) = maybe_gunzip(data.to_vec()) {
        idx(&plain);
    }
}

fn experiment(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(e) = Experiment::from_toml(text, "fuzz.toml") {
            let _ = e.jobs();
        }
    }
}

fn model(data: &[u8]) {
    let path = Path::new("/nonexistent/fuzz.safetensors");
    if let Ok(f) = parse_tensors(data, path) {
        if let Ok((m, _)) = model_from_file(&f, path, None) {
            if m.arch.sizes[0] <= 4096 && m.params.len() <= 1 << 22 {
                let mut ws = actlab::nn::Workspace::new(&m, 1, false);
                let x = vec![0.5; m.arch.sizes[0]];
                let mut input = actlab::nn::InputBuf::default();
                m.forward_eval(&mut ws, input.dense(&x, 1, x.len()));
            }
        }
    }
}

fn seed_model() -> Vec<u8> {
    std::fs::read(common::fixtures().join("init.safetensors")).unwrap()
}

fn seed_idx() -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28];
    b.extend((0..2 * 784).map(|i| i as u8));
    b
}

fn seed_gz() -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&seed_idx()).unwrap();
    e.finish().unwrap()
}

fn seed_toml() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/exercise.toml")).unwrap()
}

/// Apply up to 8 byte edits (overwrite, insert, delete) and an optional truncation.
fn mutate(mut b: Vec<u8>, edits: &[(usize, u8, u8)], cut: Option<usize>) -> Vec<u8> {
    for &(pos, val, kind) in edits {
        if b.is_empty() {
            b.push(val);
            continue;
        }
        let p = pos % b.len();
        match kind % 3 {
            0 => b[p] = val,
            1 => b.insert(p, val),
            _ => {
                b.remove(p);
            }
        }
    }
    if let Some(c) = cut {
        b.truncate(c % (b.len() + 1));
    }
    b
}

fn edits() -> impl Strategy<Value = (Vec<(usize, u8, u8)>, Option<usize>)> {
    (
        proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..8),
        any::<Option<usize>>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        idx(&data);
        gzip_idx(&data);
        experiment(&data);
        model(&data);
    }

    #[test]
    fn mutated_idx_never_panics((e, c) in edits()) {
        idx(&mutate(seed_idx(), &e, c));
    }

    #[test]
    fn mutated_gzip_never_panics((e, c) in edits()) {
        gzip_idx(&mutate(seed_gz(), &e, c));
    }

    #[test]
    fn mutated_toml_never_panics((e, c) in edits()) {
        experiment(&mutate(seed_toml(), &e, c));
    }

    #[test]
    fn mutated_models_never_panic((e, c) in edits()) {
        model(&mutate(seed_model(), &e, c));
    }

    #[test]
    fn mutated_model_headers_never_panic(edits in proptest::collection::vec((0usize..600, any::<u8>()), 1..6)) {
        // Target the JSON header, where shapes and offsets live.
        let mut b = seed_model();
        for (p, v) in edits {
            let p = 8 + p % 600;
            b[p] = v;
        }
        model(&b);
    }
}

#[test]
fn replay_saved_crashes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut total = 0;
    for (target, f) in [
        ("idx_parser", idx as fn(&[u8])),
        ("gzip_idx", gzip_idx),
        ("experiment_toml", experiment),
        ("model_loader", model),
    ] {
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .collect::<Vec<_>>();
        assert!(!entries.is_empty(), "{}: no saved inputs", dir.display());
        for e in &entries {
            f(&std::fs::read(e.path()).unwrap());
        }
        eprintln!("{target}: replayed {} saved input(s)", entries.len());
        total += entries.len();
    }
    assert!(total >= 4, "{total}");
}
