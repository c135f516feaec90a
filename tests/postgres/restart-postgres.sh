#!/usr/bin/env bash
# restart-postgres.sh: start again a server that tests/postgres/start-postgres.sh started in DIR
# and stop-postgres.sh stopped, on the same port, with the same data and password (fault tests:
# the database goes away and comes back).
#
# Usage: restart-postgres.sh DIR PORT
set -euo pipefail

log() { printf 'restart-postgres: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ $# -eq 2 ] || die "usage: restart-postgres.sh DIR PORT"
DIR=$1
PORT=$2
data=$DIR/data
[ -f "$data/PG_VERSION" ] || die "$data holds no PostgreSQL cluster (start it with start-postgres.sh first)"
version=$(cat "$data/PG_VERSION")
pg_ctl=/usr/lib/postgresql/$version/bin/pg_ctl
[ -x "$pg_ctl" ] || die "$pg_ctl not found (the server in $data is PostgreSQL $version)"

cd "$DIR"
if [ "$(id -u)" = 0 ]; then
    as_server() { runuser -u "$(stat -c %U "$data")" -- "$@"; }
else
    as_server() { "$@"; }
fi
as_server "$pg_ctl" --pgdata="$data" --log="$DIR/postgres.log" --options="-p $PORT" \
    --wait --timeout=60 --silent start >&2 \
    || { tail -n 30 "$DIR/postgres.log" >&2; die "the server did not start again"; }
