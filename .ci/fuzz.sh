#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) briefly with cargo-fuzz and libFuzzer,
# from the seeds in fuzz/seeds (generated files in several transfer syntaxes, so
# the fuzzer starts past the DICOM magic) plus the inputs once found to fail
# (tests/corpus/fuzz-found). A fixed seed and a fixed number of runs make CI
# repeatable; `FUZZ_SECONDS=600 bash .ci/fuzz.sh` searches longer with random seeds.
# The toolchain is stable; RUSTC_BOOTSTRAP lets it take the sanitizer flag
# cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v cargo-fuzz >/dev/null; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
# Its own target dir outside the clone: the instrumented build is reused next time.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/lichtkasten-fuzz-target}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Each input must finish within a second and allocate at most 512 MB.
limits=(-timeout=1 -malloc_limit_mb=512 -rss_limit_mb=2560)
if [ -n "${FUZZ_SECONDS:-}" ]; then
  limits+=(-max_total_time="$FUZZ_SECONDS")
else
  limits+=(-seed=1 -runs="${FUZZ_RUNS:-200000}")
fi
fuzz() { # target, seed folders...
  local target=$1 corpus="$work/$1" log="$work/$1.log"
  shift
  mkdir -p "$corpus"
  cp "$@" "$corpus/"
  echo "== fuzz $target"
  if ! (cd fuzz && cargo fuzz run --release "$target" "$corpus" -- "${limits[@]}") >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "fuzz target $target failed (the input is under fuzz/artifacts/$target)"
    exit 1
  fi
  grep -E "^#[0-9]+" "$log" | tail -n 1
}
fuzz parse fuzz/seeds/dicom/* tests/corpus/fuzz-found/*
fuzz render fuzz/seeds/dicom/* tests/corpus/fuzz-found/*
fuzz zip_walk fuzz/seeds/zip/*
