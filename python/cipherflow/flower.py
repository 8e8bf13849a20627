"""Threshold-CKKS secure aggregation for Flower apps.

Flower's SecAgg+ masks each update with pairwise masks that the server
removes with the help of the clients; here each update is encrypted under a
CKKS key share that no single party holds whole, the server adds the
ciphertexts, and a quorum of key holders decrypts only the sum. It plugs in
where SecAgg+ does — a client mod and a server fit workflow::

    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.workflow import DefaultWorkflow
    import cipherflow.flower as cff

    client_app = ClientApp(client_fn=client_fn, mods=[cff.secure_aggregation_mod()])

    @server_app.main()
    def main(grid, context):
        ctx = LegacyContext(context=context, config=ServerConfig(num_rounds=3),
                            strategy=FedAvg(...))
        DefaultWorkflow(fit_workflow=cff.CkksSecAggWorkflow())(grid, ctx)

What each side does (``cipherflow_fed::secagg`` in Rust does the work):

* **Key setup** (first round, and again when the set of nodes changes: a new
  key epoch). The server sends every node the session's spec, a CRS and a
  party id; each node draws a CKKS key share and an X25519 key; the server
  relays the public keys, then the Shamir shares each node deals and seals
  to every other node. The server reads none of them.
* **Fit.** The node's own ``fit`` runs unchanged; the mod takes its
  parameters, clips every coordinate to ``[−clip, clip]``, weights it by
  ``min(num_examples / max_weight, 1)``, quantizes it and encrypts it. The
  parameters never leave the node in the clear; one update per round (a
  repeated request gets the same ciphertext, an older round is refused).
* **Decryption.** The server adds the ciphertexts of the nodes that
  answered (at least ``quorum``) and asks ``t`` nodes — ``t + 1`` with
  checked decryption, so that a node lying about its share is caught — for
  decryption shares of that sum, one set per round; it combines them into
  the exact weighted sum and hands the mean to the strategy, as SecAgg+
  does.

Each node checks the spec against its own policy (``min_quorum``,
``honest_majority``, ``min_stat_sec_bits``): a server cannot talk it into a
threshold of one or a sum of a single update. The node's key share lives in
Flower's per-node state (``context.state``), as SecAgg+'s secrets do. The
server relays the nodes' public keys: against a server that substitutes
keys at setup, pin them out of band.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from . import _native

__all__ = [
    "CkksSecAggWorkflow",
    "secure_aggregation_mod",
    "AggregationError",
    "DecryptionCheckError",
]

AggregationError = _native.AggregationError
DecryptionCheckError = _native.DecryptionCheckError

#: The ConfigRecord (in messages) carrying this protocol's fields.
RECORD = "cipherflow.secagg"
#: The ConfigRecord (in a node's ``context.state``) holding its party.
STATE = "cipherflow.secagg.state"

_log = logging.getLogger("cipherflow.flower")


def _flwr():
    """Flower's message API (imported on first use: ``pip install flwr``)."""
    try:
        from flwr.app import ConfigRecord, Message, RecordDict
        from flwr.app.message_type import MessageType
        from flwr.compat.common import recorddict_compat as compat
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "cipherflow.flower needs Flower: pip install 'flwr[simulation]'"
        ) from e
    return ConfigRecord, Message, RecordDict, MessageType, compat


def _size(shape) -> int:
    """Values in an array of this shape (1 for a scalar)."""
    return int(np.prod(shape)) if len(shape) else 1


def _flatten(ndarrays) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in ndarrays])


# --------------------------------------------------------------------------
# Client side
# --------------------------------------------------------------------------


