#!/usr/bin/env bash
# tests/run.sh: THE test command. Installs what the tests need, builds, runs every test.
#
#   bash tests/run.sh
#
# On a fresh Debian 12 machine with Rust and Node, it installs (with apt-get, only what is
# missing) the programs the tests start for real: etcd, kubectl, a D-Bus session bus with
# gnome-keyring for the Secret Service, openssl and curl for the control-plane script, Chromium
# (and a font) for the browser test, PostgreSQL (server and psql) for the issuer's store, and
# the Go toolchain that builds kube-apiserver from Debian's source package, once, into
# ${K8S_ENVTEST_CACHE:-~/.cache/k8s-envtest}. With npm it installs, from their lockfiles,
# tests/browser (playwright-core, which drives Debian's Chromium and downloads no browser) and
# tests/oidc-provider (the certified `oidc-provider`, the upstream identity provider), each when
# node_modules is missing or came from another lockfile; with pip, the official Kubernetes
# Python client into target/pydeps.
# Then it builds the workspace's binaries (the e2e tests run them as child processes), starts
# one private PostgreSQL server for the whole run (tests/postgres/start-postgres.sh, in a
# temporary directory, stopped and removed on exit) and runs `cargo test --workspace`: unit,
# handler and end-to-end tests. Last, the issuer's own suite runs a second time with its store
# on that PostgreSQL server (CREDENTIAL_TEST_STORE=postgres; the first pass used SQLite). A
# second run with everything in place installs nothing and is quick.
#
# Environment: NO_APT_INSTALL=1 reports missing packages instead of installing them.
# CREDENTIAL_TEST_POSTGRES_URL=postgres://USER:PASSWORD@HOST:PORT/postgres (a superuser
# connection) runs the tests against that server instead of starting one.
# Extra arguments are passed to `cargo test` (e.g. `bash tests/run.sh -- device_flow`).
set -euo pipefail

