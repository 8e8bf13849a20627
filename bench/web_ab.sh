#!/usr/bin/env bash
# One operation of the browser client (key generation by default) at
# another commit against the checkout's, in node (V8, the engine of
# Chromium's pages), alternating batch by batch in one process:
# bench/web/ab.js. Both modules are built as web/build.sh builds them
# (profile `web`), for node.
#
# Usage: bash bench/web_ab.sh REV [RUNS] [OP]    OP: keygen (default), encrypt, decrypt
#        e.g. bash bench/web_ab.sh HEAD~3 2 decrypt
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
REV="${1:?usage: bash bench/web_ab.sh REV [RUNS] [keygen|encrypt|decrypt]}"
RUNS="${2:-2}"
OP="${3:-keygen}"
case "$OP" in keygen | encrypt | decrypt) ;; *) echo "unknown operation: $OP" >&2; exit 2 ;; esac
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
TMP="$(mktemp -d)"
cleanup() {
    git -C "$ROOT" worktree remove --force "$TMP/tree" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
WBG_VERSION="$(sed -n 's/^WBG_VERSION=//p' "$ROOT/web/build.sh")"
WBG="$(command -v wasm-bindgen || true)"
if [[ -z "$WBG" || "$("$WBG" --version)" != "wasm-bindgen $WBG_VERSION" ]]; then
    WBG="$TARGET/tools/bin/wasm-bindgen"
    [[ -x "$WBG" ]] || cargo install --quiet wasm-bindgen-cli --version "=$WBG_VERSION" --root "$TARGET/tools"
fi
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
build() { # source tree, target folder, output folder (a target folder of
    # its own for the other commit: cargo copies a build that is already
    # current to its final name only when it builds it)
    (cd "$1" && CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS='--cfg getrandom_backend="wasm_js"' \
        CARGO_TARGET_DIR="$2" cargo build -q --locked --profile web \
        --target wasm32-unknown-unknown -p cipherflow-wasm)
    "$WBG" --target nodejs --no-typescript --out-name cf --out-dir "$3" \
        "$2/wasm32-unknown-unknown/web/cipherflow_wasm.wasm"
}
git -C "$ROOT" worktree add --detach -q "$TMP/tree" "$REV"
build "$TMP/tree" "$TARGET/web-ab" "$TMP/first"
build "$ROOT" "$TARGET" "$TMP/second"
echo "first: $(git -C "$ROOT" rev-parse --short "$REV"); second: the checkout"
cmp -s "$TMP/first/cf_bg.wasm" "$TMP/second/cf_bg.wasm" && echo "(the two modules are the same)"
for _ in $(seq "$RUNS"); do node "$HERE/web/ab.js" "$OP" "$TMP/first" "$TMP/second"; done
