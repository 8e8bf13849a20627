#!/usr/bin/env bash
# The browser client against node-seal (Microsoft SEAL 4.x compiled to
# WebAssembly, from npm), in the same headless chromium page, same run:
# CKKS at N = 8192, moduli 60, 40, 40 | 60 bits, scale 2^40, 4096 values —
# key generation (secret, public, relinearization keys), public-key
# encryption (encode + encrypt), decryption (decrypt + decode); median of
# --reps, the two libraries alternating rep by rep. Then the keys a user's
# browser makes for the repository's MNIST CNN heads (secret, public,
# relinearization and exactly the head's Galois keys), from the input specs
# a real `cipherflow serve` publishes for each split
# (GET /v1/models/NAME/splits/K). Issue 20's targets: ours ≤ 0.5× node-seal
# for each operation; a head's keys in ≤ 5 s.
#
# Needs chromium and chromedriver (apt-get install chromium chromium-driver),
# npm (node-seal goes to bench/web/node_modules) and Python (selenium goes
# to bench/.venv-web). Writes bench/results/web-<time>.jsonl.
#
# Usage: bash bench/web.sh [--reps 15]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
REPS=15
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
(cd "$HERE/web" && npm ci --silent --no-audit --no-fund)
VENV="$HERE/.venv-web"
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet -r "$ROOT/web/tests/requirements.txt"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
(cd "$ROOT" && cargo build --release -q -p cipherflow-cli)
BIN="$TARGET/release/cipherflow"
mkdir -p "$HERE/results"
OUT="$HERE/results/web-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
TMP="$(mktemp -d)"
PID=""
cleanup() {
    [[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$TMP/platform" "$TMP/creator"
(cd "$TMP/platform" && exec "$BIN" serve --listen 127.0.0.1:0 --repo repo >serve.out 2>serve.err) &
PID=$!
for _ in $(seq 100); do grep -q https:// "$TMP/platform/serve.out" 2>/dev/null && break; sleep 0.1; done
URL="$(grep -o 'https://[0-9.:]*' "$TMP/platform/serve.out" | head -1)"
CA="$TMP/platform/repo/tls/ca.pem"
# The repository's MNIST CNN (the TenSEAL tutorial's net), its first four
# layers with the platform, as bench/platform.sh uploads it.
(cd "$TMP/creator" && "$BIN" model upload --server "$URL" --ca "$CA" \
    --model "$ROOT/data/models/mnist-tenseal-cnn.safetensors" --name mnist-tenseal-cnn \
    --head-layers 4 --input-bound 1 >/dev/null)
"$VENV/bin/python" - "$URL" "$CA" "$TMP/specs.json" <<'PY'
import json, ssl, sys, urllib.request
url, ca, out = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
get = lambda p: json.load(urllib.request.urlopen(url + p, context=ctx, timeout=600))
card = get("/v1/models/mnist-tenseal-cnn")
specs = []
for k in card["mpc"]["splits"]:
    s = get(f"/v1/models/mnist-tenseal-cnn/splits/{k}")
    specs.append({"name": f"mnist-tenseal-cnn head, split {k} (after {s.get('after')})", "spec": json.dumps(s["spec"])})
json.dump(specs, open(out, "w"))
PY
"$VENV/bin/python" "$HERE/web_bench.py" --reps "$REPS" --specs "$TMP/specs.json" --out "$OUT"
echo "results: $OUT"
