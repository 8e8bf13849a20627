#!/usr/bin/env python3
"""Summarise a bench/results/dp-*.jsonl file: per row and accountant, the time of
dp-accounting divided by ours (library call and CLI process), and our epsilon's
relative difference from dp-accounting's.

Usage: python3 bench/dp_ratios.py bench/results/dp-<stamp>.jsonl   (or lines on stdin)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import geomean, read_records  # noqa: E402


def key(r):
    return (r["accountant"], round(r["q"], 12), r["sigma"], r["steps"], r["delta"])


def main():
    by_lib = {}
    for r in read_records(sys.argv[1:]):
        if "lib" not in r or "accountant" not in r:
            continue
        by_lib.setdefault(r["lib"], {})[key(r)] = r
    peer = by_lib.get("dp-accounting", {})
    ours = by_lib.get("cipherflow", {})
    cli = by_lib.get("cipherflow-cli", {})
    if not peer or not ours:
        sys.exit("dp_ratios.py: need both dp-accounting and cipherflow lines")
    summary = {}
    print("| acc | q | sigma | steps | delta | eps dp-accounting | eps ours | rel diff | peer s | ours s | ratio | cli s | cli ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in sorted(peer):
        if k not in ours:
            continue
        p, o = peer[k], ours[k]
        c = cli.get(k)
        rel = (o["epsilon"] - p["epsilon"]) / p["epsilon"] if p["epsilon"] else 0.0
        ratio = p["median_s"] / o["median_s"] if o["median_s"] > 0 else float("inf")
        cli_s = c["median_s"] if c else float("nan")
        cli_ratio = p["median_s"] / cli_s if c and cli_s > 0 else float("nan")
        s = summary.setdefault(k[0], {"ratios": [], "cli": [], "rel": []})
        s["ratios"].append(ratio)
        s["rel"].append(rel)
        if c:
            s["cli"].append(cli_ratio)
        print(f"| {k[0]} | {k[1]:g} | {k[2]:g} | {k[3]} | {k[4]:g} | {p['epsilon']:.6g} | {o['epsilon']:.6g} | "
              f"{rel:+.2e} | {p['median_s']:.4f} | {o['median_s']:.5f} | {ratio:.1f}x | {cli_s:.4f} | {cli_ratio:.1f}x |")
    print()
    for acc, s in sorted(summary.items()):
        geo = geomean(s["ratios"])
        line = (f"{acc}: {len(s['ratios'])} rows, speed-up (dp-accounting time / ours) geomean {geo:.1f}x, "
                f"min {min(s['ratios']):.1f}x, max {max(s['ratios']):.1f}x; "
                f"epsilon rel diff max {max(s['rel']):+.2e}, min {min(s['rel']):+.2e}")
        if s["cli"]:
            cgeo = geomean(s["cli"])
            line += f"; CLI process geomean {cgeo:.1f}x (min {min(s['cli']):.1f}x)"
        print(line)


if __name__ == "__main__":
    main()
