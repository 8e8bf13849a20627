"""cipherflow: machine learning on data its owners will not reveal.

This package binds cipherflow's Rust libraries. Modules so far:

* :mod:`cipherflow.ckks` -- encrypted vectors (RNS-CKKS) with arithmetic,
  plaintext matrix products, rotations, sums and polynomials, parameters
  chosen from a depth and a precision;
* :mod:`cipherflow.mpc` -- secret-shared computation of three parties in
  tf-encrypted's style (private inputs, reveal to named parties), in one
  process or as three;
* :mod:`cipherflow.dp` -- differential-privacy accounting (RDP and PLD)
  and noise calibration, the same numbers as ``cipherflow dp``;
* :mod:`cipherflow.torch` -- PyTorch models on encrypted inputs
  (``compile``) and DP-SGD (``SecureSGD``, ``make_private``); imported on
  demand, needs ``torch`` and ``onnx`` (``pip install ./python[torch]``);
* :mod:`cipherflow.flower` -- threshold-CKKS secure aggregation for Flower
  apps (a client mod and a server fit workflow, where SecAgg+ plugs in);
  imported on demand, needs ``flwr`` (``pip install ./python[flower]``);
* :mod:`cipherflow.datasets` -- the shipped digits data set;
* :mod:`cipherflow.ledger` -- offline verification of the audit log's
  proofs ("my update was counted"), as ``cipherflow audit verify-proof``.

Every error is a :class:`CipherflowError`.
"""

from ._native import CipherflowError, CkksError, DpError, LedgerError, MpcError, ProofError
from . import ckks, datasets, dp, ledger, mpc

__all__ = [
    "CipherflowError",
    "CkksError",
    "DpError",
    "LedgerError",
    "MpcError",
    "ProofError",
    "ckks",
    "datasets",
    "dp",
    "ledger",
    "mpc",
]
__version__ = "0.1.0"
