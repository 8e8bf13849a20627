#!/usr/bin/env bash
# Private training of neural networks (three parties, secret sharing):
# `cipherflow mpc train` on MNIST's 60,000 training images split between
# two owners, scored on the 10,000 test images, beside the same training
# in plaintext (same initial weights, same batches in the same order) —
# the MLP 784-128-128-10 of SecureML/ABY3/SecureNN/Falcon ("network A"),
# then a small CNN. Three parties as threads of one process over in-process
# channels (`--tcp` in MPC_FLAGS for TLS sockets). One JSON line per run,
# appended to bench/results/mpc-train-<UTC time>.jsonl, each tagged with
# its name.
#
# Usage: [EPOCHS=5] [MPC_FLAGS=--tcp] [RUNS="mlp-rows ..."] bash bench/mpc_train.sh [MNIST_DIR]
#   runs: mlp-rows (EPOCHS epochs), mlp-columns (1 epoch), mlp-ring64
#   (1 epoch, Z_2^64, f = 16), cnn (1 epoch), crypten (CrypTen 0.4.1
#   training the same MLP, 2 parties, BATCHES=10 timed batches; installed
#   with --no-deps into the PyTorch environment of bench/nn_setup_venv.sh,
#   its two missing pure-Python dependencies beside it).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
MNIST="${1:-${CIPHERFLOW_DATA:-$ROOT/../shared/data}/mnist}"
RES="$HERE/results/mpc-train-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
OUT="$HERE/.cache/mpc-train"
mkdir -p "$OUT" "$HERE/results"
(cd "$ROOT" && cargo build --release --locked -p cipherflow-cli >&2)
CF="$ROOT/target/release/cipherflow"
CNN="$OUT/cnn.toml"
cat > "$CNN" <<'TOML'
# conv 8@5×5 stride 2 → ReLU → avg-pool 2 → dense 64 → ReLU → dense 10
layers = [
  { type = "conv2d", out_channels = 8, kernel = 5, stride = 2, padding = 2 },
  { type = "relu" },
  { type = "avg_pool2d", kernel = 2 },
  { type = "flatten" },
  { type = "dense", units = 64 },
  { type = "relu" },
  { type = "dense", units = 10 },
]
TOML
run() {
    local name="$1"; shift
    echo "+ mpc train $name: $*" >&2
    # shellcheck disable=SC2086
    "$CF" mpc train --data "mnist:$MNIST" "$@" --json ${MPC_FLAGS:-} | tail -n 1 \
        | python3 -c 'import json,sys; j=json.load(sys.stdin); j["run"]=sys.argv[1]; print(json.dumps(j))' "$name" \
        | tee -a "$RES"
}
for r in ${RUNS:-mlp-rows mlp-columns mlp-ring64 cnn crypten}; do
    case "$r" in
        mlp-rows) run "$r" --model mlp:128-128 --epochs "${EPOCHS:-5}" --out "$OUT/mlp.onnx" ;;
        mlp-columns) run "$r" --model mlp:128-128 --split columns --epochs 1 ;;
        mlp-ring64) run "$r" --model mlp:128-128 --ring 64 --epochs 1 ;;
        cnn) run "$r" --model "$CNN" --epochs 1 --out "$OUT/cnn.onnx" ;;
        crypten)
            PY="$HERE/.venv-torch/bin/python"
            [[ -x "$PY" ]] || { echo "mpc_train: run bench/nn_setup_venv.sh first" >&2; exit 1; }
            "$PY" -c "import crypten" 2>/dev/null \
                || "$PY" -m pip install --quiet --no-deps crypten==0.4.1 pyyaml omegaconf >&2
            "$PY" "$HERE/crypten_train.py" "$MNIST" "${BATCHES:-10}" | tail -n 1 | tee -a "$RES" ;;
        *) echo "mpc_train: unknown run $r" >&2; exit 1 ;;
    esac
done
echo "results: $RES" >&2
