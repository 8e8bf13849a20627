#!/usr/bin/env bash
# OCI images of cipherflow, built reproducibly from this repository:
#
#   bash deploy/image/build.sh [--check]
#
# 1. One static binary: `cargo build --release --locked --target
#    x86_64-unknown-linux-musl -p cipherflow-cli`, with the source and
#    registry paths remapped so that the binary does not depend on where the
#    repository was checked out (needs `rustup target add
#    x86_64-unknown-linux-musl` and musl-gcc, Debian's musl-tools, for the
#    C parts: SQLite, ring, mimalloc).
# 2. FROM scratch images (no shell, no libc, no package manager): the binary
#    owned by root and run as 65532:65532, a writable /var/lib/cipherflow,
#    every timestamp set to the last commit's time (SOURCE_DATE_EPOCH):
#      cipherflow              entrypoint the binary (deploy/k8s uses it)
#      cipherflow-coordinator  … fl coordinator, ports 7443 (gRPC) and 9090
#      cipherflow-client       … fl client
#      cipherflow-key-service  … key-service, port 7444
#      cipherflow-region       … fl region, ports 7445 (gRPC) and 9090
#      cipherflow-platform     … serve, port 8443
#    Built with buildah (Debian's package) into target/images/*.oci.tar
#    (oci-archive, loadable with `podman load` or pushable with skopeo).
# 3. A size table: target/images/sizes.json and on stdout.
#
# --check builds the images twice and fails unless both builds give the same
# image digests (reproducibility). Without buildah the script builds the
# binary only and says so. Containers cannot run on the CI machines: the
# tests run this same static binary in network namespaces
# (crates/cli/tests/fl_netns.rs, with CIPHERFLOW_BIN pointing at it).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
TARGET="${CARGO_TARGET_DIR:-target}"
TRIPLE=x86_64-unknown-linux-musl
OUT="$TARGET/images"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
CHECK=0
[[ "${1:-}" == "--check" ]] && CHECK=1

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"

if ! rustup target list --installed 2>/dev/null | grep -qx "$TRIPLE"; then
    rustup target add "$TRIPLE"
fi
if ! command -v musl-gcc >/dev/null; then
    echo "musl-gcc not found: apt-get install musl-tools" >&2
    exit 1
fi

printf '== static binary (%s, release)\n' "$TRIPLE"
CARGO_HOME_DIR="${CARGO_HOME:-$HOME/.cargo}"
export CC_x86_64_unknown_linux_musl=musl-gcc
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=+crt-static \
--remap-path-prefix=$ROOT=/src --remap-path-prefix=$CARGO_HOME_DIR=/cargo"
cargo build --release --locked --target "$TRIPLE" -p cipherflow-cli
BIN="$TARGET/$TRIPLE/release/cipherflow"
if file "$BIN" | grep -q "dynamically linked"; then
    echo "$BIN is dynamically linked" >&2
    exit 1
fi
"$BIN" --version
mkdir -p "$OUT"
BIN_BYTES=$(stat -c %s "$BIN")
BIN_SHA=$(sha256sum "$BIN" | cut -d' ' -f1)
echo "binary: $BIN_BYTES bytes, sha256 $BIN_SHA"

if ! command -v buildah >/dev/null; then
    echo "buildah is not installed: images skipped (apt-get install buildah); the static binary is $BIN"
    exit 0
fi

# vfs storage and no RUN step: works as root without a container runtime.
STORE="$(mktemp -d)"
trap 'buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver vfs rm -a >/dev/null 2>&1 || true; rm -rf "$STORE"' EXIT
B=(buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver vfs)

# name | default command (JSON) | ports
ROLES=(
    "cipherflow||"
    "cipherflow-coordinator|[\"fl\",\"coordinator\",\"--help\"]|7443 9090"
    "cipherflow-client|[\"fl\",\"client\",\"--help\"]|"
    "cipherflow-key-service|[\"key-service\",\"--help\"]|7444"
    "cipherflow-region|[\"fl\",\"region\",\"--help\"]|7445 9090"
    "cipherflow-platform|[\"serve\",\"--help\"]|8443"
)

