#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) for a short while with cargo-fuzz and
# libFuzzer. The toolchain here is stable; RUSTC_BOOTSTRAP lets it take the
# sanitizer flag cargo-fuzz passes. Seeds are generated files in several
# transfer syntaxes, so the fuzzer starts past the DICOM magic.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}

if ! command -v cargo-fuzz >/dev/null; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
# Its own target dir outside the clone: the instrumented build is reused next time.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/lichtkasten-fuzz-target}"

seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
BIN="${LICHTKASTEN_BIN:-${LK_TARGET:-$HOME/.cache/lichtkasten-target}/debug/lichtkasten}"
"$BIN" synth --out "$seeds/dicom" --slices 2 --size 16 2>/dev/null
first=$(ls "$seeds/dicom" | head -1)
dcmcjpeg +e1 "$seeds/dicom/$first" "$seeds/dicom/jpeg-lossless.dcm"
dcmcjpeg +eb "$seeds/dicom/$first" "$seeds/dicom/jpeg-baseline.dcm" 2>/dev/null || true
dcmcrle "$seeds/dicom/$first" "$seeds/dicom/rle.dcm"
gdcmconv --j2k "$seeds/dicom/$first" "$seeds/dicom/j2k.dcm"
mkdir -p "$seeds/zip"
python3 -c 'import sys, zipfile, pathlib
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for p in sorted(pathlib.Path(sys.argv[2]).glob("*.dcm"))[:3]:
        z.write(p, "DICOM/" + p.name)' "$seeds/zip/study.zip" "$seeds/dicom"

# Each input must finish within a second and allocate at most 512 MB.
limits=(-timeout=1 -malloc_limit_mb=512 -rss_limit_mb=2560 -max_total_time="$SECONDS_PER_TARGET")
fuzz() { # target, corpus folder
  local log="$seeds/$1.log"
  echo "== fuzz $1 for ${SECONDS_PER_TARGET}s"
  if ! (cd fuzz && cargo fuzz run --release "$1" "$2" -- "${limits[@]}") >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "fuzz target $1 failed (the crashing input is under fuzz/artifacts/$1)"
    exit 1
  fi
  grep -E "^#[0-9]+" "$log" | tail -n 1
}
for target in parse render; do
  corpus=$(mktemp -d -p "$seeds")
  cp "$seeds"/dicom/* "$corpus/"
  fuzz "$target" "$corpus"
done
fuzz zip_walk "$seeds/zip"
