#!/usr/bin/env bash
# Benchmark (by hand): a 2 GB study through every door — REST multipart, REST ZIP,
# STOW-RS and C-STORE — each into a freshly started server, printing the server's
# peak RSS (VmHWM) and throughput. Uploads are stored file by file as they arrive,
# so the peak should not grow with the size of the upload.
# Needs a release build, dcmtk, curl, jq, python3.
#   cargo build --release && bash tests/bench/ingest_memory.sh [slices] [size]
set -euo pipefail
BIN=${LICHTKASTEN_BIN:-${CARGO_TARGET_DIR:-target}/release/lichtkasten}
SLICES=${1:-1000}
SIZE=${2:-1024}
WORK=$(mktemp -d)
PID=
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BIN" synth --out "$WORK/study" --slices "$SLICES" --size "$SIZE" 2>/dev/null
BYTES=$(du -sb "$WORK/study" | cut -f1)
FILES=$(ls "$WORK/study" | wc -l)
echo "study: $FILES files, $((BYTES / 1000000)) MB"

# The same files as a ZIP (stored, ZIP64 where needed) and as one STOW-RS body.
python3 - "$WORK/study" "$WORK/study.zip" <<'PY'
import pathlib, sys, zipfile
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_STORED, allowZip64=True) as z:
    for p in sorted(pathlib.Path(sys.argv[1]).glob("*.dcm")):
        z.write(p, "DICOM/" + p.name)
PY
{
  for f in "$WORK"/study/*.dcm; do
    printf -- '--lkbench\r\nContent-Type: application/dicom\r\n\r\n'
    cat "$f"
    printf '\r\n'
  done
  printf -- '--lkbench--\r\n'
} >"$WORK/stow.body"
# curl streams -T files (--data-binary would hold them whole); -F takes one argument per file; a config file keeps the command line short.
for f in "$WORK"/study/*.dcm; do echo "form = \"file=@$f\""; done >"$WORK/form.curl"

start_server() {
  rm -rf "$WORK/data"
  LICHTKASTEN_MAX_UPLOAD_BYTES=$((BYTES * 2)) LICHTKASTEN_RENDER_WORKERS=0 \
    "$BIN" demo --listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/demo.json" 2>/dev/null &
  PID=$!
  for _ in $(seq 100); do [ -s "$WORK/demo.json" ] && break; sleep 0.2; done
  BASE=$(jq -r .base_url "$WORK/demo.json")
  PORT=$(jq -r .dicom_port "$WORK/demo.json")
  AE=$(jq -r .dicom_ae_title "$WORK/demo.json")
  TOKEN=$(curl -sf "$BASE/api/v1/token" -d grant_type=client_credentials \
    -d client_id="$(jq -r .api_client_id "$WORK/demo.json")" \
    -d client_secret="$(jq -r .api_client_secret "$WORK/demo.json")" | jq -r .access_token)
  # The demo practice's own upload limit (settings page) must allow the study too.
  sqlite3 "$WORK/data/lichtkasten.db" "UPDATE practices SET max_upload_mb = $((BYTES / 500000))"
  START_RSS=$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$PID/status")
}
stop_server() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
hwm() { awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$PID/status"; }
report() { # label, seconds
  awk -v l="$1" -v b="$BYTES" -v n="$FILES" -v t="$2" -v s="$START_RSS" -v r="$(hwm)" 'BEGIN {
    printf "%-26s %6.1f MB/s, %6.1f instances/s; server RSS at start %d MiB, peak %d MiB\n",
      l, b / 1e6 / t, n / t, s, r }'
}
timed() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "$e - $s" | bc; }

start_server
t=$(timed curl -sf -o "$WORK/out.json" "$BASE/api/v1/studies" -H "Authorization: Bearer $TOKEN" -K "$WORK/form.curl")
[ "$(jq '.studies[0].accepted' "$WORK/out.json")" = "$FILES" ] || { cat "$WORK/out.json"; exit 1; }
report "REST multipart" "$t"
stop_server

start_server
t=$(timed curl -sf -o "$WORK/out.json" "$BASE/api/v1/studies" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/zip' -X POST -T "$WORK/study.zip")
[ "$(jq '.studies[0].accepted' "$WORK/out.json")" = "$FILES" ] || { cat "$WORK/out.json"; exit 1; }
report "REST ZIP" "$t"
stop_server

start_server
t=$(timed curl -sf -o /dev/null "$BASE/dicomweb/studies" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: multipart/related; type="application/dicom"; boundary=lkbench' \
  -X POST -T "$WORK/stow.body")
report "STOW-RS (one request)" "$t"
stop_server

start_server
t=$(TCP_NODELAY=1 timed /usr/bin/storescu -aec "$AE" +sd 127.0.0.1 "$PORT" "$WORK/study")
report "C-STORE (storescu)" "$t"
stop_server