def secure_aggregation_mod(
    min_quorum: int = 2,
    honest_majority: bool = True,
    min_stat_sec_bits: int = 40,
):
    """A Flower client mod for :class:`CkksSecAggWorkflow`.

    Messages of other kinds (evaluation, queries) pass through untouched.
    The arguments are this node's floor for any spec the server proposes.
    """
    ConfigRecord, Message, RecordDict, MessageType, compat = _flwr()

    def mod(msg, ctxt, call_next):
        if msg.metadata.message_type != MessageType.TRAIN or RECORD not in msg.content.config_records:
            return call_next(msg, ctxt)
        cfg = msg.content.config_records[RECORD]
        stage = cfg.get("stage")
        out = RecordDict()
        if stage == "keys":
            party = _native.NativeSecAggParty(
                str(cfg["spec"]),
                int(cfg["party"]),
                bytes(cfg["crs"]),
                min_quorum=min_quorum,
                honest_majority=honest_majority,
                min_stat_sec_bits=min_stat_sec_bits,
            )
            res: dict[str, Any] = {"public_key": bytes(party.public_key())}
        else:
            if STATE not in ctxt.state.config_records:
                raise AggregationError("no secure-aggregation session on this node (keys first)")
            party = _native.NativeSecAggParty.from_bytes(
                bytes(ctxt.state.config_records[STATE]["party"])
            )
            if stage == "deal":
                sealed = party.deal([bytes(k) for k in cfg["keys"]])
                res = {"sealed": [bytes(s) for s in sealed] or [b""]}
            elif stage == "receive":
                party.receive([bytes(s) for s in cfg["sealed"]])
                res = {"ready": party.ready}
            elif stage == "fit":
                reply = call_next(msg, ctxt)
                out = reply.content
                fitres = compat.recorddict_to_fitres(out, keep_input=True)
                from flwr.common import parameters_to_ndarrays

                flat = _flatten(parameters_to_ndarrays(fitres.parameters))
                ct = party.encrypt(int(cfg["round"]), flat, int(fitres.num_examples))
                # The parameters never leave the node in the clear.
                for rec in out.array_records.values():
                    rec.clear()
                res = {"ciphertext": bytes(ct), "num_examples": int(fitres.num_examples)}
            elif stage == "decrypt":
                share = party.decryption_share(
                    int(cfg["round"]),
                    [int(p) for p in cfg["contributors"]],
                    [int(p) for p in cfg["active"]],
                )
                res = {"share": bytes(share)}
            else:
                raise AggregationError(f"unknown secure-aggregation stage {stage!r}")
        ctxt.state.config_records[STATE] = ConfigRecord({"party": bytes(party.to_bytes())})
        out.config_records[RECORD] = ConfigRecord(res)
        return Message(out, reply_to=msg)

    return mod


# --------------------------------------------------------------------------
# Server side
# --------------------------------------------------------------------------


@dataclass
class _Session:
    server: Any
    epoch: int
    node_to_party: dict[int, int]
    shapes: list[tuple[int, ...]]
    spec: dict[str, Any]


@dataclass
class RoundReport:
    """What one round of the workflow did (kept in ``workflow.reports``)."""

    round: int
    sampled: int
    contributors: int
    decryptors: int
    checked: bool
    upload_bytes: int
    seconds: float
    error: Optional[str] = None
    stages: dict[str, float] = field(default_factory=dict)


