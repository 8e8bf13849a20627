"""cipherflow.flower: threshold-CKKS secure aggregation in Flower's
simulation engine, against Flower's own FedAvg, with a node that lies about
its decryption share; and the native party/server it sits on."""

import json
import pickle

import numpy as np
import pytest

flwr = pytest.importorskip("flwr", reason="pip install ./python[flower]")

import cipherflow
from cipherflow import _native
import cipherflow.flower as cff

N = 5
SHAPES = [(20, 10), (10,)]
#: One round's worst rounding error: N·(clip/2^22)/Σw, Σw = Σ 10·(k + 1)/1000.
TOL = N * (8 / 2**22) / 0.15
BACKEND = {
    "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
    "init_args": {"num_cpus": 2, "include_dashboard": False},
}


def simulate(workflow, mods, rounds=2):
    """Runs a Flower simulation of N nodes whose fit moves every weight by
    0.01·(k + 1) with 10·(k + 1) examples (node k); returns the final
    global model."""
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

    class Client(NumPyClient):
        def __init__(self, k):
            self.k = k

        def fit(self, parameters, config):
            step = 0.01 * (self.k + 1)
            return [p + step for p in parameters], 10 * (self.k + 1), {}

    def client_fn(context: Context):
        return Client(int(context.node_config["partition-id"])).to_client()

    server_app = ServerApp()
    out = {}

    @server_app.main()
    def main(grid, context):
        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=N,
            min_available_clients=N,
            initial_parameters=ndarrays_to_parameters([np.zeros(s, np.float32) for s in SHAPES]),
        )
        ctx = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy)
        wf = DefaultWorkflow() if workflow is None else DefaultWorkflow(fit_workflow=workflow)
        wf(grid, ctx)
        out["model"] = ctx.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays()

    run_simulation(
        server_app=server_app,
        client_app=ClientApp(client_fn=client_fn, mods=mods),
        num_supernodes=N,
        backend_config=BACKEND,
    )
    return out["model"]


def no_plaintext_leaves(msg, ctxt, call_next):
    """Outermost mod: a fit reply must carry no parameters in the clear."""
    reply = call_next(msg, ctxt)
    rec = msg.content.config_records.get(cff.RECORD)
    if rec is not None and rec.get("stage") == "fit":
        leaked = [a for r in reply.content.array_records.values() for a in r.values()]
        if leaked:
            raise AssertionError("a fit reply carries parameters in the clear")
    return reply


def test_encrypted_aggregation_equals_flowers_fedavg():
    wf = cff.CkksSecAggWorkflow()
    enc = simulate(wf, [no_plaintext_leaves, cff.secure_aggregation_mod()])
    plain = simulate(None, [])
    # FedAvg weights 10·(k + 1): one step moves every weight by 0.03667.
    w = np.arange(1, N + 1, dtype=float)
    step = float(np.sum(w * 0.01 * w) / w.sum())
    for e, p in zip(enc, plain):
        assert e.shape == p.shape
        np.testing.assert_allclose(p, 2 * step, atol=1e-6)
        # Randomized rounding: under one step clip/2^22 per weighted update,
        # weights n/max_weight (Σ = 0.15), two rounds.
        np.testing.assert_allclose(e, p, atol=TOL * 2)
    assert [r.error for r in wf.reports] == [None, None]
    first = wf.reports[0]
    assert first.contributors == N and first.checked and first.decryptors == N // 2 + 2
    assert "key_setup" in first.stages and "key_setup" not in wf.reports[1].stages
    assert first.upload_bytes > 0


def lie_in_round_one(msg, ctxt, call_next):
    """Outermost mod of a node that alters its decryption share in round 1."""
    reply = call_next(msg, ctxt)
    rec = msg.content.config_records.get(cff.RECORD)
    if rec is not None and rec.get("stage") == "decrypt" and int(rec["round"]) == 1:
        out = reply.content.config_records[cff.RECORD]
        share = bytearray(out["share"])
        for i in range(len(share) - 300, len(share) - 290):
            share[i] ^= 0x80
        out["share"] = bytes(share)
    return reply


