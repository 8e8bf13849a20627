#!/usr/bin/env bash
# Create bench/.venv with the peer CKKS libraries used by bench/peers.py:
#   * tenseal  (Microsoft SEAL 4.1 is reachable through tenseal.sealapi)
#   * openfhe  (openfhe-python)
# Everything comes from PyPI. Idempotent: does nothing when the venv already
# holds the pinned versions and they import.
#
# Why Python 3.10: the openfhe wheels on PyPI are tagged "py3-none-any" but
# contain one compiled extension for one CPython version and one glibc:
#   openfhe 1.6.1.0.22.4 -> cpython-310, built on Ubuntu 22.04 (glibc >= 2.35)
#   openfhe 1.2.3.0.24.4 -> cpython-312, but needs glibc 2.38 (Debian 12 has 2.36)
#   openfhe 1.4.1.0.20.4 -> cpython-38
# There is no openfhe wheel for CPython 3.11, so the venv is built on a
# CPython 3.10 interpreter when one exists (pyenv provides one on our
# machines). tenseal's newest cp310 wheel is 0.3.16 (bundles SEAL 4.1, like
# 0.3.18). Without a 3.10 interpreter we fall back to python3 with SEAL only,
# and say so loudly.
#
# Overrides: PEERS_PYTHON=/path/to/python   interpreter for the venv
#            PEERS_VENV=/path/to/venv       default: bench/.venv
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${PEERS_VENV:-$HERE/.venv}"

OPENFHE_PIN="1.6.1.0.22.4"     # needs CPython 3.10, glibc >= 2.35
TENSEAL_PIN_310="0.3.16"       # newest tenseal with a cp310 wheel
TENSEAL_PIN_DEFAULT="0.3.18"   # cp311 / cp312 wheels
# tenseal imports numpy but does not declare it; openfhe needs it too.
NUMPY_PIN_310="2.2.6"          # newest numpy for CPython 3.10
NUMPY_PIN_DEFAULT="2.3.5"

VENV_SAY=setup_venv
# shellcheck source=venv_lib.sh
source "$HERE/venv_lib.sh"

find_py310() {
    local c root=""
    if [[ -n "${PEERS_PYTHON:-}" ]]; then echo "$PEERS_PYTHON"; return 0; fi
    if command -v pyenv >/dev/null 2>&1; then root="$(pyenv root 2>/dev/null || true)"; fi
    for c in python3.10 \
             ${root:+"$root"/versions/3.10*/bin/python3.10} \
             "$HOME"/.pyenv/versions/3.10*/bin/python3.10 \
             /usr/bin/python3.10 /usr/local/bin/python3.10; do
        if command -v "$c" >/dev/null 2>&1 && [[ "$(pyver "$c")" == "3.10" ]]; then
            command -v "$c"; return 0
        fi
    done
    return 1
}

WANT_OPENFHE=0
if PY="$(find_py310)"; then
    WANT_OPENFHE=1
else
    PY="$(command -v python3)"
fi
PYV="$(pyver "$PY")"
if [[ "$PYV" == "3.10" ]]; then
    TENSEAL_PIN="$TENSEAL_PIN_310"; NUMPY_PIN="$NUMPY_PIN_310"
else
    TENSEAL_PIN="$TENSEAL_PIN_DEFAULT"; NUMPY_PIN="$NUMPY_PIN_DEFAULT"; WANT_OPENFHE=0
fi

# The stamp records what this venv holds:
#   openfhe=<pin>          complete
#   openfhe=failed:<pin>   tried on this interpreter, did not install/import
#   openfhe=none           no CPython 3.10 was found: SEAL only
STAMP="$VENV/.peers-stamp"
if [[ $WANT_OPENFHE == 1 ]]; then
    OK_STAMP="python=$PYV tenseal=$TENSEAL_PIN numpy=$NUMPY_PIN openfhe=$OPENFHE_PIN"
    FAILED_STAMP="python=$PYV tenseal=$TENSEAL_PIN numpy=$NUMPY_PIN openfhe=failed:$OPENFHE_PIN"
else
    OK_STAMP="python=$PYV tenseal=$TENSEAL_PIN numpy=$NUMPY_PIN openfhe=none"
    FAILED_STAMP="$OK_STAMP"
fi

openfhe_missing_banner() {
    cat >&2 <<BANNER
setup_venv: ===================================================================
setup_venv: OpenFHE is NOT available. The PyPI openfhe wheels carry a compiled
setup_venv: extension for one CPython version only (openfhe $OPENFHE_PIN: CPython
setup_venv: 3.10 and glibc >= 2.35; none exists for CPython 3.11), and either no
setup_venv: CPython 3.10 interpreter was found here or the wheel failed to load.
setup_venv: Set PEERS_PYTHON=/path/to/python3.10 (and delete $STAMP) to retry.
setup_venv: Continuing with SEAL only.
setup_venv: ===================================================================
BANNER
}

# ---- fast path: already set up ---------------------------------------------
if [[ -x "$VENV/bin/python" && -f "$STAMP" ]]; then
    have="$(cat "$STAMP")"
    if [[ "$have" == "$OK_STAMP" || "$have" == "$FAILED_STAMP" ]]; then
        check='import tenseal.sealapi'
        [[ "$have" == *"openfhe=$OPENFHE_PIN" ]] && check='import tenseal.sealapi, openfhe'
        if "$VENV/bin/python" -c "$check" >/dev/null 2>&1; then
            say "already set up in $VENV ($have)"
            [[ "$have" == *"openfhe=$OPENFHE_PIN" ]] || openfhe_missing_banner
            exit 0
        fi
    fi
fi

# ---- (re)create the venv ----------------------------------------------------
venv_create "$VENV" "$PY" || exit 1
rm -f "$STAMP"

say "installing tenseal==$TENSEAL_PIN numpy==$NUMPY_PIN"
if ! "${PIP[@]}" install "tenseal==$TENSEAL_PIN" "numpy==$NUMPY_PIN"; then
    say "those pins are not installable on Python $PYV; trying the newest tenseal and numpy"
    "${PIP[@]}" install tenseal numpy
fi
if ! "$VPY" -c 'import tenseal.sealapi'; then
    say "ERROR: tenseal is installed but 'import tenseal.sealapi' fails"
    exit 1
fi

OPENFHE_OK=0
if [[ $WANT_OPENFHE == 1 ]]; then
    say "installing openfhe==$OPENFHE_PIN"
    if "${PIP[@]}" install "openfhe==$OPENFHE_PIN"; then
        if "$VPY" -c 'import openfhe'; then
            OPENFHE_OK=1
        else
            say "WARNING: openfhe==$OPENFHE_PIN installed but does not import (see above); removing it"
            "${PIP[@]}" uninstall -y openfhe >/dev/null 2>&1 || true
        fi
    else
        say "WARNING: pip could not install openfhe==$OPENFHE_PIN"
    fi
fi

if [[ $OPENFHE_OK == 1 ]]; then
    echo "$OK_STAMP" > "$STAMP"
else
    echo "$FAILED_STAMP" > "$STAMP"
    openfhe_missing_banner
fi

venv_report "$VENV" tenseal openfhe numpy
