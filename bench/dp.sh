#!/usr/bin/env bash
# Differential-privacy accounting benchmark: cipherflow-dp against Google's
# dp-accounting 0.6.0 (RDP and PLD accountants), same machine, same run.
#
#   bench/dp.sh                 # the reference rows, 3 repetitions each
#   bench/dp.sh --grid          # + 216 rows across q, sigma, steps, delta
#   bench/dp.sh --reps 5 --rows FILE.csv
#
# Creates (or reuses) bench/.venv-dp with dp-accounting==0.6.0 from PyPI,
# builds crates/dp/examples/dp_bench.rs (times the library call) and the
# cipherflow CLI (timed as a process, startup included), then writes every
# JSON line to bench/results/dp-<UTC stamp>.jsonl and prints the ratios
# (bench/dp_ratios.py). Not part of CI.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="${DP_VENV:-$HERE/.venv-dp}"
PIN="dp-accounting==0.6.0"
REPS=3
ROWS=""
GRID=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="$2"; shift 2 ;;
        --rows) ROWS="$2"; shift 2 ;;
        --grid) GRID=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "dp.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [[ -z "$ROWS" ]]; then
    ROWS="$ROOT/../shared/reference/dp_epsilons.csv"
    [[ -f "$ROWS" ]] || ROWS="$ROOT/crates/dp/tests/data/dp_epsilons.csv"
fi

say() { echo "dp.sh: $*" >&2; }

# ---- virtualenv with the peer -----------------------------------------------
if ! "$VENV/bin/python" -c 'import dp_accounting, importlib.metadata as m; assert m.version("dp-accounting") == "0.6.0"' 2>/dev/null; then
    say "creating $VENV with $PIN"
    python3 -m venv "$VENV"
    echo '*' > "$VENV/.gitignore"   # keep the venv out of git
    "$VENV/bin/python" -m pip --disable-pip-version-check -q install "$PIN"
fi

# ---- our binaries -------------------------------------------------------------
( cd "$ROOT" && cargo build --release -q -p cipherflow-dp --example dp_bench && cargo build --release -q -p cipherflow-cli )
OURS="$ROOT/target/release/examples/dp_bench"
CLI="$ROOT/target/release/cipherflow"

mkdir -p "$HERE/results"
OUT="$HERE/results/dp-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
{
    printf '{"meta":"dp","date":"%s","host":"%s","cpus":%s,"git":"%s","rows":"%s","reps":%s,"peer":"%s"}\n' \
        "$(date -u +%FT%TZ)" "$(hostname)" "$(nproc)" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        "$(basename "$ROWS")" "$REPS" "$PIN"
} > "$OUT"

run_rows() {
    local rows="$1"
    say "rows: $rows"
    say "cipherflow library ($REPS reps)"
    "$OURS" "$rows" "$REPS" >> "$OUT"
    say "cipherflow CLI process ($REPS reps)"
    python3 "$HERE/dp_peer.py" "$rows" --reps "$REPS" --cli "$CLI" >> "$OUT"
    say "dp-accounting 0.6.0 ($REPS reps)"
    "$VENV/bin/python" "$HERE/dp_peer.py" "$rows" --reps "$REPS" >> "$OUT" 2> >(grep -v 'WARNING:absl' >&2)
}

run_rows "$ROWS"
if [[ $GRID == 1 ]]; then
    run_rows "$ROOT/crates/dp/tests/data/dp_accounting_grid.csv"
fi
say "results: $OUT"
python3 "$HERE/dp_ratios.py" "$OUT"
