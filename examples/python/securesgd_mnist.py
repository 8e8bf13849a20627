"""SecureSGD: differentially private training of a PyTorch CNN on MNIST
(or, without MNIST, on the shipped digits) in Opacus' style, with the
noise and the Poisson sampling drawn from ChaCha20 seeded by the OS and
epsilon accounted by cipherflow.dp.

Run: python examples/python/securesgd_mnist.py [--mnist DIR] [--epochs 1] [--epsilon 3]
"""

import argparse
import gzip
import pathlib
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import cipherflow.torch as ct
from cipherflow import datasets

ROOT = pathlib.Path(__file__).resolve().parents[2]


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(d, stem, kind):
    """MNIST's files under either naming (train-images-idx3-ubyte.gz or
    train-images.idx3-ubyte.gz)."""
    for name in (f"{stem}-{kind}.gz", f"{stem}.{kind}.gz"):
        if (d / name).is_file():
            return d / name
    return None


def load(mnist_dir):
    d = pathlib.Path(mnist_dir)
    files = [find(d, s, k) for s, k in [("train-images", "idx3-ubyte"), ("train-labels", "idx1-ubyte"),
                                         ("t10k-images", "idx3-ubyte"), ("t10k-labels", "idx1-ubyte")]]
    if all(files):
        xtr = idx(files[0]).astype(np.float32) / 255.0
        ytr = idx(files[1]).astype(np.int64)
        xte = idx(files[2]).astype(np.float32) / 255.0
        yte = idx(files[3]).astype(np.int64)
        return "MNIST", xtr[:, None], ytr, xte[:, None], yte, 28
    print(f"no MNIST under {d}: training on the shipped digits instead")
    x, y = datasets.digits()
    x = x.reshape(-1, 1, 8, 8)
    return "digits", x[:1500], y[:1500], x[1500:], y[1500:], 8


def cnn(side):
    """Two strided convolutions with tanh, then a linear layer (for
    ``side`` x ``side`` images, ``side`` a multiple of 4)."""
    k = side // 4
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 4, stride=2, padding=1),
        torch.nn.Tanh(),
        torch.nn.Conv2d(8, 16, 4, stride=2, padding=1),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * k * k, 10),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--epsilon", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    name, xtr, ytr, xte, yte, side = load(args.mnist)
    torch.manual_seed(0)
    model = cnn(side)
    loader = DataLoader(TensorDataset(torch.from_numpy(xtr), torch.from_numpy(ytr)), batch_size=args.batch)
    model, opt, loader = ct.make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=2.0, momentum=0.5),
        loader,
        target_epsilon=args.epsilon,
        delta=1e-5,
        max_grad_norm=1.0,
        epochs=args.epochs,
    )
    print(f"{name}: {len(xtr)} training images, noise multiplier {opt.noise_multiplier:.3f}, "
          f"{opt.max_steps} steps for epsilon {args.epsilon} at delta 1e-5")
    t = time.time()
    for epoch in range(args.epochs):
        for xb, yb in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    step_ms = (time.time() - t) / opt.steps * 1e3
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(xte)).argmax(1) == torch.from_numpy(yte)).float().mean())
    eps = opt.epsilon(1e-5)
    print(f"test accuracy {acc:.3f}, epsilon spent {eps:.3f}, {step_ms:.1f} ms per step")
    assert eps <= args.epsilon + 1e-9
    assert acc > (0.85 if name == "MNIST" else 0.5), acc
    print("securesgd example OK")


if __name__ == "__main__":
    main()
