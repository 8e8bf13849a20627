#!/usr/bin/env bash
# Encrypted federated aggregation: cipherflow vs NVIDIA FLARE's HE path
# (TenSEAL CKKS N = 8192, [60, 40, 40], scale 2^40) and Flower (plain FedAvg
# and SecAgg+), same machine, same run.
#
#   bench/fl.sh                          10 and 50 clients × 10^5 and 10^6 parameters
#   bench/fl.sh --reps 5 --clients 10,50 --params 100000,1000000 --only ours|peers
#   bench/fl.sh --secagg-shares 0.6 --secagg-threshold 0.67   (SecAgg+ at a fixed fraction)
#
# All JSON lines go to bench/results/fl-<UTC timestamp>.jsonl; ratio tables
# (ours / theirs) are printed at the end (bench/fl_ratios.py).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CARGO="${CARGO:-cargo}"
REPS=3
CLIENTS=10,50
PARAMS=100000,1000000
ONLY=all
PEER_EXTRA=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="${2:?}"; shift ;;
        --clients) CLIENTS="${2:?}"; shift ;;
        --params) PARAMS="${2:?}"; shift ;;
        --only) ONLY="${2:?}"; shift ;;
        --secagg-shares|--secagg-threshold) PEER_EXTRA+=("$1" "${2:?}"); shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

mkdir -p "$HERE/results"
OUT="$HERE/results/fl-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
python3 - >"$OUT" <<'PY'
import json, os, platform, subprocess
def git(*a):
    try: return subprocess.check_output(["git", *a], text=True).strip()
    except Exception: return None
print(json.dumps({"meta": "fl", "machine": platform.machine(), "cpus": os.cpu_count(),
                  "commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain")),
                  "load": os.getloadavg()}))
PY

if [[ "$ONLY" != peers ]]; then
    (cd "$ROOT" && "$CARGO" build --release -q -p cipherflow-cli) || { echo "fl.sh: build failed" >&2; exit 1; }
    CF="$(mktemp -d)/cipherflow"
    cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/cipherflow" "$CF"
    for lam in 40 30; do
        echo "+ cipherflow bench fl (λ = $lam)" >&2
        "$CF" bench fl --params "$PARAMS" --clients "$CLIENTS" --reps "$REPS" --threads 2 \
            --stat-sec "$lam" $([[ $lam == 30 ]] && echo --no-rounds) --json | tee -a "$OUT"
    done
fi
if [[ "$ONLY" != ours ]]; then
    "$HERE/fl_setup_venv.sh" >&2 || { echo "fl.sh: venv setup failed" >&2; exit 1; }
    echo "+ fl_peer.py (TenSEAL, Flower)" >&2
    python3 "$HERE/fl_peer.py" --clients "$CLIENTS" --params "$PARAMS" --reps "$REPS" "${PEER_EXTRA[@]}" | tee -a "$OUT"
fi
python3 "$HERE/fl_ratios.py" "$OUT"
echo "results: $OUT" >&2
