"""Private prediction in tf-encrypted's style: a model owner's logistic
regression applied to a client's records; the client learns the
predictions, the model owner learns nothing, the helper learns nothing, and
nobody sees the other's data.

Three parties in this process (for development):
    python examples/python/mpc_private_prediction.py
Three processes (each with only its own data), e.g. three terminals:
    python examples/python/mpc_private_prediction.py --setup /tmp/net
    python examples/python/mpc_private_prediction.py --party model-owner --network /tmp/net/mpc.toml
    python examples/python/mpc_private_prediction.py --party client --network /tmp/net/mpc.toml
    python examples/python/mpc_private_prediction.py --party helper --network /tmp/net/mpc.toml
"""

import argparse

import numpy as np

from cipherflow import mpc

PARTIES = ("model-owner", "client", "helper")
FEATURES, RECORDS = 8, 16


def model_owner_data():
    """The owner's trained weights (here: a fixed, known model)."""
    rng = np.random.default_rng(1)
    return rng.normal(0, 0.5, (FEATURES, 1)), np.array([0.25])


def client_data():
    rng = np.random.default_rng(2)
    return rng.normal(0, 1, (RECORDS, FEATURES))


def build(me=None):
    """The program; each process gives values only for what it owns."""
    prog = mpc.Program(PARTIES)
    with prog:
        if me in (None, "model-owner"):
            w_val, b_val = model_owner_data()
            w = mpc.private_input("model-owner", w_val)
            b = mpc.private_input("model-owner", b_val.reshape(1, 1))
        else:
            w = mpc.private_input("model-owner", shape=(FEATURES, 1))
            b = mpc.private_input("model-owner", shape=(1, 1))
        if me in (None, "client"):
            x = mpc.private_input("client", client_data())
        else:
            x = mpc.private_input("client", shape=(RECORDS, FEATURES))
        ones = mpc.private_variable(np.ones((RECORDS, 1)))
        logits = x @ w + ones @ b
        mpc.reveal_to("client", mpc.sigmoid(logits), name="probability")
    return prog


def expected():
    w, b = model_owner_data()
    return 1 / (1 + np.exp(-(client_data() @ w + b)))


def check(probability):
    err = np.max(np.abs(probability - expected()))
    assert err < 0.03, err
    print(f"client: {RECORDS} predictions, max error vs plaintext {err:.4f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--setup", help="write certificates and a network file into this directory")
    ap.add_argument("--party", choices=PARTIES)
    ap.add_argument("--network", help="the network file (--setup writes it)")
    args = ap.parse_args()
    if args.setup:
        print(mpc.setup_network(args.setup))
        return
    if args.party:
        prog = build(args.party)
        out = prog.run_party(args.party, args.network)
        if args.party == "client":
            check(out["probability"])
        else:
            assert out == {}, "only the client learns the predictions"
            print(f"{args.party}: learned nothing, as promised")
        return
    results = build().run()
    assert results["model-owner"] == {} and results["helper"] == {}
    check(results["client"]["probability"])
    print("mpc example OK")


if __name__ == "__main__":
    main()
