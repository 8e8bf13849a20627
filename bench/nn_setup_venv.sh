#!/usr/bin/env bash
# Create bench/.venv-torch with PyTorch (CPU use only), Opacus, safetensors,
# onnx, onnxscript (torch's torch.export-based ONNX exporter, which
# cipherflow.torch.compile uses), Pillow and onnxruntime from PyPI, for bench/nn_peer.py,
# bench/nn_fixtures.py, bench/byo_fixtures.py, byo_mnist.py and byo_export.py.
# PyPI's torch wheel pulls the CUDA libraries (about 5 GB installed; about
# 2.5 minutes here); download.pytorch.org's CPU-only index is not reachable
# from our machines. Idempotent.
#
# Overrides: PEERS_PYTHON=/path/to/python   interpreter for the venv
#            TORCH_VENV=/path/to/venv       default: bench/.venv-torch
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${TORCH_VENV:-$HERE/.venv-torch}"
PY="${PEERS_PYTHON:-$(command -v python3)}"
VENV_SAY=nn_setup_venv
# shellcheck source=venv_lib.sh
source "$HERE/venv_lib.sh"

CHECK='import torch, opacus, safetensors, onnx, onnxscript, PIL, onnxruntime'
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
    venv_report "$VENV" torch opacus safetensors onnx numpy
    exit 0
fi
venv_create "$VENV" "$PY" || exit 1
"${PIP[@]}" install --upgrade pip
"${PIP[@]}" install torch==2.6.0 opacus==1.5.2 safetensors==0.8.0 onnx==1.23.2 onnxscript==0.7.2 "numpy<2" pillow==11.0.0 onnxruntime==1.20.1
"$VPY" -c "$CHECK"
venv_report "$VENV" torch opacus safetensors onnx numpy
