"""The optimizer and learning-rate schedule a :class:`~cifarzoo.training.Recipe` asks for: SGD
with no weight decay on norms and biases (:func:`param_groups`), or Muon for the convolution
filters (:class:`MuonSGD`, :func:`muon_param_groups`), on an :class:`LRSchedule`.

Muon (Jordan et al., 2024) replaces a weight matrix's momentum update by the nearest
semi-orthogonal matrix, computed with a few Newton-Schulz iterations, so that every direction of
the update moves by the same amount instead of the few dominant ones. Applied to a convolution's
filters seen as a ``[out_channels, in_channels * kh * kw]`` matrix, it trains CIFAR ResNets in
markedly fewer epochs (the airbench speed-runs use it the same way). ``torch.optim.Muon`` takes
2-D parameters only, hence :class:`MuonSGD`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .recipe import Recipe, ScheduleKind

__all__ = [
    "LRSchedule",
    "MuonSGD",
    "make_optimizer",
    "make_schedule",
    "muon_param_groups",
    "orthogonalize",
    "param_groups",
]


@dataclass
class LRSchedule:
    """Per-step multiplier of the peak learning rate: linear warm-up, then ``kind`` down to 0.

    ``onecycle``: linear decay (a triangle); ``cosine``: half cosine; ``constant``: flat.
    """

    kind: ScheduleKind
    warmup_steps: int
    total_steps: int

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:  # the first step already has a positive rate
            return (step + 1) / self.warmup_steps
        t = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        if self.kind == "onecycle":
            return 1.0 - t
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two SGD groups: weight decay on weights with ``ndim > 1``, none on norms and biases."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def muon_param_groups(
    model: nn.Module, *, lr: float, muon_lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """Groups for :class:`MuonSGD`: :func:`param_groups` with the convolution filters (4-D) of
    its decayed group moved into a Muon group at ``muon_lr``; the rest keep SGD at ``lr``."""
    decayed, no_decay = param_groups(model, weight_decay)
    groups = [
        # no weight decay: Muon keeps the filters' norm fixed instead
        {
            "params": [p for p in decayed["params"] if p.ndim == 4],
            "lr": muon_lr,
            "muon": True,
            "weight_decay": 0.0,
        },
        {**decayed, "params": [p for p in decayed["params"] if p.ndim != 4], "lr": lr},
        {**no_decay, "lr": lr},
    ]
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD (no weight decay on norms and biases, :func:`param_groups`), or
    :class:`MuonSGD` for the convolution filters when ``muon_lr > 0``.

    timm's ``param_groups_weight_decay`` makes the same split in another group order, which
    would change the optimizer state of existing checkpoints, so cifarzoo keeps its own."""
    if recipe.muon_lr > 0:
        groups = muon_param_groups(
            model, lr=recipe.lr, muon_lr=recipe.muon_lr, weight_decay=recipe.weight_decay
        )
        return MuonSGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    return torch.optim.SGD(
        param_groups(model, recipe.weight_decay),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
    )


def make_schedule(recipe: Recipe, steps_per_epoch: int) -> LRSchedule:
    """The :class:`LRSchedule` of ``recipe`` over its epochs of ``steps_per_epoch`` steps; the
    warm-up (``warmup_epochs``) takes at most half of them."""
    total = recipe.epochs * steps_per_epoch
    warmup = min(total // 2, round(recipe.warmup_epochs * steps_per_epoch))
    return LRSchedule(recipe.schedule, warmup, total)


# The quintic Newton-Schulz coefficients of Keller Jordan's Muon (also torch.optim.Muon's).
_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(matrix: Tensor, steps: int = 5) -> Tensor:
    """Approximately ``U @ V.T`` for ``matrix = U @ S @ V.T``, by quintic Newton-Schulz
    iterations in float32: after 5 steps, singular values of at least 1/100 of the largest end
    up between about 0.6 and 1.25 (Muon needs no more precision than that).
    """
    if matrix.ndim != 2:
        raise ValueError(f"orthogonalize needs a 2-D matrix, got shape {tuple(matrix.shape)}")
    a, b, c = _NS_COEFFICIENTS
    x: Tensor = matrix.float()
    wide = x.size(0) <= x.size(1)
    if not wide:
        x = x.transpose(0, 1)
    x = x / x.norm().clamp(min=1e-7)  # spectral norm <= Frobenius norm = 1
    for _ in range(steps):
        gram = x @ x.transpose(0, 1)
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x if wide else x.transpose(0, 1)


class MuonSGD(torch.optim.Optimizer):
    """SGD with (Nesterov) momentum and coupled weight decay, as :class:`torch.optim.SGD`, except
    in parameter groups marked ``"muon": True``, whose tensors (convolution filters, any
    ``ndim >= 2``) take Muon steps:

    1. the momentum buffer is updated as in SGD (Nesterov look-ahead included);
    2. the filter is rescaled to Frobenius norm ``sqrt(out_channels)`` (about 1 per filter);
    3. it moves by ``lr`` times the orthogonalized update (:func:`orthogonalize` of the update
       reshaped to ``[out_channels, -1]``).

    Step 2 replaces weight decay (which Muon groups ignore) and fixes the size of a step relative
    to the filter, so ``lr`` is the fraction of a filter's norm one step moves. Rescaling does not
    change a network whose convolutions feed batch norms; without one after it, a filter's scale
    is lost.
    """

    def __init__(
        self,
        params: Iterable[dict[str, Any]],
        *,
        lr: float,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"need lr > 0, momentum >= 0 and weight_decay >= 0, got lr={lr}, "
                f"momentum={momentum}, weight_decay={weight_decay}"
            )
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "nesterov": nesterov,
            "weight_decay": weight_decay,
            "muon": False,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["muon"] and any(p.ndim < 2 for p in group["params"]):
                raise ValueError(
                    "Muon groups take matrices and filters only (ndim >= 2); put biases and "
                    "norm weights in an SGD group (see muon_param_groups)"
                )

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, muon = group["lr"], group["momentum"], group["muon"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"] and not muon:
                    grad = grad.add(p, alpha=group["weight_decay"])
                update = grad
                if momentum:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = grad.detach().clone()
                    else:
                        buf.mul_(momentum).add_(grad)
                    update = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
                if muon:
                    p.mul_(math.sqrt(p.shape[0]) / p.norm().clamp(min=1e-12))
                    direction = orthogonalize(update.reshape(p.shape[0], -1))
                    p.add_(direction.reshape(p.shape).to(p.dtype), alpha=-lr)
                else:
                    p.add_(update, alpha=-lr)
        return loss
