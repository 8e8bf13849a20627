"""PyTorch models on encrypted inputs, and private training.

Encrypted inference
    :func:`compile` exports a ``torch.nn.Module`` to ONNX in memory and
    compiles it for CKKS: linear layers (convolutions, pooling, dense,
    batch norm, padding) become matrix products, polynomial activations run
    as they are, and ReLU, sigmoid, tanh and GELU are replaced by Chebyshev
    polynomials of degree ``approximate`` on the interval the example
    inputs reach (1.25x the largest value entering them). The result has
    two halves whose bytes travel between processes:

    * :class:`Server` holds the weights and answers encrypted inputs (every
      answer re-randomized and flooded, so it reveals the result and
      nothing of the weights' arithmetic);
    * :class:`Client` holds no weights: made from the server's published
      spec, it makes the keys, encrypts inputs and decrypts answers. Its
      secret key never leaves it (a client refuses to pickle).

    >>> enc = cipherflow.torch.compile(model, example, approximate=15)  # doctest: +SKIP
    >>> client = cipherflow.torch.Client(enc.server.spec)               # doctest: +SKIP
    >>> answer = enc.server.respond(client.eval_keys(), client.encrypt(x))  # doctest: +SKIP
    >>> logits = client.decrypt(answer)                                 # doctest: +SKIP

Private training
    :func:`make_private` turns a model, an optimizer and a data loader into
    their DP-SGD versions in Opacus' style (:class:`PrivateModule`,
    :class:`SecureSGD`, :class:`PoissonLoader`): per-sample gradients by
    ``torch.func``, clipping, Gaussian noise and Poisson sampling drawn from
    ChaCha20 seeded by the OS (never torch's generator), epsilon accounted
    by :mod:`cipherflow.dp` and the budget enforced.

    >>> model, opt, loader = cipherflow.torch.make_private(          # doctest: +SKIP
    ...     model, torch.optim.SGD(model.parameters(), lr=0.1), loader,
    ...     target_epsilon=3.0, delta=1e-5, max_grad_norm=1.0, epochs=5)
    >>> for x, y in loader:                                          # doctest: +SKIP
    ...     opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    >>> opt.epsilon(1e-5)                                            # doctest: +SKIP

The inference platform
    :func:`query` classifies inputs with a model served by ``cipherflow
    serve``, the same session as ``cipherflow query``: ``mode="mpc"`` (the
    default: the first layers on the ciphertext, the rest secret-shared
    with the creator's host, nobody sees the input or the activations),
    ``"he"`` (every layer on the ciphertext) or ``"plain-tail"`` (refused
    unless ``accept_leakage=True`` after reading what the platform
    measured it reveals). Inputs are raw: the creator's normalization is
    applied here, on the device.

    >>> cipherflow.torch.query("https://127.0.0.1:8443", "digits", images,  # doctest: +SKIP
    ...                        ca="platform-ca.pem").classes
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import List, NamedTuple, Optional, Union

import numpy as np
import torch

from . import _native
from ._native import CkksError, DpError, ModelError, PlatformError
from ._progress import track
from ._securesgd import PoissonLoader, PrivateModule, SecureSGD, make_private

__all__ = [
    "compile",
    "EncryptedModel",
    "Server",
    "Client",
    "SecureSGD",
    "PrivateModule",
    "PoissonLoader",
    "make_private",
    "query",
    "PlatformSession",
    "Answer",
    "ModelError",
    "PlatformError",
    "CkksError",
    "DpError",
]


@contextlib.contextmanager
def _quiet_logger(name: str):
    """Only errors from logger ``name`` while the block runs."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _onnx_bytes(model: torch.nn.Module, example: torch.Tensor) -> bytes:
    """The model as ONNX bytes, exported in memory on one example by
    torch's exporter built on ``torch.export`` (``dynamo=True``; the
    TorchScript exporter is deprecated). The exporter's batch of one in
    its reshapes is read as the batch axis by the importer."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet_logger("torch.onnx"):
            # The exporter reports its progress on stdout, and the operator
            # libraries it skips (torchvision's) as warnings and log lines.
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                program = torch.onnx.export(
                    model,
                    (example[:1],),
                    input_names=["input"],
                    output_names=["output"],
                    dynamo=True,
                    verbose=False,
                )
        if program is None:
            raise ModelError("torch.onnx.export returned no program")
        return program.model_proto.SerializeToString()
    except ModelError:
        raise
    except Exception as e:  # torch.export's own errors name the unsupported code
        raise ModelError(f"torch.onnx.export (torch.export) failed: {e}") from e
    finally:
        model.train(was_training)


def _rows(x, per_example: int) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.size % per_example != 0:
        raise ModelError(f"inputs of {a.size} values do not split into examples of {per_example}")
    return np.ascontiguousarray(a.reshape(-1, per_example))


def _bound(example: np.ndarray) -> float:
    """The smallest power of two at least 1.25x the largest |value| (at least 1)."""
    m = float(np.max(np.abs(example))) if example.size else 1.0
    return float(2.0 ** np.ceil(np.log2(max(1.25 * m, 1.0))))


class Server:
    """The weights' half: answers encrypted inputs."""

    __slots__ = ("_native",)

    def __init__(self, native: "_native.NativeServerHalf"):
        self._native = native

    @classmethod
    def from_bytes(cls, data: bytes) -> "Server":
        """Rebuilds the same compiled model from :meth:`to_bytes`."""
        return cls(_native.NativeServerHalf.from_bytes(bytes(data)))

    def to_bytes(self) -> bytes:
        """The model and its compile options (the weights are in these bytes)."""
        return self._native.to_bytes()

    @property
    def spec(self) -> str:
        """What a client needs (JSON, no weights)."""
        return self._native.spec_json()

    @property
    def input_shape(self) -> tuple:
        return tuple(self._native.input_shape())

    @property
    def depth(self) -> int:
        return self._native.depth()

    @property
    def approximation(self) -> Optional[tuple]:
        """``(degree, half_width)`` of the activations' approximation
        (the widest interval; see :attr:`activation_half_widths`)."""
        return self._native.approximation()

    @property
    def activation_half_widths(self) -> List[float]:
        """Half the width of each approximated activation's own interval
        ``[-w, w]``, in the model's order: 1.25× the largest value the
        example inputs sent into it."""
        return self._native.activation_half_widths()

    @property
    def privacy(self) -> str:
        """How answers leave the server (flooding, statistical security)."""
        return self._native.privacy()

    def load_keys(self, eval_keys: bytes) -> "_native.NativeEvalKeys":
        """Parses and checks a client's evaluation keys once (they are the
        bulk of a session's bytes); pass the result to :meth:`respond`."""
        return self._native.load_keys(bytes(eval_keys))

    def respond(self, eval_keys, ciphertext: bytes) -> bytes:
        """The encrypted answer to ``ciphertext`` under the client's keys
        (their bytes, or what :meth:`load_keys` returned)."""
        if isinstance(eval_keys, _native.NativeEvalKeys):
            return self._native.respond_with(eval_keys, bytes(ciphertext))
        return self._native.respond(bytes(eval_keys), bytes(ciphertext))

    def __reduce__(self):
        return (Server.from_bytes, (self.to_bytes(),))


