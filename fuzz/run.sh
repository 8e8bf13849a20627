#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a stated time each, starting
# from the committed seeds (fuzz/seeds/<target>, written by make-seeds), and
# prints one line per target: coverage, features, executions, and whether
# it crashed. Not part of CI (see fuzz/README.md).
#
#   fuzz/run.sh [--seconds N] [--jobs J] [--unseeded] [target ...]
#
# --unseeded starts from an empty corpus instead (the "before" figures).
# Crash inputs land in fuzz/artifacts/<target>/; logs in fuzz/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
jobs=1
seeded=1
targets=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --unseeded) seeded=0; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v -e '^cipherflow-fuzz$' -e '^make-seeds$')
fi

command -v cargo-fuzz >/dev/null || { echo "cargo install cargo-fuzz first" >&2; exit 2; }
# cargo fuzz needs nightly-only flags; RUSTC_BOOTSTRAP lets the stable
# toolchain accept them.
export RUSTC_BOOTSTRAP=1
if [[ ! -d fuzz/seeds ]]; then
    cargo run --release --manifest-path fuzz/Cargo.toml --bin make-seeds
fi
for t in "${targets[@]}"; do cargo fuzz build "$t"; done
bin=fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release
mkdir -p fuzz/logs

run_one() {
    local t="$1" seconds="$2" seeded="$3" bin="$4"
    local corpus log
    mkdir -p "fuzz/artifacts/$t"
    if [[ "$seeded" == 1 ]]; then
        corpus=(fuzz/corpus/"$t" fuzz/seeds/"$t")
        log=fuzz/logs/"$t".log
    else
        corpus=("$(mktemp -d)")
        log=fuzz/logs/"$t"-unseeded.log
    fi
    mkdir -p "${corpus[0]}"
    local rc=0
    "$bin/$t" "${corpus[@]}" -max_total_time="$seconds" -rss_limit_mb=4096 \
        -timeout=30 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
        >"$log" 2>&1 || rc=$?
    local last
    last=$(grep -E '#[0-9]+.*cov: ' "$log" | tail -1 || true)
    local cov ft execs
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    printf '%-14s seeded=%s seconds=%s cov=%s ft=%s execs=%s %s\n' "$t" "$seeded" "$seconds" \
        "${cov:-?}" "${ft:-?}" "${execs:-?}" "$([[ $rc == 0 ]] && echo ok || echo "CRASH (rc $rc, see $log)")"
    return "$rc"
}
export -f run_one
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} "$seconds" "$seeded" "$bin"
