"""cipherflow.ckks against numpy, with stated precision; typed errors;
public contexts; bytes and pickling; flooded release; the GIL released."""

import pickle
import threading
import time

import numpy as np
import pytest

import cipherflow
from cipherflow import ckks


def bits(got, want):
    """Bits of precision: -log2 of the largest absolute error."""
    err = float(np.max(np.abs(np.asarray(got) - np.asarray(want))))
    return -np.log2(max(err, 1e-300))


@pytest.fixture(scope="module")
def ctx():
    return ckks.context(depth=4, precision=20)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    return rng.uniform(-1, 1, 200), rng.uniform(-1, 1, 200), rng.uniform(-1, 1, 200)


def test_parameters_are_chosen_secure_and_presets_work():
    p = ckks.Params.for_depth(4, precision=25)
    assert p.depth == 4 and p.security in ("128-bit", "192-bit", "256-bit")
    assert p.poly_modulus_degree >= 8192 and p.slots == p.poly_modulus_degree // 2
    assert ckks.Params.preset("n13").depth == 2
    assert ckks.Params.from_bit_sizes(8192, [60, 40, 40, 60], 40).q_bits == [60, 40, 40]
    with pytest.raises(ckks.ParameterError, match="insecure"):
        ckks.Params.from_bit_sizes(4096, [60, 40, 40, 60], 40)
    assert ckks.Params.from_bit_sizes(4096, [60, 40, 40, 60], 40, allow_insecure=True).depth == 2
    with pytest.raises(ckks.ParameterError, match="precision"):
        ckks.Params.for_depth(2, precision=50, integer_bits=20)
    with pytest.raises(ValueError):
        ckks.Params.preset("n99")
    q = pickle.loads(pickle.dumps(p))
    assert q.q_bits == p.q_bits and q.to_bytes() == p.to_bytes()


def test_arithmetic_matches_numpy(ctx, data):
    x, y, z = data
    vx, vy, vz = ctx.encrypt(x), ctx.encrypt(y), ctx.encrypt(z)
    assert len(vx) == 200 and vx.level == 4
    cases = {
        "x": (vx, x),
        "x+y": (vx + vy, x + y),
        "x-y": (vx - vy, x - y),
        "-x": (-vx, -x),
        "x+arr": (vx + y, x + y),
        "arr+x": (y + vx, x + y),
        "x-arr": (vx - y, x - y),
        "arr-x": (y - vx, y - x),
        "x+2.5": (vx + 2.5, x + 2.5),
        "1-x": (1 - vx, 1 - x),
        "x*y": (vx * vy, x * y),
        "x*arr": (vx * y, x * y),
        "3*x": (3 * vx, 3 * x),
        "x*x+z": (vx * vx + vz, x * x + z),
        "(x*y)*z+x": ((vx * vy) * vz + vx, x * y * z + x),
        "x**5": (vx**5, x**5),
        "x**16": (vx**16, x**16),
        "square": (vx.square(), x * x),
        "poly": (vx.polyval([0.5, 0.197, 0, -0.004]), 0.5 + 0.197 * x - 0.004 * x**3),
    }
    for name, (enc, want) in cases.items():
        assert bits(enc.decrypt(), want) > 20, name
    assert (vx**16).level == 0
    with pytest.raises(ckks.LevelError):
        (vx**16) * vx
    s = vx.sum()
    assert len(s) == 1 and bits(s.decrypt(), [x.sum()]) > 15
    assert bits(vx.dot(vy).decrypt(), [x @ y]) > 15
    assert bits(vx.dot(y).decrypt(), [x @ y]) > 15
    padded = np.concatenate([x, np.zeros(56)])
    assert bits(vx.rotate(3).decrypt(), np.roll(padded, -3)[:200]) > 20
    assert bits(vx.rotate(-7).decrypt(), np.roll(padded, 7)[:200]) > 20


@pytest.mark.parametrize("rows,cols", [(64, 64), (5, 3), (200, 10), (10, 300)])
def test_matrix_products(ctx, rows, cols):
    rng = np.random.default_rng(rows * 1000 + cols)
    x = rng.uniform(-1, 1, rows)
    m = rng.uniform(-1, 1, (rows, cols))
    out = ctx.encrypt(x) @ m
    assert len(out) == cols
    assert bits(out.decrypt(), x @ m) > 15
    # Fortran-ordered and integer matrices are accepted too.
    assert bits((ctx.encrypt(x) @ np.asfortranarray(m)).decrypt(), x @ m) > 15


