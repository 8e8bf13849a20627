#!/usr/bin/env python3
"""TenSEAL side of bench/tensor.sh: the same encrypted tensor workloads as
`cipherflow bench tensor`, timed with TenSEAL (Microsoft SEAL 4.1).

  * matvec: 64x64 plaintext matrix x encrypted vector at N = 2^13 with the
    n13 modulus (60, 40, 40 | 60), scale 2^40: `CKKSVector.matmul`;
  * mnist: the TenSEAL encrypted-MNIST tutorial network per image, with the
    tutorial's parameters (N = 8192, coefficient bits [31, 26x6, 31], scale
    2^26) and its pipeline (`im2col_encoding`, `conv2d_im2col`,
    `pack_vectors`, `square_`, `mm`), on the weights cipherflow trained
    (read from our safetensors file, PyTorch layout);
  * sizes: serialized encrypted input (upload) and output (download).

Prints one JSON line per measurement: {"lib":"tenseal","op":...}.
"""
import argparse, gzip, json, os, struct, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_PY = HERE / ".venv" / "bin" / "python"
if Path(sys.executable).resolve() != VENV_PY.resolve() and VENV_PY.exists() and not os.environ.get("TENSOR_PEER_NO_REEXEC"):
    os.environ["TENSOR_PEER_NO_REEXEC"] = "1"
    os.execv(str(VENV_PY), [str(VENV_PY)] + sys.argv)

import numpy as np
import tenseal as ts


def load_safetensors(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out


def load_mnist_test(d):
    d = Path(d)
    def read(name):
        for p in (d / (name + ".gz"), d / name):
            if p.exists():
                raw = p.read_bytes()
                return gzip.decompress(raw) if p.suffix == ".gz" else raw
        raise FileNotFoundError(d / name)
    img = read("t10k-images.idx3-ubyte")
    lab = read("t10k-labels.idx1-ubyte")
    n = struct.unpack(">I", img[4:8])[0]
    x = np.frombuffer(img[16:], dtype=np.uint8).reshape(n, 28, 28).astype(np.float64) / 255.0
    y = np.frombuffer(lab[8:], dtype=np.uint8).astype(np.int64)
    return x, y


def stats(us):
    us = sorted(us)
    return us[len(us) // 2], us[0]


def emit(**kw):
    print(json.dumps({"lib": "tenseal", **kw}), flush=True)


def bench_matvec(n, reps, threads):
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60], n_threads=threads)
    ctx.global_scale = 2 ** 40
    ctx.generate_galois_keys()
    rng = np.random.default_rng(1)
    m = (rng.uniform(-1, 1, (n, n)) / np.sqrt(n)).tolist()
    v = ts.ckks_vector(ctx, rng.uniform(-1, 1, n).tolist())
    v.matmul(m)  # warm-up
    us = []
    for _ in range(reps):
        t = time.perf_counter()
        v.matmul(m)
        us.append((time.perf_counter() - t) * 1e6)
    med, mn = stats(us)
    emit(op="matvec", n=n, preset="n13", median_us=med, min_us=mn, threads=threads,
         upload_bytes=len(v.serialize()))


def tutorial_context(threads):
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[31, 26, 26, 26, 26, 26, 26, 31],
                     n_threads=threads)
    ctx.global_scale = 2 ** 26
    ctx.generate_galois_keys()
    return ctx


def forward(ctx, w, image, windows=None):
    """The tutorial's EncConvNet.forward, client encryption included separately."""
    kernel = w["0.weight"]  # [4, 1, 7, 7]
    t0 = time.perf_counter()
    enc_x, windows_nb = ts.im2col_encoding(ctx, image.tolist(), kernel.shape[2], kernel.shape[3], 3)
    t1 = time.perf_counter()
    chans = []
    for k, b in zip(kernel, w["0.bias"]):
        y = enc_x.conv2d_im2col(k[0].tolist(), windows_nb) + float(b)
        chans.append(y)
    h = ts.CKKSVector.pack_vectors(chans)
    h.square_()
    h = h.mm(w["3.weight"].T.tolist()) + w["3.bias"].tolist()
    h.square_()
    h = h.mm(w["5.weight"].T.tolist()) + w["5.bias"].tolist()
    t2 = time.perf_counter()
    out = h.decrypt()
    t3 = time.perf_counter()
    return enc_x, h, np.array(out), (t1 - t0) * 1e6, (t2 - t1) * 1e6, (t3 - t2) * 1e6


def bench_mnist(model, mnist, images, reps, threads):
    w = load_safetensors(model)
    x, y = load_mnist_test(mnist)
    ctx = tutorial_context(threads)
    forward(ctx, w, x[0])  # warm-up
    enc_us, run_us, dec_us = [], [], []
    agree = correct = 0
    up = down = 0
    count = max(reps, images)
    for i in range(count):
        enc_x, out_ct, out, te, tr, td = forward(ctx, w, x[i])
        enc_us.append(te); run_us.append(tr); dec_us.append(td)
        up, down = len(enc_x.serialize()), len(out_ct.serialize())
        # plaintext reference of the same network
        img = x[i]
        k = w["0.weight"]
        conv = np.zeros((k.shape[0], 8, 8))
        for c in range(k.shape[0]):
            for oy in range(8):
                for ox in range(8):
                    conv[c, oy, ox] = np.sum(img[oy * 3:oy * 3 + 7, ox * 3:ox * 3 + 7] * k[c, 0]) + w["0.bias"][c]
        h = conv.reshape(-1) ** 2
        h = (w["3.weight"] @ h + w["3.bias"]) ** 2
        plain = w["5.weight"] @ h + w["5.bias"]
        agree += int(np.argmax(plain) == np.argmax(out))
        correct += int(np.argmax(out) == y[i])
    med, mn = stats(run_us)
    e_med, _ = stats(enc_us)
    d_med, _ = stats(dec_us)
    emit(op="mnist", n=1, preset="tenseal-tutorial", median_us=med, min_us=mn, encrypt_us=e_med,
         decrypt_us=d_med, images_per_hour=3600e6 / (med + e_med + d_med), upload_bytes=up,
         download_bytes=down, images=count, encrypted_accuracy=correct / count,
         agreement=agree / count, threads=threads)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--op", choices=["matvec", "mnist", "all"], default="all")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--images", type=int, default=20, help="images for the accuracy check (mnist)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--model", default=str(HERE.parent / "data/models/mnist-tenseal-cnn.safetensors"))
    ap.add_argument("--mnist", default=str(HERE.parent.parent / "shared/data/mnist"))
    a = ap.parse_args()
    if a.op in ("matvec", "all"):
        bench_matvec(a.n, a.reps, a.threads)
    if a.op in ("mnist", "all"):
        if not (Path(a.mnist) / "t10k-images.idx3-ubyte.gz").exists() and not (Path(a.mnist) / "t10k-images.idx3-ubyte").exists():
            print(f"tensor_peer: MNIST not found at {a.mnist}: skipping the network", file=sys.stderr)
        else:
            bench_mnist(a.model, a.mnist, a.images, a.reps, a.threads)


if __name__ == "__main__":
    main()
