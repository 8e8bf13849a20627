"""cipherflow: machine learning on data its owners will not reveal.

This package binds cipherflow's Rust libraries. Modules so far:

* :mod:`cipherflow.dp` -- differential-privacy accounting (RDP and PLD)
  and noise calibration, the same numbers as ``cipherflow dp``;
* :mod:`cipherflow.ledger` -- offline verification of the audit log's
  proofs ("my update was counted"), as ``cipherflow audit verify-proof``.

Every error is a :class:`CipherflowError`.
"""

from ._native import CipherflowError, DpError, LedgerError, ProofError
from . import dp, ledger

__all__ = ["CipherflowError", "DpError", "LedgerError", "ProofError", "dp", "ledger"]
__version__ = "0.1.0"
