//! Finding and downloading datasets: verified downloads from a local HTTP server,
//! rejection of corrupted copies, and the data-folder search order.

mod common;

use std::collections::HashMap;

use actlab::data::source::download;
use actlab::data::{load_dir, DatasetName, FILES};
use common::{actlab, mnist_dir, HttpServer, TempDir};

fn served(corrupt: bool) -> HashMap<String, Vec<u8>> {
    FILES
        .iter()
        .map(|stem| {
            let mut bytes = std::fs::read(mnist_dir().join(format!("{stem}.gz"))).unwrap();
            if corrupt {
                // Re-compress a damaged copy: valid gzip, wrong content.
                let mut plain = actlab::data::idx::maybe_gunzip(bytes).unwrap();
                let mid = plain.len() / 2;
                plain[mid] ^= 0xff;
                use std::io::Write;
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&plain).unwrap();
                bytes = e.finish().unwrap();
            }
            (format!("{stem}.gz"), bytes)
        })
        .collect()
}

#[test]
fn download_verifies_and_moves_into_cache() {
    let server = HttpServer::start(served(false));
    let cache = TempDir::new("dl-ok");
    // A dead mirror first: it must be tried, then the next one used.
    let mirrors = vec!["http://127.0.0.1:9/".to_string(), server.url.clone()];
    download(DatasetName::Mnist, &cache.0, &mirrors).unwrap();
    let split = load_dir(DatasetName::Mnist, &cache.0).unwrap();
    assert!(split.is_canonical());
    assert_eq!(split.train.len(), 60_000);
    let names: Vec<_> = std::fs::read_dir(&cache.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "only the four verified files: {names:?}");
}

