#!/usr/bin/env bash
# Benchmark (by hand): ingest of a generated 300-slice CT (512×512, 16 bit) into
# Lichtkasten and into Debian's Orthanc, started side by side in the same run, through
# the HTTP doors and through C-STORE, with each server's peak RSS. Needs a release
# build, Orthanc (/usr/sbin/Orthanc), dcmtk, curl, jq, and root (for unshare/nsenter).
#   cargo build --release && bash tests/bench/orthanc_ingest.sh [slices] [runs]
#
# Orthanc 1.10 cannot listen on loopback only, so it runs in a network namespace of
# its own whose only interface is `lo`, and every request to it is made from inside
# that namespace; Lichtkasten listens on 127.0.0.1. Both see the same files.
set -euo pipefail
BIN=${LICHTKASTEN_BIN:-${CARGO_TARGET_DIR:-target}/release/lichtkasten}
ORTHANC=${ORTHANC_BIN:-/usr/sbin/Orthanc}
# dcmtk's storescu by path: pynetdicom installs a different tool of the same name.
STORESCU=${STORESCU:-/usr/bin/storescu}
SLICES=${1:-300}
RUNS=${2:-2}
WORK=$(mktemp -d)
LK_PID='' OR_PID=''
trap 'kill $LK_PID $OR_PID 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

# --- Lichtkasten: the demo (SQLite, filesystem store, every object encrypted) -------
"$BIN" demo --listen 127.0.0.1:0 --data-dir "$WORK/lk" >"$WORK/demo.json" 2>/dev/null &
LK_PID=$!
for _ in $(seq 100); do [ -s "$WORK/demo.json" ] && break; sleep 0.2; done
BASE=$(jq -r .base_url "$WORK/demo.json")
LK_PORT=$(jq -r .dicom_port "$WORK/demo.json")
LK_AE=$(jq -r .dicom_ae_title "$WORK/demo.json")
TOKEN=$(curl -sf "$BASE/api/v1/token" -d grant_type=client_credentials \
  -d client_id="$(jq -r .api_client_id "$WORK/demo.json")" \
  -d client_secret="$(jq -r .api_client_secret "$WORK/demo.json")" | jq -r .access_token)

# --- Orthanc: its own config, storage and index in the temp dir, no plugins ---------
# Orthanc uses Debian's dcmtk libraries, which leave Nagle on for its DICOM sockets
# too: without TCP_NODELAY=1 in its environment every C-STORE answer waits for a
# delayed ACK (about 40 ms per instance, 7–11 MB/s here), which would measure that
# default instead of Orthanc. ORTHANC_NAGLE=1 keeps the default to show it.
OR_HTTP=18042 OR_DICOM=14242
cat >"$WORK/orthanc.json" <<EOF
{
  "Name": "lk-bench",
  "StorageDirectory": "$WORK/orthanc",
  "IndexDirectory": "$WORK/orthanc",
  "HttpPort": $OR_HTTP,
  "DicomPort": $OR_DICOM,
  "DicomAet": "ORTHANC",
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "Plugins": [],
  "DicomAssociationCloseDelay": 0
}
EOF
unshare --net sh -c 'ip link set lo up && exec env TCP_NODELAY=$2 "$0" "$1"' "$ORTHANC" "$WORK/orthanc.json" \
  "$([ "${ORTHANC_NAGLE:-0}" = 1 ] && echo 0 || echo 1)" >"$WORK/orthanc.log" 2>&1 &
OR_PID=$!
ns() { nsenter --net="/proc/$OR_PID/ns/net" "$@"; }
for _ in $(seq 100); do
  ns curl -sf -o /dev/null "http://127.0.0.1:$OR_HTTP/system" 2>/dev/null && break
  sleep 0.2
done
OR_URL="http://127.0.0.1:$OR_HTTP"
OR_VERSION=$(ns curl -sf "$OR_URL/system" | jq -r .Version)
OR_PLUGINS=$(ns curl -sf "$OR_URL/plugins" | jq -c .)

