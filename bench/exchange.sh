#!/usr/bin/env bash
# exchange.sh - load test of the issuer's RFC 8693 token exchange (CI jobs) on loopback, with
# the platform's JWKS cached (results go in docs/benchmarks.md). Makes a key, its JWKS and
# COUNT distinct identity tokens, serves the JWKS with a plain file server on loopback, starts
# the release issuer with one [[workloads]] rule (single_use, so every request also reserves
# its jti), runs wrk for DURATION and prints throughput/latency and the issuer's RSS.
#   bash bench/exchange.sh [DURATION=20s] [CONNECTIONS=32] [COUNT=300000]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20s}; conns=${2:-32}; count=${3:-300000}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet -p credential-issuer --bins --examples
work=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); jwks_port=$(free_port)
platform="http://127.0.0.1:$jwks_port"
target/release/examples/bench_workload "$platform" bench "$count" "$work/platform"
python3 -m http.server --bind 127.0.0.1 --directory "$work/platform" "$jwks_port" >/dev/null 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf "$platform/jwks.json" >/dev/null && break; sleep 0.1; done
cat > "$work/issuer.toml" <<TOML
[[workloads]]
name = "bench"
issuer = "$platform"
jwks_url = "$platform/jwks.json"
audience = "bench"
identity = "ci:bench:{repository}"
groups = ["deployers"]
clusters = ["default"]
single_use = true
[workloads.claims]
repository = "acme/deploy"
ref = "refs/heads/main"
TOML
RUST_LOG=warn target/release/credential-issuer serve --config "$work/issuer.toml" --data-dir "$work/data" \
  --listen "127.0.0.1:$port" --issuer-url "https://127.0.0.1:$port" >/dev/null 2>"$work/issuer.log" & pids+=($!)
pid=${pids[1]}
for _ in $(seq 100); do curl -skf "https://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
# One exchange first, so that the JWKS is fetched and cached before the clock starts.
first=$(head -n 1 "$work/platform/tokens.txt")
curl -skf "https://127.0.0.1:$port/oauth/token" -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
  -d subject_token_type=urn:ietf:params:oauth:token-type:jwt -d audience=default \
  --data-urlencode "subject_token=$first" >/dev/null || { tail -5 "$work/issuer.log" >&2; echo "the first exchange failed" >&2; exit 1; }
tail -n +2 "$work/platform/tokens.txt" > "$work/tokens.txt"
echo "idle RSS: $(awk '/VmRSS/{print $2" "$3}' /proc/$pid/status)"
EXCHANGE_TOKENS="$work/tokens.txt" WRK_THREADS=2 wrk -t2 -c"$conns" -d"$duration" --latency \
  -s bench/exchange.lua "https://127.0.0.1:$port"
echo "RSS after load: $(awk '/VmRSS/{print $2" "$3}' /proc/$pid/status), peak: $(awk '/VmHWM/{print $2" "$3}' /proc/$pid/status)"
