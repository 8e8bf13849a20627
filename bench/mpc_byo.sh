#!/usr/bin/env bash
# Private prediction (three parties, secret sharing) of the PyTorch-trained
# MNIST models of bench/byo_mnist.py — exported by torch.onnx.export with
# its defaults — on the 10,000 test images from the IDX file, compared image
# by image with PyTorch's own predictions; then one image alone (latency:
# model sharing included). `cipherflow mpc predict --model FILE --input
# PATH`, three parties as threads of one process over in-process channels
# (`--tcp` in MPC_FLAGS for TLS sockets). One JSON line per model, appended
# to bench/results/mpc-byo-<UTC time>.jsonl.
#
# Usage: [MPC_FLAGS=--tcp] bash bench/mpc_byo.sh [MNIST_DIR]   (run
#        bench/byo_mnist.sh first: it trains and exports the models)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
MNIST="${1:-${CIPHERFLOW_DATA:-$ROOT/../shared/data}/mnist}"
OUT="${BYO_OUT:-$HERE/.cache/byo-mnist}"
RES="$HERE/results/mpc-byo-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
file() { for n in "$1.gz" "${1/-idx/.idx}.gz" "$1" "${1/-idx/.idx}"; do
    [[ -f "$MNIST/$n" ]] && { echo "$MNIST/$n"; return; }; done
    echo "mpc_byo: $1 not found in $MNIST" >&2; exit 1; }
IMAGES="$(file t10k-images-idx3-ubyte)"
LABELS="$(file t10k-labels-idx1-ubyte)"
[[ -f "$OUT/relu_cnn.onnx" ]] || { echo "mpc_byo: run bench/byo_mnist.sh first" >&2; exit 1; }
(cd "$ROOT" && cargo build --release --locked -p cipherflow-cli >&2)
CF="$ROOT/target/release/cipherflow"
PY="$HERE/.venv-torch/bin/python"
for m in ${MPC_MODELS:-mlp_square tenseal_cnn bn_cnn relu_mlp relu_cnn}; do
    echo "+ mpc predict $m: 10,000 images" >&2
    # shellcheck disable=SC2086
    "$CF" mpc predict --model "$OUT/$m.onnx" --input "$IMAGES" --labels "$LABELS" \
        --normalize 0.1307,0.3081 --predictions "$OUT/$m.mpc.csv" --json ${MPC_FLAGS:-} \
        | tail -n 1 > "$OUT/$m.mpc.json"
    # shellcheck disable=SC2086
    "$CF" mpc predict --model "$OUT/$m.onnx" --input "$IMAGES" --limit 1 \
        --normalize 0.1307,0.3081 --json ${MPC_FLAGS:-} | tail -n 1 > "$OUT/$m.mpc1.json"
    "$PY" - "$OUT" "$m" <<'PYEOF' | tee -a "$RES"
import csv, json, sys
import numpy as np
out, m = sys.argv[1], sys.argv[2]
d = json.load(open(f"{out}/{m}.mpc.json"))
one = json.load(open(f"{out}/{m}.mpc1.json"))
torch_pred = np.load(f"{out}/{m}.torch_pred.npy")
ours = np.array([int(r["class"]) for r in csv.DictReader(open(f"{out}/{m}.mpc.csv"))])
print(json.dumps({"bench": "mpc-byo", "model": m, "images": d["inputs"],
                  "agreement_with_pytorch": float((ours == torch_pred).mean()),
                  "accuracy": d.get("accuracy"), "seconds": d["seconds"],
                  "images_per_second": d["inputs"] / d["seconds"],
                  "bytes_per_image": d["bytes"] / d["inputs"], "rounds": d["rounds"],
                  "one_image_ms": 1e3 * one["seconds"], "one_image_bytes": one["bytes"],
                  "one_image_rounds": one["rounds"], "network": d["network"]}))
PYEOF
done
echo "mpc_byo: results in $RES" >&2
