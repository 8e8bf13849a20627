#!/usr/bin/env python3
"""Turn benchmark JSON lines into markdown comparison tables, one per preset.

Usage:  python bench/ratios.py results.jsonl [more.jsonl ...]
        ... | python bench/ratios.py          (reads stdin)

Input: one JSON object per line, e.g.
  {"preset":"n13","op":"mul","median_us":1.0,"min_us":0.9,"threads":1,"reps":9}
  {"lib":"seal","preset":"n13","op":"mul",...}
A line without "lib" is ours (cipherflow). Lines that are not JSON objects
with preset/op/median_us are ignored. If the same (lib, preset, op) appears
more than once, the last one wins.

Output columns (medians, microseconds):
  op | cipherflow µs | SEAL µs | ours/SEAL | OpenFHE µs | ours/OpenFHE
Ratios below 1 mean we are faster. Missing entries are shown as "—".
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import DASH, ratio, read_records  # noqa: E402

OURS = "cipherflow"
# Canonical op order; ops not listed here follow in order of appearance.
OP_ORDER = [
    "encode", "encrypt_pk", "encrypt_sk", "add", "mul_plain", "mul", "relin",
    "rescale", "mul_relin_rescale", "rotate", "decrypt",
]


def parse(records):
    data = {}        # (preset, op) -> {lib: median_us}
    meta = {}        # preset -> {"dnum": set(), "threads": set(), "reps": {lib: set()}}
    presets, ops = [], []
    for rec in records:
        if not {"preset", "op", "median_us"} <= rec.keys():
            continue
        lib = str(rec.get("lib") or OURS).lower()
        preset, op = str(rec["preset"]), str(rec["op"])
        try:
            med = float(rec["median_us"])
        except (TypeError, ValueError):
            continue
        if preset not in presets:
            presets.append(preset)
        if op not in ops:
            ops.append(op)
        data.setdefault((preset, op), {})[lib] = med
        m = meta.setdefault(preset, {"dnum": set(), "threads": set()})
        if lib == "openfhe" and "dnum" in rec:
            m["dnum"].add(rec["dnum"])
        if "threads" in rec:
            m["threads"].add(rec["threads"])
    return data, meta, presets, ops


def preset_key(p):
    # n13 < n14 < ... ; anything else after, alphabetically
    if p[:1] == "n" and p[1:].isdigit():
        return (0, int(p[1:]), p)
    return (1, 0, p)


def fmt_us(v):
    if v is None:
        return DASH
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def render(data, meta, presets, ops):
    ordered_ops = [o for o in OP_ORDER if o in ops] + [o for o in ops if o not in OP_ORDER]
    out = []
    for preset in sorted(presets, key=preset_key):
        m = meta.get(preset, {})
        notes = []
        if m.get("threads"):
            notes.append("threads " + "/".join(str(t) for t in sorted(m["threads"])))
        if m.get("dnum"):
            notes.append("OpenFHE dnum " + "/".join(str(d) for d in sorted(m["dnum"])))
        head = f"### {preset}" + (f" ({', '.join(notes)})" if notes else "")
        out.append(head)
        out.append("")
        out.append("| op | cipherflow µs | SEAL µs | ours/SEAL | OpenFHE µs | ours/OpenFHE |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for op in ordered_ops:
            row = data.get((preset, op))
            if not row:
                continue
            ours, seal, ofhe = row.get(OURS), row.get("seal"), row.get("openfhe")
            out.append(f"| {op} | {fmt_us(ours)} | {fmt_us(seal)} | {ratio(ours, seal, 2)} "
                       f"| {fmt_us(ofhe)} | {ratio(ours, ofhe, 2)} |")
        out.append("")
    return "\n".join(out)


def main(argv):
    if len(argv) > 1 and argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    data, meta, presets, ops = parse(read_records(argv[1:]))
    if not presets:
        print("ratios.py: no benchmark lines found", file=sys.stderr)
        return 1
    print(render(data, meta, presets, ops))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
