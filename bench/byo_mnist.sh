#!/usr/bin/env bash
# Bring your own model: PyTorch-trained MNIST models, exported by
# torch.onnx.export with its defaults (bench/byo_mnist.py), run through
# `cipherflow infer` on the 10,000 test images as the user has them (the
# IDX file, and a folder of 10,000 PNG files), compared image by image with
# PyTorch's own predictions. One JSON line per model, then the loading-time
# line, appended to bench/results/byo-mnist-<UTC time>.jsonl.
#
# Usage: [BYO_MODELS="relu_cnn …"] bash bench/byo_mnist.sh [MNIST_DIR]   (default $CIPHERFLOW_DATA/mnist,
#        else ../shared/data/mnist). Needs bench/.venv-torch (made here by
#        nn_setup_venv.sh) and a release build (made here).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
MNIST="${1:-${CIPHERFLOW_DATA:-$ROOT/../shared/data}/mnist}"
OUT="${BYO_OUT:-$HERE/.cache/byo-mnist}"
RES="$HERE/results/byo-mnist-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
file() { for n in "$1.gz" "${1/-idx/.idx}.gz" "$1" "${1/-idx/.idx}"; do
    [[ -f "$MNIST/$n" ]] && { echo "$MNIST/$n"; return; }; done
    echo "byo_mnist: $1 not found in $MNIST" >&2; exit 1; }
IMAGES="$(file t10k-images-idx3-ubyte)"
LABELS="$(file t10k-labels-idx1-ubyte)"
bash "$HERE/nn_setup_venv.sh" >&2
PY="$HERE/.venv-torch/bin/python"
[[ -f "$OUT/relu_cnn.onnx" && -f "$OUT/calib.npy" && -d "$OUT/t10k-png" ]] || "$PY" "$HERE/byo_mnist.py" "$MNIST" "$OUT" >&2
(cd "$ROOT" && cargo build --release --locked -p cipherflow-cli >&2)
CF="$ROOT/target/release/cipherflow"
for m in ${BYO_MODELS:-mlp_square tenseal_cnn bn_cnn relu_mlp relu_cnn}; do
    echo "+ infer $m: 10,000 images (IDX), throughput mode" >&2
    APPROX=()
    [[ $m == relu_* ]] && APPROX=(--approximate --calibration "$OUT/calib.npy" --degree 31)
    "$CF" infer --model "$OUT/$m.onnx" --input "$IMAGES" --labels "$LABELS" \
        --normalize 0.1307,0.3081 --batch --predictions "$OUT/$m.pred.csv" --json "${APPROX[@]}" \
        | tail -n 1 > "$OUT/$m.json"
    "$PY" - "$OUT" "$m" <<'PYEOF' | tee -a "$RES"
import csv, json, sys
import numpy as np
out, m = sys.argv[1], sys.argv[2]
d = json.load(open(f"{out}/{m}.json"))
torch_pred = np.load(f"{out}/{m}.torch_pred.npy")
ours = np.array([int(r["class"]) for r in csv.DictReader(open(f"{out}/{m}.pred.csv"))])
print(json.dumps({"bench": "byo-mnist", "model": m, "format": "onnx (torch.onnx.export defaults)",
                  "images": d["inputs"], "agreement_with_pytorch": float((ours == torch_pred).mean()),
                  "encrypted_accuracy": d["encrypted_accuracy"], "plain_agreement": d["plain_agreement"],
                  "ms_per_image": d["ms_per_input"], "upload_bytes": d["upload_bytes"],
                  "download_bytes": d["download_bytes"], "load_ms": d["load_ms"],
                  "encrypted_ms": d["encrypted_ms"], "log_n": d["log_n"], "threads": d["threads"],
                  "exact_model_accuracy": d["plain_accuracy"], "approximation": d["approximation"],
                  "max_logit_error": d["max_logit_error"], "depth": d.get("depth"),
                  "parameters": d.get("parameters")}))
PYEOF
done
echo "+ loading 10,000 PNG files (tenseal_cnn)" >&2
"$CF" infer --model "$OUT/tenseal_cnn.onnx" --input "$OUT/t10k-png" --normalize 0.1307,0.3081 \
    --batch --json | tail -n 1 | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
print(json.dumps({"bench": "byo-mnist-png-load", "model": "tenseal_cnn", "images": d["inputs"],
                  "load_ms": d["load_ms"], "encrypted_ms": d["encrypted_ms"],
                  "load_share": d["load_ms"] / d["encrypted_ms"], "plain_agreement": d["plain_agreement"]}))' \
    | tee -a "$RES"
echo "byo_mnist: results in $RES" >&2
