"""DP-SGD for PyTorch (``cipherflow.torch.SecureSGD`` and ``make_private``):
per-sample gradients by ``torch.func``, clipping, Gaussian noise and
Poisson sampling from ChaCha20 seeded by the operating system (in Rust),
accounting by ``cipherflow.dp``, the budget enforced."""

from __future__ import annotations

import math
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from torch.func import functional_call, vmap
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.dataloader import default_collate

from . import _native, dp
from ._native import DpError

__all__ = ["PoissonLoader", "PrivateModule", "SecureSGD", "make_private"]

_NORMS = (
    torch.nn.BatchNorm1d,
    torch.nn.BatchNorm2d,
    torch.nn.BatchNorm3d,
    torch.nn.SyncBatchNorm,
)


class PoissonLoader:
    """Batches in which every example of ``dataset`` is included
    independently with probability ``sample_rate`` (the sampling DP-SGD's
    privacy amplification assumes), ``steps_per_epoch`` of them per epoch
    (default ``1 / sample_rate``). Batch sizes vary and may be 0 (an empty
    batch is still a step: the noise is added all the same). The sample is
    drawn from ChaCha20 seeded by the operating system."""

    def __init__(
        self,
        dataset: Dataset,
        sample_rate: float,
        *,
        collate_fn: Optional[Callable] = None,
        steps_per_epoch: Optional[int] = None,
    ):
        if not 0 < sample_rate <= 1:
            raise DpError(f"sample_rate must be in (0, 1], got {sample_rate}")
        self.dataset = dataset
        self.sample_rate = float(sample_rate)
        self.collate_fn = collate_fn or default_collate
        self.steps_per_epoch = steps_per_epoch or max(1, round(1 / sample_rate))
        self._empty = None
        plain = collate_fn is None or collate_fn is default_collate
        self._tensors = (
            dataset.tensors if plain and isinstance(dataset, torch.utils.data.TensorDataset) else None
        )

    def __len__(self) -> int:
        return self.steps_per_epoch

    def _empty_batch(self):
        if self._empty is None:
            one = self.collate_fn([self.dataset[0]])
            self._empty = _slice(one, 0)
        return self._empty

    def __iter__(self) -> Iterator:
        n = len(self.dataset)
        for _ in range(self.steps_per_epoch):
            idx = _native.dp_poisson_sample(n, self.sample_rate)
            if len(idx) == 0:
                yield self._empty_batch()
            elif self._tensors is not None:
                # A TensorDataset with the default collation: one gather.
                t = torch.from_numpy(idx)
                yield [x[t] for x in self._tensors]
            else:
                yield self.collate_fn([self.dataset[int(i)] for i in idx])


def _slice(batch, k: int):
    if isinstance(batch, torch.Tensor):
        return batch[:k]
    if isinstance(batch, (list, tuple)):
        return type(batch)(_slice(b, k) for b in batch)
    if isinstance(batch, dict):
        return {key: _slice(v, k) for key, v in batch.items()}
    return batch


