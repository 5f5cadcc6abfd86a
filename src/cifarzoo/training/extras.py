"""The optional parts of a training step, as pieces the loop calls: SAM, gradient clipping and
the EMA of the weights.

Each is a :class:`StepExtra`; the loop calls every extra's :meth:`~StepExtra.after_backward`
once the batch's gradients exist (in the order given) and :meth:`~StepExtra.after_update`
after the optimizer and scheduler stepped. Gradient norms are recorded without an extra, by
:class:`cifarzoo.instrument.GradientFlowRecorder` (an optimizer hook); distillation is a change
of the targets (:mod:`cifarzoo.training.distill`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .recipe import Recipe

__all__ = [
    "Backward",
    "GradientClipping",
    "ModelEma",
    "SharpnessAware",
    "StepExtra",
    "frozen_norm_statistics",
    "sam_ascent",
    "step_extras",
]


@dataclass
class Backward:
    """What an extra may use between the backward pass and the optimizer step: the bare
    ``model`` (its ``.grad`` are the batch's) and ``again``, which recomputes the gradients
    on the same batch at the current weights, batch-norm statistics left untouched."""

    model: nn.Module
    again: Callable[[], None]


class StepExtra:
    """A piece of every training step; both hooks do nothing unless overridden."""

    def after_backward(self, step: Backward) -> None:
        """The gradients of the batch are in place; the weights have not moved yet."""

    def after_update(self, model: nn.Module) -> None:
        """The optimizer and the learning-rate scheduler have stepped."""


@torch.no_grad()
def sam_ascent(model: nn.Module, rho: float) -> list[tuple[Tensor, Tensor]]:
    """Move every parameter that has a gradient by ``rho * grad / ||grad||`` (the global norm
    over all of them): SAM's step to the worst nearby weights. Returns ``(param, move)`` pairs so
    that the caller can step back."""
    params: list[Tensor] = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return []
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = rho / (norm + 1e-12)
    moves = [g * scale for g in grads]
    torch._foreach_add_(params, moves)
    return list(zip(params, moves, strict=True))


@contextlib.contextmanager
def frozen_norm_statistics(model: nn.Module) -> Iterator[None]:
    """Batch norms keep their running statistics during a forward pass in training mode (SAM's
    second pass must not count the batch twice); they still normalize with the batch's own."""
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    saved = [
        (m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
        for m in norms
    ]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if tracked is not None and m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(tracked)


class SharpnessAware(StepExtra):
    """SAM: replace the gradients with those at the weights moved ``rho`` along the normalized
    gradient; the weights are moved back before the optimizer step."""

    def __init__(self, rho: float) -> None:
        self.rho = rho

    def after_backward(self, step: Backward) -> None:
        moves = sam_ascent(step.model, self.rho)
        step.again()
        with torch.no_grad():
            for p, move in moves:
                p.sub_(move)


class GradientClipping(StepExtra):
    """Clip the global gradient norm to ``max_norm``."""

    def __init__(self, max_norm: float) -> None:
        self.max_norm = max_norm

    def after_backward(self, step: Backward) -> None:
        nn.utils.clip_grad_norm_(step.model.parameters(), self.max_norm)


class ModelEma(StepExtra):
    """Exponential moving average of a model's parameters and float buffers, updated after
    every step.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early
    averages are not dominated by the random initialization (timm's ``ModelEmaV3`` warms up
    differently, so it would not resume the runs made with this one bit-identically).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def after_update(self, model: nn.Module) -> None:
        self.update(model)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_f, new_f = [], []
        for e, m in zip(
            self.module.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if e.dtype.is_floating_point:
                ema_f.append(e)
                new_f.append(m.detach())
            else:
                e.copy_(m)
        if ema_f:
            torch._foreach_lerp_(ema_f, new_f, 1.0 - d)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def step_extras(recipe: Recipe, ema: ModelEma | None) -> list[StepExtra]:
    """The extras a recipe turns on, in the order of a step: SAM, clipping, then the EMA."""
    extras: list[StepExtra] = []
    if recipe.sam_rho > 0:
        extras.append(SharpnessAware(recipe.sam_rho))
    if recipe.grad_clip is not None:
        extras.append(GradientClipping(recipe.grad_clip))
    if ema is not None:
        extras.append(ema)
    return extras
