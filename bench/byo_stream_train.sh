#!/usr/bin/env bash
# Training memory stays flat as the data set grows: `cipherflow train
# --stream` (one epoch, the mlp preset, plain and DP-SGD) on the MNIST
# training images repeated 1× and 4× (60,000 and 240,000 images; 188 MB of
# pixels, 750 MB as the f32 rows training reads), against the same runs
# with the file in memory (no --stream). A pass gathers at most 64 MiB of
# rows (21,399 MNIST images): the larger file is 11× that window. Peak
# resident memory by /usr/bin/time. One JSON line per run, appended to
# bench/results/byo-stream-train-<UTC time>.jsonl.
#
# Usage: bash bench/byo_stream_train.sh [MNIST_DIR]   (default
#        $CIPHERFLOW_DATA/mnist, else ../shared/data/mnist)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
MNIST="${1:-${CIPHERFLOW_DATA:-$ROOT/../shared/data}/mnist}"
OUT="${BYO_STREAM_OUT:-$HERE/.cache/byo-stream}"
RES="$HERE/results/byo-stream-train-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
mkdir -p "$OUT"
python3 - "$MNIST" "$OUT" <<'PYEOF'
import gzip, os, struct, sys
mnist, out = sys.argv[1], sys.argv[2]
def find(stem):
    for n in (stem, stem.replace("-idx", ".idx", 1)):
        for ext in (".gz", ""):
            p = os.path.join(mnist, n + ext)
            if os.path.exists(p):
                return p
    raise SystemExit(f"{stem} not found in {mnist}")
read = lambda p: (gzip.open(p) if p.endswith(".gz") else open(p, "rb")).read()
img, lab = read(find("train-images-idx3-ubyte")), read(find("train-labels-idx1-ubyte"))
n = struct.unpack(">I", img[4:8])[0]
for reps in (1, 4):
    with open(os.path.join(out, f"train-x{reps}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x0803, n * reps, 28, 28) + img[16:] * reps)
    with open(os.path.join(out, f"train-x{reps}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x0801, n * reps) + lab[8:] * reps)
PYEOF
(cd "$ROOT" && cargo build --release --locked -p cipherflow-cli >&2)
CF="$ROOT/target/release/cipherflow"
for reps in 1 4; do
    for mode in stream memory; do
        for dp in plain dp; do
            FLAGS=(--model mlp --epochs 1 --batch-size 256 --normalize 0.1307,0.3081 --json)
            [[ $mode == stream ]] && FLAGS+=(--stream)
            [[ $dp == dp ]] && FLAGS+=(--dp-sigma 1.0)
            tag="$reps-$mode-$dp"
            echo "+ train ${FLAGS[*]} on ${reps}× the MNIST training images" >&2
            /usr/bin/time -f "%M %e" -o "$OUT/rss-train-$tag" "$CF" train \
                --data "$OUT/train-x$reps-images-idx3-ubyte" \
                --labels "$OUT/train-x$reps-labels-idx1-ubyte" "${FLAGS[@]}" 2>/dev/null \
                | tail -n 1 > "$OUT/train-$tag.json"
            python3 - "$OUT" "$tag" "$reps" "$mode" "$dp" <<'PYEOF' | tee -a "$RES"
import json, sys
out, tag, reps, mode, dp = sys.argv[1:]
d = json.load(open(f"{out}/train-{tag}.json"))
rss_kb, secs = open(f"{out}/rss-train-{tag}").read().split()[-2:]
print(json.dumps({"bench": "byo-stream-train", "images": 60000 * int(reps), "mode": mode,
                  "training": dp, "max_rss_mb": round(int(rss_kb) / 1024, 1),
                  "seconds": float(secs), "test_accuracy": d["test_accuracy"],
                  "epsilon": d["epsilon"], "steps": d["steps"]}))
PYEOF
        done
    done
done
echo "byo_stream_train: results in $RES" >&2
