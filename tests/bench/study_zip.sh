#!/usr/bin/env bash
# Benchmark (by hand): download throughput of the patient's CD-like study ZIP for a
# study of about 1 GB, and the server's memory while it streams — at full speed and
# through a slow reader. Needs a release build, curl and jq.
#   cargo build --release && bash tests/bench/study_zip.sh [slices]
set -euo pipefail
BIN=${LICHTKASTEN_BIN:-${CARGO_TARGET_DIR:-target}/release/lichtkasten}
SLICES=${1:-2000}
WORK=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BIN" demo --listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/demo.json" 2>/dev/null &
PID=$!
for _ in $(seq 50); do [ -s "$WORK/demo.json" ] && break; sleep 0.2; done
BASE=$(jq -r .base_url "$WORK/demo.json")
token() {
  curl -sf "$BASE/api/v1/token" -d grant_type=client_credentials \
    -d client_id="$(jq -r .api_client_id "$WORK/demo.json")" \
    -d client_secret="$(jq -r .api_client_secret "$WORK/demo.json")" | jq -r .access_token
}

"$BIN" synth --out "$WORK/study" --slices "$SLICES" --size 512 2>/dev/null
BYTES=$(du -sb "$WORK/study" | cut -f1)
echo "study: $(ls "$WORK/study" | wc -l) files, $((BYTES / 1000000)) MB"
# Upload in batches below the per-request limit.
files=("$WORK"/study/*.dcm)
for ((i = 0; i < ${#files[@]}; i += 200)); do
  args=()
  for f in "${files[@]:i:200}"; do args+=(-F "f=@$f"); done
  STUDY=$(curl -sf "$BASE/api/v1/studies" -H "Authorization: Bearer $(token)" "${args[@]}" | jq -r '.studies[0].id')
done
GRANT=$(curl -sf -X POST "$BASE/api/v1/studies/$STUDY/grants" -H "Authorization: Bearer $(token)" \
  -H 'content-type: application/json' -d '{}')
curl -sf -c "$WORK/cookies" -o /dev/null "$BASE/access" \
  --data-urlencode "access_code=$(jq -r .access_code <<<"$GRANT")" \
  --data-urlencode "password=$(jq -r .password <<<"$GRANT")"

rss() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
# Highest RSS sampled every 100 ms while a download runs (args: curl options).
measure() {
  local before peak=0 start end
  before=$(rss)
  start=$(date +%s.%N)
  curl -sf -b "$WORK/cookies" "$@" -o "$WORK/study.zip" "$BASE/view/download/study.zip" &
  local curl_pid=$!
  while kill -0 $curl_pid 2>/dev/null; do
    local now; now=$(rss); [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.1
  done
  wait $curl_pid || true
  end=$(date +%s.%N)
  local size; size=$(stat -c %s "$WORK/study.zip")
  awk -v s="$size" -v t0="$start" -v t1="$end" -v b="$before" -v p="$peak" 'BEGIN {
    printf "  %d MB in %.1f s = %.0f MB/s; server RSS %d MiB before, highest %d MiB during\n",
      s / 1e6, t1 - t0, s / 1e6 / (t1 - t0), b / 1024, p / 1024 }'
}
echo "full speed:"
measure
unzip -tq "$WORK/study.zip" >/dev/null && echo "  ZIP verified (unzip -t)"
echo "slow reader (20 MB/s, cut off after 15 s):"
measure --limit-rate 20M -m 15
echo "server still answers: $(curl -sf "$BASE/healthz")"
