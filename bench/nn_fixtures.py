"""Writes the PyTorch fixtures that cipherflow-nn's tests load.

A small network using every layer type the Rust crate maps one-to-one to
PyTorch modules is trained briefly on the shipped 8x8 digits, then saved as
  crates/nn/tests/fixtures/torch_digits.safetensors  (state_dict, safetensors)
  crates/nn/tests/fixtures/torch_digits.onnx         (torch.onnx.export)
  crates/nn/tests/fixtures/torch_digits_io.json      (inputs, PyTorch outputs,
                                                      and the architecture)
and a second network with layers cipherflow does not support, exported to
  crates/nn/tests/fixtures/unsupported.onnx

Run: bash bench/nn_setup_venv.sh && bench/.venv-torch/bin/python bench/nn_fixtures.py
(torch 2.5.1 CPU, safetensors, onnx from PyPI; the outputs are committed so
CI does not need PyTorch).
"""
import gzip
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "crates", "nn", "tests", "fixtures")


class Square(nn.Module):
    def forward(self, x):
        return x * x


def digits():
    with gzip.open(os.path.join(ROOT, "data", "digits.csv.gz"), "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = rows[:, :64].reshape(-1, 1, 8, 8) / 16.0
    y = rows[:, 64].astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def main():
    torch.manual_seed(7)
    os.makedirs(OUT, exist_ok=True)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=1, padding=1),  # 0: 8x8
        nn.ReLU(),  # 1
        nn.MaxPool2d(2, stride=2),  # 2: 4x4
        nn.Conv2d(4, 6, 2, stride=1, padding=0),  # 3: 3x3
        Square(),  # 4
        nn.AvgPool2d(2, stride=1),  # 5: 2x2
        nn.Flatten(),  # 6: 24
        nn.Linear(24, 16),  # 7
        nn.Sigmoid(),  # 8
        nn.Linear(16, 10),  # 9
        nn.Tanh(),  # 10
        nn.Linear(10, 10),  # 11
    )
    spec = {
        "input": [1, 8, 8],
        "layers": [
            {"type": "conv2d", "out_channels": 4, "kernel": 3, "stride": 1, "padding": 1},
            {"type": "relu"},
            {"type": "max_pool2d", "kernel": 2, "stride": 2},
            {"type": "conv2d", "out_channels": 6, "kernel": 2, "stride": 1, "padding": 0},
            {"type": "square"},
            {"type": "avg_pool2d", "kernel": 2, "stride": 1},
            {"type": "flatten"},
            {"type": "dense", "units": 16},
            {"type": "sigmoid"},
            {"type": "dense", "units": 10},
            {"type": "tanh"},
            {"type": "dense", "units": 10},
        ],
    }
    x, y = digits()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(300):
        idx = torch.randint(0, 1500, (64,))
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    model.eval()
    test_x = x[1500:1532]
    with torch.no_grad():
        out = model(test_x)
    acc = (model(x[1500:]).argmax(1) == y[1500:]).float().mean().item()
    print(f"fixture model: test accuracy on digits[1500:] = {acc:.3f}")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(OUT, "torch_digits.safetensors"))
    torch.onnx.export(model, test_x[:1], os.path.join(OUT, "torch_digits.onnx"),
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=13)
    with open(os.path.join(OUT, "torch_digits_io.json"), "w") as f:
        json.dump({
            "producer": f"torch {torch.__version__}",
            "spec": spec,
            "inputs": test_x.numpy().reshape(32, -1).tolist(),
            "outputs": out.numpy().tolist(),
            "test_accuracy": acc,
        }, f)

    bad = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.LeakyReLU(0.1), nn.Linear(8, 8),
                        nn.Hardswish(), nn.Linear(8, 10))
    bad.eval()
    torch.onnx.export(bad, test_x[:1], os.path.join(OUT, "unsupported.onnx"),
                      input_names=["image"], output_names=["logits"], opset_version=14)


if __name__ == "__main__":
    main()