def test_a_node_lying_about_its_decryption_share_is_caught():
    wf = cff.CkksSecAggWorkflow()
    model = simulate(wf, [lie_in_round_one, cff.secure_aggregation_mod()])
    assert wf.reports[0].error is not None and "altered" in wf.reports[0].error
    assert wf.reports[1].error is None
    # Round 1 published nothing; round 2 moved the model by one step.
    w = np.arange(1, N + 1, dtype=float)
    step = float(np.sum(w * 0.01 * w) / w.sum())
    for m in model:
        np.testing.assert_allclose(m, step, atol=TOL)


def spec(**kw):
    s = dict(
        session="t", epoch=1, parties=4, threshold=3, quorum=2, dim=64, clip=8.0,
        quant_bits=16, max_weight=100.0, stat_sec_bits=40, checked=True,
    )
    s.update(kw)
    return json.dumps(s)


def session(spec_json):
    srv = _native.NativeSecAggServer(spec_json)
    parties = [_native.NativeSecAggParty(spec_json, i, bytes(srv.crs())) for i in range(1, 5)]
    for p in parties:
        srv.add_key(p.party_id, bytes(p.public_key()))
    keys = [bytes(k) for k in srv.keys()]
    for p in parties:
        srv.add_dealing(p.party_id, [bytes(s) for s in p.deal(keys)])
    for p in parties:
        p.receive([bytes(s) for s in srv.sealed_for(p.party_id)])
    return srv, parties


def test_a_node_refuses_a_weak_spec_replays_and_pickling():
    crs = bytes(32)
    with pytest.raises(cff.AggregationError, match="disjoint"):
        _native.NativeSecAggParty(spec(threshold=2), 1, crs)
    with pytest.raises(cff.AggregationError, match="quorum"):
        _native.NativeSecAggParty(spec(quorum=2), 1, crs, min_quorum=3)
    srv, parties = session(spec())
    p = parties[0]
    u = np.linspace(-1, 1, 64, dtype=np.float32)
    first = bytes(p.encrypt(3, u, 10))
    assert bytes(p.encrypt(3, u, 10)) == first  # a repeated request: same bytes
    with pytest.raises(cff.AggregationError, match="second, different update"):
        p.encrypt(3, u * 2, 10)
    with pytest.raises(cff.AggregationError, match="before round"):
        p.encrypt(2, u, 10)
    with pytest.raises(cff.AggregationError, match="below the quorum"):
        p.decryption_share(3, [1], [1, 2, 3, 4])
    p.decryption_share(3, [1, 2], [1, 2, 3, 4])
    with pytest.raises(cff.AggregationError, match="another contributor or active set"):
        p.decryption_share(3, [1, 3], [1, 2, 3, 4])
    # The refusals survive the state's round trip through bytes.
    q = _native.NativeSecAggParty.from_bytes(bytes(p.to_bytes()))
    with pytest.raises(cff.AggregationError):
        q.encrypt(3, u * 2, 10)
    with pytest.raises(cipherflow.CipherflowError, match="does not pickle"):
        pickle.dumps(q)
    with pytest.raises(cipherflow.CipherflowError):
        _native.NativeSecAggParty.from_bytes(bytes(p.to_bytes())[:-1])


def test_the_server_catches_an_altered_share():
    srv, parties = session(spec())
    srv.begin_round(1)
    for p in parties:
        srv.add_upload(p.party_id, bytes(p.encrypt(1, np.full(64, 0.5, np.float32), 50)), 50)
    c = list(srv.contributors())
    a = list(srv.choose_active(c))
    shares = [bytearray(parties[i - 1].decryption_share(1, c, a)) for i in a]
    for i in range(len(shares[1]) - 300, len(shares[1]) - 290):
        shares[1][i] ^= 0x80
    with pytest.raises(cff.DecryptionCheckError, match="altered"):
        srv.finish(a, [bytes(s) for s in shares])