class PrivateModule(torch.nn.Module):
    """Wraps a model so that :class:`SecureSGD` can compute per-sample
    gradients: the training forward runs each example on its own view of
    the parameters (``torch.func.vmap`` over views expanded without a copy),
    so the caller's ``backward()`` leaves each example's gradient in one
    pass -- for any loss that is a sum or mean of per-example terms. A loss
    term on the parameters themselves (weight decay in the loss) has no
    per-example form: use the optimizer's ``weight_decay``."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        bad = [name for name, m in module.named_modules() if isinstance(m, _NORMS)]
        if bad:
            raise DpError(
                f"batch normalization mixes the examples of a batch ({', '.join(bad)}): "
                "per-example gradients do not exist; use GroupNorm or LayerNorm"
            )
        self._module = module
        self._records: list = []

    @property
    def module(self) -> torch.nn.Module:
        return self._module

    def forward(self, x, *args, **kwargs):
        if args or kwargs:
            raise DpError("a private module takes one input tensor")
        if not (torch.is_grad_enabled() and self.training):
            return self._module(x)
        b = x.shape[0]
        if b == 0:
            # An empty Poisson batch: nothing to record, the step adds noise.
            with torch.no_grad():
                return self._module(x).detach().requires_grad_(True)
        # Each example gets its own view of the parameters (expanded, no
        # copy): the caller's backward then leaves each example's gradient
        # in the views' .grad, in one pass.
        mod = self._module
        leaves = {
            n: p.detach().unsqueeze(0).expand(b, *p.shape).requires_grad_(True)
            for n, p in mod.named_parameters()
            if p.requires_grad
        }
        frozen = {n: p for n, p in mod.named_parameters() if not p.requires_grad}
        buffers = dict(mod.named_buffers())

        def one(p, xi):
            return functional_call(mod, ({**p, **frozen}, buffers), (xi.unsqueeze(0),)).squeeze(0)

        out = vmap(one, randomness="different")(leaves, x)
        self._records.append({"leaves": leaves, "batch": b})
        return out

    def _take(self):
        recs = [r for r in self._records if any(v.grad is not None for v in r["leaves"].values())]
        self._records = []
        if len(recs) > 1:
            raise DpError(
                "more than one forward pass contributed to this step's gradient; "
                "SecureSGD takes one batch per step"
            )
        return recs[0] if recs else None


class SecureSGD(torch.optim.Optimizer):
    """DP-SGD around any torch optimizer (SGD, Adam ...): per-sample
    gradients clipped to ``max_grad_norm``, summed, noised with
    ``N(0, (noise_multiplier * max_grad_norm)^2)`` per coordinate, divided
    by the *expected* batch size, then handed to the wrapped optimizer.
    Every step -- an empty batch's too -- is one Poisson-subsampled Gaussian
    mechanism for the accountant; ``max_steps`` (set by
    :func:`make_private` from the target epsilon) is enforced."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        module: PrivateModule,
        *,
        noise_multiplier: float,
        max_grad_norm: float,
        sample_rate: float,
        expected_batch_size: int,
        loss_reduction: str = "mean",
        accountant: str = "rdp",
        max_steps: Optional[int] = None,
    ):
        if not isinstance(module, PrivateModule):
            raise DpError("SecureSGD needs the PrivateModule the model was wrapped in")
        if not (noise_multiplier > 0 and math.isfinite(noise_multiplier)):
            raise DpError(f"noise_multiplier must be positive, got {noise_multiplier}")
        if not (max_grad_norm > 0 and math.isfinite(max_grad_norm)):
            raise DpError(f"max_grad_norm must be positive, got {max_grad_norm}")
        if not 0 < sample_rate <= 1:
            raise DpError(f"sample_rate must be in (0, 1], got {sample_rate}")
        if expected_batch_size < 1:
            raise DpError("expected_batch_size must be at least 1")
        if loss_reduction not in ("mean", "sum"):
            raise DpError("loss_reduction is 'mean' or 'sum'")
        if accountant not in dp.ACCOUNTANTS:
            raise DpError(f"accountant is one of {dp.ACCOUNTANTS}")
        self.original_optimizer = optimizer
        self.module = module
        self.noise_multiplier = float(noise_multiplier)
        self.max_grad_norm = float(max_grad_norm)
        self.sample_rate = float(sample_rate)
        self.expected_batch_size = int(expected_batch_size)
        self.loss_reduction = loss_reduction
        self.accountant = accountant
        self.max_steps = max_steps
        self.steps = 0

    # The wrapped optimizer's state, so LR schedulers and checkpoints work.
    @property
    def param_groups(self):
        return self.original_optimizer.param_groups

    @param_groups.setter
    def param_groups(self, v):
        self.original_optimizer.param_groups = v

    @property
    def state(self):
        return self.original_optimizer.state

    @property
    def defaults(self):
        return self.original_optimizer.defaults

    def state_dict(self):
        return self.original_optimizer.state_dict()

    def load_state_dict(self, d):
        self.original_optimizer.load_state_dict(d)

    def zero_grad(self, set_to_none: bool = True):
        self.original_optimizer.zero_grad(set_to_none=set_to_none)

    def _per_sample(self, rec) -> dict:
        """Each example's gradient of its own loss term."""
        b = rec["batch"]
        scale = b if self.loss_reduction == "mean" else 1
        out = {}
        for n, leaf in rec["leaves"].items():
            g = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
            out[n] = g * scale
        return out

    def _clipped_sum(self, rec) -> dict:
        """The sum over the batch of each example's gradient clipped to
        ``max_grad_norm`` (zeros for an empty batch)."""
        named = [(n, p) for n, p in self.module.module.named_parameters() if p.requires_grad]
        if rec is None:
            return {n: torch.zeros_like(p) for n, p in named}
        per = self._per_sample(rec)
        flat = torch.cat([per[n].reshape(per[n].shape[0], -1) for n, _ in named], dim=1)
        norms = flat.norm(dim=1)
        factor = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        return {n: torch.einsum("i,i...->...", factor, per[n]).detach() for n, _ in named}

    @torch.no_grad()
    def step(self, closure=None):
        if self.max_steps is not None and self.steps >= self.max_steps:
            raise DpError(
                f"privacy budget spent: {self.steps} steps were planned for the target epsilon "
                "(make_private with more epochs, or a larger target)"
            )
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        summed = self._clipped_sum(self.module._take())
        named = [(n, p) for n, p in self.module.module.named_parameters() if p.requires_grad]
        std = self.noise_multiplier * self.max_grad_norm
        total = sum(p.numel() for _, p in named)
        noise = torch.from_numpy(_native.dp_gaussian_noise(total, std))
        offset = 0
        for n, p in named:
            k = p.numel()
            z = noise[offset : offset + k].reshape(p.shape).to(p.dtype)
            offset += k
            p.grad = (summed[n] + z) / self.expected_batch_size
        self.original_optimizer.step()
        self.steps += 1
        return loss

    def epsilon(self, delta: float) -> float:
        """epsilon spent so far at ``delta``."""
        if self.steps == 0:
            return 0.0
        return dp.epsilon(self.sample_rate, self.noise_multiplier, self.steps, delta, self.accountant).epsilon


