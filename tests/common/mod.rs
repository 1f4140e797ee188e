//! Helpers shared by the integration tests: the data and fixtures inside the repository.
#![allow(dead_code)]

pub mod tolerance;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A path inside the repository (tests read nothing outside it).
pub fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The repository's `data/` folder (MNIST bundled under `data/mnist/`).
pub fn data_dir() -> PathBuf {
    repo("data")
}

/// The PyTorch parity fixtures of `set` (`torch-parity` or `torch-parity-2`).
pub fn fixtures_of(set: &str) -> PathBuf {
    let p = repo("tests/fixtures").join(set);
    assert!(
        p.join("manifest.json").exists(),
        "parity fixtures missing at {}: they are part of the repository",
        p.display()
    );
    p
}

/// The first set of PyTorch parity fixtures.
pub fn fixtures() -> PathBuf {
    fixtures_of("torch-parity")
}

/// The bundled MNIST folder.
pub fn mnist_dir() -> PathBuf {
    let p = data_dir().join("mnist");
    assert!(
        p.join("train-images-idx3-ubyte.gz").exists(),
        "MNIST missing at {}: it is part of the repository",
        p.display()
    );
    p
}

/// A short `actlab train`: 4 epochs on 6,000 images, tested on 500 (about a second).
pub const SHORT_TRAIN: [&str; 7] = [
    "train",
    "--epochs",
    "4",
    "--limit-train",
    "6000",
    "--limit-test",
    "500",
];

/// A tiny `actlab train`: 1 epoch on 200 images, tested on 20.
pub const TINY_TRAIN: [&str; 7] = [
    "train",
    "--epochs",
    "1",
    "--limit-train",
    "200",
    "--limit-test",
    "20",
];

/// Start `cmd` with the test hook `hook` (a `wait@POINT:N`) and return once the run
/// says it is waiting there: the child, its stderr for the rest, and what it printed.
pub fn spawn_held(
    cmd: &mut std::process::Command,
    hook: &str,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
    String,
) {
    use std::io::BufRead;
    let mut child = cmd
        .env("ACTLAB_TEST_HOOK", hook)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let point = hook.split_once('@').map_or(hook, |p| p.1);
    let mut seen = String::new();
    while !seen.contains(&format!("test hook: waiting at {point}")) {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "run ended early: {seen}"
        );
        seen.push_str(&line);
    }
    (child, err, seen)
}

/// How many entries a folder holds.
pub fn entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().flatten().count()
}

/// Send a signal ("-INT", "-TERM") to a child process.
pub fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Path of the built actlab binary (cargo builds it for integration tests).
pub fn actlab() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_actlab"));
    c.env_remove("ACTLAB_DATA_DIR")
        .env_remove("ACTLAB_MIRRORS")
        .env_remove("ACTLAB_NO_BUNDLED_DATA");
    c
}

/// A fresh empty temporary folder, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Make one named after `tag`.
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "actlab-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// A path inside the folder.
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Write a small MNIST-shaped dataset (IDX, raw or gzip) into `dir`: `n_train` and
/// `n_test` images copied from the real MNIST so models can learn from it.
pub fn write_small_mnist(dir: &std::path::Path, n_train: usize, n_test: usize) {
    let split = actlab::data::load_dir(actlab::data::DatasetName::Mnist, &mnist_dir()).unwrap();
    let write = |stem: &str, d: &actlab::data::Dataset, n: usize| {
        let d = d.clone().truncated(n);
        let mut img = vec![0, 0, 8, 3];
        for v in [n as u32, 28, 28] {
            img.extend_from_slice(&v.to_be_bytes());
        }
        img.extend_from_slice(d.images());
        let mut lab = vec![0, 0, 8, 1];
        lab.extend_from_slice(&(n as u32).to_be_bytes());
        // MNIST labels are 0..9: each fits the IDX file's one byte.
        lab.extend(d.labels.iter().map(|&l| l as u8));
        std::fs::write(dir.join(format!("{stem}-images-idx3-ubyte")), img).unwrap();
        std::fs::write(dir.join(format!("{stem}-labels-idx1-ubyte")), lab).unwrap();
    };
    write("train", &split.train, n_train);
    write("t10k", &split.test, n_test);
}

