#!/usr/bin/env python3
"""The Python package's overhead: `actlab.train` of the exercise model against
`actlab train` on the same run, alternating, whole process each way.

    python scripts/python_overhead.py --cli target/release/actlab --rounds 5

Each round runs the CLI and then Python (the order alternates between rounds) on the
same settings: the default 784-128-64-10 ReLU/LogSoftmax/NLL model, Adam, batch 64,
seed 0, 5 epochs, MNIST from data/mnist. It prints each process's wall time and the training
seconds its record gives, their medians, and the ratio Python / CLI for both; and the
time of the `actlab.train` call itself (no interpreter start or imports) against the
whole CLI process. The two
records' test figures must be identical (same engine, same numbers); the script stops
if they are not. Build the package in release mode first (`pip install ./python`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PY_RUN = """
import json, time, actlab
t0 = time.perf_counter()
run = actlab.train("mnist", epochs={epochs}, limit_train={limit}, data_dir={data!r})
call = time.perf_counter() - t0
print(json.dumps(dict(run.record, call_seconds=call)))
"""


def cli_run(cli: str, epochs: int, limit, data: Path) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as d:
        cmd = [cli, "train", "--epochs", str(epochs), "--data-dir", str(data), "--out", f"{d}/run"]
        if limit:
            cmd += ["--limit-train", str(limit)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        return wall, json.loads((Path(d) / "run" / "record.json").read_text())


def py_run(python: str, epochs: int, limit, data: Path) -> tuple[float, dict]:
    code = PY_RUN.format(epochs=epochs, limit=limit, data=str(data))
    t0 = time.perf_counter()
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    return wall, json.loads(out.strip().splitlines()[-1])


def train_seconds(record: dict) -> float:
    return sum(e["seconds"] for e in record["history"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", default=str(ROOT / "target" / "release" / "actlab"))
    ap.add_argument("--python", default=sys.executable, help="a Python with actlab installed")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--data-dir", default=str(ROOT / "data" / "mnist"))
    args = ap.parse_args()
    data = Path(args.data_dir)
    rows = {"cli": [], "python": []}
    calls = []
    for r in range(args.rounds):
        order = ["cli", "python"] if r % 2 == 0 else ["python", "cli"]
        got = {}
        for who in order:
            f = cli_run if who == "cli" else py_run
            got[who] = f(args.cli if who == "cli" else args.python, args.epochs, args.limit_train, data)
            rows[who].append((got[who][0], train_seconds(got[who][1])))
        calls.append(got["python"][1]["call_seconds"])
        if got["cli"][1]["final_test"] != got["python"][1]["final_test"]:
            print("the two runs differ:", got["cli"][1]["final_test"], got["python"][1]["final_test"])
            return 1
        print(f"round {r + 1}: " + ", ".join(
            f"{w} {rows[w][-1][0]:.2f} s (training {rows[w][-1][1]:.2f} s)" for w in ("cli", "python")))
    med = {w: (statistics.median(x for x, _ in v), statistics.median(t for _, t in v)) for w, v in rows.items()}
    call = statistics.median(calls)
    print(f"median whole process: cli {med['cli'][0]:.2f} s, python {med['python'][0]:.2f} s, "
          f"python/cli = {med['python'][0] / med['cli'][0]:.3f}")
    print(f"median actlab.train call (data loading and training, no interpreter start or imports): "
          f"{call:.2f} s, against the whole cli process: {call / med['cli'][0]:.3f}")
    print(f"median training (record): cli {med['cli'][1]:.2f} s, python {med['python'][1]:.2f} s, "
          f"python/cli = {med['python'][1] / med['cli'][1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
