"""Writes a fixture exported by torch's newer exporter, the one built on
torch.export (``torch.onnx.export(..., dynamo=True)``; the TorchScript
exporter is deprecated), to crates/nn/tests/fixtures/layers/:

  dynamo_cnn.onnx  conv 3x3 (4 maps, padded) -> BatchNorm2d -> ReLU ->
                   AvgPool2d(2) -> flatten -> linear 16 -> GELU -> linear 10,
                   exported on one example (opset 20: the exporter writes a
                   batch of one into its Reshape, and GELU as one node)
  dynamo.json      PyTorch's logits on the 8 test digits of
                   crates/nn/tests/fixtures/byo, and the exporter's version

The model is trained for 150 Adam steps on the shipped 8x8 digits.

Run: bench/.venv-torch/bin/python bench/dynamo_fixtures.py (needs torch,
onnx and onnxscript; the outputs are committed so CI does not need them).
"""
import json
import os

import numpy as np
import onnx
import torch
from torch import nn

from layer_fixtures import BYO, OUT, digits, train


def main():
    xs, ys = digits()
    x = torch.from_numpy(np.load(os.path.join(BYO, "inputs.npy")))
    torch.manual_seed(30)
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(64, 16), nn.GELU(), nn.Linear(16, 10),
    )
    train(m, xs, ys)
    path = os.path.join(OUT, "dynamo_cnn.onnx")
    with torch.no_grad():
        program = torch.onnx.export(m, (x[:1],), dynamo=True, input_names=["image"],
                                    output_names=["logits"])
    program.save(path)
    print([n.op_type for n in onnx.load(path).graph.node])
    with torch.no_grad():
        logits = m(x)
    acc = (m(xs[1500:]).argmax(1) == ys[1500:]).float().mean().item()
    print(f"test accuracy {acc:.3f}")
    with open(os.path.join(OUT, "dynamo.json"), "w") as f:
        json.dump({"producer": f"torch {torch.__version__} (dynamo=True), onnx {onnx.__version__}",
                   "logits": logits.tolist(), "test_accuracy": acc}, f)


if __name__ == "__main__":
    main()
