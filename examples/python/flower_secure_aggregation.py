"""A Flower app whose updates the server only ever sees encrypted: five
hospitals train a softmax classifier on their share of the digits, the
server sums their encrypted parameters, and a majority of the hospitals
decrypts only the sum (cipherflow.flower). The same app with Flower's plain
FedAvg runs next to it for comparison.

The two lines that differ from a plain Flower app are marked "cipherflow".

Run: python examples/python/flower_secure_aggregation.py [--rounds 5] [--clients 5]
"""

import argparse
import logging
import time

import numpy as np
from flwr.app import Context
from flwr.client import NumPyClient
from flwr.clientapp import ClientApp
from flwr.common import ndarrays_to_parameters
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow
from flwr.server.workflow.constant import MAIN_PARAMS_RECORD
from flwr.serverapp import ServerApp
from flwr.simulation import run_simulation

import cipherflow.flower as cff
from cipherflow import datasets

X, Y = datasets.digits()
rng = np.random.default_rng(0)
order = rng.permutation(len(Y))
TEST = order[:400]
TRAIN = order[400:]


def softmax_sgd(w, b, x, y, epochs=5, lr=0.5, batch=32, seed=0):
    """A few epochs of minibatch SGD on the softmax cross-entropy."""
    r = np.random.default_rng(seed)
    onehot = np.eye(10, dtype=np.float32)[y]
    for _ in range(epochs):
        for i in np.array_split(r.permutation(len(y)), max(1, len(y) // batch)):
            z = x[i] @ w + b
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            g = (p - onehot[i]) / len(i)
            w = w - lr * x[i].T @ g
            b = b - lr * g.sum(axis=0)
    return w.astype(np.float32), b.astype(np.float32)


def accuracy(w, b):
    return float(np.mean(np.argmax(X[TEST] @ w + b, axis=1) == Y[TEST]))


class Hospital(NumPyClient):
    def __init__(self, k, clients):
        self.idx = np.array_split(TRAIN, clients)[k]
        self.k = k

    def fit(self, parameters, config):
        w, b = softmax_sgd(parameters[0], parameters[1], X[self.idx], Y[self.idx], seed=self.k)
        return [w, b], len(self.idx), {}


def run(encrypted, rounds, clients):
    def client_fn(context: Context):
        return Hospital(int(context.node_config["partition-id"]), clients).to_client()

    mods = [cff.secure_aggregation_mod()] if encrypted else []  # cipherflow
    server_app = ServerApp()
    out = {}

    @server_app.main()
    def main(grid, context):
        init = [np.zeros((64, 10), np.float32), np.zeros(10, np.float32)]
        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=clients,
            min_available_clients=clients,
            initial_parameters=ndarrays_to_parameters(init),
        )
        ctx = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy)
        fit = cff.CkksSecAggWorkflow(clip=8.0, max_weight=1000) if encrypted else None  # cipherflow
        (DefaultWorkflow(fit_workflow=fit) if fit else DefaultWorkflow())(grid, ctx)
        out["model"] = ctx.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays()
        out["reports"] = fit.reports if fit else []

    t = time.perf_counter()
    run_simulation(
        server_app=server_app,
        client_app=ClientApp(client_fn=client_fn, mods=mods),
        num_supernodes=clients,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": 2, "include_dashboard": False},
        },
    )
    w, b = out["model"]
    return accuracy(w, b), time.perf_counter() - t, out["reports"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=5)
    a = ap.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    enc_acc, enc_s, reports = run(True, a.rounds, a.clients)
    plain_acc, plain_s, _ = run(False, a.rounds, a.clients)
    print(f"{a.clients} hospitals, {a.rounds} rounds of FedAvg on the digits ({len(TEST)} test images)")
    print(f"  encrypted aggregation (cipherflow.flower): accuracy {enc_acc:.3f}  ({enc_s:.1f} s with Ray start-up)")
    print(f"  Flower's plain FedAvg:                     accuracy {plain_acc:.3f}  ({plain_s:.1f} s)")
    r = reports[-1]
    print(
        f"  last round: {r.contributors} encrypted updates of {r.upload_bytes // r.contributors} bytes, "
        f"decrypted by {r.decryptors} hospitals ({'checked' if r.checked else 'plain'}), {r.seconds:.2f} s"
    )
    assert all(rep.error is None for rep in reports), [rep.error for rep in reports]
    assert enc_acc > 0.85, enc_acc
    assert abs(enc_acc - plain_acc) <= 0.01, (enc_acc, plain_acc)


if __name__ == "__main__":
    main()
