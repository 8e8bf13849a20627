"""Encrypted inference of a PyTorch CNN: train a small CNN on the shipped
digits, compile it for CKKS (its ReLUs replaced by degree-31 polynomials,
each on its own measured interval), and classify test images that the
server only ever sees encrypted. The client and server halves exchange
bytes only, as two processes would.

Run: python examples/python/torch_encrypted_cnn.py
"""

import time

import numpy as np
import torch

import cipherflow.torch as ct
from cipherflow import datasets

torch.manual_seed(0)
x, y = datasets.digits()
x = torch.from_numpy(x).reshape(-1, 1, 8, 8)
y = torch.from_numpy(y)
train, test = slice(0, 1500), slice(1500, None)

model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 4, 3, stride=2, padding=1),  # 4 x 4 x 4
    torch.nn.ReLU(),
    torch.nn.Flatten(),
    torch.nn.Linear(64, 32),
    torch.nn.ReLU(),
    torch.nn.Linear(32, 10),
)
opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
for epoch in range(60):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x[train]), y[train])
    loss.backward()
    opt.step()
model.eval()
with torch.no_grad():
    plain = model(x[test])
print(f"plaintext accuracy on {len(y[test])} test images: {(plain.argmax(1) == y[test]).float().mean():.3f}")

# The model owner compiles; the server half holds the weights.
t = time.time()
enc = ct.compile(model, x[train][:200], approximate=31, mode="throughput")
print(f"compiled in {time.time() - t:.1f} s: depth {enc.server.depth}, approximation {enc.server.approximation}")
server_bytes = enc.server.to_bytes()

# The user: a client from the published spec only (no weights).
client = ct.Client(enc.server.spec)
keys = client.eval_keys()
images = x[test][:64]
query = client.encrypt(images)

# The server (another process in practice): from its bytes.
server = ct.Server.from_bytes(server_bytes)
t = time.time()
answer = server.respond(keys, query)
print(f"server: {len(images)} encrypted images in {time.time() - t:.1f} s; "
      f"keys {len(keys) / 1e6:.1f} MB, query {len(query) / 1e6:.1f} MB, answer {len(answer) / 1e6:.1f} MB")
print("answers:", server.privacy)

logits = client.decrypt(answer)
agree = (logits.argmax(1) == plain[:64].argmax(1)).float().mean()
err = (logits - plain[:64].double()).abs().max()
print(f"encrypted vs torch: classes agree on {agree:.3f}, max logit difference {err:.3f}")
assert agree >= 0.9, agree
print("torch example OK")
