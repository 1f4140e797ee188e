//! Sharding on a real scheduler: a one-node Slurm cluster (scripts/slurm/) runs
//! `scripts/slurm/sweep.sbatch` as a job array, one task is requeued mid-run, and the
//! merged shards must equal an unsharded run of the same comparison, record for record.
//! The Kubernetes Indexed Job (scripts/k8s/) is checked against the Kubernetes schema.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{actlab, repo, run_ok, TempDir};

/// The comparison every test run makes: 2 activations x 4 seeds, 2 epochs, a slice.
const COMPARE: [&str; 11] = [
    "compare",
    "--activation",
    "relu,tanh",
    "--seeds",
    "4",
    "--epochs",
    "2",
    "--limit-train",
    "1000",
    "--limit-test",
    "200",
];

/// The one-node cluster, stopped when dropped (also when the test fails).
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    /// Start the cluster in `dir`. Slurm's usual ports are held busy meanwhile (as
    /// another Slurm on the machine would hold them), so the cluster must pick free
    /// ones; the value exists before the start, so a failed start is stopped too.
    fn start(dir: PathBuf) -> Cluster {
        let cluster = Cluster {
            conf: dir.join("slurm.conf"),
            dir,
        };
        let _busy: Vec<std::net::TcpListener> = (6817..=6818)
            .filter_map(|p| std::net::TcpListener::bind(("0.0.0.0", p)).ok())
            .collect();
        let o = Command::new(repo("scripts/slurm/local-cluster.sh"))
            .arg("start")
            .arg(&cluster.dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "cluster did not start: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let conf = std::fs::read_to_string(&cluster.conf).unwrap();
        for line in ["SlurmctldPort=6817", "SlurmdPort=6818"] {
            assert!(!conf.contains(line), "a busy port was used: {line}");
        }
        cluster
    }

    /// A Slurm client command pointed at this cluster.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Standard output of a client command that must succeed.
    fn ok(&self, program: &str, args: &[&str]) -> String {
        let o = self.cmd(program).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo("scripts/slurm/local-cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// Wait (at most `secs`) until `done` holds.
fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every run record under `dir` (shard folders or one folder), timings aside, by path
/// below its `runs/` folder.
fn records(dirs: &[PathBuf]) -> Vec<(String, actlab::store::records::RunRecord)> {
    let mut out: Vec<_> = dirs
        .iter()
        .flat_map(|d| actlab::store::records::read_run_records(d).unwrap())
        .map(|(p, r)| {
            let key = p.strip_prefix(p.ancestors().nth(3).unwrap()).unwrap();
            (key.display().to_string(), r.without_timings())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// summary.json without the timing column.
fn summary(dir: &Path) -> serde_json::Value {
    let mut v = common::json_of(&dir.join("summary.json"));
    for var in v["variants"].as_array_mut().unwrap() {
        var["seconds"] = serde_json::Value::Null;
    }
    v
}

#[test]
#[ignore = "needs root and Debian's slurmctld, slurmd, slurm-client and munge (.ci/run installs them)"]
fn a_requeued_slurm_job_array_merges_to_the_unsharded_result() {
    let d = TempDir::new("slurm");
    let cluster = Cluster::start(d.join("cluster"));
    run_ok(
        actlab()
            .args(COMPARE)
            .args(["--jobs", "1", "--out"])
            .arg(d.join("single")),
    );

    // Every task's first attempt holds after the first epoch of its first run (its
    // checkpoint written) until released; task 2 is requeued while it holds, i.e. in
    // the middle of a run.
    let release = d.join("release");
    let sweep = d.join("sweep");
    let out_pattern = d.join("task-%A_%a.out");
    let job = cluster
        .cmd("sbatch")
        .args(["--parsable", "--array=1-4", "--output"])
        .arg(&out_pattern)
        .arg(repo("scripts/slurm/sweep.sbatch"))
        .args(COMPARE)
        .env("ACTLAB", env!("CARGO_BIN_EXE_actlab"))
        .env("SWEEP_DIR", &sweep)
        .env("ACTLAB_TEST_HOOK", "wait@epoch:1")
        .env("ACTLAB_TEST_RELEASE", &release)
        .env_remove("ACTLAB_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        job.status.success(),
        "{}",
        String::from_utf8_lossy(&job.stderr)
    );
    let id = String::from_utf8_lossy(&job.stdout).trim().to_string();
    let task2_log = d.join(&format!("task-{id}_2.out"));
    wait_for("task 2 holding after its first epoch", 60, || {
        std::fs::read_to_string(&task2_log)
            .is_ok_and(|t| t.contains("test hook: waiting at epoch:1"))
    });
    let task2 = format!("{id}_2");
    cluster.ok("scontrol", &["requeue", &task2]);
    // Slurm makes a requeued job wait about two minutes before it may start again;
    // once it is pending, let it start now.
    wait_for("task 2 pending again", 60, || {
        cluster
            .ok("scontrol", &["show", "job", &task2])
            .contains("JobState=PENDING")
    });
    cluster.ok(
        "scontrol",
        &["update", &format!("JobId={task2}"), "StartTime=now"],
    );
    std::fs::write(&release, "go").unwrap();
    wait_for("the array to finish", 150, || {
        cluster.ok("squeue", &["-h", "-j", &id]).trim().is_empty()
    });
    let state = cluster.ok("scontrol", &["show", "job", &task2]);
    assert!(
        state.contains("Restarts=1"),
        "task 2 was not requeued: {state}"
    );
    let log = std::fs::read_to_string(&task2_log).unwrap();
    assert!(
        log.contains("seed 1: continuing after epoch 1 of 2"),
        "the requeued task did not continue from its checkpoint: {log}"
    );
    for k in 1..=4 {
        let state = cluster.ok("scontrol", &["show", "job", &format!("{id}_{k}")]);
        assert!(state.contains("JobState=COMPLETED"), "task {k}: {state}");
    }

    let shards: Vec<PathBuf> = (1..=4).map(|k| sweep.join(format!("shard-{k}"))).collect();
    let merged = d.join("merged");
    let mut merge = actlab();
    merge.arg("merge").args(&shards).arg("--out").arg(&merged);
    run_ok(&mut merge);
    let single = [d.join("single")];
    assert_eq!(records(&shards).len(), 8);
    assert_eq!(records(&shards), records(&single), "record for record");
    assert_eq!(summary(&merged), summary(&single[0]));
}

/// The `kubernetes-validate` tool: `$KUBERNETES_VALIDATE`, else on the PATH.
fn kubernetes_validate() -> Command {
    let tool =
        std::env::var_os("KUBERNETES_VALIDATE").unwrap_or_else(|| "kubernetes-validate".into());
    Command::new(tool)
}

#[test]
#[ignore = "needs the kubernetes-validate tool from PyPI (.ci/run installs it in a virtual environment)"]
fn the_kubernetes_indexed_job_is_valid_and_shards_like_slurm() {
    let manifest = repo("scripts/k8s/sweep-job.yaml");
    let o = kubernetes_validate()
        .arg("--strict")
        .arg(&manifest)
        .output()
        .expect("kubernetes-validate not found: pip install kubernetes-validate");
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && text.contains("passed"), "{text}");
    // The tool must be able to fail: a misspelt field is rejected.
    let d = TempDir::new("k8s");
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    let bad = d.join("bad.yaml");
    std::fs::write(&bad, yaml.replace("parallelism:", "parallelizm:")).unwrap();
    let o = kubernetes_validate()
        .arg("--strict")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a misspelt field passed the schema check"
    );
    // The same shard arithmetic as the Slurm script: pod index i runs shard i+1 of N,
    // with N the Job's completions, in Indexed mode.
    let field = |key: &str| {
        yaml.lines()
            .find_map(|l| {
                let v = l.trim().strip_prefix(key)?;
                Some(v.trim().trim_matches('"').to_string())
            })
            .unwrap_or_else(|| panic!("no {key} in the manifest"))
    };
    assert_eq!(field("completionMode:"), "Indexed");
    let n = field("completions:");
    assert_eq!(field("value:"), n, "SHARDS must equal completions");
    assert!(yaml.contains("k=$((JOB_COMPLETION_INDEX + 1))"));
    assert!(yaml.contains("--shard \"$k/$SHARDS\""));
}
