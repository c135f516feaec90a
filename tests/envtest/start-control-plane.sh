#!/usr/bin/env bash
# start-control-plane.sh: run a real etcd + kube-apiserver on loopback for the end-to-end tests.
#
# Usage:
#   start-control-plane.sh start  RUN_DIR   start; prints KEY=value lines, writes RUN_DIR/env
#   start-control-plane.sh stop   RUN_DIR   stop what `start` started in RUN_DIR (idempotent)
#   start-control-plane.sh status RUN_DIR   exit 0 if both processes run
#
# Why a script and not Rust: it is equally useful by hand (`start`, then `kubectl --kubeconfig
# RUN_DIR/admin.kubeconfig ...` to look at what a failing test left behind), and the harness
# (tests/harness/control_plane.rs) only needs to run it and read RUN_DIR/env.
#
# Why this shape:
#  * Kubernetes 1.20 (the version Debian ships, built by build-kube-apiserver.sh) has only the
#    --oidc-* flags: one OIDC issuer per API server, fixed at start. So the issuer must be
#    listening (or at least its URL and CA known) before this script runs.
#  * Everything is fresh on every start (new certificates, empty etcd), so no run can see another
#    run's state. All processes listen on 127.0.0.1 only.
#  * etcd and kube-apiserver cannot be handed a bound socket, so their ports are picked free just
#    before they start. Another process may take such a port in between; when a process then
#    exits with "address already in use" the start is retried with new ports.
#  * There is no controller-manager or scheduler: the tests only need authentication and RBAC.
#
# After `start`, RUN_DIR holds:
#   env               sourceable KEY='value' lines (see write_env below); the harness parses it
#   admin.kubeconfig  user "admin" (client certificate in group system:masters)
#   pki/              CA, serving, admin and service-account keys; etcd-data/; *.log; *.pid
#
# Environment (all optional):
#   KUBE_APISERVER_BIN  default ${K8S_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-envtest}/kube-apiserver
#   ETCD_BIN            default `etcd` on PATH (Debian package etcd-server)
#   START_TIMEOUT       seconds to wait for each process to become ready (default 60)
#   OIDC_ISSUER_URL     https URL of the token issuer; without it no --oidc-* flag is passed
#   OIDC_CA_FILE        CA bundle that signed the issuer's serving certificate (default pki/ca.crt)
#   OIDC_CLIENT_ID      expected `aud` (default kubernetes)
#   OIDC_USERNAME_CLAIM default sub;  OIDC_GROUPS_CLAIM default groups
#   OIDC_USERNAME_PREFIX / OIDC_GROUPS_PREFIX   passed only when set
#   OIDC_SIGNING_ALGS   default ES256 (the only algorithm the project's issuer signs with)
#   WEBHOOK_CONFIG_FILE webhook token authentication kubeconfig (install/webhook-kubeconfig.yaml
#                       filled in); without it no --authentication-token-webhook-* flag is passed
#   WEBHOOK_CACHE_TTL   --authentication-token-webhook-cache-ttl (default 2m, the API server's)
#   WEBHOOK_VERSION     --authentication-token-webhook-version (default v1)
#   AUDIT_POLICY_FILE   audit policy; with it the API server writes its audit log (JSON lines)
#                       to RUN_DIR/audit.log, named KUBE_AUDIT_LOG in the env file
#   APISERVER_EXTRA_ARGS  extra kube-apiserver flags (word-split)
#   APISERVER_VERBOSITY   klog -v (default 2)
set -euo pipefail

