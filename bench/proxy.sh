#!/usr/bin/env bash
# proxy.sh - the impersonating proxy against direct access, side by side in one run, on a real
# kube-apiserver (results go in docs/benchmarks.md):
#   1. `kubectl get namespaces` through the proxy vs direct (hyperfine; both with a static bearer
#      token in the kubeconfig, so only the path differs, not the plugin);
#   2. GET /api/v1/namespaces throughput through the proxy vs direct (wrk);
#   3. the proxy's memory with WATCHES open watches (bench/watches.py).
# Direct uses a ServiceAccount token with the same RBAC as the person behind the proxy.
#   bash bench/proxy.sh [DURATION=15s] [CONNECTIONS=16] [WATCHES=1000]
# Needs what tests/run.sh installs (kube-apiserver, etcd, kubectl), plus wrk and hyperfine.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15s}; conns=${2:-16}; watches=${3:-1000}
for t in wrk hyperfine kubectl etcd; do
  command -v "$t" >/dev/null || { echo "$t not found: apt-get install wrk hyperfine etcd-server; kubectl: bash tests/run.sh" >&2; exit 1; }
done
cargo build --release --quiet -p credential-issuer --bins --examples
work=$(mktemp -d); pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; bash tests/envtest/start-control-plane.sh stop "$work/cp" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A control plane with no --oidc-* and no webhook flag: only the proxy can bring people in.
bash tests/envtest/start-control-plane.sh start "$work/cp" >/dev/null 2>"$work/cp.log" || { cat "$work/cp.log"; exit 1; }
. "$work/cp/env"
admin=(kubectl --kubeconfig "$KUBE_ADMIN_KUBECONFIG")
"${admin[@]}" create namespace credential-issuer >/dev/null
"${admin[@]}" create serviceaccount credential-proxy -n credential-issuer >/dev/null
"${admin[@]}" apply -f install/proxy-rbac.yaml >/dev/null
"${admin[@]}" create clusterrole bench-ns-reader --verb=get,list,watch --resource=namespaces >/dev/null
"${admin[@]}" create clusterrolebinding bench-people --clusterrole bench-ns-reader --group credential:k8s-readers >/dev/null
"${admin[@]}" create serviceaccount bench -n default >/dev/null
"${admin[@]}" create clusterrolebinding bench-sa --clusterrole bench-ns-reader --serviceaccount default:bench >/dev/null
proxy_sa_token=$("${admin[@]}" create token credential-proxy -n credential-issuer --duration 2h)
sa_token=$("${admin[@]}" create token bench -n default --duration 2h)
kubeconfig() { # FILE SERVER CA TOKEN
  cat > "$1" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "$2", certificate-authority: "$3"}}]
users: [{name: u, user: {token: "$4"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
YAML
}
kubeconfig "$work/proxy-credential.kubeconfig" "$KUBE_APISERVER_URL" "$KUBE_CA_FILE" "$proxy_sa_token"

port=$(free_port); proxy_port=$(free_port)
issuer="https://127.0.0.1:$port"
cat > "$work/issuer.toml" <<TOML
issuer_url = "$issuer"
listen = "127.0.0.1:$port"
[[clusters]]
name = "default"
audience = "kubernetes"
server = "$KUBE_APISERVER_URL"
ca_file = "$KUBE_CA_FILE"
[clusters.proxy]
listen = "127.0.0.1:$proxy_port"
url = "https://127.0.0.1:$proxy_port"
kubeconfig = "$work/proxy-credential.kubeconfig"
TOML
target/release/examples/bench_seed "$work/data" 4 "$work/refresh.txt" 2>/dev/null
RUST_LOG=warn target/release/credential-issuer serve --config "$work/issuer.toml" --data-dir "$work/data" >/dev/null 2>"$work/issuer.log" & pids+=($!)
for _ in $(seq 100); do curl -skf "$issuer/readyz" >/dev/null && break; sleep 0.1; done
RUST_LOG=warn target/release/credential-issuer proxy --cluster default --config "$work/issuer.toml" --data-dir "$work/data" 2>"$work/proxy.log" & pids+=($!)
proxy_pid=${pids[1]}
proxy="https://127.0.0.1:$proxy_port"
ca="$work/data/tls/ca.crt"
for _ in $(seq 100); do curl -s --cacert "$ca" "$proxy/version" -o /dev/null && break; sleep 0.1; done
# One person's access token (5 minutes, plenty for the run): a refresh of a seeded session.
token=$(curl -sf --cacert "$ca" "$issuer/oauth/token" -d grant_type=refresh_token -d client_id=kubectl-credential \
  --data-urlencode "refresh_token=$(head -n 1 "$work/refresh.txt")" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
kubeconfig "$work/through-proxy.kubeconfig" "$proxy" "$ca" "$token"
kubeconfig "$work/direct.kubeconfig" "$KUBE_APISERVER_URL" "$KUBE_CA_FILE" "$sa_token"
kubectl --kubeconfig "$work/through-proxy.kubeconfig" get namespaces >/dev/null
kubectl --kubeconfig "$work/direct.kubeconfig" get namespaces >/dev/null

echo "== 1. kubectl get namespaces: through the proxy vs direct"
hyperfine -N --warmup 5 --runs 60 --export-json "$work/kubectl.json" \
  -n proxy "kubectl --kubeconfig $work/through-proxy.kubeconfig get namespaces" \
  -n direct "kubectl --kubeconfig $work/direct.kubeconfig get namespaces" | grep -E "Time|±|faster" || true
python3 - "$work/kubectl.json" <<'PY'
import json, sys
r = {x["command"]: sorted(x["times"]) for x in json.load(open(sys.argv[1]))["results"]}
def pct(v, p): return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] * 1000
for p in (50, 99):
    print(f"p{p}: proxy {pct(r['proxy'], p):.1f} ms, direct {pct(r['direct'], p):.1f} ms, added {pct(r['proxy'], p) - pct(r['direct'], p):.1f} ms")
PY

echo "== 2. GET /api/v1/namespaces throughput ($conns connections, $duration)"
cat > "$work/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
function done(s, l) io.write(string.format("requests/s: %.0f, p50: %.2f ms, p99: %.2f ms, non-2xx: %d\n", s.requests / (s.duration / 1e6), l:percentile(50) / 1000, l:percentile(99) / 1000, s.errors.status)) end
LUA
echo -n "direct: "; BENCH_TOKEN=$sa_token wrk -t2 -c"$conns" -d"$duration" -s "$work/get.lua" "$KUBE_APISERVER_URL/api/v1/namespaces" | tail -n 1
echo -n "proxy:  "; BENCH_TOKEN=$token wrk -t2 -c"$conns" -d"$duration" -s "$work/get.lua" "$proxy/api/v1/namespaces" | tail -n 1
echo "proxy RSS after load: $(awk '/VmRSS/{print $2" "$3}' /proc/$proxy_pid/status)"

echo "== 3. the proxy's memory with $watches open watches"
echo "proxy RSS before: $(awk '/VmRSS/{print $2" "$3}' /proc/$proxy_pid/status)"
python3 bench/watches.py "127.0.0.1" "$proxy_port" "$ca" "$token" "$watches" "$proxy_pid"
echo "proxy RSS after the watches closed: $(awk '/VmRSS/{print $2" "$3}' /proc/$proxy_pid/status)"
