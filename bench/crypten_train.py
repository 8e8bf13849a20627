"""CrypTen side by side with `cipherflow mpc train`: the same MLP
784-128-128-10 (ReLU) trained on MNIST batches of 128 with SGD, in
CrypTen's two-party setting (arithmetic sharing, Beaver triples from its
trusted first party, parties as processes over gloo on 127.0.0.1; party 0
owns the images, party 1 the labels). Times BATCHES steps after one warm-up
step and prints one JSON line: seconds per batch, bytes and rounds per batch
(CrypTen's own counters), and the per-epoch extrapolation (469 batches).

Usage: bench/.venv-torch/bin/python bench/crypten_train.py MNIST_DIR [BATCHES]
(bench/mpc_train.sh installs crypten into that environment)."""

import gzip
import json
import os
import sys
import time

import numpy as np
import torch

import crypten
import crypten.communicator as comm
import crypten.mpc as mpc

MNIST = sys.argv[1]
BATCHES = int(sys.argv[2]) if len(sys.argv) > 2 else 10
B = 128


def idx(name, offset):
    for n in (name, name.replace("-idx", ".idx")):
        for suffix in (".gz", ""):
            p = os.path.join(MNIST, n + suffix)
            if os.path.exists(p):
                opener = gzip.open if suffix else open
                with opener(p, "rb") as f:
                    return np.frombuffer(f.read()[offset:], dtype=np.uint8)
    raise SystemExit(f"crypten_train: {name} not in {MNIST}")


@mpc.run_multiprocess(world_size=2)
def run():
    crypten.cfg.communicator.verbose = True
    n = (BATCHES + 1) * B
    x = torch.tensor(idx("train-images-idx3-ubyte", 16)[: n * 784], dtype=torch.float32)
    x = (x / 255.0).reshape(n, 784)
    y = torch.tensor(idx("train-labels-idx1-ubyte", 8)[:n], dtype=torch.long)
    onehot = torch.nn.functional.one_hot(y, 10).float()
    torch.manual_seed(0)
    plain = torch.nn.Sequential(
        torch.nn.Linear(784, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 10),
    )
    model = crypten.nn.from_pytorch(plain, torch.empty(1, 784))
    model.encrypt()
    model.train()
    loss = crypten.nn.CrossEntropyLoss()
    x_enc = crypten.cryptensor(x, src=0)
    y_enc = crypten.cryptensor(onehot, src=1)

    def step(i):
        xb = x_enc[i * B:(i + 1) * B]
        yb = y_enc[i * B:(i + 1) * B]
        out = model(xb)
        l = loss(out, yb)
        model.zero_grad()
        l.backward()
        model.update_parameters(0.05)

    step(0)
    comm.get().reset_communication_stats()
    t0 = time.perf_counter()
    for i in range(1, BATCHES + 1):
        step(i)
    dt = (time.perf_counter() - t0) / BATCHES
    stats = comm.get().get_communication_stats()
    if comm.get().get_rank() == 0:
        per = {
            "peer": "crypten",
            "version": crypten.__version__,
            "torch": torch.__version__,
            "parties": 2,
            "batches": BATCHES,
            "batch_size": B,
            "seconds_per_batch": dt,
            # CrypTen counts one party's traffic; both parties send alike.
            "bytes_per_batch_one_party": stats["bytes"] / BATCHES,
            "rounds_per_batch": stats["rounds"] / BATCHES,
            "epoch_seconds_extrapolated": dt * 469,
        }
        print(json.dumps(per), flush=True)


if __name__ == "__main__":
    crypten.init()
    run()
