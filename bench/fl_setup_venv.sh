#!/usr/bin/env bash
# Create bench/.venv-fl with the federated-learning aggregation peers used by
# bench/fl_peer.py:
#   * flwr[simulation]  Flower's simulation engine (Ray backend), FedAvg and
#                       SecAgg+ (SecAggPlusWorkflow + secaggplus_mod)
#   * tenseal           the CKKS library behind NVIDIA FLARE's HE filters
#   * numpy
# Everything comes from PyPI. Idempotent: does nothing when the venv already
# holds the pinned versions and they import.
#
# Pins (the set fl_peer.py was run with, on CPython 3.11.7):
#   flwr 1.42.0   needs Python >= 3.10; its [simulation] extra pulls Ray.
#   ray 2.55.1    what pip resolved for flwr[simulation]==1.42.0 here; pinned
#                 so a new Ray release cannot change the simulation engine
#                 under the benchmark.
#   tenseal 0.3.16  SEAL 4.1, same as bench/.venv (setup_venv.sh); it has a
#                 cp311 wheel (manylinux_2_28).
#   numpy 2.4.6   tenseal imports numpy without declaring it.
# Transitive dependencies float; `$VENV/.fl-freeze` records the exact set of
# the last install (pip freeze) for the benchmark log.
#
# Overrides: FL_PYTHON=/path/to/python3   interpreter for the venv (>= 3.10)
#            FL_VENV=/path/to/venv        default: bench/.venv-fl
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${FL_VENV:-$HERE/.venv-fl}"
PY="${FL_PYTHON:-$(command -v python3)}"

FLWR_PIN="1.42.0"
RAY_PIN="2.55.1"
TENSEAL_PIN="0.3.16"
NUMPY_PIN="2.4.6"

VENV_SAY=fl_setup_venv
# shellcheck source=venv_lib.sh
source "$HERE/venv_lib.sh"

PYV="$(pyver "$PY" || true)"
if [[ -z "$PYV" ]]; then
    say "ERROR: cannot run $PY"
    exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    say "ERROR: flwr $FLWR_PIN needs Python >= 3.10, $PY is $PYV (set FL_PYTHON)"
    exit 1
fi

STAMP="$VENV/.fl-stamp"
WANT="python=$PYV flwr=$FLWR_PIN ray=$RAY_PIN tenseal=$TENSEAL_PIN numpy=$NUMPY_PIN"
# What must import for the benchmark to run (both halves of fl_peer.py).
CHECK='import tenseal, ray, flwr
from flwr.simulation import run_simulation
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.client.mod import secaggplus_mod'

report() { venv_report "$VENV" flwr ray tenseal numpy grpcio protobuf cryptography; }

# ---- fast path: already set up ---------------------------------------------
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    if "$VENV/bin/python" -c "$CHECK" >/dev/null 2>&1; then
        say "already set up in $VENV ($WANT)"
        report
        exit 0
    fi
    say "$VENV has the stamp but does not import; reinstalling"
fi

# ---- (re)create the venv ----------------------------------------------------
venv_create "$VENV" "$PY" || exit 1
rm -f "$STAMP"

# Ray's and Flower's wheels are large (Ray ~70 MB); about a minute here.
say "installing flwr[simulation]==$FLWR_PIN ray==$RAY_PIN tenseal==$TENSEAL_PIN numpy==$NUMPY_PIN"
if ! "${PIP[@]}" install "flwr[simulation]==$FLWR_PIN" "ray==$RAY_PIN" \
        "tenseal==$TENSEAL_PIN" "numpy==$NUMPY_PIN"; then
    say "WARNING: those pins are not installable on Python $PYV; trying the newest"
    say "WARNING: flwr[simulation] / tenseal / numpy (results may not match the pinned set)"
    "${PIP[@]}" install "flwr[simulation]" tenseal numpy
fi
if ! "$VPY" -c "$CHECK"; then
    say "ERROR: packages are installed but the imports fl_peer.py needs fail (see above)"
    exit 1
fi

# Record the exact installed set (the stamp says what was asked for).
"${PIP[@]}" freeze > "$VENV/.fl-freeze" 2>/dev/null || true
have="python=$PYV"
for p in flwr ray tenseal numpy; do
    have="$have $p=$("$VPY" -c "from importlib.metadata import version; print(version('$p'))")"
done
echo "$have" > "$STAMP"
[[ "$have" == "$WANT" ]] || say "WARNING: installed set differs from the pins: $have"
say "installed: $have (full list: $VENV/.fl-freeze)"
report
