#!/usr/bin/env bash
# plugin.sh - benchmarks of kubectl-credential as kubectl uses it (results in docs/benchmarks.md):
#   1. cached-hit `kubectl-credential get` next to /bin/true (hyperfine), and its peak RSS;
#   2. `kubectl get namespaces` through the plugin next to the same kubectl with a static token,
#      (a ServiceAccount token with the same role) against a real kube-apiserver (tests/envtest) whose --oidc-* flags trust the issuer.
# It starts the release issuer and a control plane on loopback, logs a user in through the
# device flow (driving the pages with curl, as a browser would), and stops everything on exit.
#   bash bench/plugin.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for c in hyperfine kubectl curl etcd; do command -v $c >/dev/null || [ -x /usr/sbin/$c ] || { echo "$c not found: run bash tests/run.sh (installs test dependencies) or apt-get install hyperfine" >&2; exit 1; }; done
cargo build --release --quiet --bins
bin=$PWD/target/release
work=$(mktemp -d)
cleanup() { kill "${issuer_pid:-}" 2>/dev/null || true; [ -z "${cp:-}" ] || bash tests/envtest/start-control-plane.sh stop "$cp" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
issuer=https://127.0.0.1:$port
cat > "$work/issuer.toml" <<TOML
[[clusters]]
name = "bench"
audience = "kubernetes"
TOML
RUST_LOG=warn "$bin/credential-issuer" serve --config "$work/issuer.toml" --data-dir "$work/data" \
  --listen "127.0.0.1:$port" --issuer-url "$issuer" 2>"$work/issuer.log" & issuer_pid=$!
ca=$work/data/tls/ca.crt
for _ in $(seq 100); do [ -s "$ca" ] && curl -sf --cacert "$ca" "$issuer/readyz" >/dev/null && break; sleep 0.1; done
echo 'bench password 123' | "$bin/credential-issuer" user add bencher --group k8s-readers --data-dir "$work/data" >/dev/null

# Control plane trusting the issuer.
cp=$work/cp
OIDC_ISSUER_URL=$issuer OIDC_CA_FILE=$ca OIDC_CLIENT_ID=kubernetes OIDC_USERNAME_CLAIM=preferred_username \
  OIDC_USERNAME_PREFIX=credential: OIDC_GROUPS_PREFIX=credential: \
  bash tests/envtest/start-control-plane.sh start "$cp" >/dev/null 2>"$work/cp.log" || { cat "$work/cp.log"; exit 1; }
. "$cp/env"
# The example binds a role in namespace team-b, which it asks the operator to create first.
kubectl --kubeconfig "$KUBE_ADMIN_KUBECONFIG" create namespace team-b >/dev/null
kubectl --kubeconfig "$KUBE_ADMIN_KUBECONFIG" apply -f install/rbac-example.yaml >/dev/null
# The static-token baseline: a ServiceAccount token (TokenRequest) with the same role.
admin=(kubectl --kubeconfig "$KUBE_ADMIN_KUBECONFIG")
"${admin[@]}" create serviceaccount bench -n default >/dev/null
"${admin[@]}" create clusterrolebinding bench-sa --clusterrole namespace-reader --serviceaccount default:bench >/dev/null
static_token=$("${admin[@]}" create token bench -n default --duration 1h)

# Log in: the plugin in the background, the pages driven with curl as a browser would.
export XDG_CACHE_HOME=$work/cache HOME=$work/home
mkdir -p "$HOME"
code_re='[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}'
csrf() { sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -1; }
# Approves the user code that appears in the files FILES... (the plugins' stderr), driving the
# pages as a browser would, with its own cookie jar; sets approved_at to the time of the click.
approve_code() {
    for _ in $(seq 100); do cat "$@" 2>/dev/null | grep -qoE "$code_re" && break; sleep 0.1; done
    local code; code=$(cat "$@" | grep -oE "$code_re" | head -1)
    local jar; jar=$(mktemp -p "$work"); local c=(curl -sf --cacert "$ca" -b "$jar" -c "$jar")
    local t; t=$("${c[@]}" "$issuer/device" | csrf)
    "${c[@]}" -o /dev/null --data-urlencode "user_code=$code" --data-urlencode "csrf_token=$t" "$issuer/device"
    t=$("${c[@]}" "$issuer/login" | csrf)
    "${c[@]}" -o /dev/null --data-urlencode "username=bencher" --data-urlencode "password=bench password 123" --data-urlencode "csrf_token=$t" "$issuer/login"
    t=$("${c[@]}" "$issuer/consent" | csrf)
    approved_at=$(date +%s.%N)
    "${c[@]}" -o /dev/null --data-urlencode "action=approve" --data-urlencode "csrf_token=$t" "$issuer/consent"
}
login_via_pages() { # TOKEN_CACHE
    "$bin/kubectl-credential" login --issuer "$issuer" --cluster bench --issuer-ca "$ca" --token-cache "$1" --no-browser \
        2>"$work/login.$1.log" & local login_pid=$!
    approve_code "$work/login.$1.log"
    wait "$login_pid"
}
login_via_pages file
args=(--issuer "$issuer" --cluster bench --issuer-ca "$ca" --token-cache file --no-browser)

# Kubeconfigs: through the plugin, and with the admin's static token.
cat > "$work/plugin.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: bench, cluster: {server: "$KUBE_APISERVER_URL", certificate-authority: "$KUBE_CA_FILE"}}]
contexts: [{name: bench, context: {cluster: bench, user: bench}}]
current-context: bench
users:
- name: bench
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: $bin/kubectl-credential
      args: [get, --issuer, "$issuer", --cluster, bench, --issuer-ca, "$ca", --token-cache, file]
      interactiveMode: Never
      provideClusterInfo: true
KC
cat > "$work/static.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: bench, cluster: {server: "$KUBE_APISERVER_URL", certificate-authority: "$KUBE_CA_FILE"}}]
contexts: [{name: bench, context: {cluster: bench, user: bench}}]
current-context: bench
users: [{name: bench, user: {token: "$static_token"}}]
KC
for _ in $(seq 60); do kubectl --kubeconfig "$work/plugin.kubeconfig" get namespaces >/dev/null 2>&1 && break; sleep 1; done

medians() { python3 - "$1" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("median %.2f ms  mean %.2f ms  %s" % (r["median"] * 1000, r["mean"] * 1000, r["command"][:90]))
PY
}
echo "== binary size: $(stat -c %s "$bin/kubectl-credential") bytes"
# What kubectl sends with provideClusterInfo: true (the session is cached per API server and CA).
hit_info='{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false,"cluster":{"server":"'$KUBE_APISERVER_URL'","certificate-authority-data":"'$(base64 -w0 "$KUBE_CA_FILE")'"}}}'
export KUBERNETES_EXEC_INFO=$hit_info
# A cached hit records "this caller got this token" in $XDG_RUNTIME_DIR/kubectl-credential, and a
# second call from the same process is taken as kubectl's retry after a 401 (it refreshes). Every
# hyperfine run has hyperfine as its parent, so the markers are removed before each run (not
# timed): each run pays what a new kubectl process pays, one marker created in an existing dir.
export XDG_RUNTIME_DIR=$work/run; mkdir -p "$XDG_RUNTIME_DIR/kubectl-credential"; chmod 700 "$XDG_RUNTIME_DIR" "$XDG_RUNTIME_DIR/kubectl-credential"
fresh_markers="find $XDG_RUNTIME_DIR/kubectl-credential -type f -delete"
refreshes() { curl -sf --cacert "$ca" "$issuer/metrics" | awk '/^credential_issuer_refreshes_total/{print $2}'; }
refreshes_before=$(refreshes)
hyperfine -N --warmup 50 --runs 1000 --prepare "$fresh_markers" --export-markdown "$work/hit.md" --export-json "$work/hit.json" \
  "$bin/kubectl-credential get ${args[*]}" /bin/true
echo "== refreshes during the 1,050 cached-hit runs (must be 0): $(( $(refreshes) - refreshes_before ))"
# The same hit with 1,000 markers of other callers in the directory (what accumulates between
# two refreshes of a busy machine): only this caller's marker is removed before each run.
for i in $(seq 1000); do : > "$XDG_RUNTIME_DIR/kubectl-credential/0000000000000000-$i"; done
hyperfine -N --warmup 20 --runs 300 --export-json "$work/hit1000.json" \
  --prepare "find $XDG_RUNTIME_DIR/kubectl-credential -type f ! -name 0000000000000000-* -delete" \
  "$bin/kubectl-credential get ${args[*]}"
medians "$work/hit1000.json"
find "$XDG_RUNTIME_DIR/kubectl-credential" -type f -delete
cat "$work/hit.md"; medians "$work/hit.json"
/usr/bin/time -f "peak RSS of a cached hit: %M KiB" "$bin/kubectl-credential" get "${args[@]}" >/dev/null
unset KUBERNETES_EXEC_INFO
hyperfine -N --warmup 5 --runs 60 --export-markdown "$work/kubectl.md" --export-json "$work/kubectl.json" \
  "kubectl --kubeconfig $work/plugin.kubeconfig get namespaces" \
  "kubectl --kubeconfig $work/static.kubeconfig get namespaces"
cat "$work/kubectl.md"; medians "$work/kubectl.json"

# 20 parallel cold calls: time from the approval to all of them done.
rm -rf "$XDG_CACHE_HOME/kubectl-credential"
export KUBERNETES_EXEC_INFO='{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":true}}'
pids=()
for i in $(seq 20); do
  "$bin/kubectl-credential" get "${args[@]}" >"$work/par.$i.out" 2>"$work/par.$i.err" & pids+=($!)
done
approve_code "$work"/par.*.err
start=$approved_at
ok=0; for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
end=$(date +%s.%N)
echo "== 20 parallel cold calls: $ok succeeded, all done $(python3 -c "print(round(($end - $start) * 1000))") ms after the approval; device authorizations: $(curl -sf --cacert "$ca" "$issuer/metrics" | awk '/^credential_issuer_device_authorizations_total/{print $2}') (1 was the earlier login)"
unset KUBERNETES_EXEC_INFO

# 3. The cached hit with the keyring backend: a private session bus with gnome-keyring.
if command -v gnome-keyring-daemon >/dev/null && command -v dbus-daemon >/dev/null; then
    eval "$(dbus-daemon --session --fork --print-address=1 --print-pid=1 | { read -r a; read -r p; echo "export DBUS_SESSION_BUS_ADDRESS=$a; bus_pid=$p"; })"
    export XDG_DATA_HOME=$work/share
    printf 'bench' | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    login_via_pages keyring
    export KUBERNETES_EXEC_INFO=$hit_info
    hyperfine -N --warmup 20 --runs 300 --prepare "$fresh_markers" --export-markdown "$work/keyring.md" --export-json "$work/keyring.json" \
      "$bin/kubectl-credential get --issuer $issuer --cluster bench --issuer-ca $ca --token-cache keyring"
    cat "$work/keyring.md"; medians "$work/keyring.json"
    /usr/bin/time -f "peak RSS of a cached hit (keyring): %M KiB" "$bin/kubectl-credential" get --issuer "$issuer" --cluster bench --issuer-ca "$ca" --token-cache keyring >/dev/null
    pkill -f "gnome-keyring-daemon --unlock" 2>/dev/null || true; kill "$bus_pid" 2>/dev/null || true
fi
