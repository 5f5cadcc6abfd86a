"""The optimizer and learning-rate schedule a :class:`~cifarzoo.training.Recipe` asks for."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..optim import MuonSGD, muon_param_groups, param_groups
from .recipe import Recipe, ScheduleKind

__all__ = ["LRSchedule", "make_optimizer", "make_schedule"]


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


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD (no weight decay on norms and biases, :func:`~cifarzoo.optim.param_groups`), or
    :class:`~cifarzoo.optim.MuonSGD` for the convolution filters when ``muon_lr > 0``.

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
    total = recipe.epochs * steps_per_epoch
    warmup = min(total // 2, round(recipe.warmup_epochs * steps_per_epoch))
    return LRSchedule(recipe.schedule, warmup, total)
