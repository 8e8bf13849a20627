"""Writes crates/nn/tests/fixtures/layers/batchnorm.{safetensors,json}: an
nn.Sequential with BatchNorm2d and BatchNorm1d as PyTorch trains it —
conv 3x3 (4 maps) -> BatchNorm2d -> ReLU -> flatten -> linear 16 ->
BatchNorm1d -> ReLU -> linear 10 — its state_dict (safetensors, PyTorch's
names, num_batches_tracked included), and on the 8 byo test digits: the
train-mode logits, the gradients of the summed cross-entropy, the running
statistics after that one training forward, and the eval-mode logits after.

Run: bench/.venv-torch/bin/python bench/bn_fixtures.py
"""
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BYO = os.path.join(ROOT, "crates", "nn", "tests", "fixtures", "byo")
OUT = os.path.join(ROOT, "crates", "nn", "tests", "fixtures", "layers")

torch.manual_seed(31)
m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                  nn.Linear(144, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
with torch.no_grad():  # non-trivial running statistics and affine parameters
    for bn in (m[1], m[5]):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
save_file({k: v.contiguous() for k, v in m.state_dict().items()},
          os.path.join(OUT, "batchnorm.safetensors"))
x = torch.from_numpy(np.load(os.path.join(BYO, "inputs.npy")))
y = torch.tensor(json.load(open(os.path.join(BYO, "io.json")))["labels"])
m.train()
logits = m(x)
nn.functional.cross_entropy(logits, y, reduction="sum").backward()
m.eval()
with torch.no_grad():
    eval_logits = m(x)
json.dump({
    "producer": f"torch {torch.__version__}",
    "train_logits": logits.tolist(),
    "grads": [[n, p.grad.reshape(-1).tolist()] for n, p in m.named_parameters()],
    "running": [[n, b.reshape(-1).tolist()] for n, b in m.named_buffers() if "running" in n],
    "eval_logits": eval_logits.tolist(),
}, open(os.path.join(OUT, "batchnorm.json"), "w"))
print("wrote batchnorm.safetensors and batchnorm.json")
