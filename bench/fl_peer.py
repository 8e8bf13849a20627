#!/usr/bin/env python3
"""Peer side of the federated-learning aggregation benchmark.

Two peers, both from PyPI (bench/fl_setup_venv.sh puts them in bench/.venv-fl):

  tenseal  NVIDIA FLARE's homomorphic-encryption aggregation path. NVFlare's
           HE filters use TenSEAL CKKS with the context its provisioning
           builder (HEBuilder) writes: N = 8192, coefficient modulus bit
           sizes [60, 40, 40], scale 2^40, symmetric (secret-key) encryption
           and relinearisation keys. Per layer, the client filter
           (HEModelEncryptor) calls `ts.ckks_vector(ctx, values).serialize()`
           on the whole flattened layer: NVFlare does no chunking of its own,
           TenSEAL splits a vector longer than N/2 = 4096 slots into
           ceil(P / 4096) SEAL ciphertexts. The server aggregator
           (HEInTimeAccumulateWeightedAggregator.accept) does
           `total = total + ts.ckks_vector_from(ctx, bytes)` per client, then
           multiplies the sum by 1/count; the client decrypts the result.
           Lines (all carry "encryption", "chunks", "threads"):
             he_encrypt          ts.ckks_vector over P values
             he_bytes            serialize() size (+ serialize time)
             he_add              total = total + ct, ciphertexts in memory
             he_add_deserialize  total = total + ckks_vector_from(bytes),
                                 what NVFlare's accept() does per client
             he_average          total * (1/C) (NVFlare's aggregate())
             he_decrypt          decrypt the sum to P floats (+ max error)
           Both encryption types are measured: "symmetric" is NVFlare's
           default (nvflare_default: true); "asymmetric" (public key) is
           TenSEAL's default and what most TenSEAL FL examples use.

  flower   Flower's simulation engine (run_simulation, Ray backend): one
           ServerApp running the legacy DefaultWorkflow with a FedAvg
           strategy and C virtual clients whose fit() returns a random
           float32 update of P parameters (no training). mode "fedavg" uses
           Flower's default fit workflow; mode "secagg+" swaps in
           SecAggPlusWorkflow on the server and secaggplus_mod on the
           clients; mode "cipherflow" swaps in cipherflow.flower's
           CkksSecAggWorkflow and secure_aggregation_mod (threshold CKKS;
           its round 1 also runs the key setup). Every (mode, C, P) runs in its own child process (fresh
           Ray instance, bounded by --flower-timeout). One simulation runs
           1 + reps rounds; the fit workflow of each round (server sends the
           global model, clients fit, updates come back, aggregation; for
           SecAgg+ its four stages) is timed from the ServerApp thread, and
           "seconds" is the median of rounds 2..1+reps. The ServerApp thread
           starts at once and its first round waits for Ray to start and the
           client actors to come up, so round 1 is reported separately
           (first_round_seconds) and excluded; outside_rounds_seconds is the
           rest of run_simulation (engine set-up before the ServerApp, Ray
           shutdown).

stdout carries one JSON object per line and nothing else (native libraries
that print to stdout, like TenSEAL's "does not fit in a single ciphertext"
warning, and Ray/Flower logs are moved to stderr); progress goes to stderr.

  python3 bench/fl_peer.py --reps 3
  python3 bench/fl_peer.py --only tenseal --params 100000,1000000 --reps 5
  python3 bench/fl_peer.py --only flower --clients 10,50 --params 100000 --reps 2
"""
import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_PY = HERE / ".venv-fl" / "bin" / "python"
# Same convention as tensor_peer.py: re-run under the benchmark venv's
# interpreter (do not resolve symlinks of the venv python: it must be the
# venv's own path for site-packages to be found).
if (Path(sys.executable).absolute() != VENV_PY.absolute() and VENV_PY.exists()
        and not os.environ.get("FL_PEER_NO_REEXEC")):
    os.environ["FL_PEER_NO_REEXEC"] = "1"
    os.execv(str(VENV_PY), [str(VENV_PY)] + sys.argv)

# No telemetry or usage reports from Flower / Ray (the machine has no
# network besides package registries anyway), and keep Ray quiet about
# running in a container.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")

# NVFlare's HE context (nvflare.lighter.impl.he.HEBuilder defaults).
HE_N = 8192
HE_COEFF_BITS = [60, 40, 40]
HE_SCALE_BITS = 40
HE_SLOTS = HE_N // 2

