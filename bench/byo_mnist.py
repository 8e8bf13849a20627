"""Trains the MNIST models a PyTorch user brings, the usual way
(torchvision's ToTensor + Normalize(0.1307, 0.3081), Adam, a few epochs),
exports each with torch.onnx.export's defaults, and writes PyTorch's
predictions on the 10,000 test images, for bench/byo_mnist.sh to compare
with `cipherflow infer` on the same files:

  mlp_square       784 -> 128 -> x^2 -> 10
  tenseal_cnn      the TenSEAL tutorial CNN: conv 7x7/3 (4 maps) -> x^2 ->
                   fc 256 -> 64 -> x^2 -> fc 10
  bn_cnn           conv 5x5/2 (8 maps) -> BatchNorm2d -> x^2 -> avgpool 2 ->
                   fc 288 -> 10 (BatchNorm fused by the exporter or folded
                   by cipherflow)
  relu_mlp         784 -> 128 -> ReLU -> 10 (run under --approximate, with
                   the first 1,000 training images, calib.npy, as the
                   calibration inputs)
  relu_cnn         conv 5x5/2 (8 maps) -> ReLU -> avgpool 2 -> fc 288 -> 10
                   (under --approximate, calibrated the same way)

A model whose ONNX file and predictions are already in OUT_DIR is not
trained again.

The models carry no preprocessing metadata: the benchmark passes
--normalize 0.1307,0.3081, as a user of a plain export does. The test
images are also written as 10,000 PNG files (for the loading-time figure).

Usage: bench/.venv-torch/bin/python bench/byo_mnist.py MNIST_DIR OUT_DIR
"""
import gzip
import os
import struct
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch import nn

MEAN, STD = 0.1307, 0.3081


class Square(nn.Module):
    def forward(self, x):
        return x * x


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 0x0803:
        r, c = struct.unpack(">II", data[8:16])
        return np.frombuffer(data[16:], np.uint8).reshape(n, 1, r, c)
    return np.frombuffer(data[8:], np.uint8).astype(np.int64)


def find(d, stem):
    for name in (f"{stem}.gz", f"{stem.replace('-idx', '.idx', 1)}.gz"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise SystemExit(f"{stem}[.gz] not found in {d}")


def models():
    return {
        "mlp_square": nn.Sequential(nn.Flatten(), nn.Linear(784, 128), Square(),
                                    nn.Linear(128, 10)),
        "tenseal_cnn": nn.Sequential(nn.Conv2d(1, 4, 7, stride=3), Square(), nn.Flatten(),
                                     nn.Linear(256, 64), Square(), nn.Linear(64, 10)),
        "bn_cnn": nn.Sequential(nn.Conv2d(1, 8, 5, stride=2, bias=False), nn.BatchNorm2d(8),
                                Square(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(288, 10)),
        "relu_mlp": nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(),
                                  nn.Linear(128, 10)),
        "relu_cnn": nn.Sequential(nn.Conv2d(1, 8, 5, stride=2), nn.ReLU(), nn.AvgPool2d(2),
                                  nn.Flatten(), nn.Linear(288, 10)),
    }


def main():
    mnist, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    xtr = idx(find(mnist, "train-images-idx3-ubyte"))
    ytr = idx(find(mnist, "train-labels-idx1-ubyte"))
    xte = idx(find(mnist, "t10k-images-idx3-ubyte"))
    yte = idx(find(mnist, "t10k-labels-idx1-ubyte"))
    norm = lambda a: (torch.from_numpy(a.astype(np.float32) / 255.0) - MEAN) / STD
    xt, yt, xe = norm(xtr), torch.from_numpy(ytr), norm(xte)
    for name, m in models().items():
        if all(os.path.exists(os.path.join(out, f"{name}{ext}"))
               for ext in (".onnx", ".torch_pred.npy")):
            continue
        t = time.time()
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        m.train()
        for epoch in range(3):
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), 64):
                b = perm[i:i + 64]
                opt.zero_grad()
                nn.functional.cross_entropy(m(xt[b]), yt[b]).backward()
                opt.step()
        m.eval()
        with torch.no_grad():
            pred = m(xe).argmax(1).numpy()
        acc = float((pred == yte).mean())
        torch.onnx.export(m, xe[:1], os.path.join(out, f"{name}.onnx"), input_names=["image"],
                          output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        np.save(os.path.join(out, f"{name}.torch_pred.npy"), pred)
        print(f"{name}: PyTorch test accuracy {acc:.4f} ({time.time() - t:.0f} s)", flush=True)
    np.save(os.path.join(out, "calib.npy"), xtr[:1000].astype(np.float32) / 255.0)
    png = os.path.join(out, "t10k-png")
    if os.path.exists(os.path.join(png, "09999.png")):
        return
    os.makedirs(png, exist_ok=True)
    for i, im in enumerate(xte):
        Image.fromarray(im[0], mode="L").save(os.path.join(png, f"{i:05d}.png"))
    print(f"wrote {len(xte)} PNG files to {png}")


if __name__ == "__main__":
    main()
