"""Ratio tables for bench/fl.sh results: cipherflow vs TenSEAL (NVIDIA
FLARE's HE path) and Flower (FedAvg, SecAgg+). Usage: fl_ratios.py FILE..."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import pick, ratio, read_records  # noqa: E402


def main():
    rows = read_records(sys.argv[1:])
    params = sorted({r["params"] for r in rows if "params" in r})
    clients = sorted({r["clients"] for r in rows if r.get("lib") == "cipherflow" and "clients" in r})
    print("\n## Client and coordinator costs (ours at λ = 40 unless noted)\n")
    print("| measure | params | clients | cipherflow | TenSEAL (NVFlare HE) | ours / TenSEAL | target |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for p in params:
        ts_b = pick(rows, lib="tenseal", bench="he_bytes", params=p, encryption="symmetric")
        ts_e = pick(rows, lib="tenseal", bench="he_encrypt", params=p, encryption="symmetric")
        ts_ea = pick(rows, lib="tenseal", bench="he_encrypt", params=p, encryption="asymmetric")
        ts_a = pick(rows, lib="tenseal", bench="he_add_deserialize", params=p, encryption="symmetric")
        for c in clients:
            for lam in (40, 30):
                b = pick(rows, lib="cipherflow", bench="bytes", params=p, clients=c, stat_sec_bits=lam)
                if b:
                    tb = ts_b["ratio_to_float32"] if ts_b else None
                    print(f"| upload bytes / float32 (λ = {lam}) | {p} | {c} | {b['ratio_to_float32']:.2f}× ({b['bytes_per_param']:.2f} B/param) | "
                          f"{tb and f'{tb:.2f}×' or '–'} | {ratio(b['ratio_to_float32'], tb)} | ≤ 2× float32 |")
            e = pick(rows, lib="cipherflow", bench="encrypt", params=p, clients=c, stat_sec_bits=40)
            if e:
                peer = ts_e["median_ms"] if ts_e else None
                peer_a = ts_ea["median_ms"] if ts_ea else None
                print(f"| client encryption (ms) | {p} | {c} | {e['median_ms']:.1f} | {peer and f'{peer:.1f}' or '–'} sym / {peer_a and f'{peer_a:.1f}' or '–'} asym | "
                      f"{ratio(e['median_ms'], peer)} / {ratio(e['median_ms'], peer_a)} | ≤ 25 ms at 10^5 |")
            f = pick(rows, lib="cipherflow", bench="coordinator_fold", params=p, clients=c, stat_sec_bits=40)
            a = pick(rows, lib="cipherflow", bench="coordinator_accept", params=p, clients=c, stat_sec_bits=40)
            if f:
                peer = ts_a["median_ms"] if ts_a else None
                print(f"| coordinator per client (ms): decode + validate + add | {p} | {c} | {f['median_ms']:.1f} | {peer and f'{peer:.1f}' or '–'} (deserialize + add) | "
                      f"{ratio(f['median_ms'], peer)} | ≤ 5 ms per 10^5 |")
            if a:
                print(f"| coordinator per client (ms): durable accept (fsync, ledger) | {p} | {c} | {a['median_ms']:.1f} | – | | |")
            pr = pick(rows, lib="cipherflow", bench="precision", params=p, clients=c, stat_sec_bits=40)
            if pr:
                print(f"| precision of the decrypted mean (bits, max / L2) | {p} | {c} | {pr['bits_max']:.1f} / {pr['bits_l2']:.1f} | – | | |")
    print("\n## Whole rounds (seconds; one process, 2 cores for every party)\n")
    print("| clients × params | cipherflow encrypted | cipherflow plaintext | ours enc / ours plain | Flower FedAvg | Flower SecAgg+ | ours / SecAgg+ | targets |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for c in clients:
        for p in params:
            o = (pick(rows, lib="cipherflow", bench="round", mode="threshold-checked", params=p, clients=c)
                 or pick(rows, lib="cipherflow", bench="round", params=p, clients=c))
            fa = pick(rows, lib="flower", bench="round", mode="fedavg", params=p, clients=c)
            sa = pick(rows, lib="flower", bench="round", mode="secagg+", params=p, clients=c)
            if not o:
                continue
            fas = fa.get("seconds") if fa else None
            sas = sa.get("seconds") if sa else None
            shares = f" ({sa.get('num_shares')} shares, t = {sa.get('reconstruction_threshold')})" if sa and sa.get("num_shares") else ""
            print(f"| {c} × {p} | {o['seconds']:.2f} | {o['plaintext_seconds']:.3f} | {o['ratio_to_plaintext']:.1f}× | "
                  f"{fas and f'{fas:.2f}' or '–'} | {sas and f'{sas:.2f}' or '–'}{shares} | {ratio(o['seconds'], sas)} | ≤ 2× plain, ≤ 0.3× SecAgg+ |")

    print("\n## Checked decryption (t + 1 holders) against plain (t): the cost of catching a lying key holder\n")
    print("| clients × params | checked round (s) | plain round (s) | checked / plain | checked bytes/param | plain bytes/param | bytes ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for c in clients:
        for p in params:
            ck = pick(rows, lib="cipherflow", bench="round", mode="threshold-checked", params=p, clients=c)
            pl = pick(rows, lib="cipherflow", bench="round", mode="threshold", params=p, clients=c)
            if not (ck and pl and "bytes_per_param" in ck and "bytes_per_param" in pl):
                continue
            print(f"| {c} × {p} | {ck['seconds']:.2f} | {pl['seconds']:.2f} | {ck['seconds'] / pl['seconds']:.2f}× | "
                  f"{ck['bytes_per_param']:.2f} | {pl['bytes_per_param']:.2f} | {ck['bytes_per_param'] / pl['bytes_per_param']:.2f}× |")


if __name__ == "__main__":
    main()