def make_private(
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: DataLoader,
    *,
    max_grad_norm: float,
    delta: float,
    epochs: int,
    target_epsilon: Optional[float] = None,
    noise_multiplier: Optional[float] = None,
    accountant: str = "rdp",
    loss_reduction: str = "mean",
):
    """Opacus' entry point: returns ``(model, optimizer, loader)`` for
    DP-SGD. The loader samples each example with probability
    ``batch_size / len(dataset)``; with ``target_epsilon``, the noise
    multiplier is the smallest that keeps ``epochs`` epochs within
    ``(target_epsilon, delta)`` (by the chosen accountant), and the
    optimizer refuses any step beyond them."""
    if (target_epsilon is None) == (noise_multiplier is None):
        raise DpError("give exactly one of target_epsilon and noise_multiplier")
    dataset = data_loader.dataset
    n = len(dataset)
    batch = data_loader.batch_size or 1
    if n < 1 or batch > n:
        raise DpError(f"a batch size of {batch} for {n} examples")
    q = batch / n
    steps_per_epoch = max(1, round(1 / q))
    steps = int(epochs) * steps_per_epoch
    if target_epsilon is not None:
        noise_multiplier = dp.calibrate_sigma(q, steps, delta, target_epsilon, accountant)
        max_steps = steps
    else:
        max_steps = None
    private = PrivateModule(module)
    opt = SecureSGD(
        optimizer,
        private,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        sample_rate=q,
        expected_batch_size=batch,
        loss_reduction=loss_reduction,
        accountant=accountant,
        max_steps=max_steps,
    )
    loader = PoissonLoader(
        dataset, q, collate_fn=data_loader.collate_fn, steps_per_epoch=steps_per_epoch
    )
    return private, opt, loader
