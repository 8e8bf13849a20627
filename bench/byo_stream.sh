#!/usr/bin/env bash
# Memory stays flat as the data set grows: `cipherflow infer --batch` on the
# MNIST test images repeated 1×, 2× and 8× (10,000 to 80,000 images, the
# largest 4.9× the 16,384 inputs infer holds at once), its peak resident
# memory measured by /usr/bin/time. One JSON line per size, appended to
# bench/results/byo-stream-<UTC time>.jsonl.
#
# Usage: bash bench/byo_stream.sh [MNIST_DIR]   (default $CIPHERFLOW_DATA/mnist,
#        else ../shared/data/mnist)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
MNIST="${1:-${CIPHERFLOW_DATA:-$ROOT/../shared/data}/mnist}"
OUT="${BYO_STREAM_OUT:-$HERE/.cache/byo-stream}"
RES="$HERE/results/byo-stream-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
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
img, lab = read(find("t10k-images-idx3-ubyte")), read(find("t10k-labels-idx1-ubyte"))
n = struct.unpack(">I", img[4:8])[0]
for reps in (1, 2, 8):
    with open(os.path.join(out, f"x{reps}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x0803, n * reps, 28, 28) + img[16:] * reps)
    with open(os.path.join(out, f"x{reps}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x0801, n * reps) + lab[8:] * reps)
PYEOF
(cd "$ROOT" && cargo build --release --locked -p cipherflow-cli >&2)
CF="$ROOT/target/release/cipherflow"
for reps in 1 2 8; do
    echo "+ infer --batch on ${reps}× the MNIST test images" >&2
    /usr/bin/time -f "%M" -o "$OUT/rss-$reps" "$CF" infer --input "$OUT/x$reps-images-idx3-ubyte" \
        --labels "$OUT/x$reps-labels-idx1-ubyte" --model "$ROOT/data/models/mnist-tenseal-cnn.safetensors" \
        --batch --json 2>/dev/null | tail -n 1 > "$OUT/x$reps.json"
    python3 - "$OUT" "$reps" <<'PYEOF' | tee -a "$RES"
import json, sys
out, reps = sys.argv[1], sys.argv[2]
d = json.load(open(f"{out}/x{reps}.json"))
rss_kb = int(open(f"{out}/rss-{reps}").read().split()[-1])
print(json.dumps({"bench": "byo-stream", "images": d["inputs"], "chunk": 16384,
                  "max_rss_mb": round(rss_kb / 1024, 1), "encrypted_accuracy": d["encrypted_accuracy"],
                  "ms_per_image": d["ms_per_input"], "load_ms": d["load_ms"]}))
PYEOF
done
echo "byo_stream: results in $RES" >&2
