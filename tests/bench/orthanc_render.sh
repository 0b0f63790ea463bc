#!/usr/bin/env bash
# Benchmark (by hand): rendered images from Lichtkasten and from Debian's Orthanc, the
# same files in both, started side by side in the same run. Per image type (CT 512²
# native, the same CT as JPEG 2000 and as JPEG-LS, a 3328×4096 mammogram, a 60-frame
# ultrasound loop): p50/p95 latency and requests/s with 4 concurrent clients, for the
# first request of each image and for a repeat. Needs a release build, Orthanc, dcmtk
# (dcmcjpls), gdcm (gdcmconv), python3 with pydicom and numpy, curl, jq, and root.
#   cargo build --release --features jpeg-ls,libjpeg-turbo && bash tests/bench/orthanc_render.sh [ct-slices] [clients]
# LK_ONLY=1 leaves Orthanc out (no Orthanc needed): Lichtkasten's own figures, for
# trying a change; TYPES=ct,us limits the image types loaded; CT_BITS_STORED: see below;
# US_LOOPS=4 makes four loops instead of one (240 frames a pass: steadier medians);
# MG_IMAGES sets the number of mammograms.
#
# Orthanc 1.10 cannot listen on loopback only, so it runs in a network namespace of
# its own whose only interface is `lo`, and its load comes from inside that namespace.
set -euo pipefail
BIN=${LICHTKASTEN_BIN:-${CARGO_TARGET_DIR:-target}/release/lichtkasten}
ORTHANC=${ORTHANC_BIN:-/usr/sbin/Orthanc}
SLICES=${1:-40}
CLIENTS=${2:-4}
MG_IMAGES=${MG_IMAGES:-8}
US_LOOPS=${US_LOOPS:-1}
LK_ONLY=${LK_ONLY:-}
TYPES=${TYPES:-ct,j2k,jls,mg,us}
WORK=$(mktemp -d)
LK_PID='' OR_PID=''
trap 'kill $LK_PID $OR_PID 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
HERE=$(cd "$(dirname "$0")" && pwd)

