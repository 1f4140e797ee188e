#!/usr/bin/env bash
# Run each cargo-fuzz target for a bounded time (default 60 s each).
# Needs nightly Rust and cargo-fuzz (cargo install cargo-fuzz). On stable, the same
# properties run as proptest harnesses in tests/fuzz_stable.rs (part of cargo test).
# Crashing inputs land in fuzz/artifacts/<target>/; copy them into
# tests/fuzz_regressions/<target>/ so tests/fuzz_stable.rs replays them forever.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${1:-60}"
SHARED="${ACTLAB_SHARED:-$(cd ../.. && pwd)/shared}"
mkdir -p corpus/idx_parser corpus/gzip_idx corpus/experiment_toml corpus/model_loader
# Seed corpora: small real inputs of each kind.
cp ../tests/fuzz_regressions/*/* corpus/idx_parser/ 2>/dev/null || true
cp ../experiments/*.toml corpus/experiment_toml/
cp "$SHARED/fixtures/torch-parity/init.safetensors" corpus/model_loader/
head -c 2000 <(gzip -dc "$SHARED/data/mnist/t10k-labels-idx1-ubyte.gz") > corpus/idx_parser/labels-head || true
cp "$SHARED/data/mnist/t10k-labels-idx1-ubyte.gz" corpus/gzip_idx/
for t in idx_parser gzip_idx experiment_toml model_loader; do
  echo "== fuzzing $t for ${SECONDS_EACH}s"
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 2>&1 | grep -E "^(#[0-9]+.*DONE|Done|INFO: seed corpus|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)" || true
done
