"""cipherflow.mpc: operations against numpy, outputs only to the named
parties, three real processes over TLS, and a party that runs another
program stopped before any input is shared."""

import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cipherflow import mpc

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python" / "mpc_private_prediction.py"


def test_operations_match_numpy():
    a = np.array([[1.5, -2.0], [0.25, 3.0], [-1.0, 0.5]])
    c = np.array([[0.5, 1.0], [-2.0, 0.75], [1.25, -0.5]])
    with mpc.Program(("a", "b", "c")) as prog:
        x = mpc.private_input("a", a)
        y = mpc.private_input("c", c)
        cases = {
            "add": (x + y, a + c),
            "sub": (x - y, a - c),
            "mul": (x * y, a * c),
            "matmul": (x @ y.T, a @ c.T),
            "scalar": (2.5 * x - 1.0, 2.5 * a - 1.0),
            "div": (x / 4, a / 4),
            "rowvec": (x + np.array([1.0, -1.0]), a + np.array([1.0, -1.0])),
            "public_matmul": (x @ np.eye(2), a),
            "neg": (-x, -a),
            "rsub": (1.0 - x, 1.0 - a),
            "sum0": (x.sum(axis=0), a.sum(axis=0, keepdims=True)),
            "sum1": (x.sum(axis=1), a.sum(axis=1, keepdims=True)),
            "relu": (mpc.relu(x), np.maximum(a, 0)),
            "sigmoid": (mpc.sigmoid(x), 1 / (1 + np.exp(-a))),
            "softmax": (mpc.softmax(x), np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)),
        }
        for name, (t, _) in cases.items():
            mpc.reveal_to(["a", "b", "c"], t, name=name)
        mpc.reveal_to("b", mpc.argmax(x), name="argmax")
    out = prog.run()
    for party in ("a", "b", "c"):
        for name, (_, want) in cases.items():
            np.testing.assert_allclose(out[party][name], want, atol=2e-2, err_msg=name)
    assert out["b"]["argmax"].ravel().tolist() == [0, 1, 1]
    assert "argmax" not in out["a"] and "argmax" not in out["c"]
    assert prog.last_stats["bytes"] > 0 and prog.last_stats["rounds"] > 0


def test_tls_in_process_and_only_named_parties_learn():
    with mpc.Program(("owner", "client", "helper")) as prog:
        w = mpc.private_input("owner", np.array([[2.0], [0.5]]))
        x = mpc.private_input("client", np.array([[1.0, 4.0]]))
        mpc.reveal_to("client", x @ w, name="y")
    out = prog.run(tls=True)
    assert out["owner"] == {} and out["helper"] == {}
    np.testing.assert_allclose(out["client"]["y"], [[4.0]], atol=1e-3)


def test_mistakes_are_typed_errors():
    with mpc.Program(("a", "b", "c")) as prog:
        x = mpc.private_input("a", np.ones((2, 3)))
        y = mpc.private_input("b", shape=(2, 3))
        with pytest.raises(mpc.ProgramError, match="matmul"):
            x @ y
        with pytest.raises(mpc.ProgramError, match="shapes"):
            x + mpc.private_variable(np.ones((3, 3)))
        with pytest.raises(mpc.ProgramError, match="no party"):
            mpc.private_input("mallory", np.ones(2))
        with pytest.raises(mpc.ProgramError, match="finite"):
            mpc.private_input("a", np.array([np.inf]))
        with pytest.raises(mpc.ProgramError, match="value, or its shape"):
            mpc.private_input("a")
        k = mpc.argmax(x)
        mpc.reveal_to("a", x + y, name="s")
    # b's value is missing: run() needs every party's inputs.
    with pytest.raises(mpc.ProgramError, match="only a shape"):
        prog.run()
    with pytest.raises(mpc.ProgramError, match="no value"):
        prog.run_party("b", "unused.toml")
    # The Rust side refuses computing on an integer result.
    with mpc.Program(("a", "b", "c")) as p2:
        z = mpc.private_input("a", np.ones((2, 2)))
        k = mpc.argmax(z)
        mpc.reveal_to("a", k * 2.0, name="bad")
    with pytest.raises(mpc.ProgramError, match="integer"):
        p2.run()
    with pytest.raises(mpc.ProgramError, match="no current program"):
        mpc.private_input("a", np.ones(2))
    assert issubclass(mpc.ProgramError, mpc.MpcError)


def _run_three(script: pathlib.Path, net: str, timeout=180):
    procs = {
        p: subprocess.Popen(
            [sys.executable, str(script), "--party", p, "--network", net],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in ("model-owner", "client", "helper")
    }
    return {p: (proc.wait(timeout=timeout), *proc.communicate()) for p, proc in procs.items()}


def test_three_processes_over_tls(tmp_path):
    net = mpc.setup_network(tmp_path / "net")
    res = _run_three(EXAMPLE, net)
    for party, (rc, out, err) in res.items():
        assert rc == 0, f"{party}: {out}{err}"
    assert "predictions" in res["client"][1]
    assert "learned nothing" in res["helper"][1]


def test_a_party_running_another_program_is_stopped(tmp_path):
    # The helper edits its copy of the program to reveal the owner's
    # weights to itself. The digests differ: nobody shares anything.
    greedy = tmp_path / "greedy.py"
    greedy.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(EXAMPLE.parent)!r})
            import mpc_private_prediction as ex
            from cipherflow import mpc
            orig = ex.build
            def build(me=None):
                prog = orig(me)
                if me == "helper":
                    weights = mpc.Tensor(prog, 0, (ex.FEATURES, 1))
                    prog.reveal_to("helper", weights, name="stolen")
                return prog
            ex.build = build
            try:
                ex.main()
            except mpc.ProgramError as e:
                print("refused:", e)
                sys.exit(3)
            """
        )
    )
    net = mpc.setup_network(tmp_path / "net")
    res = _run_three(greedy, net)
    assert res["helper"][0] == 3, res["helper"]
    assert "different program" in res["helper"][1], res["helper"]
    for party in ("model-owner", "client"):
        rc, out, err = res[party]
        assert rc == 3 and "different program" in out, (party, out, err)
        assert "predictions" not in out
