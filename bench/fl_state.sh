#!/usr/bin/env bash
# The coordinator's state on SQLite (the embedded default) against
# Postgres, side by side in the same run: the same simulated federations
# (every party in one process, the real protocol, durable group commit and
# the audit log), once per backend. Postgres is a throwaway local cluster
# (scripts/postgres-throwaway.sh: Unix socket, fsync on) sharing this
# machine's cores with the simulation.
#
#   bench/fl_state.sh            200 and 1000 clients × 10^5 parameters
#   bench/fl_state.sh --quick    200 clients only
#
# JSON lines go to bench/results/fl-state-<UTC timestamp>.jsonl: each
# simulate report with the backend, the command and the peak memory.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
cd "$ROOT"
if [[ -z "${CIPHERFLOW_BIN:-}" ]]; then
    cargo build --release --locked -p cipherflow-cli
fi
BIN="${CIPHERFLOW_BIN:-$ROOT/target/release/cipherflow}"
source scripts/postgres-throwaway.sh
unset CIPHERFLOW_TEST_POSTGRES
start_throwaway_postgres
[[ -n "${CIPHERFLOW_TEST_POSTGRES:-}" ]] || {
    echo "no PostgreSQL server: nothing to compare" >&2
    exit 1
}
mkdir -p bench/results
OUT="bench/results/fl-state-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
K=0

run() {
    local backend="$1"
    shift
    local dir state=()
    dir="$(mktemp -d)"
    K=$((K + 1))
    if [[ "$backend" == postgres ]]; then
        state=(--state "$CIPHERFLOW_TEST_POSTGRES" --state-schema "bench_$K")
    fi
    local line rss
    line=$(/usr/bin/time -f "%M" -o "$dir.rss" "$BIN" fl simulate "$@" "${state[@]}" \
        --dir "$dir/state" --json | tail -1)
    rss=$(cat "$dir.rss")
    rm -rf "$dir" "$dir.rss"
    python3 - "$backend" "$rss" "$line" "$*" >>"$OUT" <<'PY'
import json, sys
backend, rss, line, args = sys.argv[1:]
v = json.loads(line)
v.pop("history", None)
v["backend"] = backend
v["max_rss_mib"] = int(rss) / 1024
v["command"] = "cipherflow fl simulate " + args + (
    " --state postgres://… --state-schema …" if backend == "postgres" else "")
print(json.dumps(v))
print("%-8s %-58s median round %6.2f s  coordinator %.2f ms/upload (%.2f per 1e5 params)  ledger %s"
      % (backend, args, v["round_seconds_median"], v["coordinator_ms_per_upload"],
         v["coordinator_ms_per_upload_per_1e5_params"], v["ledger"]), file=sys.stderr)
PY
}

for clients in 200 1000; do
    if [[ $QUICK == 1 && $clients == 1000 ]]; then
        continue
    fi
    for backend in sqlite postgres; do
        run "$backend" --clients "$clients" --key-holders 10 --params-per-client 100000 --rounds 2
    done
done
echo "results: $OUT" >&2
