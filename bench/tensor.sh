#!/usr/bin/env bash
# Encrypted tensors: cipherflow vs TenSEAL, same machine, same run.
#
#   bench/tensor.sh                  everything (needs MNIST for the network rows)
#   bench/tensor.sh --reps 20 --threads 2 --mnist /path/to/mnist
#
# Rows:
#   matvec        64x64 plaintext matrix x encrypted vector, N = 2^13 (n13)
#   mnist         the TenSEAL-tutorial MNIST network, one image (latency)
#   throughput    images per hour on this machine (ours: throughput mode,
#                 N/2 images per ciphertext; TenSEAL: its per-image pipeline)
#   upload/download bytes per image
# Plus the full 10,000-image MNIST test set under encryption for the
# tutorial network and our stronger one (cipherflow infer --batch).
#
# All JSON lines go to bench/results/tensor-<UTC timestamp>.jsonl; a ratio
# table (ours / TenSEAL) is printed at the end.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CARGO="${CARGO:-cargo}"
REPS=10
THREADS="$(nproc)"
MNIST="$ROOT/../shared/data/mnist"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="${2:?}"; shift ;;
        --threads) THREADS="${2:?}"; shift ;;
        --mnist) MNIST="${2:?}"; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

mkdir -p "$HERE/results"
OUT="$HERE/results/tensor-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
python3 - "$THREADS" >"$OUT" <<'PY'
import json, os, platform, subprocess, sys
def git(*a):
    try: return subprocess.check_output(["git", *a], text=True).strip()
    except Exception: return None
print(json.dumps({"meta": "tensor", "machine": platform.machine(), "cpus": os.cpu_count(),
                  "threads": int(sys.argv[1]), "commit": git("rev-parse", "HEAD"),
                  "dirty": bool(git("status", "--porcelain")), "load": os.getloadavg()}))
PY

"$HERE/setup_venv.sh" || { echo "tensor.sh: TenSEAL venv setup failed" >&2; exit 1; }
# Several worktrees may share one CARGO_TARGET_DIR, and cargo names the
# artifacts of path packages by their path relative to the workspace root:
# another worktree's build can overwrite ours. Build, copy the binary to a
# private place, and check it really is this tree's (rebuilding once after
# cleaning the tensor crate if not).
CF="$(mktemp -d)/cipherflow"
build_ours() {
    (cd "$ROOT" && "$CARGO" build --release -q -p cipherflow-cli) &&
        cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/cipherflow" "$CF" &&
        "$CF" bench tensor --help 2>/dev/null | grep -q -- "--op"
}
if ! build_ours; then
    echo "tensor.sh: the binary is not this tree's (shared target dir?): rebuilding" >&2
    (cd "$ROOT" && "$CARGO" clean -q --release -p cipherflow-tensor)
    build_ours || { echo "tensor.sh: build failed" >&2; exit 1; }
fi

run() { echo "+ $*" >&2; "$@" | tail -n 1 | tee -a "$OUT"; }

run "$CF" bench tensor --op matvec --n 64 --preset n13 --threads "$THREADS" --reps "$REPS" --json
run "$HERE/.venv/bin/python" "$HERE/tensor_peer.py" --op matvec --n 64 --reps "$REPS" --threads "$THREADS"
run "$CF" bench tensor --op conv --preset n13 --threads "$THREADS" --reps "$REPS" --json
if [[ -e "$MNIST/t10k-images.idx3-ubyte.gz" || -e "$MNIST/t10k-images.idx3-ubyte" ]]; then
    run "$CF" bench tensor --op mnist --threads "$THREADS" --reps "$REPS" --json
    run "$CF" bench tensor --op mnist-batch --threads "$THREADS" --reps 2 --json
    run "$HERE/.venv/bin/python" "$HERE/tensor_peer.py" --op mnist --reps "$REPS" --images 20 \
        --threads "$THREADS" --mnist "$MNIST"
    for m in mnist-tenseal-cnn mnist-wide; do
        echo "+ infer $m (10,000 images, throughput mode)" >&2
        "$CF" infer --data "mnist:$MNIST" --model "$ROOT/data/models/$m.safetensors" --batch \
            --threads "$THREADS" --json | tail -n 1 |
            python3 -c "import json,sys; d=json.load(sys.stdin); d['op']='infer'; d['model']='$m'; print(json.dumps(d))" |
            tee -a "$OUT"
    done
    echo "+ infer mnist-tenseal-cnn (latency mode, 100 images)" >&2
    "$CF" infer --data "mnist:$MNIST" --limit 100 --threads "$THREADS" --json | tail -n 1 |
        python3 -c "import json,sys; d=json.load(sys.stdin); d['op']='infer-latency'; d['model']='mnist-tenseal-cnn'; print(json.dumps(d))" |
        tee -a "$OUT"
