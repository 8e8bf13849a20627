"""cipherflow.torch.make_private (SecureSGD) against Opacus on the same
model, data, epsilon and settings, same process: MNIST (or the shipped
digits when MNIST is absent), the CNN of examples/python/securesgd_mnist.py,
batch 256 (Poisson sampling), C = 1, delta = 1e-5, RDP accounting on both
sides, SGD lr 2.0 momentum 0.5, the same initial weights.

Prints one JSON line per library (test accuracy, epsilon spent, noise
multiplier, ms per step) and the ratios. Run in a venv with torch, opacus
and cipherflow (bench/python.sh does).

Usage: python bench/python_securesgd.py [--epochs 1] [--epsilon 3] [--seeds 2]
"""

import argparse
import copy
import json
import pathlib
import sys
import time
import warnings

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples" / "python"))
from securesgd_mnist import cnn, load  # noqa: E402  (the example's model and data)

import cipherflow.torch as ct  # noqa: E402


def train(model, opt, loader, epochs):
    steps = 0
    t = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            steps += 1
    return (time.perf_counter() - t) / max(steps, 1) * 1e3, steps


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def ours(init, data, args):
    xtr, ytr, xte, yte = data
    model = copy.deepcopy(init)
    loader = DataLoader(TensorDataset(xtr, ytr), batch_size=args.batch)
    model, opt, loader = ct.make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=2.0, momentum=0.5),
        loader,
        target_epsilon=args.epsilon,
        delta=1e-5,
        max_grad_norm=1.0,
        epochs=args.epochs,
        accountant="rdp",
    )
    ms, steps = train(model, opt, loader, args.epochs)
    return dict(accuracy=accuracy(model, xte, yte), epsilon=opt.epsilon(1e-5),
                sigma=opt.noise_multiplier, ms_per_step=ms, steps=steps)


def opacus(init, data, args):
    from opacus import PrivacyEngine

    xtr, ytr, xte, yte = data
    model = copy.deepcopy(init)
    loader = DataLoader(TensorDataset(xtr, ytr), batch_size=args.batch)
    engine = PrivacyEngine(accountant="rdp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, opt, loader = engine.make_private_with_epsilon(
            module=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=2.0, momentum=0.5),
            data_loader=loader,
            target_epsilon=args.epsilon,
            target_delta=1e-5,
            epochs=args.epochs,
            max_grad_norm=1.0,
        )
        ms, steps = train(model, opt, loader, args.epochs)
    return dict(accuracy=accuracy(model, xte, yte), epsilon=engine.get_epsilon(1e-5),
                sigma=opt.noise_multiplier, ms_per_step=ms, steps=steps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnist", default=str(HERE.parent.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--epsilon", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    name, xtr, ytr, xte, yte, side = load(args.mnist)
    data = tuple(torch.from_numpy(a) for a in (xtr, ytr, xte, yte))
    rows = {"cipherflow": [], "opacus": []}
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        init = cnn(side)
        # Alternate which goes first (caches, frequency).
        order = [("cipherflow", ours), ("opacus", opacus)]
        if seed % 2:
            order.reverse()
        for lib, f in order:
            r = f(init, data, args)
            r.update(bench="python_securesgd", lib=lib, data=name, seed=seed, epochs=args.epochs,
                     target_epsilon=args.epsilon, batch=args.batch, threads=torch.get_num_threads())
            print(json.dumps(r))
            rows[lib].append(r)
    mean = {k: {m: float(np.mean([r[m] for r in v])) for m in ("accuracy", "ms_per_step", "epsilon")}
            for k, v in rows.items()}
    o, p = mean["cipherflow"], mean["opacus"]
    print(f"\n{name}, {args.epochs} epoch(s), epsilon {args.epsilon}, {args.seeds} seeds (means)")
    print(f"{'':<12}{'accuracy':>10}{'epsilon':>10}{'ms/step':>10}")
    for k in ("cipherflow", "opacus"):
        m = mean[k]
        print(f"{k:<12}{m['accuracy']:>10.4f}{m['epsilon']:>10.3f}{m['ms_per_step']:>10.2f}")
    print(f"accuracy difference {100 * (o['accuracy'] - p['accuracy']):+.2f} points; "
          f"step time ours/Opacus {o['ms_per_step'] / p['ms_per_step']:.3f}")


if __name__ == "__main__":
    main()
