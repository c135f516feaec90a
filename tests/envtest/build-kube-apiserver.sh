#!/usr/bin/env bash
# build-kube-apiserver.sh: build a real kube-apiserver for the end-to-end tests and cache it.
#
# Usage: tests/envtest/build-kube-apiserver.sh [CACHE_DIR]
#   CACHE_DIR defaults to $K8S_ENVTEST_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/k8s-envtest.
#   Prints the binary's path (CACHE_DIR/kube-apiserver) as the last line of stdout; everything
#   else goes to stderr. Idempotent: a cached binary that runs is reused at once.
#
# Why we build it: the tests need a real API server that verifies our issuer's tokens through
# its --oidc-* flags, and no package registry we can reach ships a kube-apiserver binary. Debian's
# source package "kubernetes" (bookworm: 1.20.2) carries the full source with every dependency
# vendored, and Debian's golang-1.19-go builds it; only the Debian archive is contacted.
# A cold build takes about 4 minutes on 2 cores; the source tree and Go build cache stay in
# CACHE_DIR/src so that FORCE_REBUILD=1 takes 1 to 2 minutes.
#
# Environment (all optional):
#   K8S_ENVTEST_CACHE  cache directory (see above)
#   KUBE_DEB_VERSION   Debian version to fetch, e.g. 1.20.5+really1.20.2-1.1+deb12u1 (default: candidate)
#   GO_BIN_DIR         directory holding `go` (default /usr/lib/go-1.19/bin, else `go` on PATH)
#   FORCE_REBUILD=1    rebuild even if the cached binary runs
#   CLEAN_SRC=1        delete the ~2 GB source tree and Go cache after a successful build
#   NO_APT_INSTALL=1   never install packages or touch apt sources; fail with a hint instead
set -euo pipefail

log() { printf 'build-kube-apiserver: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

CACHE_DIR=${1:-${K8S_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-envtest}}
mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)
BIN=$CACHE_DIR/kube-apiserver
WORK=$CACHE_DIR/src

