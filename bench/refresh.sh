#!/usr/bin/env bash
# refresh.sh - load test of the issuer's refresh-token grant on loopback (results go in
# docs/benchmarks.md). Seeds sessions, starts the release issuer on a free loopback port, runs
# wrk for DURATION, prints throughput/latency and the issuer's RSS, and stops the issuer.
#   bash bench/refresh.sh [DURATION=20s] [CONNECTIONS=64] [SESSIONS=512]
# With CREDENTIAL_ISSUER_DATABASE_URL=postgres://... the issuer (and the seeding) use that
# PostgreSQL database instead of SQLite (e.g. one printed by tests/postgres/start-postgres.sh
# plus a fresh database: the script creates tables, so use an empty one).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20s}; conns=${2:-64}; sessions=${3:-512}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet -p credential-issuer --bins --examples
work=$(mktemp -d); trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/examples/bench_seed "$work/data" "$sessions" "$work/tokens.txt"
extra=()
if [ -n "${CREDENTIAL_ISSUER_DATABASE_URL:-}" ]; then
  head -c 32 /dev/urandom | base64 > "$work/seal.key"
  extra=(--encryption-key-file "$work/seal.key")
  echo "store: PostgreSQL"
else
  echo "store: SQLite"
fi
RUST_LOG=warn target/release/credential-issuer serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
  --issuer-url "https://127.0.0.1:$port" "${extra[@]}" 2>"$work/issuer.log" & pid=$!
for _ in $(seq 100); do curl -skf "https://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
echo "idle RSS: $(awk '/VmRSS/{print $2" "$3}' /proc/$pid/status)"
REFRESH_TOKENS="$work/tokens.txt" WRK_THREADS=2 wrk -t2 -c"$conns" -d"$duration" --latency \
  -s bench/refresh.lua "https://127.0.0.1:$port"
echo "RSS after load: $(awk '/VmRSS/{print $2" "$3}' /proc/$pid/status), peak: $(awk '/VmHWM/{print $2" "$3}' /proc/$pid/status)"
