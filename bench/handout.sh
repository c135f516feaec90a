#!/usr/bin/env bash
# handout.sh - what the hand-out marker (kubectl's retry after a 401) costs a cached hit
# (results in docs/benchmarks.md). One hyperfine run, so machine noise hits all three alike:
#   1. a cached hit without KUBERNETES_EXEC_INFO (run by hand: no caller lookup, no marker);
#   2. the hit as kubectl makes it, marker directory on the disk (ext4 here);
#   3. the same with the marker directory on tmpfs (/dev/shm; $XDG_RUNTIME_DIR is a tmpfs on
#      systemd machines).
# The cache entry is written by this script (a hit needs no issuer). Markers are removed
# before each run (not timed), as every run has hyperfine as its parent.
#   bash bench/handout.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "hyperfine not found: apt-get install hyperfine" >&2; exit 1; }
cargo build --release --quiet --bins
bin=$PWD/target/release/kubectl-credential
work=$(mktemp -d); shm=$(mktemp -d -p /dev/shm)
trap 'rm -rf "$work" "$shm"' EXIT
mkdir -p "$work/cache/kubectl-credential/tokens" "$work/run/kubectl-credential" "$shm/kubectl-credential"
chmod 700 "$work/run" "$work/run/kubectl-credential" "$shm" "$shm/kubectl-credential"
# The entry for --issuer https://127.0.0.1:1 --cluster bench (key as in plugin/src/cache/mod.rs).
python3 - "$work/cache/kubectl-credential/tokens" <<'PY'
import base64, hashlib, json, os, struct, sys, time
h = hashlib.sha256(b"kubectl-credential cache key v1")
for v in ["https://127.0.0.1:1", "bench", "kubectl-credential"]:
    b = v.encode(); h.update(b"\x01" + struct.pack(">Q", len(b)) + b)
h.update(b"\x00\x00")
now = int(time.time())
claims = {"iss": "i", "sub": "s", "aud": "a", "iat": now, "nbf": now, "exp": now + 3600, "jti": "j",
          "preferred_username": "bencher", "groups": ["k8s-readers"]}
payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
entry = {"v": 1, "access_token": "eyJhbGciOiJFUzI1NiJ9." + payload + ".c2ln", "iat": now,
         "exp": now + 3600, "username": "bencher"}
path = os.path.join(sys.argv[1], h.hexdigest() + ".json")
open(path, "w").write(json.dumps(entry)); os.chmod(path, 0o600)
PY
export XDG_CACHE_HOME=$work/cache HOME=$work
get="$bin get --issuer https://127.0.0.1:1 --cluster bench --token-cache file"
info='{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}'
hyperfine -N --warmup 50 --runs 1000 --export-json "$work/handout.json" \
  --prepare "find $work/run/kubectl-credential $shm/kubectl-credential -type f -delete" \
  "env -u KUBERNETES_EXEC_INFO $get" \
  "env 'KUBERNETES_EXEC_INFO=$info' XDG_RUNTIME_DIR=$work/run $get" \
  "env 'KUBERNETES_EXEC_INFO=$info' XDG_RUNTIME_DIR=$shm $get"
python3 - "$work/handout.json" <<'PY'
import json, sys
for r, name in zip(json.load(open(sys.argv[1]))["results"], ["no marker (run by hand)", "marker on ext4", "marker on tmpfs"]):
    print("median %.3f ms  mean %.3f ms  %s" % (r["median"] * 1000, r["mean"] * 1000, name))
PY
