#!/usr/bin/env bash
# Three-party MPC benchmark: three `cipherflow mpc party` processes on
# 127.0.0.1 talking TCP + mutual TLS (certificates from `mpc gen-certs`).
#
#   1000×1000 fixed-point matmul (moose: 5.9 s; target ≤ 2 s)
#   MNIST MLP 784-128-128-10 private prediction: the model owner's model
#     file (trained here by `cipherflow train`), the data owner's IDX test
#     images, each process reading only its own (`--task predict`); and, in
#     one process, the latency of one example (CrypTen: 0.26 s for two
#     parties; target ≤ 0.1 s)
#   10 iterations of logistic regression (breast cancer, rows and columns split)
#
# Each party prints one JSON line; the combined line per task has
# seconds = max over parties, bytes = sum, rounds = max. Then the same
# programs run in one process over emulated links (10 ms added to every
# message, 1 Gbit/s per link: `--latency-ms 10`), and the script also prints
# the model figure rounds × 10 ms + bytes / 1 Gbit/s next to each time. (tc netem is not
# available on this machine: `tc qdisc add … netem` fails with "qdisc kind
# is unknown", so the delay is emulated in our transport.)
#
# Usage: bash bench/mpc.sh [--n 1000] [--limit 1000] [--reps 20] [--no-wan]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
N=1000 LIMIT=1000 REPS=20 WAN=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --n) N="$2"; shift 2 ;;
        --limit) LIMIT="$2"; shift 2 ;;
        --reps) REPS="$2"; shift 2 ;;
        --no-wan) WAN=0; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
(cd "$ROOT" && cargo build --release -q -p cipherflow-cli)
mkdir -p "$HERE/results"
OUT="$HERE/results/mpc-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
# A private copy: a shared target directory may be rebuilt from another
# checkout while we run.
cp "$TARGET/release/cipherflow" "$TMP/cipherflow"
BIN="$TMP/cipherflow"
"$BIN" mpc --help > /dev/null
PORT=$((20000 + RANDOM % 20000))
CFG="$("$BIN" mpc gen-certs --dir "$TMP/certs" --base-port "$PORT")"
sed -i 's/^timeout_ms = .*/timeout_ms = 600000/' "$CFG"
python3 - "$OUT" "$ROOT" <<'PY'
import json, os, platform, subprocess, sys
out, root = sys.argv[1], sys.argv[2]
rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
meta = {"meta": True, "git": rev, "cpu": cpu, "cores": os.cpu_count(), "load": os.getloadavg()[0], "host": platform.node()}
open(out, "w").write(json.dumps(meta) + "\n")
PY

# run_parties NAME ARGS… : three processes, per-party lines, one combined line.
run_parties() {
    local name="$1"; shift
    for id in 0 1 2; do
        (cd "$ROOT" && "$BIN" mpc party --id "$id" --config "$CFG" --json "$@" > "$TMP/p$id.json" 2> "$TMP/p$id.err") &
    done
    wait
    python3 - "$OUT" "$name" "$TMP" <<'PY'
import json, sys
out, name, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
rows = []
for i in range(3):
    lines = [l for l in open(f"{tmp}/p{i}.json") if l.strip().startswith("{")]
    if not lines:
        sys.exit(f"party {i} printed nothing: " + open(f"{tmp}/p{i}.err").read())
    rows.append(json.loads(lines[-1]))
c = dict(rows[1])
c.pop("party", None)
c.update({"bench": name, "processes": 3, "seconds": max(r["seconds"] for r in rows),
          "bytes": sum(r["bytes"] for r in rows), "rounds": max(r["rounds"] for r in rows)})
if "latency_seconds" in rows[0]:
    c["latency_seconds"] = max(r["latency_seconds"] for r in rows)
    c["latency_bytes"] = sum(r["latency_bytes"] for r in rows)
    c["latency_rounds"] = max(r["latency_rounds"] for r in rows)
for k in ("agreement", "plaintext_accuracy"):
    v = [r[k] for r in rows if k in r]
    if v:
        c[k] = v[0]
if "train_seconds" in rows[0]:
    c["train_seconds"] = rows[0]["train_seconds"]
c.pop("ops", None)
with open(out, "a") as f:
    for r in rows:
        f.write(json.dumps({"bench": name, **r}) + "\n")
    f.write(json.dumps(c) + "\n")
print(json.dumps(c))
PY
}

