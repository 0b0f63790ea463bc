#!/usr/bin/env bash
# Benchmark (by hand): ingest of a 300-slice CT (512×512, 16 bit) through C-STORE
# (dcmtk's storescu) and through STOW-RS (curl, one multipart/related request), with
# the server's peak RSS. Needs a release build, dcmtk, curl and jq.
#   cargo build --release && bash tests/bench/ingest.sh
set -euo pipefail
BIN=${LICHTKASTEN_BIN:-${CARGO_TARGET_DIR:-target}/release/lichtkasten}
SLICES=${1:-300}
WORK=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BIN" demo --listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/demo.json" 2>/dev/null &
PID=$!
for _ in $(seq 50); do [ -s "$WORK/demo.json" ] && break; sleep 0.2; done
BASE=$(jq -r .base_url "$WORK/demo.json")
PORT=$(jq -r .dicom_port "$WORK/demo.json")
AE=$(jq -r .dicom_ae_title "$WORK/demo.json")
TOKEN=$(curl -sf "$BASE/api/v1/token" -d grant_type=client_credentials \
  -d client_id="$(jq -r .api_client_id "$WORK/demo.json")" \
  -d client_secret="$(jq -r .api_client_secret "$WORK/demo.json")" | jq -r .access_token)
hwm() { awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$PID/status"; }
report() { # label, bytes, files, seconds
  awk -v l="$1" -v b="$2" -v n="$3" -v t="$4" -v r="$(hwm)" 'BEGIN {
    printf "%-28s %6.1f MB in %5.2f s = %6.1f MB/s, %6.1f instances/s; server peak RSS %d MiB\n",
      l, b / 1e6, t, b / 1e6 / t, n / t, r }'
}

"$BIN" synth --out "$WORK/cstore" --slices "$SLICES" --size 512 2>/dev/null
"$BIN" synth --out "$WORK/stow" --slices "$SLICES" --size 512 2>/dev/null
BYTES=$(du -sb "$WORK/cstore" | cut -f1)
FILES=$(ls "$WORK/cstore" | wc -l)
echo "study: $FILES files, $((BYTES / 1000000)) MB (each run a new study)"

start=$(date +%s.%N)
TCP_NODELAY=1 /usr/bin/storescu -aec "$AE" +sd 127.0.0.1 "$PORT" "$WORK/cstore"
end=$(date +%s.%N)
report "C-STORE (storescu)" "$BYTES" "$FILES" "$(echo "$end - $start" | bc)"

# One STOW-RS request with every file as a part.
{
  for f in "$WORK"/stow/*.dcm; do
    printf -- '--lkbench\r\nContent-Type: application/dicom\r\n\r\n'
    cat "$f"
    printf '\r\n'
  done
  printf -- '--lkbench--\r\n'
} >"$WORK/stow.body"
start=$(date +%s.%N)
curl -sf -o /dev/null "$BASE/dicomweb/studies" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: multipart/related; type="application/dicom"; boundary=lkbench' \
  --data-binary @"$WORK/stow.body"
end=$(date +%s.%N)
report "STOW-RS (one request)" "$BYTES" "$FILES" "$(echo "$end - $start" | bc)"
