#!/usr/bin/env bash
# start-postgres.sh: start a private PostgreSQL server for the tests, with everything in DIR.
#
# Usage:
#   start-postgres.sh DIR    initdb in DIR/data, start the server, print its superuser URL
#   stop-postgres.sh DIR     stop it again (tests/postgres/stop-postgres.sh)
#
# The only line on stdout is `postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres`; progress
# and errors go to stderr. tests/run.sh starts one server per run this way and exports that URL as
# CREDENTIAL_TEST_POSTGRES_URL; the harness (tests/harness/postgres.rs) does the same when the
# variable is unset. By hand: `url=$(bash tests/postgres/start-postgres.sh /tmp/pg)`, then
# `psql "$url"`, then `bash tests/postgres/stop-postgres.sh /tmp/pg`.
#
# Why this shape:
#  * Debian's `postgresql` package puts the server under /usr/lib/postgresql/VERSION/bin, not on
#    PATH; the newest installed version is used.
#  * initdb refuses to run as root. As root, the server runs as the `postgres` system user (the
#    Debian package creates it) and DIR is handed to that user; otherwise as the current user.
#  * Authentication is scram-sha-256 with a random password, over TCP and the socket alike, so
#    that the issuer is always tested with a password in its database URL, as in production.
#  * The server listens on 127.0.0.1 only, on a port that is free right now, and has its unix
#    socket in DIR. PostgreSQL cannot be handed a bound socket, so another process may take the
#    port in between; the start is then retried with a new port.
#  * Tuned for tests, not for durability: fsync, synchronous_commit and full_page_writes off,
#    small shared_buffers, room for 300 connections (several issuers' pools and test suites).
#  * DIR must be new or empty: every start is fresh, so no run sees another run's data.
#
# After the start, DIR holds data/ (the cluster, with postgresql.conf), postgres.log and the
# socket .s.PGSQL.PORT. The password is only in the printed URL, nowhere in DIR.
set -euo pipefail

log() { printf 'start-postgres: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ $# -eq 1 ] || die "usage: start-postgres.sh DIR"
DIR=$1

# ------------------------------------------------------------------ binaries
bin_dir=""
for candidate in $(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V); do
    bin_dir=$(dirname "$candidate")
done
[ -n "$bin_dir" ] && [ -x "$bin_dir/pg_ctl" ] \
    || die "PostgreSQL server not found (no /usr/lib/postgresql/*/bin/initdb): run \`apt-get install postgresql\` (or \`bash tests/run.sh\`, which installs every test dependency)"
command -v python3 >/dev/null 2>&1 || die "python3 not found: run \`apt-get install python3\`"

# ------------------------------------------------------------------ directory and user
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
[ -z "$(ls -A "$DIR")" ] || die "$DIR is not empty: give a new or empty directory"
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 \
        || die "running as root, but there is no \`postgres\` user to run the server as: run \`apt-get install postgresql\`"
    command -v runuser >/dev/null 2>&1 || die "runuser not found: run \`apt-get install util-linux\`"
    chown postgres: "$DIR"
    as_server() { runuser -u postgres -- "$@"; }
    as_server test -w "$DIR" -a -x "$DIR" \
        || die "the postgres user cannot use $DIR: one of its parent directories is not searchable by others (use a directory under /tmp)"
else
    as_server() { "$@"; }
fi
chmod 700 "$DIR"
# initdb and the server must be able to stat their working directory (root's may be /root).
cd "$DIR"

# ------------------------------------------------------------------ initdb
password=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
# initdb reads the superuser's password from a file; it exists only while initdb runs.
pwfile=$DIR/initdb-password
(umask 077 && printf '%s\n' "$password" > "$pwfile")
[ "$(id -u)" != 0 ] || chown postgres: "$pwfile"
if ! as_server "$bin_dir/initdb" --pgdata="$DIR/data" --username=postgres --pwfile="$pwfile" \
        --auth=scram-sha-256 --encoding=UTF8 --locale=C --no-sync >"$DIR/initdb.log" 2>&1; then
    rm -f "$pwfile"
    cat "$DIR/initdb.log" >&2
    die "initdb failed (its output above)"
fi
rm -f "$pwfile"

as_server tee -a "$DIR/data/postgresql.conf" >/dev/null <<EOF

# ---- tests/postgres/start-postgres.sh: a private test server, tuned for speed, not durability
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
max_connections = 300
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

# ------------------------------------------------------------------ start
# A TCP port on 127.0.0.1 that is free right now (see the header about the race).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port=""
for attempt in 1 2 3 4 5; do
    candidate=$(free_port)
    : > "$DIR/postgres.log"
    [ "$(id -u)" != 0 ] || chown postgres: "$DIR/postgres.log"
    # -w waits until the server accepts connections (or exits); the port is remembered in
    # data/postmaster.opts, so `pg_ctl restart` keeps it.
    if as_server "$bin_dir/pg_ctl" --pgdata="$DIR/data" --log="$DIR/postgres.log" \
            --options="-p $candidate" --wait --timeout=60 --silent start >&2; then
        port=$candidate
        break
    fi
    if grep -q 'could not bind\|Address already in use' "$DIR/postgres.log"; then
        log "port $candidate was taken meanwhile (attempt $attempt), trying another"
        continue
    fi
    tail -n 30 "$DIR/postgres.log" >&2
    die "the server did not start (the end of $DIR/postgres.log above)"
done
[ -n "$port" ] || die "no free port after 5 attempts"

log "PostgreSQL $(basename "$(dirname "$bin_dir")") listening on 127.0.0.1:$port (data in $DIR/data)"
printf 'postgres://postgres:%s@127.0.0.1:%s/postgres\n' "$password" "$port"
