"""Data sets shipped inside the package (examples and tests need no
download): the UCI handwritten digits, 1,797 8x8 images."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from . import _native

__all__ = ["digits"]


def digits() -> Tuple[np.ndarray, np.ndarray]:
    """``(features, labels)``: features ``[1797, 64]`` float32 in [0, 1]
    (8x8 images, row-major), labels 0..9 (UCI Optical Recognition of
    Handwritten Digits, CC BY 4.0).

    >>> x, y = digits()
    >>> x.shape, y.shape, int(y.max())
    ((1797, 64), (1797,), 9)
    """
    return _native.dataset_digits()