log() { printf 'start-control-plane: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

CACHE_DIR=${K8S_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-envtest}
START_TIMEOUT=${START_TIMEOUT:-60}

# ------------------------------------------------------------------ processes
# A pid file is trusted only while /proc/PID/cmdline still mentions the run directory, so that a
# stale pid reused by an unrelated process is never signalled.
pid_alive() { # PIDFILE PATTERN
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2"
}

stop_pid() { # PIDFILE PATTERN NAME
    local pid i
    if ! pid_alive "$1" "$2"; then rm -f "$1"; return 0; fi
    pid=$(cat "$1")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do pid_alive "$1" "$2" || break; sleep 0.1; done   # up to 10 s
    if pid_alive "$1" "$2"; then
        log "$3 ignored SIGTERM for 10 s, sending SIGKILL to $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}

do_stop() { # RUN_DIR
    local run=$1
    [ -d "$run" ] || return 0
    # the API server first: it depends on etcd
    stop_pid "$run/kube-apiserver.pid" "$run/pki" kube-apiserver
    stop_pid "$run/etcd.pid" "$run/etcd-data" etcd
}

do_status() { # RUN_DIR
    local run=$1 rc=0
    if pid_alive "$run/etcd.pid" "$run/etcd-data"; then echo "etcd: running"; else echo "etcd: stopped"; rc=1; fi
    if pid_alive "$run/kube-apiserver.pid" "$run/pki"; then echo "kube-apiserver: running"; else echo "kube-apiserver: stopped"; rc=1; fi
    return $rc
}

# A TCP port on 127.0.0.1 that is free right now (see the header about the race).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until COMMAND succeeds, the process in PIDFILE dies, or START_TIMEOUT passes.
# Returns 0 when ready, 1 when the process died, 2 on timeout.
wait_ready() { # NAME PIDFILE PATTERN COMMAND...
    local name=$1 pidfile=$2 pattern=$3 i
    shift 3
    for i in $(seq 1 $((START_TIMEOUT * 10))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        pid_alive "$pidfile" "$pattern" || return 1
        sleep 0.1
    done
    log "$name not ready after ${START_TIMEOUT}s"
    return 2
}

# ------------------------------------------------------------------ PKI
# One throw-away CA signs everything; it is also the client CA. P-256 keys: they are generated
# in milliseconds, where RSA keys would add about a second to every start.
make_pki() { # DIR
    mkdir -p "$1"
    (
        cd "$1"
        umask 077
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -sha256 \
            -keyout ca.key -out ca.crt -subj "/CN=k8s-envtest-ca" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
        sign() { # NAME SUBJECT EXTENSIONS
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
            printf '%b\n' "$3" >"$1.ext"
            openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
                -days 3650 -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
            rm -f "$1.csr" "$1.ext"
        }
        # 10.0.0.1 is the first address of --service-cluster-ip-range: the API server insists
        # on it being in its serving certificate.
        sign apiserver "/CN=kube-apiserver" \
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
        # group system:masters is cluster-admin without any RBAC object
        sign admin "/O=system:masters/CN=admin" \
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth"
        # service-account tokens: 1.20 requires a signing key and issuer even if nobody uses them
        openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
        openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
        chmod 644 ca.crt apiserver.crt admin.crt sa.pub
    )
}

write_kubeconfig() { # FILE SERVER CA CERT KEY
    (umask 077 && cat >"$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: $2
    certificate-authority: $3
users:
- name: admin
  user:
    client-certificate: $4
    client-key: $5
contexts:
- name: envtest
  context:
    cluster: envtest
    user: admin
current-context: envtest
KUBECONFIG
    )
}

# ------------------------------------------------------------------ start
start_etcd() { # RUN_DIR; sets ETCD_URL
    local run=$1 client_port peer_port
    client_port=$(free_port)
    peer_port=$(free_port)
    ETCD_URL=http://127.0.0.1:$client_port
    rm -rf "$run/etcd-data"
    setsid "$ETCD" \
        --name envtest \
        --data-dir "$run/etcd-data" \
        --listen-client-urls "$ETCD_URL" \
        --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "envtest=http://127.0.0.1:$peer_port" \
        --initial-cluster-state new \
        --logger zap --log-outputs stderr \
        </dev/null >"$run/etcd.log" 2>&1 &
    echo $! >"$run/etcd.pid"
    wait_ready etcd "$run/etcd.pid" "$run/etcd-data" \
        sh -c "curl -fsS '$ETCD_URL/health' | grep -q '\"health\":\"true\"'"
}

start_apiserver() { # RUN_DIR; sets SERVER, API_PORT
    local run=$1 pki=$1/pki
    API_PORT=$(free_port)
    SERVER=https://127.0.0.1:$API_PORT
    local oidc=()
    if [ -n "${OIDC_ISSUER_URL:-}" ]; then
        oidc+=(
            "--oidc-issuer-url=$OIDC_ISSUER_URL"
            "--oidc-ca-file=${OIDC_CA_FILE:-$pki/ca.crt}"
            "--oidc-client-id=${OIDC_CLIENT_ID:-kubernetes}"
            "--oidc-username-claim=${OIDC_USERNAME_CLAIM:-sub}"
            "--oidc-groups-claim=${OIDC_GROUPS_CLAIM:-groups}"
            "--oidc-signing-algs=${OIDC_SIGNING_ALGS:-ES256}"
        )
        # "set but empty" is a meaningful value (no prefix), hence ${VAR+x}
        [ -z "${OIDC_USERNAME_PREFIX+x}" ] || oidc+=("--oidc-username-prefix=$OIDC_USERNAME_PREFIX")
        [ -z "${OIDC_GROUPS_PREFIX+x}" ] || oidc+=("--oidc-groups-prefix=$OIDC_GROUPS_PREFIX")
    fi
    if [ -n "${WEBHOOK_CONFIG_FILE:-}" ]; then
        oidc+=(
            "--authentication-token-webhook-config-file=$WEBHOOK_CONFIG_FILE"
            "--authentication-token-webhook-cache-ttl=${WEBHOOK_CACHE_TTL:-2m}"
            "--authentication-token-webhook-version=${WEBHOOK_VERSION:-v1}"
        )
    fi
    if [ -n "${AUDIT_POLICY_FILE:-}" ]; then
        # blocking mode: an event is in the file before the response is sent
        oidc+=(
            "--audit-policy-file=$AUDIT_POLICY_FILE"
            "--audit-log-path=$run/audit.log"
            "--audit-log-format=json"
            "--audit-log-mode=blocking"
        )
    fi
    local extra=()
    # shellcheck disable=SC2206  # word splitting is the documented behaviour
    [ -z "${APISERVER_EXTRA_ARGS:-}" ] || extra=($APISERVER_EXTRA_ARGS)
    setsid "$APISERVER" \
        --etcd-servers="$ETCD_URL" \
        --bind-address=127.0.0.1 \
        --secure-port="$API_PORT" \
        --insecure-port=0 \
        --advertise-address=127.0.0.1 \
        --endpoint-reconciler-type=none \
        --service-cluster-ip-range=10.0.0.0/24 \
        --cert-dir="$pki" \
        --tls-cert-file="$pki/apiserver.crt" \
        --tls-private-key-file="$pki/apiserver.key" \
        --client-ca-file="$pki/ca.crt" \
        --authorization-mode=RBAC \
        --service-account-issuer=https://kubernetes.default.svc \
        --service-account-key-file="$pki/sa.pub" \
        --service-account-signing-key-file="$pki/sa.key" \
        --api-audiences=https://kubernetes.default.svc \
        "${oidc[@]}" \
        --v="${APISERVER_VERBOSITY:-2}" \
        "${extra[@]}" \
        </dev/null >"$run/kube-apiserver.log" 2>&1 &
    echo $! >"$run/kube-apiserver.pid"
    # /readyz includes the RBAC bootstrap hook, so cluster roles exist once it says ok.
    wait_ready kube-apiserver "$run/kube-apiserver.pid" "$pki" \
        sh -c "[ \"\$(curl -sS --cacert '$pki/ca.crt' '$SERVER/readyz')\" = ok ]"
}

# Runs START_FN up to three times while its process died of a port collision.
start_with_retry() { # NAME LOG START_FN RUN_DIR
    local name=$1 logfile=$2 fn=$3 run=$4 attempt rc
    for attempt in 1 2 3; do
        rc=0
        "$fn" "$run" || rc=$?
        [ $rc -eq 0 ] && return 0
        if [ $rc -eq 1 ] && grep -q 'address already in use' "$logfile" && [ $attempt -lt 3 ]; then
            log "$name lost its port to another process; retrying with a new one"
            continue
        fi
        tail -n 40 "$logfile" >&2
        do_stop "$run"
        die "$name did not start (log: $logfile)"
    done
}

do_start() { # RUN_DIR
    local run=$1
    mkdir -p "$run"
    run=$(cd "$run" && pwd)
    if pid_alive "$run/etcd.pid" "$run/etcd-data" || pid_alive "$run/kube-apiserver.pid" "$run/pki"; then
        die "a control plane is already running in $run (stop it with: $0 stop $run)"
    fi
    APISERVER=${KUBE_APISERVER_BIN:-$CACHE_DIR/kube-apiserver}
    ETCD=${ETCD_BIN:-$(command -v etcd || true)}
    [ -x "$APISERVER" ] || die "kube-apiserver not found at $APISERVER: run \`bash tests/run.sh\` or \`bash tests/envtest/build-kube-apiserver.sh\`"
    [ -n "$ETCD" ] && [ -x "$ETCD" ] || die "etcd not found: run \`bash tests/run.sh\` or \`apt-get install etcd-server\`"
    local tool
    for tool in openssl curl python3 setsid; do
        command -v "$tool" >/dev/null || die "$tool not found: run \`bash tests/run.sh\`"
    done
    if [ -n "${OIDC_ISSUER_URL:-}" ]; then
        case $OIDC_ISSUER_URL in https://*) ;; *) die "OIDC_ISSUER_URL must be https (the API server accepts no other)" ;; esac
        [ -z "${OIDC_CA_FILE:-}" ] || [ -r "$OIDC_CA_FILE" ] || die "OIDC_CA_FILE $OIDC_CA_FILE is not readable"
    fi
    [ -z "${WEBHOOK_CONFIG_FILE:-}" ] || [ -r "$WEBHOOK_CONFIG_FILE" ] || die "WEBHOOK_CONFIG_FILE $WEBHOOK_CONFIG_FILE is not readable"
    [ -z "${AUDIT_POLICY_FILE:-}" ] || [ -r "$AUDIT_POLICY_FILE" ] || die "AUDIT_POLICY_FILE $AUDIT_POLICY_FILE is not readable"

    local t0=$SECONDS
    rm -rf "$run/pki" "$run/env"
    make_pki "$run/pki"
    # Whatever was started is stopped again if this script is interrupted half way.
    trap 'do_stop "$run"; exit 130' INT TERM
    start_with_retry etcd "$run/etcd.log" start_etcd "$run"
    start_with_retry kube-apiserver "$run/kube-apiserver.log" start_apiserver "$run"
    trap - INT TERM

    write_kubeconfig "$run/admin.kubeconfig" "$SERVER" "$run/pki/ca.crt" "$run/pki/admin.crt" "$run/pki/admin.key"
    write_env "$run" >"$run/env.tmp"
    mv "$run/env.tmp" "$run/env"
    log "ready in $((SECONDS - t0))s: $SERVER (stop with: $0 stop $run)"
    cat "$run/env"
}

write_env() { # RUN_DIR
    local run=$1
    cat <<ENV
KUBE_APISERVER_URL='$SERVER'
KUBE_APISERVER_PORT='$API_PORT'
KUBE_CA_FILE='$run/pki/ca.crt'
KUBE_ADMIN_KUBECONFIG='$run/admin.kubeconfig'
KUBE_APISERVER_LOG='$run/kube-apiserver.log'
KUBE_OIDC_ISSUER_URL='${OIDC_ISSUER_URL:-}'
KUBE_AUDIT_LOG='$([ -z "${AUDIT_POLICY_FILE:-}" ] || echo "$run/audit.log")'
ETCD_URL='$ETCD_URL'
ETCD_LOG='$run/etcd.log'
ENV
}

# ------------------------------------------------------------------ main
usage() { sed -n '2,9p' "$0" >&2; exit 2; }
[ $# -eq 2 ] || usage
case $1 in
    start) do_start "$2" ;;
    stop) do_stop "$2" ;;
    status) do_status "$2" ;;
    *) usage ;;
esac
