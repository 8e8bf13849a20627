#!/usr/bin/env bash
# The Python package against its peers, same machine, same run:
#   * cipherflow.ckks vs TenSEAL: vector operations and a 64x64 product at
#     N = 2^13, [60, 40, 40 | 60], scale 2^40, and the binding's overhead
#     over the same calls made from Rust (bench/python_ckks.py);
#   * the TenSEAL tutorial's MNIST CNN per image: cipherflow.torch.compile
#     (bench/python_cnn_export.py, in the torch venv) vs TenSEAL's tutorial
#     pipeline on the same weights (needs MNIST);
#   * cipherflow.torch.make_private (SecureSGD) vs Opacus on MNIST (or the
#     shipped digits), same model, epsilon and settings
#     (bench/python_securesgd.py).
#
# Venvs: bench/.venv (TenSEAL, bench/setup_venv.sh) and bench/.venv-torch
# (torch, Opacus, onnx, bench/nn_setup_venv.sh); the package from ./python
# is installed into both. Results: bench/results/python-<UTC>.jsonl.
#
# Usage: bash bench/python.sh [--reps 30] [--threads N] [--epochs 1] [--seeds 2]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
REPS=30 THREADS="" EPOCHS=1 SEEDS=2
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --epochs) EPOCHS="$2"; shift 2 ;;
        --seeds) SEEDS="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
MNIST="${CIPHERFLOW_DATA:-$ROOT/../shared/data}/mnist"
bash "$HERE/setup_venv.sh"
bash "$HERE/nn_setup_venv.sh"
VENV="${PEERS_VENV:-$HERE/.venv}"
TORCH="${TORCH_VENV:-$HERE/.venv-torch}"
# One abi3 wheel (CPython >= 3.9) built once, installed into both venvs.
WHEELS="$(mktemp -d)"
"$VENV/bin/python" -m pip wheel --quiet --no-deps -w "$WHEELS" "$ROOT/python"
"$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps "$WHEELS"/cipherflow-*.whl
"$TORCH/bin/python" -m pip install --quiet --force-reinstall --no-deps "$WHEELS"/cipherflow-*.whl
rm -rf "$WHEELS"
if [[ -n "$THREADS" ]]; then export RAYON_NUM_THREADS="$THREADS"; fi
OUT="$HERE/results/python-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
mkdir -p "$HERE/results"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
{
    echo "# $(date -u) $(uname -m) $(nproc) cores, RAYON_NUM_THREADS=${THREADS:-default}"
    CNN=()
    if [[ -f "$MNIST/t10k-images.idx3-ubyte.gz" || -f "$MNIST/t10k-images-idx3-ubyte.gz" ]]; then
        "$TORCH/bin/python" "$HERE/python_cnn_export.py" "$TMP/cnn-server.bin"
        CNN=(--cnn-server "$TMP/cnn-server.bin" --mnist "$MNIST")
    else
        echo "# no MNIST under $MNIST: the CNN row is skipped"
    fi
    "$VENV/bin/python" "$HERE/python_ckks.py" --reps "$REPS" "${CNN[@]}"
    "$TORCH/bin/python" "$HERE/python_securesgd.py" --mnist "$MNIST" --epochs "$EPOCHS" --seeds "$SEEDS"
} 2>&1 | tee "$OUT"
echo "results: $OUT"
