#!/usr/bin/env bash
# Starts (or reuses) a single-node Garage server for the S3 tests and prints
# the export lines the tests read. Use as: eval "$(bash .ci/s3-garage.sh)"
# Only the export lines go to stdout so that `eval` sees nothing else.
set -euo pipefail

STATE_DIR=${LK_GARAGE_DIR:-$HOME/.cache/lichtkasten-garage}
S3_ADDR=${LK_GARAGE_S3_ADDR:-127.0.0.1:3900}
RPC_ADDR=${LK_GARAGE_RPC_ADDR:-127.0.0.1:3901}
ADMIN_ADDR=${LK_GARAGE_ADMIN_ADDR:-127.0.0.1:3903}
BUCKET=${LK_GARAGE_BUCKET:-lichtkasten-test}
KEY_NAME=${LK_GARAGE_KEY_NAME:-lichtkasten-test}
REGION=garage
START_TIMEOUT=${LK_GARAGE_START_TIMEOUT:-60}

log() { echo "s3-garage.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# ---- binary --------------------------------------------------------------
export PATH="$PATH:$HOME/.cargo/bin"
if ! command -v garage >/dev/null 2>&1; then
    log "garage not found, running cargo install garage --locked (takes a while)"
    # A fixed target dir lets a later install reuse the compiled deps.
    CARGO_TARGET_DIR=${GARAGE_TARGET_DIR:-$HOME/.cache/garage-target} \
        cargo install garage --locked >&2
fi
GARAGE_BIN=$(command -v garage)

# ---- config --------------------------------------------------------------
mkdir -p "$STATE_DIR/meta" "$STATE_DIR/data"
CONF="$STATE_DIR/garage.toml"
SECRET_FILE="$STATE_DIR/rpc_secret"
PID_FILE="$STATE_DIR/garage.pid"
LOG_FILE="$STATE_DIR/garage.log"

# The secret is made once: the node's metadata is tied to it.
if [ ! -s "$SECRET_FILE" ]; then
    (umask 077; od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$SECRET_FILE")
fi
# Garage refuses secret files that others can read.
chmod 600 "$SECRET_FILE"

# Rewritten every run so that changed ports take effect; the data stays.
cat >"$CONF.tmp" <<EOF
metadata_dir = "$STATE_DIR/meta"
data_dir = "$STATE_DIR/data"
# sqlite is compiled in by default and needs no tuning for a test node.
db_engine = "sqlite"
replication_factor = 1

rpc_bind_addr = "$RPC_ADDR"
rpc_public_addr = "$RPC_ADDR"
rpc_secret_file = "$SECRET_FILE"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "$S3_ADDR"

[admin]
api_bind_addr = "$ADMIN_ADDR"
EOF
mv "$CONF.tmp" "$CONF"

g() { "$GARAGE_BIN" -c "$CONF" "$@"; }

# `garage status` talks RPC with our secret and node key, so it succeeds only
# against the server of this state dir. Garage keeps running when it cannot
# bind the S3 port, so also check that an anonymous S3 request gets Garage's
# error XML naming our region (not some other program's answer).
answers() {
    local body
    g status >/dev/null 2>&1 || return 1
    body=$(curl -s --max-time 5 "http://$S3_ADDR/$BUCKET") || return 1
    [[ $body == *"<Region>$REGION</Region>"* ]]
}

# ---- server --------------------------------------------------------------
if answers; then
    log "reusing the Garage server of $STATE_DIR"
else
    # A server of ours that runs but does not answer (started with other ports,
    # or lost its S3 port) would hold the db lock; stop it and start afresh.
    if [ -s "$PID_FILE" ]; then
        old=$(cat "$PID_FILE")
        if kill -0 "$old" 2>/dev/null && tr '\0' ' ' <"/proc/$old/cmdline" | grep -qF "$CONF"; then
            log "stopping unresponsive Garage server (pid $old)"
            kill "$old" || true
            for _ in $(seq 1 20); do kill -0 "$old" 2>/dev/null || break; sleep 0.5; done
        fi
        rm -f "$PID_FILE"
    fi
    log "starting Garage server, log in $LOG_FILE"
    RUST_LOG=${RUST_LOG:-garage=info} nohup "$GARAGE_BIN" -c "$CONF" server \
        >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    deadline=$((SECONDS + START_TIMEOUT))
    until answers; do
        if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
            tail -n 20 "$LOG_FILE" >&2 || true
            die "Garage server exited during startup (log: $LOG_FILE)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$LOG_FILE" >&2 || true
            die "Garage server did not answer within ${START_TIMEOUT}s; ports $S3_ADDR, $RPC_ADDR taken? (log: $LOG_FILE)"
        fi
        sleep 0.5
    done
fi

# ---- layout --------------------------------------------------------------
layout_version() { g layout show | sed -n 's/^Current cluster layout version: *\([0-9]*\).*/\1/p'; }
version=$(layout_version)
[ -n "$version" ] || die "could not read the cluster layout version"
if [ "$version" = 0 ]; then
    node_id=$(g node id -q | cut -d@ -f1)
    log "assigning layout to node ${node_id:0:16}"
    g layout assign -z dc1 -c 1G "$node_id" >&2
    g layout apply --version $((version + 1)) >&2
fi

# ---- bucket and key ------------------------------------------------------
if ! g bucket info "$BUCKET" >/dev/null 2>&1; then
    log "creating bucket $BUCKET"
    g bucket create "$BUCKET" >&2
fi
if ! g key info "$KEY_NAME" >/dev/null 2>&1; then
    log "creating key $KEY_NAME"
    # Its output includes the secret; keep that out of CI logs.
    g key create "$KEY_NAME" >/dev/null
fi
# Idempotent: granting what is already granted changes nothing.
g bucket allow --read --write --owner "$BUCKET" --key "$KEY_NAME" >/dev/null

key_id=$(g key info --key-id "$KEY_NAME")
secret=$(g key info --secret-key "$KEY_NAME")
[ -n "$key_id" ] && [ -n "$secret" ] && [ "$secret" != "(redacted)" ] \
    || die "could not read back key $KEY_NAME"

echo "export LICHTKASTEN_TEST_S3_ENDPOINT=http://$S3_ADDR"
echo "export LICHTKASTEN_TEST_S3_BUCKET=$BUCKET"
echo "export LICHTKASTEN_TEST_S3_REGION=$REGION"
echo "export LICHTKASTEN_TEST_S3_ACCESS_KEY_ID=$key_id"
echo "export LICHTKASTEN_TEST_S3_SECRET_ACCESS_KEY=$secret"
