"""The examples in the modules' docstrings run and give what they show."""

import doctest

import pytest

import cipherflow.ckks
import cipherflow.datasets
import cipherflow.dp
import cipherflow.ledger
import cipherflow.mpc


@pytest.mark.parametrize(
    "module", [cipherflow.ckks, cipherflow.mpc, cipherflow.dp, cipherflow.ledger, cipherflow.datasets]
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{module.__name__}: {result}"
