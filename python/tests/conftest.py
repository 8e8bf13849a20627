"""Where the tests find the shared reference values and the cipherflow
binary (to check that the package gives the CLI's numbers)."""

import os
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def reference_csv():
    """The published reference epsilons (dp-accounting 0.6.0), or skip."""
    for p in (
        ROOT.parent / "shared" / "reference" / "dp_epsilons.csv",
        ROOT / "crates" / "dp" / "tests" / "data" / "dp_epsilons.csv",
    ):
        if p.is_file():
            return p
    pytest.skip("no dp_epsilons.csv (../shared/reference or crates/dp/tests/data)")


@pytest.fixture(scope="session")
def cli():
    """The cipherflow binary: $CIPHERFLOW_BIN, target/{debug,release}, or PATH; else skip."""
    candidates = [os.environ.get("CIPHERFLOW_BIN")]
    candidates += [str(ROOT / "target" / d / "cipherflow") for d in ("debug", "release")]
    candidates.append(shutil.which("cipherflow"))
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    pytest.skip("no cipherflow binary (cargo build -p cipherflow-cli, or set CIPHERFLOW_BIN)")
