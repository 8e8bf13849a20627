#!/usr/bin/env python3
"""Time Google's dp-accounting (RDP and PLD accountants) on (q, sigma, steps, delta) rows.

Prints one JSON line per row and accountant:
  {"lib":"dp-accounting","accountant":"pld","q":...,"sigma":...,"steps":...,"delta":...,
   "epsilon":...,"median_s":...,"reps":...}

Rows come from a CSV (columns q,sigma,steps,delta[,...]; '#' lines are comments), e.g.
../shared/reference/dp_epsilons.csv. The row "0.00426667" is read as 256/60000 exactly,
as that file's header says.

Runs under bench/.venv-dp (created by bench/dp.sh); re-executes itself with that
interpreter when started from another Python.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VENV_PY = os.path.join(HERE, ".venv-dp", "bin", "python")


def ensure_venv():
    try:
        import dp_accounting  # noqa: F401
    except ImportError:
        if os.path.exists(VENV_PY) and os.path.realpath(sys.executable) != os.path.realpath(VENV_PY):
            os.execv(VENV_PY, [VENV_PY] + sys.argv)
        sys.exit("dp_peer.py: dp_accounting is not installed; run bench/dp.sh first")


def read_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or line.startswith("q"):
                continue
            parts = line.split(",")
            q = 256 / 60000 if parts[0] == "0.00426667" else float(parts[0])
            rows.append((q, float(parts[1]), int(parts[2]), float(parts[3])))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--accountant", choices=["rdp", "pld", "both"], default="both")
    ap.add_argument("--cli", metavar="BIN",
                    help="time this cipherflow binary (`dp epsilon ... --json`, one process per call) instead of dp-accounting")
    args = ap.parse_args()
    if args.cli:
        return time_cli(args)
    ensure_venv()
    import dp_accounting
    from dp_accounting import pld, rdp

    def eps(kind, q, sigma, steps, delta):
        acc = rdp.RdpAccountant() if kind == "rdp" else pld.PLDAccountant()
        event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
        acc.compose(event, steps)
        return acc.get_epsilon(delta)

    kinds = ["rdp", "pld"] if args.accountant == "both" else [args.accountant]
    for q, sigma, steps, delta in read_rows(args.csv):
        for kind in kinds:
            times = []
            e = float("nan")
            for _ in range(max(1, args.reps)):
                t0 = time.perf_counter()
                e = eps(kind, q, sigma, steps, delta)
                times.append(time.perf_counter() - t0)
            print(json.dumps({
                "lib": "dp-accounting", "accountant": kind, "q": q, "sigma": sigma,
                "steps": steps, "delta": delta, "epsilon": e,
                "median_s": statistics.median(times), "reps": len(times),
            }), flush=True)


def time_cli(args):
    """Times `cipherflow dp epsilon` as a process (startup included)."""
    import subprocess
    kinds = ["rdp", "pld"] if args.accountant == "both" else [args.accountant]
    for q, sigma, steps, delta in read_rows(args.csv):
        for kind in kinds:
            cmd = [args.cli, "dp", "epsilon", "--q", repr(q), "--sigma", repr(sigma), "--steps", str(steps),
                   "--delta", repr(delta), "--accountant", kind, "--json"]
            times, e = [], float("nan")
            for _ in range(max(1, args.reps)):
                t0 = time.perf_counter()
                out = subprocess.run(cmd, capture_output=True, text=True)
                times.append(time.perf_counter() - t0)
                if out.returncode != 0:
                    print(f"dp_peer.py: {' '.join(cmd)} failed: {out.stderr.strip()}", file=sys.stderr)
                    break
                e = json.loads(out.stdout)["epsilon"]
            print(json.dumps({
                "lib": "cipherflow-cli", "accountant": kind, "q": q, "sigma": sigma, "steps": steps,
                "delta": delta, "epsilon": e, "median_s": statistics.median(times), "reps": len(times),
            }), flush=True)


if __name__ == "__main__":
    main()