hwm() { awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$1/status"; }
# Peak RSS per door: writing 5 to clear_refs resets VmHWM to the current RSS.
reset_hwm() { echo 5 >"/proc/$1/clear_refs"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Waits until the process has used under 3 % of a core for a second (at most 5 min),
# so background work of one door (Lichtkasten prepares thumbnails and previews after
# an ingest) is not counted against the next; prints the CPU seconds used meanwhile.
wait_idle() {
  local first t0 t1
  first=$(ticks "$1")
  for _ in $(seq 300); do
    t0=$(ticks "$1"); sleep 1; t1=$(ticks "$1")
    [ $((t1 - t0)) -lt 3 ] && break
  done
  echo "($t1 - $first) / $(getconf CLK_TCK)" | bc -l
}
now() { date +%s.%N; }
lk_count() { # instances Lichtkasten holds of a study (QIDO-RS)
  curl -sf "$BASE/dicomweb/studies?StudyInstanceUID=$1" -H "Authorization: Bearer $TOKEN" |
    jq -r '.[0]["00201208"].Value[0] // 0'
}
or_count() { # instances Orthanc holds of a study
  local id
  id=$(ns curl -sf -X POST "$OR_URL/tools/lookup" --data-binary "$1" | jq -r '.[0].ID // empty')
  [ -n "$id" ] && ns curl -sf "$OR_URL/studies/$id/statistics" | jq -r .CountInstances || echo 0
}
study_uid() { dcmdump +P 0020,000d "$1"/IMG0000.dcm | sed 's/.*\[\(.*\)\].*/\1/'; }

declare -A MBS IPS RSS
# record run door server seconds pid study-uid bytes files
record() {
  local run=$1 door=$2 srv=$3 secs=$4 pid=$5 uid=$6 bytes=$7 files=$8 got idle
  if [ "$srv" = LK ]; then got=$(lk_count "$uid"); else got=$(or_count "$uid"); fi
  idle=$(wait_idle "$pid")
  MBS[$run:$door:$srv]=$(awk -v b="$bytes" -v t="$secs" 'BEGIN {printf "%.1f", b / 1e6 / t}')
  IPS[$run:$door:$srv]=$(awk -v n="$files" -v t="$secs" 'BEGIN {printf "%.0f", n / t}')
  RSS[$run:$door:$srv]=$(hwm "$pid")
  printf '  %-12s %-26s %6.2f s  %6s MB/s  %4s instances/s  peak RSS %4s MiB  stored %s/%s' \
    "$srv" "$door" "$secs" "${MBS[$run:$door:$srv]}" "${IPS[$run:$door:$srv]}" \
    "${RSS[$run:$door:$srv]}" "$got" "$files"
  # Lichtkasten keeps working after it answers: it renders a thumbnail and a preview of
  # every new instance (encrypted, into the render cache).
  if [ "$srv" = LK ]; then printf '  (then %.1f CPU s of background render preparation)' "$idle"; fi
  echo
}

echo "Lichtkasten $("$BIN" --version | awk '{print $2}') (demo: SQLite, filesystem store;"
echo "  every stored object and render encrypted with AES-256-GCM) vs Orthanc $OR_VERSION"
echo "  (SQLite index, files stored as they came; GET /plugins: $OR_PLUGINS)"
if [ ! -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then
  echo "  Orthanc's DICOMweb plugin is not installed, so it is compared through its own"
  echo "  REST door: POST /instances, one request per file, one curl with keep-alive."
fi
echo "  Orthanc started with TCP_NODELAY=$([ "${ORTHANC_NAGLE:-0}" = 1 ] && echo 0 || echo 1) (Nagle off in its dcmtk sockets)"
echo "machine: $(nproc) cores; $(date -u +%Y-%m-%d)"

for run in $(seq "$RUNS"); do
  # A new study per door, since both servers skip instances they already hold; the
  # Orthanc doors take the same study as the Lichtkasten door they are compared with.
  for door in cstore stow form; do
    "$BIN" synth --out "$WORK/$door" --slices "$SLICES" --size 512 >/dev/null 2>&1
  done
  BYTES=$(du -sb "$WORK/cstore" | cut -f1)
  FILES=$(ls "$WORK/cstore" | wc -l)
  echo
  echo "run $run: $FILES files, $((BYTES / 1000000)) MB per study"

  # (b) C-STORE, storescu sending the folder in one association.
  reset_hwm "$LK_PID"; uid=$(study_uid "$WORK/cstore")
  t0=$(now)
  TCP_NODELAY=1 "$STORESCU" -aec "$LK_AE" +sd 127.0.0.1 "$LK_PORT" "$WORK/cstore"
  record "$run" "C-STORE (storescu +sd)" LK "$(echo "$(now) - $t0" | bc)" "$LK_PID" "$uid" "$BYTES" "$FILES"
  reset_hwm "$OR_PID"
  t0=$(now)
  ns env TCP_NODELAY=1 "$STORESCU" -aec ORTHANC +sd 127.0.0.1 "$OR_DICOM" "$WORK/cstore"
  record "$run" "C-STORE (storescu +sd)" Orthanc "$(echo "$(now) - $t0" | bc)" "$OR_PID" "$uid" "$BYTES" "$FILES"

  # (a) HTTP. Lichtkasten: STOW-RS, one multipart/related request (body built first).
  {
    for f in "$WORK"/stow/*.dcm; do
      printf -- '--lkbench\r\nContent-Type: application/dicom\r\n\r\n'
      cat "$f"
      printf '\r\n'
    done
    printf -- '--lkbench--\r\n'
  } >"$WORK/stow.body"
  reset_hwm "$LK_PID"; uid=$(study_uid "$WORK/stow")
  t0=$(now)
  curl -sf -o /dev/null "$BASE/dicomweb/studies" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: multipart/related; type="application/dicom"; boundary=lkbench' \
    --data-binary @"$WORK/stow.body"
  record "$run" "HTTP: STOW-RS one request" LK "$(echo "$(now) - $t0" | bc)" "$LK_PID" "$uid" "$BYTES" "$FILES"
  rm -f "$WORK/stow.body"

  # Orthanc: POST /instances per file (its upload door), the same study; one curl
  # process for all files so the connection is kept alive between requests.
  sep=''
  for f in "$WORK"/stow/*.dcm; do
    printf '%burl = "%s/instances"\ndata-binary = "@%s"\n' "$sep" "$OR_URL" "$f"
    printf 'header = "Content-Type: application/dicom"\noutput = "/dev/null"\n'
    printf 'write-out = "%%{http_code}\\n"\n'
    sep='next\n'
  done >"$WORK/orthanc.curl"
  reset_hwm "$OR_PID"
  t0=$(now)
  ns curl -s -K "$WORK/orthanc.curl" >"$WORK/codes"
  record "$run" "HTTP: POST /instances x N" Orthanc "$(echo "$(now) - $t0" | bc)" "$OR_PID" "$uid" "$BYTES" "$FILES"
  grep -qv '^200$' "$WORK/codes" && echo "  Orthanc answers: $(sort "$WORK/codes" | uniq -c | tr '\n' ' ')"

  # Lichtkasten: the API's upload, one multipart/form-data request of all files.
  for f in "$WORK"/form/*.dcm; do printf 'form = "files=@%s"\n' "$f"; done >"$WORK/form.curl"
  reset_hwm "$LK_PID"; uid=$(study_uid "$WORK/form")
  t0=$(now)
  curl -sf -o /dev/null "$BASE/api/v1/studies" -H "Authorization: Bearer $TOKEN" -K "$WORK/form.curl"
  record "$run" "HTTP: API form-data upload" LK "$(echo "$(now) - $t0" | bc)" "$LK_PID" "$uid" "$BYTES" "$FILES"

  rm -rf "$WORK/cstore" "$WORK/stow" "$WORK/form"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo
echo "Lichtkasten / Orthanc (MB/s; peak RSS)"
for run in $(seq "$RUNS"); do
  for pair in "C-STORE (storescu +sd)|C-STORE (storescu +sd)" \
    "HTTP: STOW-RS one request|HTTP: POST /instances x N" \
    "HTTP: API form-data upload|HTTP: POST /instances x N"; do
    lk=${pair%|*} or=${pair#*|}
    printf '  run %s  %-26s vs %-26s throughput %s  peak RSS %s\n' "$run" "$lk" "$or" \
      "$(ratio "${MBS[$run:$lk:LK]}" "${MBS[$run:$or:Orthanc]}")" \
      "$(ratio "${RSS[$run:$lk:LK]}" "${RSS[$run:$or:Orthanc]}")"
  done
done