build_all() {
    local suffix="$1" digests=""
    local rootfs
    rootfs="$(mktemp -d)"
    mkdir -p "$rootfs/usr/local/bin" "$rootfs/var/lib/cipherflow" "$rootfs/tmp"
    install -m 0755 "$BIN" "$rootfs/usr/local/bin/cipherflow"
    chmod 1777 "$rootfs/tmp"
    find "$rootfs" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    for entry in "${ROLES[@]}"; do
        IFS='|' read -r name cmd ports <<<"$entry"
        local ctr
        ctr=$("${B[@]}" from --quiet scratch)
        "${B[@]}" copy --quiet "$ctr" "$rootfs/" /
        local args=(--entrypoint '["/usr/local/bin/cipherflow"]'
            --user 65532:65532 --workingdir /var/lib/cipherflow
            --env CIPHERFLOW_LOG_FORMAT=json
            --label "org.opencontainers.image.title=$name"
            --label "org.opencontainers.image.version=$VERSION"
            --label "org.opencontainers.image.revision=$REVISION"
            --label "org.opencontainers.image.licenses=Apache-2.0"
            --created-by "deploy/image/build.sh")
        [[ -n "$cmd" ]] && args+=(--cmd "$cmd") || args+=(--cmd '[]')
        for p in $ports; do args+=(--port "$p"); done
        "${B[@]}" config "${args[@]}" "$ctr"
        "${B[@]}" commit --quiet --format oci --timestamp "$SOURCE_DATE_EPOCH" \
            --rm "$ctr" "localhost/$name:$VERSION" >/dev/null
        local tar="$OUT/$name$suffix.oci.tar"
        rm -f "$tar"
        "${B[@]}" push --quiet "localhost/$name:$VERSION" "oci-archive:$tar:$name:$VERSION"
        local digest
        digest=$("${B[@]}" inspect --format '{{.FromImageDigest}}' "localhost/$name:$VERSION" 2>/dev/null || true)
        [[ -z "$digest" ]] && digest=$("${B[@]}" images --no-trunc --format '{{.Digest}}' "localhost/$name:$VERSION")
        digests+="$name $digest"$'\n'
        "${B[@]}" rmi "localhost/$name:$VERSION" >/dev/null
    done
    rm -rf "$rootfs"
    printf '%s' "$digests"
}

printf '== images (buildah, FROM scratch, timestamps at %s)\n' "$SOURCE_DATE_EPOCH"
FIRST="$(build_all "")"
echo "$FIRST"
if [[ $CHECK == 1 ]]; then
    SECOND="$(build_all ".again")"
    rm -f "$OUT"/*.again.oci.tar
    if [[ "$FIRST" != "$SECOND" ]]; then
        echo "not reproducible: two builds gave different digests" >&2
        diff <(echo "$FIRST") <(echo "$SECOND") >&2 || true
        exit 1
    fi
    echo "reproducible: two builds gave the same digests"
fi

# Sizes: unpacked (the files of the image: the binary, a few directories)
# and the archive (buildah compresses the layer with gzip: what a registry
# stores and a node pulls).
printf '\n%-24s %14s %14s\n' image "unpacked MiB" "archive MiB"
{
    echo "["
    sep=""
    for entry in "${ROLES[@]}"; do
        name="${entry%%|*}"
        tar="$OUT/$name.oci.tar"
        size=$(stat -c %s "$tar")
        awk -v n="$name" -v a="$size" -v b="$BIN_BYTES" \
            'BEGIN { printf "%-24s %14.1f %14.1f\n", n, b / 1048576, a / 1048576 }' >&2
        printf '%s  {"image": "%s:%s", "archive_bytes": %s, "unpacked_bytes": %s, "binary_sha256": "%s"}' \
            "$sep" "$name" "$VERSION" "$size" "$BIN_BYTES" "$BIN_SHA"
        sep=$',\n'
    done
    printf '\n]\n'
} > "$OUT/sizes.json"
echo "sizes: $OUT/sizes.json"
