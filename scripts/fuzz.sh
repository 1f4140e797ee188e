#!/usr/bin/env bash
# Run each cargo-fuzz target for a bounded time (default 60 s each); exits non-zero
# as soon as a target finds a crash (its input is in fuzz/artifacts/<target>/).
# Needs nightly Rust and cargo-fuzz (cargo install cargo-fuzz). On stable, the same
# properties run as proptest harnesses in tests/fuzz_stable.rs (part of cargo test).
# After fixing a crash, copy its input into tests/fuzz_regressions/<target>/ so
# tests/fuzz_stable.rs replays it forever.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${1:-60}"
mkdir -p corpus/idx_parser corpus/gzip_idx corpus/experiment_toml corpus/model_loader
# Seed corpora: small real inputs of each kind, all from this repository.
for t in idx_parser gzip_idx experiment_toml model_loader; do
  cp ../tests/fuzz_regressions/"$t"/* "corpus/$t/"
done
cp ../experiments/*.toml corpus/experiment_toml/
cp ../tests/fixtures/torch-parity/init.safetensors corpus/model_loader/
gzip -dc ../data/mnist/t10k-labels-idx1-ubyte.gz | head -c 2000 > corpus/idx_parser/labels-head
cp ../data/mnist/t10k-labels-idx1-ubyte.gz corpus/gzip_idx/
for t in idx_parser gzip_idx experiment_toml model_loader; do
  echo "== fuzzing $t for ${SECONDS_EACH}s"
  log="$(mktemp)"
  status=0
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
  grep -E "^(#[0-9]+.*DONE|Done|INFO: seed corpus|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 30 "$log"
    rm -f "$log"
    echo "fuzz target $t failed (exit $status): see fuzz/artifacts/$t/" >&2
    exit "$status"
  fi
  rm -f "$log"
done
