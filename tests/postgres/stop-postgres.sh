#!/usr/bin/env bash
# stop-postgres.sh: stop the server tests/postgres/start-postgres.sh started in DIR.
#
# Usage: stop-postgres.sh DIR
#
# Immediate shutdown: the data is thrown away afterwards, so there is nothing to flush. Stopping
# a server that is not running (or was never started in DIR) is not an error, so the harness's
# reaper and tests/run.sh's exit trap can call this whatever happened before. DIR is left in
# place; removing it is the caller's business.
set -euo pipefail

log() { printf 'stop-postgres: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ $# -eq 1 ] || die "usage: stop-postgres.sh DIR"
data=$1/data
[ -f "$data/postmaster.pid" ] || exit 0

# The server's own version, not the newest installed one.
version=$(cat "$data/PG_VERSION")
pg_ctl=/usr/lib/postgresql/$version/bin/pg_ctl
[ -x "$pg_ctl" ] || die "$pg_ctl not found (the server in $data is PostgreSQL $version)"

cd "$1"
if [ "$(id -u)" = 0 ]; then
    runuser -u "$(stat -c %U "$data")" -- "$pg_ctl" --pgdata="$data" --mode=immediate --wait --silent stop
else
    "$pg_ctl" --pgdata="$data" --mode=immediate --wait --silent stop
fi