cd "$(dirname "$0")/.."
step() { printf '==> %s\n' "$*"; }
die() { printf 'tests/run.sh: ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

# ---- 1. Debian packages: "command it provides" -> package, installed only when missing.
missing=()
need() { # COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || missing+=("$2")
}
need etcd etcd-server
need dbus-daemon dbus
need dbus-send dbus
need gnome-keyring-daemon gnome-keyring
need secret-tool libsecret-tools
need openssl openssl
need curl curl
need python3 python3
# pip installs the Kubernetes Python client the tests run (step 2) into a private directory.
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
need flock util-linux
need kubectl kubernetes-client
# The browser test (tests/e2e/browser.rs) drives Debian's Chromium, which needs a font to draw text.
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
# The PostgreSQL server lives under /usr/lib/postgresql/VERSION/bin, off PATH; it brings psql.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# kube-apiserver is built from source once; its build tools are only needed until then.
APISERVER=${KUBE_APISERVER_BIN:-${K8S_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-envtest}/kube-apiserver}
if ! [ -x "$APISERVER" ]; then
    [ -x /usr/lib/go-1.19/bin/go ] || command -v go >/dev/null 2>&1 || missing+=(golang-1.19-go)
    need make make
    need rsync rsync
    need dpkg-source dpkg-dev
fi
if [ ${#missing[@]} -gt 0 ]; then
    # de-duplicate (dbus provides two commands)
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    [ -z "${NO_APT_INSTALL:-}" ] || die "missing packages: run \`apt-get install ${missing[*]}\`"
    step "installing ${missing[*]}"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
else
    step "test dependencies already installed"
fi

# ---- 2. npm packages of the browser test and of the upstream OpenID provider (Node and npm
# come with the machine, like Rust). oidc-provider 9 needs Node 20.19 or newer.
step "npm packages (tests/browser, tests/oidc-provider)"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
    || die "node and npm are missing: install Node.js 20.19 or later (Debian: \`apt-get install nodejs npm\`)"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
    || die "Node.js $(node --version) is too old (oidc-provider 9, playwright-core): install 20.19 or later"
for pkg in tests/browser tests/oidc-provider; do
    # A stamp with the lockfile's hash says which lockfile node_modules was installed from.
    lock_hash=$(sha256sum "$pkg/package-lock.json" | cut -d' ' -f1)
    stamp=$pkg/node_modules/.installed-from-lock
    if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
        npm ci --prefix "$pkg" --no-audit --no-fund --loglevel=error \
            || die "npm ci --prefix $pkg failed"
        printf '%s\n' "$lock_hash" > "$stamp"
    else
        printf '    %s up to date\n' "$pkg"
    fi
done

# ---- 2b. the official Kubernetes Python client (tests/python/requirements.txt), which the
# end-to-end tests run against the plugin (tests/harness/python_client.rs), installed with pip
# into target/pydeps (never into the system's Python); the harness puts it on PYTHONPATH. A
# stamp with the hash of the requirements and of the interpreter says what it was installed for.
step "Python packages (tests/python/requirements.txt)"
pydeps=${CARGO_TARGET_DIR:-target}/pydeps
py_hash=$( { cat tests/python/requirements.txt; python3 -c 'import sys; print(sys.executable, sys.version)'; } | sha256sum | cut -d' ' -f1)
py_stamp=$pydeps/.installed-from-requirements
if [ "$(cat "$py_stamp" 2>/dev/null)" != "$py_hash" ]; then
    rm -rf "$pydeps"
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --root-user-action=ignore \
            --target "$pydeps" -r tests/python/requirements.txt \
        || die "python3 -m pip install --target $pydeps -r tests/python/requirements.txt failed"
    printf '%s\n' "$py_hash" > "$py_stamp"
else
    printf '    %s up to date\n' "$pydeps"
fi

# ---- 3. kube-apiserver (cached after the first build, about 5 minutes on 2 cores)
step "kube-apiserver"
build_log=$(mktemp)
pg_dir=""
# Everything this script leaves behind is cleaned up here, however it ends (Ctrl-C included).
on_exit() {
    rm -f "$build_log"
    if [ -n "$pg_dir" ]; then
        bash tests/postgres/stop-postgres.sh "$pg_dir" >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# The script's own progress lines are shown; the compiler's output only if the build fails.
if ! KUBE_APISERVER_BIN=$(bash tests/envtest/build-kube-apiserver.sh \
        2> >(tee "$build_log" | grep --line-buffered '^build-kube-apiserver:' | sed -u 's/^/    /' >&2) | tail -n 1); then
    tail -n 60 "$build_log" >&2
    die "building kube-apiserver failed (last lines of its log above)"
fi
export KUBE_APISERVER_BIN
printf '    %s; etcd %s\n' "$(kubectl version --client 2>/dev/null | head -n 1)" "$(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p')"

# ---- 4. build the binaries the end-to-end tests run
step "cargo build --workspace --bins"
cargo build --workspace --bins

# ---- 5. one PostgreSQL server for the whole run (the URL carries a password: never printed)
if [ -n "${CREDENTIAL_TEST_POSTGRES_URL:-}" ]; then
    step "PostgreSQL: the server CREDENTIAL_TEST_POSTGRES_URL names"
else
    step "PostgreSQL: starting a private server for this run"
    pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/credential-test-postgres.XXXXXX")
    CREDENTIAL_TEST_POSTGRES_URL=$(bash tests/postgres/start-postgres.sh "$pg_dir" 2> >(sed -u 's/^/    /' >&2)) \
        || die "starting PostgreSQL failed (tests/postgres/start-postgres.sh's messages above)"
    export CREDENTIAL_TEST_POSTGRES_URL
fi

# ---- 6. every test, then the issuer's suite again with its store on PostgreSQL
step "cargo test --workspace"
cargo test --workspace "$@"
step "cargo test -p credential-issuer --lib, again on PostgreSQL (CREDENTIAL_TEST_STORE=postgres)"
CREDENTIAL_TEST_STORE=postgres cargo test -p credential-issuer --lib "$@"