else
    echo "tensor.sh: MNIST not found at $MNIST: skipping the network rows (pass --mnist DIR)" >&2
fi

python3 - "$OUT" "$HERE" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from benchlib import ratio, read_records
rows = read_records(sys.argv[1:2])
ours = {r["op"]: r for r in rows if "lib" not in r and "op" in r}
peer = {r["op"]: r for r in rows if r.get("lib") == "tenseal"}
print(f"\n## cipherflow vs TenSEAL ({sys.argv[1]})\n")
print("| measure | cipherflow | TenSEAL | ours / TenSEAL | target |")
print("|---|---|---|---|---|")
if "matvec" in ours and "matvec" in peer:
    o, p = ours["matvec"], peer["matvec"]
    print(f"| 64x64 matvec, N=2^13 (median) | {o['median_us']/1e3:.1f} ms | {p['median_us']/1e3:.1f} ms | {ratio(o['median_us'], p['median_us'])} | <= 0.1x |")
if "mnist" in ours and "mnist" in peer:
    o, p = ours["mnist"], peer["mnist"]
    print(f"| tutorial MNIST net, per image (server, median) | {o['median_us']/1e3:.1f} ms | {p['median_us']/1e3:.1f} ms | {ratio(o['median_us'], p['median_us'])} | <= 0.25x |")
    oe = o['median_us'] + o['encrypt_us'] + o['decrypt_us']; pe = p['median_us'] + p['encrypt_us'] + p['decrypt_us']
    print(f"| same, with client encrypt + decrypt | {oe/1e3:.1f} ms | {pe/1e3:.1f} ms | {ratio(oe, pe)} | |")
    print(f"| upload per image (latency) | {o['upload_bytes']} B | {p['upload_bytes']} B | {ratio(o['upload_bytes'], p['upload_bytes'])} | |")
    print(f"| download per image (latency) | {o['download_bytes']} B | {p['download_bytes']} B | {ratio(o['download_bytes'], p['download_bytes'])} | |")
    if "mnist-batch" in ours:
        b = ours["mnist-batch"]
        print(f"| images/hour (ours: throughput mode) | {b['images_per_hour']:.0f} | {p['images_per_hour']:.0f} | {ratio(b['images_per_hour'], p['images_per_hour'])} (higher is better) | |")
        print(f"| upload per image (throughput mode) | {b['upload_bytes']} B | {p['upload_bytes']} B | {ratio(b['upload_bytes'], p['upload_bytes'])} | |")
        print(f"| download per image (throughput mode) | {b['download_bytes']} B | {p['download_bytes']} B | {ratio(b['download_bytes'], p['download_bytes'])} | |")
    print(f"| latency images/hour | {3600e6/oe:.0f} | {p['images_per_hour']:.0f} | {ratio(3600e6/oe, p['images_per_hour'])} (higher is better) | |")
inf = [r for r in rows if r.get("op") == "infer"]
if inf:
    print("\n| model | images | plaintext acc | encrypted acc | agreement | ms/image |")
    print("|---|---|---|---|---|---|")
    for r in inf:
        print(f"| {r['model']} | {r['images']} | {100*r['plain_accuracy']:.2f} % | {100*r['encrypted_accuracy']:.2f} % | {100*r['agreement']:.2f} % | {r['ms_per_image']:.2f} |")
    if "mnist" in peer:
        p = peer["mnist"]
        print(f"\nTenSEAL on the same tutorial weights, first {p['images']} images: encrypted accuracy {100*p['encrypted_accuracy']:.1f} %, agreement {100*p['agreement']:.1f} %")
PY
echo "results: $OUT" >&2
