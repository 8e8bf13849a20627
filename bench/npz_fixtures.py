"""Writes the .npz fixtures of crates/nn/tests/fixtures/byo from the
committed inputs.npy and io.json, as NumPy users save arrays:

  inputs.npz         np.savez_compressed(x=inputs, y=labels)
  inputs_arr0.npz    np.savez(inputs): one unnamed array (arr_0)

Run: bench/.venv-torch/bin/python bench/npz_fixtures.py (numpy 1.26)
"""
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BYO = os.path.join(os.path.dirname(HERE), "crates", "nn", "tests", "fixtures", "byo")
x = np.load(os.path.join(BYO, "inputs.npy"))
y = np.array(json.load(open(os.path.join(BYO, "io.json")))["labels"], dtype=np.int64)
np.savez_compressed(os.path.join(BYO, "inputs.npz"), x=x, y=y)
np.savez(os.path.join(BYO, "inputs_arr0.npz"), x)
print("wrote inputs.npz and inputs_arr0.npz")
