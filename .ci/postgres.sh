#!/usr/bin/env bash
# Makes sure the local PostgreSQL answers on 127.0.0.1:5432 and prints the
# export line the tests read. Use as: eval "$(bash .ci/postgres.sh)"
# Only the export line goes to stdout so that `eval` sees nothing else.
set -euo pipefail

PG_HOST=${LK_PG_HOST:-127.0.0.1}
PG_PORT=${LK_PG_PORT:-5432}
PG_USER=${LK_PG_USER:-postgres}
PG_DB=${LK_PG_DB:-postgres}

log() { echo "postgres.sh: $*" >&2; }

if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
    # The cluster is installed from Debian's packages; pick the newest
    # version directory in case several are present.
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$version" ]; then
        log "no PostgreSQL cluster under /etc/postgresql (apt-get install postgresql)"
        exit 1
    fi
    log "starting PostgreSQL $version/main"
    # --skip-systemctl-redirect: there is no systemd here.
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
    for _ in $(seq 1 60); do
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break
        sleep 0.5
    done
    if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
        log "PostgreSQL did not come up on $PG_HOST:$PG_PORT within 30s"
        exit 1
    fi
fi

# Tests create throwaway databases, so fail early if the role may not.
can_create=$(psql -X -At -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" \
    -c "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user")
if [ "$can_create" != "t" ]; then
    log "role $PG_USER cannot CREATE DATABASE"
    exit 1
fi

echo "export LICHTKASTEN_TEST_DATABASE_URL=postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB"