# Keep the real stdout for JSON lines only; everything else that writes to
# file descriptor 1 (C++ std::cout in TenSEAL, Ray's log forwarding, rich
# console output of Flower) lands on stderr.
_JSON_OUT = None


def _claim_stdout():
    global _JSON_OUT
    if _JSON_OUT is None:
        sys.stdout.flush()
        _JSON_OUT = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)


def emit(obj):
    _JSON_OUT.write(json.dumps(obj) + "\n")
    _JSON_OUT.flush()


def log(msg):
    print(f"fl_peer: {msg}", file=sys.stderr, flush=True)


def ms_stats(seconds):
    s = sorted(seconds)
    return {"median_ms": round(statistics.median(s) * 1e3, 3), "min_ms": round(s[0] * 1e3, 3),
            "reps": len(s)}


def timed(fn, reps):
    """One untimed warm-up call, then `reps` timed calls; returns (seconds, last result)."""
    out = fn()
    secs = []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        secs.append(time.perf_counter() - t)
    return secs, out


# ---------------------------------------------------------------------------
# TenSEAL / NVFlare HE path
# ---------------------------------------------------------------------------

def bench_tenseal(params_list, reps, threads, encryptions, clients_for_avg):
    import numpy as np
    import tenseal as ts
    from importlib.metadata import version

    tv = version("tenseal")
    for enc_name in encryptions:
        enc_type = {"symmetric": ts.ENCRYPTION_TYPE.SYMMETRIC,
                    "asymmetric": ts.ENCRYPTION_TYPE.ASYMMETRIC}[enc_name]
        ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=HE_N,
                         coeff_mod_bit_sizes=HE_COEFF_BITS, encryption_type=enc_type,
                         n_threads=threads)
        ctx.generate_relin_keys()  # as HEBuilder does (adds need none)
        ctx.global_scale = 2 ** HE_SCALE_BITS
        common = {"lib": "tenseal", "version": tv, "encryption": enc_name,
                  "nvflare_default": enc_name == "symmetric", "n": HE_N,
                  "coeff_mod_bits": HE_COEFF_BITS, "scale_bits": HE_SCALE_BITS, "threads": threads}
        for P in params_list:
            log(f"tenseal {enc_name}: P={P}")
            rng = np.random.default_rng(P)
            # Two clients' updates, float32 as a model would hold them; NVFlare
            # multiplies by a float64 weight first, so TenSEAL sees float64.
            a = rng.uniform(-1, 1, P).astype(np.float32).astype(np.float64)
            b = rng.uniform(-1, 1, P).astype(np.float32).astype(np.float64)
            chunks = math.ceil(P / HE_SLOTS)
            line = dict(common, params=P, chunks=chunks)

            secs, ct_a = timed(lambda: ts.ckks_vector(ctx, a), reps)
            emit(dict(line, bench="he_encrypt", **ms_stats(secs)))

            ser_secs, blob_a = timed(ct_a.serialize, reps)
            nbytes = len(blob_a)
            emit(dict(line, bench="he_bytes", bytes=nbytes, bytes_per_param=round(nbytes / P, 3),
                      ratio_to_float32=round(nbytes / (4 * P), 3),
                      serialize_median_ms=ms_stats(ser_secs)["median_ms"]))

            # Server: running sum over clients, NVFlare style (a new vector
            # per addition: `current_total + weighted_value`).
            ct_b = ts.ckks_vector(ctx, b)
            blob_b = ct_b.serialize()
            total = [ct_a]

            def add_one():
                total[0] = total[0] + ct_b
                return total[0]
            secs, _ = timed(add_one, reps)
            emit(dict(line, bench="he_add", **ms_stats(secs),
                      note="total = total + ct (in-memory ciphertexts), per client"))

            def add_deser():
                total[0] = total[0] + ts.ckks_vector_from(ctx, blob_b)
                return total[0]
            secs, _ = timed(add_deser, reps)
            emit(dict(line, bench="he_add_deserialize", **ms_stats(secs),
                      note="total = total + ckks_vector_from(ctx, bytes): NVFlare accept() per client"))
            n_added = 2 * (reps + 1)  # copies of b added to a so far

            # Aggregate: multiply by 1/C (one plaintext-scalar product + rescale).
            inv = 1.0 / clients_for_avg
            secs, avg = timed(lambda: total[0] * inv, reps)
            emit(dict(line, bench="he_average", clients=clients_for_avg, **ms_stats(secs),
                      note="total * (1/C): NVFlare aggregate()"))

            # Decrypt the sum (client side) and check it.
            secs, dec = timed(lambda: total[0].decrypt(), reps)
            got = np.asarray(dec)
            err = float(np.max(np.abs(got - (a + n_added * b))))
            emit(dict(line, bench="he_decrypt", **ms_stats(secs), max_abs_err=err,
                      summands=n_added + 1))
            if err > 1e-2:
                log(f"WARNING: tenseal {enc_name} P={P}: decrypted sum off by {err}")
            del ct_a, ct_b, blob_a, blob_b, total, avg, dec, got