#[test]
fn corrupted_download_is_rejected_and_leaves_nothing() {
    let server = HttpServer::start(served(true));
    let cache = TempDir::new("dl-bad");
    let err = download(
        DatasetName::Mnist,
        &cache.0,
        std::slice::from_ref(&server.url),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(err.contains("--data-dir"), "{err}");
    assert_eq!(std::fs::read_dir(&cache.0).unwrap().count(), 0);
}

#[test]
fn no_network_error_names_mirrors_and_the_fix() {
    let cache = TempDir::new("dl-none");
    let home = TempDir::new("home");
    let out = TempDir::new("out");
    let o = actlab()
        .args(["train", "--epochs", "1", "--out"])
        .arg(&out.0)
        .env("XDG_CACHE_HOME", &cache.0)
        .env("HOME", &home.0)
        .env("ACTLAB_NO_BUNDLED_DATA", "1")
        .env(
            "ACTLAB_MIRRORS",
            "http://127.0.0.1:9/a/,http://127.0.0.1:9/b/",
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap();
    assert!(last.starts_with("error: could not download mnist"), "{err}");
    assert!(
        last.contains("127.0.0.1:9/a/") && last.contains("127.0.0.1:9/b/"),
        "{err}"
    );
    assert!(last.contains("--data-dir"), "{err}");
}

#[test]
fn cli_downloads_into_the_cache_then_reuses_it() {
    let server = HttpServer::start(served(false));
    let cache = TempDir::new("dl-cli");
    let out = TempDir::new("out");
    let run = |mirrors: &str| {
        actlab()
            .args([
                "train",
                "--epochs",
                "1",
                "--limit-train",
                "256",
                "--limit-test",
                "100",
                "--overwrite",
                "--out",
            ])
            .arg(&out.0)
            .env("XDG_CACHE_HOME", &cache.0)
            .env("ACTLAB_NO_BUNDLED_DATA", "1")
            .env("ACTLAB_MIRRORS", mirrors)
            .output()
            .unwrap()
    };
    let o = run(&server.url);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(cache
        .join("actlab/mnist/train-images-idx3-ubyte.gz")
        .exists());
    drop(server);
    // Second run: no mirror reachable, the cache serves.
    let o = run("http://127.0.0.1:9/");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn data_dir_accepts_the_folder_or_its_parent_and_raw_files() {
    let data = common::data_dir();
    for dir in [data.clone(), data.join("mnist")] {
        let s = actlab::data::load(DatasetName::Mnist, Some(&dir)).unwrap();
        assert!(s.is_canonical());
    }
    let raw = TempDir::new("raw");
    common::write_small_mnist(&raw.0, 100, 20);
    let s = load_dir(DatasetName::Mnist, &raw.0).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (100, 20));
    assert!(!s.is_canonical());
}

/// Debian's `dataset-fashion-mnist` puts the files here (not bundled: 30 MB).
const DEBIAN_FASHION: &str = "/usr/share/datasets/fashion-mnist";

#[test]
#[ignore = "needs Debian's dataset-fashion-mnist (.ci/run installs it)"]
fn fashion_mnist_from_debian_matches_the_pinned_checksums() {
    let dir = std::path::Path::new(DEBIAN_FASHION);
    let fashion = actlab::data::load(DatasetName::FashionMnist, Some(dir)).unwrap();
    assert!(fashion.is_canonical(), "pinned Fashion-MNIST checksums");
    assert_eq!((fashion.train.len(), fashion.test.len()), (60_000, 10_000));
    // With no flag, an empty cache and no network, the system folder is found.
    let o = train_with_no_network(&["--dataset", "fashion-mnist"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// One short `train` from a fresh folder with an empty cache and unreachable mirrors.
fn train_with_no_network(extra: &[&str]) -> std::process::Output {
    let cache = TempDir::new("nonet-cache");
    let out = TempDir::new("nonet-out");
    actlab()
        .current_dir(&out.0)
        .args([
            "train",
            "--epochs",
            "1",
            "--limit-train",
            "128",
            "--limit-test",
            "50",
        ])
        .args(["--out", "run"])
        .args(extra)
        .env("XDG_CACHE_HOME", &cache.0)
        .env("ACTLAB_MIRRORS", "http://127.0.0.1:9/")
        .output()
        .unwrap()
}

#[test]
fn bundled_mnist_is_found_with_no_flag_from_any_folder() {
    let o = train_with_no_network(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("downloading"), "{err}");
    assert_eq!(
        actlab::data::source::bundled_dir(DatasetName::Mnist),
        Some(common::mnist_dir())
    );
}

#[test]
fn decoded_cache_is_used_and_never_stale() {
    let cache = TempDir::new("decoded");
    let data = TempDir::new("data-copy");
    for stem in FILES {
        std::fs::copy(
            mnist_dir().join(format!("{stem}.gz")),
            data.join(&format!("{stem}.gz")),
        )
        .unwrap();
    }
    let out = TempDir::new("out");
    let run = || {
        let o = actlab()
            .args([
                "train",
                "--epochs",
                "1",
                "--limit-train",
                "64",
                "--limit-test",
                "10",
                "--overwrite",
                "--data-dir",
            ])
            .arg(&data.0)
            .arg("--out")
            .arg(&out.0)
            .env("XDG_CACHE_HOME", &cache.0)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("record.json")).unwrap())
                .unwrap();
        r["dataset"].clone()
    };
    let first = run();
    assert_eq!(first["canonical"], true);
    let decoded = cache.join("actlab/decoded");
    let entries: Vec<_> = std::fs::read_dir(&decoded).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "decoded copy written");
    let written = entries[0].metadata().unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(run(), first);
    let again = std::fs::metadata(entries[0].path())
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        written, again,
        "a hit reads the decoded copy without rewriting it"
    );
    // Change a source file: the decoded copy must not be served.
    let labels = data.join("t10k-labels-idx1-ubyte.gz");
    let mut plain = actlab::data::idx::maybe_gunzip(std::fs::read(&labels).unwrap()).unwrap();
    plain[8] = (plain[8] + 1) % 10;
    std::fs::remove_file(&labels).unwrap();
    std::fs::write(data.join("t10k-labels-idx1-ubyte"), &plain).unwrap();
    let changed = run();
    assert_eq!(changed["canonical"], false);
    assert_ne!(changed["sha256"][3], first["sha256"][3]);
}

#[test]
fn a_decoded_cache_damaged_in_place_is_rebuilt_with_a_warning() {
    let cache = TempDir::new("decoded-damage");
    let out = TempDir::new("decoded-damage-out");
    let run = || {
        let o = actlab()
            .args(common::TINY_TRAIN)
            .args(["--overwrite", "--out"])
            .arg(&out.0)
            .env("XDG_CACHE_HOME", &cache.0)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r = common::json_of(&out.join("record.json"));
        (
            r["history"][0]["test"]["acc"].clone(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (first, _) = run();
    let file = std::fs::read_dir(cache.join("actlab/decoded"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    // Same size, the first test label (used by this run) changed to another valid one.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 10_000;
    bytes[at] = (bytes[at] + 1) % 10;
    std::fs::write(&file, &bytes).unwrap();
    let (again, err) = run();
    assert!(
        err.contains("decoded-data cache for mnist is damaged"),
        "{err}"
    );
    assert_eq!(again, first, "the damaged copy was not used");
    let (_, err) = run();
    assert!(!err.contains("damaged"), "rebuilt: {err}");
}
