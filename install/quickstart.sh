#!/usr/bin/env bash
# quickstart.sh - the main job on a fresh machine: build both binaries, start credential-issuer
# with its embedded defaults (SQLite, generated signing key, generated TLS on 127.0.0.1:8443),
# create a demo account, and log in with the device flow.
#
#   bash install/quickstart.sh
#
# Environment: QUICKSTART_DIR (data directory, default ./.quickstart), QUICKSTART_LISTEN
# (default 127.0.0.1:8443), QUICKSTART_USER (default demo). The issuer stops when this script
# exits.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${QUICKSTART_DIR:-$PWD/.quickstart}
listen=${QUICKSTART_LISTEN:-127.0.0.1:8443}
user=${QUICKSTART_USER:-demo}
issuer="https://$listen"

echo "==> building (cargo build --release --bins)" >&2
cargo build --release --bins --quiet
bin=$PWD/target/release

echo "==> starting credential-issuer (data in $data, log in $data/issuer.log)" >&2
mkdir -p "$data"
"$bin/credential-issuer" serve --data-dir "$data" --listen "$listen" --issuer-url "$issuer" \
    >"$data/issuer.log" 2>&1 &
issuer_pid=$!
trap 'kill "$issuer_pid" 2>/dev/null || true; wait "$issuer_pid" 2>/dev/null || true' EXIT

ca=$data/tls/ca.crt
for _ in $(seq 1 100); do
    if [ -s "$ca" ] && curl -fsS --cacert "$ca" "$issuer/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$issuer_pid" 2>/dev/null; then cat "$data/issuer.log" >&2; echo "credential-issuer exited" >&2; exit 1; fi
    sleep 0.1
done
curl -fsS --cacert "$ca" "$issuer/readyz" >/dev/null || { cat "$data/issuer.log" >&2; exit 1; }
sed -n '/is serving/,/Log in:/p' "$data/issuer.log" >&2

if ! "$bin/credential-issuer" user list --data-dir "$data" | cut -f1 | grep -qx "$user"; then
    if [ -t 0 ]; then
        echo "==> creating account '$user'; choose its password (12+ characters)" >&2
        "$bin/credential-issuer" user add "$user" --group k8s-readers --data-dir "$data"
    else
        password=$(head -c 18 /dev/urandom | base64)
        printf '%s\n' "$password" | "$bin/credential-issuer" user add "$user" --group k8s-readers --data-dir "$data"
        echo "==> created account '$user' with password: $password  (shown once, on your terminal only)" >&2
    fi
fi

cache=keyring
[ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ] || cache=file
echo "==> logging in (token cache: $cache); open the link below, sign in as '$user' and approve" >&2
"$bin/kubectl-credential" login --issuer "$issuer" --cluster default --issuer-ca "$ca" --token-cache "$cache"
echo "==> done. The issuer is still running; press Ctrl-C to stop it." >&2
wait "$issuer_pid"
