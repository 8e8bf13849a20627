#!/usr/bin/env bash
# CKKS benchmark: cipherflow vs Microsoft SEAL vs OpenFHE, same machine, same run.
#
#   bench/ckks.sh                 presets n13 n14, 10 reps
#   bench/ckks.sh --all           n13 n14 n15 n16
#   bench/ckks.sh --reps 30 --preset n15
#
# Options:
#   --all            add n15 and n16 to the default presets
#   --preset P       run preset P (repeatable; replaces the default list)
#   --reps R         timed repetitions per op (default 10)
#   --dnum D         OpenFHE HYBRID key-switching digits (default 3)
#   --lib L          peers to run: seal | openfhe | all (default all)
#   --no-ours        skip cipherflow (peers only)
#   --no-peers       skip SEAL/OpenFHE (cipherflow only)
#
# All JSON lines (ours + peers) go to bench/results/ckks-<UTC timestamp>.jsonl,
# and a markdown table per preset is printed by bench/ratios.py.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CARGO="${CARGO:-cargo}"

PRESETS=()
ALL=0
REPS=10
DNUM=3
LIB=all
OURS=1
PEERS=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --all) ALL=1 ;;
        --preset) PRESETS+=("${2:?--preset needs a value}"); shift ;;
        --preset=*) PRESETS+=("${1#*=}") ;;
        --reps) REPS="${2:?--reps needs a value}"; shift ;;
        --reps=*) REPS="${1#*=}" ;;
        --dnum) DNUM="${2:?--dnum needs a value}"; shift ;;
        --dnum=*) DNUM="${1#*=}" ;;
        --lib) LIB="${2:?--lib needs a value}"; shift ;;
        --lib=*) LIB="${1#*=}" ;;
        --no-ours) OURS=0 ;;
        --no-peers) PEERS=0 ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "ckks.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [[ ${#PRESETS[@]} -eq 0 ]]; then
    PRESETS=(n13 n14)
    [[ $ALL == 1 ]] && PRESETS+=(n15 n16)
fi
for p in "${PRESETS[@]}"; do
    case "$p" in n13|n14|n15|n16) ;; *) echo "ckks.sh: unknown preset '$p' (n13 n14 n15 n16)" >&2; exit 2 ;; esac
done
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || { echo "ckks.sh: --reps must be a positive integer" >&2; exit 2; }

mkdir -p "$HERE/results"
OUT="$HERE/results/ckks-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: > "$OUT"
note() { echo "ckks.sh: $*" >&2; }

# ---- peers: virtualenv --------------------------------------------------------
PY=""
if [[ $PEERS == 1 ]]; then
    if bash "$HERE/setup_venv.sh"; then
        PY="$HERE/.venv/bin/python"
    else
        note "setup_venv.sh failed: SEAL/OpenFHE numbers are skipped"
    fi
fi

# ---- ours: build once up front, so compilation never overlaps a timing -------
OURS_OK=0
if [[ $OURS == 1 ]]; then
    note "building cipherflow-cli (release)..."
    if (cd "$ROOT" && "$CARGO" build --release -q -p cipherflow-cli); then
        OURS_OK=1
    else
        note "=================================================================="
        note "cipherflow: could not build cipherflow-cli (see above);"
        note "our numbers are skipped, peers still run."
        note "=================================================================="
    fi
fi

# Keep only JSON object lines from our binary and tag them lib=cipherflow.
tag_ours() {
    python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        if line:
            print(line, file=sys.stderr)
        continue
    try:
        rec = json.loads(line)
    except ValueError:
        print(line, file=sys.stderr)
        continue
    rec.setdefault("lib", "cipherflow")
    print(json.dumps(rec), flush=True)
    n += 1
sys.exit(0 if n else 3)
'
}

# Context line (ignored by ratios.py): when, where, what.
python3 - "$OUT" "$ROOT" "$REPS" "$DNUM" "${PRESETS[*]}" <<'PYEOF'
import json, os, platform, subprocess, sys, datetime
out, root, reps, dnum, presets = sys.argv[1:]
cpu = ""
try:
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
except OSError:
    pass
try:
    rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
except OSError:
    rev = ""
utc = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
meta = {"meta": "ckks-bench", "utc": utc,
        "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "git": rev,
        "reps": int(reps), "dnum": int(dnum), "presets": presets.split()}
with open(out, "a") as f:
    f.write(json.dumps(meta) + "\n")
PYEOF

# ---- run, preset by preset (ours then peers, back to back) ------------------
for P in "${PRESETS[@]}"; do
    if [[ $OURS_OK == 1 ]]; then
        note "cipherflow $P (reps $REPS)"
        (cd "$ROOT" && "$CARGO" run --release -q -p cipherflow-cli -- \
            bench ckks --preset "$P" --threads 1 --reps "$REPS" --json) | tag_ours | tee -a "$OUT"
        rc=("${PIPESTATUS[@]}")
        if [[ ${rc[0]} -ne 0 || ${rc[1]} -ne 0 ]]; then
            note "=================================================================="
            note "cipherflow: 'cipherflow bench ckks --preset $P' gave no results"
            note "(exit ${rc[0]}; the subcommand may not exist yet). Skipping ours for $P."
            note "=================================================================="
        fi
    fi
    if [[ -n "$PY" ]]; then
        note "peers ($LIB) $P (reps $REPS, OpenFHE dnum $DNUM)"
        "$PY" "$HERE/peers.py" --preset "$P" --reps "$REPS" --lib "$LIB" --dnum "$DNUM" | tee -a "$OUT" \
            || note "peers.py reported a failure for $P (see above)"
    fi
done

echo
echo "Results: $OUT"
echo
python3 "$HERE/ratios.py" "$OUT" || note "no results to tabulate"
