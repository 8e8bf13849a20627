"""Writes the fixtures of the layers PyTorch users bring beyond the dense and
convolutional core (crates/nn/tests/fixtures/layers/), each model exported by
torch.onnx.export with its defaults (opset 17), with PyTorch's outputs, the
gradients of the summed cross-entropy and each example's squared gradient
norm (what DP-SGD clips; each example back-propagated on its own):

  pad_leaky_gap.onnx  ZeroPad2d((1, 2, 0, 1)) -> conv 3x3 (3 maps) ->
                      LeakyReLU(0.1) -> ConstantPad2d(1, 0.5) -> conv 3x3/2
                      (4 maps) -> AdaptiveAvgPool2d(1) -> flatten -> linear 10
                      (F.pad's pads reach the Pad node through a chain of
                      shape operators, as PyTorch writes them)
  lstm_last.onnx      x.view(-1, 8, 8) (rows as 8 steps) -> LSTM(8, 16,
                      batch_first) -> out[:, -1] -> linear 10
  gru_h.onnx          x.view(-1, 8, 8) -> GRU(8, 12, batch_first) -> h_n[-1]
                      -> linear 10
  lstm_seq.onnx       x.view(-1, 8, 8) -> LSTM(8, 6) every step -> GRU(6, 5)
                      last step -> linear 10
  layers.json         per model: PyTorch's logits on the 8 inputs, the
                      parameter gradients of sum-reduced cross-entropy
                      (PyTorch's names), each example's squared gradient norm

The inputs and labels are the 8 test digits of crates/nn/tests/fixtures/byo
(inputs.npy, io.json). The models are trained for 150 Adam steps on the
shipped 8x8 digits so that the outputs are those of a working model.

Run: bash bench/nn_setup_venv.sh && bench/.venv-torch/bin/python bench/layer_fixtures.py
(torch 2.5.1 CPU, onnx 1.23.2; the outputs are committed so CI does not need
them).
"""
import gzip
import json
import os

import numpy as np
import onnx
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BYO = os.path.join(ROOT, "crates", "nn", "tests", "fixtures", "byo")
OUT = os.path.join(ROOT, "crates", "nn", "tests", "fixtures", "layers")


class PadLeakyGap(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.ZeroPad2d((1, 2, 0, 1)), nn.Conv2d(1, 3, 3), nn.LeakyReLU(0.1),
            nn.ConstantPad2d(1, 0.5), nn.Conv2d(3, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(4, 10))

    def forward(self, x):
        return self.net(x)


class LstmLast(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 16, batch_first=True)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        out, _ = self.rnn(x.view(-1, 8, 8))
        return self.fc(out[:, -1])


class GruH(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(8, 12, batch_first=True)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        _, h = self.rnn(x.view(-1, 8, 8))
        return self.fc(h[-1])


class LstmSeq(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.LSTM(8, 6, batch_first=True)
        self.b = nn.GRU(6, 5, batch_first=True)
        self.fc = nn.Linear(5, 10)

    def forward(self, x):
        s, _ = self.a(x.view(-1, 8, 8))
        out, _ = self.b(s)
        return self.fc(out[:, -1])


def digits():
    with gzip.open(os.path.join(ROOT, "data", "digits.csv.gz"), "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = np.round(rows[:, :64] / 16.0 * 255.0) / 255.0
    return torch.from_numpy(x.reshape(-1, 1, 8, 8).astype(np.float32)), \
        torch.from_numpy(rows[:, 64].astype(np.int64))


def train(m, xs, ys):
    """150 Adam steps on batches of 64 of the first 1500 digits; eval mode."""
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(150):
        idx = torch.randint(0, 1500, (64,))
        opt.zero_grad()
        nn.functional.cross_entropy(m(xs[idx]), ys[idx]).backward()
        opt.step()
    m.eval()


def main():
    os.makedirs(OUT, exist_ok=True)
    xs, ys = digits()
    x = torch.from_numpy(np.load(os.path.join(BYO, "inputs.npy")))
    with open(os.path.join(BYO, "io.json")) as f:
        y = torch.tensor(json.load(f)["labels"])
    out = {"producer": f"torch {torch.__version__}, onnx {onnx.__version__}"}
    for k, (name, cls) in enumerate([("pad_leaky_gap", PadLeakyGap), ("lstm_last", LstmLast),
                                     ("gru_h", GruH), ("lstm_seq", LstmSeq)]):
        torch.manual_seed(20 + k)
        m = cls()
        train(m, xs, ys)
        torch.onnx.export(m, x[:1], os.path.join(OUT, f"{name}.onnx"), input_names=["image"],
                          output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=17)
        ops = [n.op_type for n in onnx.load(os.path.join(OUT, f"{name}.onnx")).graph.node]
        print(name, ops)
        m.zero_grad()
        logits = m(x)
        nn.functional.cross_entropy(logits, y, reduction="sum").backward()
        grads = [[n, p.grad.reshape(-1).tolist()] for n, p in m.named_parameters()]
        # Each example's gradient on its own (torch.func.vmap cannot batch
        # PyTorch's fused RNN kernels).
        sq = []
        for i in range(len(x)):
            m.zero_grad()
            nn.functional.cross_entropy(m(x[i:i + 1]), y[i:i + 1]).backward()
            sq.append(sum(float(p.grad.pow(2).sum()) for p in m.parameters()))
        sq = torch.tensor(sq)
        acc = (m(xs[1500:]).argmax(1) == ys[1500:]).float().mean().item()
        print(f"{name}: test accuracy {acc:.3f}")
        out[name] = {"logits": logits.tolist(), "grads": grads, "per_example_sq_norms": sq.tolist(),
                     "test_accuracy": acc}
    with open(os.path.join(OUT, "layers.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