# ---------------------------------------------------------------------------
# Flower simulation (child process: one (mode, C, P) per process)
# ---------------------------------------------------------------------------

# Each virtual client's update is BASE + uniform(-SPREAD, SPREAD): the
# aggregate must come back inside BASE +- SPREAD, which a failed SecAgg+
# unmasking (uniform garbage over the quantisation range) would not.
UPDATE_BASE = 0.5
UPDATE_SPREAD = 0.25


def flower_child(mode, clients, params, rounds, shares, threshold, client_cpus, ray_cpus):
    """Run one simulation; print progress lines and one result line (JSON)."""
    import numpy as np
    from importlib.metadata import version
    from flwr.client import ClientApp, NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.common import Context, ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD
    from flwr.simulation import run_simulation

    P = params

    class RandomUpdateClient(NumPyClient):
        """fit() ignores the global model and returns a fresh random update."""

        def fit(self, parameters, config):
            rng = np.random.default_rng()
            upd = rng.random(P, dtype=np.float32)
            upd *= 2 * UPDATE_SPREAD
            upd += UPDATE_BASE - UPDATE_SPREAD
            # num_examples = 1: equal weights (and within SecAgg+'s max_weight).
            return [upd], 1, {}

    def client_fn(context: Context):
        return RandomUpdateClient().to_client()

    if mode == "cipherflow":
        import cipherflow.flower as cff
        mods = [cff.secure_aggregation_mod()]
    else:
        mods = [secaggplus_mod] if mode == "secagg+" else []
    client_app = ClientApp(client_fn=client_fn, mods=mods)

    round_secs = []        # fit-workflow time of each round
    protocol = {}          # effective SecAgg+ parameters
    result = {}

    class TimedFit:
        """Wraps a fit workflow and times each call (one call = one round's fit)."""

        def __init__(self, inner):
            self.inner = inner

        def __call__(self, grid, context):
            t = time.perf_counter()
            self.inner(grid, context)
            dt = time.perf_counter() - t
            round_secs.append(dt)
            # progress for the parent (kept if the child is later killed)
            emit({"_progress": len(round_secs), "seconds": dt})
            log(f"flower {mode} C={clients} P={P}: round {len(round_secs)} {dt:.3f} s")

    class RecordingSecAggPlus(SecAggPlusWorkflow):
        """SecAggPlusWorkflow that remembers the share count / threshold it used."""

        def setup_stage(self, grid, context, state):
            ok = super().setup_stage(grid, context, state)
            protocol.update(num_shares=state.num_shares,
                            reconstruction_threshold=state.threshold,
                            max_weight=self.max_weight, clipping_range=state.clipping_range,
                            quantization_range=state.quantization_range,
                            modulus_range=state.mod_range)
            return ok

    server_app = ServerApp()

    @server_app.main()
    def _main(grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_fit=1.0, fraction_evaluate=0.0,      # every client fits, no evaluation
            min_fit_clients=clients, min_available_clients=clients,
            initial_parameters=ndarrays_to_parameters([np.zeros(P, dtype=np.float32)]),
        )
        lctx = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds),
                             strategy=strategy)
        if mode == "secagg+":
            inner = RecordingSecAggPlus(num_shares=shares, reconstruction_threshold=threshold)
        elif mode == "cipherflow":
            # SecAgg+'s defaults: clipping range 8, 2^22 quantization steps,
            # max weight 1000; t = ⌊C/2⌋ + 1, checked decryption by t + 1.
            inner = cff.CkksSecAggWorkflow(clip=8.0, quant_bits=22, max_weight=1000.0)
            result["workflow"] = inner
        else:
            inner = DefaultWorkflow().fit_workflow    # Flower's default fit workflow
        DefaultWorkflow(fit_workflow=TimedFit(inner))(grid, lctx)
        # The aggregated global model after the last round.
        result["model"] = lctx.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays()

    backend_config = {
        "client_resources": {"num_cpus": client_cpus, "num_gpus": 0.0},
        "init_args": {"num_cpus": ray_cpus, "include_dashboard": False},
    }
    t0 = time.perf_counter()
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=clients,
                   backend_config=backend_config)
    total = time.perf_counter() - t0

    if len(round_secs) != rounds or "model" not in result:
        emit({"_error": f"simulation ended after {len(round_secs)} of {rounds} rounds"
                        + ("" if "model" in result else ", no aggregated model")})
        return 1
    model = result["model"]
    ok = (len(model) == 1 and model[0].size == P
          and abs(float(np.mean(model[0])) - UPDATE_BASE) < 0.01
          and float(np.min(model[0])) >= UPDATE_BASE - UPDATE_SPREAD - 1e-3
          and float(np.max(model[0])) <= UPDATE_BASE + UPDATE_SPREAD + 1e-3)
    timed_rounds = round_secs[1:] if len(round_secs) > 1 else round_secs
    line = {
        "lib": "flower", "version": version("flwr"), "ray": version("ray"),
        "bench": "round", "mode": mode, "clients": clients, "params": P,
        "seconds": round(statistics.median(timed_rounds), 4),
        "min_seconds": round(min(timed_rounds), 4),
        "rounds_timed": len(timed_rounds),
        "first_round_seconds": round(round_secs[0], 4),
        "outside_rounds_seconds": round(total - sum(round_secs), 3),
        "simulation_seconds": round(total, 3),
        "aggregate_ok": bool(ok),
        "ray_num_cpus": ray_cpus, "client_num_cpus": client_cpus,
    }
    if mode == "cipherflow":
        reps = result["workflow"].reports
        line.update(
            lib="cipherflow.flower", cipherflow_reports=[
                {"round": r.round, "seconds": round(r.seconds, 4), "contributors": r.contributors,
                 "decryptors": r.decryptors, "checked": r.checked, "upload_bytes": r.upload_bytes,
                 "error": r.error, "stages": {k: round(v, 4) for k, v in r.stages.items()}}
                for r in reps],
            key_setup_seconds=round(reps[0].stages.get("key_setup", 0.0), 3) if reps else None,
            bytes_per_param=(reps[-1].upload_bytes / max(1, reps[-1].contributors) / P) if reps else None)
    if mode == "secagg+":
        # Effective values as the workflow used them in the last round (a
        # float argument is resolved against the sampled clients), then the
        # arguments as given; the rest are SecAggPlusWorkflow's defaults.
        line.update(protocol, num_shares_arg=shares, reconstruction_threshold_arg=threshold)
    line["note"] = (
        f"seconds = median over rounds 2..{rounds} of the ServerApp's fit workflow "
        "(send global model, client fit() = fresh random float32 update, receive, "
        + ("SecAgg+ setup/share-keys/collect-masked-vectors/unmask stages, "
           if mode == "secagg+" else "")
        + "FedAvg aggregate), timed in the ServerApp thread; round 1 is excluded: it "
        "waits for Ray to start and the actors to come up (first_round_seconds); "
        "no evaluation rounds; "
        f"{ray_cpus} Ray CPUs, {client_cpus} CPU per client")
    if not ok:
        log(f"WARNING: aggregated model is not the expected average (mean "
            f"{float(np.mean(model[0])):.4f}, want {UPDATE_BASE})")
    emit(line)
    return 0


