"""Shared helpers of the benchmark summaries (bench/*ratios.py and the
tables the bench scripts print): reading JSON-lines results, picking a
record, ratios and geometric means. One definition for every table."""

import json
import math
import sys

DASH = "—"


def read_records(paths):
    """Every JSON object on a line of the files in `paths` ("-" or no paths:
    standard input), in order. Other lines (context, logs) are skipped."""
    sources = paths or ["-"]
    out = []
    for path in sources:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8")
        try:
            for raw in f:
                raw = raw.strip()
                if not raw.startswith("{"):
                    continue
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    out.append(rec)
        finally:
            if f is not sys.stdin:
                f.close()
    return out


def pick(rows, **kw):
    """The last record whose fields equal `kw` (later runs win), or None."""
    out = [r for r in rows if all(r.get(k) == v for k, v in kw.items())]
    return out[-1] if out else None


def ratio(a, b, digits=3):
    """`a / b` as "1.234×", or a dash when either is missing or b is not positive."""
    if a is None or b is None or not b > 0:
        return DASH
    return f"{a / b:.{digits}f}×"


def geomean(xs):
    """Geometric mean of positive numbers."""
    xs = list(xs)
    return math.exp(sum(math.log(x) for x in xs) / len(xs))