MNIST_DIR=""
for d in "$ROOT/../shared/data/mnist" /work/shared/data/mnist "$ROOT/data"; do
    if [[ -e "$d/t10k-labels.idx1-ubyte.gz" || -e "$d/t10k-labels-idx1-ubyte.gz" ]]; then MNIST_DIR="$d"; break; fi
done

run_parties matmul --task bench-matmul --n "$N"
printf 'input = [1, 28, 28]\nlayers = [\n  { type = "flatten" },\n  { type = "dense", units = 128 },\n  { type = "relu" },\n  { type = "dense", units = 128 },\n  { type = "relu" },\n  { type = "dense", units = 10 },\n]\n' > "$TMP/mlp.toml"
if [[ -n "$MNIST_DIR" ]]; then
    "$BIN" train --data "mnist:$MNIST_DIR" --model "$TMP/mlp.toml" --epochs 2 --out "$TMP/mnist-mlp.safetensors" --json >&2
    T10K="$(ls "$MNIST_DIR"/t10k-images*idx3-ubyte* | head -1)"
    T10KL="$(ls "$MNIST_DIR"/t10k-labels*idx1-ubyte* | head -1)"
    run_parties predict-mnist --task predict --model "$TMP/mnist-mlp.safetensors" --input "$T10K" --labels "$T10KL" --limit "$LIMIT"
    (cd "$ROOT" && "$BIN" mpc predict --data "mnist:$MNIST_DIR" --limit 100 --latency-reps "$REPS" --json) | tail -1 | sed 's/^{/{"bench":"predict-mnist-latency-1process",/' | tee -a "$OUT"
else
    echo "mpc.sh: MNIST not found, predicting on digits only" >&2
fi
(cd "$ROOT" && "$BIN" mpc predict --data digits --latency-reps "$REPS" --json) | tail -1 | sed 's/^{/{"bench":"predict-digits-1process",/' | tee -a "$OUT"
run_parties logreg-rows --task train-logreg --split rows --iterations 10
run_parties logreg-columns --task train-logreg --split columns --iterations 10

if [[ "$WAN" == 1 ]]; then
    W=(--latency-ms 10 --bandwidth-mbps 1000 --json)
    (cd "$ROOT" && "$BIN" mpc bench-matmul --n "$N" "${W[@]}") | tail -1 | sed 's/^{/{"bench":"matmul-wan",/' | tee -a "$OUT"
    if [[ -n "$MNIST_DIR" ]]; then
        (cd "$ROOT" && "$BIN" mpc predict --data "mnist:$MNIST_DIR" --limit 100 --latency-reps 5 "${W[@]}") | tail -1 | sed 's/^{/{"bench":"predict-mnist-wan",/' | tee -a "$OUT"
    fi
    (cd "$ROOT" && "$BIN" mpc train-logreg --split rows --iterations 10 "${W[@]}") | tail -1 | sed 's/^{/{"bench":"logreg-rows-wan",/' | tee -a "$OUT"
fi

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if not r.get("meta") and "party" not in r]
rtt, bw = 0.010, 1e9 / 8
print(f"\n{'bench':18} {'network':22} {'seconds':>9} {'MB':>9} {'rounds':>7} {'model 10ms/1Gb s':>17}  extra")
for r in rows:
    net = r.get("network", {}).get("kind", "?")
    model = r["rounds"] * rtt + r["bytes"] / bw  # conservative: all bytes over one link
    extra = []
    for k in ("accuracy", "agreement", "plaintext_accuracy"):
        if k in r:
            extra.append(f"{k} {r[k]:.4f}")
    if r.get("latency_seconds") is not None:
        lm = r["latency_rounds"] * rtt + r["latency_bytes"] / bw
        extra.append(f"latency {1e3 * r['latency_seconds']:.1f} ms ({r['latency_bytes']} B, {r['latency_rounds']} rounds; model {1e3 * lm:.0f} ms)")
    print(f"{r.get('bench', r.get('task')):18} {net:22} {r['seconds']:9.3f} {r['bytes'] / 1e6:9.2f} {r['rounds']:7d} {model:17.2f}  {'; '.join(extra)}")
PY
echo "results: $OUT"
