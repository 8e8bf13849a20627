"""Writes the "bring your own data and model" fixtures that cipherflow's
tests load (crates/nn/tests/fixtures/byo/), all made by PyTorch, Pillow
and onnx the way a user makes them:

  digits_norm_cnn.onnx + .onnx.data  a conv -> x^2 -> avgpool -> linear CNN
                                     trained on the shipped 8x8 digits with
                                     Normalize(MEAN, STD), exported by
                                     torch.onnx.export (opset 13) and saved
                                     with its weights as external data (the
                                     layout PyTorch 2.x's exporter writes),
                                     its preprocessing and class names in
                                     metadata_props["cipherflow.preprocessing"]
  digits_norm_cnn_plain.onnx         the same model, weights embedded, no
                                     metadata (a model that says nothing)
  bn_cnn.onnx, bn_cnn_unfolded.onnx  conv (no bias) -> BatchNorm2d -> x^2 ->
                                     avgpool -> linear -> BatchNorm1d -> x^2 ->
                                     linear, trained with batch statistics,
                                     exported in eval mode with the default
                                     constant folding (PyTorch fuses the conv's
                                     BatchNorm, keeps the other) and without
                                     (both BatchNormalization nodes remain)
  gelu_mlp13.onnx, gelu_mlp20.onnx   flatten -> linear 64->16 -> GELU -> linear 10,
                                     exported at opset 13 (GELU written as
                                     Div/Erf/Add/Mul/Mul) and 20 (a Gelu node)
  relu_mlp.onnx                      flatten -> linear 64->32 -> ReLU -> linear 10,
                                     trained with the same Normalize, its
                                     preprocessing in metadata_props (run
                                     encrypted only under --approximate)
  images/<class>/<i>.png             8 test digits, torchvision ImageFolder
  jpeg/<i>.jpg                       2 test digits as JPEG (quality 95)
  inputs.npy                         the 8 inputs, [8, 1, 8, 8] float32 in [0, 1]
  inputs-idx3-ubyte.gz, labels-idx1-ubyte.gz   the same as IDX (gzip)
  table.csv                          the same as a table: id, p0..p63, label
                                     (the class names)
  io.json                            PyTorch's outputs for each input (after
                                     its own Normalize), Pillow's pixels of
                                     the JPEGs, MEAN and STD

Run: bash bench/nn_setup_venv.sh && bench/.venv-torch/bin/python bench/byo_fixtures.py
(torch 2.5.1 CPU, onnx 1.23.2, Pillow 11.0.0; the outputs are committed so CI
does not need them).
"""
import gzip
import json
import os
import struct

import numpy as np
import onnx
import torch
from PIL import Image
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "crates", "nn", "tests", "fixtures", "byo")
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


class Square(nn.Module):
    def forward(self, x):
        return x * x


