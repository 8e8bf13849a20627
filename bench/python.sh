#!/usr/bin/env bash
# The Python package against its peers, same machine, same run:
#   cipherflow.ckks vs TenSEAL (vector operations and a 64x64 product at
#   N = 2^13, [60, 40, 40 | 60], scale 2^40) and the binding's overhead over
#   the same calls made from Rust (bench/python_ckks.py).
#
# Installs TenSEAL into bench/.venv (bench/setup_venv.sh) and the package
# from ./python into the same venv, then writes
# bench/results/python-ckks-<UTC timestamp>.jsonl and prints the table.
#
# Usage: bash bench/python.sh [--reps 30] [--threads N]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
REPS=30 THREADS=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
bash "$HERE/setup_venv.sh"
VENV="${PEERS_VENV:-$HERE/.venv}"
"$VENV/bin/python" -m pip install --quiet "$ROOT/python"
OUT="$HERE/results/python-ckks-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
mkdir -p "$HERE/results"
{
    echo "# $(date -u) $(uname -m) $(nproc) cores, RAYON_NUM_THREADS=${THREADS:-default}"
    if [[ -n "$THREADS" ]]; then export RAYON_NUM_THREADS="$THREADS"; fi
    "$VENV/bin/python" "$HERE/python_ckks.py" --reps "$REPS"
} | tee "$OUT"
echo "results: $OUT"