/// A minimal HTTP/1.1 file server on 127.0.0.1 for download tests; serves `files`
/// (path -> bytes), 404 otherwise, and stops when dropped.
pub struct HttpServer {
    /// Base URL, e.g. http://127.0.0.1:12345/
    pub url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    addr: std::net::SocketAddr,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Start serving.
    pub fn start(files: std::collections::HashMap<String, Vec<u8>>) -> HttpServer {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // A network namespace with its loopback down accepts the bind but refuses
        // every connection: say so at once instead of failing further on.
        if let Err(e) = std::net::TcpStream::connect(addr) {
            panic!("cannot reach a local server on {addr} ({e}): these download tests need the loopback interface up (`ip link set lo up`)");
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming().take(200) {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut s) = stream else { continue };
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let path = first
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                match files.get(path) {
                    Some(body) => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(body);
                    }
                    None => {
                        let _ = s.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                }
            }
        });
        HttpServer {
            url: format!("http://{addr}/"),
            stop,
            addr,
            handle: Some(handle),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // The connection wakes the accepting thread so it sees `stop`; if none can be
        // made the thread is left blocked rather than joined (the test is ending).
        if std::net::TcpStream::connect(self.addr).is_ok() {
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }
}

/// Run a command and demand success; returns stdout and stderr.
pub fn run_ok_with_stderr(cmd: &mut std::process::Command) -> (String, String) {
    let o = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// Run a command and demand success; returns stdout.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    run_ok_with_stderr(cmd).0
}

/// A JSON file's content.
pub fn json_of(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The first `n_train` training and `n_test` test images of the real MNIST.
pub fn mnist_slice(n_train: usize, n_test: usize) -> actlab::data::Split {
    let full = actlab::data::load_dir(actlab::data::DatasetName::Mnist, &mnist_dir()).unwrap();
    actlab::data::Split {
        train: full.train.clone().truncated(n_train),
        test: full.test.clone().truncated(n_test),
        ..full
    }
}

/// The run record in `path` with every timing set to 0.
pub fn record_without_timings(path: &std::path::Path) -> actlab::store::records::RunRecord {
    actlab::store::records::read_record(path)
        .unwrap()
        .without_timings()
}

/// The headless browser. Browser tests are ignored by default, so when they are asked
/// for (`--include-ignored`, as `.ci/run` does) a missing browser is a failure.
pub fn chromium() -> &'static str {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("no chromium found: install Debian's chromium (.ci/run does)")
}

/// Open `url` in headless Chromium (a `window` such as "1280,2400", its own `profile`
/// folder, `extra` flags such as --dump-dom or --screenshot=FILE) under a 120 s
/// timeout; demand that it succeeds and that its log holds no console error, uncaught
/// exception or failed load. Returns what it printed (the DOM with --dump-dom).
pub fn run_chromium(
    profile: &std::path::Path,
    window: &str,
    extra: &[String],
    url: &str,
) -> String {
    let o = std::process::Command::new("timeout")
        .arg("120")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--window-size={window}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "chromium failed: {log}");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Failed to load"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run actlab and demand: exit 2, one line on stderr starting with "error: ", no panic,
/// containing every `needles` item. Returns the line.
pub fn fails(cmd: &mut Command, needles: &[&str]) -> String {
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "expected exit 2, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("warning:") && !l.starts_with("note:"))
        .collect();
    assert_eq!(lines.len(), 1, "not one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' missing from: {}", lines[0]);
    }
    lines[0].to_string()
}

pub fn train_on(dir: &Path) -> Command {
    let mut c = actlab();
    c.args(["train", "--epochs", "1", "--batch-size", "10", "--data-dir"])
        .arg(dir)
        .arg("--out")
        .arg(dir.join("out"));
    c
}

pub fn small() -> TempDir {
    let d = TempDir::new("bad");
    write_small_mnist(&d.0, 100, 20);
    d
}
