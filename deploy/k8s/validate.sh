#!/usr/bin/env bash
# Validates deploy/k8s: every manifest against the Kubernetes schemas
# (kubernetes-validate from PyPI, strict: unknown fields are errors, for the
# oldest and newest versions we support), then check.py's policy checks.
# A deliberately broken manifest must fail, so the validator is known to
# bite. Run by scripts/test; CIPHERFLOW_BIN lets check.py compare the
# containers' flags with the binary's --help.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${CARGO_TARGET_DIR:-$ROOT/target}/k8s-venv"
if [[ ! -x "$VENV/bin/kubernetes-validate" ]]; then
    "${PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet "kubernetes-validate==1.37.0"
fi
mapfile -t FILES < <(cd "$HERE" && ls *.yaml | grep -v '^kustomization.yaml$')
for v in 1.30 1.37; do
    (cd "$HERE" && "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "${FILES[@]}")
done
BAD="$(mktemp -d)/bad.yaml"
sed 's/replicas: 2/replicas: "two"/; s/containerPort: 8443/containerPort: 8443\n          hostNetworkX: true/' \
    "$HERE/platform.yaml" >"$BAD"
if "$VENV/bin/kubernetes-validate" --strict --quiet -k 1.37 "$BAD" >/dev/null 2>&1; then
    echo "deploy/k8s: the validator accepted a broken manifest" >&2
    exit 1
fi
MERGED="$(mktemp -d)/coordinator-postgres.yaml"
REGIONS="$(mktemp -d)/regions.yaml"
"$VENV/bin/python" "$HERE/check.py" "$MERGED" "$REGIONS"
# The Postgres overlay's coordinator, as kustomize would build it.
for v in 1.30 1.37; do
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$MERGED"
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$REGIONS"
done
echo "deploy/k8s: schemas (1.30, 1.37) and checks passed (base, the postgres/ and regions/ overlays)"
