#!/usr/bin/env bash
# Mutation testing of the verification modules (issue 23): every viable
# mutant must be caught by the crate's tests, or be listed as equivalent in
# the crate's README. Slow (minutes to hours per set), so not part of CI.
#
#   bench/mutants.sh [set ...]      sets: ledger ckks fed fed-coordinator fed-client dp mpc
#                                   web-keystore
#                                   (default: all)
#
# Needs `cargo install cargo-mutants`. Results go to
# bench/results/mutants-<set>/mutants.out (caught.txt, missed.txt, ...), and
# a one-line summary per set is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || { echo "cargo install cargo-mutants first" >&2; exit 2; }

declare -A files=(
    [ledger]="crates/ledger/src/proof.rs crates/ledger/src/proof_encoding.rs crates/ledger/src/verify.rs crates/ledger/src/sth.rs crates/ledger/src/replay.rs"
    [ckks]="crates/ckks/src/multiparty/shamir.rs crates/ckks/src/multiparty/aggregate.rs"
    [fed]="crates/fed/src/packing.rs"
    [fed-coordinator]="crates/fed/src/coordinator/round.rs crates/fed/src/coordinator/decrypt.rs crates/fed/src/coordinator/mod.rs"
    [fed-client]="crates/fed/src/client/mod.rs crates/fed/src/client/decrypt.rs crates/fed/src/client/state.rs"
    [dp]="crates/dp/src/budget.rs crates/dp/src/rdp.rs crates/dp/src/pld/mod.rs crates/dp/src/pld/compose.rs crates/dp/src/pld/pmf.rs"
    [mpc]="crates/mpc/src/z2k.rs crates/mpc/src/transport/mod.rs"
    [web-keystore]="crates/wasm/src/keystore.rs"
)
declare -A package=(
    [ledger]=cipherflow-ledger [ckks]=cipherflow-ckks [fed]=cipherflow-fed
    [dp]=cipherflow-dp [mpc]=cipherflow-mpc [fed-coordinator]=cipherflow-fed
    [fed-client]=cipherflow-fed [web-keystore]=cipherflow-wasm
)
# Test targets per set: the crate's tests that exercise these modules (the
# full fed and ckks suites take minutes per mutant).
declare -A tests=(
    [ledger]=""
    [ckks]="--lib --test multiparty --test aggregation --test serialization --test aggregate_checks"
    [fed]="--test adversarial --test aggregation --lib"
    [fed-coordinator]="--lib --test adversarial --test aggregation --test faults --test coordinator_checks"
    [fed-client]="--lib --test adversarial --test aggregation --test faults --test coordinator_checks"
    [dp]=""
    [mpc]=""
    [web-keystore]="--test keystore"
)

# cargo-mutants tests a copy of the tree in a temporary folder, where
# ../shared (MNIST) is not beside it: the tests that need it skip there.
export CIPHERFLOW_SKIP_MISSING_DATA=1

# Functions per set (a cargo-mutants -F regex; empty = every function).
# ckks: the checks of received shares and ciphertexts and the combiner;
# fed-coordinator: the coordinator's handling of uploads and shares;
# fed-client: the client's checks of tasks, receipts, proofs and key setup.
declare -A only=(
    [fed]="unpack|coordinate_sum_bound"
    [ckks]="from_bytes|validate_ids|combine_aggregate|sorted_unique|sum_received"
    [fed-coordinator]="Coordinator::upload|check_and_store|count_refusal|decode_upload|check_federation|key_service_share"
    [fed-client]="on_join|check_key_setup_entry|on_enroll|on_key_setup|handle|deal|check_quantization|train|on_receipt|on_counted_proof|decrypt|check_aggregate|load_state"
)

sets=("$@")
[[ ${#sets[@]} -gt 0 ]] || sets=(ledger ckks fed fed-coordinator fed-client dp mpc web-keystore)
mkdir -p bench/results
for s in "${sets[@]}"; do
    [[ -n "${files[$s]:-}" ]] || { echo "unknown set $s" >&2; exit 2; }
    args=()
    for f in ${files[$s]}; do args+=(-f "$f"); done
    [[ -z "${only[$s]:-}" ]] || args+=(-F "${only[$s]}")
    out=bench/results/mutants-$s
    rm -rf "$out"
    # shellcheck disable=SC2086
    cargo mutants -p "${package[$s]}" "${args[@]}" --timeout 300 -o "$out" \
        ${tests[$s]:+-- ${tests[$s]}} >"$out.log" 2>&1 || true
    d=$out/mutants.out
    printf '%-7s caught=%s missed=%s timeout=%s unviable=%s\n' "$s" \
        "$(wc -l <"$d/caught.txt")" "$(wc -l <"$d/missed.txt")" \
        "$(wc -l <"$d/timeout.txt")" "$(wc -l <"$d/unviable.txt")"
    sed 's/^/    missed: /' "$d/missed.txt"
done
