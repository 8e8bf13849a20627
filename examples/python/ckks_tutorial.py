"""Encrypted vectors with cipherflow.ckks -- the steps of TenSEAL's
"getting started" tutorial, plus what TenSEAL leaves to you: parameters
chosen from the computation, scales that always match, a server that holds
only the public context, and decryptions for others that are flooded.

Run: python examples/python/ckks_tutorial.py
"""

import pickle

import numpy as np

from cipherflow import ckks

# 1. Parameters from what you will compute: three multiplications deep,
#    20 bits after the point, values below 2^10. 128-bit secure or refused.
ctx = ckks.context(depth=3, precision=20)
print(ctx)
print("slots per vector:", ctx.slots)

# 2. Encrypt, compute, decrypt.
x = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
y = np.array([1.0, -1.0, 2.0, -2.0, 3.0])
enc_x, enc_y = ctx.encrypt(x), ctx.encrypt(y)

result = enc_x + enc_y  # vector + vector
assert np.allclose(result.decrypt(), x + y, atol=1e-5)
result = enc_x * enc_y - 1.0  # products and constants
assert np.allclose(result.decrypt(), x * y - 1.0, atol=1e-5)
result = enc_x.dot(enc_y)  # inner product: one value
assert np.allclose(result.decrypt(), [x @ y], atol=1e-4)

# 3. Operands of different depths just work: x*y (one level used) plus x
#    (none used) -- the error TenSEAL users know as "scale out of bounds".
mixed = enc_x * enc_y + enc_x
assert np.allclose(mixed.decrypt(), x * y + x, atol=1e-5)

# 4. A plaintext matrix (a linear layer), then a polynomial activation
#    (a degree-3 approximation of the sigmoid).
w = np.random.default_rng(0).uniform(-1, 1, (5, 3))
hidden = (enc_x @ w).polyval([0.5, 0.197, 0.0, -0.004])
z = x @ w
assert np.allclose(hidden.decrypt(), 0.5 + 0.197 * z - 0.004 * z**3, atol=1e-4)
print("levels left after the layer:", hidden.level)

# 5. Client and server. The server receives the public context: it
#    computes but cannot decrypt. Rotation keys are made by the client.
ctx.generate_galois_keys()
server_ctx = ckks.Context.load(ctx.serialize())  # no secret key in these bytes
assert not server_ctx.has_secret_key
on_server = server_ctx.vector_from_bytes(enc_x.serialize())
answer = (on_server * 2.0).sum().serialize()  # the server's reply
try:
    on_server.decrypt()
    raise SystemExit("a public context must not decrypt")
except ckks.MissingKeyError as e:
    print("server:", e)
total = ctx.vector_from_bytes(answer).decrypt()
assert np.allclose(total, [2 * x.sum()], atol=1e-4)

# 6. Pickling goes through the bytes; a context with the secret key
#    refuses, so the key is only ever written on purpose.
again = pickle.loads(pickle.dumps(enc_x * enc_y))
assert np.allclose(again.decrypt(), x * y, atol=1e-5)
try:
    pickle.dumps(ctx)
except ckks.CkksError as e:
    print("pickle:", e)

# 7. Decrypting for someone else: release() floods the decryption (so the
#    values reveal nothing about the secret key) and counts it. Flooding
#    costs bits, so it wants a large scale: choose the parameters for it.
rctx = ckks.context(depth=1, precision=38, integer_bits=0, release_budget=100)
v = rctx.encrypt(np.array([0.25, -0.5]))
released = (v * 0.5).release()
print(
    "released:", np.round(released.values, 3), f"~{released.precision_bits:.0f} bits,",
    released.remaining, "releases left",
)
assert np.allclose(released.values, [0.125, -0.25], atol=0.05)
print("tutorial OK")
