"""Encrypted vectors on RNS-CKKS (cipherflow's own implementation), in the
style TenSEAL users know -- without "scale out of bounds".

>>> import numpy as np
>>> from cipherflow import ckks
>>> ctx = ckks.context(depth=3, precision=20)      # parameters chosen for you
>>> x = ctx.encrypt(np.array([0.5, -1.0, 2.0]))
>>> y = (x * x + x) @ np.eye(3) - 1.0               # levels and scales managed
>>> np.round(y.decrypt(), 4).tolist()
[-0.25, -1.0, 5.0]

Parameters
    :func:`context` (or :meth:`Params.for_depth`) picks the smallest
    128-bit secure parameter set for a multiplicative *depth* and a
    *precision* (bits after the point, for values below
    ``2**integer_bits``). Presets (:meth:`Params.preset`) and SEAL-style bit
    sizes (:meth:`Params.from_bit_sizes`) are there too. Below-128-bit
    parameters are refused unless ``allow_insecure=True``.

Scales
    Every level has one canonical scale and every result lands on it
    exactly, so operands of any depths add and multiply: the deeper one
    decides the level of the result.

Keys
    A :class:`Context` made here holds the secret key. ``ctx.public()`` (or
    ``ctx.serialize()``, which leaves the secret key out unless asked) is
    what a computing party receives: it encrypts and computes but cannot
    decrypt. Rotation (Galois) keys are made on demand by the key holder; a
    public context needs them made beforehand with
    :meth:`Context.generate_galois_keys`, and says which are missing.

Decryption
    :meth:`Vector.decrypt` is the key holder's own view. Values that leave
    the key holder go through :meth:`Vector.release`: the decryption is
    *flooded* (noise that hides what the ciphertext's error would reveal
    about the secret key) and counted against the context's release budget.

Pickling
    Parameters, public contexts and vectors pickle through their bytes. A
    context holding the secret key refuses to pickle: write the key only on
    purpose, with ``ctx.serialize(secret_key=True)``. A vector unpickles in
    a process where its context was created or loaded.

Heavy work runs without the GIL.
"""

from __future__ import annotations

import weakref
from typing import Iterable, NamedTuple, Optional, Sequence, Union

import numpy as np

from . import _native
from ._native import (
    CkksError,
    FormatError,
    LevelError,
    MissingKeyError,
    ParameterError,
    ReleaseError,
    ShapeError,
)

__all__ = [
    "Params",
    "Context",
    "Vector",
    "Released",
    "context",
    "vector",
    "CkksError",
    "ParameterError",
    "ShapeError",
    "LevelError",
    "MissingKeyError",
    "ReleaseError",
    "FormatError",
    "DEFAULT_RELEASE_BUDGET",
    "DEFAULT_STAT_SEC_BITS",
]

#: Releases a context allows unless created with another budget.
DEFAULT_RELEASE_BUDGET = 1024
#: Statistical security (bits) of a release's flooding.
DEFAULT_STAT_SEC_BITS = 40

ArrayLike = Union[Sequence[float], np.ndarray]

# Contexts alive in this process, by key id: where unpickled vectors find theirs.
_CONTEXTS: "weakref.WeakValueDictionary[str, Context]" = weakref.WeakValueDictionary()


def _vec(values: ArrayLike) -> np.ndarray:
    a = np.ascontiguousarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise ShapeError(f"a vector is 1-D, got shape {a.shape}")
    return a


