"""Time per training step in PyTorch (plain) and Opacus (DP-SGD) for the
same MNIST CNN and MLP as `cipherflow-nn`'s step_bench example, on random
MNIST-shaped data, CPU, with a fixed number of threads. One JSON line per
(model, mode), same keys as the Rust side.

Usage: nn_peer.py --batch 256 --reps 20 --threads 2
"""
import argparse
import json
import time
import warnings

import torch
from torch import nn

warnings.filterwarnings("ignore")


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 8, stride=2, padding=3), nn.ReLU(), nn.MaxPool2d(2, 1),
        nn.Conv2d(16, 32, 4, stride=2), nn.ReLU(), nn.MaxPool2d(2, 1),
        nn.Flatten(), nn.Linear(512, 32), nn.ReLU(), nn.Linear(32, 10))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    n = 60000
    x = torch.rand(n, 1, 28, 28)
    y = torch.randint(0, 10, (n,))
    data = torch.utils.data.TensorDataset(x, y)
    loss_fn = nn.CrossEntropyLoss()
    for name, make in (("cnn", cnn), ("mlp", mlp)):
        for mode in ("plain", "dp"):
            model = make()
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            loader = torch.utils.data.DataLoader(data, batch_size=a.batch, shuffle=True)
            library = "pytorch"
            if mode == "dp":
                from opacus import PrivacyEngine
                engine = PrivacyEngine(accountant="rdp")
                # Poisson sampling, per-sample clipping to 1.0, σ = 1.1: the
                # same mechanism as SecureSgd.
                model, opt, loader = engine.make_private(
                    module=model, optimizer=opt, data_loader=loader,
                    noise_multiplier=1.1, max_grad_norm=1.0, poisson_sampling=True)
                library = "opacus"
            times = []
            it = iter(loader)
            for rep in range(a.reps + 2):
                t = time.perf_counter()
                # Batch assembly (Poisson sampling, gather) is part of a step
                # on both sides.
                xb, yb = next(it)
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()
                if rep >= 2:
                    times.append((time.perf_counter() - t) * 1e3)
            times.sort()
            print(json.dumps({"library": library, "model": name, "mode": mode, "batch": a.batch,
                              "threads": a.threads, "ms_per_step": round(times[len(times) // 2], 3)}),
                  flush=True)


if __name__ == "__main__":
    main()
