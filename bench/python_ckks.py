"""cipherflow.ckks against TenSEAL on the same Python workloads, same
process, same parameters (N = 2^13, primes [60, 40, 40 | 60], scale 2^40,
TenSEAL's tutorial set), plus the binding's overhead: each operation is
also timed from Rust inside this process (``_native.bench_rust_op``, the
same library call without the binding), four rounds interleaved (alternating which side goes first) with the
Python timings, the best time of each side kept.

Prints one JSON line per (impl, op) with the best time of --reps runs in ms, then a
table: ours, TenSEAL, ours/TenSEAL, and ours/Rust − 1 (the overhead).

With --cnn-server FILE (the server half bench/python_cnn_export.py
writes, from a venv with torch) and MNIST: the TenSEAL tutorial's MNIST
CNN per image, ours (client encrypt, server respond, client decrypt, all
through the bytes) against TenSEAL's tutorial pipeline on the same weights
(bench/tensor_peer.py's forward), --images test images each.

Usage: python bench/python_ckks.py [--reps 20] [--cnn-server FILE --mnist DIR --images 10]
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from cipherflow import _native, ckks

OPS = [
    "keygen",
    "galois_keygen",
    "encrypt",
    "decrypt",
    "add",
    "mul",
    "mul_plain",
    "dot",
    "sum",
    "polyval3",
    "matvec64",
]


def median_ms(reps, f, setup=None):
    """Best of `reps` runs in ms (as timeit reports: on two shared cores
    the median moves by ±30 % between runs, the best by a few per cent)."""
    f(setup() if setup else None)  # warm-up
    times = []
    for _ in range(reps):
        arg = setup() if setup else None
        t = time.perf_counter()
        f(arg)
        times.append((time.perf_counter() - t) * 1e3)
    return min(times)


def workloads():
    x = np.arange(4096) / 4096.0 - 0.5
    w = x * 0.5
    x64 = x[:64]
    m = ((np.arange(64 * 64) % 17) - 8.0).reshape(64, 64) / 64.0
    return x, w, x64, m


def ours(reps):
    x, w, x64, m = workloads()
    params = ckks.Params.from_bit_sizes(8192, [60, 40, 40, 60], 40)
    out = {}
    out["keygen"] = median_ms(min(reps, 5), lambda _: ckks.Context(params))
    out["galois_keygen"] = median_ms(
        min(reps, 5), lambda c: c.generate_galois_keys(), setup=lambda: ckks.Context(params)
    )
    ctx = ckks.Context(params)
    ctx.generate_galois_keys()
    a, b = ctx.encrypt(x), ctx.encrypt(w)
    v64 = ctx.encrypt(x64)
    calls = {
        "encrypt": (lambda _: ctx.encrypt(x), a),
        "decrypt": (lambda _: a.decrypt(), a),
        "add": (lambda _: a + b, a),
        "mul": (lambda _: a * b, a),
        "mul_plain": (lambda _: a * w, a),
        "dot": (lambda _: a.dot(b), a),
        "sum": (lambda _: a.sum(), a),
        "polyval3": (lambda _: a.polyval([0.5, 0.197, 0, -0.004]), a),
        "matvec64": (lambda _: v64 @ m, v64),
    }
    rust = {}
    for op, (f, first) in calls.items():
        py_ms, rs_ms = [], []
        for i in range(4):
            # Alternate which side goes first (order effects are a few per cent).
            if i % 2 == 0:
                py_ms.append(median_ms(reps, f))
            rs_ms.append(
                _native.bench_rust_op(
                    ctx._native,
                    op,
                    first._native,
                    b._native,
                    w.tolist(),
                    m.ravel().tolist(),
                    64,
                    reps,
                )
            )
            if i % 2 == 1:
                py_ms.append(median_ms(reps, f))
        out[op] = min(py_ms)
        rust[op] = min(rs_ms)
    # Correctness of what was timed.
    assert np.max(np.abs((v64 @ m).decrypt() - x64 @ m)) < 1e-3
    assert abs(a.dot(b).decrypt()[0] - x @ w) < 1e-2
    return out, rust


def tenseal(reps):
    try:
        import tenseal as ts
    except ImportError:
        return None
    x, w, x64, m = workloads()

    def make():
        c = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
        c.global_scale = 2**40
        return c

    out = {}
    out["keygen"] = median_ms(min(reps, 5), lambda _: make())
    out["galois_keygen"] = median_ms(min(reps, 5), lambda c: c.generate_galois_keys(), setup=make)
    ctx = make()
    ctx.generate_galois_keys()
    xl, wl = x.tolist(), w.tolist()
    out["encrypt"] = median_ms(reps, lambda _: ts.ckks_vector(ctx, xl))
    a, b = ts.ckks_vector(ctx, xl), ts.ckks_vector(ctx, wl)
    out["decrypt"] = median_ms(reps, lambda _: a.decrypt())
    out["add"] = median_ms(reps, lambda _: a + b)
    out["mul"] = median_ms(reps, lambda _: a * b)
    out["mul_plain"] = median_ms(reps, lambda _: a * wl)
    out["dot"] = median_ms(reps, lambda _: a.dot(b))
    out["sum"] = median_ms(reps, lambda _: a.sum())
    out["polyval3"] = median_ms(reps, lambda _: a.polyval([0.5, 0.197, 0, -0.004]))
    v64 = ts.ckks_vector(ctx, x64.tolist())
    ml = m.tolist()
    out["matvec64"] = median_ms(reps, lambda _: v64.mm(ml))
    assert np.max(np.abs(np.array(v64.mm(ml).decrypt()) - x64 @ m)) < 1e-2
    return out


def cnn(server_file, mnist, images):
    """ms per image (encrypt + run + decrypt) and agreement, both libraries."""
    import pathlib

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    os.environ["TENSOR_PEER_NO_REEXEC"] = "1"
    import tensor_peer as tp

    x, y = tp.load_mnist_test(mnist)
    server = _native.NativeServerHalf.from_bytes(pathlib.Path(server_file).read_bytes())
    client = _native.NativeClientHalf(server.spec_json())
    keys = server.load_keys(client.eval_keys())  # once per session, as a server does
    mine, classes = [], []
    for i in range(images + 1):
        t = time.perf_counter()
        q = client.encrypt(np.ascontiguousarray(x[i].reshape(1, -1)))
        out = client.decrypt(server.respond_with(keys, q))
        if i:  # the first is a warm-up
            mine.append((time.perf_counter() - t) * 1e3)
        classes.append(int(np.argmax(out[0])))
    w = tp.load_safetensors(str(pathlib.Path(__file__).resolve().parents[1] / "data" / "models" / "mnist-tenseal-cnn.safetensors"))
    ctx = tp.tutorial_context(os.cpu_count())
    theirs, agree = [], 0
    for i in range(images + 1):
        t = time.perf_counter()
        _, _, out, *_ = tp.forward(ctx, w, x[i])
        if i:
            theirs.append((time.perf_counter() - t) * 1e3)
        agree += int(np.argmax(out) == classes[i])
    return {
        "cipherflow": min(mine),
        "tenseal": min(theirs),
        "agreement": agree / (images + 1),
        "accuracy": float(np.mean(np.array(classes) == y[: images + 1])),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--cnn-server")
    ap.add_argument("--mnist", default=None)
    ap.add_argument("--images", type=int, default=10)
    args = ap.parse_args()
    mine, rust = ours(args.reps)
    peer = tenseal(args.reps)
    for name, rows in (("cipherflow", mine), ("rust", rust), ("tenseal", peer)):
        for op, ms in (rows or {}).items():
            print(json.dumps({"bench": "python_ckks", "impl": name, "op": op, "ms": round(ms, 4)}))
    print(f"\n{'op':<14}{'ours ms':>10}{'TenSEAL ms':>12}{'ours/TS':>9}{'Rust ms':>10}{'overhead':>10}")
    for op in OPS:
        o = mine[op]
        t = peer.get(op) if peer else None
        r = rust.get(op)
        ratio = f"{o / t:.3f}" if t else "—"
        over = f"{(o / r - 1) * 100:+.1f}%" if r else "—"
        print(
            f"{op:<14}{o:>10.3f}{(t if t else float('nan')):>12.3f}{ratio:>9}"
            f"{(r if r else float('nan')):>10.3f}{over:>10}"
        )
    if peer is None:
        print("\nTenSEAL is not installed here: bash bench/setup_venv.sh", file=sys.stderr)
    if args.cnn_server and args.mnist and peer is not None:
        r = cnn(args.cnn_server, args.mnist, args.images)
        print(json.dumps({"bench": "python_ckks", "op": "mnist_cnn_ms_per_image", **r}))
        print(f"{'mnist_cnn':<14}{r['cipherflow']:>10.3f}{r['tenseal']:>12.3f}"
              f"{r['cipherflow'] / r['tenseal']:>9.3f}   (ms per image, best of {args.images}; "
              f"classes agree {r['agreement']:.2f})")


if __name__ == "__main__":
    main()