cached() { [ -z "${FORCE_REBUILD:-}" ] && [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; }

if cached; then
    log "cached: $("$BIN" --version) at $BIN"
    echo "$BIN"
    exit 0
fi

# One build at a time per cache directory: two test runs started together must not both unpack
# 2 GB of source into the same tree. The second one waits and then finds the binary.
exec 9>"$CACHE_DIR/.build.lock"
flock 9
if cached; then echo "$BIN"; exit 0; fi

# ---- prerequisites, all from Debian
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
apt_install() {
    [ -z "${NO_APT_INSTALL:-}" ] || die "missing packages: run \`apt-get install $*\`"
    log "installing $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
}

GO_BIN_DIR=${GO_BIN_DIR:-}
if [ -z "$GO_BIN_DIR" ]; then
    if [ -x /usr/lib/go-1.19/bin/go ]; then GO_BIN_DIR=/usr/lib/go-1.19/bin
    elif command -v go >/dev/null 2>&1; then GO_BIN_DIR=$(dirname "$(command -v go)")
    else apt_install golang-1.19-go; GO_BIN_DIR=/usr/lib/go-1.19/bin
    fi
fi
[ -x "$GO_BIN_DIR/go" ] || die "no go binary in $GO_BIN_DIR"
missing=()
command -v make >/dev/null 2>&1        || missing+=(make)
command -v rsync >/dev/null 2>&1       || missing+=(rsync)     # hack/lib/golang.sh uses it
command -v dpkg-source >/dev/null 2>&1 || missing+=(dpkg-dev)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

# `apt-get source` needs a deb-src entry, which a stock Debian image does not have.
if ! grep -rqs '^[[:space:]]*\(deb-src\|Types:.*deb-src\)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    [ -z "${NO_APT_INSTALL:-}" ] || die "no deb-src entry in /etc/apt; add one (Types: deb-src) for bookworm"
    log "adding /etc/apt/sources.list.d/debsrc.sources (deb-src for bookworm main)"
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        | $SUDO tee /etc/apt/sources.list.d/debsrc.sources >/dev/null
    $SUDO apt-get update >&2
fi

T0=$(date +%s)
mkdir -p "$WORK"
cd "$WORK"

# ---- 1. fetch the source package (.dsc, orig tarball with vendor/, debian tarball)
pkg=kubernetes${KUBE_DEB_VERSION:+=$KUBE_DEB_VERSION}
if ! compgen -G 'kubernetes_*.dsc' >/dev/null; then
    log "apt-get source --download-only $pkg"
    apt-get source --download-only "$pkg" >&2 || die "apt-get source failed (is deb-src configured and apt-get update done?)"
fi
DSC=$(find . -maxdepth 1 -name 'kubernetes_*.dsc' | sort | tail -n 1)
DEB_VERSION=$(sed -n 's/^Version: //p' "$DSC")
SRC=$WORK/kubernetes-$DEB_VERSION

# ---- 2. unpack and apply Debian's patches (dpkg-source does both), once
if [ ! -e "$SRC/.k8s-envtest-unpacked" ]; then
    rm -rf "$SRC"
    log "dpkg-source -x $DSC"
    dpkg-source -x "$DSC" "$SRC" >&2
    touch "$SRC/.k8s-envtest-unpacked"
fi

# ---- 3. the Go >= 1.18 fix
# Kubernetes 1.20 vendors github.com/modern-go/reflect2 v1.0.1, which dereferences nil inside
# reflect2.Type2 / UnsafeMapType.Key when built with Go >= 1.18: decoding some JSON then panics
# inside the API server and the request fails. Upstream Kubernetes backported reflect2 v1.0.2 +
# json-iterator v1.1.12; we apply the same versions, taken from Debian's own -dev packages.
if [ ! -e "$SRC/.k8s-envtest-reflect2" ]; then
    rm -rf "$WORK/debs" && mkdir -p "$WORK/debs"
    (cd "$WORK/debs" && apt-get download golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev >&2)
    for d in "$WORK"/debs/*.deb; do log "using $(basename "$d")"; dpkg-deb -x "$d" "$WORK/debs/x"; done
    for p in modern-go/reflect2 json-iterator/go; do
        from=$WORK/debs/x/usr/share/gocode/src/github.com/$p
        to=$SRC/vendor/github.com/$p
        [ -d "$from" ] || die "the Debian package did not contain $p"
        find "$to" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' -o -name 'go.mod' -o -name 'go.sum' \) -delete
        find "$from" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' -o -name 'go.mod' -o -name 'go.sum' \) \
            ! -name '*_test.go' -exec cp {} "$to/" \;
        log "replaced vendor/github.com/$p with Debian's copy"
    done
    touch "$SRC/.k8s-envtest-reflect2"
fi

# ---- 4. build the way debian/rules does: GOPATH mode through the upstream Makefile
# `go build -mod=vendor ./cmd/...` does not work on this go.mod with Go >= 1.16 ("updates to
# go.mod needed"); hack/ sets GO111MODULE=off and expects k8s.io/kubernetes inside a GOPATH.
cd "$SRC"
mkdir -p .go/src/k8s.io
[ -L .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
# A generator build that failed earlier leaves an EMPTY _output/local/bin/<generator> that make
# then treats as up to date ("Permission denied" on every later run): remove such files.
if [ -d _output/local/bin ]; then find _output/local/bin -type f -size 0 -print -delete >&2; fi
mkdir -p "$WORK/home"
log "make WHAT=cmd/kube-apiserver with $("$GO_BIN_DIR/go" version) (takes a few minutes)"
# The caller's Go settings are removed: GOFLAGS=-mod=vendor, for one, breaks the generator builds.
env -u GOFLAGS -u GO111MODULE -u GOBIN -u GOROOT -u GOPATH -u GOCACHE -u GOENV \
    PATH="$GO_BIN_DIR:$PATH" CGO_ENABLED=0 GOPATH="$SRC/.go" HOME="$WORK/home" \
    make WHAT=cmd/kube-apiserver >&2 || die "make failed"

# ---- 5. install into the cache atomically, so that a reader never sees half a binary
out=$SRC/_output/bin/kube-apiserver
[ -s "$out" ] || die "the build produced no $out"
"$out" --version >/dev/null || die "$out does not run"
cp "$out" "$BIN.tmp.$$" && chmod 755 "$BIN.tmp.$$" && mv -f "$BIN.tmp.$$" "$BIN"
T1=$(date +%s)
cat > "$CACHE_DIR/kube-apiserver.info" <<INFO
version=$("$BIN" --version)
debian_source=kubernetes $DEB_VERSION
go=$("$GO_BIN_DIR/go" version)
patches=debian/patches + vendor reflect2 v1.0.2/json-iterator v1.1.12 from Debian
built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in $((T1 - T0))s
INFO
log "built $("$BIN" --version) in $((T1 - T0))s"

if [ -n "${CLEAN_SRC:-}" ]; then
    log "CLEAN_SRC set: removing $SRC"
    rm -rf "$SRC"
fi
echo "$BIN"
