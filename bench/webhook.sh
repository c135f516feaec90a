#!/usr/bin/env bash
# webhook.sh - load test of the issuer's token-review webhook (POST /authenticate/default) on
# loopback, for cached sessions (results go in docs/benchmarks.md). Seeds TOKENS sessions,
# starts the release issuer on a free loopback port, exchanges each session's refresh token for
# a real access token, runs wrk for DURATION posting TokenReviews of those tokens round robin,
# prints throughput/latency, the issuer's RSS and its webhook metrics, and stops the issuer.
#   bash bench/webhook.sh [DURATION=20s] [CONNECTIONS=64] [TOKENS=64]
# The issuer logs at its default level (info) unless RUST_LOG says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20s}; conns=${2:-64}; tokens=${3:-64}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet -p credential-issuer --bins --examples
work=$(mktemp -d); trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/examples/bench_seed "$work/data" "$tokens" "$work/refresh.txt"
RUST_LOG=${RUST_LOG:-info} target/release/credential-issuer serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
  --issuer-url "https://127.0.0.1:$port" 2>"$work/issuer.log" & pid=$!
for _ in $(seq 100); do curl -skf "https://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
while read -r refresh; do
  curl -sk "https://127.0.0.1:$port/oauth/token" -d grant_type=refresh_token \
    -d client_id=kubectl-credential --data-urlencode "refresh_token=$refresh" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
done <"$work/refresh.txt" >"$work/access.txt"
echo "idle RSS: $(awk '/VmRSS/{print $2" "$3}' /proc/$pid/status), peak so far: $(awk '/VmHWM/{print $2" "$3}' /proc/$pid/status)"
WEBHOOK_TOKENS="$work/access.txt" wrk -t2 -c"$conns" -d"$duration" --latency \
  -s bench/webhook.lua "https://127.0.0.1:$port"
echo "RSS after load: $(awk '/VmRSS/{print $2" "$3}' /proc/$pid/status), peak: $(awk '/VmHWM/{print $2" "$3}' /proc/$pid/status)"
curl -sk "https://127.0.0.1:$port/metrics" | grep -E '^credential_issuer_webhook_(requests_total\{result="authenticated"|duration_seconds_(bucket\{le="0.00(05|1|2|5)"|count))'
