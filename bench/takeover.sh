#!/usr/bin/env bash
# takeover.sh - how long the leader lease takes to move after its holder is killed (results go
# in docs/benchmarks.md).
#   bash bench/takeover.sh [LEASE=15s] [RUNS=5]
# Starts a private PostgreSQL (tests/postgres/start-postgres.sh), then for each run two release
# replicas (`serve`, one fresh database, one shared encryption key, `leader_lease = LEASE`).
# Once one of them holds the lease it waits a random part of a renewal interval (so that the
# kill falls anywhere between two renewals), kills the holder with SIGKILL (no release), and
# measures from the kill until the survivor's /metrics shows `credential_issuer_leader 1`
# (polled every 50 ms). Prints each run and min/median/max, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
lease=${1:-15s}; runs=${2:-5}
for tool in curl psql python3; do
  command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install curl postgresql-client python3" >&2; exit 1; }
done
cargo build --release --quiet -p credential-issuer --bins
bin=target/release/credential-issuer
work=$(mktemp -d)
# Its own directory right under /tmp: as root the server runs as the postgres user, who cannot
# enter the private work directory.
pgdir=$(mktemp -u /tmp/takeover-pg.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  bash tests/postgres/stop-postgres.sh "$pgdir" >/dev/null 2>&1 || true
  rm -rf "$work" "$pgdir"
}
trap cleanup EXIT
# The URL holds the password: it stays in a file and the environment, never on stdout.
bash tests/postgres/start-postgres.sh "$pgdir" > "$work/pg.url" 2>"$work/pg.log" ||
  { cat "$work/pg.log" >&2; exit 1; }
head -c 32 /dev/urandom | base64 > "$work/seal.key"
printf 'leader_lease = "%s"\n' "$lease" > "$work/issuer.toml"
renew_ms=$("$bin" check-config --config "$work/issuer.toml" >/dev/null &&
  python3 -c 'import sys; s=sys.argv[1]; n=int(s[:-1]); print(n*{"s":1,"m":60}[s[-1]]*1000//3)' "$lease")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { echo "$EPOCHREALTIME"; }
is_leader() { curl -skf --max-time 1 "https://127.0.0.1:$1/metrics" 2>/dev/null | grep -qx 'credential_issuer_leader 1'; }

results=()
for run in $(seq "$runs"); do
  db="takeover$run"
  psql -q "$(cat "$work/pg.url")" -c "CREATE DATABASE $db" >/dev/null
  url=$(sed "s#/postgres\$#/$db#" "$work/pg.url")
  ports=(); pids=()
  for name in a b; do
    port=$(free_port); ports+=("$port")
    CREDENTIAL_ISSUER_DATABASE_URL=$url HOSTNAME="replica-$name" RUST_LOG=info \
      "$bin" serve --config "$work/issuer.toml" --data-dir "$work/run$run-$name" \
      --encryption-key-file "$work/seal.key" --listen "127.0.0.1:$port" \
      --issuer-url "https://127.0.0.1:$port" 2>"$work/run$run-$name.log" &
    pids+=("$!")
  done
  leader=""
  for _ in $(seq 600); do
    if is_leader "${ports[0]}"; then leader=0; break; fi
    if is_leader "${ports[1]}"; then leader=1; break; fi
    sleep 0.1
  done
  [ -n "$leader" ] || { echo "run $run: no replica took the lease within 60 s" >&2; cat "$work"/run"$run"-*.log >&2; exit 1; }
  survivor=$((1 - leader))
  sleep "$(python3 -c "import random; print(random.uniform(0, $renew_ms / 1000))")"
  killed_at=$(now)
  kill -9 "${pids[$leader]}"
  wait "${pids[$leader]}" 2>/dev/null || true
  deadline=$((SECONDS + 600))
  until is_leader "${ports[$survivor]}"; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "run $run: no takeover within 600 s" >&2; exit 1; }
    sleep 0.05
  done
  took=$(python3 -c "print(f'{$(now) - $killed_at:.2f}')")
  results+=("$took")
  echo "run $run: lease $lease, killed replica $leader, the other held the lease after $took s"
  kill -9 "${pids[$survivor]}" 2>/dev/null || true
  wait "${pids[$survivor]}" 2>/dev/null || true
done
python3 - "$lease" "${results[@]}" <<'EOF'
import statistics, sys
lease, xs = sys.argv[1], sorted(float(x) for x in sys.argv[2:])
print(f"lease {lease}, {len(xs)} runs: takeover min {xs[0]:.2f} s, median {statistics.median(xs):.2f} s, max {xs[-1]:.2f} s")
EOF
