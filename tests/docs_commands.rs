//! Every command in the README and `docs/` runs, and every option in `--help` is
//! documented. Commands come from fenced `sh` blocks; each runs with small limits
//! (`--limit-train 500 --limit-test 200 --epochs 1`, added where the command takes
//! them and does not set them) in a scratch folder that links the repository's
//! `experiments/`, `scripts/` and `data/`. A block fenced `sh no-test REASON` is not
//! run; neither are `cargo` lines (this test runs under cargo): both are listed and
//! counted in the output, never skipped silently.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{repo, TempDir};

/// One command from a page.
struct Cmd {
    page: String,
    line: String,
    /// Why it is not run, if it is not.
    skip: Option<String>,
}

/// The pages whose commands are run: the README and every `docs/*.md`.
fn pages() -> Vec<PathBuf> {
    let mut v = vec![repo("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    v.extend(docs);
    v
}

/// The commands of the `sh` blocks of `page`, continuation lines joined, comments dropped.
fn commands(page: &Path) -> Vec<Cmd> {
    let text = std::fs::read_to_string(page).unwrap();
    let name = page.strip_prefix(repo("")).unwrap().display().to_string();
    let (mut out, mut fence, mut buf) = (Vec::new(), None::<String>, String::new());
    for l in text.lines() {
        if let Some(info) = l.strip_prefix("```") {
            fence = match fence {
                None => Some(info.trim().to_string()),
                Some(_) => None,
            };
            continue;
        }
        let Some(info) = fence.as_deref() else {
            continue;
        };
        if info != "sh" && !info.starts_with("sh ") {
            continue;
        }
        if let Some(head) = l.strip_suffix('\\') {
            buf.push_str(head);
            continue;
        }
        buf.push_str(l);
        let line = std::mem::take(&mut buf);
        let line = line.split(" # ").next().unwrap_or("").trim().to_string();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let skip = if let Some(reason) = info.strip_prefix("sh no-test") {
            assert!(
                !reason.trim().is_empty(),
                "{name}: a `sh no-test` block must say why it is not run"
            );
            Some(reason.trim().to_string())
        } else if line.starts_with("cargo ") && !line.starts_with("cargo run --release -- ") {
            Some("a cargo command (this test runs under cargo)".to_string())
        } else {
            None
        };
        out.push(Cmd {
            page: name.clone(),
            line,
            skip,
        });
    }
    out
}

/// `line` as it runs here: `actlab` for `cargo run --release --`, small limits added.
fn small(line: &str) -> String {
    let line = line.replace("cargo run --release --", "actlab");
    let sub = line
        .split_whitespace()
        .skip_while(|w| *w != "actlab")
        .nth(1)
        .unwrap_or("");
    let limits: &[(&str, &str)] = match sub {
        "train" | "exercise" | "compare" | "run" => &[
            ("--limit-train", "500"),
            ("--limit-test", "200"),
            ("--epochs", "1"),
        ],
        "bench" => &[("--epochs", "1"), ("--activation", "relu")],
        _ => &[],
    };
    let add: String = limits
        .iter()
        .filter(|(flag, _)| !line.contains(flag))
        .map(|(flag, v)| format!(" {flag} {v}"))
        .collect();
    line.replacen(&format!("actlab {sub}"), &format!("actlab {sub}{add}"), 1)
}

/// A scratch folder that sees the repository's inputs under their usual names.
fn scratch() -> TempDir {
    let dir = TempDir::new("docs-commands");
    for name in ["experiments", "scripts", "data", "assets"] {
        std::os::unix::fs::symlink(repo(name), dir.join(name)).unwrap();
    }
    // The data files the docs train on (tests/fixtures/*.npz), read-only.
    std::fs::create_dir(dir.join("tests")).unwrap();
    std::os::unix::fs::symlink(repo("tests/fixtures"), dir.join("tests/fixtures")).unwrap();
    dir
}

#[test]
fn every_command_in_the_readme_and_docs_runs() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_actlab"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let all: Vec<Cmd> = pages().iter().flat_map(|p| commands(p)).collect();
    assert!(all.len() >= 5, "too few commands found: {}", all.len());
    let (mut ran, mut skipped) = (0, 0);
    for page in pages() {
        // Commands of one page run in order in one folder, so a later one may use an
        // earlier one's files.
        let dir = scratch();
        let name = page.strip_prefix(repo("")).unwrap().display().to_string();
        for c in all.iter().filter(|c| c.page == name) {
            if let Some(why) = &c.skip {
                skipped += 1;
                println!("SKIPPED {}: {}  ({why})", c.page, c.line);
                continue;
            }
            let line = small(&c.line);
            let out = Command::new("sh")
                .arg("-c")
                .arg(&line)
                .current_dir(&dir.0)
                .env("PATH", &path)
                .env("ACTLAB_DATA_DIR", repo("data"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: `{line}` failed ({}):\n{}{}",
                c.page,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            ran += 1;
            println!("ran {}: {line}", c.page);
        }
    }
    println!("{ran} commands run, {skipped} skipped (listed above)");
    assert_eq!(ran + skipped, all.len());
}

#[test]
fn small_limits_are_added_once() {
    assert_eq!(
        small("cargo run --release -- exercise"),
        "actlab exercise --limit-train 500 --limit-test 200 --epochs 1"
    );
    assert_eq!(
        small("ACTLAB_SIMD=avx2 actlab bench --epochs 3"),
        "ACTLAB_SIMD=avx2 actlab bench --activation relu --epochs 3"
    );
    assert_eq!(small("actlab merge a b"), "actlab merge a b");
}

/// The `--flags` of `actlab SUB --help`.
fn help_options(sub: &str) -> Vec<String> {
    let out = common::actlab().args([sub, "--help"]).output().unwrap();
    assert!(out.status.success(), "{sub} --help failed");
    flags(&String::from_utf8_lossy(&out.stdout))
}

/// Every `--flag` written in `text`.
fn flags(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2 && w.as_bytes()[2].is_ascii_lowercase())
        .map(|w| w.trim_end_matches('-').to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

const SUBCOMMANDS: [&str; 11] = [
    "train",
    "exercise",
    "compare",
    "run",
    "merge",
    "report",
    "activations",
    "eval",
    "predict",
    "demo",
    "bench",
];

#[test]
fn every_help_option_is_documented_and_every_documented_option_exists() {
    let docs: String = pages()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let documented = flags(&docs);
    let (mut offered, mut missing) = (Vec::new(), Vec::new());
    for sub in SUBCOMMANDS {
        for f in help_options(sub) {
            if f != "--help" && f != "--version" {
                if !documented.contains(&f) {
                    missing.push(format!("actlab {sub} {f}"));
                }
                offered.push(f);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "in --help but not in the README or docs/ (add them to docs/usage.md): {missing:?}"
    );
    // The option list of docs/usage.md names only options that exist.
    let usage = std::fs::read_to_string(repo("docs/usage.md")).unwrap();
    let not_ours = [
        "--help",
        "--include-ignored",
        "--release",
        "--path",
        "--array",
        "--logdir",
    ];
    let stale: Vec<String> = flags(&usage)
        .into_iter()
        .filter(|f| !offered.contains(f) && !not_ours.contains(&f.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/usage.md names options no subcommand's --help offers: {stale:?}"
    );
}

#[test]
fn the_layout_page_names_every_source_file() {
    let layout = std::fs::read_to_string(repo("docs/layout.md")).unwrap();
    let mut stack = vec![repo("src")];
    let mut missing = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let file = p.file_name().unwrap().to_string_lossy().to_string();
                if !layout.contains(&file) {
                    missing.push(p.display().to_string());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/layout.md does not name {missing:?}"
    );
}
