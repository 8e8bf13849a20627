#!/usr/bin/env bash
# Create bench/.venv-torch with PyTorch (CPU use only), Opacus, safetensors
# and onnx from PyPI, for bench/nn_peer.py and bench/nn_fixtures.py.
# PyPI's torch wheel pulls the CUDA libraries (about 5 GB installed; about
# 2.5 minutes here); download.pytorch.org's CPU-only index is not reachable
# from our machines. Idempotent.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${TORCH_VENV:-$HERE/.venv-torch}"
PY="${PEERS_PYTHON:-python3}"
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import torch, opacus, safetensors, onnx' 2>/dev/null; then
    exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.5.1 opacus==1.5.2 safetensors==0.8.0 onnx==1.23.2 "numpy<2"
"$VENV/bin/python" -c 'import torch, opacus; print("torch", torch.__version__, "opacus", opacus.__version__)' >&2
