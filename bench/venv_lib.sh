# Shared by the bench/*setup_venv.sh scripts (sourced, not run): one way to
# find an interpreter's version, (re)create a virtual environment and report
# what it holds. Each script keeps only its own pins and import checks.
#
#   VENV_SAY=name     prefix of the messages on stderr

say() { echo "${VENV_SAY:-venv}: $*" >&2; }

# pyver PY: "3.11" (nothing when PY does not run).
pyver() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

# venv_create VENV PY: makes VENV a virtual environment of PY's version
# (recreated when it holds another version); sets VPY and PIP (an array).
venv_create() {
    local venv="$1" py="$2" v
    v="$(pyver "$py" || true)"
    if [[ -z "$v" ]]; then
        say "ERROR: cannot run $py"
        return 1
    fi
    if [[ -e "$venv" && "$(pyver "$venv/bin/python" || true)" != "$v" ]]; then
        say "existing $venv is not a Python $v venv: recreating"
        rm -rf "$venv"
    fi
    if [[ ! -x "$venv/bin/python" ]]; then
        say "creating $venv with $py (Python $v)"
        if ! "$py" -m venv "$venv"; then
            say "ERROR: '$py -m venv' failed (on Debian: apt-get install python3-venv)"
            return 1
        fi
    fi
    VPY="$venv/bin/python"
    PIP=("$VPY" -m pip --disable-pip-version-check -q)
}

# venv_report VENV PKG...: one line with the interpreter's and each
# package's installed version ("-" when absent).
venv_report() {
    local venv="$1"
    shift
    "$venv/bin/python" - "${VENV_SAY:-venv}" "$@" >&2 <<'PYEOF'
import sys
from importlib.metadata import version
parts = [f"python {sys.version.split()[0]}"]
for p in sys.argv[2:]:
    try:
        parts.append(f"{p} {version(p)}")
    except Exception:
        parts.append(f"{p} -")
print(f"{sys.argv[1]}: ready: " + ", ".join(parts))
PYEOF
}