class Params:
    """A CKKS parameter set (ring degree, primes, scale)."""

    __slots__ = ("_native",)

    def __init__(self, native: "_native.NativeParams"):
        self._native = native

    @classmethod
    def preset(cls, name: str) -> "Params":
        """A named set: ``aggregation``, ``depth2``, ``deep``, ``n13`` ... ``n16``."""
        return cls(_native.NativeParams.preset(name))

    @classmethod
    def for_depth(
        cls, depth: int, precision: int = 20, integer_bits: int = 10, min_log_n: int = 13
    ) -> "Params":
        """The smallest 128-bit secure set with ``depth`` levels keeping about
        ``precision`` bits after the point for values below ``2**integer_bits``
        (``precision + integer_bits <= 38``), with at least
        ``2**(min_log_n - 1)`` slots."""
        return cls(_native.NativeParams.for_depth(depth, precision, integer_bits, min_log_n))

    @classmethod
    def from_bit_sizes(
        cls,
        poly_modulus_degree: int,
        coeff_mod_bit_sizes: Sequence[int],
        global_scale_bits: int = 40,
        *,
        allow_insecure: bool = False,
    ) -> "Params":
        """SEAL/TenSEAL-style sizes: the ciphertext primes, then the special
        prime (e.g. ``8192, [60, 40, 40, 60], 40``). Deep chains of generic
        primes drift off the scale; prefer :meth:`for_depth` beyond ~10 levels."""
        return cls(
            _native.NativeParams.from_bit_sizes(
                poly_modulus_degree, list(coeff_mod_bit_sizes), global_scale_bits, allow_insecure
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, allow_insecure: bool = False) -> "Params":
        """Parses :meth:`to_bytes`' output."""
        return cls(_native.NativeParams.from_bytes(bytes(data), allow_insecure))

    def to_bytes(self) -> bytes:
        """The exact parameters (primes included)."""
        return self._native.to_bytes()

    @property
    def poly_modulus_degree(self) -> int:
        return 1 << self._native.log_n

    @property
    def slots(self) -> int:
        """Values per vector."""
        return self._native.slots

    @property
    def depth(self) -> int:
        """Multiplicative levels of a fresh vector."""
        return self._native.max_level

    @property
    def log_scale(self) -> int:
        return self._native.log_scale

    @property
    def log_qp(self) -> float:
        return self._native.log_qp

    @property
    def security(self) -> str:
        """The HomomorphicEncryption.org security level reached."""
        return self._native.security

    @property
    def q_bits(self) -> list:
        return self._native.q_bits

    def __repr__(self) -> str:
        return repr(self._native)

    def __reduce__(self):
        return (_params_from_bytes, (self.to_bytes(),))


def _params_from_bytes(data: bytes) -> Params:
    return Params.from_bytes(data, allow_insecure=True)


class Released(NamedTuple):
    """Values handed to another party."""

    values: np.ndarray
    #: Expected bits of precision left after flooding.
    precision_bits: float
    #: Releases left in the context's budget.
    remaining: int


class Context:
    """Keys for a parameter set. ``Context(params)`` makes a new key pair
    (with its relinearization key); :meth:`load` reads one."""

    __slots__ = ("_native", "_key_id", "__weakref__")

    def __init__(
        self,
        params: Optional[Params] = None,
        *,
        release_budget: int = DEFAULT_RELEASE_BUDGET,
        _native_ctx: "Optional[_native.NativeContext]" = None,
    ):
        if _native_ctx is None:
            if params is None:
                raise ParameterError("Context(params): give a parameter set (or use ckks.context())")
            _native_ctx = _native.NativeContext.generate(params._native, release_budget)
        self._native = _native_ctx
        self._key_id = _native_ctx.key_id()
        _CONTEXTS.setdefault(self._key_id, self)

    @classmethod
    def load(cls, data: bytes, *, allow_insecure: bool = False) -> "Context":
        """Parses :meth:`serialize`'s output (refusing below-128-bit
        parameters unless ``allow_insecure``)."""
        return cls(_native_ctx=_native.NativeContext.load(bytes(data), allow_insecure))

    def serialize(self, *, secret_key: bool = False) -> bytes:
        """The context as bytes; the secret key only when ``secret_key=True``
        (then keep the bytes as safe as the key)."""
        return self._native.serialize(secret_key)

    def public(self) -> "Context":
        """The same keys without the secret key."""
        return Context(_native_ctx=self._native.public())

    @property
    def key_id(self) -> str:
        """Hex SHA-256 of the parameters and the public key."""
        return self._key_id

    @property
    def params(self) -> Params:
        return Params(self._native.params())

    @property
    def has_secret_key(self) -> bool:
        return self._native.has_secret_key()

    @property
    def slots(self) -> int:
        return self._native.slots()

    @property
    def galois_key_count(self) -> int:
        return self._native.galois_key_count()

    @property
    def releases(self) -> tuple:
        """``(releases made, budget)``."""
        return self._native.releases()

    def generate_galois_keys(self, steps: Optional[Iterable[int]] = None) -> int:
        """Makes rotation keys for ``steps`` (default: every power of two,
        from which sums and any rotation are built). Returns how many were new."""
        return self._native.generate_galois_keys(None if steps is None else [int(s) for s in steps])

    def encrypt(self, values: ArrayLike) -> "Vector":
        """Encrypts a 1-D array of at most :attr:`slots` finite values."""
        return Vector(self._native.encrypt(_vec(values)), self)

    def vector_from_bytes(self, data: bytes) -> "Vector":
        """Parses :meth:`Vector.serialize`'s output."""
        return Vector(self._native.vector_from_bytes(bytes(data)), self)

    def __repr__(self) -> str:
        kind = "secret" if self.has_secret_key else "public"
        return f"Context({kind}, {self._native.params()!r}, key_id={self._key_id[:12]})"

    def __reduce__(self):
        if self.has_secret_key:
            raise CkksError(
                "a context holding the secret key does not pickle: use ctx.public(), or write the "
                "key on purpose with ctx.serialize(secret_key=True)"
            )
        return (_context_from_bytes, (self.serialize(),))


def _context_from_bytes(data: bytes) -> Context:
    return Context.load(data, allow_insecure=True)


def _vector_from_bytes(key_id: str, data: bytes) -> "Vector":
    ctx = _CONTEXTS.get(key_id)
    if ctx is None:
        raise CkksError(
            f"no context with key id {key_id[:12]} in this process: create or load it before "
            "unpickling its vectors"
        )
    return ctx.vector_from_bytes(data)


Operand = Union["Vector", float, int, ArrayLike]


class Vector:
    """An encrypted vector. Supports ``+ - *`` with vectors, scalars and
    arrays, ``@`` with a plaintext matrix, ``**`` with a positive integer,
    and :meth:`dot`, :meth:`sum`, :meth:`rotate`, :meth:`polyval`."""

    __slots__ = ("_native", "_ctx")
    # numpy defers to our reflected operators (``array + vector``).
    __array_ufunc__ = None

    def __init__(self, native: "_native.NativeVector", ctx: Context):
        self._native = native
        self._ctx = ctx

    def _wrap(self, native: "_native.NativeVector") -> "Vector":
        return Vector(native, self._ctx)

    @property
    def context(self) -> Context:
        return self._ctx

    def __len__(self) -> int:
        return len(self._native)

    @property
    def level(self) -> int:
        """Multiplicative levels left."""
        return self._native.level

    @property
    def scale_bits(self) -> float:
        return self._native.scale_log2

    @property
    def noise_bound_bits(self) -> Optional[float]:
        """log2 of the proven noise bound (``None`` when unknown here, e.g.
        for a vector that arrived as bytes)."""
        return self._native.noise_bound_log2

    def decrypt(self) -> np.ndarray:
        """The key holder's own view of the values. Do not hand them to
        another party: use :meth:`release`."""
        return self._native.decrypt()

    def release(
        self,
        *,
        noise_bound_log2: Optional[float] = None,
        stat_sec_bits: int = DEFAULT_STAT_SEC_BITS,
    ) -> Released:
        """Decrypts for another party: flooded, counted against the budget.
        A vector that arrived as bytes needs the ``noise_bound_log2`` of the
        computation that produced it (its bound cannot be checked here)."""
        values, precision, remaining = self._native.release(noise_bound_log2, stat_sec_bits)
        return Released(values, precision, remaining)

    def serialize(self) -> bytes:
        return self._native.serialize()

    def __reduce__(self):
        return (_vector_from_bytes, (self._ctx.key_id, self.serialize()))

    # -- arithmetic -----------------------------------------------------
    def _binary(self, other: Operand, vec, plain, scalar) -> "Vector":
        if isinstance(other, Vector):
            return self._wrap(vec(other._native))
        if isinstance(other, (int, float, np.integer, np.floating)):
            return self._wrap(scalar(float(other)))
        return self._wrap(plain(_vec(other)))

    def __add__(self, other: Operand) -> "Vector":
        n = self._native
        return self._binary(other, n.add, n.add_plain, n.add_scalar)

    __radd__ = __add__

    def __sub__(self, other: Operand) -> "Vector":
        n = self._native
        return self._binary(
            other, n.sub, lambda w: n.add_plain(-w), lambda c: n.add_scalar(-c)
        )

    def __rsub__(self, other: Operand) -> "Vector":
        return (-self) + other

    def __mul__(self, other: Operand) -> "Vector":
        n = self._native
        return self._binary(other, n.mul, n.mul_plain, n.mul_scalar)

    __rmul__ = __mul__

    def __neg__(self) -> "Vector":
        return self._wrap(self._native.neg())

    def __pow__(self, k: int) -> "Vector":
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ShapeError("a vector's power is a positive integer")
        return self._wrap(self._native.pow(int(k)))

    def __matmul__(self, matrix: ArrayLike) -> "Vector":
        m = np.ascontiguousarray(matrix, dtype=np.float64)
        if m.ndim != 2:
            raise ShapeError(f"v @ M needs a 2-D matrix, got shape {m.shape}")
        return self._wrap(self._native.matmul(m))

    mm = matmul = __matmul__

    def square(self) -> "Vector":
        return self._wrap(self._native.mul(self._native))

    def dot(self, other: Operand) -> "Vector":
        """Inner product with a vector or an array: a vector of one value."""
        if isinstance(other, Vector):
            return self._wrap(self._native.dot(other._native))
        return self._wrap(self._native.dot_plain(_vec(other)))

    def sum(self) -> "Vector":
        """The sum of the values: a vector of one value."""
        return self._wrap(self._native.sum())

    def rotate(self, k: int) -> "Vector":
        """Rotated left by ``k`` (right if negative), cyclically over the
        length padded to a power of two."""
        return self._wrap(self._native.rotate(int(k)))

    def polyval(self, coeffs: Sequence[float]) -> "Vector":
        """``sum(coeffs[i] * x**i)`` element-wise (at most 64 coefficients)."""
        return self._wrap(self._native.polyval([float(c) for c in coeffs]))

    def __repr__(self) -> str:
        return f"Vector(len={len(self)}, level={self.level})"


def context(
    depth: int = 2,
    precision: int = 20,
    *,
    integer_bits: int = 10,
    min_log_n: int = 13,
    release_budget: int = DEFAULT_RELEASE_BUDGET,
) -> Context:
    """A new key pair on the smallest secure parameters for ``depth``
    multiplications at ``precision`` bits (see :meth:`Params.for_depth`)."""
    return Context(
        Params.for_depth(depth, precision, integer_bits, min_log_n), release_budget=release_budget
    )


def vector(ctx: Context, values: ArrayLike) -> Vector:
    """``ctx.encrypt(values)`` (TenSEAL's ``ckks_vector``)."""
    return ctx.encrypt(values)
