"""cipherflow.dp against the published reference values and the CLI."""

import csv
import json
import subprocess

import pytest

import cipherflow
from cipherflow import dp


def rows(path):
    with open(path) as f:
        lines = [line for line in f if not line.startswith("#")]
    for r in csv.reader(lines):
        q = 256 / 60000 if r[0] == "0.00426667" else float(r[0])
        yield q, float(r[1]), int(r[2]), float(r[3]), float(r[4]), float(r[5])


def test_epsilons_match_dp_accounting(reference_csv):
    n = 0
    for q, sigma, steps, delta, rdp_ref, pld_ref in rows(reference_csv):
        r = dp.epsilon(q, sigma, steps, delta)
        # The reference is printed to 3 decimals.
        assert abs(r.epsilon - rdp_ref) <= 0.0005 + 1e-9, (q, sigma, steps, r, rdp_ref)
        assert r.order is not None
        p = dp.epsilon(q, sigma, steps, delta, accountant="pld")
        assert p.order is None
        assert abs(p.epsilon - pld_ref) <= 0.0005 + 1e-3 * pld_ref, (q, sigma, steps, p, pld_ref)
        n += 1
    assert n >= 3


def test_the_numbers_are_the_clis(cli):
    for acc in dp.ACCOUNTANTS:
        out = subprocess.run(
            [cli, "dp", "epsilon", "--q", "0.01", "--sigma", "1.0", "--steps", "1000",
             "--delta", "1e-5", "--accountant", acc, "--json"],
            check=True, capture_output=True, text=True,
        ).stdout
        want = json.loads(out.splitlines()[-1])
        got = dp.epsilon(0.01, 1.0, 1000, 1e-5, accountant=acc)
        assert got.epsilon == want["epsilon"], (acc, got, want)


def test_calibration_meets_its_target():
    sigma = dp.calibrate_sigma(0.01, 1000, 1e-5, 2.0)
    assert dp.epsilon(0.01, sigma, 1000, 1e-5).epsilon <= 2.0
    assert dp.epsilon(0.01, sigma * 0.99, 1000, 1e-5).epsilon > 2.0


@pytest.mark.parametrize(
    "args",
    [
        dict(q=0.0, sigma=1.0, steps=10, delta=1e-5),
        dict(q=2.0, sigma=1.0, steps=10, delta=1e-5),
        dict(q=0.1, sigma=-1.0, steps=10, delta=1e-5),
        dict(q=0.1, sigma=float("nan"), steps=10, delta=1e-5),
        dict(q=0.1, sigma=1.0, steps=0, delta=1e-5),
        dict(q=0.1, sigma=1.0, steps=10, delta=1.5),
        dict(q=0.1, sigma=1.0, steps=10, delta=1e-5, accountant="moments"),
    ],
)
def test_bad_arguments_raise_a_typed_error(args):
    with pytest.raises(cipherflow.DpError) as e:
        dp.epsilon(**args)
    assert isinstance(e.value, cipherflow.CipherflowError)
    assert str(e.value)


def test_negative_steps_never_reach_rust():
    with pytest.raises(OverflowError):
        dp.epsilon(0.1, 1.0, -1, 1e-5)
