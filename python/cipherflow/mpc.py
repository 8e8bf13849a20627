"""Secret-shared computation of three parties, in tf-encrypted's style:
each party owns its data, the program is written once, and only what is
revealed -- to whom it names -- leaves the computation.

>>> import numpy as np
>>> from cipherflow import mpc
>>> with mpc.Program(parties=("model-owner", "client", "helper")) as prog:
...     w = mpc.private_input("model-owner", np.array([[0.5], [2.0]]))
...     x = mpc.private_input("client", np.array([[1.0, 3.0]]))
...     _ = mpc.reveal_to("client", x @ w, name="y")
>>> results = prog.run()            # three parties in this process
>>> np.round(results["client"]["y"], 3).tolist()
[[6.5]]
>>> results["model-owner"]
{}

Values are 64-bit fixed point with ``frac_bits`` fractional bits (16 by
default: resolution 1.5e-5, products need ``|x*y| < 2**31``); the three
parties hold replicated secret shares (honest majority, semi-honest: each
pair of parties shares a PRF key, there is no trusted dealer).

Running
    :meth:`Program.run` runs the three parties as threads of this process
    (over in-process channels, or ``tls=True`` for TLS on 127.0.0.1): for
    development, since this process then holds every party's data.
    :meth:`Program.run_party` runs this process as one party of three,
    each process on its own machine or terminal with its own data: it
    builds the same program, giving values only for the inputs it owns and
    shapes for the others (``private_input("client", shape=(1, 2))``). The
    parties compare the program's digest before any input is shared, so a
    party running a different program (say, one revealing more) stops the
    computation. :func:`setup_network` writes the certificates and network
    file for processes on one machine.

Operations
    ``+ - *`` (element-wise), ``@`` (matrix product), unary ``-``, ``.T``,
    ``sum(axis=0|1)``, scalars and public arrays as operands, and
    :func:`relu`, :func:`sigmoid` (piecewise linear), :func:`softmax` (row
    wise), :func:`argmax` (row wise; reveal only).
"""

from __future__ import annotations

import json
import threading
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._native import MpcError, ProgramError

__all__ = [
    "Program",
    "Tensor",
    "private_input",
    "private_variable",
    "reveal_to",
    "matmul",
    "add",
    "sub",
    "mul",
    "relu",
    "sigmoid",
    "softmax",
    "argmax",
    "setup_network",
    "MpcError",
    "ProgramError",
]

_current = threading.local()


def _program() -> "Program":
    stack = getattr(_current, "stack", [])
    if not stack:
        raise ProgramError("no current program: use `with mpc.Program() as prog:`")
    return stack[-1]


