"""Stage 1 of the CNN row of bench/python.sh (a venv with torch): the
TenSEAL tutorial's MNIST network (Conv 7x7 stride 3, 4 channels -> x^2 ->
256->64 -> x^2 -> 64->10) as a torch module with the weights in
data/models/mnist-tenseal-cnn.safetensors (the ones TenSEAL's side uses),
compiled by cipherflow.torch.compile (latency mode); writes the server
half's bytes to OUT. Stage 2 (bench/python_ckks.py --cnn-server OUT) times
them against TenSEAL's tutorial pipeline in a venv with TenSEAL.

Usage: python bench/python_cnn_export.py OUT
"""

import json
import pathlib
import struct
import sys

import numpy as np
import torch

import cipherflow.torch as ct

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Square(torch.nn.Module):
    def forward(self, x):
        return x * x


def weights():
    data = (ROOT / "data" / "models" / "mnist-tenseal-cnn.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(body[a:b], dtype="<f4").reshape(info["shape"]).copy())
    return out


def main():
    out = pathlib.Path(sys.argv[1])
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 7, stride=3),
        Square(),
        torch.nn.Flatten(),
        torch.nn.Linear(256, 64),
        Square(),
        torch.nn.Linear(64, 10),
    )
    model.load_state_dict(weights())
    example = torch.rand(16, 1, 28, 28)
    enc = ct.compile(model, example, mode="latency", input_bound=1.0)
    out.write_bytes(enc.server.to_bytes())
    print(f"compiled: depth {enc.server.depth}, {len(out.read_bytes())} bytes -> {out}")


if __name__ == "__main__":
    main()
