#!/usr/bin/env bash
# Time per training step, plain vs DP-SGD, cipherflow-nn vs PyTorch/Opacus,
# in one run: MNIST CNN (TF Privacy tutorial architecture) and an MLP,
# batch 256, random MNIST-shaped data. Prints a table with the DP/plain
# ratio of each library and cipherflow/peer ratios; stores JSON lines in
# bench/results/nn-<date>.jsonl.
#
# Usage: bash bench/nn.sh [--batch 256] [--reps 20] [--threads 2] [--no-peers]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="${TORCH_VENV:-$HERE/.venv-torch}"
BATCH=256 REPS=20 THREADS=2 PEERS=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --batch) BATCH="$2"; shift 2 ;;
        --reps) REPS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --no-peers) PEERS=0; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$HERE/results"
OUT="$HERE/results/nn-$(date +%Y%m%d-%H%M%S).jsonl"
(cd "$ROOT" && cargo build --release --locked -q -p cipherflow-nn --example step_bench)
"$ROOT/target/release/examples/step_bench" --batch "$BATCH" --reps "$REPS" --threads "$THREADS" | tee "$OUT"
if [[ "$PEERS" == 1 ]]; then
    if bash "$HERE/nn_setup_venv.sh"; then
        "$VENV/bin/python" "$HERE/nn_peer.py" --batch "$BATCH" --reps "$REPS" --threads "$THREADS" | tee -a "$OUT"
    else
        echo "nn.sh: could not set up PyTorch/Opacus; cipherflow only" >&2
    fi
fi
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
t = {(r["library"], r["model"], r["mode"]): r["ms_per_step"] for r in rows}
print(f"\n{'model':6} {'library':10} {'plain ms':>9} {'DP ms':>9} {'DP/plain':>9}")
for model in ("cnn", "mlp"):
    for lib, plain, dp in (("cipherflow", "cipherflow", "cipherflow"), ("torch/opacus", "pytorch", "opacus")):
        p, d = t.get((plain, model, "plain")), t.get((dp, model, "dp"))
        if p and d:
            print(f"{model:6} {lib:10} {p:9.2f} {d:9.2f} {d / p:9.2f}")
    cp, cd = t.get(("cipherflow", model, "plain")), t.get(("cipherflow", model, "dp"))
    pp, pd = t.get(("pytorch", model, "plain")), t.get(("opacus", model, "dp"))
    if cp and pp:
        print(f"{model:6} cipherflow/pytorch plain {cp / pp:.2f}x, cipherflow/opacus DP {cd / pd:.2f}x")
PY
echo "results: $OUT"