def _matrix(value, what: str) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise ProgramError(f"{what}: a matrix (or a vector, read as one row), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ProgramError(f"{what}: values must be finite")
    return np.ascontiguousarray(a)


class Tensor:
    """A secret-shared matrix in a :class:`Program` (a node of it)."""

    __slots__ = ("program", "node", "shape", "_integer")
    # numpy defers to our reflected operators (``array + tensor``).
    __array_ufunc__ = None

    def __init__(self, program: "Program", node: int, shape: Tuple[int, int], integer=False):
        self.program = program
        self.node = node
        self.shape = shape
        self._integer = integer

    def _other(self, other, what: str) -> "Tensor":
        if isinstance(other, Tensor):
            if other.program is not self.program:
                raise ProgramError(f"{what}: tensors of two different programs")
            return other
        return self.program.private_variable(_matrix(other, what))

    def _public(self, other) -> Optional[list]:
        """Public values as an add_public operand (1, one per column, or all)."""
        if isinstance(other, Tensor):
            return None
        a = np.asarray(other, dtype=np.float64)
        if a.size == 1:
            return [float(a.reshape(-1)[0])]
        if a.ndim == 1 and a.shape[0] == self.shape[1]:
            return a.tolist()
        if a.shape == self.shape:
            return a.reshape(-1).tolist()
        raise ProgramError(f"public operand of shape {a.shape} for a {self.shape} tensor")

    def __add__(self, other) -> "Tensor":
        pub = self._public(other)
        if pub is not None:
            return self.program._add_node(
                {"op": "add_public", "a": self.node, "values": pub}, self.shape
            )
        return add(self, self._other(other, "add"))

    __radd__ = __add__

    def __sub__(self, other) -> "Tensor":
        pub = self._public(other)
        if pub is not None:
            neg = [-v for v in pub]
            return self.program._add_node(
                {"op": "add_public", "a": self.node, "values": neg}, self.shape
            )
        return sub(self, self._other(other, "sub"))

    def __rsub__(self, other) -> "Tensor":
        return (-self) + other

    def __mul__(self, other) -> "Tensor":
        if isinstance(other, (int, float, np.integer, np.floating)):
            return self.program._add_node(
                {"op": "mul_public", "a": self.node, "c": float(other)}, self.shape
            )
        return mul(self, self._other(other, "mul"))

    __rmul__ = __mul__

    def __truediv__(self, c) -> "Tensor":
        if not isinstance(c, (int, float, np.integer, np.floating)) or c == 0:
            raise ProgramError("a tensor divides by a non-zero public scalar")
        return self * (1.0 / float(c))

    def __neg__(self) -> "Tensor":
        return self.program._add_node({"op": "neg", "a": self.node}, self.shape)

    def __matmul__(self, other) -> "Tensor":
        return matmul(self, self._other(other, "matmul"))

    def __rmatmul__(self, other) -> "Tensor":
        return matmul(self._other(other, "matmul"), self)

    @property
    def T(self) -> "Tensor":
        r, c = self.shape
        return self.program._add_node({"op": "transpose", "a": self.node}, (c, r))

    def sum(self, axis: int) -> "Tensor":
        """Sum over ``axis`` 0 (-> ``1 x cols``) or 1 (-> ``rows x 1``)."""
        r, c = self.shape
        if axis == 0:
            return self.program._add_node({"op": "sum_rows", "a": self.node}, (1, c))
        if axis == 1:
            return self.program._add_node({"op": "sum_cols", "a": self.node}, (r, 1))
        raise ProgramError("sum(axis=0) or sum(axis=1)")

    def __repr__(self) -> str:
        return f"Tensor(node={self.node}, shape={self.shape})"


class Program:
    """A computation of three named parties (ids 0, 1, 2 in order)."""

    def __init__(self, parties: Sequence[str] = ("alice", "bob", "carol")):
        parties = tuple(parties)
        if len(parties) != 3 or len(set(parties)) != 3:
            raise ProgramError("a program has three distinct party names")
        self.parties = parties
        self._nodes: list = []
        self._outputs: list = []
        self._values: Dict[int, np.ndarray] = {}
        self._owners: Dict[int, int] = {}

    # -- building -------------------------------------------------------
    def __enter__(self) -> "Program":
        if not hasattr(_current, "stack"):
            _current.stack = []
        _current.stack.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _current.stack.pop()

    def party_id(self, party: Union[str, int]) -> int:
        if isinstance(party, (int, np.integer)) and 0 <= party < 3:
            return int(party)
        try:
            return self.parties.index(party)
        except ValueError:
            raise ProgramError(f"no party {party!r} (parties: {', '.join(self.parties)})") from None

    def _add_node(self, node: dict, shape, integer=False) -> Tensor:
        self._nodes.append(node)
        return Tensor(self, len(self._nodes) - 1, tuple(shape), integer)

    def private_input(self, owner, value=None, *, shape=None) -> Tensor:
        """``owner``'s private matrix. The owner gives ``value``; in a
        process running another party, give its ``shape`` instead."""
        oid = self.party_id(owner)
        if value is not None:
            a = _matrix(value, "private_input")
            if shape is not None and tuple(shape) != a.shape:
                raise ProgramError(f"private_input: shape {tuple(shape)} but a {a.shape} value")
            shape = a.shape
        elif shape is None:
            raise ProgramError("private_input: give the owner's value, or its shape")
        rows, cols = (int(s) for s in shape)
        t = self._add_node({"op": "input", "owner": oid, "rows": rows, "cols": cols}, (rows, cols))
        self._owners[t.node] = oid
        if value is not None:
            self._values[t.node] = a
        return t

    def private_variable(self, value) -> Tensor:
        """A public initial value (zero weights, a constant), secret once
        combined with secret values."""
        a = _matrix(value, "private_variable")
        return self._add_node(
            {"op": "variable", "rows": a.shape[0], "cols": a.shape[1], "values": a.reshape(-1).tolist()},
            a.shape,
        )

    def reveal_to(self, parties, tensor: Tensor, name: Optional[str] = None) -> str:
        """Reveals ``tensor`` to ``parties`` (a name or several) at the end;
        returns the output's name."""
        if isinstance(parties, (str, int)):
            parties = [parties]
        ids = sorted({self.party_id(p) for p in parties})
        if tensor.program is not self:
            raise ProgramError("reveal_to: a tensor of another program")
        name = name or f"output{len(self._outputs)}"
        self._outputs.append({"name": name, "node": tensor.node, "to": ids})
        return name

    def to_json(self) -> str:
        """The program as data (no values of private inputs)."""
        return json.dumps({"version": 1, "nodes": self._nodes, "outputs": self._outputs})

    # -- running --------------------------------------------------------
    def run(self, *, frac_bits: int = 16, tls: bool = False) -> Dict[str, Dict[str, np.ndarray]]:
        """Runs the three parties in this process; returns each party's
        revealed outputs by party name (traffic in :attr:`last_stats`)."""
        missing = [n for n in self._owners if n not in self._values]
        if missing:
            raise ProgramError(
                f"run() needs every party's inputs; nodes {missing} have only a shape "
                "(run_party runs one party with its own)"
            )
        outs, stats = _native.mpc_run_local(self.to_json(), dict(self._values), frac_bits, tls)
        self.last_stats = dict(stats)
        return {self.parties[i]: dict(o) for i, o in enumerate(outs)}

    def run_party(
        self, party, network_file, *, frac_bits: int = 16
    ) -> Dict[str, np.ndarray]:
        """Runs this process as ``party`` of three (see :func:`setup_network`);
        only ``party``'s own input values are used. Returns what is
        revealed to it."""
        pid = self.party_id(party)
        own = {n: v for n, v in self._values.items() if self._owners.get(n) == pid}
        missing = [n for n, o in self._owners.items() if o == pid and n not in own]
        if missing:
            raise ProgramError(f"party {self.parties[pid]!r} has no value for its inputs {missing}")
        out, stats = _native.mpc_run_party(self.to_json(), pid, str(network_file), own, frac_bits)
        self.last_stats = dict(stats)
        return dict(out)


def private_input(owner, value=None, *, shape=None) -> Tensor:
    """:meth:`Program.private_input` on the current program."""
    return _program().private_input(owner, value, shape=shape)


def private_variable(value) -> Tensor:
    """:meth:`Program.private_variable` on the current program."""
    return _program().private_variable(value)


def reveal_to(parties, tensor: Tensor, name: Optional[str] = None) -> str:
    """:meth:`Program.reveal_to` on the tensor's program."""
    return tensor.program.reveal_to(parties, tensor, name)


def _same(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ProgramError(f"{what}: shapes {a.shape} and {b.shape}")


def add(a: Tensor, b: Tensor) -> Tensor:
    _same(a, b, "add")
    return a.program._add_node({"op": "add", "a": a.node, "b": b.node}, a.shape)


def sub(a: Tensor, b: Tensor) -> Tensor:
    _same(a, b, "sub")
    return a.program._add_node({"op": "sub", "a": a.node, "b": b.node}, a.shape)


def mul(a: Tensor, b: Tensor) -> Tensor:
    _same(a, b, "mul")
    return a.program._add_node({"op": "mul", "a": a.node, "b": b.node}, a.shape)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    if a.shape[1] != b.shape[0]:
        raise ProgramError(f"matmul: {a.shape} @ {b.shape}")
    return a.program._add_node({"op": "matmul", "a": a.node, "b": b.node}, (a.shape[0], b.shape[1]))


def relu(x: Tensor) -> Tensor:
    return x.program._add_node({"op": "relu", "a": x.node}, x.shape)


def sigmoid(x: Tensor) -> Tensor:
    """Piecewise-linear sigmoid (error below 1e-2)."""
    return x.program._add_node({"op": "sigmoid", "a": x.node}, x.shape)


def softmax(x: Tensor) -> Tensor:
    """Row-wise softmax."""
    return x.program._add_node({"op": "softmax", "a": x.node}, x.shape)


def argmax(x: Tensor) -> Tensor:
    """Row-wise argmax (``rows x 1`` integers; reveal only)."""
    return x.program._add_node({"op": "argmax", "a": x.node}, (x.shape[0], 1), integer=True)


def setup_network(directory, addresses: Optional[Iterable[str]] = None) -> str:
    """Writes a CA, three party certificates and keys and the network file
    into ``directory`` for parties at ``addresses`` (default: three free
    ports on 127.0.0.1); returns the network file's path. On several
    machines, give each party its own key file only."""
    if addresses is None:
        import socket

        addresses = []
        socks = []
        for _ in range(3):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            addresses.append(f"127.0.0.1:{s.getsockname()[1]}")
        for s in socks:
            s.close()
    return str(_native.mpc_write_network(str(directory), list(addresses)))