# --- The images: one study, five series ----------------------------------------------
mkdir -p "$WORK/img"
for t in ct j2k jls; do "$BIN" synth --out "$WORK/src-$t" --slices "$SLICES" --size 512 >/dev/null 2>&1; done
mkdir -p "$WORK/img/ct" "$WORK/img/j2k" "$WORK/img/jls"
# Each type from its own synth run, so no SOP instance is sent twice; the key image
# (the last file, an RGB secondary capture) is left out.
for t in ct j2k jls; do rm -f "$(ls "$WORK/src-$t"/*.dcm | tail -1)"; done
cp "$WORK"/src-ct/*.dcm "$WORK/img/ct/"
# CT_BITS_STORED=16: the CT slices declare all 16 bits stored (as many scanners write
# them) instead of 12; the values stay the same.
if [ -n "${CT_BITS_STORED:-}" ]; then
  dcmodify -nb -m "BitsStored=$CT_BITS_STORED" -m "HighBit=$((CT_BITS_STORED - 1))" "$WORK"/img/ct/*.dcm >/dev/null
fi
# (The CT series is always made: the others take their study attributes from it.)
wanted() { [[ ",$TYPES," == *",$1,"* ]]; }
if wanted j2k; then
  for f in "$WORK"/src-j2k/*.dcm; do gdcmconv --j2k "$f" "$WORK/img/j2k/$(basename "$f")"; done
fi
if wanted jls; then
  for f in "$WORK"/src-jls/*.dcm; do dcmcjpls "$f" "$WORK/img/jls/$(basename "$f")"; done
fi
rm -rf "$WORK"/src-*
python3 "$HERE/orthanc_render_tool.py" generate "$WORK/img" "$MG_IMAGES" "$US_LOOPS" >"$WORK/index.json"
echo "images: $(du -sh "$WORK/img" | cut -f1) in $(find "$WORK/img" -name '*.dcm' | wc -l) files"

# --- Lichtkasten: the demo, with its metrics (render cache hits and misses) ----------
# The load runs through one API client, far above its default 600 requests a minute.
LICHTKASTEN_API_REQUESTS_PER_MINUTE=0 LICHTKASTEN_METRICS_LISTEN=127.0.0.1:0 "$BIN" demo --listen 127.0.0.1:0 --data-dir "$WORK/lk" \
  >"$WORK/demo.json" 2>"$WORK/lk.log" &
LK_PID=$!
for _ in $(seq 100); do [ -s "$WORK/demo.json" ] && break; sleep 0.2; done
METRICS=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/lk.log" | grep -o 'metrics listening addr=[0-9.:]*' | cut -d= -f2)
cache() { curl -s "http://$METRICS/metrics" | awk -F'[{}" ]+' '/^lichtkasten_render_cache_total/ {printf "%s %s ", $3, $4}'; }
BASE=$(jq -r .base_url "$WORK/demo.json")
TOKEN=$(curl -sf "$BASE/api/v1/token" -d grant_type=client_credentials \
  -d client_id="$(jq -r .api_client_id "$WORK/demo.json")" \
  -d client_secret="$(jq -r .api_client_secret "$WORK/demo.json")" | jq -r .access_token)

# --- Orthanc: own config, storage and index; restarted before each endpoint's first
# pass so its storage cache (MaximumStorageCacheSize, 128 MB by default) starts empty.
OR_HTTP=18043
cat >"$WORK/orthanc.json" <<EOF
{
  "Name": "lk-bench",
  "StorageDirectory": "$WORK/orthanc",
  "IndexDirectory": "$WORK/orthanc",
  "HttpPort": $OR_HTTP,
  "DicomPort": 14243,
  "DicomAet": "ORTHANC",
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "Plugins": [],
  "DicomAssociationCloseDelay": 0
}
EOF
OR_URL="http://127.0.0.1:$OR_HTTP"
OR_PEAK=0
ns() { nsenter --net="/proc/$OR_PID/ns/net" "$@"; }
hwm() { awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$1/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Waits until the process has used under 3 % of a core for a second (at most 10 min):
# Lichtkasten renders a thumbnail and a preview of every new instance in the
# background after an ingest, and that work must not compete with the load.
wait_idle() {
  local t0 t1
  for _ in $(seq 600); do
    t0=$(ticks "$1"); sleep 1; t1=$(ticks "$1")
    [ $((t1 - t0)) -lt 3 ] && return
  done
}
# TCP_NODELAY=1: Debian's dcmtk leaves Nagle on in Orthanc's DICOM sockets otherwise
# (no effect on HTTP; set as in orthanc_ingest.sh so both runs use one config).
start_orthanc() {
  unshare --net sh -c 'ip link set lo up && exec env TCP_NODELAY=1 "$0" "$1"' "$ORTHANC" "$WORK/orthanc.json" \
    >>"$WORK/orthanc.log" 2>&1 &
  OR_PID=$!
  for _ in $(seq 100); do
    ns curl -sf -o /dev/null "$OR_URL/system" 2>/dev/null && return
    sleep 0.2
  done
  echo "Orthanc did not start" >&2; exit 1
}
stop_orthanc() {
  local peak
  peak=$(hwm "$OR_PID")
  [ "$peak" -gt "$OR_PEAK" ] && OR_PEAK=$peak
  kill "$OR_PID"; wait "$OR_PID" 2>/dev/null || true
}
if [ -z "$LK_ONLY" ]; then
  start_orthanc
  OR_VERSION=$(ns curl -sf "$OR_URL/system" | jq -r .Version)
fi

# --- Upload: Lichtkasten by STOW-RS (one request per series), Orthanc by POST /instances
for t in ct j2k jls mg us; do
  [ -n "$(ls "$WORK/img/$t")" ] || continue
  {
    for f in "$WORK/img/$t"/*.dcm; do
      printf -- '--lkbench\r\nContent-Type: application/dicom\r\n\r\n'
      cat "$f"
      printf '\r\n'
    done
    printf -- '--lkbench--\r\n'
  } | curl -s -o "$WORK/stow-$t.json" -w '%{http_code}' "$BASE/dicomweb/studies" \
    -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: multipart/related; type="application/dicom"; boundary=lkbench' \
    --data-binary @- >"$WORK/stow-$t.code"
  echo "Lichtkasten STOW-RS $t: HTTP $(cat "$WORK/stow-$t.code"), stored $(jq '.["00081199"].Value | length' "$WORK/stow-$t.json"), failed $(jq '.["00081198"].Value // [] | length' "$WORK/stow-$t.json")"
done
[ -n "$LK_ONLY" ] ||
  ns python3 "$HERE/orthanc_render_tool.py" orthanc-upload "$OR_URL" "$WORK/index.json" >"$WORK/orthanc-ids.json"

t0=$(date +%s)
wait_idle "$LK_PID"; [ -n "$LK_ONLY" ] || wait_idle "$OR_PID"
echo "Lichtkasten idle $(($(date +%s) - t0)) s after the upload; render cache: $(cache)"
echo "  (a thumbnail of each instance and the scrolling size and 768 preview of every frame are prepared at ingest)"

# Lichtkasten's ids of the instances (for the patient route) and a patient session:
# a grant on the study, then its link and password, as a patient would sign in.
STUDY_UID=$(jq -r '.study_uid' "$WORK/index.json")
STUDY_ID=$(curl -sf "$BASE/api/v1/studies?limit=500" -H "Authorization: Bearer $TOKEN" |
  jq -r --arg u "$STUDY_UID" '.studies[] | select(.study_uid == $u) | .id')
curl -sf "$BASE/api/v1/studies/$STUDY_ID" -H "Authorization: Bearer $TOKEN" >"$WORK/lk-study.json"
curl -sf "$BASE/api/v1/studies/$STUDY_ID/grants" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{"expires_in_days":30}' >"$WORK/grant.json"
SESSION=$(curl -s -i "$(jq -r .link "$WORK/grant.json")" \
  --data-urlencode "password=$(jq -r .password "$WORK/grant.json")" |
  grep -io '^set-cookie: [^=]*session=[^;]*' | sed 's/^set-cookie: //I' || true)
[ -n "$SESSION" ] || echo "patient sign-in failed: no session cookie"

# --- Load: per endpoint and type, every image once (first), then again (repeat) ------
TOOL="$HERE/orthanc_render_tool.py"
RES="$WORK/results.jsonl"
echo 5 >"/proc/$LK_PID/clear_refs"
run() { # server endpoint [python args...]
  local srv=$1 ep=$2; shift 2
  if [ "$srv" = orthanc ]; then
    ns python3 "$TOOL" load --server "$srv" --endpoint "$ep" --clients "$CLIENTS" --pid "$OR_PID" --types "$TYPES" \
      --index "$WORK/index.json" --ids "$WORK/orthanc-ids.json" --base "$OR_URL" "$@" >>"$RES"
  else
    python3 "$TOOL" load --server "$srv" --endpoint "$ep" --clients "$CLIENTS" --pid "$LK_PID" --types "$TYPES" \
      --index "$WORK/index.json" --ids "$WORK/lk-study.json" --base "$BASE" "$@" >>"$RES"
  fi
}
for ep in full preview768 orthanc-preview; do
  case $ep in
    full) run lichtkasten full --header "Authorization: Bearer $TOKEN" ;;
    preview768) [ -n "$SESSION" ] && run lichtkasten preview768 --header "Cookie: $SESSION" ;;
  esac
  [ -n "$LK_ONLY" ] && continue
  stop_orthanc; start_orthanc
  run orthanc "$ep"
done
LK_PEAK=$(hwm "$LK_PID")
LK_CACHE=$(cache)
[ -n "$LK_ONLY" ] || stop_orthanc

echo
echo "Lichtkasten $("$BIN" --version | awk '{print $2}') (demo: SQLite, filesystem store; originals and"
echo "  kept renders encrypted with AES-256-GCM, decrypted on each use) vs Orthanc ${OR_VERSION:-(not run)}"
echo "machine: $(nproc) cores; $(date -u +%Y-%m-%d); $CLIENTS concurrent clients; peak RSS:"
echo "  Lichtkasten $LK_PEAK MiB, Orthanc $OR_PEAK MiB (highest of its runs) during the load"
echo "Lichtkasten render cache after the load: $LK_CACHE(only the thumbnail, the 768 JPEG"
echo "  preview and the full-size PNG are kept; a full-size JPEG is drawn on every request)"
python3 "$TOOL" summary "$RES"
