#!/usr/bin/env bash
# The encrypted-inference platform in mpc mode, three processes on
# 127.0.0.1 over TLS: `cipherflow serve` (the platform), `cipherflow
# model-host` (the creator, holding the tail) and `cipherflow query` (the
# user, MNIST test images). For each shipped MNIST CNN (the TenSEAL-tutorial
# net and the stronger mnist-wide) the creator uploads the first four layers
# (`--head-layers 4`: the platform never holds the last two), then every
# split k the platform offers is queried on --limit images, one user:
#
#   ms_per_input   end to end per image after the key upload (encrypt, head,
#                  masked hand-off, decrypt, tail in three-party computation)
#   key_bytes      evaluation keys uploaded once per session
#   bytes_per_input  all parties together: the ciphertext up, the masked
#                  output down, the user's computation traffic (its two
#                  links) and the platform-host link (from the usage log)
#
# then --users users at once on the recommended split (images per second,
# wall clock over all of them). Targets (issue 19): ≤ 100 ms per image and
# ≤ 1 MB per image at the best split.
#
# Usage: bash bench/platform.sh [--limit 100] [--users 4]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
LIMIT=100 USERS=4
while [[ $# -gt 0 ]]; do
    case "$1" in
        --limit) LIMIT="$2"; shift 2 ;;
        --users) USERS="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
MNIST="${CIPHERFLOW_DATA:-$ROOT/../shared/data}/mnist"
if [[ ! -f "$MNIST/t10k-images.idx3-ubyte.gz" ]]; then
    echo "skipped: no MNIST under $MNIST (set CIPHERFLOW_DATA)" >&2
    exit 0
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
(cd "$ROOT" && cargo build --release -q -p cipherflow-cli)
BIN="$TARGET/release/cipherflow"
mkdir -p "$HERE/results"
OUT="$HERE/results/platform-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
TMP="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$TMP/platform" "$TMP/creator" "$TMP/user"

(cd "$TMP/platform" && exec "$BIN" serve --listen 127.0.0.1:0 --repo repo >serve.out 2>serve.err) &
PIDS+=($!)
for _ in $(seq 100); do grep -q https:// "$TMP/platform/serve.out" 2>/dev/null && break; sleep 0.1; done
URL="$(grep -o 'https://[0-9.:]*' "$TMP/platform/serve.out" | head -1)"
CA="$TMP/platform/repo/tls/ca.pem"
IMAGES="$MNIST/t10k-images.idx3-ubyte.gz"
LABELS="$MNIST/t10k-labels.idx1-ubyte.gz"

usage_link() { # mean platform-host bytes of the last N usage records of model $1
    python3 - "$1" "$2" "$URL" "$CA" <<'PY'
import json, ssl, sys, urllib.request
name, n, url, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
u = json.load(urllib.request.urlopen(f"{url}/v1/models/{name}/usage", context=ctx))["usage"]
last = [r["platform_host_bytes"] for r in u if r["mode"] == "mpc"][-n:]
print(sum(last) / max(len(last), 1))
PY
}

for model in mnist-tenseal-cnn mnist-wide; do
    card="$(cd "$TMP/creator" && "$BIN" model upload --server "$URL" --ca "$CA" \
        --model "$ROOT/data/models/$model.safetensors" --name "$model" --head-layers 4 \
        --input-bound 1 | tail -1)"
    splits="$(python3 -c 'import json,sys; print(" ".join(map(str, json.loads(sys.argv[1])["model"]["splits"])))' "$card")"
    (cd "$TMP/creator" && exec "$BIN" model-host --server "$URL" --ca "$CA" --model "$model" \
        --tail "$ROOT/data/models/$model.safetensors" >"host-$model.out" 2>"host-$model.err") &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q fingerprint "$TMP/creator/host-$model.out" 2>/dev/null && break; sleep 0.1; done
    for k in $splits; do
        if ! summary="$(cd "$TMP/user" && "$BIN" query --server "$URL" --ca "$CA" --model "$model" \
            --split "$k" --input "$IMAGES" --labels "$LABELS" --limit "$LIMIT" --json 2>"$TMP/err" | tail -1)"; then
            python3 -c 'import json,sys; print(json.dumps({"model": sys.argv[1], "split": int(sys.argv[2]), "error": sys.argv[3].strip()[-400:]}))' \
                "$model" "$k" "$(cat "$TMP/err")" | tee -a "$OUT"
            continue
        fi
        link="$(usage_link "$model" "$LIMIT")"
        python3 - "$model" "$summary" "$link" <<'PY' | tee -a "$OUT"
import json, sys
model, s, link = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
total = s["upload_bytes"] + s["download_bytes"] + s["mpc_bytes"] + link
print(json.dumps({
    "model": model, "split": s["split"], "inputs": s["inputs"],
    "ms_per_input": round(s["ms_per_input"], 1), "key_bytes": s["key_bytes"],
    "upload_bytes": s["upload_bytes"], "download_bytes": s["download_bytes"],
    "user_mpc_bytes": s["mpc_bytes"], "platform_host_bytes": round(link),
    "bytes_per_input": round(total), "accuracy": s["accuracy"],
}))
PY
    done
    # Several users at once on the recommended split.
    rec="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["model"]["splits"][0])' "$card")"
    start="$(date +%s.%N)"
    QP=()
    for u in $(seq "$USERS"); do
        (cd "$TMP/user" && "$BIN" query --server "$URL" --ca "$CA" --model "$model" --split "$rec" \
            --input "$IMAGES" --labels "$LABELS" --limit "$LIMIT" --json >"c$u.out" 2>"c$u.err") &
        QP+=($!)
    done
    fails=0
    for p in "${QP[@]}"; do wait "$p" || fails=$((fails + 1)); done
    end="$(date +%s.%N)"
    python3 - "$model" "$rec" "$USERS" "$LIMIT" "$start" "$end" "$fails" "$TMP/user" <<'PY' | tee -a "$OUT"
import json, sys
model, k, users, limit, t0, t1, fails, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
acc = []
for u in range(1, users + 1):
    try:
        acc.append(json.loads(open(f"{d}/c{u}.out").read().splitlines()[-1])["accuracy"])
    except Exception:
        pass
print(json.dumps({
    "model": model, "split": k, "concurrent_users": users, "failed_users": fails,
    "images": users * limit, "seconds": round(t1 - t0, 2),
    "images_per_second": round(users * limit / (t1 - t0), 2), "accuracy": acc,
}))
PY
done
echo "results: $OUT" >&2