def run_flower_case(mode, clients, params, a):
    """Run flower_child in a fresh process (own process group), relay its result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_flower-child",
           mode, str(clients), str(params), str(a.reps + 1),
           "--secagg-shares", a.secagg_shares, "--secagg-threshold", a.secagg_threshold,
           "--client-cpus", str(a.client_cpus), "--ray-cpus", str(a.ray_cpus)]
    base = {"lib": "flower", "bench": "round", "mode": mode, "clients": clients, "params": params}
    log(f"flower {mode} C={clients} P={params}: starting ({a.reps + 1} rounds, "
        f"timeout {a.flower_timeout:.0f} s)")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, FL_PEER_NO_REEXEC="1"))
    lines = []

    def reader():
        for raw in proc.stdout:
            raw = raw.strip()
            if raw:
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    log(f"child printed a non-JSON line: {raw[:200]}")

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    t0 = time.perf_counter()
    try:
        rc = proc.wait(timeout=a.flower_timeout)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        # Always end the child's whole process group: it holds Ray's GCS,
        # raylet and worker processes that may outlive a killed driver.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(2 if sig == signal.SIGTERM else 0)
        proc.wait()
        th.join(timeout=5)
    wall = time.perf_counter() - t0
    progress = [l["seconds"] for l in lines if "_progress" in l]
    results = [l for l in lines if l.get("bench") == "round"]
    if results:
        emit(results[-1])
        return
    if rc is None:
        reason = (f"exceeded --flower-timeout {a.flower_timeout:.0f} s "
                  f"({len(progress)} of {a.reps + 1} rounds done)")
    else:
        errs = [l["_error"] for l in lines if "_error" in l]
        reason = f"child exited with status {rc}" + (f": {errs[-1]}" if errs else "")
    line = dict(base, skipped=reason, wall_seconds=round(wall, 1))
    if progress:
        line["round_seconds_seen"] = [round(s, 3) for s in progress]
    emit(line)


def parse_frac(s):
    """'3' -> 3 (absolute count), '0.6' -> 0.6 (fraction, Flower's float form)."""
    return float(s) if "." in s else int(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["tenseal", "flower"], help="run one peer only")
    ap.add_argument("--clients", default="10,50", help="Flower client counts (comma list)")
    ap.add_argument("--params", default="100000,1000000", help="parameter counts (comma list)")
    ap.add_argument("--reps", type=int, default=3,
                    help="timed repetitions (TenSEAL: calls after a warm-up; Flower: rounds "
                         "after a warm-up round)")
    ap.add_argument("--modes", default="fedavg,secagg+", help="Flower modes (comma list)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="TenSEAL n_threads (NVFlare leaves TenSEAL's default: all cores)")
    ap.add_argument("--encryption", default="symmetric,asymmetric",
                    help="TenSEAL encryption types: symmetric (NVFlare's) and/or asymmetric")
    ap.add_argument("--he-avg-clients", type=int, default=10,
                    help="C in the he_average line (total * 1/C)")
    # Flower's SecAgg+ example (examples/flower-secure-aggregation) uses
    # num-shares = 3, reconstruction-threshold = 2; SecAgg+ keeps the share
    # graph small (degree num_shares - 1) independent of C. A value with a
    # dot is Flower's float form (fraction of the sampled clients / shares).
    ap.add_argument("--secagg-shares", default="3",
                    help="SecAgg+ num_shares: int, or a fraction of C with a dot (e.g. 0.6)")
    ap.add_argument("--secagg-threshold", default="2",
                    help="SecAgg+ reconstruction_threshold: int, or a fraction of the shares")
    ap.add_argument("--client-cpus", type=float, default=1.0,
                    help="Ray CPUs per virtual client (1 on 2 cores: 2 clients at a time)")
    ap.add_argument("--ray-cpus", type=int, default=os.cpu_count())
    ap.add_argument("--flower-timeout", type=float, default=600.0,
                    help="seconds per (mode, C, P) simulation before it is skipped")
    ap.add_argument("--_flower-child", nargs=4, metavar=("MODE", "C", "P", "ROUNDS"),
                    help=argparse.SUPPRESS)
    a = ap.parse_args()

    _claim_stdout()

    if a._flower_child:
        mode, c, p, r = a._flower_child
        sys.exit(flower_child(mode, int(c), int(p), int(r), parse_frac(a.secagg_shares),
                              parse_frac(a.secagg_threshold), a.client_cpus, a.ray_cpus))

    if a.reps < 1:
        ap.error("--reps must be >= 1")
    params = [int(x) for x in a.params.split(",") if x]
    clients = [int(x) for x in a.clients.split(",") if x]
    t0 = time.perf_counter()
    if a.only in (None, "tenseal"):
        bench_tenseal(params, a.reps, a.threads,
                      [e for e in a.encryption.split(",") if e], a.he_avg_clients)
    if a.only in (None, "flower"):
        for mode in [m for m in a.modes.split(",") if m]:
            if mode not in ("fedavg", "secagg+", "cipherflow"):
                ap.error(f"unknown mode {mode}")
            for c in clients:
                for p in params:
                    run_flower_case(mode, c, p, a)
    log(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