class Client:
    """The data owner's half, made from a server's spec."""

    __slots__ = ("_native", "spec")

    def __init__(self, spec: Union[str, bytes]):
        if isinstance(spec, bytes):
            spec = spec.decode("utf-8")
        self.spec = spec
        self._native = _native.NativeClientHalf(spec)

    @property
    def input_shape(self) -> tuple:
        return tuple(self._native.input_shape())

    @property
    def batch_capacity(self) -> int:
        """Inputs per ciphertext: 1 (latency mode) or the slot count."""
        return self._native.batch_capacity()

    def eval_keys(self) -> bytes:
        """Public, relinearization and rotation keys: what the server needs."""
        return self._native.eval_keys()

    def encrypt(self, x) -> bytes:
        """Encrypts one input (latency mode) or a batch (throughput mode)."""
        per = int(np.prod(self.input_shape))
        return self._native.encrypt(_rows(x, per))

    def decrypt(self, answer: bytes) -> torch.Tensor:
        """The outputs, one row per input."""
        return torch.from_numpy(self._native.decrypt(bytes(answer)))

    def __reduce__(self):
        raise CkksError("a client holds the secret key and does not pickle; make a new one from the spec")


class EncryptedModel:
    """What :func:`compile` returns: the server half, and a convenience
    that runs inputs end to end in this process."""

    def __init__(self, server: Server):
        self.server = server
        self._client: Optional[Client] = None

    def client(self) -> Client:
        """A new client (new keys) for this model."""
        return Client(self.server.spec)

    def __call__(self, x, *, progress: bool = False) -> torch.Tensor:
        """Encrypts ``x`` (a batch), runs it on the server half and decrypts:
        for checking a compiled model against the original. ``progress``
        shows a bar (tqdm's, in Jupyter too, when installed)."""
        if self._client is None:
            self._client = self.client()
        c = self._client
        keys = self.server.load_keys(c.eval_keys())
        per = int(np.prod(c.input_shape))
        rows = _rows(x, per)
        cap = c.batch_capacity
        starts = range(0, rows.shape[0], cap)
        outs = [
            c.decrypt(self.server.respond(keys, c.encrypt(rows[i : i + cap])))
            for i in track(starts, len(starts), "encrypted batches", progress)
        ]
        return torch.cat(outs, dim=0)


