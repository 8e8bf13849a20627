#!/usr/bin/env bash
# Breast-cancer federation accuracy (10 hospitals, Dirichlet α = 0.5,
# 20 rounds of threshold-encrypted FedAvg) against centralized training on
# the same train/test split, without DP and at ε = 1 and 3 (client-level
# distributed DP and sample-level local DP-SGD), mean over seeds.
#
#   bench/fl_accuracy.sh [--seeds 5]
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SEEDS=5
[[ "${1:-}" == --seeds ]] && SEEDS="${2:?}"
(cd "$ROOT" && cargo build --release -q -p cipherflow-cli) || exit 1
CF="${CARGO_TARGET_DIR:-$ROOT/target}/release/cipherflow"
mkdir -p "$HERE/results"
OUT="$HERE/results/fl-accuracy-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
cd "$ROOT"
for s in $(seq 1 "$SEEDS"); do
    "$CF" train --data breast-cancer --model logreg --seed "$s" --json | tail -n 1 |
        python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'run':'centralized','seed':$s,'accuracy':d['test_accuracy']}))" | tee -a "$OUT"
    run() {
        local name="$1"; shift
        "$CF" fl simulate --data breast-cancer --clients 10 --rounds 20 --seed "$s" "$@" --json | tail -n 1 |
            python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'run':'$name','seed':$s,'accuracy':d['final_accuracy'],'epsilon':d['epsilon'],'ledger':d['ledger']}))" | tee -a "$OUT"
    }
    run fl-nodp
    for e in 1 3; do
        run "fl-client-eps$e" --dp-epsilon "$e" --dp-level client
        run "fl-sample-eps$e" --dp-epsilon "$e" --dp-level sample
    done
done
python3 - "$OUT" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\n| run | mean accuracy | min | max | runs |")
print("|---|---:|---:|---:|---:|")
for name in ["centralized", "fl-nodp", "fl-client-eps1", "fl-client-eps3", "fl-sample-eps1", "fl-sample-eps3"]:
    a = [r["accuracy"] for r in rows if r["run"] == name]
    if a:
        print(f"| {name} | {100*st.mean(a):.1f} % | {100*min(a):.1f} % | {100*max(a):.1f} % | {len(a)} |")
PY
echo "results: $OUT" >&2
