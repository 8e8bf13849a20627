#!/usr/bin/env bash
# Federations at scale, every party simulated in one process on this
# machine's cores (the real protocol, storage and audit log):
#
#   bench/fl_scale.sh              all of the below
#   bench/fl_scale.sh --quick      without the 200-client run where every
#                                  client holds the key (2 minutes, ~10 GB)
#
# 1. 1000 clients × 10^5 parameters, threshold keys held by a committee of
#    10, 2 rounds: median round, coordinator ms per upload (durable, group
#    commit), peak memory, the audit log verified; then the same through 10
#    regional aggregators (every region's log verified too).
# 2. 200 clients × 10^5: every client a key holder vs a committee of 10.
# 3. MNIST CNN, 20 clients, real training: the encrypted round against our
#    plaintext FedAvg round (same model, data, training, storage and log).
#
# JSON lines go to bench/results/fl-scale-<UTC timestamp>.jsonl, each with
# the command that produced it and the peak resident memory of the process.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
cd "$ROOT"
cargo build --release --locked -p cipherflow-cli
BIN="$ROOT/target/release/cipherflow"
mkdir -p bench/results
OUT="bench/results/fl-scale-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
MNIST="${CIPHERFLOW_DATA:-$ROOT/../shared/data}/mnist"

run() {
    local name="$1"
    shift
    local dir
    dir="$(mktemp -d)"
    local line
    line=$(/usr/bin/time -f "%M" -o "$dir.rss" "$BIN" fl simulate "$@" --dir "$dir/state" --json | tail -1)
    local rss
    rss=$(cat "$dir.rss")
    rm -rf "$dir" "$dir.rss"
    python3 - "$name" "$rss" "$line" "$*" >>"$OUT" <<'PY'
import json, sys
name, rss, line, args = sys.argv[1:]
v = json.loads(line)
v["bench"] = name
v["max_rss_mib"] = int(rss) / 1024
v["command"] = "cipherflow fl simulate " + args
print(json.dumps(v))
ratio = v.get("encrypted_to_plaintext")
extra = "  encrypted/plaintext %.2fx" % ratio if ratio else ""
if v.get("regions"):
    extra += "  (regions %.2f ms + coordinator %.3f ms per upload)" % (
        v["region_ms_per_upload"], v["top_ms_per_upload"])
print("%-38s median round %7.2f s  coordinator %.2f ms/1e5 params  memory %6.0f MiB  ledger %s%s"
      % (name, v["round_seconds_median"], v["coordinator_ms_per_upload_per_1e5_params"],
         v["max_rss_mib"], v["ledger"], extra), file=sys.stderr)
PY
}

run "1000 clients, committee of 10" --clients 1000 --key-holders 10 --params-per-client 100000 --rounds 2
run "1000 clients, 10 regions, committee of 10" --clients 1000 --regions 10 --key-holders 10 --params-per-client 100000 --rounds 2
run "200 clients, committee of 10" --clients 200 --key-holders 10 --params-per-client 100000 --rounds 2
if [[ $QUICK == 0 ]]; then
    run "200 clients, all hold the key" --clients 200 --params-per-client 100000 --rounds 2
fi
if [[ -d "$MNIST" ]]; then
    run "MNIST CNN, 20 clients, vs plaintext" --data "mnist:$MNIST" --model cnn --clients 20 --rounds 2 --compare-plaintext
else
    echo "MNIST not found at $MNIST (set CIPHERFLOW_DATA): the real-training comparison is skipped"
fi
echo "results: $OUT"