class Answer(NamedTuple):
    """What :func:`query` returns for a batch of inputs."""

    #: The class of each input.
    classes: list
    #: Their names, when the creator gave them.
    class_names: Optional[list]
    #: The decrypted scores, one row per input.
    scores: torch.Tensor
    #: Milliseconds per input, end to end.
    ms: list
    #: Bytes per input: sent, received, and in the secret-shared computation.
    upload_bytes: list
    download_bytes: list
    mpc_bytes: list


class PlatformSession:
    """A session with a served model (keys made on this device and
    uploaded once); a context manager that closes it."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        ca,
        mode: str = "mpc",
        split: Optional[int] = None,
        host_fingerprint: Optional[str] = None,
        accept_leakage: bool = False,
        timeout: int = 600,
    ):
        self._native = _native.NativePlatformSession(
            url, str(ca), model, mode, split, host_fingerprint, accept_leakage, 120, timeout
        )

    @property
    def description(self) -> str:
        """What leaves this device, in words."""
        return self._native.description

    @property
    def mode(self) -> str:
        return self._native.mode

    @property
    def split(self) -> int:
        return self._native.split

    @property
    def input_shape(self) -> tuple:
        return tuple(self._native.input_shape)

    @property
    def key_bytes(self) -> int:
        return self._native.key_bytes

    def classify(self, inputs, *, progress: bool = False) -> Answer:
        """Classifies raw inputs: one, or a batch along the first axis
        (``progress``: a bar, tqdm's when installed)."""
        per = int(np.prod(self.input_shape))
        if isinstance(inputs, torch.Tensor):
            inputs = inputs.detach().cpu().numpy()
        a = np.asarray(inputs, dtype=np.float32)
        if a.size % per != 0:
            raise PlatformError(f"inputs of {a.size} values for a model taking {self.input_shape}")
        rows = np.ascontiguousarray(a.reshape(-1, per))
        out = []
        for i in track(range(rows.shape[0]), rows.shape[0], "queries", progress):
            out.extend(self._native.classify(rows[i : i + 1]))
        names = self._native.class_names
        classes = [o[0] for o in out]
        return Answer(
            classes=classes,
            class_names=[names[c] if c < len(names) else str(c) for c in classes] if names else None,
            scores=torch.from_numpy(np.stack([o[1] for o in out])) if out else torch.empty(0),
            ms=[o[2] for o in out],
            upload_bytes=[o[3] for o in out],
            download_bytes=[o[4] for o in out],
            mpc_bytes=[o[5] for o in out],
        )

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> "PlatformSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def query(url: str, model: str, inputs, *, ca, mode: str = "mpc", progress: bool = False, **kw) -> Answer:
    """Opens a session with ``model`` on the platform at ``url`` (its CA
    certificate ``ca``), classifies ``inputs`` and closes it. Keyword
    arguments: ``split``, ``host_fingerprint``, ``accept_leakage``,
    ``timeout`` (see :class:`PlatformSession`), ``progress``."""
    with PlatformSession(url, model, ca=ca, mode=mode, **kw) as s:
        return s.classify(inputs, progress=progress)


def compile(
    model: torch.nn.Module,
    example_input: torch.Tensor,
    approximate: Optional[int] = None,
    *,
    mode: str = "latency",
    input_bound: Optional[float] = None,
) -> EncryptedModel:
    """Compiles ``model`` for encrypted inference.

    ``example_input``: a batch shaped as the model takes it; its first
    example fixes the input shape, all of them the approximation interval
    and (by default) the input bound the client clamps to.
    ``approximate``: the degree of the Chebyshev polynomials replacing
    ReLU, sigmoid, tanh and GELU (``None``: a model with them is refused,
    the layer named). ``mode``: ``"latency"`` (one input per ciphertext) or
    ``"throughput"`` (one example per slot, thousands at once).
    """
    if mode not in ("latency", "throughput"):
        raise ModelError(f"mode is 'latency' or 'throughput', not {mode!r}")
    if not isinstance(example_input, torch.Tensor):
        example_input = torch.as_tensor(example_input, dtype=torch.float32)
    if example_input.dim() < 2:
        raise ModelError("example_input is a batch: its first dimension counts examples")
    onnx = _onnx_bytes(model, example_input.float())
    flat = example_input.detach().cpu().float().reshape(example_input.shape[0], -1).numpy()
    bound = input_bound if input_bound is not None else _bound(flat)
    native = _native.NativeServerHalf.compile(
        onnx, np.ascontiguousarray(flat, dtype=np.float32), approximate, mode == "throughput", bound
    )
    return EncryptedModel(Server(native))