def digits():
    with gzip.open(os.path.join(ROOT, "data", "digits.csv.gz"), "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.float32)
    # Pixels as an 8-bit image holds them, then ToTensor's scaling.
    x = np.round(rows[:, :64] / 16.0 * 255.0) / 255.0
    y = rows[:, 64].astype(np.int64)
    return x.reshape(-1, 1, 8, 8).astype(np.float32), y


def main():
    torch.manual_seed(11)
    os.makedirs(OUT, exist_ok=True)
    x, y = digits()
    mean, std = round(float(x[:1500].mean()), 4), round(float(x[:1500].std()), 4)
    norm = lambda t: (t - mean) / std  # torchvision's Normalize([mean], [std])
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=1, padding=1),
        Square(),
        nn.AvgPool2d(2, stride=2),
        nn.Flatten(),
        nn.Linear(64, 10),
    )
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(400):
        idx = torch.randint(0, 1500, (64,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(norm(xt[idx])), yt[idx]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(norm(xt[1500:])).argmax(1) == yt[1500:]).float().mean().item()
    print(f"digits_norm_cnn: test accuracy {acc:.3f} with Normalize({mean}, {std})")

    plain = os.path.join(OUT, "digits_norm_cnn_plain.onnx")
    torch.onnx.export(model, norm(xt[:1]), plain, input_names=["image"],
                      output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=13)
    m = onnx.load(plain)
    meta = m.metadata_props.add()
    meta.key = "cipherflow.preprocessing"
    meta.value = json.dumps({"mean": [mean], "std": [std], "class_names": NAMES})
    onnx.save_model(m, os.path.join(OUT, "digits_norm_cnn.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="digits_norm_cnn.onnx.data",
                    size_threshold=0)

    # Eight test inputs: two of each of four classes, as files of every kind.
    picks = []
    for c in (0, 3, 5, 8):
        picks += [i for i in range(1500, len(y)) if y[i] == c][:2]
    sel = x[picks]
    raw = np.round(sel * 255.0).astype(np.uint8)
    outputs = {}
    for k, i in enumerate(picks):
        rel = f"images/{NAMES[y[i]]}/{k}.png"
        os.makedirs(os.path.dirname(os.path.join(OUT, rel)), exist_ok=True)
        Image.fromarray(raw[k, 0], mode="L").save(os.path.join(OUT, rel))
        back = np.asarray(Image.open(os.path.join(OUT, rel)), dtype=np.float32) / 255.0
        with torch.no_grad():
            out = model(norm(torch.from_numpy(back.reshape(1, 1, 8, 8))))
        outputs[rel] = out[0].tolist()
    jpeg = {}
    os.makedirs(os.path.join(OUT, "jpeg"), exist_ok=True)
    for k in (0, 4):
        rel = f"jpeg/{k}.jpg"
        Image.fromarray(raw[k, 0], mode="L").save(os.path.join(OUT, rel), quality=95)
        jpeg[rel] = (np.asarray(Image.open(os.path.join(OUT, rel)), dtype=np.float32)
                     / 255.0).reshape(-1).tolist()
    np.save(os.path.join(OUT, "inputs.npy"), sel)
    with gzip.GzipFile(os.path.join(OUT, "inputs-idx3-ubyte.gz"), "wb", mtime=0) as f:
        f.write(struct.pack(">IIII", 0x0803, len(picks), 8, 8) + raw.tobytes())
    with gzip.GzipFile(os.path.join(OUT, "labels-idx1-ubyte.gz"), "wb", mtime=0) as f:
        f.write(struct.pack(">II", 0x0801, len(picks)) + y[picks].astype(np.uint8).tobytes())
    with open(os.path.join(OUT, "table.csv"), "w") as f:
        f.write("id," + ",".join(f"p{j}" for j in range(64)) + ",label\n")
        for k, i in enumerate(picks):
            vals = ",".join(repr(float(v)) for v in sel[k].reshape(-1))
            f.write(f"patient-{k},{vals},{NAMES[y[i]]}\n")
    with torch.no_grad():
        batch = model(norm(torch.from_numpy(sel))).tolist()
    bn_outputs = batch_norm_model(xt, yt, norm, torch.from_numpy(sel))
    relu_outputs = relu_model(xt, yt, norm, torch.from_numpy(sel), mean, std)
    gelu_outputs = gelu_model(xt, yt, norm, torch.from_numpy(sel))
    with open(os.path.join(OUT, "io.json"), "w") as f:
        json.dump({
            "producer": f"torch {torch.__version__}, onnx {onnx.__version__}",
            "mean": mean,
            "std": std,
            "labels": y[picks].tolist(),
            "class_names": NAMES,
            "inputs": sel.reshape(len(picks), -1).tolist(),
            "outputs": batch,
            "image_outputs": outputs,
            "bn_outputs": bn_outputs,
            "relu_outputs": relu_outputs,
            "gelu_outputs": gelu_outputs,
            "jpeg_pixels": jpeg,
            "test_accuracy": acc,
        }, f)


def fit(m, xt, yt, norm, steps):
    """Adam (lr 1e-2) on batches of 64 of the first 1500 digits; eval mode."""
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(steps):
        idx = torch.randint(0, 1500, (64,))
        opt.zero_grad()
        nn.functional.cross_entropy(m(norm(xt[idx])), yt[idx]).backward()
        opt.step()
    m.eval()


def gelu_model(xt, yt, norm, sel):
    torch.manual_seed(3)
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.GELU(), nn.Linear(16, 10))
    fit(m, xt, yt, norm, 200)
    for opset in (13, 20):
        torch.onnx.export(m, norm(xt[:1]), os.path.join(OUT, f"gelu_mlp{opset}.onnx"),
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=opset)
    with torch.no_grad():
        return m(norm(sel)).tolist()


def relu_model(xt, yt, norm, sel, mean, std):
    torch.manual_seed(9)
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    fit(m, xt, yt, norm, 300)
    path = os.path.join(OUT, "relu_mlp.onnx")
    torch.onnx.export(m, norm(xt[:1]), path, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=13)
    model = onnx.load(path)
    meta = model.metadata_props.add()
    meta.key = "cipherflow.preprocessing"
    meta.value = json.dumps({"mean": [mean], "std": [std], "class_names": NAMES})
    onnx.save_model(model, path)
    with torch.no_grad():
        return m(norm(sel)).tolist()


def batch_norm_model(xt, yt, norm, sel):
    torch.manual_seed(5)
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), Square(),
        nn.AvgPool2d(2, stride=2), nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16),
        Square(), nn.Linear(16, 10),
    )
    fit(m, xt, yt, norm, 300)
    for name, fold in (("bn_cnn.onnx", True), ("bn_cnn_unfolded.onnx", False)):
        torch.onnx.export(m, norm(xt[:1]), os.path.join(OUT, name), input_names=["image"],
                          output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=13, do_constant_folding=fold)
        ops = [n.op_type for n in onnx.load(os.path.join(OUT, name)).graph.node]
        print(name, ops)
    with torch.no_grad():
        return m(norm(sel)).tolist()


if __name__ == "__main__":
    main()
