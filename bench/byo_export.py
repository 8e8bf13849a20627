"""Checks that a model cipherflow trains goes back to the peers' tools:
`cipherflow train --out m.safetensors` loads into PyTorch with
load_state_dict, `--out m.onnx` runs in onnxruntime, and both give the
same logits on the digits test images (and the same classes as
`cipherflow infer` under encryption, for the polynomial models). The
models: the shipped CNN spec, the mlp preset, an LSTM → GRU model on the
digits' rows, and a padding → conv → LeakyReLU → padding → global average
pooling model. Prints one JSON line per model.

Usage: bench/.venv-torch/bin/python bench/byo_export.py CIPHERFLOW_BIN OUT_DIR
(torch 2.5.1, onnxruntime 1.20.1, safetensors from bench/nn_setup_venv.sh).
"""
import csv
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import torch
from safetensors.torch import load_file
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class Square(nn.Module):
    def forward(self, x):
        return x * x


class View(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(-1, *self.shape)


def recurrent(base):
    """nn.LSTM / nn.GRU (batch_first) as one Sequential module: every step's
    output, or the last step's; its parameters keep PyTorch's names."""
    class Layer(base):
        def __init__(self, inputs, hidden, sequence):
            super().__init__(inputs, hidden, batch_first=True)
            self.sequence = sequence

        def forward(self, x):
            out, _ = super().forward(x)
            return out if self.sequence else out[:, -1]
    return Layer


LSTM, GRU = recurrent(nn.LSTM), recurrent(nn.GRU)

# Models with the layers beyond the dense/conv core, trained by cipherflow
# from these specs.
SPECS = {
    "digits-rnn": """input = [1, 8, 8]
layers = [
  { type = "reshape", shape = [8, 8] },
  { type = "lstm", hidden = 16, sequence = true },
  { type = "gru", hidden = 12 },
  { type = "dense", units = 10 },
]
""",
    "digits-pad": """input = [1, 8, 8]
layers = [
  { type = "pad2d", left = 1, right = 2, bottom = 1 },
  { type = "conv2d", out_channels = 6, kernel = 3 },
  { type = "leaky_relu", negative_slope = 0.1 },
  { type = "pad2d", top = 1, bottom = 1, left = 1, right = 1, value = 0.5 },
  { type = "global_avg_pool2d" },
  { type = "flatten" },
  { type = "dense", units = 10 },
]
""",
}


def torch_model(spec_layers, in_shape):
    """The nn.Sequential a cipherflow spec describes (same module order)."""
    mods, shape = [], list(in_shape)
    for l in spec_layers:
        t = l["type"]
        if t == "conv2d":
            k, s, p = l["kernel"], l.get("stride", 1), l.get("padding", 0)
            mods.append(nn.Conv2d(shape[0], l["out_channels"], k, stride=s, padding=p))
            kk = k if isinstance(k, list) else [k, k]
            ss = s if isinstance(s, list) else [s, s]
            pp = p if isinstance(p, list) else [p, p]
            shape = [l["out_channels"]] + [(shape[1 + i] + 2 * pp[i] - kk[i]) // ss[i] + 1
                                           for i in range(2)]
        elif t == "dense":
            mods.append(nn.Linear(shape[0], l["units"]))
            shape = [l["units"]]
        elif t in ("avg_pool2d", "max_pool2d"):
            k = l["kernel"] if isinstance(l["kernel"], list) else [l["kernel"]] * 2
            s = l.get("stride") or k
            s = s if isinstance(s, list) else [s, s]
            pool = nn.AvgPool2d if t == "avg_pool2d" else nn.MaxPool2d
            mods.append(pool(k, stride=s))
            shape = [shape[0]] + [(shape[1 + i] - k[i]) // s[i] + 1 for i in range(2)]
        elif t == "pad2d":
            t_, b, le, r = (l.get(k, 0) for k in ("top", "bottom", "left", "right"))
            mods.append(nn.ConstantPad2d((le, r, t_, b), l.get("value", 0.0)))
            shape = [shape[0], shape[1] + t_ + b, shape[2] + le + r]
        elif t == "reshape":
            mods.append(View(l["shape"]))
            shape = list(l["shape"])
        elif t in ("lstm", "gru"):
            cls = LSTM if t == "lstm" else GRU
            mods.append(cls(shape[-1], l["hidden"], l.get("sequence", False)))
            shape = [shape[0], l["hidden"]] if l.get("sequence", False) else [l["hidden"]]
        elif t == "leaky_relu":
            mods.append(nn.LeakyReLU(l.get("negative_slope", 0.01)))
        elif t == "flatten":
            mods.append(nn.Flatten())
            shape = [int(np.prod(shape))]
        elif t == "relu":
            mods.append(nn.ReLU())
        elif t == "square":
            mods.append(Square())
        elif t == "sigmoid":
            mods.append(nn.Sigmoid())
        elif t == "tanh":
            mods.append(nn.Tanh())
        elif t == "gelu":
            mods.append(nn.GELU())
        elif t == "softmax":
            mods.append(nn.Softmax(dim=-1))
        else:
            raise SystemExit(f"layer {t} not mapped in this check")
    return nn.Sequential(*mods)


def main():
    cf, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with gzip.open(os.path.join(ROOT, "data", "digits.csv.gz"), "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = (rows[:360, :64] / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    np.save(os.path.join(out, "x.npy"), x)
    models = [("digits-cnn", os.path.join(ROOT, "data", "models", "digits-cnn.toml")),
              ("digits-mlp", "mlp")]
    for name, text in SPECS.items():
        path = os.path.join(out, f"{name}.toml")
        with open(path, "w") as f:
            f.write(text)
        models.append((name, path))
    for name, model in models:
        base = os.path.join(out, name)
        for ext in ("safetensors", "onnx"):
            subprocess.run([cf, "train", "--data", "digits", "--model", model, "--epochs", "3",
                            "--out", f"{base}.{ext}", "--json"], check=True,
                           stdout=subprocess.DEVNULL)
        weights = load_file(f"{base}.safetensors")
        from safetensors import safe_open
        with safe_open(f"{base}.safetensors", "pt") as f:
            spec = json.loads(f.metadata()["cipherflow.spec"])
        tm = torch_model(spec["layers"], spec["input"])
        tm.load_state_dict(weights)
        tm.eval()
        with torch.no_grad():
            pt = tm(torch.from_numpy(x)).numpy()
        sess = ort.InferenceSession(f"{base}.onnx")
        rt = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        line = {"bench": "byo-export", "model": name, "images": len(x),
                "max_abs_diff_pytorch_vs_onnxruntime": float(np.abs(pt - rt).max()),
                "class_agreement": float((pt.argmax(1) == rt.argmax(1)).mean())}
        if not any(k in json.dumps(spec) for k in ("relu", "lstm", "gru")):
            preds = os.path.join(out, f"{name}.pred.csv")
            subprocess.run([cf, "infer", "--model", f"{base}.onnx", "--input",
                            os.path.join(out, "x.npy"), "--batch", "--predictions", preds,
                            "--json"], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            enc = np.array([int(r["class"]) for r in csv.DictReader(open(preds))])
            line["encrypted_agreement_with_pytorch"] = float((enc == pt.argmax(1)).mean())
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
