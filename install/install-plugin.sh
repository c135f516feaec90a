#!/usr/bin/env bash
# install-plugin.sh: install kubectl-credential (the kubectl plugin) for the current user.
#
#   bash install/install-plugin.sh [--version VERSION] [--bin-dir DIR]   # release binary
#   bash install/install-plugin.sh --from-source [--bin-dir DIR]         # cargo install --path plugin
#
# A release binary is downloaded as kubectl-credential-VERSION-TARGET.tar.gz together with its
# .sha256 file from KUBECTL_CREDENTIAL_RELEASE_URL (default: RELEASE_URL below, which the
# release process writes into the copy of this script it publishes with the binaries; in a
# source checkout it is empty and the script says to use --from-source), and
# installed only if the SHA-256 matches. TARGET is x86_64/aarch64-unknown-linux-gnu or
# x86_64/aarch64-apple-darwin. BIN_DIR defaults to ~/.local/bin; kubectl finds the plugin as
# `kubectl credential` when BIN_DIR is on PATH.
set -euo pipefail

die() { printf 'install-plugin: %s\n' "$*" >&2; exit 1; }

version=${KUBECTL_CREDENTIAL_VERSION:-0.1.0}
bin_dir=${BIN_DIR:-$HOME/.local/bin}
# Filled in by the release process (docs/releasing.md); empty in a source checkout.
RELEASE_URL=""
base_url=${KUBECTL_CREDENTIAL_RELEASE_URL:-$RELEASE_URL}
from_source=
while [ $# -gt 0 ]; do
    case $1 in
        --version) version=${2:?--version needs a value}; shift 2 ;;
        --bin-dir) bin_dir=${2:?--bin-dir needs a value}; shift 2 ;;
        --from-source) from_source=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
mkdir -p "$bin_dir"

if [ -n "$from_source" ]; then
    command -v cargo >/dev/null || die "cargo not found: install Rust from https://rustup.rs"
    repo=$(cd "$(dirname "$0")/.." && pwd)
    cargo install --locked --path "$repo/plugin" --root "$bin_dir/.." --force
    printf 'installed %s\n' "$bin_dir/kubectl-credential"
    exit 0
fi

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) target=x86_64-unknown-linux-gnu ;;
    Linux-aarch64|Linux-arm64) target=aarch64-unknown-linux-gnu ;;
    Darwin-x86_64) target=x86_64-apple-darwin ;;
    Darwin-arm64) target=aarch64-apple-darwin ;;
    *) die "no release binary for $(uname -s) $(uname -m): use --from-source" ;;
esac
[ -n "$base_url" ] || die "this copy of the script names no release to download from (no release has been published
with it). Install from source instead, with Rust (https://rustup.rs) and a checkout of the
project: bash install/install-plugin.sh --from-source
or point KUBECTL_CREDENTIAL_RELEASE_URL at your organisation's mirror of the release files."
for tool in curl tar; do command -v "$tool" >/dev/null || die "$tool not found"; done
if command -v sha256sum >/dev/null; then sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null; then sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else die "sha256sum (or shasum) not found"; fi

name=kubectl-credential-$version-$target.tar.gz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL --proto '=https,file' -o "$work/$name" "$base_url/v$version/$name" ||
    die "cannot download $base_url/v$version/$name"
curl -fsSL --proto '=https,file' -o "$work/$name.sha256" "$base_url/v$version/$name.sha256" ||
    die "cannot download the checksum $base_url/v$version/$name.sha256"
want=$(cut -d' ' -f1 <"$work/$name.sha256")
got=$(sha256 "$work/$name")
[ -n "$want" ] && [ "$want" = "$got" ] ||
    die "checksum mismatch for $name: expected ${want:-nothing}, got $got; nothing was installed"
tar -xzf "$work/$name" -C "$work" kubectl-credential
install -m 0755 "$work/kubectl-credential" "$bin_dir/kubectl-credential"
printf 'installed %s (%s, sha256 %s)\n' "$bin_dir/kubectl-credential" "$version" "$got"
case ":$PATH:" in *":$bin_dir:"*) ;; *) printf 'add %s to PATH so that kubectl finds `kubectl credential`\n' "$bin_dir" ;; esac
