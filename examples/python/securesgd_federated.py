"""Encrypted gradient descent across sites: each hospital trains a PyTorch
model with SecureSGD (DP-SGD: per-example clipping, Gaussian noise from
ChaCha20, Poisson sampling, its own privacy budget enforced over all
rounds), and Flower sums the hospitals' noised models under threshold CKKS
(cipherflow.flower): the server sees neither a hospital's data nor its
update, only the mean of at least a quorum of them.

Run: python examples/python/securesgd_federated.py [--rounds 4] [--clients 3] [--epsilon 4]
"""

import argparse
import logging

import numpy as np
import torch
from flwr.app import ConfigRecord, Context
from flwr.client import NumPyClient
from flwr.clientapp import ClientApp
from flwr.common import ndarrays_to_parameters
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow
from flwr.server.workflow.constant import MAIN_PARAMS_RECORD
from flwr.serverapp import ServerApp
from flwr.simulation import run_simulation
from torch.utils.data import DataLoader, TensorDataset

import cipherflow.flower as cff
import cipherflow.torch as ct
from cipherflow import datasets, dp

X, Y = datasets.digits()
ORDER = np.random.default_rng(0).permutation(len(Y))
TEST, TRAIN = ORDER[:400], ORDER[400:]
DELTA = 1e-5
BATCH = 64
LOCAL_EPOCHS = 2


def model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))


def get(m):
    return [p.detach().numpy().copy() for p in m.parameters()]


def put(m, arrays):
    with torch.no_grad():
        for p, a in zip(m.parameters(), arrays):
            p.copy_(torch.from_numpy(np.asarray(a)))


class Hospital(NumPyClient):
    """One site: its slice of the digits, its budget in its own node state."""

    def __init__(self, k, clients, rounds, epsilon, state):
        self.idx = np.array_split(TRAIN, clients)[k]
        self.rounds, self.epsilon_target, self.state = rounds, epsilon, state

    def fit(self, parameters, config):
        n = len(self.idx)
        q = BATCH / n
        per_round = LOCAL_EPOCHS * max(1, round(1 / q))
        planned = self.rounds * per_round
        # One noise multiplier for the whole federation: every round's
        # steps count against the same (ε, δ).
        sigma = dp.calibrate_sigma(q, planned, DELTA, self.epsilon_target)
        done = int(self.state.config_records["dp"]["steps"]) if "dp" in self.state.config_records else 0
        if done + per_round > planned:
            raise RuntimeError("this hospital's privacy budget is spent")
        m = model()
        put(m, parameters)
        data = TensorDataset(torch.from_numpy(X[self.idx]), torch.from_numpy(Y[self.idx].astype(np.int64)))
        m, opt, loader = ct.make_private(
            m, torch.optim.SGD(m.parameters(), lr=1.0), DataLoader(data, batch_size=BATCH),
            noise_multiplier=sigma, max_grad_norm=1.0, delta=DELTA, epochs=LOCAL_EPOCHS,
        )
        for _ in range(LOCAL_EPOCHS):
            for xb, yb in loader:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(m(xb), yb).backward()
                opt.step()
        done += opt.steps
        self.state.config_records["dp"] = ConfigRecord({"steps": done})
        eps = dp.epsilon(q, sigma, done, DELTA).epsilon
        return get(m.module), n, {"epsilon": eps}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--epsilon", type=float, default=4.0)
    a = ap.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    torch.manual_seed(0)
    epsilons = []

    def client_fn(context: Context):
        k = int(context.node_config["partition-id"])
        return Hospital(k, a.clients, a.rounds, a.epsilon, context.state).to_client()

    def fit_metrics(metrics):
        epsilons.append(max(m["epsilon"] for _, m in metrics))
        return {"max_epsilon": epsilons[-1]}

    server_app = ServerApp()
    out = {}

    @server_app.main()
    def main_(grid, context):
        strategy = FedAvg(
            fraction_fit=1.0, fraction_evaluate=0.0,
            min_fit_clients=a.clients, min_available_clients=a.clients,
            initial_parameters=ndarrays_to_parameters(get(model())),
            fit_metrics_aggregation_fn=fit_metrics,
        )
        ctx = LegacyContext(context=context, config=ServerConfig(num_rounds=a.rounds), strategy=strategy)
        wf = cff.CkksSecAggWorkflow(clip=4.0)
        DefaultWorkflow(fit_workflow=wf)(grid, ctx)
        out["model"] = ctx.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays()
        out["reports"] = wf.reports

    run_simulation(
        server_app=server_app,
        client_app=ClientApp(client_fn=client_fn, mods=[cff.secure_aggregation_mod()]),
        num_supernodes=a.clients,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": 2, "include_dashboard": False},
        },
    )
    m = model()
    put(m, out["model"])
    with torch.no_grad():
        acc = float((m(torch.from_numpy(X[TEST])).argmax(1).numpy() == Y[TEST]).mean())
    reports = out["reports"]
    print(f"{a.clients} hospitals, {a.rounds} rounds, SecureSGD at ε = {a.epsilon}, δ = {DELTA} per hospital")
    print(f"  test accuracy {acc:.3f}; ε spent after each round (largest hospital): "
          + ", ".join(f"{e:.2f}" for e in epsilons))
    print(f"  every round summed under threshold CKKS: {[r.contributors for r in reports]} updates, "
          f"{reports[-1].decryptors} decryptors, {reports[-1].upload_bytes // reports[-1].contributors} bytes each")
    assert all(r.error is None for r in reports), [r.error for r in reports]
    assert len(epsilons) == a.rounds and epsilons[-1] <= a.epsilon + 1e-9, epsilons
    assert acc > 0.6, acc


if __name__ == "__main__":
    main()
