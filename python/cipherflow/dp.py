"""Differential-privacy accounting for the Poisson-subsampled Gaussian
mechanism (DP-SGD, noised federated updates).

Two accountants, as in ``cipherflow dp`` (the numbers are the same: both
call ``cipherflow_dp``):

* ``"rdp"`` -- Renyi DP on dp-accounting's default order grid with its
  tight RDP -> (epsilon, delta) conversion;
* ``"pld"`` -- privacy-loss distributions (pessimistic discretisation,
  FFT composition, both adjacency directions): tighter, slower.

Heavy computations release the GIL.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from . import _native

__all__ = ["EpsilonReport", "epsilon", "calibrate_sigma", "ACCOUNTANTS"]

ACCOUNTANTS = ("rdp", "pld")


class EpsilonReport(NamedTuple):
    """epsilon at the requested delta, and the optimal RDP order (``None``
    for the PLD accountant)."""

    epsilon: float
    order: Optional[float]


def epsilon(
    q: float,
    sigma: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
) -> EpsilonReport:
    """epsilon after ``steps`` steps at sampling rate ``q`` in (0, 1] with
    noise multiplier ``sigma`` (noise std / L2 sensitivity), at ``delta``
    in (0, 1), under add/remove-one adjacency.

    >>> round(epsilon(256 / 60000, 1.1, 3516, 1e-5).epsilon, 3)
    1.281

    Raises :class:`cipherflow.DpError` on arguments out of range.
    """
    e, order = _native.dp_epsilon(accountant, float(q), float(sigma), int(steps), float(delta))
    return EpsilonReport(e, order)


def calibrate_sigma(
    q: float,
    steps: int,
    delta: float,
    target_epsilon: float,
    accountant: str = "rdp",
) -> float:
    """The smallest noise multiplier such that ``steps`` steps at rate ``q``
    give epsilon <= ``target_epsilon`` at ``delta`` (verified: the returned
    sigma meets the target)."""
    return _native.dp_calibrate_sigma(
        accountant, float(q), int(steps), float(delta), float(target_epsilon)
    )
