#!/usr/bin/env bash
# Builds the pages (crates/web, Leptos) and the browser client's
# cryptography (crates/wasm), both WebAssembly, into what `cipherflow serve`
# embeds: crates/platform/web/pkg/ (cipherflow_web.* the pages,
# cipherflow.* the worker's module). The build output is
# committed, so that `cargo build` on a fresh machine needs neither the
# wasm32 target nor the wasm-bindgen CLI; pkg/SOURCE records a hash of the
# sources it was built from.
#
#   bash web/build.sh           rebuild pkg/ (installs wasm-bindgen-cli under
#                               target/tools when it is not on PATH)
#   bash web/build.sh --check   fail when pkg/ was built from other sources
#                               than the checkout's (CI; fast, builds nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=crates/platform/web/pkg
# Must equal the wasm-bindgen version in Cargo.lock (crates/wasm pins it).
WBG_VERSION=0.2.130
# crate → module name: the worker's cryptography, the pages.
MODULES="cipherflow-wasm:cipherflow cipherflow-web:cipherflow_web"
FILES="cipherflow.js cipherflow_bg.wasm cipherflow_web.js cipherflow_web_bg.wasm"

# The sources the modules are built from: every tracked file (tests,
# benches and examples aside) of each workspace crate they compile, normal or
# build dependency, found by cargo; the workspace's Cargo.toml (profiles,
# features), .cargo/config.toml and this script; and the exact versions of
# its registry dependencies for wasm32. Paths are relative: a checkout's
# location does not matter. (The compiler's version is recorded in SOURCE,
# not compared: another rustc builds an equivalent module.)
source_hash() {
    local tree
    tree="$(cargo tree --locked -q -p cipherflow-wasm -p cipherflow-web \
        --target wasm32-unknown-unknown -e normal,build --prefix none)"
    local crates
    crates="$(sed -n "s|.* (\($PWD\)/\(crates/[^)]*\))\( (\*)\)\?\$|\2|p" <<<"$tree" | sort -u)"
    {
        # shellcheck disable=SC2086
        git ls-files -z $crates Cargo.toml .cargo/config.toml web/build.sh |
            tr '\0' '\n' | grep -Ev '/(tests|benches|examples)/|\.md$' | sort |
            while read -r f; do printf '%s  %s\n' "$(sha256sum <"$f" | cut -d' ' -f1)" "$f"; done
        sed 's/ (.*)$//; s/ (\*)$//' <<<"$tree" | sort -u
    } | sha256sum | cut -d' ' -f1
}

if [[ "${1:-}" == "--check" ]]; then
    want="$(source_hash)"
    have="$(sed -n 's/^source //p' "$OUT/SOURCE" 2>/dev/null || true)"
    if [[ "$want" != "$have" ]]; then
        echo "crates/platform/web/pkg/ is stale: built from sources $have, the checkout's are $want." >&2
        echo "Run bash web/build.sh and commit crates/platform/web/pkg/." >&2
        exit 1
    fi
    for f in $FILES; do
        line="$(grep " $f\$" "$OUT/SOURCE" || true)"
        [[ "$line" == "$(cd "$OUT" && sha256sum "$f")" ]] || {
            echo "crates/platform/web/pkg/$f does not match pkg/SOURCE: rebuild it (bash web/build.sh)." >&2
            exit 1
        }
    done
    echo "web client: pkg/ built from the current sources ($want)"
    exit 0
fi

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
WBG="$(command -v wasm-bindgen || true)"
if [[ -z "$WBG" || "$("$WBG" --version)" != "wasm-bindgen $WBG_VERSION" ]]; then
    WBG="${CARGO_TARGET_DIR:-target}/tools/bin/wasm-bindgen"
    if [[ ! -x "$WBG" || "$("$WBG" --version)" != "wasm-bindgen $WBG_VERSION" ]]; then
        cargo install --quiet wasm-bindgen-cli --version "=$WBG_VERSION" \
            --root "${CARGO_TARGET_DIR:-target}/tools"
    fi
fi

# The getrandom backend cfg (from .cargo/config.toml, which this variable
# replaces) and paths remapped so the module holds no local paths.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--cfg getrandom_backend=\"wasm_js\" --remap-path-prefix=$PWD=/cipherflow --remap-path-prefix=$HOME/.cargo=/cargo"
mkdir -p "$OUT"
for m in $MODULES; do
    crate="${m%%:*}" name="${m##*:}"
    # One crate at a time: each module holds only its own crate's code.
    cargo build --locked --profile web --target wasm32-unknown-unknown -p "$crate"
    "$WBG" --target web --no-typescript --out-name "$name" --out-dir "$OUT" \
        "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/web/${crate//-/_}.wasm"
done
{
    echo "source $(source_hash)"
    echo "wasm-bindgen $WBG_VERSION"
    echo "rustc $(rustc --version | cut -d' ' -f2)"
    # shellcheck disable=SC2086
    (cd "$OUT" && sha256sum $FILES)
} >"$OUT/SOURCE"
ls -l "$OUT"
