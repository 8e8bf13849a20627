#!/usr/bin/env bash
# Secure aggregation inside Flower, side by side in Flower's simulation
# engine (same run, same machine, same virtual clients returning random
# float32 updates): Flower's plain FedAvg, Flower's SecAgg+
# (SecAggPlusWorkflow + secaggplus_mod) and cipherflow.flower
# (CkksSecAggWorkflow + secure_aggregation_mod: threshold CKKS, checked
# decryption). Round time = the fit workflow of rounds 2..1+reps (round 1
# waits for Ray and, for cipherflow, runs the key setup: reported apart).
#
#   bash bench/flower.sh                                  10 and 50 clients × 10^5 parameters
#   bash bench/flower.sh --clients 10,50 --params 100000 --reps 3
#
# Needs bench/.venv-fl (bench/fl_setup_venv.sh: flwr[simulation] 1.42, Ray,
# TenSEAL) with this repository's Python package built into it. Results:
# bench/results/flower-<UTC timestamp>.jsonl and a ratio table.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CLIENTS=10,50
PARAMS=100000
REPS=3
while [[ $# -gt 0 ]]; do
    case "$1" in
        --clients) CLIENTS="${2:?}"; shift ;;
        --params) PARAMS="${2:?}"; shift ;;
        --reps) REPS="${2:?}"; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

"$HERE/fl_setup_venv.sh" >&2 || { echo "flower.sh: venv setup failed" >&2; exit 1; }
echo "+ pip install ./python into bench/.venv-fl" >&2
"$HERE/.venv-fl/bin/python" -m pip install --quiet "$ROOT/python" \
    || { echo "flower.sh: building the Python package failed" >&2; exit 1; }

mkdir -p "$HERE/results"
OUT="$HERE/results/flower-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
"$HERE/.venv-fl/bin/python" - >"$OUT" <<'PY'
import json, os, platform, subprocess
def git(*a):
    try: return subprocess.check_output(["git", *a], text=True).strip()
    except Exception: return None
print(json.dumps({"meta": "flower", "machine": platform.machine(), "cpus": os.cpu_count(),
                  "commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain")),
                  "load": os.getloadavg()}))
PY
"$HERE/.venv-fl/bin/python" "$HERE/fl_peer.py" --only flower --modes fedavg,secagg+,cipherflow \
    --clients "$CLIENTS" --params "$PARAMS" --reps "$REPS" | tee -a "$OUT"

"$HERE/.venv-fl/bin/python" - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def get(mode, c, p):
    for r in rows:
        if r.get("bench") == "round" and r.get("mode") == mode and r.get("clients") == c and r.get("params") == p:
            return r
print("\n## Flower: secure aggregation per round (seconds, median of rounds 2..)\n")
print("| clients × params | FedAvg (none) | SecAgg+ | cipherflow.flower | ours / SecAgg+ | our key setup (round 1) | our bytes/param | our decryptors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
keys = sorted({(r["clients"], r["params"]) for r in rows if r.get("bench") == "round"})
for c, p in keys:
    fa, sa, cf = get("fedavg", c, p), get("secagg+", c, p), get("cipherflow", c, p)
    s = lambda r: f"{r['seconds']:.2f}" if r and "seconds" in r else ("skipped" if r else "–")
    ratio = f"{cf['seconds'] / sa['seconds']:.2f}×" if cf and sa and "seconds" in cf and "seconds" in sa else "–"
    ks = f"{cf['key_setup_seconds']:.1f} s" if cf and cf.get("key_setup_seconds") is not None else "–"
    bpp = f"{cf['bytes_per_param']:.2f}" if cf and cf.get("bytes_per_param") else "–"
    dec = cf["cipherflow_reports"][-1]["decryptors"] if cf and cf.get("cipherflow_reports") else "–"
    print(f"| {c} × {p} | {s(fa)} | {s(sa)} | {s(cf)} | {ratio} | {ks} | {bpp} | {dec} |")
print(f"\nresults: {sys.argv[1]}")
PY
