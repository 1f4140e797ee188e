//! Helpers shared by the integration tests: where the shared data and fixtures are.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared` beside the repository (CI lays it out there), or `ACTLAB_SHARED`.
pub fn shared() -> PathBuf {
    std::env::var_os("ACTLAB_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// The PyTorch parity fixtures; panics (fails the test) if they are missing.
pub fn fixtures() -> PathBuf {
    let p = shared().join("fixtures/torch-parity");
    assert!(
        p.join("manifest.json").exists(),
        "parity fixtures not found at {}; set ACTLAB_SHARED to the shared folder",
        p.display()
    );
    p
}

/// The MNIST folder; panics (fails the test) if it is missing.
pub fn mnist_dir() -> PathBuf {
    let p = std::env::var_os("ACTLAB_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared().join("data"))
        .join("mnist");
    let p = if p.exists() { p } else { shared().join("data/mnist") };
    assert!(
        p.join("train-images-idx3-ubyte.gz").exists(),
        "MNIST not found at {}; set ACTLAB_SHARED to the shared folder",
        p.display()
    );
    p
}