def test_errors_are_typed_with_the_rust_message(ctx, data):
    x, _, _ = data
    vx = ctx.encrypt(x)
    with pytest.raises(ckks.ShapeError, match="200"):
        vx + ctx.encrypt(x[:10])
    with pytest.raises(ckks.ShapeError):
        vx * np.ones(3)
    with pytest.raises(ckks.ShapeError):
        vx @ np.ones((3, 3))
    with pytest.raises(ckks.ShapeError):
        ctx.encrypt(np.ones((2, 2)))
    with pytest.raises(ckks.ShapeError):
        ctx.encrypt(np.ones(ctx.slots + 1))
    with pytest.raises(ckks.CkksError, match="finite"):
        ctx.encrypt([1.0, float("nan")])
    with pytest.raises(ckks.ShapeError):
        vx ** 0
    # Every one of them is a CipherflowError.
    assert issubclass(ckks.ShapeError, cipherflow.CipherflowError)
    assert issubclass(ckks.MissingKeyError, ckks.CkksError)
    # Vectors of two contexts do not mix.
    other = ckks.context(depth=4, precision=20)
    with pytest.raises(TypeError, match="different contexts"):
        vx + other.encrypt(x)


def test_a_public_context_computes_and_cannot_decrypt(ctx, data):
    x, _, _ = data
    owner = ckks.context(depth=2, precision=20)
    owner.generate_galois_keys()
    server = ckks.Context.load(owner.serialize())
    assert not server.has_secret_key and server.key_id == owner.key_id
    enc = server.vector_from_bytes(owner.encrypt(x).serialize())
    with pytest.raises(ckks.MissingKeyError):
        enc.decrypt()
    with pytest.raises(ckks.MissingKeyError):
        server.generate_galois_keys([3])
    with pytest.raises(ckks.MissingKeyError):
        server.serialize(secret_key=True)
    # The server computes a sum and a rotation from the power-of-two keys.
    result = (enc * 2.0).sum() + 1.0
    back = owner.vector_from_bytes(result.serialize())
    assert bits(back.decrypt(), [2 * x.sum() + 1]) > 12
    # A matrix product needs keys the owner did not make: the error names them.
    with pytest.raises(ckks.MissingKeyError, match="generate_galois_keys"):
        enc @ np.ones((200, 50))


def test_bytes_and_pickles_round_trip_and_hostile_bytes_are_refused(ctx, data):
    x, _, _ = data
    v = ctx.encrypt(x)
    b = v.serialize()
    assert bits(ctx.vector_from_bytes(b).decrypt(), x) > 20
    w = pickle.loads(pickle.dumps(v * 2))
    assert bits(w.decrypt(), 2 * x) > 20
    for cut in (0, 5, 10, len(b) // 2, len(b) - 1):
        with pytest.raises(ckks.FormatError):
            ctx.vector_from_bytes(b[:cut])
    with pytest.raises(ckks.FormatError):
        ctx.vector_from_bytes(b + b"\0")
    with pytest.raises(ckks.FormatError):
        ckks.Context.load(b"CFVC\x01" + bytes(100))
    # A context with the secret key refuses to pickle; a public one pickles.
    with pytest.raises(ckks.CkksError, match="secret key"):
        pickle.dumps(ctx)
    pub = pickle.loads(pickle.dumps(ctx.public()))
    assert not pub.has_secret_key
    # The secret context round-trips only on purpose.
    again = ckks.Context.load(ctx.serialize(secret_key=True))
    assert again.has_secret_key and bits(again.vector_from_bytes(b).decrypt(), x) > 20


def test_release_is_flooded_and_budgeted():
    c = ckks.context(depth=1, precision=38, integer_bits=0, release_budget=2)
    x = np.linspace(-0.5, 0.5, 64)
    v = c.encrypt(x)
    own = v.decrypt()
    r = v.release()
    assert r.remaining == 1 and r.precision_bits > 0
    # The flooding is there: released values are far noisier than the owner's view.
    assert bits(own, x) > bits(r.values, own) + 15
    arrived = c.vector_from_bytes(v.serialize())
    with pytest.raises(ckks.ReleaseError, match="noise_bound_log2"):
        arrived.release()
    arrived.release(noise_bound_log2=30)
    with pytest.raises(ckks.ReleaseError, match="budget"):
        v.release()
    assert c.releases == (2, 2)


def test_heavy_calls_release_the_gil():
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    params = ckks.Params.for_depth(12, precision=20)  # N = 2^15
    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        before = counter[0]
        start = time.perf_counter()
        ckks.Context(params)  # one native call: key generation
        elapsed = time.perf_counter() - start
        during = counter[0] - before
    finally:
        stop.set()
        t.join()
    assert elapsed > 0.05, elapsed
    # Holding the GIL, the spinning thread would barely run during the call.
    assert during > 10_000, (during, elapsed)