class CkksSecAggWorkflow:
    """A fit workflow for Flower's ``DefaultWorkflow`` that aggregates the
    sampled clients' parameters under threshold CKKS.

    Args:
        threshold: key holders needed to decrypt: an int, or a fraction of
            the nodes (default: a strict majority, ``⌊n/2⌋ + 1``).
        quorum: fewest updates in a decrypted sum (default ``max(2, ⌈n/2⌉)``).
        clip: every coordinate is clipped to ``[−clip, clip]`` (SecAgg+'s
            ``clipping_range``; default 8).
        quant_bits: ``2^quant_bits`` integer steps per ``clip`` (default 22,
            SecAgg+'s default precision).
        max_weight: examples per unit FedAvg weight (SecAgg+'s
            ``max_weight``; default 1000).
        stat_sec_bits: statistical security of the decryption shares' noise.
        checked: decrypt with ``t + 1`` nodes whose shares check each other
            (default: whenever there are more than ``t`` nodes).
        timeout: seconds each stage waits for replies (None: forever).
        session: names the session (in every key derivation).
    """

    def __init__(
        self,
        threshold: Union[int, float, None] = None,
        quorum: Optional[int] = None,
        clip: float = 8.0,
        quant_bits: int = 22,
        max_weight: float = 1000.0,
        stat_sec_bits: int = 40,
        checked: Optional[bool] = None,
        timeout: Optional[float] = None,
        session: str = "flower",
    ) -> None:
        self.threshold = threshold
        self.quorum = quorum
        self.clip = float(clip)
        self.quant_bits = int(quant_bits)
        self.max_weight = float(max_weight)
        self.stat_sec_bits = int(stat_sec_bits)
        self.checked = checked
        self.timeout = timeout
        self.session_name = session
        self._session: Optional[_Session] = None
        self.reports: list[RoundReport] = []

    # -- helpers ----------------------------------------------------------

    def _spec(self, n: int, dim: int, epoch: int) -> dict[str, Any]:
        if isinstance(self.threshold, float):
            t = max(2, math.ceil(self.threshold * n))
        elif isinstance(self.threshold, int):
            t = self.threshold
        else:
            t = n // 2 + 1
        quorum = self.quorum if self.quorum is not None else max(2, math.ceil(n / 2))
        checked = self.checked if self.checked is not None else n > t
        return {
            "session": self.session_name,
            "epoch": epoch,
            "parties": n,
            "threshold": t,
            "quorum": quorum,
            "dim": dim,
            "clip": self.clip,
            "quant_bits": self.quant_bits,
            "max_weight": self.max_weight,
            "stat_sec_bits": self.stat_sec_bits,
            "checked": checked,
        }

    def _send(self, grid, contents: dict[int, Any], group: str):
        _, Message, _, MessageType, _ = _flwr()
        msgs = [
            Message(content=c, dst_node_id=nid, message_type=MessageType.TRAIN, group_id=group)
            for nid, c in contents.items()
        ]
        replies = grid.send_and_receive(msgs, timeout=self.timeout)
        ok, failed = {}, []
        for r in replies:
            if r.has_error():
                failed.append(Exception(str(r.error)))
            else:
                ok[r.metadata.src_node_id] = r
        return ok, failed

    def _config(self, fields: dict[str, Any]):
        ConfigRecord, _, RecordDict, _, _ = _flwr()
        return RecordDict({RECORD: ConfigRecord(fields)})

    def _setup(self, grid, nodes: list[int], shapes, round_: int) -> bool:
        import json

        epoch = (self._session.epoch + 1) if self._session else 1
        dim = sum(_size(s) for s in shapes)
        spec = self._spec(len(nodes), dim, epoch)
        server = _native.NativeSecAggServer(json.dumps(spec))
        crs = bytes(server.crs())
        node_to_party = {nid: i + 1 for i, nid in enumerate(sorted(nodes))}
        group = f"{round_}-keys"
        ok, failed = self._send(
            grid,
            {
                nid: self._config({"stage": "keys", "spec": json.dumps(spec), "party": p, "crs": crs})
                for nid, p in node_to_party.items()
            },
            group,
        )
        if len(ok) != len(nodes):
            _log.error("key setup: %d of %d nodes answered (%s)", len(ok), len(nodes), failed[:1])
            return False
        for nid, r in ok.items():
            server.add_key(node_to_party[nid], bytes(r.content.config_records[RECORD]["public_key"]))
        keys = [bytes(k) for k in server.keys()]
        ok, failed = self._send(
            grid, {nid: self._config({"stage": "deal", "keys": keys}) for nid in node_to_party}, group
        )
        if len(ok) != len(nodes):
            _log.error("key setup (dealing): %d of %d nodes answered (%s)", len(ok), len(nodes), failed[:1])
            return False
        for nid, r in ok.items():
            sealed = [bytes(s) for s in r.content.config_records[RECORD]["sealed"] if len(s)]
            server.add_dealing(node_to_party[nid], sealed)
        ok, failed = self._send(
            grid,
            {
                nid: self._config({"stage": "receive", "sealed": [bytes(s) for s in server.sealed_for(p)] or [b""]})
                for nid, p in node_to_party.items()
            },
            group,
        )
        if len(ok) != len(nodes) or not all(r.content.config_records[RECORD]["ready"] for r in ok.values()):
            _log.error("key setup (receiving): not every node is ready (%s)", failed[:1])
            return False
        self._session = _Session(server, epoch, node_to_party, shapes, spec)
        log_n, q_bits, shift, pack, chunks, upload = server.packing()
        _log.info(
            "key epoch %d: %d nodes, t = %d, quorum %d, %s; N = 2^%d, Q = %s bits, %d chunks, %d bytes per upload",
            epoch, len(nodes), spec["threshold"], spec["quorum"],
            "checked decryption" if spec["checked"] else "plain decryption",
            log_n, q_bits, chunks, upload,
        )
        return True

    # -- the workflow -----------------------------------------------------

    def __call__(self, grid, context) -> None:
        import time

        from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
        from flwr.server.compat.legacy_context import LegacyContext
        from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

        if not isinstance(context, LegacyContext):
            raise TypeError(f"expected a LegacyContext, got {type(context).__name__}")
        _, _, _, _, compat = _flwr()
        t0 = time.perf_counter()
        stages: dict[str, float] = {}
        cfg = context.state.config_records[MAIN_CONFIGS_RECORD]
        rnd = int(cfg[Key.CURRENT_ROUND])
        parameters = compat.arrayrecord_to_parameters(
            context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True
        )
        shapes = [tuple(a.shape) for a in parameters_to_ndarrays(parameters)]
        instructions = context.strategy.configure_fit(rnd, parameters, context.client_manager)
        if not instructions:
            _log.info("configure_fit: no clients selected, round %d skipped", rnd)
            return
        sampled = {proxy.node_id: (proxy, fitins) for proxy, fitins in instructions}
        report = RoundReport(rnd, len(sampled), 0, 0, False, 0, 0.0, stages=stages)
        self.reports.append(report)

        def fail(why: str) -> None:
            report.error = why
            report.seconds = time.perf_counter() - t0
            _log.error("round %d: %s", rnd, why)

        nodes = sorted(int(n) for n in grid.get_node_ids())
        s = self._session
        if s is None or s.shapes != shapes or any(n not in s.node_to_party for n in sampled):
            t = time.perf_counter()
            if not self._setup(grid, nodes, shapes, rnd):
                return fail("key setup failed")
            stages["key_setup"] = time.perf_counter() - t
        s = self._session
        assert s is not None
        server = s.server
        server.begin_round(rnd)
        report.checked = bool(s.spec["checked"])

        # Fit: the strategy's instructions plus the round, encrypted replies.
        t = time.perf_counter()
        contents = {}
        for nid, (_, fitins) in sampled.items():
            content = compat.fitins_to_recorddict(fitins, True)
            content.config_records[RECORD] = _flwr()[0]({"stage": "fit", "round": rnd})
            contents[nid] = content
        ok, failures = self._send(grid, contents, str(rnd))
        results = []
        for nid, r in ok.items():
            rec = r.content.config_records[RECORD]
            ct = bytes(rec["ciphertext"])
            try:
                server.add_upload(s.node_to_party[nid], ct, int(rec["num_examples"]))
            except _native.CipherflowError as e:
                failures.append(e)
                continue
            report.upload_bytes += len(ct)
            fitres = compat.recorddict_to_fitres(r.content, keep_input=True)
            results.append((sampled[nid][0], fitres))
        stages["fit"] = time.perf_counter() - t
        contributors = list(server.contributors())
        report.contributors = len(contributors)
        if len(contributors) < s.spec["quorum"]:
            return fail(f"{len(contributors)} updates, below the quorum {s.spec['quorum']}")

        # Decryption by the nodes that just answered.
        t = time.perf_counter()
        party_to_node = {p: n for n, p in s.node_to_party.items()}
        active = server.choose_active(contributors)
        if active is None:
            return fail("not enough key holders answered for a decryption set")
        ok, dfail = self._send(
            grid,
            {
                party_to_node[p]: self._config(
                    {"stage": "decrypt", "round": rnd, "contributors": contributors, "active": list(active)}
                )
                for p in active
            },
            f"{rnd}-decrypt",
        )
        if len(ok) != len(active):
            return fail(f"{len(ok)} of {len(active)} decryption shares arrived ({dfail[:1]})")
        shares = [bytes(ok[party_to_node[p]].content.config_records[RECORD]["share"]) for p in active]
        report.decryptors = len(shares)
        try:
            mean = server.finish(list(active), shares)
        except DecryptionCheckError as e:
            return fail(f"a key holder's decryption share was altered: {e}")
        stages["decrypt"] = time.perf_counter() - t

        # Hand the mean to the strategy as SecAgg+ does: every result
        # carries it, so the strategy's weighted mean is the mean itself.
        arrays, offset = [], 0
        for shape in shapes:
            size = _size(shape)
            arrays.append(np.asarray(mean[offset : offset + size], dtype=np.float32).reshape(shape))
            offset += size
        aggregated = ndarrays_to_parameters(arrays)
        for _, fitres in results:
            fitres.parameters = aggregated
        params, metrics = context.strategy.aggregate_fit(rnd, results, failures)
        if params is not None:
            context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(params, True)
            context.history.add_metrics_distributed_fit(server_round=rnd, metrics=metrics)
        report.seconds = time.perf_counter() - t0
        _log.info(
            "round %d: %d updates summed under encryption, decrypted by %d key holders%s in %.2f s",
            rnd, len(contributors), len(shares), " (checked)" if report.checked else "", report.seconds,
        )
